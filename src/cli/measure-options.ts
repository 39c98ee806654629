/**
 * The measurement options `load` and `ping` share: `--hdr-log FILE` (an HdrHistogram interval
 * log of the run, µs), `--log-interval`, `--tag NAME`, `--html OUT.html` (a report page at the
 * end of the run), and for `load`, `--start-at TIME` (so that agents on several machines measure
 * the same window). A command spreads the specs into its `options` and calls
 * `openMeasurement(values, …)`, whose hooks go into the library's options.
 *
 * @example
 * ```ts
 * options: { ...MEASURE_OPTIONS, ...START_AT_OPTION },
 * // in run():
 * const measure = await openMeasurement(values, { command: 'load', target });
 * const result = await runLoad(ep, { ...measure.hooks }).finally(() => measure.close());
 * ```
 */
import { readFile, writeFile } from 'node:fs/promises';
import { basename } from 'node:path';
import type { Writable } from 'node:stream';
import { SocketkitError, toSocketkitError } from '../core/errors.js';
import { checkTag } from '../report/log-writer.js';
import { DEFAULT_LOG_INTERVAL_MS, IntervalRecorder, mergeLogs, openIntervalLog, parseIntervalLog, renderHtmlReport } from '../report/index.js';
import { custom, duration, text } from './options.js';
import type { Reporter } from './report.js';
import type { Histogram } from 'hdr-histogram-js';
import type { HtmlReportInit } from '../report/html.js';
import type { Endpoint } from '../net/endpoint.js';
import { autoThreads, runLoad, runLoadThreads, type LoadOptions, type LoadResult } from '../load/index.js';
import { parseCount } from './values.js';
import type { TlsClientOptions } from '../security/tls.js';

/** The most `--threads` takes. */
export const MAX_LOAD_THREADS = 256;

/** `--threads N|auto`: `auto` is one per core. */
export function parseThreads(option: string, value: string): number {
  return value === 'auto' ? autoThreads() : parseCount(option, value, 1, MAX_LOAD_THREADS);
}

/** `--threads`: for `load`. */
export const THREADS_OPTION = {
  threads: custom('run the connections on N worker threads, each with its own event loop (auto: one per core); connections, -n and --rate are split among them', parseThreads, { value: 'N|auto', default: 1, show: '1' }),
} as const;

/**
 * `runLoad`, or with `--threads` above 1 `runLoadThreads` (the latencies reach the log as
 * histograms). A live progress line is not drawn with threads; --print is refused. With TLS,
 * `tls` (what the transport was made from) lets each thread make its own.
 */
export async function runLoadWith(values: MeasureValues, ep: Endpoint, options: LoadOptions, measure: Measurement, tls?: TlsClientOptions): Promise<LoadResult> {
  const threads = typeof values['threads'] === 'number' ? values['threads'] : 1;
  if (threads <= 1) return runLoad(ep, options);
  if (options.onReply) throw new SocketkitError('ERR_USAGE', '--print cannot be combined with --threads (the replies arrive on other threads)');
  if (options.transport && tls === undefined) throw new SocketkitError('ERR_INTERNAL', 'a transport for load threads without the options it was made from');
  // eslint-disable-next-line @typescript-eslint/no-unused-vars
  const { onReply, onProgress, onConnecting, onLatency, onRunStart, onError, transport, progressIntervalMs, ...rest } = options;
  return runLoadThreads(ep, {
    ...rest,
    threads,
    ...(tls !== undefined ? { tls } : {}),
    ...(measure.hooks.onHistogram ? { onHistogram: measure.hooks.onHistogram } : {}),
    ...(onError ? { onError } : {}),
    ...(onRunStart ? { onRunStart } : {}),
  });
}

/** A file the measurement wrote. */
export interface WrittenFile {
  readonly what: 'hdr-log' | 'html';
  readonly path: string;
}

/** Says which files were written: a `written` event (--json), else a line `hdr-log: FILE`. */
export function announceFiles(report: Reporter, files: readonly WrittenFile[]): void {
  for (const f of files) report.event('written', { what: f.what, path: f.path }, `${f.what}: ${f.path}`);
}

/** `--tag`: a name HdrHistogram's log format can carry (no comma, space or line break). */
function parseTag(option: string, value: string): string {
  try {
    checkTag(value);
  } catch {
    throw new SocketkitError('ERR_USAGE', `--${option}: '${value}' cannot tag a log line (it must be non-empty, with no comma, space or line break)`);
  }
  return value;
}

/**
 * `--start-at`: an ISO time (`2026-12-02T15:00:00Z`) or `+SECONDS` from now, as ms since the
 * epoch. A time that has passed is ERR_START_PASSED.
 */
export function parseStartAt(option: string, value: string, now: number = Date.now()): number {
  const t = value.trim();
  let at: number;
  if (t.startsWith('+')) {
    const seconds = Number(t.slice(1));
    if (!/^\+\d+(\.\d+)?$/.test(t) || !(seconds > 0)) throw new SocketkitError('ERR_USAGE', `--${option}: '${value}' is not +SECONDS (a positive number of seconds from now)`);
    at = now + seconds * 1000;
  } else {
    at = /^\d{4}-\d\d-\d\d[T ]\d\d:\d\d/.test(t) ? Date.parse(t) : NaN;
    if (!Number.isFinite(at)) throw new SocketkitError('ERR_USAGE', `--${option}: '${value}' is neither an ISO time (2026-12-02T15:00:00Z) nor +SECONDS`);
  }
  if (at <= now) {
    throw new SocketkitError('ERR_START_PASSED', `--${option} ${value}: that time passed ${((now - at) / 1000).toFixed(3)} s ago (give a later time, or +SECONDS)`);
  }
  return at;
}

/** `--hdr-log`, `--log-interval`, `--tag`, `--html`: for `load` and `ping`. */
export const MEASURE_OPTIONS = {
  'hdr-log': text('write an HdrHistogram interval log of the run (latency in µs; `socketkit report` reads it); - for stdout, with -q', { value: 'FILE' }),
  'log-interval': duration('the interval length of --hdr-log and --html', { default: DEFAULT_LOG_INTERVAL_MS, positive: true }),
  tag: custom('tag the log\'s lines with NAME (an agent\'s name)', parseTag, { value: 'NAME' }),
  html: text('at the end of the run, write an HTML report page (charts and table, no network requests)', { value: 'OUT.html' }),
} as const;

/** `--start-at`: for `load`. */
export const START_AT_OPTION = {
  'start-at': custom('start the measured run at TIME (ISO, or +SECONDS from now), once connected: agents on several machines measure the same window', parseStartAt, { value: 'TIME' }),
} as const;

/** What `openMeasurement` reads from a command's values (typed, or untyped as `Record<string, unknown>`). */
export type MeasureValues = Readonly<Record<string, unknown>>;

/** The library hooks that feed the log, and the end of it. */
export interface Measurement {
  /** Spread into `runLoad`'s or `ping`'s options (empty when no log is asked for). */
  readonly hooks: {
    readonly onLatency?: (us: number) => void;
    readonly onError?: (code: string, n: number) => void;
    readonly onRunStart?: () => void;
    /** A thread's batch of latencies (µs), with --threads. */
    readonly onHistogram?: (h: Histogram) => void;
  };
  /** Writes the last interval and closes the log, then writes the HTML page; says what it wrote. Idempotent. */
  close(): Promise<WrittenFile[]>;
  /** Starts the interval timer (`ping`: at once; `load`: its `onRunStart` does). */
  start(): void;
}

const NONE: Measurement = { hooks: {}, close: () => Promise.resolve([]), start: () => undefined };

function stringOf(values: MeasureValues, key: string): string | undefined {
  const v = values[key];
  return typeof v === 'string' ? v : undefined;
}

/**
 * Opens the interval log of `--hdr-log` (or an in-memory one for `--html` alone). `parameters`
 * go into the log's `#[Parameters: …]` line and the report's table. `startTimeMs` is the log's
 * StartTime (`--start-at`), default now. `--hdr-log -` writes the log on `stdout` (give -q so that
 * nothing else goes there).
 */
export async function openMeasurement(
  values: MeasureValues,
  parameters: { readonly command: string; readonly target: string } & Readonly<Record<string, unknown>>,
  startTimeMs?: number,
  stdout?: Writable,
  /** More series for the HTML page, read when it is written (`perf`: throughput per stream, UDP receivers' jitter and loss). */
  extra?: () => Pick<HtmlReportInit, 'transfers' | 'udp' | 'values'>,
): Promise<Measurement> {
  const path = stringOf(values, 'hdr-log');
  const html = stringOf(values, 'html');
  if (path === undefined && html === undefined) return NONE;
  const tag = stringOf(values, 'tag');
  const interval = values['log-interval'];
  const options = {
    intervalMs: typeof interval === 'number' ? interval : DEFAULT_LOG_INTERVAL_MS,
    parameters,
    ...(tag !== undefined ? { tag } : {}),
    ...(startTimeMs !== undefined ? { startTimeMs } : {}),
  };
  let memory = '';
  const toStdout = path === '-';
  if (toStdout && stdout === undefined) throw new SocketkitError('ERR_USAGE', '--hdr-log -: this command cannot write its log on stdout');
  const keep = (s: string): void => {
    if (html !== undefined) memory += s;
  };
  const rec =
    path !== undefined && !toStdout
      ? await openIntervalLog(path, options)
      : new IntervalRecorder((s) => {
          if (toStdout) stdout?.write(s);
          keep(s);
        }, options);
  let closing: Promise<WrittenFile[]> | undefined;
  const finish = async (): Promise<WrittenFile[]> => {
    await rec.close();
    const lines: WrittenFile[] = path !== undefined && !toStdout ? [{ what: 'hdr-log', path }] : [];
    if (html === undefined) return lines;
    let textOfLog = memory;
    if (path !== undefined && !toStdout) {
      try {
        textOfLog = await readFile(path, 'utf8');
      } catch (e) {
        throw toSocketkitError(e, path);
      }
    }
    const log = parseIntervalLog(textOfLog, path !== undefined && !toStdout ? basename(path) : parameters.command);
    const page = await renderHtmlReport({ title: `socketkit ${parameters.command} ${parameters.target}`, runs: mergeLogs([log]), ...(extra ? extra() : {}) });
    try {
      await writeFile(html, page);
    } catch (e) {
      throw toSocketkitError(e, html);
    }
    return [...lines, { what: 'html', path: html }];
  };
  return {
    hooks: {
      onLatency: (us) => rec.record(us),
      onError: (code, n) => rec.recordError(code, n),
      onRunStart: () => rec.start(),
      onHistogram: (h) => rec.add(h),
    },
    start: () => rec.start(),
    close: () => (closing ??= finish()),
  };
}

/**
 * The interval recorder `load` and `ping` feed: latency samples (µs) and errors go into the
 * current interval; an interval is written to the log on a timer (every `intervalMs`) or on
 * demand (`flush()`), and `close()` writes the last one.
 *
 * @example
 * ```ts
 * const rec = await openIntervalLog('run.hlog', { tag: 'agent-1', parameters: { target: '127.0.0.1:9800' } });
 * rec.start();                 // one interval a second from now on
 * rec.record(412);             // a round trip of 412 µs
 * rec.recordError('ERR_TIMEOUT');
 * await rec.close();           // the last interval, then the file is closed
 * ```
 */
import { createWriteStream } from 'node:fs';
import { finished } from 'node:stream/promises';
import type { Histogram } from 'hdr-histogram-js';
import { SocketkitError, toSocketkitError } from '../core/errors.js';
import { IntervalLogWriter, type IntervalLogHeader } from './log-writer.js';
import { newLatencyHistogram } from './histogram.js';

/** Interval length when none is given, ms (HdrHistogram's tools log 1 s intervals too). */
export const DEFAULT_LOG_INTERVAL_MS = 1000;

export interface IntervalRecorderOptions {
  /** Length of an interval, ms. Default 1 s. */
  readonly intervalMs?: number;
  /** Tags every line (an agent's name): no comma, space or line break. */
  readonly tag?: string;
  /** What was measured, written in a `#[Parameters: …]` comment. */
  readonly parameters?: Readonly<Record<string, unknown>>;
  /** The log's StartTime, ms since the epoch. Default: now. */
  readonly startTimeMs?: number;
  /** What wrote the log. Default `socketkit`. */
  readonly loggedWith?: string;
  /** The clock, ms since the epoch (tests). Default `Date.now`. */
  readonly now?: () => number;
}

/** Records latencies and errors into intervals and writes each one to an interval log. */
export class IntervalRecorder {
  readonly #writer: IntervalLogWriter;
  readonly #intervalMs: number;
  readonly #now: () => number;
  readonly #onClose: (() => Promise<void>) | undefined;
  #h: Histogram = newLatencyHistogram();
  #errors = 0;
  #codes: Record<string, number> = {};
  #intervalStart: number;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  #intervals = 0;

  /** Writes to `write` (the header at once). `onClose` runs after the last interval (closes a file). */
  constructor(write: (text: string) => void, options: IntervalRecorderOptions = {}, onClose?: () => Promise<void>) {
    const intervalMs = options.intervalMs ?? DEFAULT_LOG_INTERVAL_MS;
    if (!(intervalMs >= 1) || !Number.isFinite(intervalMs)) throw new SocketkitError('ERR_INVALID_ARG', `the log interval must be at least 1 ms, not ${intervalMs}`);
    this.#intervalMs = intervalMs;
    this.#now = options.now ?? Date.now;
    const startTimeMs = options.startTimeMs ?? this.#now();
    const header: IntervalLogHeader & { tag?: string } = {
      startTimeMs,
      loggedWith: options.loggedWith ?? 'socketkit',
      ...(options.parameters !== undefined ? { parameters: options.parameters } : {}),
      ...(options.tag !== undefined ? { tag: options.tag } : {}),
    };
    this.#writer = new IntervalLogWriter(write, header);
    this.#intervalStart = startTimeMs;
    this.#onClose = onClose;
  }

  /** Records one latency, µs (rounded; at least 1). */
  record(us: number): void {
    this.#h.recordValue(Math.max(1, Math.round(us)));
  }

  /** Adds a whole histogram of µs to the current interval (a worker thread's interval). */
  add(histogram: Histogram): void {
    this.#h.add(histogram);
  }

  /** Counts `n` errors of `code` in the current interval. */
  recordError(code: string, n = 1): void {
    this.#errors += n;
    this.#codes[code] = (this.#codes[code] ?? 0) + n;
  }

  /** Intervals written so far. */
  get intervals(): number {
    return this.#intervals;
  }

  /** Writes an interval every `intervalMs` from now on, until `close()`. The timer does not keep the process alive. */
  start(): void {
    if (this.#closed || this.#timer !== undefined) return;
    this.#timer = setInterval(() => this.flush(), this.#intervalMs);
    this.#timer.unref();
  }

  /** Writes the interval so far (from the end of the last one to now) and starts the next. */
  flush(): void {
    if (this.#closed) return;
    const end = Math.max(this.#now(), this.#intervalStart);
    this.#writer.writeInterval(this.#intervalStart, end, this.#h, { count: this.#errors, codes: this.#codes });
    this.#intervals++;
    this.#intervalStart = end;
    this.#h.reset();
    this.#errors = 0;
    this.#codes = {};
  }

  /** Stops the timer, writes the last interval (when it holds anything or none was written) and closes the sink. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    if (this.#h.totalCount > 0 || this.#errors > 0 || this.#intervals === 0) this.flush();
    this.#closed = true;
    await this.#onClose?.();
  }
}

/**
 * An interval recorder writing to a file (created or truncated). Write errors surface from
 * `close()` as coded errors. The log grows by one short line per interval, so what the stream
 * buffers while the disk is slow stays small.
 */
export async function openIntervalLog(path: string, options: IntervalRecorderOptions = {}): Promise<IntervalRecorder> {
  const out = createWriteStream(path);
  let failure: unknown;
  out.on('error', (e) => {
    failure ??= e;
  });
  await new Promise<void>((resolve, reject) => {
    const opened = (): void => {
      out.off('error', failed);
      resolve();
    };
    const failed = (e: Error): void => {
      out.off('ready', opened);
      reject(toSocketkitError(e, path));
    };
    out.once('ready', opened);
    out.once('error', failed);
  });
  const close = async (): Promise<void> => {
    out.end();
    try {
      await finished(out);
    } catch (e) {
      failure ??= e;
    }
    if (failure !== undefined) throw toSocketkitError(failure, path);
  };
  return new IntervalRecorder((text) => void out.write(text), options, close);
}

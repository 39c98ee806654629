/**
 * Progress bars for terminals: one line per file in flight (bytes, percentage, rate, ETA),
 * redrawn in place at most ten times a second, with finished files printed as ordinary lines
 * above them. Several files at once (a server with many clients) get one line each.
 *
 * Written for a TTY; when the stream is not one, nothing is drawn and `line()` simply prints.
 * Labels and lines are peer-controlled (file names, messages): they are neutralised here, where
 * they are drawn, and labels are measured in terminal columns (wide characters take two), so a
 * long or wide name never wraps the line and breaks the redraw.
 */
import type { Writable } from 'node:stream';
import type { TransferEvent, TransferSummary } from '../transfer/index.js';
import { fitColumns, neutralise } from '../core/terminal-text.js';
import type { ErrorCode } from '../core/errors.js';
import { adviceFor } from './usage.js';

/** `; what to type` for a failure the CLI knows how to get past, else nothing. */
function advised(e: Parameters<typeof adviceFor>[0]): string {
  const advice = adviceFor(e);
  return advice === undefined ? '' : `; ${advice}`;
}
import { terminalLines, type Reporter } from './report.js';
import { formatBytes, formatCount, formatCounted, formatDuration, formatRate, formatThroughput } from './format.js';

/** Options of {@link ProgressBars}. */
export interface ProgressOptions {
  /** Where to draw (standard error). Its `columns` sets the line width. */
  readonly stream: Writable & { columns?: number };
  /** Draw bars (true on a terminal); when false only `line()` prints. */
  readonly enabled: boolean;
  /** Redraw period, ms (default 100). */
  readonly intervalMs?: number;
  /** Bars shown at most; the rest are counted on one line (default 8). */
  readonly maxBars?: number;
}

/** One file in flight, as a bar draws it. */
export interface Bar {
  readonly label: string;
  /** Total bytes, or undefined when unknown (a raw stream). */
  readonly size: number | undefined;
  /** Bytes that were there before this transfer (a resume): not counted in the rate. */
  readonly offset: number;
  bytes: number;
  readonly started: number;
  /** Smoothed rate, bytes/s. */
  rate: number;
  lastSampleAt: number;
  lastSampleBytes: number;
}

// Rates are written by format.ts, for every command; importable from here as before.
export { formatRate } from './format.js';

/** Seconds as a clock: 0:07, 12:34, 1:02:03; `--:--` when unknown. */
export function formatEta(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--:--';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

/** Live progress bars, keyed by whatever identifies a file in flight. */
export class ProgressBars {
  readonly #stream: Writable & { columns?: number };
  readonly #enabled: boolean;
  readonly #maxBars: number;
  readonly #bars = new Map<string, Bar>();
  /** Lines of bars currently on screen (the cursor sits below them). */
  #drawn = 0;
  #dirty = false;
  readonly #timer: NodeJS.Timeout | undefined;

  constructor(options: ProgressOptions) {
    this.#stream = options.stream;
    this.#enabled = options.enabled;
    this.#maxBars = options.maxBars ?? 8;
    if (this.#enabled) {
      this.#timer = setInterval(() => {
        if (this.#dirty) this.#draw();
      }, options.intervalMs ?? 100);
      this.#timer.unref();
    }
  }

  /** A file starts: a new bar. `offset` bytes were already there (resumed). */
  start(key: string, label: string, size: number | undefined, offset = 0): void {
    if (!this.#enabled) return;
    const now = performance.now();
    this.#bars.set(key, { label: neutralise(label), size, offset, bytes: offset, started: now, rate: 0, lastSampleAt: now, lastSampleBytes: offset });
    this.#dirty = true;
  }

  /** The file now has `bytes` (offset included). Cheap: drawing happens on the timer. */
  update(key: string, bytes: number): void {
    const bar = this.#bars.get(key);
    if (bar === undefined) return;
    bar.bytes = bytes;
    this.#dirty = true;
  }

  /** Removes a bar and prints `text` (if any) in its place, as a permanent line. */
  finish(key: string, text?: string): void {
    const had = this.#bars.delete(key);
    if (text !== undefined) this.line(text);
    else if (had) this.#draw();
  }

  /** Prints a permanent line above the bars. */
  line(text: string): void {
    const safe = terminalLines(text);
    if (!this.#enabled) {
      this.#stream.write(`${safe}\n`);
      return;
    }
    this.#clear();
    this.#stream.write(`${safe}\n`);
    this.#draw();
  }

  /** Removes every bar from the screen and stops redrawing. */
  close(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#bars.clear();
    if (this.#enabled) this.#clear();
  }

  /** Moves up over the drawn bars and erases them. */
  #clear(): void {
    if (this.#drawn === 0) return;
    this.#stream.write(`\x1b[${this.#drawn}A\r\x1b[J`);
    this.#drawn = 0;
  }

  #draw(): void {
    this.#dirty = false;
    // One column short of the terminal: a line that fills the last column wraps on some terminals.
    const width = Math.max(1, (this.#stream.columns ?? 80) - 1);
    const now = performance.now();
    const lines: string[] = [];
    let shown = 0;
    for (const bar of this.#bars.values()) {
      this.#sample(bar, now);
      if (shown < this.#maxBars) lines.push(renderBar(bar, width, now));
      shown++;
    }
    if (shown > this.#maxBars) lines.push(fitColumns(`  … and ${shown - this.#maxBars} more`, width));
    // Nothing on screen and nothing to show: no control sequence at all.
    if (lines.length === 0 && this.#drawn === 0) return;
    const up = this.#drawn > 0 ? `\x1b[${this.#drawn}A\r` : '';
    this.#stream.write(`${up}${lines.map((l) => `${l}\x1b[K\n`).join('')}\x1b[J`);
    this.#drawn = lines.length;
  }

  /** Updates the smoothed rate from the bytes moved since the last sample. */
  #sample(bar: Bar, now: number): void {
    const dt = (now - bar.lastSampleAt) / 1000;
    if (dt < 0.2) return;
    const instant = (bar.bytes - bar.lastSampleBytes) / dt;
    // Exponential smoothing over about two seconds: steady, yet quick to follow a change.
    const alpha = Math.min(1, dt / 2);
    bar.rate = bar.rate === 0 ? instant : bar.rate + alpha * (instant - bar.rate);
    bar.lastSampleAt = now;
    bar.lastSampleBytes = bar.bytes;
  }
}

/** Columns a label keeps at least before the bar gives up fields for it. */
const MIN_LABEL = 8;

/**
 * One bar: `label  [=====>    ]  45%  1.2 GiB / 2.0 GiB  870 MB/s  ETA 0:03`, never wider than
 * `width` columns (a line that wraps breaks the redraw). On a narrow terminal fields go first,
 * least useful first (the total, the ETA, the bytes, the gauge, the rate), then the label
 * shrinks, and the percentage stays to the last.
 */
export function renderBar(bar: Readonly<Bar>, width: number, now = performance.now()): string {
  const rate = bar.rate > 0 ? bar.rate : (bar.bytes - bar.offset) / Math.max(0.001, (now - bar.started) / 1000);
  // Fixed-width fields, so the line does not jump as the numbers change length.
  const bytes = formatBytes(bar.bytes).padStart(9);
  const speed = formatRate(rate).padStart(9);
  if (bar.size === undefined) {
    for (const tail of [`  ${bytes}  ${speed}`, `  ${bytes}`, '']) {
      if (tail === '' || width - tail.length >= MIN_LABEL) return `${fitColumns(bar.label, Math.max(0, width - tail.length))}${tail}`;
    }
  }
  const size = bar.size ?? 0;
  const fraction = size === 0 ? 1 : Math.min(1, bar.bytes / size);
  const pct = `${Math.floor(fraction * 100)}%`.padStart(4);
  const eta = `ETA ${formatEta(rate > 0 ? (size - bar.bytes) / rate : Infinity)}`;
  const total = formatBytes(size).padEnd(9);
  const tails = [
    { gauge: true, tail: `  ${pct}  ${bytes} / ${total}  ${speed}  ${eta}` },
    { gauge: true, tail: `  ${pct}  ${bytes}  ${speed}  ${eta}` },
    { gauge: true, tail: `  ${pct}  ${speed}  ${eta}` },
    { gauge: true, tail: `  ${pct}  ${speed}` },
    { gauge: false, tail: `  ${pct}  ${speed}` },
    { gauge: false, tail: `  ${pct}` },
  ];
  for (const { gauge, tail } of tails) {
    const room = width - tail.length;
    if (gauge) {
      // The gauge takes what the label leaves, between 10 and 30 cells (plus brackets and gap).
      const cells = Math.min(30, room - MIN_LABEL - 4);
      if (cells < 10) continue;
      const labelWidth = room - cells - 4;
      const filled = Math.floor(fraction * cells);
      const drawn = `[${'='.repeat(filled)}${filled < cells ? '>' : ''}${' '.repeat(Math.max(0, cells - filled - 1))}]`;
      return `${fitColumns(bar.label, labelWidth, true)}  ${drawn}${tail}`;
    }
    if (room >= MIN_LABEL || (tail === `  ${pct}` && room >= 0)) return `${fitColumns(bar.label, room, true)}${tail}`;
  }
  return fitColumns(pct.trim(), width);
}

// ---- transfer views -------------------------------------------------------------------------

/** What the transfer commands print, for each of the three output modes. */
export interface TransferView {
  /** Feeds one event of a transfer; `conn` tells concurrent connections apart (servers). */
  onEvent(e: TransferEvent, conn?: number): void;
  /**
   * Connection `conn` ended: every file of it still in flight failed with it (a client that was
   * killed or reset sends no failure of its own), so its bar goes and a FAILED line takes its place.
   */
  connectionEnded(conn: number, code: ErrorCode, message: string): void;
  /** A permanent line for people (stderr); nothing in JSON or quiet mode. */
  line(text: string): void;
  /** Stops drawing. */
  close(): void;
}

/**
 * The view behind `serve`, `get`, `send` and `receive`:
 * - on a terminal: a progress bar per file in flight, and a line per finished file;
 * - text, not a terminal: a line per finished or failed file;
 * - `--json`: `file-start`, `progress` (at most once a second per file), `file-done`,
 *   `file-failed` and `dir` events;
 * - `-q`: nothing.
 */
export function createTransferView(report: Reporter, stderr: Writable & { columns?: number }): TransferView {
  const bars = new ProgressBars({ stream: stderr, enabled: report.tty });
  const lastJson = new Map<string, number>();
  const people = !report.json && !report.quiet;
  /** Files in flight by bar key, with their connection, for `connectionEnded`. */
  const inFlight = new Map<string, { readonly conn: number | undefined; readonly path: string }>();
  const view: TransferView = {
    onEvent(e, conn) {
      const key = conn === undefined ? e.path : `${conn}\u0000${e.path}`;
      const label = conn === undefined ? e.path : `#${conn} ${e.path}`;
      switch (e.event) {
        case 'file-start':
          inFlight.set(key, { conn, path: e.path });
          bars.start(key, label, e.size, e.offset);
          if (report.json) report.event('file-start', { ...(conn !== undefined ? { conn } : {}), path: e.path, size: e.size, offset: e.offset });
          break;
        case 'file-progress': {
          bars.update(key, e.bytes);
          if (report.json) {
            const now = performance.now();
            if (now - (lastJson.get(key) ?? 0) >= 1000) {
              lastJson.set(key, now);
              report.event('progress', { ...(conn !== undefined ? { conn } : {}), path: e.path, bytes: e.bytes, size: e.size });
            }
          }
          break;
        }
        case 'file-done': {
          lastJson.delete(key);
          inFlight.delete(key);
          const moved = e.size - e.offset;
          const resumed = e.offset > 0 ? `, resumed at ${formatBytes(e.offset)}` : '';
          // A rate over a few bytes or milliseconds says nothing; it is shown from 64 KiB on.
          const speed = moved >= 64 * 1024 ? formatRate((moved * 1000) / Math.max(1, e.ms)) : '';
          const extra = [speed, resumed.replace(/^, /, '')].filter((x) => x !== '').join(', ');
          const text = `  ok  ${label}  ${formatBytes(e.size)} in ${formatDuration(e.ms)}${extra ? ` (${extra})` : ''}`;
          bars.finish(key, people ? text : undefined);
          if (report.json) report.event('file-done', { ...(conn !== undefined ? { conn } : {}), path: e.path, size: e.size, offset: e.offset, sha256: e.sha256, ms: Math.round(e.ms) });
          break;
        }
        case 'file-failed':
          lastJson.delete(key);
          inFlight.delete(key);
          bars.finish(key, people ? `  FAILED  ${label}: ${e.message}${advised(e)} (${e.code})` : undefined);
          if (report.json) report.event('file-failed', { ...(conn !== undefined ? { conn } : {}), path: e.path, code: e.code, message: e.message });
          break;
        case 'dir':
          if (report.json) report.event('dir', { ...(conn !== undefined ? { conn } : {}), path: e.path });
          break;
      }
    },
    connectionEnded(conn, code, message) {
      for (const [, f] of [...inFlight].filter(([, f]) => f.conn === conn)) {
        view.onEvent({ event: 'file-failed', path: f.path, code, message }, conn);
      }
    },
    line(text) {
      if (people) bars.line(text);
    },
    close() {
      bars.close();
    },
  };
  return view;
}

/** `3 files, 1.20 GiB in 1.38 s, 933 MB/s` (and what failed, and what was resumed). */
export function summaryLine(s: TransferSummary): string {
  const parts = [
    `${formatCounted(s.files, 'file')}${s.dirs > 0 ? ` and ${formatCounted(s.dirs, 'folder')}` : ''}`,
    `${formatBytes(s.bytes)} in ${formatDuration(s.seconds * 1000)}, ${formatThroughput(s.transferred, s.seconds)}`,
  ];
  let line = parts.join(', ');
  if (s.transferred < s.bytes) line += ` (${formatBytes(s.bytes - s.transferred)} already there)`;
  if (s.failures.length > 0) line += `; ${formatCount(s.failures.length)} failed`;
  return line;
}

/** The JSON form of a summary, for `--json` results. */
export function summaryFields(s: TransferSummary): Record<string, unknown> {
  return {
    files: s.files,
    dirs: s.dirs,
    bytes: s.bytes,
    transferred: s.transferred,
    seconds: Math.round(s.seconds * 1000) / 1000,
    gbps: s.seconds > 0 ? Math.round((s.transferred / s.seconds / 1e9) * 1000) / 1000 : 0,
    failures: s.failures,
  };
}

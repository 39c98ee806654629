/**
 * HdrHistogram interval log writer, format version 1.3, as HdrHistogram's Java
 * `HistogramLogWriter` writes it (and its `HistogramLogProcessor`, wrk2's and every HdrHistogram
 * library's reader reads it):
 *
 * ```
 * #[Logged with socketkit 0.1.0]
 * #[Histogram log format version 1.3]
 * #[StartTime: 1764681156.123 (seconds since epoch), Wed Dec 02 13:12:36 UTC 2026]
 * #[BaseTime: 1764681156.123 (seconds since epoch)]
 * "StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"
 * Tag=agent-1,0.000,1.000,4.095,HISTFAAAA…
 * ```
 *
 * Timestamps are seconds relative to BaseTime, with three decimals (Java's `%.3f`); the compressed
 * histogram is the V2 compressed encoding at deflate level 9 (Java's `Deflater.BEST_COMPRESSION`),
 * so a histogram encodes to the same characters Java writes. Values are microseconds, and
 * Interval_Max is in milliseconds (max / 1000).
 *
 * socketkit adds two kinds of comment lines, which other readers skip as comments:
 * `#[Parameters: {json}]` (what was measured) and `#[Errors: {json}]` after an interval that had
 * errors (`{"start":s,"length":s,"count":n,"codes":{…},"tag":…}`).
 */
import { createRequire } from 'node:module';
import { inflateSync } from 'node:zlib';
import { encodeIntoCompressedBase64, type Histogram } from 'hdr-histogram-js';
import { SocketkitError } from '../core/errors.js';

/** The interval log format version written. */
export const HDR_LOG_FORMAT_VERSION = '1.3';
/** The legend line (without its line break). */
export const HDR_LOG_LEGEND = '"StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"';
// pako is a faithful port of stock zlib, so its level 9 makes the bytes Java's Deflater makes
// (Node's bundled zlib is Chromium's fork, whose level 9 finds other matches). It has no types.
const pako = createRequire(import.meta.url)('pako') as { deflate(data: Uint8Array, options: { level: number }): Uint8Array };

/** Values are µs; Interval_Max is written in ms. */
export const MAX_VALUE_UNIT_RATIO = 1000;

/** Errors counted in one interval. */
export interface IntervalErrors {
  readonly count: number;
  /** By code, e.g. `{ ERR_TIMEOUT: 2 }`. */
  readonly codes: Readonly<Record<string, number>>;
}

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const pad = (n: number): string => String(n).padStart(2, '0');

/** Java's `Date.toString()` in UTC: `Wed Dec 02 13:12:36 UTC 2026`. */
function javaDate(ms: number): string {
  const d = new Date(ms);
  return `${DAYS[d.getUTCDay()]} ${MONTHS[d.getUTCMonth()]} ${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} UTC ${d.getUTCFullYear()}`;
}

/** Java's `%.3f`. */
const f3 = (x: number): string => x.toFixed(3);

/** Throws unless `tag` can stand in a log line (no comma, space or line break; not empty). */
export function checkTag(tag: string): void {
  if (tag === '' || /[,\s]/.test(tag)) throw new SocketkitError('ERR_INVALID_ARG', `a log tag must be non-empty and hold no comma, space or line break: '${tag}'`);
}

/**
 * A histogram in HdrHistogram's V2 compressed encoding, base64, byte for byte as Java's
 * `encodeIntoCompressedByteBuffer(…, Deflater.BEST_COMPRESSION)` makes it.
 *
 * hdr-histogram-js's encoder writes two header fields differently from Java: the normalizing
 * index offset as 1 (Java: 0 for a histogram never shifted) and the integer-to-double conversion
 * ratio as the integer 1 (Java: the double 1.0). Readers of plain histograms ignore both, but a
 * reader that decodes a line as a DoubleHistogram would take the ratio as 5e-324. So the
 * uncompressed form is patched to Java's fields and compressed again at level 9, with pako.
 */
export function encodeHistogram(histogram: Histogram): string {
  const js = Buffer.from(encodeIntoCompressedBase64(histogram, 9), 'base64');
  const cookie = js.readUInt32BE(0);
  const inner = inflateSync(js.subarray(8, 8 + js.readInt32BE(4)));
  inner.writeInt32BE(0, 8); // normalizingIndexOffset
  inner.writeDoubleBE(1.0, 32); // integerToDoubleValueConversionRatio
  // A histogram that was itself decoded gets one trailing zero count from the JS encoder (its
  // max lies one index further); Java stops at the last non-zero count. A lone 0x00 after a
  // byte without the continuation bit is that zero count (LEB128 never ends a number in 0x00).
  const HEADER = 40;
  let end = inner.length;
  while (end > HEADER + 1 && inner[end - 1] === 0 && (inner[end - 2]! & 0x80) === 0) end--;
  const payload = inner.subarray(0, end);
  payload.writeInt32BE(end - HEADER, 4);
  const compressed = Buffer.from(pako.deflate(payload, { level: 9 }));
  const out = Buffer.alloc(8 + compressed.length);
  out.writeUInt32BE(cookie, 0);
  out.writeInt32BE(compressed.length, 4);
  compressed.copy(out, 8);
  return out.toString('base64');
}

/** The largest value as Java reports it: the top of the largest sample's bucket. */
function intervalMax(h: Histogram): number {
  return h.totalCount === 0 ? 0 : (h as Histogram & { highestEquivalentValue(v: number): number }).highestEquivalentValue(h.maxValue);
}

/** One interval line (with its line break), as Java's `outputIntervalHistogram` writes it. */
export function formatIntervalLine(startSec: number, lengthSec: number, histogram: Histogram, tag?: string): string {
  if (tag !== undefined) checkTag(tag);
  const body = `${f3(startSec)},${f3(lengthSec)},${f3(intervalMax(histogram) / MAX_VALUE_UNIT_RATIO)},${encodeHistogram(histogram)}\n`;
  return tag !== undefined ? `Tag=${tag},${body}` : body;
}

export interface IntervalLogHeader {
  /** Absolute start, ms since the epoch; interval timestamps are relative to it (BaseTime). */
  readonly startTimeMs: number;
  /** What wrote the log, e.g. `socketkit 0.1.0`. */
  readonly loggedWith?: string;
  /** What was measured (shown by `report`): target, connections, size… */
  readonly parameters?: Readonly<Record<string, unknown>>;
}

/** The header lines: who logged, the format version, StartTime, BaseTime, parameters, the legend. */
export function formatLogHeader(h: IntervalLogHeader): string {
  const lines: string[] = [];
  if (h.loggedWith !== undefined) lines.push(`#[Logged with ${h.loggedWith.replace(/[\r\n]/g, ' ')}]`);
  lines.push(`#[Histogram log format version ${HDR_LOG_FORMAT_VERSION}]`);
  lines.push(`#[StartTime: ${f3(h.startTimeMs / 1000)} (seconds since epoch), ${javaDate(h.startTimeMs)}]`);
  lines.push(`#[BaseTime: ${f3(h.startTimeMs / 1000)} (seconds since epoch)]`);
  // JSON.stringify never emits a raw line break, so this stays one line.
  if (h.parameters !== undefined) lines.push(`#[Parameters: ${JSON.stringify(h.parameters)}]`);
  lines.push(HDR_LOG_LEGEND);
  return `${lines.join('\n')}\n`;
}

/** The `#[Errors: …]` comment socketkit writes after an interval with errors. */
export function formatErrorsLine(startSec: number, lengthSec: number, errors: IntervalErrors, tag?: string): string {
  const fields = { start: Number(f3(startSec)), length: Number(f3(lengthSec)), count: errors.count, codes: errors.codes, ...(tag !== undefined ? { tag } : {}) };
  return `#[Errors: ${JSON.stringify(fields)}]\n`;
}

/**
 * Writes an interval log to a text sink: the header once, then one line per interval.
 * Knows nothing of files or timers (see `IntervalRecorder`).
 */
export class IntervalLogWriter {
  readonly #write: (text: string) => void;
  readonly #startTimeMs: number;
  readonly #tag: string | undefined;

  constructor(write: (text: string) => void, header: IntervalLogHeader & { readonly tag?: string }) {
    if (header.tag !== undefined) checkTag(header.tag);
    this.#write = write;
    this.#startTimeMs = header.startTimeMs;
    this.#tag = header.tag;
    write(formatLogHeader(header));
  }

  /** The absolute time interval timestamps count from, ms since the epoch. */
  get baseTimeMs(): number {
    return this.#startTimeMs;
  }

  /**
   * Writes one interval, [startMs, endMs) in absolute ms since the epoch, and its errors if any,
   * in one write (a killed writer cuts at most the line being written).
   */
  writeInterval(startMs: number, endMs: number, histogram: Histogram, errors?: IntervalErrors): void {
    const start = (startMs - this.#startTimeMs) / 1000;
    const length = (endMs - startMs) / 1000;
    let text = formatIntervalLine(start, length, histogram, this.#tag);
    if (errors !== undefined && errors.count > 0) text += formatErrorsLine(start, length, errors, this.#tag);
    this.#write(text);
  }

  /** A comment line (`#text`). */
  writeComment(text: string): void {
    this.#write(`#${text.replace(/[\r\n]/g, ' ')}\n`);
  }
}

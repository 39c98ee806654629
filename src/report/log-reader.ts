/**
 * HdrHistogram interval log reader (format versions 1.0 to 1.3, as HdrHistogram's Java
 * `HistogramLogReader` reads them), tolerant of what real logs hold:
 *
 * - comment lines of any tool (`#[Logged with jHiccup …]`) are kept as comments;
 * - `#[StartTime: …]` and `#[BaseTime: …]`; without BaseTime, timestamps more than a year before
 *   StartTime are taken as relative to it (Java's rule), others as absolute;
 * - the legend line; `Tag=NAME,` before an interval;
 * - a last line cut mid-way (a killed writer: no line break at the end) is dropped with a warning,
 *   and what came before it is read;
 * - an empty log (or one with only its header) has no intervals, and a warning says so.
 *
 * Any other line that is not an interval is an `ERR_BAD_LOG` naming the line: a corrupt log is
 * not silently shortened. Histograms in the V0/V1 encodings (HdrHistogram before 2.1) are not
 * supported (hdr-histogram-js decodes V2 only), and say so.
 */
import { decodeFromCompressedBase64, type Histogram } from 'hdr-histogram-js';
import { SocketkitError } from '../core/errors.js';
import type { IntervalErrors } from './log-writer.js';

/** One interval of a log, in absolute time. */
export interface LogInterval {
  /** `undefined` for an untagged line. */
  readonly tag: string | undefined;
  /** Start, ms since the epoch. */
  readonly startMs: number;
  /** End, ms since the epoch. */
  readonly endMs: number;
  /**
   * The interval's histogram (values as logged; socketkit logs µs), decoded afresh at each read:
   * a log keeps only the compressed text of its intervals (a few hundred bytes each, where a
   * decoded histogram holds 94 KiB of counts; an hour of several agents would take gigabytes).
   */
  readonly histogram: Histogram;
  /** The compressed histogram, as in the log. */
  readonly encoded: string;
  /** Errors in the interval (socketkit's `#[Errors: …]` lines); none for other tools' logs. */
  readonly errors: IntervalErrors;
}

/** A log, read. */
export interface IntervalLog {
  /** What the log was called (the file name). */
  readonly name: string;
  /** `#[StartTime: …]`, ms since the epoch, when the log has one. */
  readonly startTimeMs: number | undefined;
  /** `#[Histogram log format version …]`, when given. */
  readonly version: string | undefined;
  /** The `#[Parameters: …]` objects. */
  readonly parameters: Readonly<Record<string, unknown>>;
  /** Other comment lines, without their `#`. */
  readonly comments: readonly string[];
  readonly intervals: readonly LogInterval[];
  /** What was skipped, one sentence each (a cut last line, an empty log). */
  readonly warnings: readonly string[];
}

const NO_ERRORS: IntervalErrors = { count: 0, codes: {} };
const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

function bad(name: string, line: number, what: string): SocketkitError {
  return new SocketkitError('ERR_BAD_LOG', `${name}:${line}: ${what}`);
}

/** The number after `#[StartTime: ` or `#[BaseTime: `. */
function headerNumber(line: string): number | undefined {
  const text = line.slice(line.indexOf(':') + 1).trim().split(/[\s,\]]/)[0] ?? '';
  return NUMBER.test(text) ? Number(text) : undefined;
}

interface RawInterval {
  readonly line: number;
  readonly tag: string | undefined;
  readonly start: number;
  readonly length: number;
  readonly encoded: string;
}

function decode(encoded: string, tag: string | undefined): Histogram {
  const h = decodeFromCompressedBase64(encoded, 32, false);
  h.tag = tag ?? 'NO TAG';
  return h;
}

interface ErrorsComment {
  readonly start: number;
  readonly tag: string | undefined;
  readonly errors: IntervalErrors;
}

function parseErrors(json: string): ErrorsComment | undefined {
  try {
    const v = JSON.parse(json) as { start?: unknown; count?: unknown; codes?: unknown; tag?: unknown };
    if (typeof v.start !== 'number' || typeof v.count !== 'number') return undefined;
    const codes: Record<string, number> = {};
    if (v.codes !== null && typeof v.codes === 'object') {
      for (const [k, n] of Object.entries(v.codes as Record<string, unknown>)) if (typeof n === 'number') codes[k] = n;
    }
    return { start: v.start, tag: typeof v.tag === 'string' ? v.tag : undefined, errors: { count: v.count, codes } };
  } catch {
    return undefined;
  }
}

/** Decodes one interval line, or says why it is not one. */
function parseIntervalLine(text: string): Omit<RawInterval, 'line'> | string {
  const fields = text.split(',');
  let tag: string | undefined;
  if (fields[0]?.startsWith('Tag=')) tag = fields.shift()!.slice(4);
  if (fields.length !== 4) return `an interval line has 4 fields (start, length, max, histogram), this one ${fields.length}`;
  const [start, length, max, encoded] = fields.map((f) => f.trim()) as [string, string, string, string];
  if (!NUMBER.test(start) || !NUMBER.test(length) || !NUMBER.test(max)) return 'the start, length or max of an interval is not a number';
  try {
    // Decoded once here to find a corrupt line now, and again each time it is read.
    decodeFromCompressedBase64(encoded, 32, false);
  } catch (e) {
    if (e instanceof Error && /only V2/.test(e.message)) return 'a histogram in an encoding older than V2 (HdrHistogram before 2.1), which is not supported';
    return 'the compressed histogram does not decode';
  }
  return { tag, start: Number(start), length: Number(length), encoded };
}

/** Reads an interval log's text. `name` (a file name) is used in warnings and errors. */
export function parseIntervalLog(text: string, name = 'log'): IntervalLog {
  const lines = text.split(/\r\n|\n|\r/);
  // A text that ends with a line break splits into a last empty string; one that does not ends
  // with a line that may have been cut by a writer that died.
  const cutCandidate = lines.length > 0 && lines[lines.length - 1] !== '' ? lines.length - 1 : -1;
  let startTimeSec: number | undefined;
  let baseTimeSec: number | undefined;
  let version: string | undefined;
  const parameters: Record<string, unknown> = {};
  const comments: string[] = [];
  const warnings: string[] = [];
  const raw: RawInterval[] = [];
  const errorComments: ErrorsComment[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const n = i + 1;
    if (line.trim() === '') continue;
    if (line.startsWith('#')) {
      if (line.startsWith('#[StartTime:')) startTimeSec = headerNumber(line) ?? startTimeSec;
      else if (line.startsWith('#[BaseTime:')) baseTimeSec = headerNumber(line) ?? baseTimeSec;
      else if (line.startsWith('#[Histogram log format version ')) version = line.slice('#[Histogram log format version '.length).replace(/\]$/, '').trim();
      else if (line.startsWith('#[Parameters: ') && line.endsWith(']')) {
        try {
          const v: unknown = JSON.parse(line.slice('#[Parameters: '.length, -1));
          if (v !== null && typeof v === 'object' && !Array.isArray(v)) Object.assign(parameters, v);
        } catch {
          comments.push(line.slice(1));
        }
      } else if (line.startsWith('#[Errors: ') && line.endsWith(']')) {
        const e = parseErrors(line.slice('#[Errors: '.length, -1));
        if (e) errorComments.push(e);
        else if (i === cutCandidate) warnings.push(`${name}: the last line is cut (the writer stopped mid-line); read up to it`);
      } else if (i === cutCandidate && line.startsWith('#[Errors: ')) {
        warnings.push(`${name}: the last line is cut (the writer stopped mid-line); read up to it`);
      } else comments.push(line.slice(1));
      continue;
    }
    if (line.startsWith('"StartTimestamp"') || line.startsWith('"Timestamp"')) continue;
    const parsed = parseIntervalLine(line);
    if (typeof parsed === 'string') {
      if (i === cutCandidate) {
        warnings.push(`${name}: the last line (${n}) is cut (the writer stopped mid-line); read up to it`);
        continue;
      }
      throw bad(name, n, parsed);
    }
    raw.push({ line: n, ...parsed });
  }
  // Java's rule: no BaseTime, and timestamps more than a year before StartTime: they are relative to it.
  const first = raw[0];
  const base = baseTimeSec ?? (first !== undefined && startTimeSec !== undefined && first.start < startTimeSec - 365 * 24 * 3600 ? startTimeSec : 0);
  const errorsAt = new Map<string, IntervalErrors>();
  for (const e of errorComments) errorsAt.set(`${e.tag ?? ''}\u0000${e.start.toFixed(3)}`, e.errors);
  const intervals = raw.map(
    (r): LogInterval => ({
      tag: r.tag,
      startMs: (base + r.start) * 1000,
      endMs: (base + r.start + r.length) * 1000,
      encoded: r.encoded,
      get histogram() {
        return decode(r.encoded, r.tag);
      },
      errors: errorsAt.get(`${r.tag ?? ''}\u0000${r.start.toFixed(3)}`) ?? NO_ERRORS,
    }),
  );
  if (intervals.length === 0) warnings.push(`${name}: no intervals in the log`);
  return { name, startTimeMs: startTimeSec !== undefined ? startTimeSec * 1000 : undefined, version, parameters, comments, intervals, warnings };
}

/**
 * Merging interval logs. A log's intervals are split into *sources* (one per log and tag: an
 * agent). Sources whose time spans overlap are one *run* (several agents loading one server at
 * once): their histograms are added, so a run's percentiles are exactly those of one histogram
 * holding every agent's values, and their intervals are added slot by slot on one time grid.
 * Sources that do not overlap are separate runs (to be compared side by side).
 */
import type { Histogram } from 'hdr-histogram-js';
import type { IntervalErrors } from './log-writer.js';
import type { IntervalLog, LogInterval } from './log-reader.js';
import { newLatencyHistogram } from './histogram.js';

/** The intervals of one log with one tag. */
export interface LogSource {
  /** `file` or `file [tag]`. */
  readonly label: string;
  readonly file: string;
  readonly tag: string | undefined;
  readonly parameters: Readonly<Record<string, unknown>>;
  readonly intervals: readonly LogInterval[];
  readonly startMs: number;
  readonly endMs: number;
}

/**
 * What a chart needs of an interval (a log's, or a slot of a run's grid): values in the log's
 * unit, not a histogram, so that a run of hours keeps a few numbers per interval.
 */
export interface IntervalStats {
  readonly startMs: number;
  readonly endMs: number;
  /** Values recorded. */
  readonly count: number;
  /** Percentiles and the largest value (0 when empty), each at most the largest. */
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
  readonly errors: IntervalErrors;
}

/** One slot of a run's time grid: every interval whose middle falls in it, added. */
export type MergedInterval = IntervalStats;

/** A source's own totals and intervals. */
export interface SourceTotals {
  readonly source: LogSource;
  /** Every value of the source. */
  readonly histogram: Histogram;
  readonly errors: IntervalErrors;
  readonly intervals: readonly IntervalStats[];
}

/** Sources that overlap in time, merged. */
export interface MergedRun {
  readonly sources: readonly LogSource[];
  readonly startMs: number;
  readonly endMs: number;
  /** Every value of every source. */
  readonly histogram: Histogram;
  readonly errors: IntervalErrors;
  /** The run on one grid of `stepMs` slots. */
  readonly intervals: readonly MergedInterval[];
  readonly stepMs: number;
  /** Each source on its own, in the order of `sources`. */
  readonly perSource: readonly SourceTotals[];
}

function addCodes(into: Record<string, number>, codes: Readonly<Record<string, number>>): void {
  for (const [k, n] of Object.entries(codes)) into[k] = (into[k] ?? 0) + n;
}

function stats(h: Histogram, startMs: number, endMs: number, errors: IntervalErrors): IntervalStats {
  const n = h.totalCount;
  const at = (p: number): number => (n === 0 ? 0 : Math.min(h.getValueAtPercentile(p), h.maxValue));
  return { startMs, endMs, count: n, p50: at(50), p99: at(99), max: n === 0 ? 0 : h.maxValue, errors };
}

/** Splits logs into sources, one per log and tag, in the order met. */
export function logSources(logs: readonly IntervalLog[]): LogSource[] {
  const out: LogSource[] = [];
  for (const log of logs) {
    const byTag = new Map<string | undefined, LogInterval[]>();
    for (const iv of log.intervals) {
      let list = byTag.get(iv.tag);
      if (!list) byTag.set(iv.tag, (list = []));
      list.push(iv);
    }
    for (const [tag, intervals] of byTag) {
      out.push({
        label: tag === undefined ? log.name : `${log.name} [${tag}]`,
        file: log.name,
        tag,
        parameters: log.parameters,
        intervals,
        startMs: Math.min(...intervals.map((i) => i.startMs)),
        endMs: Math.max(...intervals.map((i) => i.endMs)),
      });
    }
  }
  return out;
}

/** The median interval length of the sources, ms (at least 1): the grid a run is merged on. */
function gridStep(sources: readonly LogSource[]): number {
  const lengths = sources.flatMap((s) => s.intervals.map((i) => i.endMs - i.startMs)).filter((x) => x > 0).sort((a, b) => a - b);
  if (lengths.length === 0) return 1000;
  return Math.max(1, Math.round(lengths[Math.floor(lengths.length / 2)]!));
}

/**
 * Adds the intervals of sources that overlap in time into one run. Each interval is decoded
 * once, slot by slot, so only a handful of histograms are alive at a time: the run's, one per
 * source, and the slot's.
 */
export function mergeSources(sources: readonly LogSource[]): MergedRun {
  const startMs = Math.min(...sources.map((s) => s.startMs));
  const endMs = Math.max(...sources.map((s) => s.endMs));
  const stepMs = gridStep(sources);
  const histogram = newLatencyHistogram();
  const codes: Record<string, number> = {};
  let errors = 0;
  const totals = sources.map(() => ({ h: newLatencyHistogram(), errors: 0, codes: {}, intervals: [] as (IntervalStats & { order: number })[] }));
  // Every interval under the slot holding its middle.
  const bySlot = new Map<number, { s: number; order: number; iv: LogInterval }[]>();
  sources.forEach((src, s) => {
    src.intervals.forEach((iv, order) => {
      const k = Math.max(0, Math.floor(((iv.startMs + iv.endMs) / 2 - startMs) / stepMs));
      let list = bySlot.get(k);
      if (!list) bySlot.set(k, (list = []));
      list.push({ s, order, iv });
    });
  });
  const last = Math.max(0, ...bySlot.keys());
  const intervals: MergedInterval[] = [];
  const slot = newLatencyHistogram();
  // Every slot up to the last that holds an interval, an empty one too (a stall shows as zero,
  // not as a gap bridged); agents that started a little apart leave no empty slot at the end.
  for (let k = 0; k <= last; k++) {
    slot.reset();
    let slotErrors = 0;
    const slotCodes: Record<string, number> = {};
    for (const { s, order, iv } of bySlot.get(k) ?? []) {
      const h = iv.histogram;
      const t = totals[s]!;
      histogram.add(h);
      t.h.add(h);
      slot.add(h);
      t.intervals.push({ ...stats(h, iv.startMs, iv.endMs, iv.errors), order });
      t.errors += iv.errors.count;
      addCodes(t.codes, iv.errors.codes);
      errors += iv.errors.count;
      addCodes(codes, iv.errors.codes);
      slotErrors += iv.errors.count;
      addCodes(slotCodes, iv.errors.codes);
    }
    intervals.push(stats(slot, startMs + k * stepMs, startMs + (k + 1) * stepMs, { count: slotErrors, codes: slotCodes }));
  }
  const perSource = sources.map((source, s): SourceTotals => {
    const t = totals[s]!;
    return { source, histogram: t.h, errors: { count: t.errors, codes: t.codes }, intervals: t.intervals.sort((a, b) => a.order - b.order).map(({ order: _, ...iv }) => iv) };
  });
  return { sources, startMs, endMs, histogram, errors: { count: errors, codes }, intervals, stepMs, perSource };
}

/**
 * Groups sources into runs: sources whose [start, end) spans overlap (directly or through
 * another source) are one run. Runs come in time order.
 */
export function mergeLogs(logs: readonly IntervalLog[]): MergedRun[] {
  const sources = logSources(logs).sort((a, b) => a.startMs - b.startMs);
  const groups: LogSource[][] = [];
  let groupEnd = -Infinity;
  for (const s of sources) {
    const current = groups[groups.length - 1];
    if (current && s.startMs < groupEnd) {
      current.push(s);
      groupEnd = Math.max(groupEnd, s.endMs);
    } else {
      groups.push([s]);
      groupEnd = s.endMs;
    }
  }
  return groups.map(mergeSources);
}

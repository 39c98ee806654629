/**
 * The histograms a report works with: microseconds, 3 significant digits, auto-resizing, pure
 * JavaScript (as `load`'s LatencyRecorder), and their percentiles in milliseconds.
 */
import { build, type Histogram } from 'hdr-histogram-js';
import type { LatencySummary } from '../load/histogram.js';

/** An empty latency histogram of microseconds (1 µs to an hour, growing past it). */
export function newLatencyHistogram(): Histogram {
  return build({ bitBucketSize: 32, lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 3, autoResize: true, useWebAssembly: false });
}

/**
 * The unit of a log's values. The format does not say: socketkit, wrk2 and Cassandra log
 * microseconds, jHiccup and HdrHistogram's Java examples nanoseconds.
 */
export type LogUnit = 'ns' | 'us' | 'ms';

/** Values of each unit per millisecond. */
export const UNITS_PER_MS: Readonly<Record<LogUnit, number>> = { ns: 1_000_000, us: 1000, ms: 1 };

/** The value at `p` percent, ms, clamped to the largest sample (a bucket's top can lie above it). */
export function percentileMs(h: Histogram, p: number, unit: LogUnit = 'us'): number {
  return h.totalCount === 0 ? 0 : Math.min(h.getValueAtPercentile(p), h.maxValue) / UNITS_PER_MS[unit];
}

/** Percentiles of a histogram (of µs unless `unit` says otherwise), in ms: the same figures as `load`'s summary. */
export function summarizeHistogram(h: Histogram, unit: LogUnit = 'us'): LatencySummary {
  if (h.totalCount === 0) return { count: 0, min: 0, mean: 0, p50: 0, p90: 0, p99: 0, p999: 0, max: 0 };
  const per = UNITS_PER_MS[unit];
  return {
    count: h.totalCount,
    min: h.minNonZeroValue / per,
    mean: h.mean / per,
    p50: percentileMs(h, 50, unit),
    p90: percentileMs(h, 90, unit),
    p99: percentileMs(h, 99, unit),
    p999: percentileMs(h, 99.9, unit),
    max: h.maxValue / per,
  };
}

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

/** The value at `p` percent, ms, clamped to the largest sample (a bucket's top can lie above it). */
export function percentileMs(h: Histogram, p: number): number {
  return h.totalCount === 0 ? 0 : Math.min(h.getValueAtPercentile(p), h.maxValue) / 1000;
}

/** Percentiles of a histogram of µs, in ms: the same figures as `load`'s summary. */
export function summarizeHistogram(h: Histogram): LatencySummary {
  if (h.totalCount === 0) return { count: 0, min: 0, mean: 0, p50: 0, p90: 0, p99: 0, p999: 0, max: 0 };
  return {
    count: h.totalCount,
    min: h.minNonZeroValue / 1000,
    mean: h.mean / 1000,
    p50: percentileMs(h, 50),
    p90: percentileMs(h, 90),
    p99: percentileMs(h, 99),
    p999: percentileMs(h, 99.9),
    max: h.maxValue / 1000,
  };
}

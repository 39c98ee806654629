/**
 * Latency histogram: an HDR histogram (hdr-histogram-js, its pure JavaScript build) of
 * microseconds with 3 significant digits, so every percentile is within 0.1 % whatever the
 * range (1 µs to an hour), in constant memory.
 */
import { build, type Histogram } from 'hdr-histogram-js';

/** Latency percentiles, in milliseconds. */
export interface LatencySummary {
  /** Samples recorded. */
  readonly count: number;
  readonly min: number;
  readonly mean: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly p999: number;
  readonly max: number;
}

/** An empty summary (no samples): every figure 0. */
export const EMPTY_LATENCY: LatencySummary = { count: 0, min: 0, mean: 0, p50: 0, p90: 0, p99: 0, p999: 0, max: 0 };

/** Records latencies (ms, sub-microsecond precision dropped) into an HDR histogram. */
export class LatencyRecorder {
  readonly #h: Histogram;

  constructor() {
    // 32-bit counts (2 billion samples per bucket), auto-resizing range; no WebAssembly needed.
    this.#h = build({ bitBucketSize: 32, lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 3, autoResize: true, useWebAssembly: false });
  }

  /** Records one latency in milliseconds. */
  record(ms: number): void {
    this.#h.recordValue(Math.max(1, Math.round(ms * 1000)));
  }

  get count(): number {
    return this.#h.totalCount;
  }

  /** Percentiles so far, in milliseconds. */
  summary(): LatencySummary {
    const h = this.#h;
    if (h.totalCount === 0) return EMPTY_LATENCY;
    // A percentile is reported as the top of its bucket, which can lie above the largest sample: clamp.
    const at = (p: number): number => Math.min(h.getValueAtPercentile(p), h.maxValue) / 1000;
    return {
      count: h.totalCount,
      min: h.minNonZeroValue / 1000,
      mean: h.mean / 1000,
      p50: at(50),
      p90: at(90),
      p99: at(99),
      p999: at(99.9),
      max: h.maxValue / 1000,
    };
  }

  /** Forgets every sample. */
  reset(): void {
    this.#h.reset();
  }
}

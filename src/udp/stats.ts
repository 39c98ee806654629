/**
 * Round-trip time statistics: exact, from every sample.
 *
 * A ping run holds at most MAX_PING_COUNT samples (8 MB of doubles), so there is no need for
 * an approximate histogram: percentiles are read from the sorted samples (nearest rank).
 */

/** Summary of round-trip times, milliseconds. Every field is NaN when there are no samples. */
export interface RttSummary {
  readonly count: number;
  readonly min: number;
  readonly avg: number;
  readonly max: number;
  /** Population standard deviation (as ping(8) reports "mdev"-like spread). */
  readonly stddev: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly p999: number;
}

/** Nearest-rank percentile `p` (0-100] of ascending `sorted`. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  const n = sorted.length;
  if (n === 0) return NaN;
  // The epsilon keeps float error (99.9 / 100 * 1000 = 999.0000000000001) from moving the rank.
  const rank = Math.ceil((p * n) / 100 - 1e-9);
  return sorted[Math.min(n, Math.max(1, rank)) - 1]!;
}

/** Summarises `samples` (not modified). */
export function summarizeRtts(samples: ArrayLike<number>): RttSummary {
  const n = samples.length;
  if (n === 0) return { count: 0, min: NaN, avg: NaN, max: NaN, stddev: NaN, p50: NaN, p90: NaN, p99: NaN, p999: NaN };
  const sorted = Float64Array.from(samples).sort();
  let sum = 0;
  for (let i = 0; i < n; i++) sum += sorted[i]!;
  const avg = sum / n;
  let sq = 0;
  for (let i = 0; i < n; i++) sq += (sorted[i]! - avg) ** 2;
  return {
    count: n,
    min: sorted[0]!,
    avg,
    max: sorted[n - 1]!,
    stddev: Math.sqrt(sq / n),
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
    p999: percentile(sorted, 99.9),
  };
}

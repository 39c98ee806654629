/**
 * A run's summary: the figures `load` prints (round trips, rate, errors by code, p50/p90/p99/
 * p99.9/max), computed from the merged histogram.
 */
import type { LatencySummary } from '../load/histogram.js';
import { summarizeHistogram, type LogUnit } from './histogram.js';
import type { MergedRun } from './merge.js';

export interface RunSummary {
  /** The sources merged (`file` or `file [tag]`). */
  readonly sources: readonly string[];
  /** Start of the earliest interval, ISO time. */
  readonly startTime: string;
  /** From the start of the earliest interval to the end of the last, seconds. */
  readonly seconds: number;
  /** Values recorded (round trips). */
  readonly roundTrips: number;
  readonly roundTripsPerSecond: number;
  readonly errors: number;
  readonly errorCodes: Readonly<Record<string, number>>;
  /** Latency, ms. */
  readonly latency: LatencySummary;
  /** The `#[Parameters: …]` of the sources' logs, merged. */
  readonly parameters: Readonly<Record<string, unknown>>;
}

/** The summary of one merged run; `unit` is that of the logs' values (default µs). */
export function summarizeRun(run: Pick<MergedRun, 'sources' | 'startMs' | 'endMs' | 'histogram' | 'errors'>, unit: LogUnit = 'us'): RunSummary {
  const seconds = Math.max(0, (run.endMs - run.startMs) / 1000);
  const latency = summarizeHistogram(run.histogram, unit);
  const parameters: Record<string, unknown> = {};
  for (const s of run.sources) Object.assign(parameters, s.parameters);
  return {
    sources: run.sources.map((s) => s.label),
    startTime: new Date(run.startMs).toISOString(),
    seconds,
    roundTrips: latency.count,
    roundTripsPerSecond: seconds > 0 ? latency.count / seconds : 0,
    errors: run.errors.count,
    errorCodes: run.errors.codes,
    latency,
    parameters,
  };
}

/**
 * How every listening command (echo-server, serve, receive) shows what the managed server
 * reports beyond its own events: statistics lines and accept failures; and the options they share.
 */
import type { CommandIO, GlobalFlags, OptionSpec, OptionValues } from './command.js';
import type { Reporter } from './report.js';
import { formatBytes, formatCount, formatDuration, formatMs, formatRate } from './format.js';
import { count, duration } from './options.js';
import type { AcceptErrorReport, ServerEvent, ServerStats, StatsRates } from '../server/index.js';

/** One statistics line: `stats: N open, N accepted, N refused, ...`. */
export function serverStatsText(s: ServerStats, r: StatsRates): string {
  const n = formatCount;
  return `stats: ${n(s.connections)} open, ${n(s.accepted)} accepted, ${n(s.refused)} refused${s.acceptErrors ? ` (${n(s.acceptErrors)} out of descriptors)` : ''}, ${n(s.idleClosed)} idle-closed; ${n(r.roundTripsPerSecond)} round trips/s, in ${formatRate(r.bytesInPerSecond)}, out ${formatRate(r.bytesOutPerSecond)}`;
}

/** `(average over 1.53 s)`, or `(average over 1.53 s, stopped)` with a note: what a stopped server's rates are averaged over. */
export function averagedOver(r: StatsRates, note?: string): string {
  return `(average over ${formatDuration(r.seconds * 1000)}${note !== undefined ? `, ${note}` : ''})`;
}

/** The line for one connection event of a managed server (echo-server, broker). */
export function serverEventText(e: ServerEvent): string {
  switch (e.event) {
    case 'connect':
      return `+ ${e.peer} connected (#${e.id}, ${formatCount(e.active)} active)`;
    case 'disconnect':
      return `- ${e.peer} closed (#${e.id}, in ${formatBytes(e.bytesIn)}, out ${formatBytes(e.bytesOut)}, ${formatMs(e.ms)}${e.error ? `, ${e.error}` : ''})`;
    case 'refused':
      return `! ${e.peer} refused: ${e.reason}`;
    case 'idle':
      return `~ ${e.peer} closed: idle for ${formatDuration(e.idleMs)}`;
  }
}

/** `stopping: 3 connection(s) open, waiting up to 5.00 s`. */
export function stoppingText(open: number, graceMs: number, what = 'connection(s) open'): string {
  return `stopping: ${formatCount(open)} ${what}, waiting up to ${formatDuration(graceMs)}`;
}

/** A statistics line asked for with --stats: printed even with -q (which silences per-connection lines). */
export function statsLine(report: Reporter, io: CommandIO, global: GlobalFlags, s: ServerStats, r: StatsRates): void {
  if (global.quiet && !global.json) io.stderr.write(`${serverStatsText(s, r)}\n`);
  else report.event('stats', { ...s, ...r }, serverStatsText(s, r));
}

/** The line for connections lost to accept failures: `! out of file descriptors ...: N connection(s) closed unserved (CODE)`. */
export function acceptErrorText(e: AcceptErrorReport): string {
  return `! ${e.message}: ${formatCount(e.count)} connection(s) closed unserved (${e.code})`;
}

/**
 * Connections lost to accept failures (out of descriptors), already rate-limited by the server:
 * one coded line, printed even with -q (it says the server is failing, not who connected).
 */
export function acceptErrorLine(report: Reporter, io: CommandIO, global: GlobalFlags, e: AcceptErrorReport): void {
  const text = acceptErrorText(e);
  if (global.quiet && !global.json) io.stderr.write(`${text}\n`);
  else report.event('accept-error', { code: e.code, message: e.message, count: e.count }, text);
}

/** The shortest --stats interval, ms (a smaller one is raised to it: statistics, not a busy loop). */
export const MIN_STATS_INTERVAL_MS = 100;

/**
 * The managed server's own options, one spec for every listening command that runs on it
 * (echo-server, serve, receive). None has a default: not given, the feature is off.
 */
export const MANAGED_SERVER_OPTIONS = {
  'max-conns': count('serve at most N connections at once (with --workers, split evenly between them); more are refused: closed, counted, logged'),
  'idle-timeout': duration(
    'close connections with no byte in or out for this long (slowloris); a transfer that reads or writes its files, or waits on its disk, is not idle',
  ),
  stats: duration('print statistics this often (they are always printed at exit)'),
} as const satisfies Readonly<Record<string, OptionSpec>>;

/** What {@link MANAGED_SERVER_OPTIONS} ask for (undefined: not given). */
export interface ManagedServerValues {
  readonly maxConnections: number | undefined;
  /** 0 (or undefined) is no idle timeout. */
  readonly idleTimeoutMs: number | undefined;
  /** At least {@link MIN_STATS_INTERVAL_MS}. */
  readonly statsIntervalMs: number | undefined;
}

/**
 * The managed server's settings from a command's typed values of {@link MANAGED_SERVER_OPTIONS}
 * (or options of the same names and types): the --stats interval raised to its minimum.
 */
export function managedServerValues(values: OptionValues<typeof MANAGED_SERVER_OPTIONS>): ManagedServerValues {
  const stats = values.stats;
  return {
    maxConnections: values['max-conns'],
    idleTimeoutMs: values['idle-timeout'],
    statsIntervalMs: stats !== undefined ? Math.max(MIN_STATS_INTERVAL_MS, stats) : undefined,
  };
}

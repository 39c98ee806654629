/**
 * How every listening command (echo-server, serve, receive) shows what the managed server
 * reports beyond its own events: statistics lines and accept failures.
 */
import type { CommandIO, GlobalFlags } from './command.js';
import type { Reporter } from './report.js';
import { formatBytes } from './report.js';
import type { AcceptErrorReport, ServerStats, StatsRates } from '../server/index.js';

/** One statistics line: `stats: N open, N accepted, N refused, ...`. */
export function serverStatsText(s: ServerStats, r: StatsRates): string {
  const n = (x: number): string => Math.round(x).toLocaleString('en-US');
  return `stats: ${n(s.connections)} open, ${n(s.accepted)} accepted, ${n(s.refused)} refused${s.acceptErrors ? ` (${n(s.acceptErrors)} out of descriptors)` : ''}, ${n(s.idleClosed)} idle-closed; ${n(r.roundTripsPerSecond)} round trips/s, in ${formatBytes(Math.round(r.bytesInPerSecond))}/s, out ${formatBytes(Math.round(r.bytesOutPerSecond))}/s`;
}

/** A statistics line asked for with --stats: printed even with -q (which silences per-connection lines). */
export function statsLine(report: Reporter, io: CommandIO, global: GlobalFlags, s: ServerStats, r: StatsRates): void {
  if (global.quiet && !global.json) io.stderr.write(`${serverStatsText(s, r)}\n`);
  else report.event('stats', { ...s, ...r }, serverStatsText(s, r));
}

/**
 * Connections lost to accept failures (out of descriptors), already rate-limited by the server:
 * one coded line, printed even with -q (it says the server is failing, not who connected).
 */
export function acceptErrorLine(report: Reporter, io: CommandIO, global: GlobalFlags, e: AcceptErrorReport): void {
  const text = `! ${e.message}: ${e.count.toLocaleString('en-US')} connection(s) closed unserved (${e.code})`;
  if (global.quiet && !global.json) io.stderr.write(`${text}\n`);
  else report.event('accept-error', { code: e.code, message: e.message, count: e.count }, text);
}

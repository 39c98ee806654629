/**
 * Tour step: the hardened echo server under a short multi-connection load: 200 connections in
 * closed loop, an open-loop run at a fixed rate, and the connection limit refusing newcomers
 * while the admitted connections keep being served.
 */
import type { TourStep } from './tour.js';
import { formatEndpoint } from '../net/endpoint.js';
import { formatMs } from '../cli/report.js';
import { startManagedEchoServer } from '../server/index.js';
import { runLoad, type LoadResult } from '../load/index.js';

function line(r: LoadResult): string {
  const l = r.latency;
  const n = (x: number): string => Math.round(x).toLocaleString('en-US');
  const latency = l.count === 0 ? 'no replies' : `p50 ${formatMs(l.p50)}, p99 ${formatMs(l.p99)}, max ${formatMs(l.max)}`;
  const lost = r.failed + r.unsent > 0 ? ` (${n(r.failed)} requests failed, ${n(r.unsent)} unsent)` : '';
  return `${n(r.roundTrips)} round trips (${n(r.roundTripsPerSecond)}/s), ${r.errors} errors${lost}, ${latency}`;
}

export const loadStep: TourStep = {
  title: 'Load: many connections against the hardened echo server, closed and open loop, and its connection limit',
  async run({ row, signal }) {
    const server = await startManagedEchoServer({ kind: 'inet', host: '127.0.0.1', port: 0 }, { idleTimeoutMs: 30_000 });
    try {
      const where = formatEndpoint(server.endpoint);
      const closed = await runLoad(server.endpoint, { connections: 200, size: 64, durationMs: 700, signal });
      row(where, `200 connections, 64 B, closed loop: ${line(closed)}`);
      const open = await runLoad(server.endpoint, { connections: 20, size: 4096, rate: 2000, durationMs: 500, signal });
      row('', `20 connections, 4 KiB, open loop at 2,000/s: ${line(open)}`);
      if (signal.aborted) return;
      if (closed.errors + open.errors + open.unsent > 0) throw new Error('the load saw errors');
    } finally {
      await server.close();
    }
    const limited = await startManagedEchoServer({ kind: 'inet', host: '127.0.0.1', port: 0 }, { maxConnections: 10 });
    try {
      const r = await runLoad(limited.endpoint, { connections: 15, size: 64, durationMs: 300, signal });
      const s = limited.stats();
      row(formatEndpoint(limited.endpoint), `--max-conns 10, 15 clients: ${s.refused} refused, ${r.connected} served: ${line(r)}`);
      if (s.refused !== 5 || r.connected !== 10 || r.roundTrips === 0) throw new Error('the connection limit did not hold');
    } finally {
      await limited.close();
    }
  },
};

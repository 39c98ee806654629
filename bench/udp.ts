/**
 * UDP ping-pong over loopback: round trips per second and RTT percentiles for 64 B and 1400 B
 * datagrams, against socketkit's UDP echo server on both engines (native: recvmmsg/sendmmsg on an
 * engine thread; js: Node's dgram), a C recvfrom/sendto loop (`bench/c/udp_echo_server.c`) and one
 * in Python (`bench/python/udp_echo_server.py`), in interleaved rounds, medians kept. Each server runs in its own process, so the client (this
 * process, running `ping` with interval 0: one datagram in flight, the next sent when its reply
 * arrives) never shares an event loop with the server it measures. Every round trip is two
 * datagrams, one each way.
 *
 * Run: `node dist/bench/udp.js` (or as part of `npm run bench`).
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ping } from '../src/udp/ping.js';
import type { InetEndpoint } from '../src/net/endpoint.js';
import { startServer, type ServerSpec } from './servers.js';

/** One measured configuration. */
export interface UdpBenchRow {
  readonly server: string;
  readonly payloadBytes: number;
  readonly roundTrips: number;
  readonly seconds: number;
  readonly roundTripsPerSecond: number;
  /** Datagrams per second through the server (each round trip is one in, one out). */
  readonly datagramsPerSecond: number;
  readonly lossPercent: number;
  /** RTT percentiles, microseconds. */
  readonly p50us: number;
  readonly p90us: number;
  readonly p99us: number;
  readonly p999us: number;
}

export interface UdpBenchResult {
  readonly name: 'udp';
  readonly rows: readonly UdpBenchRow[];
}

export interface UdpBenchOptions {
  /** Milliseconds per row, after a short warm-up. Default 2000. */
  readonly durationMs?: number;
  readonly log?: (line: string) => void;
}

const PAYLOAD_SIZES = [64, 1400] as const;
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

const SERVERS: readonly ServerSpec[] = [
  {
    name: 'socketkit --engine native',
    cmd: process.execPath,
    args: [`${ROOT}bin/socketkit.js`, 'echo-server', '--udp', '127.0.0.1:0', '--json', '-q', '--engine', 'native'],
    port: /"address":"127\.0\.0\.1:(\d+)"/,
  },
  {
    name: 'socketkit --engine js',
    cmd: process.execPath,
    args: [`${ROOT}bin/socketkit.js`, 'echo-server', '--udp', '127.0.0.1:0', '--json', '-q', '--engine', 'js'],
    port: /"address":"127\.0\.0\.1:(\d+)"/,
  },
  { name: 'C recvfrom/sendto', cmd: `${ROOT}bench/c/bin/udp_echo_server`, args: ['0', '127.0.0.1'], port: /listening on (\d+)/ },
  {
    name: 'python3 recvfrom/sendto',
    cmd: 'python3',
    args: [`${ROOT}bench/python/udp_echo_server.py`, '127.0.0.1', '0'],
    port: /listening on (\d+)/,
  },
];

/** Rounds of every server in turn (interleaved, so a busy moment on a shared machine hits all); the median is kept. */
const ROUNDS = Number(process.env['SOCKETKIT_BENCH_UDP_ROUNDS'] ?? 3);

/** Starts a server process and resolves with its port once it says it is listening. */
async function measure(server: string, ep: InetEndpoint, size: number, durationMs: number): Promise<UdpBenchRow> {
  // Warm-up (JIT, ARP-free loopback caches, the server's first-peer path), not counted.
  await ping(ep, { count: 0, intervalMs: 0, size, timeoutMs: 1000, signal: AbortSignal.timeout(Math.min(300, durationMs / 4)) });
  const s = await ping(ep, { count: 0, intervalMs: 0, size, timeoutMs: 1000, signal: AbortSignal.timeout(durationMs) });
  if (s.received === 0) throw new Error(`no replies from ${server}`);
  const seconds = s.elapsedMs / 1000;
  const us = (ms: number): number => Math.round(ms * 1000);
  return {
    server,
    payloadBytes: size,
    roundTrips: s.received,
    seconds,
    roundTripsPerSecond: s.received / seconds,
    datagramsPerSecond: (2 * s.received) / seconds,
    // The probe in flight when the clock stops counts as sent and unanswered: not a loss.
    lossPercent: s.sent > 1 ? ((s.sent - 1 - s.received) / (s.sent - 1)) * 100 : 0,
    p50us: us(s.rtt.p50),
    p90us: us(s.rtt.p90),
    p99us: us(s.rtt.p99),
    p999us: us(s.rtt.p999),
  };
}

/**
 * Measures UDP ping-pong against each server and prints a table.
 *
 * @returns One row per server and payload size.
 */
export async function benchUdp(options: UdpBenchOptions = {}): Promise<UdpBenchResult> {
  const durationMs = options.durationMs ?? 2000;
  const log = options.log ?? ((line: string) => console.log(line));
  const rows: UdpBenchRow[] = [];
  const haveC = spawnSync('make', ['-s', '-C', `${ROOT}bench/c`]).status === 0;
  const servers = SERVERS.filter((s) => haveC || !s.cmd.includes('bench/c/'));
  const samples = new Map<string, UdpBenchRow[]>();
  for (let round = 0; round < ROUNDS; round++) {
    for (const spec of servers) {
      const server = await startServer(spec);
      try {
        const ep: InetEndpoint = { kind: 'inet', host: '127.0.0.1', port: server.port };
        for (const size of PAYLOAD_SIZES) {
          const key = `${spec.name}|${size}`;
          samples.set(key, [...(samples.get(key) ?? []), await measure(spec.name, ep, size, durationMs)]);
        }
      } finally {
        await server.stop();
      }
    }
  }
  for (const spec of servers) {
    for (const size of PAYLOAD_SIZES) {
      const runs = [...(samples.get(`${spec.name}|${size}`) ?? [])].sort((a, b) => a.roundTripsPerSecond - b.roundTripsPerSecond);
      const median = runs[Math.floor(runs.length / 2)];
      if (median) rows.push(median);
    }
  }
  log('UDP ping-pong over loopback (one datagram in flight; client: socketkit ping -i 0)');
  log(
    `${'server'.padEnd(30)}${'payload'.padStart(8)}${'round trips/s'.padStart(15)}${'datagrams/s'.padStart(13)}` +
      `${'p50 µs'.padStart(8)}${'p90 µs'.padStart(8)}${'p99 µs'.padStart(8)}${'p99.9 µs'.padStart(10)}${'loss'.padStart(7)}`,
  );
  for (const r of rows) {
    log(
      `${r.server.padEnd(30)}${`${r.payloadBytes} B`.padStart(8)}${Math.round(r.roundTripsPerSecond).toLocaleString('en-US').padStart(15)}` +
        `${Math.round(r.datagramsPerSecond).toLocaleString('en-US').padStart(13)}${String(r.p50us).padStart(8)}${String(r.p90us).padStart(8)}` +
        `${String(r.p99us).padStart(8)}${String(r.p999us).padStart(10)}${`${r.lossPercent.toFixed(1)}%`.padStart(7)}`,
    );
  }
  const rate = (server: string, size: number): number => rows.find((r) => r.server === server && r.payloadBytes === size)?.roundTripsPerSecond ?? NaN;
  log(`medians of ${ROUNDS} interleaved rounds; native engine over the C echo (goal >= 0.9x) and over the js engine:`);
  for (const size of PAYLOAD_SIZES) {
    const n = rate('socketkit --engine native', size);
    log(`  ${size} B: ${(n / rate('C recvfrom/sendto', size)).toFixed(2)}x C, ${(n / rate('socketkit --engine js', size)).toFixed(2)}x js`);
  }
  return { name: 'udp', rows };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await benchUdp();
}

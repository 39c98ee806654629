/**
 * Throughput on loopback: `socketkit perf` against `socketkit perf-server` beside `iperf3 -c`
 * against `iperf3 -s`, in one run: TCP with 1 and 4 streams, with and without -Z (sendfile) on
 * both, and UDP at 1 Gbit/s with 1400-byte datagrams (the rate achieved as received, and loss).
 * Every client and server is its own process; rows run one after another. A benchmark, not a
 * test: the figures depend on the machine and on what else runs on it.
 *
 * Run: `node dist/bench/perf.js` (or `npm run bench` with SOCKETKIT_BENCH_ONLY=perf).
 * SOCKETKIT_BENCH_PERF_SECONDS sets the seconds per row (default 5).
 */
import { spawn } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createServer } from 'node:net';
import { startServer, type RunningServer } from './servers.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = `${ROOT}bin/socketkit.js`;

export interface PerfBenchRow {
  readonly tool: 'socketkit' | 'iperf3';
  readonly test: string;
  readonly bitsPerSecond: number;
  /** UDP: datagrams lost, percent. */
  readonly lossPercent?: number;
  readonly jitterMs?: number;
}

export interface PerfBenchResult {
  readonly name: 'perf';
  readonly rows: readonly PerfBenchRow[];
}

function runJson(cmd: string, args: readonly string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, [...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${err.trim().split('\n').at(-1) ?? ''}${out.slice(-300)}`));
    });
  });
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

interface Case {
  readonly test: string;
  readonly sk: readonly string[];
  readonly iperf: readonly string[];
  readonly udp?: boolean;
}

const CASES: readonly Case[] = [
  { test: 'TCP, 1 stream', sk: [], iperf: [] },
  { test: 'TCP, 1 stream, -Z', sk: ['-Z'], iperf: ['-Z'] },
  { test: 'TCP, 4 streams', sk: ['-P', '4'], iperf: ['-P', '4'] },
  { test: 'TCP, 4 streams, -Z', sk: ['-P', '4', '-Z'], iperf: ['-P', '4', '-Z'] },
  { test: 'UDP 1 Gbit/s, 1400 B', sk: ['--udp', '-b', '1G', '-l', '1400'], iperf: ['-u', '-b', '1G', '-l', '1400'], udp: true },
];

function fmt(bps: number): string {
  return `${(bps / 1e9).toFixed(2)} Gbit/s`;
}

export async function benchPerf(options: { readonly seconds?: number; readonly log?: (l: string) => void } = {}): Promise<PerfBenchResult> {
  const seconds = options.seconds ?? Number(process.env['SOCKETKIT_BENCH_PERF_SECONDS'] ?? 5);
  const log = options.log ?? ((l: string) => console.log(l));
  const rows: PerfBenchRow[] = [];
  const pacingNotes: string[] = [];
  const sk = await startServer({ name: 'perf-server', cmd: process.execPath, args: [CLI, 'perf-server', '127.0.0.1:0', '--json', '-q'], port: /"address":"127\.0\.0\.1:(\d+)"/ });
  const iperfPort = await freePort();
  let iperf: RunningServer | undefined;
  try {
    iperf = await startServer({ name: 'iperf3 -s', cmd: 'iperf3', args: ['-s', '-p', String(iperfPort), '--forceflush'], port: /Server listening on (\d+)/ });
  } catch (err) {
    log(`iperf3 not run: ${err instanceof Error ? err.message : String(err)} (apt-get install -y iperf3)`);
  }
  try {
    log(`${seconds} s per row, loopback; socketkit's rate is its summary's bitsPerSecond (as received), iperf3's its end.sum_received (TCP) or end.sum (UDP)`);
    log('');
    log(`| test | socketkit perf | iperf3 | socketkit / iperf3 |`);
    log(`|---|---|---|---|`);
    for (const c of CASES) {
      const out = await runJson(process.execPath, [CLI, 'perf', `127.0.0.1:${sk.port}`, '-t', String(seconds), '-i', '0', '--json', ...c.sk], (seconds + 30) * 1000);
      const summary = JSON.parse(out.trim().split('\n').at(-1)!) as {
        bitsPerSecond: number;
        received: { udp?: { lost: number; sent?: number; jitterMs: number } }[];
        pacing?: { lateP50Us: number; lateP99Us: number; maxBurst: number; slips: number }[];
      };
      const pace = summary.pacing?.[0];
      if (pace) pacingNotes.push(`socketkit ${c.test}: datagrams late by ${pace.lateP50Us} µs (median), ${pace.lateP99Us} µs (99th); at most ${pace.maxBurst} in one turn; ${pace.slips} slip(s)`);
      const u = summary.received[0]?.udp;
      const skRow: PerfBenchRow = {
        tool: 'socketkit',
        test: c.test,
        bitsPerSecond: summary.bitsPerSecond,
        ...(u ? { lossPercent: (100 * u.lost) / Math.max(1, u.sent ?? 1), jitterMs: u.jitterMs } : {}),
      };
      rows.push(skRow);
      let ipRow: PerfBenchRow | undefined;
      if (iperf) {
        try {
          const j = JSON.parse(await runJson('iperf3', ['-c', '127.0.0.1', '-p', String(iperf.port), '-t', String(seconds), '-J', ...c.iperf], (seconds + 30) * 1000)) as {
            end: { sum_received?: { bits_per_second: number }; sum?: { bits_per_second: number; lost_percent?: number; jitter_ms?: number } };
          };
          const sum = c.udp ? j.end.sum : (j.end.sum_received ?? j.end.sum);
          ipRow = { tool: 'iperf3', test: c.test, bitsPerSecond: sum?.bits_per_second ?? 0, ...(c.udp ? { lossPercent: j.end.sum?.lost_percent ?? 0, jitterMs: j.end.sum?.jitter_ms ?? 0 } : {}) };
          rows.push(ipRow);
        } catch (err) {
          log(`iperf3 ${c.test}: ${err instanceof Error ? err.message : String(err)}`);
        }
      }
      const cell = (r: PerfBenchRow | undefined): string => (r ? `${fmt(r.bitsPerSecond)}${r.lossPercent !== undefined ? `, ${r.lossPercent.toFixed(2)} % lost, jitter ${r.jitterMs!.toFixed(3)} ms` : ''}` : '-');
      log(`| ${c.test} | ${cell(skRow)} | ${cell(ipRow)} | ${ipRow ? `${(skRow.bitsPerSecond / ipRow.bitsPerSecond).toFixed(2)}x` : '-'} |`);
    }
    for (const n of pacingNotes) log(n);
  } finally {
    await sk.stop();
    await iperf?.stop();
  }
  return { name: 'perf', rows };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await benchPerf();
}

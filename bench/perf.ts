/**
 * Throughput on loopback: `socketkit perf` against `socketkit perf-server` beside `iperf3 -c`
 * against `iperf3 -s`, in one run: TCP with 1 and 4 streams, with and without -Z (sendfile) on
 * both, and UDP at 1 Gbit/s with 1400-byte datagrams (the rate achieved as received, and loss).
 * Every client and server is its own process. Rounds are interleaved: each round runs every case
 * with both tools, which tool goes first alternating from round to round, so a change in the
 * machine's load falls on both. The table gives each tool's median over the rounds, the spread
 * (fastest / slowest round), and the median of the per-round ratios (paired: the two tools of a
 * round ran within seconds of each other). A benchmark, not a test: the figures depend on the
 * machine and on what else runs on it.
 *
 * Run: `node dist/bench/perf.js` (or `npm run bench` with SOCKETKIT_BENCH_ONLY=perf).
 * SOCKETKIT_BENCH_PERF_SECONDS: seconds per run (default 3); SOCKETKIT_BENCH_PERF_ROUNDS: rounds (default 3);
 * SOCKETKIT_BENCH_PERF_CASES: only the cases whose name holds this text (e.g. `UDP`).
 */
import { fileURLToPath, pathToFileURL } from 'node:url';
import { startServer, type RunningServer } from './servers.js';
import { freePort, runToEnd } from './processes.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = `${ROOT}bin/socketkit.js`;

export interface PerfBenchRun {
  readonly bitsPerSecond: number;
  /** UDP: datagrams lost, percent. */
  readonly lossPercent?: number;
  readonly jitterMs?: number;
}

export interface PerfBenchRow {
  readonly test: string;
  readonly socketkit: readonly PerfBenchRun[];
  readonly iperf3: readonly PerfBenchRun[];
  /** Median of the rounds' socketkit / iperf3 rate ratios. */
  readonly ratio: number;
}

export interface PerfBenchResult {
  readonly name: 'perf';
  readonly rows: readonly PerfBenchRow[];
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

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function gbit(bps: number): string {
  return `${(bps / 1e9).toFixed(2)} Gbit/s`;
}

function cell(runs: readonly PerfBenchRun[]): string {
  if (runs.length === 0) return '-';
  const rates = runs.map((r) => r.bitsPerSecond);
  const spread = Math.max(...rates) / Math.max(1, Math.min(...rates));
  const loss = runs[0]!.lossPercent !== undefined ? `, lost ${median(runs.map((r) => r.lossPercent!)).toFixed(2)} % (${runs.map((r) => r.lossPercent!.toFixed(2)).join('/')})` : '';
  return `${gbit(median(rates))} (spread ${spread.toFixed(2)}x)${loss}`;
}

export async function benchPerf(options: { readonly seconds?: number; readonly rounds?: number; readonly log?: (l: string) => void } = {}): Promise<PerfBenchResult> {
  const seconds = options.seconds ?? Number(process.env['SOCKETKIT_BENCH_PERF_SECONDS'] ?? 3);
  const rounds = options.rounds ?? Number(process.env['SOCKETKIT_BENCH_PERF_ROUNDS'] ?? 3);
  const log = options.log ?? ((l: string) => console.log(l));
  const sk = await startServer({ name: 'perf-server', cmd: process.execPath, args: [CLI, 'perf-server', '127.0.0.1:0', '--json', '-q'], port: /"address":"127\.0\.0\.1:(\d+)"/ });
  const iperfPort = await freePort();
  let iperf: RunningServer | undefined;
  try {
    iperf = await startServer({ name: 'iperf3 -s', cmd: 'iperf3', args: ['-s', '-p', String(iperfPort), '--forceflush'], port: /Server listening on (\d+)/ });
  } catch (err) {
    log(`iperf3 not run: ${err instanceof Error ? err.message : String(err)} (apt-get install -y iperf3)`);
  }
  const only = process.env['SOCKETKIT_BENCH_PERF_CASES'];
  const cases = only ? CASES.filter((c) => c.test.toLowerCase().includes(only.toLowerCase())) : CASES;
  const results = cases.map(() => ({ socketkit: [] as PerfBenchRun[], iperf3: [] as PerfBenchRun[], ratios: [] as number[] }));
  const pacing: string[] = [];
  const runSk = async (c: Case): Promise<PerfBenchRun> => {
    const out = await runToEnd(process.execPath, [CLI, 'perf', `127.0.0.1:${sk.port}`, '-t', String(seconds), '-i', '0', '--json', ...c.sk], (seconds + 30) * 1000);
    const summary = JSON.parse(out.trim().split('\n').at(-1)!) as {
      bitsPerSecond: number;
      received: { udp?: { lost: number; sent?: number; jitterMs: number } }[];
      pacing?: { pacer: string; gapP1Us: number; gapP50Us: number; gapP99Us: number; lateP50Us: number; lateP99Us: number; maxBurst: number }[];
    };
    const p = summary.pacing?.[0];
    if (p) pacing.push(`${p.pacer}: gaps ${p.gapP1Us}/${p.gapP50Us}/${p.gapP99Us} µs (1st/median/99th), late ${p.lateP50Us}/${p.lateP99Us} µs (median/99th), longest burst ${p.maxBurst}`);
    const u = summary.received[0]?.udp;
    return { bitsPerSecond: summary.bitsPerSecond, ...(u ? { lossPercent: (100 * u.lost) / Math.max(1, u.sent ?? 1), jitterMs: u.jitterMs } : {}) };
  };
  const runIperf = async (c: Case, port: number): Promise<PerfBenchRun> => {
    const j = JSON.parse(await runToEnd('iperf3', ['-c', '127.0.0.1', '-p', String(port), '-t', String(seconds), '-J', ...c.iperf], (seconds + 30) * 1000)) as {
      end: { sum_received?: { bits_per_second: number }; sum?: { bits_per_second: number; lost_percent?: number; jitter_ms?: number } };
    };
    // The rate as received (end.sum_received; for UDP end.sum is the sender's rate); UDP's loss and jitter are in end.sum, from the receiver's report.
    const sum = j.end.sum_received ?? j.end.sum;
    return { bitsPerSecond: sum?.bits_per_second ?? 0, ...(c.udp ? { lossPercent: j.end.sum?.lost_percent ?? 0, jitterMs: j.end.sum?.jitter_ms ?? 0 } : {}) };
  };
  try {
    log(`${seconds} s per run, ${rounds} interleaved rounds, loopback; socketkit's rate is its summary's bitsPerSecond (as received), iperf3's its end.sum_received`);
    for (let round = 0; round < rounds; round++) {
      for (const [i, c] of cases.entries()) {
        const skFirst = (round + i) % 2 === 0;
        let a: PerfBenchRun | undefined;
        let b: PerfBenchRun | undefined;
        for (const tool of skFirst ? ['socketkit', 'iperf3'] : ['iperf3', 'socketkit']) {
          try {
            if (tool === 'socketkit') a = await runSk(c);
            else if (iperf) b = await runIperf(c, iperf.port);
          } catch (err) {
            log(`${tool} ${c.test}, round ${round + 1}: ${err instanceof Error ? err.message : String(err)}`);
          }
        }
        if (a) results[i]!.socketkit.push(a);
        if (b) results[i]!.iperf3.push(b);
        if (a && b && b.bitsPerSecond > 0) results[i]!.ratios.push(a.bitsPerSecond / b.bitsPerSecond);
      }
    }
    log('');
    log('| test | socketkit perf | iperf3 | socketkit / iperf3 |');
    log('|---|---|---|---|');
    const rows: PerfBenchRow[] = cases.map((c, i) => {
      const r = results[i]!;
      const row: PerfBenchRow = { test: c.test, socketkit: r.socketkit, iperf3: r.iperf3, ratio: r.ratios.length ? median(r.ratios) : NaN };
      log(`| ${c.test} | ${cell(r.socketkit)} | ${cell(r.iperf3)} | ${Number.isFinite(row.ratio) ? `${row.ratio.toFixed(2)}x` : '-'} |`);
      return row;
    });
    log('(median of the rounds; spread: fastest / slowest round; ratio: median of the rounds\' ratios; UDP: rate as received, lost as the receiver counted, per round in brackets)');
    for (const p of pacing) log(`socketkit UDP pacing, ${p}`);
    return { name: 'perf', rows };
  } finally {
    await sk.stop();
    await iperf?.stop();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await benchPerf();
}

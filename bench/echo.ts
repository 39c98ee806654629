/**
 * Echo servers compared on loopback, side by side in one run: socketkit's echo server (on the
 * native engine and on the js engine, `--engine native|js`) against a
 * C epoll server (`bench/c/epoll_echo_server.c`) and a Python selectors server in the classic
 * tutorial's style (`bench/python/selectors_echo_server.py`), and beside the least a Node echo
 * server can be (`bench/node/net_echo_server.js`: what Node itself costs) and one below `net`,
 * on Node's internal libuv handles (`bench/node/libuv_echo_server.js`, not an API to ship: it
 * shows how far down Node goes), each driven by the same two
 * closed-loop clients: a small C client (`bench/c/echo_client.c`, so the client is never the
 * bottleneck) and `socketkit load`. Every combination of C = 1, 100, 1000 connections and
 * S = 64, 4096 bytes; server and client pinned to different cores with taskset.
 *
 * Then the idle cost: the server's resident memory (RSS, from /proc) before and after a separate
 * process opens N idle connections (10,000 by default), and its CPU use while they stay idle.
 *
 * Every server and client is its own process. Each cell starts a fresh server. The machine this
 * runs on may be shared, and other work only ever slows a run down, so each cell is measured
 * several times (the servers taking turns) and the best run is kept.
 *
 * Run: `node dist/bench/echo.js` (or as part of `npm run bench`; `make -C bench/c` is run
 * first). Environment:
 * - SOCKETKIT_BENCH_ECHO_SECONDS: seconds per run (default 1).
 * - SOCKETKIT_BENCH_ECHO_REPEATS: runs per cell, the best kept (default 3).
 * - SOCKETKIT_BENCH_ECHO_IDLE: idle connections to measure (default 10000; 0 skips).
 * - SOCKETKIT_BENCH_ECHO_CONNECTIONS / _SIZES: comma-separated lists to run a subset.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { startServer, type ServerSpec } from './servers.js';
import { loadFinished, pinned, runToEnd } from './processes.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const C_DIR = `${ROOT}bench/c`;
const C_BIN = `${C_DIR}/bin`;

export type ServerName = 'socketkit-native' | 'socketkit-js' | 'node-net' | 'node-libuv' | 'c-epoll' | 'python-selectors';
export type ClientName = 'c-client' | 'socketkit-load';

/** One measured cell. */
export interface EchoBenchRow {
  readonly server: ServerName;
  readonly client: ClientName;
  readonly connections: number;
  readonly size: number;
  readonly roundTripsPerSecond: number;
  readonly p50us: number;
  readonly p99us: number;
  readonly errors: number;
  /** The server's CPU use during the run, percent of one core (user + system). */
  readonly serverCpuPercent: number;
}

/** socketkit's throughput over a reference's, per engine, client and cell. */
export interface EchoBenchRatio {
  readonly engine: 'native' | 'js';
  readonly client: ClientName;
  readonly connections: number;
  readonly size: number;
  /** socketkit / C epoll (goal, native engine: >= 0.9). */
  readonly vsC: number;
  /** socketkit / Python selectors (goal >= 1.1). */
  readonly vsPython: number;
  /** socketkit / the bare Node `net` echo (what Node itself allows; no goal). */
  readonly vsNode: number;
}

/** The idle cost of one server. */
export interface IdleRow {
  readonly server: ServerName;
  readonly connections: number;
  /** Seconds to open them all (batches of 100, each connection confirmed by a 1-byte echo). */
  readonly openSeconds: number;
  readonly rssBefore: number;
  /** RSS 1 s after the last connection opened. */
  readonly rssOpen: number;
  /** RSS after the server has been idle a while (socketkit: 15 s more, after its heap compaction). */
  readonly rssSettled: number;
  readonly bytesPerConnectionOpen: number;
  readonly bytesPerConnectionSettled: number;
  /** CPU use of the server while the connections are idle, percent of one core. */
  readonly idleCpuPercent: number;
}

export interface EchoBenchResult {
  readonly name: 'echo';
  readonly pinned: boolean;
  readonly rows: readonly EchoBenchRow[];
  readonly ratios: readonly EchoBenchRatio[];
  readonly idle: readonly IdleRow[];
}

export interface EchoBenchOptions {
  /** Milliseconds per run. Default 1000 (SOCKETKIT_BENCH_ECHO_SECONDS). */
  readonly durationMs?: number;
  /** Runs per cell; the best is kept. Default 3 (SOCKETKIT_BENCH_ECHO_REPEATS). */
  readonly repeats?: number;
  readonly connections?: readonly number[];
  readonly sizes?: readonly number[];
  /** Idle connections for the memory figure; 0 skips it. Default 10,000 (SOCKETKIT_BENCH_ECHO_IDLE). */
  readonly idleConnections?: number;
  readonly log?: (line: string) => void;
}

const SERVERS: ReadonlyArray<ServerSpec<ServerName>> = [
  {
    name: 'socketkit-native',
    cmd: process.execPath,
    args: [`${ROOT}bin/socketkit.js`, 'echo-server', '127.0.0.1:0', '--json', '-q', '--engine', 'native'],
    port: /"address":"127\.0\.0\.1:(\d+)"/,
  },
  {
    name: 'socketkit-js',
    cmd: process.execPath,
    args: [`${ROOT}bin/socketkit.js`, 'echo-server', '127.0.0.1:0', '--json', '-q', '--engine', 'js'],
    port: /"address":"127\.0\.0\.1:(\d+)"/,
  },
  { name: 'node-net', cmd: process.execPath, args: [`${ROOT}bench/node/net_echo_server.js`, '127.0.0.1', '0'], port: /listening on (\d+)/ },
  { name: 'node-libuv', cmd: process.execPath, args: [`${ROOT}bench/node/libuv_echo_server.js`, '127.0.0.1', '0'], port: /listening on (\d+)/ },
  { name: 'c-epoll', cmd: `${C_BIN}/epoll_echo_server`, args: ['0', '127.0.0.1'], port: /listening on (\d+)/ },
  { name: 'python-selectors', cmd: 'python3', args: [`${ROOT}bench/python/selectors_echo_server.py`, '127.0.0.1', '0'], port: /listening on (\d+)/ },
];

async function measure(client: ClientName, port: number, connections: number, size: number, seconds: number, core: number | undefined): Promise<Omit<EchoBenchRow, 'server' | 'client' | 'connections' | 'size' | 'serverCpuPercent'>> {
  const timeoutMs = seconds * 1000 + 60_000;
  if (client === 'c-client') {
    const p = pinned(core, `${C_BIN}/echo_client`, ['127.0.0.1', String(port), String(connections), String(size), String(seconds)]);
    const j = JSON.parse((await runToEnd(p.cmd, p.args, timeoutMs, loadFinished)).trim().split('\n').pop()!) as { rtps: number; p50us: number; p99us: number; errors: number };
    return { roundTripsPerSecond: j.rtps, p50us: j.p50us, p99us: j.p99us, errors: j.errors };
  }
  const p = pinned(core, process.execPath, [`${ROOT}bin/socketkit.js`, 'load', `127.0.0.1:${port}`, '-c', String(connections), '-s', String(size), '-d', String(seconds), '--json']);
  const out = await runToEnd(p.cmd, p.args, timeoutMs, loadFinished);
  const line = out.split('\n').find((l) => l.includes('"event":"load"'))!;
  const j = JSON.parse(line) as { roundTripsPerSecond: number; errors: number; latencyMs: { p50: number; p99: number } };
  return { roundTripsPerSecond: j.roundTripsPerSecond, p50us: j.latencyMs.p50 * 1000, p99us: j.latencyMs.p99 * 1000, errors: j.errors };
}

// ---- Idle connections.

/** A separate process that opens N connections (batches of 100, each confirmed by a 1-byte echo) and holds them. */
const IDLE_CLIENT = `
const net = require('node:net');
const [port, n] = [Number(process.argv[1]), Number(process.argv[2])];
const socks = [];
const one = () => new Promise((resolve, reject) => {
  const s = net.connect({ port, host: '127.0.0.1' }, () => { s.write('!'); s.once('data', () => resolve()); });
  s.on('error', reject);
  socks.push(s);
});
(async () => {
  const t0 = Date.now();
  for (let i = 0; i < n; i += 100) await Promise.all(Array.from({ length: Math.min(100, n - i) }, one));
  console.log('open ' + socks.length + ' ' + (Date.now() - t0));
})().catch((e) => { console.error(String(e)); process.exit(1); });
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
`;

/** How long idle CPU is measured, ms. */
const IDLE_CPU_WINDOW_MS = 5_000;
/**
 * How long a server is left idle before its settled RSS is read, ms. socketkit compacts its heap
 * once it has been quiet for 2 s after a burst of connections (src/server/memory.ts), and V8's
 * memory reducer, armed by that collection, runs once about 8 s later: idle CPU is measured after both.
 */
const SETTLE_MS: Readonly<Record<ServerName, number>> = { 'socketkit-native': 15_000, 'socketkit-js': 15_000, 'node-net': 1_000, 'node-libuv': 1_000, 'c-epoll': 1_000, 'python-selectors': 1_000 };

function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

/** CPU ticks (user + system) of `pid` and of its threads. */
function cpuTicks(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

/** The real server process under `bash -c exec` and taskset: the same pid (exec replaces it). */
async function openIdle(port: number, n: number): Promise<{ child: ChildProcess; seconds: number }> {
  const p = pinned(undefined, process.execPath, ['-e', IDLE_CLIENT, String(port), String(n)]);
  const child = spawn(p.cmd, p.args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  const seconds = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /open (\d+) (\d+)/.exec(out);
      if (m) resolve(Number(m[2]) / 1000);
    });
    child.once('exit', (code) => reject(new Error(`idle client exited (${code}): ${err.trim()}`)));
  });
  return { child, seconds };
}

async function closeIdle(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.stdin!.end();
  const t = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(t);
}

async function measureIdle(spec: ServerSpec<ServerName>, n: number, settleMs: number): Promise<IdleRow> {
  const server = await startServer(spec, pinned(undefined, spec.cmd, spec.args));
  try {
    // Warm up first (code paths compiled and paged in, buffers allocated) so "before" is the
    // baseline of a server that has served, and the difference is what connections cost.
    const warm = await openIdle(server.port, 200);
    await closeIdle(warm.child);
    await sleep(1000);
    const rssBefore = rssOf(server.pid);
    const idle = await openIdle(server.port, n);
    try {
      await sleep(1000);
      const rssOpen = rssOf(server.pid);
      await sleep(settleMs);
      const rssSettled = rssOf(server.pid);
      // CPU over a window after the settling (V8's memory reducer collects garbage once when a
      // process turns idle; that is a one-off, not the cost of holding idle connections).
      const c0 = cpuTicks(server.pid);
      const t0 = performance.now();
      await sleep(IDLE_CPU_WINDOW_MS);
      const c1 = cpuTicks(server.pid);
      const ticksPerSecond = 100; // USER_HZ on Linux
      const idleCpuPercent = ((c1 - c0) / ticksPerSecond / ((performance.now() - t0) / 1000)) * 100;
      return {
        server: spec.name,
        connections: n,
        openSeconds: idle.seconds,
        rssBefore,
        rssOpen,
        rssSettled,
        bytesPerConnectionOpen: (rssOpen - rssBefore) / n,
        bytesPerConnectionSettled: (rssSettled - rssBefore) / n,
        idleCpuPercent,
      };
    } finally {
      await closeIdle(idle.child);
    }
  } finally {
    await server.stop();
  }
}

// ---- The run.

function envNumbers(name: string): number[] | undefined {
  const v = process.env[name];
  return v ? v.split(',').map((x) => Number(x.trim())).filter((x) => x > 0) : undefined;
}

function fmt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

/** Builds the C programs; false (with the reason logged) when that is not possible here. */
function buildC(log: (line: string) => void): boolean {
  const r = spawnSync('make', ['-s', '-C', C_DIR], { encoding: 'utf8' });
  if (r.status !== 0) {
    log(`(C reference programs not built: ${(r.stderr || r.error?.message || '').trim().split('\n')[0]}; their rows are skipped)`);
    return false;
  }
  return true;
}

/** Runs the comparison and prints the tables with `log`; resolves with every figure. */
export async function benchEcho(options: EchoBenchOptions = {}): Promise<EchoBenchResult> {
  const log = options.log ?? ((line: string) => console.log(line));
  const seconds = (options.durationMs ?? Number(process.env['SOCKETKIT_BENCH_ECHO_SECONDS'] ?? 1) * 1000) / 1000;
  const repeats = Math.max(1, options.repeats ?? Number(process.env['SOCKETKIT_BENCH_ECHO_REPEATS'] ?? 3));
  const connectionsList = options.connections ?? envNumbers('SOCKETKIT_BENCH_ECHO_CONNECTIONS') ?? [1, 100, 1000];
  const sizes = options.sizes ?? envNumbers('SOCKETKIT_BENCH_ECHO_SIZES') ?? [64, 4096];
  const idleN = options.idleConnections ?? Number(process.env['SOCKETKIT_BENCH_ECHO_IDLE'] ?? 10_000);
  const haveC = buildC(log);
  const havePython = spawnSync('python3', ['--version']).status === 0;
  const haveTaskset = spawnSync('taskset', ['-c', '0', 'true']).status === 0 && availableParallelism() >= 2;
  const serverCore = haveTaskset ? 0 : undefined;
  const clientCore = haveTaskset ? 1 : undefined;
  const servers = SERVERS.filter((s) => (s.name !== 'c-epoll' || haveC) && (s.name !== 'python-selectors' || havePython));
  const clients: ClientName[] = haveC ? ['c-client', 'socketkit-load'] : ['socketkit-load'];

  log(
    `Echo servers on loopback, closed loop (each connection sends S bytes, waits for them, repeats), best of ${repeats} runs of ${seconds} s per cell, ` +
      (haveTaskset ? `server on core ${serverCore}, client on core ${clientCore} (taskset)` : 'not pinned (taskset or a second core missing)'),
  );
  const rows: EchoBenchRow[] = [];
  for (const client of clients) {
    log('');
    log(`client: ${client === 'c-client' ? 'C epoll client (bench/c/echo_client.c)' : 'socketkit load'}`);
    log(`${'C'.padStart(6)}${'S'.padStart(6)}  ${servers.map((s) => s.name.padStart(26)).join('')}   round trips/s (p50 / p99 µs)`);
    for (const connections of connectionsList) {
      for (const size of sizes) {
        const best = new Map<ServerName, EchoBenchRow>();
        for (let run = 0; run < repeats; run++) {
          for (const spec of servers) {
            let row: EchoBenchRow | undefined;
            const server = await startServer(spec, pinned(serverCore, spec.cmd, spec.args));
            try {
              const c0 = cpuTicks(server.pid);
              const t0 = performance.now();
              const m = await measure(client, server.port, connections, size, seconds, clientCore);
              const serverCpuPercent = ((cpuTicks(server.pid) - c0) / 100 / ((performance.now() - t0) / 1000)) * 100;
              row = { server: spec.name, client, connections, size, ...m, serverCpuPercent };
            } catch (err) {
              log(`  ${spec.name}, ${client}, C=${connections} S=${size}: ${err instanceof Error ? err.message : String(err)}`);
            } finally {
              await server.stop();
            }
            const prev = best.get(spec.name);
            if (row && (!prev || row.roundTripsPerSecond > prev.roundTripsPerSecond)) best.set(spec.name, row);
          }
        }
        const cells: string[] = [];
        for (const spec of servers) {
          const row = best.get(spec.name) ?? { server: spec.name, client, connections, size, roundTripsPerSecond: NaN, p50us: NaN, p99us: NaN, errors: NaN, serverCpuPercent: NaN };
          rows.push(row);
          cells.push(`${fmt(row.roundTripsPerSecond).padStart(9)} (${fmt(row.p50us)}/${fmt(row.p99us)})${row.errors > 0 ? '!' : ''}`);
        }
        log(`${String(connections).padStart(6)}${String(size).padStart(6)}  ${cells.map((c) => c.padStart(26)).join('')}`);
      }
    }
  }

  const ratios: EchoBenchRatio[] = [];
  const cell = (server: ServerName, client: ClientName, c: number, s: number): EchoBenchRow | undefined =>
    rows.find((r) => r.server === server && r.client === client && r.connections === c && r.size === s);
  const find = (server: ServerName, client: ClientName, c: number, s: number): number => cell(server, client, c, s)?.roundTripsPerSecond ?? NaN;
  const cpu = (server: ServerName, client: ClientName, c: number, s: number): string => {
    const x = cell(server, client, c, s)?.serverCpuPercent;
    return x !== undefined && Number.isFinite(x) ? `${Math.round(x)}%` : '-';
  };
  log('');
  log(`socketkit's round trips/s over the references' (goals for the native engine: >= 0.9x C epoll, >= 1.1x Python selectors except C=1/S=64; server CPU, % of a core)`);
  log(`${'engine'.padEnd(8)}${'client'.padEnd(16)}${'C'.padStart(6)}${'S'.padStart(6)}${'vs C epoll'.padStart(12)}${'vs Python'.padStart(12)}${'vs Node net'.padStart(13)}${'CPU sk/C/py'.padStart(16)}`);
  for (const engine of ['native', 'js'] as const) {
    const name: ServerName = engine === 'native' ? 'socketkit-native' : 'socketkit-js';
    for (const client of clients) {
      for (const c of connectionsList) {
        for (const s of sizes) {
          const sk = find(name, client, c, s);
          const ratio = { engine, client, connections: c, size: s, vsC: sk / find('c-epoll', client, c, s), vsPython: sk / find('python-selectors', client, c, s), vsNode: sk / find('node-net', client, c, s) };
          ratios.push(ratio);
          const goalC = engine === 'native' ? 0.9 : 0;
          const goalPy = engine === 'native' && !(c === 1 && s === 64) ? 1.1 : 0;
          const show = (x: number, goal: number): string => (Number.isFinite(x) ? `${x.toFixed(2)}x${x >= goal ? '' : ' *'}` : '-');
          log(
            `${engine.padEnd(8)}${client.padEnd(16)}${String(c).padStart(6)}${String(s).padStart(6)}${show(ratio.vsC, goalC).padStart(12)}${show(ratio.vsPython, goalPy).padStart(12)}${show(ratio.vsNode, 0).padStart(13)}` +
              `${`${cpu(name, client, c, s)}/${cpu('c-epoll', client, c, s)}/${cpu('python-selectors', client, c, s)}`.padStart(16)}`,
          );
        }
      }
    }
  }
  log('(* below the goal)');

  const idle: IdleRow[] = [];
  if (idleN > 0) {
    log('');
    log(`Idle connections: server RSS before and after a separate process opens them, and server CPU while they stay idle`);
    log(`${'server'.padEnd(18)}${'conns'.padStart(8)}${'open s'.padStart(8)}${'B/conn at once'.padStart(16)}${'B/conn idle'.padStart(13)}${'idle CPU'.padStart(10)}`);
    // The Python server is measured with fewer connections: its accept loop walks every socket
    // on every pass (it registers for writability), so 10,000 take about a minute to accept.
    const plan: Array<[ServerSpec<ServerName>, number, number]> = servers.filter((s) => s.name !== 'node-net' && s.name !== 'node-libuv').map((s) => [s, s.name === 'python-selectors' ? Math.min(idleN, 1000) : idleN, SETTLE_MS[s.name]]);
    for (const [spec, n, settle] of plan) {
      try {
        const r = await measureIdle(spec, n, settle);
        idle.push(r);
        log(`${spec.name.padEnd(18)}${fmt(n).padStart(8)}${r.openSeconds.toFixed(1).padStart(8)}${fmt(r.bytesPerConnectionOpen).padStart(16)}${fmt(r.bytesPerConnectionSettled).padStart(13)}${`${r.idleCpuPercent.toFixed(1)} %`.padStart(10)}`);
      } catch (err) {
        log(`${spec.name.padEnd(18)} idle measurement failed: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    log(`(B/conn at once: 1 s after the last connection opened; idle: after ${SETTLE_MS['socketkit-native'] / 1000} s more for socketkit, ${SETTLE_MS['c-epoll'] / 1000} s for the others; idle CPU over the ${IDLE_CPU_WINDOW_MS / 1000} s after that)`);
  }
  return { name: 'echo', pinned: haveTaskset, rows, ratios, idle };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await benchEcho();
}

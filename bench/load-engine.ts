/**
 * The load generators compared: `socketkit load --engine native`, `socketkit load --engine js`
 * and the small C closed-loop client (`bench/c/echo_client.c`), each driving the same C epoll
 * echo server (`bench/c/epoll_echo_server.c`, which is never the bottleneck of one client core),
 * server and client pinned to different cores. Every combination of C = 1, 100, 1000
 * connections and S = 64, 4096 bytes.
 *
 * Interleaved rounds: in each round a fresh server, then the three clients one after the other
 * (the order rotating from round to round, so none always runs first or last); a client's figure
 * is the median of its rounds, and its ratio to the C client is the median of the per-round
 * ratios, with their spread (lowest and highest). Goal: native at least 0.9x the C client's
 * round trips/s at every point.
 *
 * Run: `SOCKETKIT_BENCH_ONLY=load npm run bench` (or `node dist/bench/load-engine.js`).
 * Environment:
 * - SOCKETKIT_BENCH_LOAD_SECONDS: seconds per client run (default 2).
 * - SOCKETKIT_BENCH_LOAD_ROUNDS: rounds per cell (default 5).
 * - SOCKETKIT_BENCH_LOAD_CONNECTIONS / _SIZES: comma-separated lists to run a subset.
 */
import { spawnSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { startServer, type ServerSpec } from './servers.js';
import { loadEngineStatus } from '../src/load/native.js';
import { loadFinished, pinned, runToEnd } from './processes.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const C_DIR = `${ROOT}bench/c`;
const C_BIN = `${C_DIR}/bin`;

export type LoadClientName = 'c-client' | 'native' | 'js';

export interface LoadEngineRow {
  readonly connections: number;
  readonly size: number;
  readonly client: LoadClientName;
  /** Median round trips/s of the rounds. */
  readonly roundTripsPerSecond: number;
  /** Every round's figure, in round order. */
  readonly rounds: readonly number[];
  /** Median of the per-round ratios to the C client (1 for the C client itself). */
  readonly vsC: number;
  readonly vsCLowest: number;
  readonly vsCHighest: number;
}

export interface LoadEngineResult {
  readonly name: 'load';
  readonly pinned: boolean;
  readonly rows: readonly LoadEngineRow[];
}

const SERVER: ServerSpec = { name: 'c-epoll', cmd: `${C_BIN}/epoll_echo_server`, args: ['0', '127.0.0.1'], port: /listening on (\d+)/ };

async function measure(client: LoadClientName, port: number, connections: number, size: number, seconds: number, core: number | undefined): Promise<number> {
  const timeoutMs = seconds * 1000 + 60_000;
  if (client === 'c-client') {
    const p = pinned(core, `${C_BIN}/echo_client`, ['127.0.0.1', String(port), String(connections), String(size), String(seconds)]);
    return (JSON.parse((await runToEnd(p.cmd, p.args, timeoutMs, loadFinished)).trim().split('\n').pop()!) as { rtps: number }).rtps;
  }
  const p = pinned(core, process.execPath, [`${ROOT}bin/socketkit.js`, 'load', `127.0.0.1:${port}`, '-c', String(connections), '-s', String(size), '-d', String(seconds), '--json', '--engine', client]);
  const line = (await runToEnd(p.cmd, p.args, timeoutMs, loadFinished)).split('\n').find((l) => l.includes('"event":"load"'))!;
  return (JSON.parse(line) as { roundTripsPerSecond: number }).roundTripsPerSecond;
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function envNumbers(name: string): number[] | undefined {
  const v = process.env[name];
  return v ? v.split(',').map((x) => Number(x.trim())).filter((x) => x > 0) : undefined;
}

const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');

/** Runs the comparison, prints the table with `log`, resolves with every figure. */
export async function benchLoadEngine(options: { readonly seconds?: number; readonly rounds?: number; readonly connections?: readonly number[]; readonly sizes?: readonly number[]; readonly log?: (line: string) => void } = {}): Promise<LoadEngineResult> {
  const log = options.log ?? ((line: string) => console.log(line));
  const seconds = options.seconds ?? Number(process.env['SOCKETKIT_BENCH_LOAD_SECONDS'] ?? 2);
  const rounds = Math.max(1, options.rounds ?? Number(process.env['SOCKETKIT_BENCH_LOAD_ROUNDS'] ?? 5));
  const connectionsList = options.connections ?? envNumbers('SOCKETKIT_BENCH_LOAD_CONNECTIONS') ?? [1, 100, 1000];
  const sizes = options.sizes ?? envNumbers('SOCKETKIT_BENCH_LOAD_SIZES') ?? [64, 4096];
  const made = spawnSync('make', ['-s', '-C', C_DIR], { encoding: 'utf8' });
  if (made.status !== 0) throw new Error(`the C programs did not build: ${(made.stderr || made.error?.message || '').trim().split('\n')[0]}`);
  const native = loadEngineStatus();
  const clients: LoadClientName[] = native.available ? ['c-client', 'native', 'js'] : ['c-client', 'js'];
  if (!native.available) log(`(no native rows: ${native.reason ?? 'the native engine is not available'})`);
  const haveTaskset = spawnSync('taskset', ['-c', '0', 'true']).status === 0 && availableParallelism() >= 2;
  const serverCore = haveTaskset ? 0 : undefined;
  const clientCore = haveTaskset ? 1 : undefined;
  log(
    `Load generators driving the C epoll echo server, closed loop, ${rounds} interleaved rounds of ${seconds} s per cell, medians; ` +
      (haveTaskset ? `server on core ${serverCore}, client on core ${clientCore} (taskset)` : 'not pinned (taskset or a second core missing)'),
  );
  log(`${'C'.padStart(6)}${'S'.padStart(6)}  ${'c-client rt/s'.padStart(14)}  ${clients.slice(1).map((c) => `${c} rt/s (x C: median [lowest-highest])`.padStart(44)).join('')}`);
  const rows: LoadEngineRow[] = [];
  for (const connections of connectionsList) {
    for (const size of sizes) {
      const figures = new Map<LoadClientName, number[]>(clients.map((c) => [c, []]));
      const ratios = new Map<LoadClientName, number[]>(clients.map((c) => [c, []]));
      for (let round = 0; round < rounds; round++) {
        const server = await startServer(SERVER, pinned(serverCore, SERVER.cmd, SERVER.args));
        const got = new Map<LoadClientName, number>();
        try {
          for (let k = 0; k < clients.length; k++) {
            const client = clients[(k + round) % clients.length]!;
            got.set(client, await measure(client, server.port, connections, size, seconds, clientCore));
          }
        } finally {
          await server.stop();
        }
        const c = got.get('c-client')!;
        for (const client of clients) {
          figures.get(client)!.push(got.get(client)!);
          ratios.get(client)!.push(got.get(client)! / c);
        }
      }
      const cells: string[] = [];
      for (const client of clients) {
        const r = ratios.get(client)!;
        const row: LoadEngineRow = {
          connections,
          size,
          client,
          roundTripsPerSecond: median(figures.get(client)!),
          rounds: figures.get(client)!,
          vsC: median(r),
          vsCLowest: Math.min(...r),
          vsCHighest: Math.max(...r),
        };
        rows.push(row);
        if (client !== 'c-client') cells.push(`${fmt(row.roundTripsPerSecond)} (${row.vsC.toFixed(2)}x [${row.vsCLowest.toFixed(2)}-${row.vsCHighest.toFixed(2)}])`.padStart(44));
      }
      log(`${String(connections).padStart(6)}${String(size).padStart(6)}  ${fmt(median(figures.get('c-client')!)).padStart(14)}  ${cells.join('')}`);
    }
  }
  return { name: 'load', pinned: haveTaskset, rows };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await benchLoadEngine();
}

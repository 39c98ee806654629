/**
 * Broker fan-out on loopback, side by side in one run: 1 sender and 100 receivers, plain bytes,
 * through `ncat --broker`, `socketkit broker` (the real binary), and two `socketkit broker`
 * instances joined by a local `redis-server` (the sender on the first; the receivers
 * round-robin over both, so 50 on each). 64 B and 4 KiB messages.
 *
 * Every party is its own process: the brokers, ncat, Redis, the sender, and the receivers in
 * two processes of 50 (bench/broker-peer.ts), so the receivers never share an event loop with
 * the sender or the broker. The sender writes 64 KiB of whole messages at a time as fast as its
 * socket's backpressure lets it for the round; each receiver counts its bytes, and messages
 * delivered/s = bytes / size over the round, summed over the receivers (each process timing
 * itself). After the round the receivers get a bounded drain: a receiver still connected that
 * has less than was sent lost something; one the broker closed (socketkit's slow-consumer
 * policy) is counted as cut off.
 *
 * A fresh broker per round, one Redis for the run. Rounds are interleaved (each round runs
 * every setup and size once), and the table shows the median of the rounds and their spread
 * (fastest / slowest round). A benchmark, not a test: the figures depend on the machine.
 *
 * Run: `node dist/bench/broker.js` (or `npm run bench` with SOCKETKIT_BENCH_ONLY=broker).
 * SOCKETKIT_BENCH_BROKER_SECONDS: seconds per round (default 2); SOCKETKIT_BENCH_BROKER_ROUNDS:
 * rounds (default 3); SOCKETKIT_BENCH_BROKER_ARGS: extra arguments for `socketkit broker`
 * (e.g. `--max-queue 4MiB`).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { startServer, stopperOf, type RunningServer } from './servers.js';
import { freePort } from './processes.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = `${ROOT}bin/socketkit.js`;
const PEER = fileURLToPath(new URL('./broker-peer.js', import.meta.url));
const RECEIVERS = 100;
const RECEIVER_PROCESSES = 2;
const EXTRA_ARGS = (process.env['SOCKETKIT_BENCH_BROKER_ARGS'] ?? '').split(/\s+/).filter(Boolean);

export type BrokerSetup = 'ncat --broker' | 'socketkit broker' | 'socketkit x2 + redis';

export interface BrokerBenchRow {
  readonly setup: BrokerSetup;
  readonly size: number;
  /** Median over the rounds of messages delivered per second, summed over the receivers. */
  readonly deliveredPerSecond: number;
  /** Fastest round / slowest round. */
  readonly spread: number;
  /** Most messages any still-connected receiver lost in a round (0: none lost). */
  readonly maxLost: number;
  /** Most still-connected receivers that missed something, in a round. */
  readonly maxLossy: number;
  /** Most receivers the broker cut off in a round. */
  readonly maxCutOff: number;
  readonly rounds: number;
}

export interface BrokerBenchResult {
  readonly name: 'broker';
  readonly rows: readonly BrokerBenchRow[];
}

interface Round {
  readonly delivered: number;
  /** Most messages one still-connected receiver missed. */
  readonly lost: number;
  /** Still-connected receivers that missed something. */
  readonly lossy: number;
  readonly cutOff: number;
  /** Messages the sender sent in the round (probes included). */
  readonly sent: number;
}

function openSocket(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: '127.0.0.1' }, () => {
      s.off('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}

/** Resolves once something accepts on `port` (bounded at 10 s). */
async function waitForPort(port: number, child: ChildProcess, name: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${name} exited before listening`);
    try {
      const s = await openSocket(port);
      s.destroy();
      return;
    } catch {
      if (Date.now() > deadline) throw new Error(`${name} did not listen on ${port} within 10 s`);
      await sleep(50);
    }
  }
}

/** A process started by port, stopped by PID (SIGTERM, SIGKILL after 5 s). */
async function startByPort(name: string, cmd: string, args: readonly string[], port: number): Promise<RunningServer> {
  const child = spawn(cmd, [...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  child.stderr.resume();
  const stop = stopperOf(child);
  try {
    await waitForPort(port, child, name);
  } catch (e) {
    await stop();
    throw e;
  }
  return { child, port, pid: child.pid!, stop };
}

function socketkitBroker(redisPort?: number): Promise<RunningServer> {
  return startServer({
    name: 'socketkit broker',
    cmd: process.execPath,
    args: [CLI, 'broker', '127.0.0.1:0', '--json', '-q', ...EXTRA_ARGS, ...(redisPort !== undefined ? ['--redis', `redis://127.0.0.1:${redisPort}`] : [])],
    port: /"address":"127\.0\.0\.1:(\d+)"/,
  });
}

/** A client process of bench/broker-peer.ts: commands on its stdin, one JSON answer a line. */
class Peer {
  readonly child: ChildProcess;
  readonly stop: () => Promise<void>;
  #lines: string[] = [];
  #waiting: ((line: string) => void) | undefined;
  #partial = '';
  #err = '';

  constructor(args: readonly string[], env: Record<string, string> = {}) {
    this.child = spawn(process.execPath, [PEER, ...args], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    this.stop = stopperOf(this.child);
    this.child.stderr!.on('data', (c: Buffer) => {
      if (this.#err.length < 4096) this.#err += c.toString();
    });
    this.child.stdout!.on('data', (c: Buffer) => {
      const parts = (this.#partial + c.toString()).split('\n');
      this.#partial = parts.pop()!;
      for (const line of parts) {
        const w = this.#waiting;
        if (w) {
          this.#waiting = undefined;
          w(line);
        } else this.#lines.push(line);
      }
    });
  }

  /** The next line it prints (bounded at 30 s). */
  next<T>(): Promise<T> {
    const queued = this.#lines.shift();
    if (queued !== undefined) return Promise.resolve(JSON.parse(queued) as T);
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiting = undefined;
        reject(new Error(`a bench peer said nothing for 30 s${this.#err ? `: ${this.#err}` : ''}`));
      }, 30_000);
      const exited = (): void => {
        clearTimeout(timer);
        reject(new Error(`a bench peer exited: ${this.#err}`));
      };
      this.child.once('exit', exited);
      this.#waiting = (line) => {
        clearTimeout(timer);
        this.child.off('exit', exited);
        resolve(JSON.parse(line) as T);
      };
    });
  }

  ask<T>(command: string): Promise<T> {
    this.child.stdin!.write(`${command}\n`);
    return this.next<T>();
  }

  async close(): Promise<void> {
    this.child.stdin!.end();
    await this.stop();
  }
}

interface Snapshot {
  readonly at: number;
  readonly bytes: readonly number[];
  readonly closed: readonly boolean[];
}

async function snapshot(groups: readonly Peer[]): Promise<Snapshot[]> {
  return Promise.all(groups.map((g) => g.ask<Snapshot>('snap')));
}

/** Bytes received over every receiver of every group. */
function totalBytes(snaps: readonly Snapshot[]): number {
  return snaps.reduce((a, s) => a + s.bytes.reduce((x, y) => x + y, 0), 0);
}

/**
 * One round against brokers on `ports`: the sender on ports[0], the receivers in
 * RECEIVER_PROCESSES processes, round-robin over the ports.
 */
async function round(ports: readonly number[], size: number, ms: number): Promise<Round> {
  const groups: Peer[] = [];
  let sender: Peer | undefined;
  try {
    const per = RECEIVERS / RECEIVER_PROCESSES;
    for (let g = 0; g < RECEIVER_PROCESSES; g++) groups.push(new Peer(['recv', ports.join(','), String(per)], { SOCKETKIT_BENCH_PEER_FIRST: String(g) }));
    for (const g of groups) await g.next();
    sender = new Peer(['send', String(ports[0]), String(size)]);
    await sender.next();
    // Warm-up: one message must reach every receiver (through Redis too) before the clock
    // starts; the brokers may take a moment to see every connection and to subscribe.
    const deadline = Date.now() + 10_000;
    for (;;) {
      const { sent } = await sender.ask<{ sent: number }>('probe');
      const waitUntil = Date.now() + 1000;
      let all = false;
      while (!all && Date.now() < waitUntil) {
        const snaps = await snapshot(groups);
        all = snaps.every((s) => s.bytes.every((b, i) => s.closed[i] || b >= sent * size));
        if (!all) await sleep(20);
      }
      if (all) break;
      if (Date.now() > deadline) throw new Error('a receiver did not get the probe within 10 s');
    }
    const before = await snapshot(groups);
    const { sent } = await sender.ask<{ sent: number; ms: number }>(`go ${ms}`);
    const after = await snapshot(groups);
    // Each receiver process's own clock: delivered/s is summed over the processes.
    let delivered = 0;
    for (let g = 0; g < groups.length; g++) {
      const bytes = totalBytes([after[g]!]) - totalBytes([before[g]!]);
      delivered += bytes / size / ((after[g]!.at - before[g]!.at) / 1000);
    }
    // Drain: bounded, and stops early once every receiver has everything (or nothing moves for 2 s).
    const total = sent * size;
    const drainDeadline = Date.now() + 15_000;
    let last = -1;
    let still = Date.now();
    let snaps = after;
    while (Date.now() < drainDeadline && !snaps.every((s) => s.bytes.every((b, i) => s.closed[i] || b >= total))) {
      const now = totalBytes(snaps);
      if (now !== last) {
        last = now;
        still = Date.now();
      } else if (Date.now() - still > 2000) break;
      await sleep(50);
      snaps = await snapshot(groups);
    }
    let lost = 0;
    let lossy = 0;
    let cutOff = 0;
    for (const s of snaps) {
      for (let i = 0; i < s.bytes.length; i++) {
        if (s.closed[i]) cutOff++;
        else if (s.bytes[i]! < total) {
          lossy++;
          lost = Math.max(lost, Math.floor((total - s.bytes[i]!) / size));
        }
      }
    }
    return { delivered, lost, lossy, cutOff, sent };
  } finally {
    await Promise.all([sender?.close(), ...groups.map((g) => g.close())]);
  }
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function fmt(n: number): string {
  return Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '-';
}

/** Runs the comparison and prints the table with `log`; resolves with every figure. */
export async function benchBroker(options: { readonly durationMs?: number; readonly rounds?: number; readonly log?: (line: string) => void } = {}): Promise<BrokerBenchResult> {
  const log = options.log ?? ((line: string) => console.log(line));
  const ms = options.durationMs ?? Number(process.env['SOCKETKIT_BENCH_BROKER_SECONDS'] ?? 2) * 1000;
  const rounds = Math.max(1, options.rounds ?? Number(process.env['SOCKETKIT_BENCH_BROKER_ROUNDS'] ?? 3));
  const sizes = [64, 4096];
  const haveNcat = spawnSync('ncat', ['--version']).status === 0;
  const haveRedis = spawnSync('redis-server', ['--version']).status === 0;
  const setups: BrokerSetup[] = [...(haveNcat ? (['ncat --broker'] as const) : []), 'socketkit broker', ...(haveRedis ? (['socketkit x2 + redis'] as const) : [])];
  if (!haveNcat) log('(ncat not found: its rows are skipped)');
  if (!haveRedis) log('(redis-server not found: the Redis rows are skipped)');
  log(`Broker fan-out on loopback: 1 sender, ${RECEIVERS} receivers, plain bytes, ${rounds} interleaved rounds of ${ms / 1000} s, a fresh broker per round`);

  const results = new Map<string, Round[]>();
  const redisDir = mkdtempSync(join(tmpdir(), 'socketkit-bench-redis-'));
  let redis: RunningServer | undefined;
  try {
    if (haveRedis) {
      const port = await freePort();
      redis = await startByPort('redis-server', 'redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', redisDir], port);
    }
    for (let r = 0; r < rounds; r++) {
      for (const size of sizes) {
        for (const setup of setups) {
          const started: RunningServer[] = [];
          try {
            let ports: number[];
            if (setup === 'ncat --broker') {
              const port = await freePort();
              started.push(await startByPort('ncat', 'ncat', ['-l', '--broker', '--max-conns', '1000', '127.0.0.1', String(port)], port));
              ports = [port];
            } else if (setup === 'socketkit broker') {
              started.push(await socketkitBroker());
              ports = [started[0]!.port];
            } else {
              started.push(await socketkitBroker(redis!.port));
              started.push(await socketkitBroker(redis!.port));
              ports = started.map((s) => s.port);
            }
            const one = await round(ports, size, ms);
            const key = `${setup}|${size}`;
            results.set(key, [...(results.get(key) ?? []), one]);
          } catch (err) {
            log(`  round ${r + 1}, ${setup}, ${size} B: ${err instanceof Error ? err.message : String(err)}`);
          } finally {
            for (const s of started) await s.stop();
          }
        }
      }
    }
  } finally {
    await redis?.stop();
    rmSync(redisDir, { recursive: true, force: true });
  }

  const rows: BrokerBenchRow[] = [];
  log('');
  log(`${'setup'.padEnd(22)}${'size'.padStart(6)}${'delivered msg/s'.padStart(17)}${'spread'.padStart(8)}${'vs ncat'.padStart(9)}${'lost'.padStart(8)}${'lossy'.padStart(7)}${'cut off'.padStart(9)}`);
  for (const size of sizes) {
    const ncatRate = median((results.get(`ncat --broker|${size}`) ?? []).map((x) => x.delivered));
    for (const setup of setups) {
      const rs = results.get(`${setup}|${size}`) ?? [];
      const d = rs.map((x) => x.delivered);
      const row: BrokerBenchRow = {
        setup,
        size,
        deliveredPerSecond: rs.length ? median(d) : NaN,
        spread: rs.length ? Math.max(...d) / Math.min(...d) : NaN,
        maxLost: rs.reduce((m, x) => Math.max(m, x.lost), 0),
        maxLossy: rs.reduce((m, x) => Math.max(m, x.lossy), 0),
        maxCutOff: rs.reduce((m, x) => Math.max(m, x.cutOff), 0),
        rounds: rs.length,
      };
      rows.push(row);
      const vs = row.deliveredPerSecond / ncatRate;
      log(
        `${setup.padEnd(22)}${String(size).padStart(6)}${fmt(row.deliveredPerSecond).padStart(17)}${(Number.isFinite(row.spread) ? `${row.spread.toFixed(2)}x` : '-').padStart(8)}` +
          `${(Number.isFinite(vs) ? `${vs.toFixed(2)}x${setup !== 'ncat --broker' && vs < 2 ? ' *' : ''}` : '-').padStart(9)}${fmt(row.maxLost).padStart(8)}${fmt(row.maxLossy).padStart(7)}${fmt(row.maxCutOff).padStart(9)}${row.rounds < rounds ? `  (${row.rounds}/${rounds} rounds)` : ''}`,
      );
    }
  }
  log('(delivered: messages/s summed over the receivers, median of the rounds; spread: fastest / slowest round; lost: most messages one still-connected receiver missed after the drain; lossy: still-connected receivers that missed any; cut off: receivers the broker closed; * below the 2x goal)');
  return { name: 'broker', rows };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await benchBroker();
}

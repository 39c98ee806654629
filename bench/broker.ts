/**
 * Broker fan-out on loopback, side by side in one run: 1 sender and 100 receivers, plain bytes,
 * through `ncat --broker`, `socketkit broker` (the real binary), and two `socketkit broker`
 * instances joined by a local `redis-server` (the sender and 50 receivers on one, 50 receivers
 * on the other). 64 B and 4 KiB messages. The sender writes as fast as its socket's backpressure
 * lets it for the round; the receivers count bytes, and messages delivered = bytes / size, summed
 * over every receiver. After the round the sender stops and the receivers are given a bounded
 * time to drain: a receiver still connected that has less than was sent lost something; one the
 * broker closed (socketkit's slow-consumer policy) is counted as cut off.
 *
 * The brokers, ncat and Redis are their own processes (a fresh broker per round, one Redis for
 * the run); the sender and receivers share this process. Rounds are interleaved (each round runs
 * every setup and size once), and the table shows the median of the rounds and their spread
 * (fastest / slowest round). A benchmark, not a test: the figures depend on the machine.
 *
 * Run: `node dist/bench/broker.js` (or `npm run bench` with SOCKETKIT_BENCH_ONLY=broker).
 * SOCKETKIT_BENCH_BROKER_SECONDS: seconds per round (default 2); SOCKETKIT_BENCH_BROKER_ROUNDS:
 * rounds (default 3).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { startServer, stopperOf, type RunningServer } from './servers.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = `${ROOT}bin/socketkit.js`;
const RECEIVERS = 100;

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
  readonly lost: number;
  readonly cutOff: number;
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
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
    args: [CLI, 'broker', '127.0.0.1:0', '--json', '-q', ...(redisPort !== undefined ? ['--redis', `redis://127.0.0.1:${redisPort}`] : [])],
    port: /"address":"127\.0\.0\.1:(\d+)"/,
  });
}

/** One receiver: counts the bytes it is sent and whether the broker closed it. */
interface Receiver {
  readonly socket: Socket;
  bytes: number;
  closed: boolean;
}

async function openReceiver(port: number): Promise<Receiver> {
  const socket = await openSocket(port);
  const r: Receiver = { socket, bytes: 0, closed: false };
  socket.on('data', (c: Buffer) => (r.bytes += c.length));
  socket.on('error', () => undefined);
  socket.once('close', () => (r.closed = true));
  return r;
}

/** Resolves true once every receiver has at least `bytes` (or is closed), false after `ms`. */
async function until(receivers: readonly Receiver[], bytes: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (receivers.every((r) => r.closed || r.bytes >= bytes)) return true;
    await sleep(20);
  }
  return false;
}

/** One round against brokers on `ports`: the sender on ports[0], receivers spread evenly. */
async function round(ports: readonly number[], size: number, ms: number): Promise<Round> {
  const receivers: Receiver[] = [];
  let sender: Socket | undefined;
  try {
    for (let i = 0; i < RECEIVERS; i++) receivers.push(await openReceiver(ports[i % ports.length]!));
    sender = await openSocket(ports[0]!);
    sender.on('error', () => undefined);
    const msg = Buffer.alloc(size, 0x61);
    // Warm-up: one message must reach every receiver (through Redis too) before the clock starts.
    let sent = 0;
    const deadline = Date.now() + 10_000;
    // The brokers may take a moment to see every connection (and to subscribe): send the probe until all have it.
    for (;;) {
      sender.write(msg);
      sent++;
      if (await until(receivers, sent * size, 1000)) break;
      if (Date.now() > deadline) throw new Error('a receiver did not get the probe within 10 s');
    }
    const before = receivers.reduce((a, r) => a + r.bytes, 0);
    const t0 = performance.now();
    const end = t0 + ms;
    const s = sender;
    await new Promise<void>((resolve) => {
      const pump = (): void => {
        while (performance.now() < end) {
          sent++;
          if (!s.write(msg)) {
            s.once('drain', pump);
            return;
          }
          // Yield now and then so the receivers' reads run (they share this process).
          if (sent % 256 === 0) {
            setImmediate(pump);
            return;
          }
        }
        resolve();
      };
      pump();
    });
    const elapsed = (performance.now() - t0) / 1000;
    const after = receivers.reduce((a, r) => a + r.bytes, 0);
    // Drain: bounded, and stops early once every receiver has everything (or nothing moves for 1 s).
    const total = sent * size;
    const drainDeadline = Date.now() + 10_000;
    let last = -1;
    let still = Date.now();
    while (Date.now() < drainDeadline && !receivers.every((r) => r.closed || r.bytes >= total)) {
      const now = receivers.reduce((a, r) => a + r.bytes, 0);
      if (now !== last) {
        last = now;
        still = Date.now();
      } else if (Date.now() - still > 1000) break;
      await sleep(20);
    }
    const open = receivers.filter((r) => !r.closed);
    const lost = open.reduce((m, r) => Math.max(m, Math.floor((total - r.bytes) / size)), 0);
    return { delivered: (after - before) / size / elapsed, lost, cutOff: receivers.length - open.length };
  } finally {
    sender?.destroy();
    for (const r of receivers) r.socket.destroy();
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
  log(`${'setup'.padEnd(22)}${'size'.padStart(6)}${'delivered msg/s'.padStart(17)}${'spread'.padStart(8)}${'vs ncat'.padStart(9)}${'lost'.padStart(6)}${'cut off'.padStart(9)}`);
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
        maxCutOff: rs.reduce((m, x) => Math.max(m, x.cutOff), 0),
        rounds: rs.length,
      };
      rows.push(row);
      const vs = row.deliveredPerSecond / ncatRate;
      log(
        `${setup.padEnd(22)}${String(size).padStart(6)}${fmt(row.deliveredPerSecond).padStart(17)}${(Number.isFinite(row.spread) ? `${row.spread.toFixed(2)}x` : '-').padStart(8)}` +
          `${(Number.isFinite(vs) ? `${vs.toFixed(2)}x${setup !== 'ncat --broker' && vs < 2 ? ' *' : ''}` : '-').padStart(9)}${fmt(row.maxLost).padStart(6)}${fmt(row.maxCutOff).padStart(9)}${row.rounds < rounds ? `  (${row.rounds}/${rounds} rounds)` : ''}`,
      );
    }
  }
  log('(delivered: messages/s summed over the receivers, median of the rounds; spread: fastest / slowest round; lost: most messages any still-connected receiver missed after the drain; cut off: receivers the broker closed; * below the 2x goal)');
  return { name: 'broker', rows };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await benchBroker();
}

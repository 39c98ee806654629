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
 * (e.g. `--max-queue 4MiB`); SOCKETKIT_BENCH_BROKER_SIZES: message sizes (default `64,4096`);
 * SOCKETKIT_BENCH_BROKER_SETUPS: which setups, a comma list of
 * `ncat`, `socketkit`, `redis` (default all three); SOCKETKIT_BENCH_BROKER_BASELINE: the path of
 * another build's `bin/socketkit.js`, run beside as one more setup (`baseline broker`), to
 * compare a change with the code before it in the same rounds (SOCKETKIT_BENCH_BROKER_BASELINE_ENV:
 * `NAME=VALUE ...` in its environment alone; SOCKETKIT_BENCH_BROKER_BASELINE_CMD: any other broker
 * command instead, which prints `{"address":"127.0.0.1:PORT"}` once it
 * listens); SOCKETKIT_BENCH_BROKER_VERBOSE=1: each round's figures as it ends.
 *
 * CPU accounting: over each round's sending window the bench reads every party's CPU time
 * (user + system, all threads, from /proc/PID/stat: the broker or ncat, Redis, the sender, the
 * two receiver processes) and the machine's (/proc/stat), and prints CPU seconds per delivered
 * GB (10^9 bytes) for each party, medians of the rounds (Linux only; zeros elsewhere). With tick
 * accounting the kernel charges loopback TCP's receive processing (softirq) to the process whose
 * write or read ran it, so a broker's writes carry most of the receiving side's TCP work. When
 * the cores are full, delivered bytes/s go as the inverse of the CPU all parties take per byte,
 * so the table ends with the ceiling: the ratio to ncat that a broker costing no CPU at all could
 * reach, ncat's whole CPU per GB (ncat, sender, receivers, ksoftirqd) over this row's receivers +
 * sender (+ Redis) per GB.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
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
const BASELINE_CMD = process.env['SOCKETKIT_BENCH_BROKER_BASELINE_CMD'];
const BASELINE = process.env['SOCKETKIT_BENCH_BROKER_BASELINE'] ?? (BASELINE_CMD !== undefined ? '' : undefined);
/** `NAME=VALUE ...`: environment for the baseline broker alone. */
const BASELINE_ENV = Object.fromEntries(
  (process.env['SOCKETKIT_BENCH_BROKER_BASELINE_ENV'] ?? '')
    .split(/\s+/)
    .filter((x) => x.includes('='))
    .map((x) => [x.slice(0, x.indexOf('=')), x.slice(x.indexOf('=') + 1)]),
);
const VERBOSE = process.env['SOCKETKIT_BENCH_BROKER_VERBOSE'] === '1';
const ONLY = (process.env['SOCKETKIT_BENCH_BROKER_SETUPS'] ?? 'ncat,socketkit,redis').split(',').map((x) => x.trim());

export type BrokerSetup = 'ncat --broker' | 'socketkit broker' | 'baseline broker' | 'socketkit x2 + redis';

/** CPU seconds per delivered GB (10^9 bytes) of each party, medians over the rounds. */
export interface BrokerCpu {
  /** The broker (both instances with Redis), or ncat: user and system time. */
  readonly brokerUser: number;
  readonly brokerSys: number;
  readonly redis: number;
  readonly sender: number;
  /** Both receiver processes together. */
  readonly receivers: number;
  /** The kernel's softirq threads (network receive processing deferred to them). */
  readonly ksoftirqd: number;
  /** Everything else busy on the machine meanwhile (other work on a shared machine), per delivered GB. */
  readonly others: number;
  /** CPU seconds per second the parties (and ksoftirqd) took, and everything else did. */
  readonly partyCores: number;
  readonly otherCores: number;
  /** Mean bytes per read at the receivers. */
  readonly readSize: number;
  /**
   * The best a broker costing no CPU could do against ncat: ncat's whole cost per GB (ncat,
   * its sender and receivers, ksoftirqd) over this row's receivers + sender (+ Redis) per GB.
   * With the same CPU to share, delivered bytes/s go as the inverse of the CPU per byte.
   */
  readonly ceilingVsNcat: number;
}

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
  readonly cpu: BrokerCpu;
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
  /** Over the sending window. */
  readonly cpu: RoundCpu;
}

/** CPU seconds of each party over one round's sending window, and what was delivered in it. */
interface RoundCpu {
  readonly brokerUser: number;
  readonly brokerSys: number;
  readonly redis: number;
  readonly sender: number;
  readonly receivers: number;
  readonly ksoftirqd: number;
  readonly machineBusy: number;
  readonly seconds: number;
  readonly bytes: number;
  readonly reads: number;
}

const TICK = 100; // USER_HZ: /proc's clock ticks per second on Linux

/** User and system CPU seconds of `pid` so far (all its threads); zeros once it is gone. */
function cpuOf(pid: number): { user: number; sys: number } {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { user: Number(f[11]) / TICK, sys: Number(f[12]) / TICK };
  } catch {
    return { user: 0, sys: 0 };
  }
}

/** The machine's busy CPU seconds so far (all but idle and iowait), from /proc/stat; 0 without it. */
function machineBusy(): number {
  try {
    const f = readFileSync('/proc/stat', 'latin1').split('\n')[0]!.trim().split(/\s+/).slice(1, 9).map(Number);
    return (f.reduce((a, b) => a + b, 0) - f[3]! - f[4]!) / TICK;
  } catch {
    return 0;
  }
}

/** The kernel's ksoftirqd/N threads (none without /proc). */
let ksoftirqd: number[] | undefined;
function ksoftirqdPids(): number[] {
  if (ksoftirqd !== undefined) return ksoftirqd;
  ksoftirqd = [];
  let names: string[] = [];
  try {
    names = readdirSync('/proc');
  } catch {
    return ksoftirqd;
  }
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readFileSync(`/proc/${name}/comm`, 'latin1').startsWith('ksoftirqd/')) ksoftirqd.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return ksoftirqd;
}

interface Pids {
  readonly brokers: readonly number[];
  readonly redis?: number;
}

interface CpuSample {
  readonly at: number;
  readonly brokers: { user: number; sys: number };
  readonly redis: number;
  readonly sender: number;
  readonly receivers: number;
  readonly ksoftirqd: number;
  readonly machine: number;
}

function sampleCpu(pids: Pids, sender: number, receivers: readonly number[]): CpuSample {
  const sum = (xs: readonly number[]): { user: number; sys: number } =>
    xs.map(cpuOf).reduce((a, b) => ({ user: a.user + b.user, sys: a.sys + b.sys }), { user: 0, sys: 0 });
  const total = (xs: readonly number[]): number => {
    const c = sum(xs);
    return c.user + c.sys;
  };
  return {
    at: performance.now(),
    brokers: sum(pids.brokers),
    redis: pids.redis !== undefined ? total([pids.redis]) : 0,
    sender: total([sender]),
    receivers: total(receivers),
    ksoftirqd: total(ksoftirqdPids()),
    machine: machineBusy(),
  };
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

function socketkitBroker(redisPort?: number, cli = CLI, env: Record<string, string> = {}): Promise<RunningServer> {
  const spec = {
    name: 'socketkit broker',
    cmd: process.execPath,
    args: [cli, 'broker', '127.0.0.1:0', '--json', '-q', ...EXTRA_ARGS, ...(redisPort !== undefined ? ['--redis', `redis://127.0.0.1:${redisPort}`] : [])],
    port: /"address":"127\.0\.0\.1:(\d+)"/,
  };
  const vars = Object.entries(env).map(([k, v]) => `${k}=${v}`);
  // `env` execs node: the PID stays the broker's.
  return vars.length ? startServer(spec, { cmd: 'env', args: [...vars, spec.cmd, ...spec.args] }) : startServer(spec);
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
  /** Reads ('data' events) over all its receivers so far. */
  readonly reads: number;
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
async function round(ports: readonly number[], pids: Pids, size: number, ms: number): Promise<Round> {
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
    const receiverPids = groups.map((g) => g.child.pid!);
    const senderPid = sender.child.pid!;
    const before = await snapshot(groups);
    const cpu0 = sampleCpu(pids, senderPid, receiverPids);
    const { sent } = await sender.ask<{ sent: number; ms: number }>(`go ${ms}`);
    const after = await snapshot(groups);
    const cpu1 = sampleCpu(pids, senderPid, receiverPids);
    const cpu: RoundCpu = {
      brokerUser: cpu1.brokers.user - cpu0.brokers.user,
      brokerSys: cpu1.brokers.sys - cpu0.brokers.sys,
      redis: cpu1.redis - cpu0.redis,
      sender: cpu1.sender - cpu0.sender,
      receivers: cpu1.receivers - cpu0.receivers,
      ksoftirqd: cpu1.ksoftirqd - cpu0.ksoftirqd,
      machineBusy: cpu1.machine - cpu0.machine,
      seconds: (cpu1.at - cpu0.at) / 1000,
      bytes: totalBytes(after) - totalBytes(before),
      reads: after.reduce((a, x) => a + x.reads, 0) - before.reduce((a, x) => a + x.reads, 0),
    };
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
    return { delivered, lost, lossy, cutOff, sent, cpu };
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

const parties = (c: RoundCpu): number => c.brokerUser + c.brokerSys + c.redis + c.sender + c.receivers + c.ksoftirqd;

function cpuRow(rs: readonly Round[], ncat: readonly Round[]): BrokerCpu {
  const per = (f: (c: RoundCpu) => number): number => median(rs.map((r) => (f(r.cpu) / r.cpu.bytes) * 1e9));
  const ncatPerGB = median(ncat.map((r) => (parties(r.cpu) / r.cpu.bytes) * 1e9));
  return {
    brokerUser: per((c) => c.brokerUser),
    brokerSys: per((c) => c.brokerSys),
    redis: per((c) => c.redis),
    sender: per((c) => c.sender),
    receivers: per((c) => c.receivers),
    ksoftirqd: per((c) => c.ksoftirqd),
    others: per((c) => Math.max(0, c.machineBusy - parties(c))),
    partyCores: median(rs.map((r) => parties(r.cpu) / r.cpu.seconds)),
    otherCores: median(rs.map((r) => Math.max(0, r.cpu.machineBusy - parties(r.cpu)) / r.cpu.seconds)),
    readSize: median(rs.map((r) => r.cpu.bytes / Math.max(1, r.cpu.reads))),
    ceilingVsNcat: ncat.length ? ncatPerGB / median(rs.map((r) => ((r.cpu.receivers + r.cpu.sender + r.cpu.redis) / r.cpu.bytes) * 1e9)) : NaN,
  };
}

/** Runs the comparison and prints the table with `log`; resolves with every figure. */
export async function benchBroker(options: { readonly durationMs?: number; readonly rounds?: number; readonly log?: (line: string) => void } = {}): Promise<BrokerBenchResult> {
  const log = options.log ?? ((line: string) => console.log(line));
  const ms = options.durationMs ?? Number(process.env['SOCKETKIT_BENCH_BROKER_SECONDS'] ?? 2) * 1000;
  const rounds = Math.max(1, options.rounds ?? Number(process.env['SOCKETKIT_BENCH_BROKER_ROUNDS'] ?? 3));
  const sizes = (process.env['SOCKETKIT_BENCH_BROKER_SIZES'] ?? '64,4096').split(',').map(Number);
  const haveNcat = ONLY.includes('ncat') && spawnSync('ncat', ['--version']).status === 0;
  const haveRedis = ONLY.includes('redis') && spawnSync('redis-server', ['--version']).status === 0;
  const setups: BrokerSetup[] = [
    ...(haveNcat ? (['ncat --broker'] as const) : []),
    ...(ONLY.includes('socketkit') ? (['socketkit broker'] as const) : []),
    ...(BASELINE !== undefined ? (['baseline broker'] as const) : []),
    ...(haveRedis ? (['socketkit x2 + redis'] as const) : []),
  ];
  if (ONLY.includes('ncat') && !haveNcat) log('(ncat not found: its rows are skipped)');
  if (ONLY.includes('redis') && !haveRedis) log('(redis-server not found: the Redis rows are skipped)');
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
            let pids: Pids;
            if (setup === 'ncat --broker') {
              const port = await freePort();
              started.push(await startByPort('ncat', 'ncat', ['-l', '--broker', '--max-conns', '1000', '127.0.0.1', String(port)], port));
              ports = [port];
              pids = { brokers: [started[0]!.pid] };
            } else if (setup === 'socketkit broker' || setup === 'baseline broker') {
              started.push(await (setup !== 'baseline broker'
                  ? socketkitBroker()
                  : BASELINE_CMD !== undefined
                    ? startServer({ name: 'baseline broker', cmd: BASELINE_CMD.split(/\s+/)[0]!, args: BASELINE_CMD.split(/\s+/).slice(1), port: /"address":"127\.0\.0\.1:(\d+)"/ })
                    : socketkitBroker(undefined, BASELINE, BASELINE_ENV)));
              ports = [started[0]!.port];
              pids = { brokers: [started[0]!.pid] };
            } else {
              started.push(await socketkitBroker(redis!.port));
              started.push(await socketkitBroker(redis!.port));
              ports = started.map((s) => s.port);
              pids = { brokers: started.map((s) => s.pid), redis: redis!.pid };
            }
            const one = await round(ports, pids, size, ms);
            if (VERBOSE) {
              const c = one.cpu;
              const g = (x: number): string => ((x / c.bytes) * 1e9).toFixed(3);
              log(
                `  round ${r + 1} ${setup} ${size} B: ${(c.bytes / c.seconds / 1e9).toFixed(2)} GB/s over ${c.seconds.toFixed(2)} s; CPU-s/GB broker ${g(c.brokerUser)}+${g(c.brokerSys)} redis ${g(c.redis)} sender ${g(c.sender)} receivers ${g(c.receivers)} ksoftirqd ${g(c.ksoftirqd)} machine ${g(c.machineBusy)}; ${(parties(c) / c.seconds).toFixed(2)} cores`,
              );
            }
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
      if (rs.length === 0) continue;
      const d = rs.map((x) => x.delivered);
      const row: BrokerBenchRow = {
        setup,
        size,
        deliveredPerSecond: median(d),
        spread: Math.max(...d) / Math.min(...d),
        maxLost: rs.reduce((m, x) => Math.max(m, x.lost), 0),
        maxLossy: rs.reduce((m, x) => Math.max(m, x.lossy), 0),
        maxCutOff: rs.reduce((m, x) => Math.max(m, x.cutOff), 0),
        rounds: rs.length,
        cpu: cpuRow(rs, results.get(`ncat --broker|${size}`) ?? []),
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

  log('');
  log('CPU seconds per delivered GB (10^9 bytes) over the sending window, medians of the rounds');
  log(
    `${'setup'.padEnd(22)}${'size'.padStart(6)}${'brk usr'.padStart(8)}${'brk sys'.padStart(8)}${'redis'.padStart(7)}${'sender'.padStart(7)}${'recvrs'.padStart(7)}${'softirqd'.padStart(9)}${'others'.padStart(7)}` +
      `${'cores'.padStart(6)}${'+other'.padStart(7)}${'read B'.padStart(8)}${'GB/s'.padStart(6)}${'ceiling'.padStart(9)}`,
  );
  const f2 = (n: number): string => (Number.isFinite(n) ? n.toFixed(2) : '-');
  for (const row of rows) {
    const c = row.cpu;
    log(
      `${row.setup.padEnd(22)}${String(row.size).padStart(6)}${f2(c.brokerUser).padStart(8)}${f2(c.brokerSys).padStart(8)}${f2(c.redis).padStart(7)}${f2(c.sender).padStart(7)}${f2(c.receivers).padStart(7)}${f2(c.ksoftirqd).padStart(9)}${f2(c.others).padStart(7)}` +
        `${f2(c.partyCores).padStart(6)}${f2(c.otherCores).padStart(7)}${fmt(c.readSize).padStart(8)}${((row.deliveredPerSecond * row.size) / 1e9).toFixed(2).padStart(6)}${(Number.isFinite(c.ceilingVsNcat) ? `${c.ceilingVsNcat.toFixed(2)}x` : '-').padStart(9)}`,
    );
  }
  log(
    "(brk: the broker process(es), or ncat; recvrs: both receiver processes; softirqd: the kernel's ksoftirqd threads; others: the rest of the machine's busy time, not this benchmark's; cores: CPU seconds per second the benchmark's processes and ksoftirqd took; +other: what the rest took; read B: mean bytes per read at the receivers; ceiling: the best ratio to ncat a broker costing no CPU could reach, ncat's whole CPU per GB over this row's receivers + sender + Redis)",
  );
  return { name: 'broker', rows };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await benchBroker();
}

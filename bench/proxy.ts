/**
 * The proxy with no toxics, side by side with socat (`socat TCP-LISTEN:P,fork,reuseaddr
 * TCP:127.0.0.1:Q`, with backlog=4096 so that 100 connections at once are not dropped by
 * socat's default backlog of 5 and retried for seconds), both relaying to the same C echo
 * server (`bench/c/epoll_echo_server.c`), driven by the same C client (`bench/c/echo_client.c`), and beside the same client talking to
 * the echo server directly (what the relay adds is measured against that):
 *
 * - added round-trip latency at C=1, S=64: the relay's p50 and p99 minus the direct ones;
 * - round trips/s at C=100, S=64;
 * - bulk throughput through the relay: `iperf3 -c` through each relay to one `iperf3 -s`.
 *
 * The relay runs on core 0; echo server, client and iperf3 on core 1 (taskset), so the relay has
 * a core to itself and the two relays are pinned alike (socat's forked children inherit it).
 * Rounds are interleaved (direct, socat, socketkit in each round, a fresh relay per round and a
 * short unmeasured warm-up each), and the tables give medians over rounds with the spread
 * (max / min over rounds) and socketkit's ratio to socat.
 *
 * Run: `node dist/bench/proxy.js` or `SOCKETKIT_BENCH_ONLY=proxy npm run bench`. Environment:
 * - SOCKETKIT_BENCH_PROXY_SECONDS: seconds per measurement (default 2).
 * - SOCKETKIT_BENCH_PROXY_ROUNDS: rounds (default 5).
 */
import { spawn, spawnSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { startServer, stopperOf, type RunningServer } from './servers.js';
import { freePort, runToEnd } from './processes.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const C_DIR = `${ROOT}bench/c`;
const C_BIN = `${C_DIR}/bin`;

export type RelayName = 'direct' | 'socat' | 'socketkit';

/** One round's figures for one relay. */
export interface ProxyRoundRow {
  readonly relay: RelayName;
  readonly round: number;
  /** C=1, S=64. */
  readonly p50us: number;
  readonly p99us: number;
  /** C=100, S=64. */
  readonly rtps100: number;
  /** iperf3, bits/s received. */
  readonly bitsPerSecond: number;
}

export interface ProxyBenchResult {
  readonly name: 'proxy';
  readonly pinned: boolean;
  readonly rows: readonly ProxyRoundRow[];
}

export interface ProxyBenchOptions {
  readonly seconds?: number;
  readonly rounds?: number;
  readonly log?: (line: string) => void;
}

function taskset(core: number | undefined, cmd: string, args: readonly string[]): { cmd: string; args: string[] } {
  return core === undefined ? { cmd, args: [...args] } : { cmd: 'taskset', args: ['-c', String(core), cmd, ...args] };
}

/** Waits until something accepts on 127.0.0.1:port (socat prints nothing when it listens). */
async function waitListening(port: number, timeoutMs = 10_000): Promise<void> {
  const { connect } = await import('node:net');
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect({ host: '127.0.0.1', port }, () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (performance.now() > deadline) throw new Error(`nothing listening on ${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

interface Relay {
  readonly port: number;
  stop(): Promise<void>;
}

async function startRelay(name: RelayName, upstreamPort: number, core: number | undefined): Promise<Relay> {
  if (name === 'direct') return { port: upstreamPort, stop: () => Promise.resolve() };
  if (name === 'socat') {
    const port = await freePort();
    const l = taskset(core, 'socat', [`TCP-LISTEN:${port},fork,reuseaddr,bind=127.0.0.1,backlog=4096`, `TCP:127.0.0.1:${upstreamPort}`]);
    const child = spawn(l.cmd, l.args, { stdio: 'ignore', detached: true });
    const stopOne = stopperOf(child);
    const stop = async (): Promise<void> => {
      // socat's forked children (one per connection) are in its process group.
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGTERM');
      } catch {
        // already gone
      }
      await stopOne();
    };
    try {
      await waitListening(port);
    } catch (err) {
      await stop();
      throw err;
    }
    return { port, stop };
  }
  const l = taskset(core, process.execPath, [`${ROOT}bin/socketkit.js`, 'proxy', '127.0.0.1:0', `127.0.0.1:${upstreamPort}`, '--json', '-q']);
  const s: RunningServer = await startServer({ name: 'socketkit proxy', cmd: l.cmd, args: l.args, port: /"address":"127\.0\.0\.1:(\d+)"/ });
  return { port: s.port, stop: () => s.stop() };
}

async function echoClient(port: number, connections: number, size: number, seconds: number, core: number | undefined): Promise<{ rtps: number; p50us: number; p99us: number; errors: number }> {
  const c = taskset(core, `${C_BIN}/echo_client`, ['127.0.0.1', String(port), String(connections), String(size), String(seconds)]);
  const out = await runToEnd(c.cmd, c.args, seconds * 1000 + 60_000);
  return JSON.parse(out.trim().split('\n').pop()!) as { rtps: number; p50us: number; p99us: number; errors: number };
}

async function iperf(port: number, seconds: number, core: number | undefined): Promise<number> {
  const c = taskset(core, 'iperf3', ['-c', '127.0.0.1', '-p', String(port), '-t', String(seconds), '-J']);
  const j = JSON.parse(await runToEnd(c.cmd, c.args, seconds * 1000 + 60_000)) as { end: { sum_received: { bits_per_second: number } } };
  return j.end.sum_received.bits_per_second;
}

function median(xs: readonly number[]): number {
  const s = [...xs].filter(Number.isFinite).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function spread(xs: readonly number[]): number {
  const s = xs.filter((x) => Number.isFinite(x) && x > 0);
  return s.length ? Math.max(...s) / Math.min(...s) : NaN;
}

export async function benchProxy(options: ProxyBenchOptions = {}): Promise<ProxyBenchResult> {
  const log = options.log ?? ((line: string) => console.log(line));
  const seconds = options.seconds ?? Number(process.env['SOCKETKIT_BENCH_PROXY_SECONDS'] ?? 2);
  const rounds = Math.max(1, options.rounds ?? Number(process.env['SOCKETKIT_BENCH_PROXY_ROUNDS'] ?? 5));
  const made = spawnSync('make', ['-s', '-C', C_DIR], { encoding: 'utf8' });
  if (made.status !== 0) throw new Error(`the C programs did not build: ${(made.stderr || '').trim().split('\n')[0]}`);
  for (const tool of ['socat', 'iperf3']) {
    if (spawnSync(tool, ['-V'], { stdio: 'ignore' }).error) throw new Error(`${tool} is not installed (Debian package ${tool})`);
  }
  const pinned = spawnSync('taskset', ['-c', '0', 'true']).status === 0 && availableParallelism() >= 2;
  const relayCore = pinned ? 0 : undefined;
  const peerCore = pinned ? 1 : undefined;
  log(
    `Relays with no toxics between the C echo client and the C echo server (and iperf3 -c and -s), ${rounds} interleaved rounds of ${seconds} s per figure, ` +
      (pinned ? 'relay on core 0, everything else on core 1 (taskset)' : 'not pinned (taskset or a second core missing)'),
  );
  const es = taskset(peerCore, `${C_BIN}/epoll_echo_server`, ['0', '127.0.0.1']);
  const echo = await startServer({ name: 'c-epoll', cmd: es.cmd, args: es.args, port: /listening on (\d+)/ });
  const iperfPort = await freePort();
  const is = taskset(peerCore, 'iperf3', ['-s', '-p', String(iperfPort), '-B', '127.0.0.1']);
  const iperfServer = spawn(is.cmd, is.args, { stdio: 'ignore' });
  const stopIperf = stopperOf(iperfServer);
  const rows: ProxyRoundRow[] = [];
  try {
    await waitListening(iperfPort);
    const relays: RelayName[] = ['direct', 'socat', 'socketkit'];
    for (let round = 1; round <= rounds; round++) {
      for (const relay of relays) {
        const r = await startRelay(relay, echo.port, relayCore);
        const ri = relay === 'direct' ? { port: iperfPort, stop: () => Promise.resolve() } : await startRelay(relay, iperfPort, relayCore);
        try {
          await echoClient(r.port, 1, 64, 0.3, peerCore); // warm-up, not measured
          const one = await echoClient(r.port, 1, 64, seconds, peerCore);
          const many = await echoClient(r.port, 100, 64, seconds, peerCore);
          const bits = await iperf(ri.port, seconds, peerCore);
          if (one.errors > 0 || many.errors > 0) log(`  round ${round} ${relay}: ${one.errors + many.errors} connection error(s)`);
          rows.push({ relay, round, p50us: one.p50us, p99us: one.p99us, rtps100: many.rtps, bitsPerSecond: bits });
        } finally {
          await r.stop();
          await ri.stop();
        }
      }
      log(`  round ${round}: ${relays.map((n) => { const x = rows.find((y) => y.relay === n && y.round === round)!; return `${n} ${x.p50us.toFixed(0)}/${x.p99us.toFixed(0)} µs, ${Math.round(x.rtps100)} rt/s, ${(x.bitsPerSecond / 8e9).toFixed(2)} GB/s`; }).join('; ')}`);
    }
  } finally {
    await stopIperf();
    await echo.stop();
  }

  const of = (relay: RelayName, f: (r: ProxyRoundRow) => number): number[] => rows.filter((r) => r.relay === relay).map(f);
  // Added latency per round (the relay's figure minus the direct one of the same round), then the median.
  const added = (relay: RelayName, f: (r: ProxyRoundRow) => number): number[] =>
    rows.filter((r) => r.relay === relay).map((r) => f(r) - f(rows.find((d) => d.relay === 'direct' && d.round === r.round)!));
  const line = (label: string, socat: number[], sk: number[], unit: string, digits: number, lowerIsBetter: boolean, direct?: number[]): void => {
    const ms = median(socat);
    const mk = median(sk);
    const ratio = mk / ms;
    const met = lowerIsBetter ? mk <= ms : mk >= ms;
    log(
      `${label.padEnd(30)}${(direct ? `${median(direct).toFixed(digits)} ${unit}` : '').padStart(14)}${`${ms.toFixed(digits)} ${unit}`.padStart(16)}${`(${spread(socat).toFixed(2)}x)`.padStart(9)}${`${mk.toFixed(digits)} ${unit}`.padStart(16)}${`(${spread(sk).toFixed(2)}x)`.padStart(9)}${`${ratio.toFixed(2)}x`.padStart(9)}  ${met ? 'goal met' : 'goal NOT met'}`,
    );
  };
  log('');
  log(`${'median over rounds (spread)'.padEnd(30)}${'direct'.padStart(14)}${'socat'.padStart(25)}${'socketkit'.padStart(25)}${'sk/socat'.padStart(9)}`);
  line('added latency C=1 S=64, p50', added('socat', (r) => r.p50us), added('socketkit', (r) => r.p50us), 'µs', 1, true, of('direct', (r) => r.p50us));
  line('added latency C=1 S=64, p99', added('socat', (r) => r.p99us), added('socketkit', (r) => r.p99us), 'µs', 1, true, of('direct', (r) => r.p99us));
  line('round trips/s C=100 S=64', of('socat', (r) => r.rtps100), of('socketkit', (r) => r.rtps100), '', 0, false, of('direct', (r) => r.rtps100));
  line('bulk (iperf3), GB/s', of('socat', (r) => r.bitsPerSecond / 8e9), of('socketkit', (r) => r.bitsPerSecond / 8e9), '', 2, false, of('direct', (r) => r.bitsPerSecond / 8e9));
  log('(direct: the client to the server with no relay; latency rows: the relay minus direct, per round; the spread of an added latency is over values that can be near 0)');
  return { name: 'proxy', pinned, rows };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await benchProxy();
}

/**
 * File transfer on loopback, side by side in one run:
 *
 * - `sha256`: one core's SHA-256 rate, Node's own hash over the same number of bytes in memory
 *   (1 MiB updates), in a process pinned like the others. The framed transfer hashes every byte
 *   on both ends, so this is its natural ceiling.
 * - `nc`: `nc -d -l -p PORT > /dev/null` receiving from `nc -N HOST PORT < FILE`.
 * - `iperf3 -Z`: the loopback link itself (`iperf3 -c -Z -n SIZE`, the sender zero-copy).
 * - `socketkit raw`: `serve FILE --raw` to `get --raw -o /dev/null` (the server sends with
 *   sendfile when the native helper is built), and the same with `SOCKETKIT_NATIVE=0` (reads
 *   and writes), to show what the helper is worth.
 * - `socketkit framed`: `serve FILE` to `get --dir DIR` — SHA-256 on both ends, a `.part`
 *   written, fsynced, verified and renamed (DIR on tmpfs when it has room, so the disk is not
 *   what is measured).
 *
 * - `framed baseline`: the same with another socketkit tree (SOCKETKIT_BENCH_TRANSFER_BASELINE=DIR,
 *   a built checkout, e.g. `git worktree add --detach /tmp/old HEAD~1 && (cd /tmp/old && npm ci)`),
 *   in the same rounds, so a change to the framed path is measured before/after in one run.
 * - `framed xxh128`: as `socketkit framed`, the hash XXH3-128 (both ends run `transfer-peer.js`,
 *   the library without the CLI, which may not have a flag for it yet).
 * - `framed overlap`: as `socketkit framed` through `transfer-peer.js`, with the defaults: the
 *   overlapped I/O (reads ahead on the thread pool at the sender, `OverlapFileSink` at the
 *   receiver). Against `framed sync I/O` (the same script with `--sync`: synchronous reads and
 *   writes, the I/O of before issue 17), it shows what the overlap is worth within one tree.
 *
 * - `rsync -W`: an rsync daemon serving the file's folder, `rsync -W rsync://127.0.0.1:PORT/m/FILE DIR/`
 *   (whole file, no delta; rsync verifies with its whole-file checksum, writes a temporary file
 *   and renames it): the tool people use for verified copies.
 * - `framed -P 4`: as `socketkit framed`, over four connections (`get -P 4`): the file in 64 MiB
 *   ranges, each verified with XXH3-128, and the whole file's SHA-256 checked at the end.
 * - `shaped -P 1`, `shaped -P 4`: `socketkit framed` of a smaller file (256 MiB at most, a file
 *   of its own, in four ranges with -P 4) through `socketkit proxy --toxic bandwidth:rate=100000`, which holds every
 *   connection to 100 MB/s (per-flow shaping, as on many real paths): where parallel streams pay.
 *   The proxy is not pinned.
 *
 * Both tables, pinned and unpinned, come from one run (SOCKETKIT_BENCH_TRANSFER_PIN=both, the default).
 *
 * Goals printed with the ratios: raw >= 2x nc and >= 0.75x iperf3 -Z; framed >= 0.7x sha256.
 * Each tool runs REPS times, in rounds (every tool once per round). Each ratio is shown as best
 * run against best run, and as the median of the ratios within each round (paired: the tools of
 * a round run within seconds of each other, so a busy moment slows both sides); the goal is
 * checked against the paired figure. When taskset is there, the
 * sending process runs on core 0 and the receiving one on core 1 (threads included), the hash
 * on core 1. Times: nc is timed from the client's start to both processes' exit; iperf3 reports
 * its own; socketkit reports its own (connect to end of stream, or hello to last verified file:
 * without Node's ~50 ms start-up).
 *
 * Run: `node dist/bench/transfer.js` (or within `npm run bench`). Environment:
 * - SOCKETKIT_BENCH_TRANSFER_SIZE: file size (default 2G; e.g. 256M for a quick run).
 * - SOCKETKIT_BENCH_TRANSFER_REPS: runs per tool (default 5: the machine is shared, and the paired ratio is a median).
 * - SOCKETKIT_BENCH_TRANSFER_DIR: where the file goes (default /dev/shm when it has room, else the temp folder).
 * - SOCKETKIT_BENCH_TRANSFER_PIN=0|1|both: not pinned, pinned, or both one after the other (default both).
 * - SOCKETKIT_BENCH_TRANSFER_BASELINE=DIR: also run `framed baseline` from that socketkit tree.
 * - SOCKETKIT_BENCH_TRANSFER_TOOLS=a,b: run only these tools (names as in the table, without commas: `raw no sendfile`).
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, open, rm, statfs, writeFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseSize } from '../src/cli/values.js';
import { nativeStatus } from '../src/native/helper.js';
import { freePort } from './processes.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = `${ROOT}bin/socketkit.js`;
const PEER = fileURLToPath(new URL('./transfer-peer.js', import.meta.url));
const FRAMED_BOUND = `${ROOT}bench/c/bin/framed_bound`;

let framedBoundBuilt: boolean | undefined;

/** Builds bench/c/framed_bound once (it needs OpenSSL's headers, so it is not in make's default target). */
function buildFramedBound(): boolean {
  framedBoundBuilt ??= spawnSync('make', ['-s', '-C', `${ROOT}bench/c`, 'bound'], { stdio: 'ignore' }).status === 0;
  return framedBoundBuilt;
}

export type TransferTool =
  | 'sha256'
  | 'nc'
  | 'iperf3 -Z'
  | 'socketkit raw'
  | 'raw, no sendfile'
  | 'raw into a file'
  | 'socketkit framed'
  | 'framed baseline'
  | 'framed overlap'
  | 'framed sync I/O'
  | 'framed xxh128'
  | 'framed -P 4'
  | 'rsync -W'
  | 'C framed SHA-256'
  | 'C framed, no hash'
  | 'shaped -P 1'
  | 'shaped -P 4';

/** The shaped rows: each connection held to this many KB/s by the proxy's bandwidth toxic. */
const SHAPED_RATE_KBPS = 100_000;
/** The shaped rows move at most this much (at 100 MB/s per connection, 2 GiB would take 21 s a run). */
const SHAPED_MAX_BYTES = 256 * 1024 * 1024;

/** One tool's runs. Rates in bytes per second. */
export interface TransferBenchRow {
  readonly tool: TransferTool;
  readonly bytes: number;
  readonly runs: readonly number[];
  readonly best: number;
  readonly median: number;
}

/** A comparison with its goal. */
export interface TransferBenchRatio {
  readonly name: string;
  /** The median of the ratios within each round (what the goal is checked against). */
  readonly value: number;
  /** Best run against best run. */
  readonly best: number;
  /** The lowest and highest ratio within a round. */
  readonly spread: readonly [number, number];
  /** Undefined for a comparison without a goal (before/after). */
  readonly goal: number | undefined;
}

export interface TransferBenchResult {
  readonly name: 'transfer';
  readonly bytes: number;
  readonly pinned: boolean;
  readonly rows: readonly TransferBenchRow[];
  readonly ratios: readonly TransferBenchRatio[];
}

/** Options of {@link benchTransfer}. */
export interface TransferBenchOptions {
  /** File size in bytes (default: SOCKETKIT_BENCH_TRANSFER_SIZE or 2 GiB). */
  readonly bytes?: number;
  /** Runs per tool (default: SOCKETKIT_BENCH_TRANSFER_REPS or 5). */
  readonly reps?: number;
  /** Where the table goes (default console.log). */
  readonly log?: (line: string) => void;
}

/** No single run may take longer than this: a hung tool fails the row, not the bench. */
const RUN_TIMEOUT_MS = 180_000;

interface Proc {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly ms: number;
}

/** `taskset -c CORE cmd args`, or plain `cmd args` when not pinning. */
function pinned(core: number | undefined, cmd: string, args: readonly string[]): [string, string[]] {
  return core === undefined ? [cmd, [...args]] : ['taskset', ['-c', String(core), cmd, ...args]];
}

/** Runs a process to its end (bounded), optionally with stdin/stdout from files. */
function run(core: number | undefined, cmd: string, args: readonly string[], io: { stdin?: number; stdout?: number } = {}): { done: Promise<Proc>; kill: () => void } {
  const [c, a] = pinned(core, cmd, args);
  const t0 = performance.now();
  const child = spawn(c, a, { stdio: [io.stdin ?? 'ignore', io.stdout ?? 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr?.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const timer = setTimeout(() => child.kill('SIGKILL'), RUN_TIMEOUT_MS);
  const done = new Promise<Proc>((resolve) =>
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, ms: performance.now() - t0 });
    }),
  );
  return { done, kill: () => child.kill('SIGKILL') };
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits until something accepts connections on the port (without a probe that would be taken for a client). */
async function listeningOn(port: number): Promise<void> {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  for (let i = 0; i < 200; i++) {
    const tcp = ['/proc/net/tcp', '/proc/net/tcp6'].map((f) => (existsSync(f) ? readFileSync(f, 'utf8') : '')).join('\n');
    // State 0A is LISTEN.
    if (tcp.split('\n').some((l) => l.includes(`:${hex} `) && / 0A /.test(l))) return;
    await sleep(25);
  }
  throw new Error(`nothing listening on port ${port}`);
}

/** The last JSON object a socketkit command printed. */
function lastJson(stdout: string): Record<string, unknown> {
  const lines = stdout.trim().split('\n').filter((l) => l.startsWith('{'));
  return JSON.parse(lines.at(-1) ?? '{}') as Record<string, unknown>;
}

/** Starts `socketkit serve ... --once --listen 127.0.0.1:0 --json` and resolves with its port once it listens. */
function serve(core: number | undefined, args: readonly string[], env: NodeJS.ProcessEnv = process.env, bin = BIN): Promise<{ port: number; done: Promise<Proc>; kill: () => void }> {
  return startListening(core, [bin, 'serve', ...args, '--once', '--listen', '127.0.0.1:0', '--json'], env);
}

/** Starts a socketkit command that prints a JSON `listening` event with its address (serve, proxy), and resolves with its port. */
async function startListening(core: number | undefined, args: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<{ port: number; done: Promise<Proc>; kill: () => void }> {
  const [c, a] = pinned(core, process.execPath, [...args]);
  const child = spawn(c, a, { stdio: ['ignore', 'pipe', 'pipe'], env });
  let stdout = '';
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const done = new Promise<Proc>((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr, ms: 0 })));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${args[1] ?? 'socketkit'} did not start: ${stderr}`));
    }, 10_000);
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      stdout += s;
      const m = /"event":"listening"[^\n]*"address":"127\.0\.0\.1:(\d+)"/.exec(stdout);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    child.on('close', () => {
      clearTimeout(timer);
      reject(new Error(`${args[1] ?? 'socketkit'} exited: ${stderr}`));
    });
  });
  return { port, done, kill: () => child.kill('SIGKILL') };
}

/** Starts `transfer-peer.js serve FILE ...` and resolves with its port once it listens. */
async function peerServe(core: number | undefined, args: readonly string[]): Promise<{ port: number; done: Promise<Proc> }> {
  const [c, a] = pinned(core, process.execPath, [PEER, 'serve', ...args]);
  const child = spawn(c, a, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const timer = setTimeout(() => child.kill('SIGKILL'), RUN_TIMEOUT_MS);
  const done = new Promise<Proc>((resolve) =>
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, ms: 0 });
    }),
  );
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      stdout += s;
      const m = /\{"port":(\d+)\}/.exec(stdout);
      if (m) resolve(Number(m[1]));
    });
    child.on('close', () => reject(new Error(`transfer-peer serve exited: ${stderr}`)));
  });
  return { port, done };
}

/** Creates the test file: random bytes (so nothing can compress or dedupe them). */
async function makeFile(path: string, bytes: number): Promise<void> {
  const fh = await open(path, 'w');
  try {
    const chunk = Buffer.allocUnsafe(8 * 1024 * 1024);
    for (let at = 0; at < bytes; at += chunk.length) {
      randomFillSync(chunk);
      await fh.write(chunk, 0, Math.min(chunk.length, bytes - at), at);
    }
  } finally {
    await fh.close();
  }
}

const SHA_SCRIPT = `
const { createHash } = require('node:crypto');
const total = Number(process.argv[1]);
const buf = Buffer.alloc(1024 * 1024, 0x5a);
const h = createHash('sha256');
for (let i = 0; i < 64; i++) h.update(buf); // warm-up
const t0 = performance.now();
const g = createHash('sha256');
for (let n = 0; n < total; n += buf.length) g.update(n + buf.length <= total ? buf : buf.subarray(0, total - n));
g.digest();
process.stdout.write(String((performance.now() - t0) / 1000));
`;

/** The shaped rows' file, and its size. */
const shapedFile = (work: string): string => join(work, 'shaped.bin');
const shapedBytes = (bytes: number): number => Math.min(bytes, SHAPED_MAX_BYTES);
const isShaped = (tool: TransferTool): boolean => tool.startsWith('shaped');
/** Its ranges with -P 4: four, one per connection (the default 64 MiB for 256 MiB; a smaller SOCKETKIT_BENCH_TRANSFER_SIZE still splits). */
const shapedRange = (size: number): number => Math.max(64 * 1024, Math.ceil(size / 4));

/** One run of one tool: its rate in bytes per second. */
async function once(tool: TransferTool, file: string, bytes: number, work: string, cores: { send?: number; recv?: number }, baseline: string | undefined): Promise<number> {
  switch (tool) {
    case 'sha256': {
      const r = await run(cores.recv, process.execPath, ['-e', SHA_SCRIPT, String(bytes)]).done;
      if (r.code !== 0) throw new Error(`sha256: ${r.stderr}`);
      return bytes / Number(r.stdout);
    }
    case 'nc': {
      const port = await freePort();
      const devnull = await open('/dev/null', 'w');
      const input = await open(file, 'r');
      try {
        const server = run(cores.recv, 'nc', ['-d', '-l', '-p', String(port)], { stdout: devnull.fd });
        await listeningOn(port);
        const t0 = performance.now();
        const client = run(cores.send, 'nc', ['-N', '127.0.0.1', String(port)], { stdin: input.fd });
        const [c, s] = await Promise.all([client.done, server.done]);
        const seconds = (performance.now() - t0) / 1000;
        if (c.code !== 0 || s.code !== 0) throw new Error(`nc: ${c.stderr}${s.stderr}`);
        return bytes / seconds;
      } finally {
        await devnull.close();
        await input.close();
      }
    }
    case 'iperf3 -Z': {
      const port = await freePort();
      const server = run(cores.recv, 'iperf3', ['-s', '-1', '-p', String(port)]);
      await listeningOn(port);
      const c = await run(cores.send, 'iperf3', ['-c', '127.0.0.1', '-p', String(port), '-Z', '-n', String(bytes), '-J']).done;
      await server.done;
      if (c.code !== 0) throw new Error(`iperf3: ${c.stderr || c.stdout.slice(0, 200)}`);
      const j = JSON.parse(c.stdout) as { end: { sum_received: { bits_per_second: number } } };
      return j.end.sum_received.bits_per_second / 8;
    }
    case 'socketkit raw':
    case 'raw, no sendfile':
    case 'raw into a file': {
      const server = await serve(cores.send, [file, '--raw', '-q'], tool === 'raw, no sendfile' ? { ...process.env, SOCKETKIT_NATIVE: '0' } : process.env);
      // 'raw into a file' writes where the framed rows write (the bench folder, tmpfs when it fits), not to /dev/null.
      const dest = tool === 'raw into a file' ? join(work, 'raw-out.bin') : '/dev/null';
      try {
        const c = await run(cores.recv, process.execPath, [BIN, 'get', `127.0.0.1:${server.port}`, '--raw', '-o', dest, '--json']).done;
        if (c.code !== 0) throw new Error(`${tool}: ${c.stderr}`);
        const j = lastJson(c.stdout);
        if (j['bytes'] !== bytes) throw new Error(`${tool}: received ${String(j['bytes'])} bytes of ${bytes}`);
        return bytes / Number(j['seconds']);
      } finally {
        await server.done;
        if (dest !== '/dev/null') await rm(dest, { force: true });
      }
    }
    case 'framed overlap':
    case 'framed sync I/O':
    case 'framed xxh128': {
      const out = join(work, 'received');
      await rm(out, { recursive: true, force: true });
      const extra = tool === 'framed xxh128' ? ['--hash', 'xxh128'] : [];
      const overlap = tool === 'framed sync I/O' ? ['--sync'] : [];
      const server = await peerServe(cores.send, [file, ...extra, ...overlap]);
      try {
        const c = await run(cores.recv, process.execPath, [PEER, 'get', String(server.port), out, ...extra, ...overlap]).done;
        if (c.code !== 0) throw new Error(`${tool}: ${c.stderr}`);
        const j = lastJson(c.stdout);
        if (j['files'] !== 1 || j['bytes'] !== bytes) throw new Error(`${tool}: ${c.stdout.slice(-300)}`);
        return bytes / Number(j['seconds']);
      } finally {
        await server.done;
        await rm(out, { recursive: true, force: true });
      }
    }
    case 'C framed SHA-256':
    case 'C framed, no hash': {
      // The bound a native data loop would reach (bench/c/framed_bound.c): timed from the sender's start to the receiver's end.
      const port = await freePort();
      const out = join(work, 'c-out');
      const hash = tool === 'C framed SHA-256' ? 'sha256' : 'none';
      const recv = run(cores.recv, FRAMED_BOUND, ['recv', String(port), out, hash]);
      try {
        await listeningOn(port);
        const t0 = performance.now();
        const sent = await run(cores.send, FRAMED_BOUND, ['send', String(port), file, hash]).done;
        const got = await recv.done;
        const ms = performance.now() - t0;
        if (sent.code !== 0 || got.code !== 0) throw new Error(`${tool}: ${sent.stderr}${got.stderr}`);
        if (lastJson(got.stdout)['bytes'] !== bytes) throw new Error(`${tool}: ${got.stdout}`);
        return bytes / (ms / 1000);
      } finally {
        recv.kill();
        await rm(out, { force: true });
      }
    }
    case 'rsync -W': {
      // A daemon for the file's folder, as root without chroot; the client copies the one file, whole.
      const port = await freePort();
      const conf = join(work, 'rsyncd.conf');
      await writeFile(conf, `use chroot = no\nuid = root\ngid = root\npid file = ${join(work, 'rsyncd.pid')}\n[m]\npath = ${dirname(file)}\nread only = yes\n`);
      const daemon = run(cores.send, 'rsync', ['--daemon', '--no-detach', `--port=${port}`, `--config=${conf}`, '--address=127.0.0.1']);
      const out = join(work, 'rsync-out');
      await rm(out, { recursive: true, force: true });
      try {
        await listeningOn(port);
        const c = await run(cores.recv, 'rsync', ['-W', `rsync://127.0.0.1:${port}/m/${basename(file)}`, `${out}/`]).done;
        if (c.code !== 0) throw new Error(`rsync: ${c.stderr}`);
        return bytes / (c.ms / 1000);
      } finally {
        daemon.kill();
        await daemon.done;
        await rm(out, { recursive: true, force: true });
      }
    }
    case 'shaped -P 1':
    case 'shaped -P 4': {
      const size = shapedBytes(bytes);
      const out = join(work, 'received');
      await rm(out, { recursive: true, force: true });
      const server = await serve(cores.send, [shapedFile(work), '-q']);
      let proxy: Awaited<ReturnType<typeof startListening>> | undefined;
      try {
        proxy = await startListening(undefined, [BIN, 'proxy', '127.0.0.1:0', `127.0.0.1:${server.port}`, '--toxic', `bandwidth:rate=${SHAPED_RATE_KBPS}`, '--json']);
        const c = await run(cores.recv, process.execPath, [BIN, 'get', `127.0.0.1:${proxy.port}`, '--dir', out, '--json', ...(tool === 'shaped -P 4' ? ['-P', '4', '--range-size', String(shapedRange(size))] : [])]).done;
        if (c.code !== 0) throw new Error(`${tool}: ${c.stderr}`);
        const j = lastJson(c.stdout);
        if (j['files'] !== 1 || j['bytes'] !== size) throw new Error(`${tool}: ${c.stdout.slice(-300)}`);
        return size / Number(j['seconds']);
      } catch (err) {
        // A server whose client never came would wait for ever.
        server.kill();
        throw err;
      } finally {
        proxy?.kill();
        await Promise.all([server.done, proxy?.done]);
        await rm(out, { recursive: true, force: true });
      }
    }
    case 'socketkit framed':
    case 'framed -P 4':
    case 'framed baseline': {
      const bin = tool === 'socketkit framed' || baseline === undefined ? BIN : join(baseline, 'bin', 'socketkit.js');
      const out = join(work, 'received');
      await rm(out, { recursive: true, force: true });
      const server = await serve(cores.send, [file, '-q'], process.env, bin);
      try {
        const c = await run(cores.recv, process.execPath, [bin, 'get', `127.0.0.1:${server.port}`, '--dir', out, '--json', ...(tool === 'framed -P 4' ? ['-P', '4'] : [])]).done;
        if (c.code !== 0) throw new Error(`${tool}: ${c.stderr}`);
        const j = lastJson(c.stdout);
        if (j['files'] !== 1 || j['bytes'] !== bytes) throw new Error(`${tool}: ${c.stdout.slice(-300)}`);
        return bytes / Number(j['seconds']);
      } finally {
        await server.done;
        await rm(out, { recursive: true, force: true });
      }
    }
  }
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const gbps = (bytesPerSecond: number): string => (bytesPerSecond / 1e9).toFixed(2);

/**
 * Measures the transfer tools side by side on loopback and prints a table with the ratios.
 *
 * @returns One row per tool and the three ratios with their goals.
 */
export async function benchTransfer(options: TransferBenchOptions = {}): Promise<TransferBenchResult & { readonly modes: readonly TransferBenchResult[] }> {
  const want = process.env['SOCKETKIT_BENCH_TRANSFER_PIN'] ?? 'both';
  const canPin = spawnSync('taskset', ['-c', '0', 'true']).status === 0 && availableParallelism() >= 2;
  const modes = want === 'both' ? [true, false] : [want !== '0'];
  const results: TransferBenchResult[] = [];
  for (const pin of modes) {
    if (pin && !canPin) continue;
    results.push(await benchMode(options, pin));
  }
  return { ...results[0]!, modes: results };
}

async function benchMode(options: TransferBenchOptions, pin: boolean): Promise<TransferBenchResult> {
  const log = options.log ?? ((line: string) => console.log(line));
  const envSize = process.env['SOCKETKIT_BENCH_TRANSFER_SIZE'];
  const bytes = options.bytes ?? (envSize ? parseSize('SOCKETKIT_BENCH_TRANSFER_SIZE', envSize) : 2 * 1024 ** 3);
  const reps = options.reps ?? Number(process.env['SOCKETKIT_BENCH_TRANSFER_REPS'] ?? 5);
  const cores = pin ? { send: 0, recv: 1 } : {};
  const have = (cmd: string, arg: string): boolean => spawnSync(cmd, [arg], { stdio: 'ignore' }).error === undefined;

  // The file and the framed copy must fit: tmpfs when it has room for both, else the temp folder.
  let base = process.env['SOCKETKIT_BENCH_TRANSFER_DIR'];
  if (base === undefined) {
    const shm = await statfs('/dev/shm').catch(() => undefined);
    base = shm && shm.bavail * shm.bsize > bytes * 2.2 ? '/dev/shm' : tmpdir();
  }
  const work = await mkdtemp(join(base, 'socketkit-bench-transfer-'));
  const file = join(work, 'file.bin');
  const baseline = process.env['SOCKETKIT_BENCH_TRANSFER_BASELINE'];
  const only = process.env['SOCKETKIT_BENCH_TRANSFER_TOOLS']?.split(',').map((t) => t.trim());
  const tools = (
    [
      'sha256',
      'nc',
      'iperf3 -Z',
      'rsync -W',
      'socketkit raw',
      'raw, no sendfile',
      'raw into a file',
      'socketkit framed',
      'framed -P 4',
      'framed baseline',
      'framed overlap',
      'framed sync I/O',
      'framed xxh128',
      'C framed SHA-256',
      'C framed, no hash',
      'shaped -P 1',
      'shaped -P 4',
    ] as const
  ).filter(
    (t) => (t !== 'framed baseline' || baseline !== undefined) && (only === undefined || only.includes(t.replace(',', ''))),
  );
  const runs = new Map<TransferTool, number[]>(tools.map((t) => [t, []]));
  const failures = new Map<TransferTool, string>();
  try {
    const native = nativeStatus();
    log(`transfer: ${(bytes / 1024 ** 3).toFixed(2)} GiB file in ${base}, ${reps} runs per tool, ${pin ? 'sender on core 0, receiver on core 1 (taskset)' : 'not pinned'}`);
    if (baseline !== undefined) log(`baseline: ${baseline}`);
    log(`native helper: ${native.available ? 'yes (socketkit raw sends with sendfile)' : `no, ${native.reason ?? '?'} (socketkit raw reads and writes)`}`);
    await makeFile(file, bytes);
    if (tools.some(isShaped)) await makeFile(shapedFile(work), shapedBytes(bytes));
    const usable = tools.filter((t) => {
      if (t === 'nc' && !have('nc', '-h')) failures.set(t, 'nc not installed');
      else if (t === 'iperf3 -Z' && !have('iperf3', '--version')) failures.set(t, 'iperf3 not installed');
      else if (t === 'rsync -W' && !have('rsync', '--version')) failures.set(t, 'rsync not installed');
      else if (t.startsWith('C framed') && !buildFramedBound()) failures.set(t, 'bench/c/framed_bound.c did not build (make -C bench/c bound needs libssl-dev)');
      return !failures.has(t);
    });
    for (let rep = 0; rep < reps; rep++) {
      // Every other round in the opposite order: a tool is not always the one that follows a
      // given other (a big tmpfs file just freed, a page cache just filled), nor always first.
      for (const tool of rep % 2 === 0 ? usable : [...usable].reverse()) {
        if (failures.has(tool)) continue;
        try {
          runs.get(tool)!.push(await once(tool, file, bytes, work, cores, baseline));
        } catch (err) {
          failures.set(tool, err instanceof Error ? err.message.split('\n')[0]! : String(err));
        }
      }
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }

  const rows: TransferBenchRow[] = [];
  log(`${'tool'.padEnd(18)}${'best GB/s'.padStart(11)}${'median'.padStart(9)}   runs`);
  for (const tool of tools) {
    const r = runs.get(tool)!;
    if (r.length === 0) {
      log(`${tool.padEnd(18)}${'-'.padStart(11)}${'-'.padStart(9)}   ${failures.get(tool) ?? 'no runs'}`);
      continue;
    }
    const row: TransferBenchRow = { tool, bytes: isShaped(tool) ? shapedBytes(bytes) : bytes, runs: r, best: Math.max(...r), median: median(r) };
    rows.push(row);
    log(`${tool.padEnd(18)}${gbps(row.best).padStart(11)}${gbps(row.median).padStart(9)}   ${r.map(gbps).join(' ')}${failures.has(tool) ? `  (then failed: ${failures.get(tool)})` : ''}`);
  }
  // Each ratio twice: best against best, and the median of the ratios within each round (the
  // tools of one round run back to back, so a busy minute slows both sides of the ratio).
  const ratios: TransferBenchRatio[] = [];
  log(`${''.padEnd(34)}${'best/best'.padStart(10)}${'paired'.padStart(9)}${'spread'.padStart(15)}`);
  const ratio = (name: string, a: TransferTool, b: TransferTool, goal?: number): void => {
    const ra = runs.get(a) ?? [];
    const rb = runs.get(b) ?? [];
    if (ra.length === 0 || rb.length === 0) return;
    const best = Math.max(...ra) / Math.max(...rb);
    const inRound = ra.slice(0, rb.length).map((x, i) => x / rb[i]!);
    const paired = median(inRound);
    const spread: [number, number] = [Math.min(...inRound), Math.max(...inRound)];
    ratios.push({ name, value: paired, best, spread, goal });
    const verdict = goal === undefined ? '' : `   goal >= ${goal}x${paired >= goal ? '' : '  *below the goal'}`;
    log(`${name.padEnd(34)}${`${best.toFixed(2)}x`.padStart(10)}${`${paired.toFixed(2)}x`.padStart(9)}${`${spread[0].toFixed(2)}-${spread[1].toFixed(2)}x`.padStart(15)}${verdict}`);
  };
  ratio('socketkit raw / nc', 'socketkit raw', 'nc', 2);
  ratio('socketkit raw / iperf3 -Z', 'socketkit raw', 'iperf3 -Z', 0.75);
  ratio('socketkit framed / sha256 (1 core)', 'socketkit framed', 'sha256', 0.7);
  ratio('socketkit framed / baseline', 'socketkit framed', 'framed baseline');
  ratio('framed overlap / framed sync I/O', 'framed overlap', 'framed sync I/O');
  ratio('framed xxh128 / socketkit raw', 'framed xxh128', 'socketkit raw', 0.6);
  ratio('framed xxh128 / raw into a file', 'framed xxh128', 'raw into a file');
  ratio('framed xxh128 / framed overlap (SHA-256)', 'framed xxh128', 'framed overlap');
  ratio('socketkit framed / rsync -W', 'socketkit framed', 'rsync -W', 1.5);
  ratio('framed -P 4 / socketkit framed', 'framed -P 4', 'socketkit framed', 1);
  ratio('C framed SHA-256 / rsync -W', 'C framed SHA-256', 'rsync -W');
  ratio('socketkit framed / C framed SHA-256', 'socketkit framed', 'C framed SHA-256');
  ratio('framed xxh128 / C framed, no hash', 'framed xxh128', 'C framed, no hash');
  ratio('shaped -P 4 / shaped -P 1', 'shaped -P 4', 'shaped -P 1');
  return { name: 'transfer', bytes, pinned: pin, rows, ratios };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await benchTransfer();
}

/**
 * Pipe to pipe through a TCP connection on loopback, nc's everyday job:
 * `head -c 2G /dev/zero | socketkit connect ADDR` into `socketkit listen ADDR > /dev/null`, beside
 * the same through OpenBSD nc (`nc -N` into `nc -l`) and socat (`socat -u STDIN TCP:` into
 * `socat -u TCP-LISTEN: STDOUT`), in one run. Rounds are interleaved (each round runs every tool
 * once, the order rotating), and each tool's figure is its median over the rounds, with the
 * spread as max/min. The time is from starting the sender's pipeline until both ends exited
 * (process start-up included: that is what a user waits for). A benchmark, not a test.
 *
 * Run: `node dist/bench/relay.js` (or `npm run bench` with SOCKETKIT_BENCH_ONLY=relay).
 * SOCKETKIT_BENCH_RELAY_BYTES (default 2 GiB) and SOCKETKIT_BENCH_RELAY_ROUNDS (default 5).
 * SOCKETKIT_BENCH_RELAY_JS=1 adds a row for socketkit's JS pump (SOCKETKIT_NATIVE=0).
 */
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { freePort } from './processes.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = `${ROOT}bin/socketkit.js`;

export interface RelayBenchRow {
  readonly tool: string;
  /** Median GB/s (10^9 bytes per second) over the rounds. */
  readonly gbps: number;
  /** max/min of the rounds' GB/s. */
  readonly spread: number;
  readonly rounds: readonly number[];
}

export interface RelayBenchResult {
  readonly name: 'relay';
  readonly bytes: number;
  readonly rows: readonly RelayBenchRow[];
}

interface Tool {
  readonly name: string;
  /** The receiving end, a shell command with {PORT}. */
  readonly receiver: string;
  /** The sending end, reading stdin, with {PORT}. */
  readonly sender: string;
  readonly env?: NodeJS.ProcessEnv;
}

const q = (s: string): string => `'${s.replace(/'/g, "'\\''")}'`;
const NODE = q(process.execPath);
const SK = `${NODE} ${q(CLI)}`;

function has(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

/** Waits for something to listen on `port` without connecting to it (nc -l serves one connection). */
async function listening(port: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const r = spawnSync('ss', ['-Hltn', `sport = :${port}`], { encoding: 'utf8' });
    if (r.stdout.includes(`:${port}`)) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`nothing listening on ${port}`);
}

function sh(cmd: string, env: NodeJS.ProcessEnv | undefined, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', cmd], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } });
    let err = '';
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new Error(`${cmd} exited ${code}: ${err.trim().split('\n').at(-1) ?? ''}`));
    });
  });
}

async function once(tool: Tool, bytes: number): Promise<number> {
  const port = await freePort();
  const sub = (s: string): string => s.replaceAll('{PORT}', String(port));
  const timeoutMs = 60_000 + bytes / 1e5;
  const receiving = sh(`${sub(tool.receiver)} > /dev/null < /dev/null`, tool.env, timeoutMs);
  try {
    await listening(port);
  } catch (err) {
    await receiving.catch(() => undefined);
    throw err;
  }
  const t0 = performance.now();
  const sending = sh(`head -c ${bytes} /dev/zero | ${sub(tool.sender)} > /dev/null`, tool.env, timeoutMs);
  await Promise.all([sending, receiving]);
  return bytes / 1e9 / ((performance.now() - t0) / 1000);
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

export async function benchRelay(options: { readonly bytes?: number; readonly rounds?: number; readonly log?: (l: string) => void } = {}): Promise<RelayBenchResult> {
  const bytes = options.bytes ?? Number(process.env['SOCKETKIT_BENCH_RELAY_BYTES'] ?? 2 * 1024 ** 3);
  const rounds = options.rounds ?? Number(process.env['SOCKETKIT_BENCH_RELAY_ROUNDS'] ?? 5);
  const log = options.log ?? ((l: string) => console.log(l));
  const tools: Tool[] = [{ name: 'socketkit connect → listen', receiver: `${SK} listen 127.0.0.1:{PORT} -q`, sender: `${SK} connect 127.0.0.1:{PORT} -q` }];
  if (process.env['SOCKETKIT_BENCH_RELAY_JS'] === '1') {
    tools.push({ name: 'socketkit, JS pump (SOCKETKIT_NATIVE=0)', receiver: `${SK} listen 127.0.0.1:{PORT} -q`, sender: `${SK} connect 127.0.0.1:{PORT} -q`, env: { SOCKETKIT_NATIVE: '0' } });
  }
  if (has('nc')) tools.push({ name: 'nc -N → nc -l (OpenBSD)', receiver: 'nc -l 127.0.0.1 {PORT}', sender: 'nc -N 127.0.0.1 {PORT}' });
  else log('nc not run: not installed (apt-get install -y netcat-openbsd)');
  if (has('socat')) tools.push({ name: 'socat -u', receiver: 'socat -u TCP-LISTEN:{PORT},bind=127.0.0.1,reuseaddr STDOUT', sender: 'socat -u STDIN TCP:127.0.0.1:{PORT}' });
  else log('socat not run: not installed (apt-get install -y socat)');
  const results = new Map<string, number[]>(tools.map((t) => [t.name, []]));
  log(`${(bytes / 1024 ** 3).toFixed(2)} GiB of zeros, pipe → TCP loopback → pipe (/dev/null), ${rounds} interleaved rounds; median GB/s, spread max/min`);
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < tools.length; i++) {
      const tool = tools[(i + r) % tools.length]!;
      results.get(tool.name)!.push(await once(tool, bytes));
    }
  }
  const rows: RelayBenchRow[] = tools.map((t) => {
    const xs = results.get(t.name)!;
    return { tool: t.name, gbps: median(xs), spread: Math.max(...xs) / Math.min(...xs), rounds: xs };
  });
  const nc = rows.find((r) => r.tool.startsWith('nc'));
  log('');
  log('| tool | GB/s (median) | spread | vs nc |');
  log('|---|---|---|---|');
  for (const row of rows) log(`| ${row.tool} | ${row.gbps.toFixed(2)} | ${row.spread.toFixed(2)}x | ${nc ? `${(row.gbps / nc.gbps).toFixed(2)}x` : '-'} |`);
  return { name: 'relay', bytes, rows };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await benchRelay();
}

/**
 * Running the real `socketkit` binary (and other programs) from tests.
 *
 * - `runCli(args)` runs to completion with a timeout and returns exit code, stdout, stderr.
 * - `spawnCli(args)` starts a long-running command (a server) and returns a handle that can
 *   wait for a line on stdout/stderr, send signals, and await the exit. It is killed when the
 *   test ends.
 * - `startMain(argv)` runs a long-running command in-process, watching its output like `spawnCli`.
 * - `LineWatcher` records every line a stream produces and lets a test wait for one that
 *   matches, including lines that arrived before it started waiting.
 * - `hasCommand(name)` tells interop tests whether an external tool is installed, and
 *   `requireTool(t, name, pkg)` skips the test with a visible reason when it is not (or fails
 *   it, when SOCKETKIT_REQUIRE_TOOLS=1, as CI sets).
 *
 * Every child is started in its own process group and killed as a group (`kill(-pid)`), so a
 * program's own children (`ncat --exec /bin/cat`'s `cat`, `socat EXEC:cat`'s `cat`) die with
 * it; groups still alive when the test process exits (a test-runner timeout included) are
 * killed then.
 */
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { PassThrough, type Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import type { CommandIO } from '../../src/cli/command.js';
import type { CleanupContext } from './tmp.js';
import { parseEndpoint, type Endpoint } from '../../src/net/endpoint.js';

/** Absolute path of bin/socketkit.js (this file runs from dist/test/helpers/). */
export const BIN = fileURLToPath(new URL('../../../bin/socketkit.js', import.meta.url));

/** What a finished process left behind. */
export interface RunResult {
  /** Exit code, or null when killed by a signal. */
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: Buffer;
  readonly stderr: string;
  /** True when the process was killed because it outlived `timeoutMs`. */
  readonly timedOut: boolean;
}

export interface RunOptions {
  /** Bytes written to the child's stdin, which is then closed. Default: stdin is closed at once. */
  readonly input?: Buffer | string;
  /** Kill (SIGKILL) the process after this long. Default 15 s. */
  readonly timeoutMs?: number;
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
  /** Run as another user (tests run by root use this to lose their privileges). */
  readonly uid?: number;
  readonly gid?: number;
}

/** Process groups of children still running: killed when the test process exits. */
const liveGroups = new Set<number>();
let exitHookInstalled = false;

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

function killAllGroups(): void {
  for (const pid of liveGroups) killGroup(pid, 'SIGKILL');
  liveGroups.clear();
}

/**
 * Starts `command` in a new process group (detached) and tracks the group until the child has
 * exited, so it and its descendants can be killed together, and are, if the test process exits
 * (or is told to stop) first.
 */
function spawnGroup(command: string, args: readonly string[], options: SpawnOptions): ChildProcess {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', killAllGroups);
    for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
      process.once(sig, () => {
        killAllGroups();
        process.kill(process.pid, sig); // the default action, now that our listener is gone
      });
    }
  }
  const child = spawn(command, [...args], { ...options, detached: true });
  const pid = child.pid;
  if (pid !== undefined) {
    liveGroups.add(pid);
    // The group may outlive its leader (a child's child): kill what is left when the leader exits.
    child.once('exit', () => {
      killGroup(pid, 'SIGKILL');
      liveGroups.delete(pid);
    });
  }
  return child;
}

/** Sends `signal` to the child's whole process group (see `spawnGroup`). */
function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid !== undefined) killGroup(child.pid, signal);
  else child.kill(signal);
}

/**
 * Runs `command args` to completion and collects its output; never rejects because of the
 * exit status (assert on `code`). Rejects only when the program cannot be started at all.
 */
export function run(command: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  return new Promise<RunResult>((resolve, reject) => {
    const spawnOptions: SpawnOptions = {
      stdio: ['pipe', 'pipe', 'pipe'],
      ...(options.env ? { env: options.env } : {}),
      ...(options.cwd ? { cwd: options.cwd } : {}),
      ...(options.uid !== undefined ? { uid: options.uid } : {}),
      ...(options.gid !== undefined ? { gid: options.gid } : {}),
    };
    const child = spawnGroup(command, args, spawnOptions);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      signalGroup(child, 'SIGKILL');
    }, options.timeoutMs ?? 15_000);
    child.stdout!.on('data', (c: Buffer) => out.push(c));
    child.stderr!.on('data', (c: Buffer) => err.push(c));
    child.stdin!.on('error', () => undefined); // the child may exit before reading its input
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString('utf8'), timedOut });
    });
    child.stdin!.end(options.input);
  });
}

/** Runs `socketkit args` (the real binary, with this Node) to completion. */
export function runCli(args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  return run(process.execPath, [BIN, ...args], options);
}

/** Records the lines of a text stream and lets tests wait for a matching one. */
export class LineWatcher {
  /** Every complete line so far, without its newline. */
  readonly lines: string[] = [];
  #partial = '';
  #ended = false;
  readonly #waiters = new Set<() => void>();

  constructor(stream: Readable) {
    stream.setEncoding('utf8');
    stream.on('data', (text: string) => {
      const parts = (this.#partial + text).split('\n');
      this.#partial = parts.pop()!;
      this.lines.push(...parts);
      this.#wake();
    });
    stream.once('end', () => {
      if (this.#partial !== '') this.lines.push(this.#partial);
      this.#partial = '';
      this.#ended = true;
      this.#wake();
    });
  }

  /** Everything received so far, as text. */
  get text(): string {
    return this.lines.join('\n') + (this.#partial ? `\n${this.#partial}` : '');
  }

  #wake(): void {
    for (const w of [...this.#waiters]) w();
  }

  /**
   * Resolves with the first line (seen before or after the call) that matches; rejects when the
   * stream ends first or after `timeoutMs`, quoting what was seen.
   */
  waitFor(match: RegExp | ((line: string) => boolean), timeoutMs = 10_000): Promise<string> {
    const test = typeof match === 'function' ? match : (l: string) => match.test(l);
    return new Promise<string>((resolve, reject) => {
      const check = (): void => {
        const found = this.lines.find(test);
        if (found !== undefined) finish(undefined, found);
        else if (this.#ended) finish(new Error(`stream ended without a line matching ${String(match)}; got:\n${this.text}`));
      };
      const timer = setTimeout(() => finish(new Error(`no line matching ${String(match)} within ${timeoutMs} ms; got:\n${this.text}`)), timeoutMs);
      const finish = (err?: Error, line?: string): void => {
        clearTimeout(timer);
        this.#waiters.delete(check);
        if (err) reject(err);
        else resolve(line!);
      };
      this.#waiters.add(check);
      check();
    });
  }
}

/** A running child process with watched output. */
export interface Spawned {
  readonly child: ChildProcess;
  readonly stdout: LineWatcher;
  readonly stderr: LineWatcher;
  /** Resolves when the process has exited and its output streams have closed. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Sends a signal if the process is still running. */
  kill(signal?: NodeJS.Signals): void;
  /** Waits for the exit, killing with SIGKILL after `timeoutMs`. */
  waitExit(timeoutMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Starts `command args` in the background with stdin closed (unless `keepStdin`), watching its
 * stdout and stderr line by line. `kill` signals its whole process group. With `t`, the group is
 * SIGKILLed (if still running) when the test ends.
 */
export function spawnProcess(command: string, args: readonly string[], t?: CleanupContext, options: { keepStdin?: boolean } & Pick<RunOptions, 'env' | 'cwd'> = {}): Spawned {
  const child = spawnGroup(command, args, {
    stdio: [options.keepStdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    ...(options.env ? { env: options.env } : {}),
    ...(options.cwd ? { cwd: options.cwd } : {}),
  });
  child.stdin?.on('error', () => undefined);
  const stdout = new LineWatcher(child.stdout!);
  const stderr = new LineWatcher(child.stderr!);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('close', (code, signal) => resolve({ code, signal }));
    child.once('error', () => resolve({ code: null, signal: null }));
  });
  const running = (): boolean => child.exitCode === null && child.signalCode === null;
  const kill = (signal: NodeJS.Signals = 'SIGTERM'): void => {
    if (running()) signalGroup(child, signal);
  };
  const waitExit = async (timeoutMs = 10_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> => {
    const timer = setTimeout(() => kill('SIGKILL'), timeoutMs);
    try {
      return await exited;
    } finally {
      clearTimeout(timer);
    }
  };
  t?.after(async () => {
    kill('SIGKILL');
    await exited;
  });
  return { child, stdout, stderr, exited, kill, waitExit };
}

/** Starts `socketkit args` (the real binary) in the background; see `spawnProcess`. */
export function spawnCli(args: readonly string[], t?: CleanupContext, options: { keepStdin?: boolean } = {}): Spawned {
  return spawnProcess(process.execPath, [BIN, ...args], t, options);
}

const found = new Map<string, string | undefined>();

/** The full path of `name` on PATH, or undefined when it is not installed. */
export function hasCommand(name: string): string | undefined {
  if (!found.has(name)) {
    const r = spawnSync('sh', ['-c', `command -v "$1"`, 'sh', name], { encoding: 'utf8' });
    found.set(name, r.status === 0 ? r.stdout.trim() || undefined : undefined);
  }
  return found.get(name);
}

/** What `runMain` collected. */
export interface MainResult {
  readonly code: number;
  readonly stdout: Buffer;
  readonly stderr: string;
}

/**
 * Runs the CLI in-process, `main(argv, io)`, with in-memory streams: faster than spawning and
 * fine for commands that finish by themselves. `input` becomes stdin (empty by default);
 * `shutdown` stands in for SIGINT/SIGTERM.
 */
export async function runMain(argv: readonly string[], options: { input?: Buffer | string; shutdown?: AbortSignal } = {}): Promise<MainResult> {
  const { main } = await import('../../src/cli/main.js');
  const { PassThrough, Readable } = await import('node:stream');
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  stdout.on('data', (c: Buffer) => out.push(c));
  stderr.on('data', (c: Buffer) => err.push(c));
  const input = options.input === undefined ? [] : [Buffer.from(options.input)];
  const code = await main(argv, {
    stdout,
    stderr,
    stdin: Readable.from(input),
    shutdown: options.shutdown ?? new AbortController().signal,
  });
  return { code, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString('utf8') };
}

/** A CLI command running in-process (see `startMain`). */
export interface RunningMain {
  /** Its stdout and stderr, line by line, as they are written. */
  readonly stdout: LineWatcher;
  readonly stderr: LineWatcher;
  /** Stands in for SIGINT/SIGTERM: aborts the command's shutdown signal. */
  stop(): void;
  /** Resolves with the exit code and everything written, once `main` returns. */
  readonly done: Promise<MainResult>;
}

/**
 * Starts `main(argv, io)` in-process with in-memory streams and returns at once, so a test can
 * wait for a line (a server's 'listening'), talk to it, then `stop()` it and await `done`.
 * Stdin is empty. Like `runMain`, but for commands that run until stopped.
 */
export function startMain(argv: readonly string[]): RunningMain {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  // The watchers set the streams' encoding: every chunk is text from then on.
  const outLines = new LineWatcher(stdout);
  const errLines = new LineWatcher(stderr);
  let out = '';
  let err = '';
  stdout.on('data', (c: string) => (out += c));
  stderr.on('data', (c: string) => (err += c));
  const stdin = new PassThrough();
  stdin.end();
  const ac = new AbortController();
  const done = (async (): Promise<MainResult> => {
    const { main } = await import('../../src/cli/main.js');
    try {
      const code = await main(argv, { stdout, stderr, stdin, shutdown: ac.signal });
      stdout.end();
      stderr.end();
      await Promise.all([finished(stdout), finished(stderr)]);
      // Every line written has been read (and seen by the watchers) by now.
      return { code, stdout: Buffer.from(out), stderr: err };
    } finally {
      stdout.end();
      stderr.end();
    }
  })();
  return { stdout: outLines, stderr: errLines, stop: () => ac.abort(), done };
}

/** In-process CLI IO: captured stdout/stderr, the given stdin, and a shutdown you trigger with `stop()`. */
export function captureIO(stdin: string | Buffer = ''): { io: CommandIO; out: () => string; err: () => string; stop: () => void } {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let o = '';
  let e = '';
  stdout.on('data', (c: Buffer) => (o += c.toString()));
  stderr.on('data', (c: Buffer) => (e += c.toString()));
  const input = new PassThrough();
  input.end(stdin);
  const ac = new AbortController();
  return { io: { stdout, stderr, stdin: input, shutdown: ac.signal }, out: () => o, err: () => e, stop: () => ac.abort() };
}

/** Parses NDJSON output (one JSON object per non-empty line). */
export function ndjson(text: string): Record<string, unknown>[] {
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** The part of node:test's TestContext `requireTool` needs. */
export interface SkipContext {
  skip(message?: string): void;
}

/** True when env SOCKETKIT_REQUIRE_TOOLS=1: a missing outside program fails the test (CI). */
export const REQUIRE_TOOLS = process.env.SOCKETKIT_REQUIRE_TOOLS === '1';

/**
 * The one gate for tests that need an outside program: returns its full path when `tool` is on
 * PATH. When it is missing, the test is skipped with a reason naming the Debian package `pkg`
 * (and `undefined` is returned: the test should return), or, with SOCKETKIT_REQUIRE_TOOLS=1,
 * this throws, so CI cannot pass by skipping.
 *
 * @example
 * ```ts
 * it('talks to nc', async (t) => {
 *   if (!requireTool(t, 'nc', 'netcat-openbsd')) return;
 * });
 * ```
 */
export function requireTool(t: SkipContext, tool: string, pkg: string, why?: string): string | undefined {
  const path = hasCommand(tool);
  if (path !== undefined) return path;
  const reason = `${tool} is not installed (Debian package ${pkg})${why ? `: ${why}` : ''}`;
  if (REQUIRE_TOOLS) throw new Error(`${reason}; SOCKETKIT_REQUIRE_TOOLS=1 requires it`);
  t.skip(`${reason}; set SOCKETKIT_REQUIRE_TOOLS=1 to fail instead`);
  return undefined;
}

/** A `socketkit` server started with `--json`, once it listens. */
export interface JsonServer {
  readonly proc: Spawned;
  /** The address its `listening` event gave. */
  readonly address: string;
  readonly endpoint: Endpoint;
}

/** Starts `socketkit ARGS --json` and waits for its `listening` event. */
export async function startJsonServer(t: CleanupContext, args: readonly string[]): Promise<JsonServer> {
  const proc = spawnCli([...args, '--json'], t);
  const line = await proc.stdout.waitFor((l) => l.includes('"listening"'));
  const address = (JSON.parse(line) as { address: string }).address;
  return { proc, address, endpoint: parseEndpoint(address, { defaultHost: '127.0.0.1' }) };
}

/** The JSON events a `--json` process printed so far with this name. */
export function jsonEvents(proc: Spawned, name: string): Record<string, unknown>[] {
  return proc.stdout.lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>).filter((e) => e['event'] === name);
}

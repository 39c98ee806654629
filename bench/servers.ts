/**
 * The server processes the benchmarks compare: each is a command that prints the port it bound
 * (matched by a regular expression on its standard output) and stops on SIGTERM.
 */
import { spawn, type ChildProcess } from 'node:child_process';

/** A server to start: its name in the tables, its command, and where its port shows. */
export interface ServerSpec<Name extends string = string> {
  readonly name: Name;
  readonly cmd: string;
  readonly args: readonly string[];
  /** Finds the port in the server's standard output (the first group). */
  readonly port: RegExp;
}

/** A started server. */
export interface RunningServer {
  readonly child: ChildProcess;
  readonly port: number;
  readonly pid: number;
  /** SIGTERM, then SIGKILL after 5 s; resolves once the process has exited. */
  stop(): Promise<void>;
}

/**
 * Starts `spec` (or `launch`, the same server wrapped, e.g. pinned to a core) and resolves once
 * it has printed its port; rejects, with what it wrote to stderr, if it exits or says nothing
 * for 10 s.
 */
/** Stops `child` (SIGTERM, then SIGKILL after 5 s) and resolves once it has exited; idempotent. */
export function stopperOf(child: ChildProcess): () => Promise<void> {
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(t);
  };
}

export async function startServer(spec: ServerSpec, launch: { readonly cmd: string; readonly args: readonly string[] } = spec): Promise<RunningServer> {
  const child = spawn(launch.cmd, [...launch.args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.on('data', (c: Buffer) => {
    if (err.length < 4096) err += c.toString();
  });
  const stop = stopperOf(child);
  try {
    const port = await new Promise<number>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`${spec.name} did not start within 10 s: ${err}`)), 10_000);
      child.once('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`${spec.name} exited (${code}) before listening: ${err}`));
      });
      child.stdout.on('data', (c: Buffer) => {
        // Only the first lines matter; later output (JSON events) is read and dropped.
        if (out.length > 4096) return;
        out += c.toString();
        const m = spec.port.exec(out);
        if (m) {
          clearTimeout(timer);
          resolve(Number(m[1]));
        }
      });
    });
    child.stdout.resume();
    return { child, port, pid: child.pid!, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** Child processes for the benchmarks: a free port, pinning, and running a client to its end. */
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';

/** A loopback port that was free a moment ago. */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen({ host, port: 0 }, () => {
      const a = s.address();
      s.close(() => (a !== null && typeof a === 'object' ? resolve(a.port) : reject(new Error('no port'))));
    });
  });
}

/**
 * `cmd args` on core `core` (when pinning; `undefined` leaves it free), with the descriptor limit
 * raised to the hard limit: 10,000 connections need more than the usual 1,024.
 */
export function pinned(core: number | undefined, cmd: string, args: readonly string[]): { cmd: string; args: string[] } {
  return { cmd: 'bash', args: ['-c', 'ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$@"', 'bench', ...(core !== undefined ? ['taskset', '-c', String(core)] : []), cmd, ...args] };
}

/**
 * Runs `cmd args` to its end, killed after `timeoutMs`; resolves with its standard output when
 * `accept(code, stdout)` holds (default: exit 0), rejects with its last lines otherwise.
 */
export function runToEnd(cmd: string, args: readonly string[], timeoutMs: number, accept: (code: number | null, stdout: string) => boolean = (code) => code === 0): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const child = spawn(cmd, [...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (accept(code, out)) resolve(out);
      else reject(new Error(`${cmd} ${args.slice(-9).join(' ')} failed (${code ?? signal}): ${(err || out).trim().split('\n').slice(-2).join(' ')}`));
    });
  });
}

/** socketkit load exits 1 when some round trips failed; its figures are still worth a row. */
export const loadFinished = (code: number | null, stdout: string): boolean => code === 0 || (code === 1 && stdout.includes('"event":"load"'));

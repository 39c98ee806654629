/**
 * Running a command under a pseudo-terminal, to see the exact bytes a user's terminal would get.
 *
 * `script -qefc CMD /dev/null` (util-linux) runs CMD with a pty as its stdin, stdout and stderr
 * and copies everything written to the pty to its own stdout; `-e` returns CMD's exit status.
 */
import { spawn } from 'node:child_process';
import type { CleanupContext } from './tmp.js';

/** What a command under a pty wrote, as raw bytes, and how it ended. */
export interface PtyResult {
  readonly code: number | null;
  readonly output: Buffer;
  readonly timedOut: boolean;
}

/** Quotes `arg` for a POSIX shell. */
export function shellQuote(arg: string): string {
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

/**
 * Runs `command args` under a pty (through `script`), with a time limit (SIGKILL after
 * `timeoutMs`, and when the test ends).
 */
export function runUnderPty(command: string, args: readonly string[], t: CleanupContext, timeoutMs = 15_000): Promise<PtyResult> {
  const line = [command, ...args].map(shellQuote).join(' ');
  return new Promise<PtyResult>((resolve, reject) => {
    const child = spawn('script', ['-qefc', line, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    const out: Buffer[] = [];
    let timedOut = false;
    // detached: script and the command form a process group, killed together.
    const kill = (): void => {
      try {
        if (child.pid !== undefined && child.exitCode === null) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      kill();
    }, timeoutMs);
    t.after(() => {
      clearTimeout(timer);
      kill();
    });
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => out.push(c));
    child.stdin.end();
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output: Buffer.concat(out), timedOut });
    });
  });
}

// For tests of `socketkit listen`: start it on an ephemeral port, and dial it.
import { connect as netConnect, type Socket } from 'node:net';
import { once } from 'node:events';
import { spawnCli, run, type Spawned } from './cli.js';
import type { CleanupContext } from './tmp.js';

/** Starts `listen 127.0.0.1:0 ARGS` and resolves with it and its port once it listens. */
export async function startListen(args: readonly string[], t: CleanupContext, keepStdin = false): Promise<{ p: Spawned; port: number }> {
  const p = spawnCli(['listen', '127.0.0.1:0', ...args], t, { keepStdin });
  const line = await p.stderr.waitFor(/^listening on /);
  return { p, port: Number(/:(\d+) /.exec(line)![1]) };
}

/** A half-open-capable TCP connection to 127.0.0.1:port, once connected (5 s at most). */
export async function dial(port: number): Promise<Socket> {
  const s = netConnect({ host: '127.0.0.1', port, allowHalfOpen: true });
  try {
    await once(s, 'connect', { signal: AbortSignal.timeout(5_000) });
  } catch (error) {
    s.destroy();
    throw error;
  }
  return s;
}

/**
 * Waits for an outside server to listen without connecting to it (nc -l and ncat -l without
 * -k serve the first connection only: a probe would use it up): polls `ss` for the port.
 */
export async function waitForListeningOnce(port: number): Promise<void> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    const r = await run('ss', ['-Hltn', `sport = :${port}`], { timeoutMs: 2_000 });
    if (r.stdout.toString().includes(`:${port}`)) return;
    if (Date.now() > deadline) throw new Error(`nothing listening on port ${port}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/**
 * Socket helpers for tests: which loopback families exist, free ports, readiness polling,
 * waiting for a sender to stall, reading a whole stream, and small misbehaving servers (ones
 * that echo wrongly, or not at all) to test clients against.
 *
 * Everything here is bounded in time and closes what it opens.
 */
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { formatEndpoint, type Endpoint } from '../../src/net/endpoint.js';
import type { CleanupContext } from './tmp.js';

let ipv6: Promise<boolean> | undefined;

/** True when this machine can listen on `::1` (some containers have no IPv6 loopback). */
export function hasIPv6(): Promise<boolean> {
  ipv6 ??= new Promise<boolean>((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen({ host: '::1', port: 0 }, () => s.close(() => resolve(true)));
  });
  return ipv6;
}

/**
 * A port that was free a moment ago on `host`: the system picks it, we close it and return it.
 * Racy by nature (another process may take it); only for external programs (socat, ncat) that
 * cannot report the port they bound. Prefer port 0 and read the bound port wherever possible.
 */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen({ host, port: 0 }, () => {
      const addr = s.address();
      const port = addr !== null && typeof addr === 'object' ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/** Connects once; resolves with the socket or rejects with the raw Node error. */
export function rawConnect(ep: Endpoint): Promise<Socket> {
  return new Promise<Socket>((resolve, reject) => {
    const s = ep.kind === 'unix' ? netConnect({ path: ep.path }) : netConnect({ host: ep.host, port: ep.port });
    s.once('connect', () => {
      s.removeListener('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}

/**
 * Polls until something accepts connections at `ep` (an external server starting up), trying
 * every `intervalMs` for at most `timeoutMs`. The probe connection is closed at once.
 */
export async function waitForListening(ep: Endpoint, timeoutMs = 5_000, intervalMs = 25): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const s = await rawConnect(ep);
      s.destroy();
      return;
    } catch (err) {
      if (Date.now() >= deadline) throw new Error(`nothing listening at ${JSON.stringify(ep)} after ${timeoutMs} ms`, { cause: err });
      await sleep(intervalMs);
    }
  }
}

/** Reads `stream` to its end and returns every byte. */
export async function readAll(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string));
  return Buffer.concat(parts);
}

/** Polls `cond` every `intervalMs` until true; throws after `timeoutMs` with `what` in the message. */
export async function waitUntil(cond: () => boolean, what: string, timeoutMs = 5_000, intervalMs = 10): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

/** Options of `waitForStall`. */
export interface StallOptions {
  /** Consecutive checks that must see the same value. Default 5. */
  readonly samples?: number;
  /** Time between checks. Default 20 ms. */
  readonly intervalMs?: number;
  /** Give up after this long. Default 10 s. */
  readonly timeoutMs?: number;
  /** Checked at every sample: a reason string fails the wait at once (it finished instead of stalling). */
  readonly failIf?: () => string | undefined;
}

/**
 * Waits until `progress()` (a count that grows while something works: bytes sent, messages
 * written) has kept one value over `samples` checks `intervalMs` apart, i.e. it is stuck, and
 * returns that value. Throws after `timeoutMs`, or as soon as `failIf` names a reason. Several
 * checks are needed because one late timer on a busy machine must not pass for a stall.
 */
export async function waitForStall(progress: () => number, what: string, options: StallOptions = {}): Promise<number> {
  const { samples = 5, intervalMs = 20, timeoutMs = 10_000, failIf } = options;
  const deadline = Date.now() + timeoutMs;
  let last = progress();
  let same = 0;
  for (;;) {
    const reason = failIf?.();
    if (reason !== undefined) throw new Error(`${what} never stalled: ${reason}`);
    if (same >= samples) return last;
    if (Date.now() >= deadline) throw new Error(`${what} did not stall within ${timeoutMs} ms (last value ${last})`);
    await sleep(intervalMs);
    const now = progress();
    same = now === last ? same + 1 : 0;
    last = now;
  }
}

/** A throwaway server with a custom per-connection behaviour. */
export interface TestServer {
  /** Where it listens (the real port when 0 was asked for). */
  readonly endpoint: Endpoint;
  /** Connections accepted so far. */
  readonly accepted: number;
  /** Destroys every connection and stops listening; safe to call twice. */
  close(): Promise<void>;
}

/**
 * Listens on `ep` (port 0 or a Unix path) and runs `onConnection` for every client. Every
 * connection gets an error listener (tests provoke resets) and is destroyed on close. With `t`,
 * the server is closed when the test ends.
 *
 * Connections are half-open capable (`allowHalfOpen`): when the client ends its side, the
 * connection stays open until `onConnection`'s code ends it, so a server can read everything
 * and still answer, or never answer at all.
 *
 * @example
 * ```ts
 * // A server that answers every connection with 'nope' and closes.
 * const srv = await startTestServer({ kind: 'inet', host: '127.0.0.1', port: 0 }, (s) => s.end('nope'), t);
 * ```
 */
export async function startTestServer(ep: Endpoint, onConnection: (socket: Socket) => void, t?: CleanupContext): Promise<TestServer> {
  const sockets = new Set<Socket>();
  let accepted = 0;
  const server: Server = createServer({ allowHalfOpen: true }, (socket) => {
    accepted++;
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.once('close', () => sockets.delete(socket));
    onConnection(socket);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    if (ep.kind === 'unix') server.listen({ path: ep.path }, resolve);
    else server.listen({ host: ep.host, port: ep.port }, resolve);
  });
  const addr = server.address();
  const endpoint: Endpoint = ep.kind === 'unix' || addr === null || typeof addr === 'string' ? ep : { kind: 'inet', host: ep.host, port: addr.port };
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    });
    return closing;
  };
  t?.after(close);
  return {
    endpoint,
    get accepted() {
      return accepted;
    },
    close,
  };
}

/**
 * A loopback port where nothing listens, for "connection refused" tests: port 1 (tcpmux), below
 * the ephemeral range. A port freed by `freePort()` is not that: any test running beside it may
 * be given the same port by its own listen(0) or bind(0) before the connect.
 */
export const REFUSING_PORT = 1;

/**
 * An IPv4 loopback address where connecting hangs (so connect timeouts can be tested without
 * leaving loopback): a Python listener with backlog 0 that never accepts, its queue filled by
 * one held connection, so the kernel drops further SYNs. Resolves undefined when python3 is
 * missing or the kernel still answers (the caller should skip). Cleaned up when `t` ends.
 */
export async function unansweredEndpoint(t: CleanupContext): Promise<Endpoint | undefined> {
  const { spawn } = await import('node:child_process');
  const py = spawn('python3', ['-c', 'import socket,sys\ns=socket.socket()\ns.bind(("127.0.0.1",0))\ns.listen(0)\nprint(s.getsockname()[1],flush=True)\nsys.stdin.read()'], {
    stdio: ['pipe', 'pipe', 'ignore'],
  });
  const held: Socket[] = [];
  t.after(() => {
    for (const s of held) s.destroy();
    py.kill('SIGKILL');
  });
  py.stdin.on('error', () => undefined);
  const port = await new Promise<number | undefined>((resolve) => {
    py.once('error', () => resolve(undefined));
    py.once('exit', () => resolve(undefined));
    py.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim()) || undefined));
  });
  if (port === undefined) return undefined;
  const ep: Endpoint = { kind: 'inet', host: '127.0.0.1', port };
  // Fill the accept queue: connect until an attempt gets no answer within 200 ms.
  for (let i = 0; i < 4; i++) {
    const s = netConnect({ host: ep.host, port: ep.port });
    s.on('error', () => undefined);
    held.push(s);
    const answered = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 200);
      s.once('connect', () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
    if (!answered) return ep;
  }
  return undefined;
}

/**
 * Writes `text` on `s` and resolves with the milliseconds until as many bytes came back; rejects
 * if the socket closes first or after `timeoutMs`. (One 'data' listener for the whole wait, so
 * no chunk is missed between waits.)
 */
export function roundTripMs(s: Socket, text: string, timeoutMs = 10_000): Promise<number> {
  const start = performance.now();
  return new Promise<number>((resolve, reject) => {
    let n = 0;
    const done = (err?: Error): void => {
      clearTimeout(timer);
      s.off('data', onData);
      s.off('close', onClose);
      if (err) reject(err);
      else resolve(performance.now() - start);
    };
    const onData = (d: Buffer): void => {
      n += d.length;
      if (n >= text.length) done();
    };
    const onClose = (): void => done(new Error(`closed after ${n} of ${text.length} bytes came back`));
    const timer = setTimeout(() => done(new Error(`${n} of ${text.length} bytes came back within ${timeoutMs} ms`)), timeoutMs);
    s.on('data', onData);
    s.once('close', onClose);
    s.write(text);
  });
}

/**
 * Resolves once connecting to `ep` is refused; fails if it is still accepted after 5 s. A
 * connection that reached the backlog as the listening socket closed is reset rather than served
 * (seen in CI): the listener is going, so it looks again until it refuses.
 */
export async function refusedSoon(ep: Endpoint): Promise<void> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    try {
      const s = await rawConnect(ep);
      s.destroy();
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ECONNRESET') {
        if (code !== 'ECONNREFUSED') throw err;
        return;
      }
    }
    if (Date.now() >= deadline) throw new Error(`${formatEndpoint(ep)} still accepts connections while stopping`);
    await sleep(20);
  }
}

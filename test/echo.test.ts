// Integration tests of the TCP echo server and client (library level) on real sockets:
// 127.0.0.1, ::1 and a temporary Unix path. Many concurrent clients, a 10 MiB binary payload,
// backpressure against a client that never reads, every connection failure the CLI reports,
// misbehaving servers (wrong, short, long and missing echoes), Unix socket file handling, and
// graceful close. Errors are matched on their `code` only; no timing assertions.
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, linkSync, lstatSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Socket } from 'node:net';
import { startEchoServer, type EchoServer, type EchoServerEvent } from '../src/echo/server.js';
import { echoMessage, echoStream } from '../src/echo/client.js';
import { connect } from '../src/net/connect.js';
import { listen, type Listener } from '../src/net/listen.js';
import { startManagedEchoServer } from '../src/server/echo.js';
import { endAndFlush, waitDrain, writeWithBackpressure } from '../src/net/write.js';
import { Writable } from 'node:stream';
import type { Endpoint } from '../src/net/endpoint.js';
import { SocketkitError } from '../src/core/errors.js';
import { tempDir, type CleanupContext } from './helpers/tmp.js';
import { freePort, hasIPv6, rawConnect, readAll, startTestServer, waitUntil } from './helpers/net.js';

const MiB = 1024 * 1024;
const v4: Endpoint = { kind: 'inet', host: '127.0.0.1', port: 0 };
const v6: Endpoint = { kind: 'inet', host: '::1', port: 0 };

let ipv6 = false;
before(async () => {
  ipv6 = await hasIPv6();
});

/** Starts an echo server that is closed when the test ends. */
async function echoServer(t: CleanupContext, ep: Endpoint, onEvent?: (e: EchoServerEvent) => void): Promise<EchoServer> {
  const server = await startEchoServer(ep, onEvent ? { onEvent } : {});
  t.after(() => server.close());
  return server;
}

/** Destroys every socket when the test ends. */
function track(t: CleanupContext, sockets: Socket[]): Socket[] {
  t.after(() => {
    for (const s of sockets) s.destroy();
  });
  return sockets;
}

function* chunked(buf: Buffer, size: number): Generator<Buffer> {
  for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, i + size);
}

/** User-space bytes a server holds for its connections: queued to write, plus read but not yet handled. */
function serverBuffered(listener: Listener): number {
  let n = 0;
  for (const s of listener.connections) n += s.writableLength + s.readableLength;
  return n;
}

/** Resolves true on 'drain', false when none comes within `ms` (the peer is not taking data). */
function drainWithin(socket: Socket, ms: number): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const done = (drained: boolean): void => {
      clearTimeout(timer);
      socket.removeListener('drain', onDrain);
      socket.removeListener('close', onClose);
      resolve(drained);
    };
    const onDrain = (): void => done(true);
    const onClose = (): void => done(false);
    const timer = setTimeout(() => done(false), ms);
    socket.once('drain', onDrain);
    socket.once('close', onClose);
  });
}

/**
 * A client sends as fast as the kernel lets it and never reads. If the server did not pause
 * reading, it would take in everything and hold it (we fail as soon as it holds BOUND); with
 * backpressure the client's writes stop being accepted once the kernel buffers on both sides
 * are full (tens of MiB at most on Linux), long before LIMIT.
 */
async function assertBackpressure(t: CleanupContext & { diagnostic(message: string): void }, listener: Listener): Promise<void> {
  const client = await rawConnect(listener.endpoint);
  track(t, [client]);
  client.pause(); // never read: the echo piles up in the kernel, then at the server
  client.on('error', () => undefined);
  const BOUND = 2 * MiB;
  const LIMIT = 512 * MiB;
  const STALL_MS = 300;
  const chunk = Buffer.alloc(MiB, 0x5a);
  let written = 0;
  let peak = 0;
  let blocked = false;
  while (written < LIMIT) {
    peak = Math.max(peak, serverBuffered(listener));
    assert.ok(peak < BOUND, `server buffers ${peak} bytes after the client wrote ${written}: no backpressure`);
    written += chunk.length;
    if (client.write(chunk)) continue;
    if (!(await drainWithin(client, STALL_MS))) {
      blocked = true;
      break;
    }
  }
  assert.ok(blocked, `the client's writes never blocked after ${written} bytes: the server read without bound`);
  // Still blocked a moment later, and the server still holds little.
  await sleep(100);
  peak = Math.max(peak, serverBuffered(listener));
  assert.ok(peak < BOUND, `server buffers ${peak} bytes`);
  assert.ok(client.writableLength > 0, 'the client still has unsent bytes');
  t.diagnostic(`client wrote ${written / MiB} MiB before blocking; server peak buffering ${peak} bytes`);
  // Once the client reads, the server resumes and every byte comes back.
  let back = 0;
  client.on('data', (c: Buffer) => {
    back += c.length;
  });
  const ended = new Promise<void>((resolve) => client.once('end', resolve));
  client.resume();
  client.end();
  await ended;
  assert.equal(back, written);
}

const transports: ReadonlyArray<{ name: string; endpoint: (t: CleanupContext) => Endpoint | undefined }> = [
  { name: '127.0.0.1', endpoint: () => v4 },
  { name: '::1', endpoint: () => (ipv6 ? v6 : undefined) },
  { name: 'Unix socket', endpoint: (t) => ({ kind: 'unix', path: join(tempDir(t), 'echo.sock') }) },
];

for (const tr of transports) {
  describe(`echo over ${tr.name}`, () => {
    it('serves 200 clients connected at the same time, each getting exactly its own bytes back', async (t) => {
      const ep = tr.endpoint(t);
      if (!ep) return t.skip('no IPv6 loopback on this machine');
      const events: EchoServerEvent[] = [];
      const server = await echoServer(t, ep, (e) => events.push(e));
      const N = 200;
      const sockets = track(t, []);
      for (const s of await Promise.all(Array.from({ length: N }, () => rawConnect(server.endpoint)))) sockets.push(s);
      // Every client is connected before any sends: the server holds all of them at once.
      await waitUntil(() => server.listener.connections.size === N, `${N} connections at the server`);
      const messages = sockets.map((_, i) => Buffer.from(`client ${i} `.repeat(1 + (i % 7)) + randomBytes(i % 50).toString('hex')));
      const replies = await Promise.all(
        sockets.map((s, i) => {
          const reply = readAll(s);
          s.end(messages[i]!);
          return reply;
        }),
      );
      for (let i = 0; i < N; i++) assert.ok(replies[i]!.equals(messages[i]!), `client ${i} got its own echo`);
      await waitUntil(() => server.stats.active === 0, 'every connection to close');
      const s = server.stats;
      assert.equal(s.accepted, N);
      const total = messages.reduce((n, m) => n + m.length, 0);
      assert.equal(s.bytesIn, total);
      assert.equal(s.bytesOut, total);
      assert.equal(events.filter((e) => e.event === 'connect').length, N);
      assert.equal(events.filter((e) => e.event === 'disconnect').length, N);
      assert.ok(events.every((e) => e.event !== 'disconnect' || e.error === undefined), 'no connection ended in an error');
    });

    it('echoes a 10 MiB random binary payload intact', async (t) => {
      const ep = tr.endpoint(t);
      if (!ep) return t.skip('no IPv6 loopback on this machine');
      const server = await echoServer(t, ep);
      const payload = randomBytes(10 * MiB);
      const hash = createHash('sha256');
      let received = 0;
      const r = await echoStream(server.endpoint, chunked(payload, 64 * 1024 + 7), {
        onEcho: (c) => {
          hash.update(c);
          received += c.length;
        },
      });
      assert.equal(r.bytesSent, payload.length);
      assert.equal(r.bytesReceived, payload.length);
      assert.equal(received, payload.length);
      assert.equal(hash.digest('hex'), createHash('sha256').update(payload).digest('hex'));
    });

    it('keeps its memory bounded while a client sends as fast as it can and never reads', async (t) => {
      const ep = tr.endpoint(t);
      if (!ep) return t.skip('no IPv6 loopback on this machine');
      const server = await echoServer(t, ep);
      await assertBackpressure(t, server.listener);
    });

    it('refuses a second listener on the same address with ERR_ADDR_IN_USE', async (t) => {
      const ep = tr.endpoint(t);
      if (!ep) return t.skip('no IPv6 loopback on this machine');
      const server = await echoServer(t, ep);
      await assert.rejects(startEchoServer(server.endpoint), { code: 'ERR_ADDR_IN_USE' });
      // The first server is unharmed.
      const r = await echoMessage(server.endpoint, Buffer.from('still here'));
      assert.equal(r.reply.toString(), 'still here');
    });

    it('reports connection refused as ERR_CONN_REFUSED', async (t) => {
      const ep = tr.endpoint(t);
      if (!ep) return t.skip('no IPv6 loopback on this machine');
      let target: Endpoint;
      if (ep.kind === 'unix') {
        // A socket file nobody listens on (left behind by a dead server).
        const server = await startEchoServer(ep);
        const stale = `${ep.path}.stale`;
        linkSync(ep.path, stale);
        await server.close();
        target = { kind: 'unix', path: stale };
      } else {
        target = { kind: 'inet', host: ep.host, port: await freePort(ep.host) };
      }
      await assert.rejects(echoMessage(target, Buffer.from('x')), (err: unknown) => {
        assert.ok(err instanceof SocketkitError);
        assert.equal(err.code, 'ERR_CONN_REFUSED');
        assert.equal(err.exitCode, 2);
        return true;
      });
    });
  });
}

describe('the echo server the CLI runs (managed)', () => {
  it('keeps its memory bounded while a client sends as fast as it can and never reads', async (t) => {
    const server = await startManagedEchoServer(v4);
    t.after(() => server.close());
    await assertBackpressure(t, server.listener);
  });
});

describe('echo client against misbehaving servers', () => {
  it('times out with ERR_TIMEOUT when the server accepts but never echoes', async (t) => {
    const srv = await startTestServer(v4, (s) => s.resume(), t);
    await assert.rejects(echoMessage(srv.endpoint, Buffer.from('hello?'), { idleTimeoutMs: 300 }), { code: 'ERR_TIMEOUT' });
  });

  it('fails with ERR_ECHO_MISMATCH (exit 1) when the echo differs', async (t) => {
    const srv = await startTestServer(
      v4,
      (s) => {
        s.on('data', (c: Buffer) => s.write(Buffer.from(c.toString('latin1').toUpperCase(), 'latin1')));
        s.on('end', () => s.end());
      },
      t,
    );
    await assert.rejects(echoMessage(srv.endpoint, Buffer.from('hello')), (err: unknown) => {
      assert.ok(err instanceof SocketkitError);
      assert.equal(err.code, 'ERR_ECHO_MISMATCH');
      assert.equal(err.exitCode, 1);
      return true;
    });
  });

  it('fails with ERR_ECHO_MISMATCH when the server echoes only part and closes', async (t) => {
    const srv = await startTestServer(
      v4,
      (s) => {
        const got: Buffer[] = [];
        s.on('data', (c: Buffer) => got.push(c));
        s.on('end', () => {
          const all = Buffer.concat(got);
          s.end(all.subarray(0, all.length >> 1));
        });
      },
      t,
    );
    await assert.rejects(echoMessage(srv.endpoint, randomBytes(100_000)), { code: 'ERR_ECHO_MISMATCH', exitCode: 1 });
  });

  it('fails with ERR_ECHO_MISMATCH when the server sends back more than was sent', async (t) => {
    const srv = await startTestServer(
      v4,
      (s) => {
        s.on('data', (c: Buffer) => s.write(c));
        s.on('end', () => s.end('and more'));
      },
      t,
    );
    await assert.rejects(echoMessage(srv.endpoint, Buffer.from('hello')), { code: 'ERR_ECHO_MISMATCH', exitCode: 1 });
  });

  it('gives up on input it is still reading once the exchange has failed', async (t) => {
    // The server answers with garbage while the client's input has not ended yet: the client
    // must report the mismatch instead of waiting for the rest of its input.
    const srv = await startTestServer(v4, (s) => s.write('garbage'), t);
    const ac = new AbortController();
    t.after(() => ac.abort());
    async function* slowInput(): AsyncGenerator<Buffer> {
      yield Buffer.from('hello');
      await sleep(60_000, undefined, { signal: ac.signal }).catch(() => undefined);
    }
    await assert.rejects(echoStream(srv.endpoint, slowInput()), { code: 'ERR_ECHO_MISMATCH' });
  });

  it('reports a server that closes while input is still coming at once (ERR_CONN_CLOSED)', async (t) => {
    const srv = await startTestServer(v4, (s) => s.once('data', (c: Buffer) => s.end(c)), t);
    const ac = new AbortController();
    t.after(() => ac.abort());
    async function* slowInput(): AsyncGenerator<Buffer> {
      yield Buffer.from('hello');
      await sleep(60_000, undefined, { signal: ac.signal }).catch(() => undefined);
      yield Buffer.from('never sent');
    }
    await assert.rejects(echoStream(srv.endpoint, slowInput()), { code: 'ERR_CONN_CLOSED', exitCode: 2 });
  });

  it('waits for the echo before half-closing, for servers that drop it on FIN (ncat --exec < 7.96)', async (t) => {
    // Echoes each chunk 50 ms late, and closes at once when the client half-closes.
    const srv = await startTestServer(
      v4,
      (s) => {
        s.on('data', (c: Buffer) => setTimeout(() => s.writable && s.write(c), 50));
        s.on('end', () => s.destroy());
      },
      t,
    );
    const r = await echoMessage(srv.endpoint, Buffer.from('patience'));
    assert.equal(r.reply.toString(), 'patience');
    // Half-closing at once loses the echo against such a server.
    await assert.rejects(echoMessage(srv.endpoint, Buffer.from('haste'), { halfCloseWaitMs: 0 }));
  });

  it('fails with ERR_UNKNOWN_HOST for a host under .invalid', async () => {
    await assert.rejects(echoMessage({ kind: 'inet', host: 'no-such-host.invalid', port: 9 }, Buffer.from('x')), { code: 'ERR_UNKNOWN_HOST' });
  });

  it('fails with ERR_NOT_FOUND for a Unix path that does not exist', async (t) => {
    await assert.rejects(echoMessage({ kind: 'unix', path: join(tempDir(t), 'nothing.sock') }, Buffer.from('x')), { code: 'ERR_NOT_FOUND' });
  });

  it('stops when aborted, with ERR_ABORTED', async (t) => {
    const ac = new AbortController();
    ac.abort();
    await assert.rejects(connect(v4, { signal: ac.signal }), { code: 'ERR_ABORTED' });
    // Aborted mid-exchange: the server never answers.
    const srv = await startTestServer(v4, (s) => s.resume(), t);
    const ac2 = new AbortController();
    const p = echoMessage(srv.endpoint, Buffer.from('x'), { signal: ac2.signal, idleTimeoutMs: 0 });
    await waitUntil(() => srv.accepted === 1, 'the connection');
    ac2.abort();
    await assert.rejects(p, { code: 'ERR_ABORTED' });
  });

  it('echoes nothing at all: zero bytes, no error', async (t) => {
    const server = await echoServer(t, v4);
    const r = await echoStream(server.endpoint, []);
    assert.equal(r.bytesSent, 0);
    assert.equal(r.bytesReceived, 0);
  });
});

describe('Unix socket files', () => {
  it('replaces a stale socket file left by a dead server', async (t) => {
    const dir = tempDir(t);
    const path = join(dir, 'echo.sock');
    // Make a socket file with no server behind it: bind, keep a second name, close.
    const first = await startEchoServer({ kind: 'unix', path: join(dir, 'first.sock') });
    linkSync(join(dir, 'first.sock'), path);
    await first.close();
    assert.ok(lstatSync(path).isSocket());
    const server = await echoServer(t, { kind: 'unix', path });
    const r = await echoMessage(server.endpoint, Buffer.from('fresh'));
    assert.equal(r.reply.toString(), 'fresh');
  });

  it('never removes a regular file at the path (ERR_ADDR_IN_USE, file intact)', async (t) => {
    const path = join(tempDir(t), 'precious.txt');
    writeFileSync(path, 'do not delete');
    await assert.rejects(startEchoServer({ kind: 'unix', path }), { code: 'ERR_ADDR_IN_USE' });
    assert.equal(readFileSync(path, 'utf8'), 'do not delete');
  });

  it('never removes the socket of a live server', async (t) => {
    const path = join(tempDir(t), 'live.sock');
    const server = await echoServer(t, { kind: 'unix', path });
    await assert.rejects(startEchoServer({ kind: 'unix', path }), { code: 'ERR_ADDR_IN_USE' });
    const r = await echoMessage(server.endpoint, Buffer.from('alive'));
    assert.equal(r.reply.toString(), 'alive');
  });

  it('reports a path in a missing directory as ERR_NOT_FOUND (libuv says EACCES)', async (t) => {
    await assert.rejects(startEchoServer({ kind: 'unix', path: join(tempDir(t), 'no', 'such', 'dir.sock') }), { code: 'ERR_NOT_FOUND' });
  });

  it('removes its socket file when it closes', async (t) => {
    const path = join(tempDir(t), 'gone.sock');
    const server = await startEchoServer({ kind: 'unix', path });
    assert.ok(existsSync(path));
    await server.close();
    assert.equal(existsSync(path), false);
  });
});

describe('graceful close', () => {
  it('stops accepting, lets a live connection finish within the grace period, and resolves', async (t) => {
    const server = await echoServer(t, v4);
    const client = await rawConnect(server.endpoint);
    track(t, [client]);
    client.write('first half, ');
    await waitUntil(() => server.stats.bytesIn > 0, 'the server to read');
    const closing = server.close(10_000);
    assert.equal(server.close(10_000), closing, 'close() twice returns the same promise');
    assert.equal(server.listener.status.state, 'closing');
    // New connections are refused while closing.
    await assert.rejects(rawConnect(server.endpoint), { code: 'ECONNREFUSED' });
    // The live client finishes its exchange.
    const reply = readAll(client);
    client.end('second half');
    assert.equal((await reply).toString(), 'first half, second half');
    await closing;
    assert.equal(server.listener.status.state, 'closed');
    assert.equal(server.stats.active, 0);
  });

  it('closes connections still open when the grace period ends', async (t) => {
    const server = await echoServer(t, v4);
    const client = await rawConnect(server.endpoint);
    track(t, [client]);
    client.on('error', () => undefined);
    const closedByServer = new Promise<void>((resolve) => client.once('close', () => resolve()));
    await waitUntil(() => server.stats.active === 1, 'the connection');
    await server.close(50);
    await closedByServer;
    assert.equal(server.listener.connections.size, 0);
  });

  it('stops when its abort signal fires', async () => {
    const ac = new AbortController();
    const listener = await listen(v4, { onConnection: (s) => s.end(), signal: ac.signal });
    ac.abort();
    await waitUntil(() => listener.status.state === 'closed', 'the listener to close');
    await assert.rejects(rawConnect(listener.endpoint), { code: 'ECONNREFUSED' });
  });
});

describe('write helpers', () => {
  /** A writable that accepts nothing until `release()` (a peer that does not read). */
  function stuckWritable(): Writable & { release(): void } {
    let pending: (() => void) | undefined;
    const w = new Writable({
      highWaterMark: 4,
      write(_chunk, _enc, cb) {
        pending = cb;
      },
    }) as Writable & { release(): void };
    w.release = () => {
      const cb = pending;
      pending = undefined;
      cb?.();
    };
    return w;
  }

  it('waits for drain, and resolves when it comes', async () => {
    const w = stuckWritable();
    const p = writeWithBackpressure(w, Buffer.from('more than four bytes'));
    let done = false;
    void p.then(() => (done = true));
    await sleep(10);
    assert.equal(done, false, 'still waiting for drain');
    w.release();
    await p;
  });

  it('never hangs on a dead peer: waitDrain rejects with ERR_CONN_CLOSED when the stream closes', async () => {
    const w = stuckWritable();
    w.write(Buffer.from('more than four bytes'));
    const p = waitDrain(w);
    w.destroy();
    await assert.rejects(p, { code: 'ERR_CONN_CLOSED' });
    await assert.rejects(writeWithBackpressure(w, Buffer.from('x')), { code: 'ERR_CONN_CLOSED' });
  });

  it('endAndFlush resolves once flushed, and rejects at once on a stream already destroyed', async () => {
    const w = stuckWritable();
    w.write(Buffer.from('abc'));
    const p = endAndFlush(w);
    w.release();
    await p;
    const dead = stuckWritable();
    dead.destroy();
    await new Promise((resolve) => dead.once('close', resolve));
    await assert.rejects(endAndFlush(dead), { code: 'ERR_CONN_CLOSED' });
  });
});

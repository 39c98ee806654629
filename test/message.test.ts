/**
 * Message connections over real sockets: whole messages both ways over TCP and Unix, large
 * and many, and the failure cases (oversized prefix, truncated stream, closed peer).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as netConnect } from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
import { connectMessages, echoMessages, listenMessages, type MessageConnection } from '../src/message/index.js';
import type { Endpoint } from '../src/net/endpoint.js';
import type { Listener } from '../src/net/listen.js';
import { waitForStall, waitUntil } from './helpers/net.js';

async function withEchoServer(ep: Endpoint, maxMessageSize: number | undefined, fn: (listener: Listener) => Promise<void>): Promise<void> {
  const listener = await listenMessages(ep, {
    onConnection: (conn) => void echoMessages(conn),
    ...(maxMessageSize === undefined ? {} : { maxMessageSize }),
  });
  try {
    await fn(listener);
  } finally {
    await listener.close();
  }
}

async function transports(): Promise<{ name: string; ep: Endpoint; cleanup: () => Promise<void> }[]> {
  const dir = await mkdtemp(join(tmpdir(), 'socketkit-msg-'));
  return [
    { name: 'tcp', ep: { kind: 'inet', host: '127.0.0.1', port: 0 }, cleanup: () => Promise.resolve() },
    { name: 'unix', ep: { kind: 'unix', path: join(dir, 'm.sock') }, cleanup: () => rm(dir, { recursive: true, force: true }) },
  ];
}

/** Sends every message while reading replies concurrently; returns the replies' digest and count. */
async function roundTrip(conn: MessageConnection, messages: Iterable<Uint8Array>): Promise<{ count: number; digest: string }> {
  const h = createHash('sha256');
  let count = 0;
  const reader = (async () => {
    for await (const m of conn) {
      h.update(m);
      count++;
    }
  })();
  for (const m of messages) await conn.send(m);
  await conn.end();
  await reader;
  return { count, digest: h.digest('hex') };
}

for (const t of await transports()) {
  test(`${t.name}: 100,000 small messages round trip in order`, async () => {
    try {
      await withEchoServer(t.ep, undefined, async (listener) => {
        const conn = await connectMessages(listener.endpoint);
        const N = 100_000;
        const msgs = function* () {
          for (let i = 0; i < N; i++) yield Buffer.from(`message ${i}`);
        };
        const want = createHash('sha256');
        for (const m of msgs()) want.update(m);
        const got = await roundTrip(conn, msgs());
        conn.close();
        assert.equal(got.count, N);
        assert.equal(got.digest, want.digest('hex'));
      });
    } finally {
      await t.cleanup();
    }
  });
}

for (const t of await transports()) {
  test(`${t.name}: one 64 MiB message and an empty one round trip intact`, async () => {
    const max = 64 * 1024 * 1024;
    try {
      await withEchoServer(t.ep, max, async (listener) => {
        const conn = await connectMessages(listener.endpoint, { maxMessageSize: max });
        const big = randomBytes(max);
        const replies: Uint8Array[] = [];
        const reader = (async () => {
          for await (const m of conn) replies.push(m);
        })();
        await conn.send(big);
        await conn.send(new Uint8Array(0));
        await conn.end();
        await reader;
        conn.close();
        assert.equal(replies.length, 2);
        assert.equal(replies[0]!.byteLength, max);
        assert.ok(Buffer.from(big).equals(replies[0]!));
        assert.equal(replies[1]!.byteLength, 0);
      });
    } finally {
      await t.cleanup();
    }
  });
}

test('an oversized length prefix is refused with ERR_FRAME_TOO_LARGE and the connection closed', async () => {
  let serverError: unknown;
  const closed = new Promise<void>((resolve) => {
    void listenMessages({ kind: 'inet', host: '127.0.0.1', port: 0 }, {
      maxMessageSize: 1024,
      onConnection: (conn) => {
        void (async () => {
          try {
            for await (const _ of conn) {
              // nothing: the first prefix is too large
            }
          } catch (err) {
            serverError = err;
          }
          conn.socket.once('close', () => resolve());
          if (conn.socket.destroyed) resolve();
        })();
      },
    }).then((listener) => {
      const addr = listener.endpoint as { port: number };
      const raw = netConnect({ host: '127.0.0.1', port: addr.port }, () => {
        // A 4 GiB length: must be refused from the header alone, nothing buffered for it.
        raw.write(Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 2, 3]));
      });
      raw.on('error', () => undefined);
      raw.on('close', () => void listener.close());
    });
  });
  await closed;
  assert.equal((serverError as { code?: string }).code, 'ERR_FRAME_TOO_LARGE');
});

test('a stream that ends mid-message gives ERR_FRAME_TRUNCATED', async () => {
  const listener = await listenMessages({ kind: 'inet', host: '127.0.0.1', port: 0 }, {
    onConnection: (conn) => {
      // Half a frame, then end: 10 bytes announced, 3 sent.
      conn.socket.end(Buffer.from([0, 0, 0, 10, 1, 2, 3]));
    },
  });
  try {
    const conn = await connectMessages(listener.endpoint);
    await assert.rejects(
      (async () => {
        for await (const _ of conn) {
          // no whole message arrives
        }
      })(),
      (err: { code?: string }) => err.code === 'ERR_FRAME_TRUNCATED',
    );
    conn.close();
  } finally {
    await listener.close();
  }
});

test('send() rejects with ERR_CONN_CLOSED once the connection is closed', async () => {
  await withEchoServer({ kind: 'inet', host: '127.0.0.1', port: 0 }, undefined, async (listener) => {
    const conn = await connectMessages(listener.endpoint);
    conn.close();
    await assert.rejects(conn.send(Buffer.from('late')), (err: { code?: string }) => err.code === 'ERR_CONN_CLOSED');
  });
});

test('send() waiting on a full socket rejects when the peer goes away (no hang)', { timeout: 60_000 }, async () => {
  // A peer that accepts and never reads, then closes once the sender is stuck in send(): the
  // sender must not wait forever.
  let peer: MessageConnection | undefined;
  const listener = await listenMessages({ kind: 'inet', host: '127.0.0.1', port: 0 }, {
    onConnection: (conn) => {
      peer = conn;
      conn.socket.pause();
    },
  });
  try {
    const conn = await connectMessages(listener.endpoint);
    const chunk = Buffer.alloc(1024 * 1024);
    let sent = 0;
    let waiting = false;
    let failed: unknown;
    const sending = (async () => {
      for (let i = 0; i < 10_000; i++) {
        waiting = true;
        await conn.send(chunk);
        waiting = false;
        sent++;
      }
    })();
    sending.catch((err: unknown) => (failed = err));
    await waitForStall(() => sent, 'the sender', {
      failIf: () => (failed !== undefined ? `send() failed before the peer went: ${(failed as Error).message}` : sent === 10_000 ? 'a peer that reads nothing took 10 GiB' : undefined),
    });
    assert.equal(waiting, true, 'the sender is inside send()');
    assert.equal(conn.socket.writableNeedDrain, true, 'and waits for drain');
    await waitUntil(() => peer !== undefined, 'the server to accept');
    peer!.close();
    await assert.rejects(sending, (err: { code?: string }) => err.code === 'ERR_CONN_RESET' || err.code === 'ERR_CONN_CLOSED');
    conn.close();
  } finally {
    await listener.close();
  }
});

test('a slow consumer pauses the socket: the sender blocks on backpressure with little buffered, and gets everything through once it reads', { timeout: 60_000 }, async () => {
  // The server floods 64 MiB in 64 KiB messages; the client reads one message, then stalls.
  const size = 64 * 1024;
  const count = 1024;
  let serverConn: MessageConnection | undefined;
  let serverSent = 0;
  let serverWaiting = false; // inside send(): waiting for 'drain'
  let serverFinished = false;
  let serverError: unknown;
  let serverDone: Promise<void> = Promise.resolve();
  const listener = await listenMessages({ kind: 'inet', host: '127.0.0.1', port: 0 }, {
    onConnection: (conn) => {
      serverConn = conn;
      serverDone = (async () => {
        const m = Buffer.alloc(size, 7);
        try {
          for (let i = 0; i < count; i++) {
            serverWaiting = true;
            await conn.send(m);
            serverWaiting = false;
            serverSent += m.length;
          }
          await conn.end();
          serverFinished = true;
        } catch (err) {
          serverError = err;
        }
      })();
    },
  });
  try {
    const conn = await connectMessages(listener.endpoint);
    const it = conn[Symbol.asyncIterator]();
    const first = await it.next();
    assert.equal(first.done, false);
    // Wait for the flood to stop: the server's send() stuck while the client reads nothing.
    // Without backpressure the client would take all 64 MiB and the server would finish.
    const stalledAt = await waitForStall(() => serverSent, 'the flooding server', {
      failIf: () => (serverFinished ? `it sent all ${count * size} bytes to a client that read ${size}` : serverError !== undefined ? `it failed: ${(serverError as Error).message}` : undefined),
    });
    // It is stuck in send() waiting for 'drain' (not idle, not failed), with a full buffer.
    assert.equal(serverWaiting, true, 'the server is waiting inside send()');
    assert.equal(serverConn?.socket.writableNeedDrain, true, 'the server socket waits for drain');
    assert.ok(stalledAt > size, `the server stopped after ${stalledAt} bytes: it never flooded`);
    // Only socket and kernel buffers filled: far less than the 64 MiB offered.
    assert.ok(stalledAt < 16 * 1024 * 1024, `server got ${stalledAt} bytes out while the client stalled`);
    const clientBuffered = conn.socket.readableLength;
    assert.ok(clientBuffered < 1024 * 1024, `client holds ${clientBuffered} bytes unread`);
    // Reading again releases the sender: every message arrives, whole.
    let received = 1;
    for (let r = await it.next(); r.done !== true; r = await it.next()) {
      assert.equal(r.value.length, size);
      received++;
    }
    await serverDone;
    assert.equal(serverError, undefined);
    assert.deepEqual([received, serverSent, serverFinished], [count, count * size, true]);
    conn.close();
  } finally {
    serverConn?.close(); // a server still sending fails its send() and stops
    await listener.close();
  }
});

test('connect takes an AbortSignal', async () => {
  const ac = new AbortController();
  ac.abort();
  await assert.rejects(connectMessages({ kind: 'inet', host: '127.0.0.1', port: 9 }, { signal: ac.signal }), (err: { code?: string }) => err.code === 'ERR_ABORTED');
});

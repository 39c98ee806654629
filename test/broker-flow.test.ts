// The broker's flow control and the cases test/broker.test.ts does not cover (issue 18): a
// receiver that reads, only slower than the sender writes, loses nothing (the senders are held
// back for it) where without flow control it was cut off; a client that never reads holds the
// others back once, for the hold time at most; the framed broker alone, with 200 clients, with
// a half-close mid-message, and with good messages before a bad prefix; /join's errors.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect as netConnect, type Socket } from 'node:net';
import { once } from 'node:events';
import { startBroker, type Broker, type BrokerOptions } from '../src/broker/index.js';
import { FrameDecoder } from '../src/codec/frame-decoder.js';
import { encodeFrame } from '../src/codec/frame-encoder.js';
import type { ServerEvent } from '../src/server/server.js';
import type { CleanupContext } from './helpers/tmp.js';
import { waitUntil } from './helpers/net.js';

const LOOPBACK = { kind: 'inet', host: '127.0.0.1', port: 0 } as const;

interface Peer {
  readonly socket: Socket;
  bytes: number;
  text: string;
  closed: boolean;
}

async function broker(t: CleanupContext, options: BrokerOptions = {}): Promise<{ b: Broker; events: ServerEvent[] }> {
  const events: ServerEvent[] = [];
  const b = await startBroker(LOOPBACK, { onEvent: (e) => events.push(e), ...options });
  t.after(() => b.close(0));
  return { b, events };
}

/** A client; `keep`: keep the text of what it receives (small tests only). */
async function peer(t: CleanupContext, b: Broker, keep = false): Promise<Peer> {
  const ep = b.endpoint;
  const socket = netConnect({ host: '127.0.0.1', port: ep.kind === 'inet' ? ep.port : 0 });
  t.after(() => socket.destroy());
  await once(socket, 'connect', { signal: AbortSignal.timeout(5000) });
  const p: Peer = { socket, bytes: 0, text: '', closed: false };
  socket.on('data', (c: Buffer) => {
    p.bytes += c.length;
    if (keep) p.text += c.toString('latin1');
  });
  socket.on('error', () => undefined);
  socket.once('close', () => (p.closed = true));
  return p;
}

/** Reads, but at most one chunk every 2 ms: far slower than a sender on loopback writes. */
function readSlowly(p: Peer): void {
  p.socket.on('data', () => {
    p.socket.pause();
    setTimeout(() => p.socket.resume(), 2);
  });
}

/** Writes `total` bytes as fast as the socket's backpressure lets it. */
async function blast(s: Socket, total: number, chunk = 64 * 1024): Promise<void> {
  const buf = Buffer.alloc(chunk, 'f');
  for (let sent = 0; sent < total; sent += chunk) {
    if (!s.write(buf)) await once(s, 'drain', { signal: AbortSignal.timeout(30_000) });
  }
}

describe('broker flow control', () => {
  // More than loopback's kernel buffers hold (a few MiB each way), and a small queue.
  const TOTAL = 32 * 1024 * 1024;
  const QUEUE = 256 * 1024;

  it('a receiver slower than the sender loses nothing: the sender is held back for it', { timeout: 90_000 }, async (t) => {
    // A long hold bound (10 s): a loaded machine, where the reader catches up slowly, must not
    // release the hold before it has; the bound itself is tested below.
    const { b, events } = await broker(t, { maxQueue: QUEUE, holdMs: 10_000 });
    const sender = await peer(t, b);
    const slow = await peer(t, b);
    const fast = await peer(t, b);
    readSlowly(slow);
    await waitUntil(() => b.clients === 3, '3 clients');
    await blast(sender.socket, TOTAL);
    await waitUntil(() => slow.bytes === TOTAL || slow.closed, 'the slow reader has everything', 60_000);
    assert.equal(slow.closed, false, `cut off: ${JSON.stringify(events.filter((e) => e.event === 'disconnect'))}`);
    assert.equal(slow.bytes, TOTAL);
    await waitUntil(() => fast.bytes === TOTAL, 'the fast reader has everything', 30_000);
    assert.ok(b.relay.held > 0, 'the sender was held back');
    assert.equal(b.relay.slowDisconnects, 0);
  });

  it('without flow control (holdMs 0) the same slow reader is cut off as a slow consumer', { timeout: 90_000 }, async (t) => {
    const { b } = await broker(t, { maxQueue: QUEUE, holdMs: 0 });
    const sender = await peer(t, b);
    const slow = await peer(t, b);
    const fast = await peer(t, b);
    readSlowly(slow);
    await waitUntil(() => b.clients === 3, '3 clients');
    await blast(sender.socket, TOTAL);
    // The 'fast' reader is fast only while this process gets the CPU: on a loaded machine it
    // too can fall a queue behind, and without flow control it is then rightly cut off as well.
    await waitUntil(() => fast.bytes === TOTAL || fast.closed, 'the fast reader done', 60_000);
    await waitUntil(() => slow.closed || slow.bytes === TOTAL, 'the slow reader done', 30_000);
    assert.equal(slow.closed, true);
    assert.ok(slow.bytes < TOTAL, 'the slow reader did not get everything');
    assert.equal(b.relay.slowDisconnects, fast.closed ? 2 : 1);
    assert.equal(b.relay.held, 0);
  });

  for (const slowPolicy of ['disconnect', 'drop'] as const) {
    it(`a client that never reads (--slow ${slowPolicy}) holds the others back once, for the hold time at most, then never again`, { timeout: 90_000 }, async (t) => {
      const { b } = await broker(t, { maxQueue: QUEUE, slow: slowPolicy, holdMs: 300 });
      const sender = await peer(t, b);
      const fast = await peer(t, b);
      const stalled = await peer(t, b);
      stalled.socket.pause();
      await waitUntil(() => b.clients === 3, '3 clients');
      await blast(sender.socket, TOTAL);
      await waitUntil(() => fast.bytes === TOTAL, 'the reader has everything', 60_000);
      // Released by the hold time (not by catching up): it never read a byte.
      assert.equal(b.relay.released, 1);
      if (slowPolicy === 'disconnect') {
        assert.equal(b.relay.slowDisconnects, 1);
      } else {
        assert.equal(b.relay.slowDisconnects, 0);
        assert.ok(b.relay.dropped > 0);
        assert.equal(stalled.closed, false);
      }
    });
  }
});

describe('framed broker (more)', () => {
  const wire = (s: string | Buffer): Buffer => Buffer.concat(encodeFrame(typeof s === 'string' ? Buffer.from(s) : s));
  const decode = (data: Buffer): string[] => new FrameDecoder().push(data).map((f) => Buffer.from(f).toString());

  it('one client alone: what it sends goes nowhere, and it is not sent back', async (t) => {
    const { b } = await broker(t, { mode: 'framed' });
    const a = await peer(t, b, true);
    await waitUntil(() => b.clients === 1, '1 client');
    a.socket.write(wire('alone'));
    await waitUntil(() => b.server.stats().roundTrips === 1, 'the message read');
    // A second client joining now gets nothing of the past, and the first still nothing.
    const late = await peer(t, b, true);
    await waitUntil(() => b.clients === 2, '2 clients');
    late.socket.write(wire('hello'));
    await waitUntil(() => a.bytes === 9, 'the late one reaches the first');
    assert.deepEqual(decode(Buffer.from(a.text, 'latin1')), ['hello']);
    assert.equal(late.bytes, 0);
  });

  it('one sender, 199 receivers: each gets every message whole', async (t) => {
    const { b } = await broker(t, { mode: 'framed' });
    const sender = await peer(t, b);
    const receivers: Peer[] = [];
    for (let i = 0; i < 199; i++) receivers.push(await peer(t, b, true));
    await waitUntil(() => b.clients === 200, '200 clients');
    const msgs = Array.from({ length: 50 }, (_, i) => `message ${i} `.repeat(i + 1));
    // All in one write, so some reads hold several messages and some cut one.
    sender.socket.write(Buffer.concat(msgs.map((m) => wire(m))));
    const total = msgs.reduce((a, m) => a + 4 + m.length, 0);
    for (const r of receivers) await waitUntil(() => r.bytes === total, 'every message', 20_000);
    for (const r of receivers) assert.deepEqual(decode(Buffer.from(r.text, 'latin1')), msgs);
    assert.equal(sender.bytes, 0);
  });

  it('messages before a bad length prefix in the same read are relayed; then the sender is closed', async (t) => {
    const { b, events } = await broker(t, { mode: 'framed', maxMessageSize: 100 });
    const a = await peer(t, b);
    const r = await peer(t, b, true);
    await waitUntil(() => b.clients === 2, '2 clients');
    const bad = Buffer.alloc(4);
    bad.writeUInt32BE(101);
    a.socket.write(Buffer.concat([wire('first'), wire('second'), bad]));
    await waitUntil(() => a.closed, 'the sender closed');
    await waitUntil(() => r.bytes === 4 + 5 + 4 + 6, 'the two good messages');
    assert.deepEqual(decode(Buffer.from(r.text, 'latin1')), ['first', 'second']);
    await waitUntil(() => events.some((e) => e.event === 'disconnect' && e.error === 'ERR_FRAME_TOO_LARGE'), 'the coded disconnect');
  });

  it('a half-close mid-message closes the sender (ERR_FRAME_TRUNCATED) and relays no part of it; one on a boundary is a clean end', async (t) => {
    const { b, events } = await broker(t, { mode: 'framed' });
    const a = await peer(t, b);
    const c = await peer(t, b);
    const r = await peer(t, b, true);
    await waitUntil(() => b.clients === 3, '3 clients');
    const cut = wire('a message cut short');
    a.socket.end(Buffer.concat([wire('whole'), cut.subarray(0, 10)]));
    await waitUntil(() => a.closed, 'the sender closed');
    await waitUntil(() => events.some((e) => e.event === 'disconnect' && e.error === 'ERR_FRAME_TRUNCATED'), 'the coded disconnect');
    c.socket.end(wire('bye'));
    await waitUntil(() => c.closed, 'the clean end');
    await waitUntil(() => r.bytes === 9 + 7, 'whole messages only');
    assert.deepEqual(decode(Buffer.from(r.text, 'latin1')), ['whole', 'bye']);
    assert.equal(events.filter((e) => e.event === 'disconnect' && e.error !== undefined).length, 1);
  });
});

describe('byte broker (more)', () => {
  it('one client alone: nothing comes back to it', async (t) => {
    const { b } = await broker(t);
    const a = await peer(t, b);
    await waitUntil(() => b.clients === 1, '1 client');
    a.socket.write('anyone?');
    await waitUntil(() => b.server.stats().bytesIn === 7, 'the bytes read');
    const c = await peer(t, b);
    await waitUntil(() => b.clients === 2, '2 clients');
    c.socket.write('yes');
    await waitUntil(() => a.bytes === 3, 'the second client reaches the first');
    assert.equal(c.bytes, 0);
  });
});

describe('chat (more)', () => {
  it('/join refuses a bad room name and the room one is in; /nick refuses the name one has', async (t) => {
    const { b } = await broker(t, { mode: 'chat' });
    const one = await peer(t, b, true);
    await waitUntil(() => one.text.includes('* welcome, user1'), 'the welcome');
    for (const [line, reply] of [
      ['/join', "join: '' is not a room name"],
      ['/join no way', "join: 'no way' is not a room name"],
      ['/join lobby', 'join: you are in lobby already'],
      ['/nick', "nick: '' is not a name"],
      ['/nick x'.padEnd(40, 'x'), 'is not a name (1 to 32'],
    ] as const) {
      one.socket.write(`${line}\n`);
      await waitUntil(() => one.text.includes(reply), reply);
    }
    one.socket.write('/nick Zed\n/nick Zed\n');
    await waitUntil(() => one.text.includes('* nick: you are Zed already'), 'the same name');
    one.socket.write('/help\n');
    await waitUntil(() => one.text.includes('* commands: /nick NAME, /who, /join ROOM, /quit, /help'), '/help');
    one.socket.write('/quit\n');
    await waitUntil(() => one.closed, '/quit closes');
    assert.ok(one.text.includes('* bye\n'));
  });
});

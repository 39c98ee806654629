// The broker (issue 18): bytes and whole messages from one client to all the others, never back
// to the sender; a client that does not read never slows the others; the line chat with names,
// rooms, commands and hostile input made safe.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect as netConnect, type Socket } from 'node:net';
import { once } from 'node:events';
import { setTimeout as delay } from 'node:timers/promises';
import { startBroker, type Broker, type BrokerOptions } from '../src/broker/index.js';
import { FrameDecoder } from '../src/codec/frame-decoder.js';
import { encodeFrame } from '../src/codec/frame-encoder.js';
import type { ServerEvent } from '../src/server/server.js';
import type { CleanupContext } from './helpers/tmp.js';
import { waitUntil } from './helpers/net.js';

const LOOPBACK = { kind: 'inet', host: '127.0.0.1', port: 0 } as const;

/** A client that keeps everything it receives and can wait for what it expects. */
class Client {
  readonly socket: Socket;
  #chunks: Buffer[] = [];
  bytes = 0;
  closed = false;

  constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (c: Buffer) => {
      this.#chunks.push(c);
      this.bytes += c.length;
    });
    socket.on('error', () => undefined);
    socket.on('close', () => (this.closed = true));
  }

  get data(): Buffer {
    if (this.#chunks.length > 1) this.#chunks = [Buffer.concat(this.#chunks)];
    return this.#chunks[0] ?? Buffer.alloc(0);
  }

  get text(): string {
    return this.data.toString('utf8');
  }

  /** Waits (bounded) until `cond` holds, re-checking on every chunk and on close. */
  async until(cond: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
    const deadline = AbortSignal.timeout(timeoutMs);
    while (!cond()) {
      if (this.closed) assert.fail(`closed before ${what}; got ${JSON.stringify(this.text.slice(-300))}`);
      // One controller per wait: the listener that did not fire goes with it.
      const step = new AbortController();
      const signal = AbortSignal.any([deadline, step.signal]);
      try {
        await Promise.any([once(this.socket, 'data', { signal }), once(this.socket, 'close', { signal })]);
      } catch {
        assert.fail(`timed out waiting for ${what}; got ${JSON.stringify(this.text.slice(-300))}`);
      } finally {
        step.abort();
      }
    }
  }

  /** Waits for `n` lines in all, returns them. */
  async lines(n: number): Promise<string[]> {
    await this.until(() => this.text.split('\n').length > n, `${n} lines`);
    return this.text.split('\n').slice(0, n);
  }
}

async function broker(t: CleanupContext, options: BrokerOptions = {}): Promise<{ b: Broker; events: ServerEvent[] }> {
  const events: ServerEvent[] = [];
  const b = await startBroker(LOOPBACK, { onEvent: (e) => events.push(e), ...options });
  t.after(() => b.close(0));
  return { b, events };
}

async function client(t: CleanupContext, b: Broker): Promise<Client> {
  const ep = b.endpoint;
  assert.equal(ep.kind, 'inet');
  const socket = netConnect({ host: '127.0.0.1', port: ep.kind === 'inet' ? ep.port : 0 });
  t.after(() => socket.destroy());
  await once(socket, 'connect', { signal: AbortSignal.timeout(5000) });
  return new Client(socket);
}

/** Resolves once the broker has `n` clients (they join on the server's side after connect). */
function joined(b: Broker, n: number): Promise<void> {
  return waitUntil(() => b.clients >= n, `${n} clients joined`);
}

describe('byte broker', () => {
  it('relays to every other client, never back to the sender', async (t) => {
    const { b } = await broker(t);
    const [a, bb, c] = [await client(t, b), await client(t, b), await client(t, b)];
    await joined(b, 3);
    a.socket.write('from a');
    await bb.until(() => bb.text === 'from a', "b gets a's bytes");
    await c.until(() => c.text === 'from a', "c gets a's bytes");
    // Anything a got back would have been written to it before c's bytes below were even sent.
    c.socket.write('from c');
    await a.until(() => a.text.length >= 6, "a gets c's bytes");
    assert.equal(a.text, 'from c');
    await bb.until(() => bb.text === 'from afrom c', "b gets c's bytes");
    assert.equal(b.relay.delivered, 4);
  });

  it('one sender, 199 receivers: each gets every byte', async (t) => {
    const { b } = await broker(t);
    const sender = await client(t, b);
    const receivers: Client[] = [];
    for (let i = 0; i < 199; i++) receivers.push(await client(t, b));
    await joined(b, 200);
    const msg = Buffer.alloc(64, 'm');
    for (let i = 0; i < 100; i++) sender.socket.write(msg);
    for (const r of receivers) await r.until(() => r.bytes === 6400, 'all 6,400 bytes');
    assert.equal(sender.bytes, 0);
  });

  it('a client that half-closes is served what was queued and closed; the others go on', async (t) => {
    const { b } = await broker(t);
    const [a, bb, c] = [await client(t, b), await client(t, b), await client(t, b)];
    await joined(b, 3);
    a.socket.end('last words');
    await a.until(() => a.closed, 'the broker closes a', 5000).catch(() => undefined);
    assert.ok(a.closed);
    await bb.until(() => bb.text === 'last words', "b gets a's last bytes");
    c.socket.write('still here');
    await bb.until(() => bb.text === 'last wordsstill here', 'b still gets c');
  });
});

describe('framed broker', () => {
  it('relays whole messages, never split or merged, however they arrive', async (t) => {
    const { b } = await broker(t, { mode: 'framed' });
    const [a, r] = [await client(t, b), await client(t, b)];
    await joined(b, 2);
    const wire = (s: string): Buffer => Buffer.concat(encodeFrame(Buffer.from(s)));
    // Two messages in one write, then one cut in the middle of its header and of its payload.
    a.socket.write(Buffer.concat([wire('one'), wire('two')]));
    const third = wire('a longer third message');
    a.socket.write(third.subarray(0, 2));
    a.socket.write(third.subarray(2, 10));
    a.socket.write(third.subarray(10));
    const got: string[] = [];
    const decoder = new FrameDecoder();
    await r.until(() => {
      got.length = 0;
      const d = new FrameDecoder();
      for (const f of d.push(r.data)) got.push(Buffer.from(f).toString());
      return got.length === 3;
    }, 'three messages');
    assert.deepEqual(got, ['one', 'two', 'a longer third message']);
    assert.equal(decoder.bufferedBytes, 0);
  });

  it('a message over --max-message closes its sender (ERR_FRAME_TOO_LARGE); the others are unaffected', async (t) => {
    const { b, events } = await broker(t, { mode: 'framed', maxMessageSize: 1024 });
    const [a, r, c] = [await client(t, b), await client(t, b), await client(t, b)];
    await joined(b, 3);
    const header = Buffer.alloc(4);
    header.writeUInt32BE(1025);
    a.socket.write(header);
    await a.until(() => a.closed, 'the broker closes the sender').catch(() => undefined);
    assert.ok(a.closed);
    c.socket.write(Buffer.concat(encodeFrame(Buffer.from('fine'))));
    await r.until(() => r.bytes === 8, 'the next message');
    const gone = events.find((e) => e.event === 'disconnect' && e.error !== undefined);
    assert.equal(gone?.event === 'disconnect' ? gone.error : undefined, 'ERR_FRAME_TOO_LARGE');
  });
});

describe('slow consumers', () => {
  // Enough to fill the stalled client's kernel buffers (several MiB on loopback) and then its
  // queue; sent at a steady ~60 MB/s (a chunk a millisecond), well within what a reader keeps up
  // with, so only the client that does not read at all falls behind.
  const TOTAL = 24 * 1024 * 1024;
  const CHUNK = 64 * 1024;

  async function flood(t: CleanupContext, slow: 'disconnect' | 'drop'): Promise<{ b: Broker; events: ServerEvent[]; fast: Client; stalled: Client }> {
    const { b, events } = await broker(t, { maxQueue: 256 * 1024, slow });
    const sender = await client(t, b);
    const fast = await client(t, b);
    const stalled = await client(t, b);
    stalled.socket.pause(); // never reads
    await joined(b, 3);
    const chunk = Buffer.alloc(CHUNK, 'x');
    for (let sent = 0; sent < TOTAL; sent += CHUNK) {
      if (!sender.socket.write(chunk)) await once(sender.socket, 'drain', { signal: AbortSignal.timeout(20_000) });
      await delay(1);
    }
    await fast.until(() => fast.bytes === TOTAL, 'every byte at the reading client', 30_000);
    return { b, events, fast, stalled };
  }

  it('disconnect (default): the client that does not read is closed with ERR_SLOW_CONSUMER; the reader gets every byte', { timeout: 60_000 }, async (t) => {
    const { b, events } = await flood(t, 'disconnect');
    assert.equal(b.relay.slowDisconnects, 1);
    await waitUntil(() => events.some((e) => e.event === 'disconnect' && e.error === 'ERR_SLOW_CONSUMER'), 'the slow consumer closed').catch(() => undefined);
    assert.ok(events.some((e) => e.event === 'disconnect' && e.error === 'ERR_SLOW_CONSUMER'), JSON.stringify(events.filter((e) => e.event === 'disconnect')));
  });

  it('drop: the client that does not read stays, misses what did not fit (counted); the reader gets every byte', { timeout: 60_000 }, async (t) => {
    const { b, stalled } = await flood(t, 'drop');
    assert.equal(b.relay.slowDisconnects, 0);
    assert.ok(b.relay.dropped > 0);
    assert.ok(b.relay.droppedBytes <= TOTAL);
    assert.equal(stalled.closed, false);
    // What the broker holds for it stays within its queue plus one chunk.
    const held = [...b.server.listener.connections].reduce((m, s) => Math.max(m, s.writableLength), 0);
    assert.ok(held <= 256 * 1024 + CHUNK, `${held} bytes held for one client`);
  });
});

describe('chat', () => {
  async function chatClient(t: CleanupContext, b: Broker): Promise<Client> {
    const c = await client(t, b);
    await c.until(() => c.text.includes('\n'), 'the welcome line');
    return c;
  }

  it('names clients user1, user2, ...; relays lines with the sender\'s name; announces joins and leaves', async (t) => {
    const { b } = await broker(t, { mode: 'chat' });
    const one = await chatClient(t, b);
    assert.match(one.text, /^\* welcome, user1: you are in lobby with 0 others/);
    const two = await chatClient(t, b);
    assert.match(two.text, /^\* welcome, user2: you are in lobby with 1 other /);
    await one.until(() => one.text.includes('* user2 joined lobby\n'), 'the join');
    // A line sent in pieces is one line.
    two.socket.write('hel');
    two.socket.write('lo\r\nsecond\n');
    await one.until(() => one.text.includes('<user2> hello\n<user2> second\n'), 'two lines');
    assert.ok(!two.text.includes('<user2>'), 'nothing back to the sender');
    two.socket.end();
    await one.until(() => one.text.includes('* user2 left lobby\n'), 'the leave');
    // Numbers are never reused.
    const three = await chatClient(t, b);
    assert.match(three.text, /^\* welcome, user3:/);
  });

  it('/nick: unique (case-insensitive), validated, automatic names reserved; /who lists the room', async (t) => {
    const { b } = await broker(t, { mode: 'chat' });
    const one = await chatClient(t, b);
    const two = await chatClient(t, b);
    one.socket.write('/nick Alice\n');
    await one.until(() => one.text.includes('* you are now Alice\n'), 'the rename');
    await two.until(() => two.text.includes('* user1 is now Alice\n'), 'the announcement');
    for (const [line, reply] of [
      ['/nick alice', 'nick: alice is taken'],
      ['/nick bad name!', "nick: 'bad name!' is not a name"],
      ['/nick user7', 'nick: names like user7 are given out automatically'],
      ['/frobnicate', 'unknown command /frobnicate'],
    ] as const) {
      two.socket.write(`${line}\n`);
      await two.until(() => two.text.includes(`* ${reply}`), reply);
    }
    two.socket.write('/who\n');
    await two.until(() => two.text.includes('* lobby (2): Alice, user2\n'), '/who');
    // The name is free again once its holder goes.
    one.socket.end();
    await two.until(() => two.text.includes('* Alice left lobby\n'), 'the leave');
    two.socket.write('/nick alice\n');
    await two.until(() => two.text.includes('* you are now alice\n'), 'the freed name');
  });

  it('/join moves between rooms: lines stay in their room; both rooms hear of the move', async (t) => {
    const { b } = await broker(t, { mode: 'chat' });
    const one = await chatClient(t, b);
    const two = await chatClient(t, b);
    const three = await chatClient(t, b);
    one.socket.write('/join dev\n');
    await one.until(() => one.text.includes('* you are in dev with 0 others\n'), 'the move');
    await two.until(() => two.text.includes('* user1 left lobby\n'), 'the leave in lobby');
    two.socket.write('/join dev\n');
    await one.until(() => one.text.includes('* user2 joined dev\n'), 'the join in dev');
    two.socket.write('only for dev\n');
    await one.until(() => one.text.includes('<user2> only for dev\n'), 'the line in dev');
    three.socket.write('/who\n');
    await three.until(() => three.text.includes('* lobby (1): user3\n'), 'lobby alone');
    assert.ok(!three.text.includes('only for dev'));
  });

  it('hostile input reaches no terminal raw: escapes, NUL, invalid UTF-8; a 10 MiB line is cut with a notice', { timeout: 30_000 }, async (t) => {
    const { b } = await broker(t, { mode: 'chat', maxLine: 4096 });
    const one = await chatClient(t, b);
    const two = await chatClient(t, b);
    two.socket.write(Buffer.concat([Buffer.from('\x1b]0;pwned\x07 \x1b[2J nul\x00 c1\u009b '), Buffer.from([0xff, 0xfe]), Buffer.from(' end\n')]));
    await one.until(() => one.text.includes(' end\n'), 'the hostile line');
    const line = one.text.split('\n').find((l) => l.startsWith('<user2>'))!;
    // eslint-disable-next-line no-control-regex
    assert.doesNotMatch(line, /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/);
    assert.ok(line.includes('\ufffd'), 'invalid UTF-8 shown as U+FFFD');
    const big = Buffer.alloc(10 * 1024 * 1024, 'z');
    two.socket.write(big);
    two.socket.write('\nafter\n');
    await one.until(() => one.text.includes('<user2> after\n'), 'the line after the big one');
    const cut = one.text.split('\n').find((l) => l.startsWith('<user2> zzz'))!;
    assert.equal(cut.length, '<user2> '.length + 4096);
    await two.until(() => two.text.includes('* your line was longer than 4096 bytes: it was cut there\n'), 'the notice');
    assert.equal(two.text.split('was cut there').length - 1, 1, 'one notice for one long line');
  });
});

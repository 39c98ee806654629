// Tests of the transfer protocol's pure parts: wire paths, message encoding and validation, the
// hello and version negotiation, and the link's DATA fast path fed every way a stream can be cut.
// No sockets: the link runs over an in-memory Duplex. Errors are matched on their `code` only.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import { open, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { encodeFrame, encodeHeader } from '../src/codec/index.js';
import { checkWirePath } from '../src/transfer/paths.js';
import {
  MessageType,
  dataPrefix,
  encodeControl,
  encodeHello,
  negotiateVersion,
  parseHello,
  parseMessage,
  type ControlMessage,
  type Message,
} from '../src/transfer/protocol.js';
import { Link, type DataSink, type OnRead } from '../src/transfer/link.js';
import { BufferPool, FileSink, readChunks } from '../src/transfer/file-io.js';
import { summaryError } from '../src/transfer/events.js';
import { TRANSFER_PROTOCOL_VERSION } from '../src/transfer/constants.js';

const SHA = 'a'.repeat(64);

describe('wire paths', () => {
  // Each row: a path a peer might send, and whether a receiver accepts it.
  const table: Array<[string, boolean, string]> = [
    ['a.txt', true, 'plain name'],
    ['dir/sub/file.bin', true, 'nested'],
    ['..hidden', true, 'dots inside a name are fine'],
    ['a..b/c', true, 'dots inside a component'],
    ['', false, 'empty'],
    ['..', false, 'parent'],
    ['../evil', false, 'leading parent'],
    ['a/../../evil', false, 'parent in the middle'],
    ['a/..', false, 'trailing parent'],
    ['./a', false, 'current-folder component'],
    ['/etc/passwd', false, 'absolute'],
    ['a//b', false, 'empty component'],
    ['a/', false, 'trailing slash'],
    ['a\\..\\b', false, 'backslashes'],
    ['C:/x', false, 'drive letter'],
    ['a\u0000b', false, 'NUL'],
    ['a\nb', false, 'newline'],
    ['\u001b[2Jx', false, 'terminal escape'],
    ['x'.repeat(256), false, 'component over NAME_MAX'],
    [`${'x/'.repeat(2100)}x`, false, 'path over PATH_MAX'],
  ];
  for (const [path, ok, why] of table) {
    it(`${ok ? 'accepts' : 'refuses'} ${why}`, () => {
      assert.equal(checkWirePath(path) === undefined, ok, JSON.stringify(path));
    });
  }
});

describe('messages', () => {
  const samples: ControlMessage[] = [
    { type: 'noop' },
    { type: 'offer', id: 3, kind: 'file', path: 'a/b.txt', size: 12345, mode: 0o644, mtimeMs: 1_700_000_000_000 },
    { type: 'offer', id: 4, kind: 'dir', path: 'a', size: 0, mode: 0o755, mtimeMs: 1 },
    { type: 'begin', id: 3, offset: 1024 },
    { type: 'end', id: 3, sha256: SHA },
    { type: 'abort', id: 3, code: 'ERR_SOURCE_CHANGED', message: 'gone' },
    { type: 'done' },
    { type: 'reply', id: 3, action: 'receive', offset: 0 },
    { type: 'reply', id: 3, action: 'receive', offset: 10, prefixSha256: SHA },
    { type: 'reply', id: 4, action: 'created' },
    { type: 'reply', id: 5, action: 'skip', code: 'ERR_EXISTS', message: 'exists' },
    { type: 'result', id: 3, ok: true, sha256: SHA },
    { type: 'result', id: 3, ok: false, code: 'ERR_HASH_MISMATCH', message: 'bad' },
    { type: 'error', code: 'ERR_DISK_FULL', message: 'full' },
  ];
  for (const msg of samples) {
    it(`round-trips ${msg.type}${'action' in msg ? ` (${msg.action})` : ''}`, () => {
      assert.deepEqual(parseMessage(encodeControl(msg)), msg);
    });
  }

  it('carries DATA bytes after a 5-byte prefix that the codec can read', () => {
    const prefix = dataPrefix(3);
    assert.deepEqual([...prefix], [0, 0, 0, 4, MessageType.DATA]);
    const msg = parseMessage(Buffer.concat([prefix.subarray(4), Buffer.from('abc')]));
    assert.equal(msg.type, 'data');
    assert.equal(Buffer.from((msg).bytes).toString(), 'abc');
  });

  // Each row: a frame payload a peer might send that must be refused as a protocol error.
  const bad: Array<[string, Uint8Array]> = [
    ['an empty frame', new Uint8Array(0)],
    ['an unknown type', Uint8Array.of(0x42)],
    ['a body that is not JSON', Buffer.concat([Uint8Array.of(MessageType.OFFER), Buffer.from('{nope')])],
    ['a JSON array body', Buffer.concat([Uint8Array.of(MessageType.BEGIN), Buffer.from('[1,2]')])],
    ['a negative id', Buffer.concat([Uint8Array.of(MessageType.BEGIN), Buffer.from('{"id":-1,"offset":0}')])],
    ['a fractional offset', Buffer.concat([Uint8Array.of(MessageType.BEGIN), Buffer.from('{"id":1,"offset":0.5}')])],
    ['a bad hash', Buffer.concat([Uint8Array.of(MessageType.END), Buffer.from('{"id":1,"sha256":"xyz"}')])],
    ['an offer of an unknown kind', Buffer.concat([Uint8Array.of(MessageType.OFFER), Buffer.from('{"id":1,"kind":"link","path":"a","size":0,"mode":0}')])],
    ['a reply with an unknown action', Buffer.concat([Uint8Array.of(MessageType.REPLY), Buffer.from('{"id":1,"action":"maybe"}')])],
    ['an oversized control message', Buffer.concat([Uint8Array.of(MessageType.ERROR), Buffer.alloc(70_000, 0x20)])],
  ];
  for (const [why, frame] of bad) {
    it(`refuses ${why}`, () => {
      assert.throws(() => parseMessage(frame), { code: 'ERR_TRANSFER_PROTOCOL' });
    });
  }

  it('makes peer error codes and messages safe to print', () => {
    // A peer may send any string as its code; encodeControl only takes ours, so build the frame by hand.
    const frame = Buffer.concat([Uint8Array.of(MessageType.ERROR), Buffer.from(JSON.stringify({ code: 'rm -rf /\u001b[2J', message: 'line\u001b[2J\nbreak' }))]);
    const msg = parseMessage(frame) as Extract<Message, { type: 'error' }>;
    assert.equal(msg.code, 'ERR_PEER');
    // The unknown code is kept in the message, neutralised.
    assert.match(msg.message, /^rm -rf \//);
    // eslint-disable-next-line no-control-regex
    assert.doesNotMatch(msg.message, /[\u0000-\u001f]/);
  });

  it('keeps a known peer code as it is', () => {
    const frame = Buffer.concat([Uint8Array.of(MessageType.ERROR), Buffer.from(JSON.stringify({ code: 'ERR_DISK_FULL', message: 'no space' }))]);
    const msg = parseMessage(frame) as Extract<Message, { type: 'error' }>;
    assert.equal(msg.code, 'ERR_DISK_FULL');
    assert.equal(msg.message, 'no space');
  });
});

describe('hello', () => {
  it('round-trips role and info', () => {
    const h = parseHello(encodeHello('sender', { software: 'x/1', entries: 2, files: 1, bytes: 10 }));
    assert.deepEqual(h, { version: TRANSFER_PROTOCOL_VERSION, role: 'sender', info: { software: 'x/1', entries: 2, files: 1, bytes: 10 } });
    assert.equal(parseHello(encodeHello('receiver', {})).role, 'receiver');
  });

  it('refuses what is not an SKFT hello', () => {
    assert.throws(() => parseHello(Buffer.from('GET / HTTP/1.1')), { code: 'ERR_TRANSFER_PROTOCOL' });
    assert.throws(() => parseHello(Buffer.from('SKF')), { code: 'ERR_TRANSFER_PROTOCOL' });
    assert.throws(() => parseHello(Buffer.from('SKFT\u0001X{}')), { code: 'ERR_TRANSFER_PROTOCOL' });
  });

  it('settles on the lower version, and refuses one it cannot speak', () => {
    assert.equal(negotiateVersion({ version: 1, role: 'sender', info: {} }), 1);
    assert.equal(negotiateVersion({ version: 7, role: 'sender', info: {} }), TRANSFER_PROTOCOL_VERSION, 'a newer peer steps down to ours');
    assert.throws(() => negotiateVersion({ version: 0, role: 'sender', info: {} }), { code: 'ERR_TRANSFER_VERSION' });
  });
});

// ---- the link's reading side, over an in-memory stream ---------------------------------------

/** A Duplex standing in for a socket: what the test pushes is what the link reads. */
function fakeSocket(): Duplex {
  return new Duplex({
    read() {},
    write(_chunk, _enc, cb) {
      cb();
    },
  });
}

/** Frames for: a sender's hello, then an offer. */
function sampleHead(): Buffer {
  return Buffer.concat([...encodeFrame(encodeHello('sender', { entries: 1 })), ...encodeFrame(encodeControl({ type: 'offer', id: 0, kind: 'file', path: 'f', size: 1, mode: 0o644, mtimeMs: 0 }))]);
}

/** Frames for: hello, an offer, then DATA frames of `payloads`, an END, DONE. */
function sampleStream(payloads: readonly Uint8Array[]): Uint8Array {
  const parts: Uint8Array[] = [sampleHead()];
  for (const p of payloads) parts.push(dataPrefix(p.byteLength), p);
  parts.push(...encodeFrame(encodeControl({ type: 'end', id: 0, sha256: SHA })));
  parts.push(...encodeFrame(encodeControl({ type: 'noop' })));
  parts.push(...encodeFrame(encodeControl({ type: 'done' })));
  return Buffer.concat(parts);
}

/** Feeds `chunks` to a link and collects what it hands out: control types, and the data bytes joined. */
async function readThrough(chunks: readonly Uint8Array[]): Promise<{ types: string[]; data: Buffer }> {
  const socket = fakeSocket();
  const link = new Link(socket as unknown as Socket, { peer: 'test', stallTimeoutMs: 0 });
  try {
    for (const c of chunks) socket.push(Buffer.from(c));
    socket.push(null);
    const hello = await link.readHello();
    assert.equal(hello.role, 'sender');
    const types: string[] = [];
    const data: Buffer[] = [];
    for (;;) {
      const msg = await link.next();
      if (msg === null) break;
      if (msg.type === 'data') data.push(Buffer.from(msg.bytes));
      else types.push(msg.type);
    }
    return { types, data: Buffer.concat(data) };
  } finally {
    link.destroy();
  }
}

function cutAt(bytes: Uint8Array, points: readonly number[]): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  let from = 0;
  for (const p of [...points].sort((a, b) => a - b)) {
    chunks.push(bytes.subarray(from, p));
    from = p;
  }
  chunks.push(bytes.subarray(from));
  return chunks;
}

/**
 * Like `readThrough`, but the bytes arrive as a socket made with `onread` delivers them: each
 * chunk in the link's own read buffer, overwritten after the read. With `direct`, the link has a
 * DATA sink that takes DATA synchronously (it gets bytes while the consumer waits in `next()`).
 */
async function readThroughReusedBuffer(chunks: readonly Uint8Array[], direct: boolean | 'sometimes-behind'): Promise<{ types: string[]; data: Buffer; directBytes: number }> {
  const socket = fakeSocket();
  const data: Buffer[] = [];
  let directBytes = 0;
  let sink: DataSink | undefined;
  // Which read the fake socket is delivering (the sink may be called only during one).
  let read = 0;
  if (direct) {
    let calls = 0;
    let behind = 0;
    let behindSince = -1;
    sink = (bytes) => {
      // A consumer that is behind is given the rest of the read during which it fell behind,
      // and nothing of a later read until it has caught up (the link queues those).
      assert.ok(behind === 0 || read === behindSince, 'direct called with a later read while a promise was pending');
      directBytes += bytes.byteLength;
      data.push(Buffer.from(bytes));
      // Every other call, the consumer is behind for a moment: DATA must queue meanwhile.
      if (direct !== 'sometimes-behind' || ++calls % 2 !== 0) return undefined;
      behind++;
      behindSince = read;
      return new Promise<void>((resolve) => setImmediate(resolve)).then(() => {
        behind--;
      });
    };
  }
  let onread: OnRead | undefined;
  const link = await Link.open(
    (o) => {
      onread = o;
      return Promise.resolve(socket as unknown as Socket);
    },
    { peer: 'test', stallTimeoutMs: 0, readBufferSize: Math.max(1, ...chunks.map((c) => c.byteLength)), ...(sink ? { data: sink } : {}) },
  );
  const shared = onread!.buffer;
  const feeding = (async () => {
    for (const c of chunks) {
      shared.set(c);
      read++;
      onread!.callback(c.byteLength, shared);
      shared.fill(0xee); // the next read lands here
      await new Promise((resolve) => setImmediate(resolve));
    }
    socket.push(null);
    socket.resume();
  })();
  try {
    const hello = await link.readHello();
    assert.equal(hello.role, 'sender');
    const types: string[] = [];
    for (;;) {
      const msg = await link.next();
      if (msg === null) break;
      if (msg.type === 'data') data.push(Buffer.from(msg.bytes));
      else types.push(msg.type);
    }
    await feeding;
    return { types, data: Buffer.concat(data), directBytes };
  } finally {
    link.destroy();
  }
}

describe('link reading (DATA fast path and codec path)', () => {
  const payloads = [Buffer.from('hello '), Buffer.alloc(0), Buffer.from('wor'), Buffer.from('ld'), Buffer.alloc(300, 7)];
  const expected = Buffer.concat(payloads);
  const wire = sampleStream(payloads);

  it('in one chunk', async () => {
    const r = await readThrough([wire]);
    assert.deepEqual(r.types, ['offer', 'end', 'done'], 'NOOPs are absorbed');
    assert.deepEqual(r.data, expected);
  });

  it('one byte at a time', async () => {
    const r = await readThrough(Array.from(wire, (b) => Uint8Array.of(b)));
    assert.deepEqual(r.types, ['offer', 'end', 'done']);
    assert.deepEqual(r.data, expected);
  });

  it('split at every point', async () => {
    for (let i = 0; i <= wire.byteLength; i++) {
      const r = await readThrough([wire.subarray(0, i), wire.subarray(i)]);
      assert.deepEqual(r.types, ['offer', 'end', 'done'], `split at ${i}`);
      assert.deepEqual(r.data, expected, `split at ${i}`);
    }
  });

  it('the counterexample fast-check found: DATA [0,0,0] then [0,0,0,18], cut once', async () => {
    const datas = [Uint8Array.from([0, 0, 0]), Uint8Array.from([0, 0, 0, 18])];
    const w = sampleStream(datas);
    const r = await readThrough(cutAt(w, [2147483623 % (w.byteLength + 1)]));
    assert.deepEqual(r.data, Buffer.concat(datas));
    assert.deepEqual(r.types, ['offer', 'end', 'done']);
  });

  it('under arbitrary chunkings', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.uint8Array({ maxLength: 40 }), { maxLength: 6 }), fc.array(fc.nat(), { maxLength: 12 }), async (datas, raw) => {
        const w = sampleStream(datas);
        const r = await readThrough(cutAt(w, raw.map((n) => n % (w.byteLength + 1))));
        assert.deepEqual(r.data, Buffer.concat(datas));
        assert.deepEqual(r.types, ['offer', 'end', 'done']);
      }),
      { numRuns: 150 },
    );
  });

  for (const direct of [false, true, 'sometimes-behind'] as const) {
    it(`from one reused read buffer${direct === true ? ', DATA taken directly' : direct ? ', DATA taken directly by a consumer sometimes behind' : ''}: nothing kept is overwritten, under arbitrary chunkings`, async () => {
      let sawDirect = 0;
      await fc.assert(
        fc.asyncProperty(fc.array(fc.uint8Array({ minLength: 1, maxLength: 600 }), { maxLength: 6 }), fc.array(fc.nat(), { maxLength: 12 }), async (datas, raw) => {
          const w = sampleStream(datas);
          const r = await readThroughReusedBuffer(cutAt(w, raw.map((n) => n % (w.byteLength + 1))), direct);
          assert.deepEqual(r.data, Buffer.concat(datas));
          assert.deepEqual(r.types, ['offer', 'end', 'done']);
          if (!direct) assert.equal(r.directBytes, 0);
          sawDirect += r.directBytes;
        }),
        { numRuns: 150 },
      );
      if (direct) assert.ok(sawDirect > 0, 'some DATA went the direct way');
    });
  }

  it('a sink that falls behind takes the rest of that read: nothing of it is copied into the queue', async () => {
    const datas = [Buffer.alloc(100, 1), Buffer.alloc(200, 2), Buffer.alloc(300, 3)];
    const w = sampleStream(datas);
    // The hello and the offer first, then (the consumer waiting in next()) one read with the three payloads.
    const head = sampleHead().byteLength;
    const r = await readThroughReusedBuffer([w.subarray(0, head), w.subarray(head)], 'sometimes-behind');
    assert.deepEqual(r.data, Buffer.concat(datas));
    assert.deepEqual(r.types, ['offer', 'end', 'done']);
    assert.equal(r.directBytes, 600, 'the third payload, after the sink fell behind on the second, went to the sink too');
  });

  it('a sink behind while the queue fills up: the bytes held back are taken once it catches up (a feeder that honours pause)', async () => {
    // One read: DATA (the sink falls behind on it), then more messages than the queue takes (more
    // than one 16 KiB decoding slice of them), so the rest is held back; the consumer empties the
    // queue and waits in next() before the sink's promise settles. Found in review: the link
    // stayed paused for ever.
    const head = sampleHead();
    const ends = 600;
    const body = Buffer.concat([
      dataPrefix(100),
      Buffer.alloc(100, 1),
      ...Array.from({ length: ends }, (_, i) => Buffer.concat(encodeFrame(encodeControl({ type: 'end', id: i, sha256: SHA })))),
      dataPrefix(50),
      Buffer.alloc(50, 2),
      ...encodeFrame(encodeControl({ type: 'done' })),
    ]);
    const socket = fakeSocket();
    let settle: (() => void) | undefined;
    let calls = 0;
    const direct: Buffer[] = [];
    const sink: DataSink = (bytes) => {
      direct.push(Buffer.from(bytes));
      if (++calls > 1) return undefined;
      return new Promise<void>((resolve) => (settle = resolve));
    };
    let onread: OnRead | undefined;
    const link = await Link.open(
      (o) => {
        onread = o;
        return Promise.resolve(socket as unknown as Socket);
      },
      { peer: 'test', stallTimeoutMs: 0, readBufferSize: body.byteLength, queueMessages: 10, data: sink },
    );
    const deliver = (c: Uint8Array): void => {
      onread!.buffer.set(c);
      onread!.callback(c.byteLength, onread!.buffer);
      onread!.buffer.fill(0xee);
    };
    try {
      deliver(head);
      await link.readHello();
      assert.equal((await link.next())?.type, 'offer');
      const waiting = link.next();
      deliver(body);
      assert.ok(socket.isPaused(), 'the sink is behind and the queue is full: no more reads');
      const types: string[] = [];
      const data: Buffer[] = [];
      const take = (m: Message | null): void => {
        assert.ok(m !== null);
        if (m.type === 'data') data.push(Buffer.from(m.bytes));
        else types.push(m.type);
      };
      take(await waiting);
      // The queue drained; the consumer waits again while the sink is still behind.
      for (let m = link.poll(); m !== undefined; m = link.poll()) take(m);
      const last = link.next();
      await new Promise((resolve) => setImmediate(resolve));
      settle!();
      take(await last);
      while (types.at(-1) !== 'done') take(await link.next());
      assert.equal(types.filter((t) => t === 'end').length, ends);
      assert.deepEqual(Buffer.concat([...direct, ...data]), Buffer.concat([Buffer.alloc(100, 1), Buffer.alloc(50, 2)]));
      assert.ok(!socket.isPaused(), 'reading again once the consumer caught up');
    } finally {
      link.destroy();
    }
  });

  it('refuses a DATA frame above the frame limit before buffering it', async () => {
    const socket = fakeSocket();
    const link = new Link(socket as unknown as Socket, { peer: 'test', stallTimeoutMs: 0, maxFrameSize: 1024 });
    try {
      socket.push(Buffer.concat([...encodeFrame(encodeHello('sender', {})), encodeHeader(4096, { maxFrameSize: 1 << 20 }), Uint8Array.of(MessageType.DATA)]));
      await link.readHello();
      await assert.rejects(link.next(), { code: 'ERR_FRAME_TOO_LARGE' });
    } finally {
      link.destroy();
    }
  });

  it('reports a stream cut inside a DATA payload as truncated', async () => {
    const cut = wire.subarray(0, Buffer.from(wire).indexOf('wor') + 1);
    const socket = fakeSocket();
    const link = new Link(socket as unknown as Socket, { peer: 'test', stallTimeoutMs: 0 });
    try {
      socket.push(Buffer.from(cut));
      socket.push(null);
      await link.readHello();
      await assert.rejects(
        (async () => {
          while ((await link.next()) !== null);
        })(),
        { code: 'ERR_FRAME_TRUNCATED' },
      );
    } finally {
      link.destroy();
    }
  });

  it('refuses a peer that does not start with an SKFT hello', async () => {
    const socket = fakeSocket();
    const link = new Link(socket as unknown as Socket, { peer: 'test', stallTimeoutMs: 0 });
    try {
      socket.push(Buffer.from('\u00ff\u00ff\u00ff\u00ffrandom file bytes'));
      await assert.rejects(link.readHello(), { code: 'ERR_TRANSFER_PROTOCOL' });
    } finally {
      link.destroy();
    }
  });

  it('fails with ERR_STALLED when nothing moves', async () => {
    const socket = fakeSocket();
    const link = new Link(socket as unknown as Socket, { peer: 'test', stallTimeoutMs: 150 });
    // A real socket keeps the process alive while it waits; this stand-in does not.
    const alive = setTimeout(() => undefined, 10_000);
    try {
      socket.push(Buffer.from(encodeFrame(encodeHello('sender', {}))[0]));
      await link.readHello();
      await assert.rejects(link.next(), { code: 'ERR_STALLED' });
    } finally {
      clearTimeout(alive);
      link.destroy();
    }
  });
});

describe('file sink', () => {
  it('writes chunks in order, coalesced, and reports its high-water mark', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'sk-sink-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const path = join(dir, 'out');
    const fh = await open(path, 'w');
    try {
      const sink = new FileSink(fh, { path, position: 0, highWaterMark: 1000 });
      const chunks = Array.from({ length: 50 }, (_, i) => Buffer.alloc(100, i));
      let refused = 0;
      for (const c of chunks) {
        if (!sink.write(c)) {
          refused++;
          await sink.drained();
        }
      }
      await sink.flush();
      assert.ok(refused > 0, 'above the high-water mark, write() asks the caller to wait');
      assert.equal(sink.written, 5000);
      assert.deepEqual(await readFile(path), Buffer.concat(chunks));
    } finally {
      await fh.close();
    }
  });
});

describe('file reader', () => {
  for (const sync of [true, false]) {
    it(`reads a range in pool-sized chunks, ${sync ? 'synchronously from the page cache' : 'through the thread pool'}`, async (t) => {
      const dir = await mkdtemp(join(tmpdir(), 'sk-read-'));
      t.after(() => rm(dir, { recursive: true, force: true }));
      const data = Buffer.from(Array.from({ length: 10_000 }, (_, i) => i % 251));
      const path = join(dir, 'f');
      await writeFile(path, data);
      const fh = await open(path, 'r');
      try {
        const pool = new BufferPool(1024, 3);
        const got: Buffer[] = [];
        for await (const chunk of readChunks(fh, 100, 9_999, pool, path, { sync })) {
          got.push(Buffer.from(chunk));
          pool.release(chunk);
        }
        assert.deepEqual(Buffer.concat(got), data.subarray(100, 9_999));
        assert.ok(got.every((c) => c.length <= 1024));
        assert.equal(pool.available, 3, 'every buffer is back');
        // Asking for more than the file holds: the file changed under us.
        await assert.rejects(
          (async () => {
            for await (const chunk of readChunks(fh, 0, 20_000, pool, path, { sync })) pool.release(chunk);
          })(),
          { code: 'ERR_SOURCE_CHANGED' },
        );
        assert.equal(pool.available, 3, 'every buffer is back after the error');
      } finally {
        await fh.close();
      }
    });
  }
});

describe('summary errors', () => {
  const base = { files: 1, dirs: 0, bytes: 1, transferred: 1, seconds: 1 };
  it('is undefined when nothing failed', () => {
    assert.equal(summaryError({ ...base, failures: [] }), undefined);
  });
  it('keeps the code of a single failure', () => {
    const e = summaryError({ ...base, failures: [{ path: 'a', code: 'ERR_EXISTS', message: 'exists' }] });
    assert.equal(e?.code, 'ERR_EXISTS');
    assert.equal(e?.exitCode, 2);
  });
  it('exits 1 when a hash did not match', () => {
    const e = summaryError({
      ...base,
      failures: [
        { path: 'a', code: 'ERR_EXISTS', message: 'x' },
        { path: 'b', code: 'ERR_HASH_MISMATCH', message: 'y' },
      ],
    });
    assert.equal(e?.exitCode, 1);
  });
});

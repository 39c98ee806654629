// Parallel streams on the wire (issue 17): range offers and SEAL spoken by a scripted sender
// (test/helpers/skft-peer.ts), so that a test can send a corrupted range or a wrong whole-file
// digest; and peers that do not take ranges (version 1, version 2 before ranges), which a
// parallel client talks to over one ordinary connection.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { lstat, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { xxhash128 } from 'hash-wasm';
import { download, summaryError, upload } from '../src/transfer/index.js';
import { encodeHello, type Message } from '../src/transfer/protocol.js';
import type { HashName } from '../src/transfer/digest.js';
import { encodeFrame } from '../src/codec/index.js';
import { scriptedServer, type SkftPeer } from './helpers/skft-peer.js';
import { tempDir } from './helpers/tmp.js';

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const digestOf = async (hash: HashName, b: Uint8Array): Promise<string> => (hash === 'sha256' ? sha(b) : xxhash128(b));
const R = 64 * 1024;

async function exists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    () => false,
  );
}

/** A hello with an explicit version byte. */
function helloAs(peer: SkftPeer, version: number, role: 'sender' | 'receiver', info: Record<string, unknown>): void {
  const payload = encodeHello(role, info);
  payload[4] = version;
  for (const part of encodeFrame(payload)) peer.socket.write(part);
}

async function expectNext<T extends Message['type']>(peer: SkftPeer, type: T): Promise<Extract<Message, { type: T }>> {
  const m = await peer.next();
  assert.equal(m?.type, type, `expected ${type}, got ${JSON.stringify(m)}`);
  return m as Extract<Message, { type: T }>;
}

type Outcome = { readonly kind: 'ok' } | { readonly kind: 'bad-range' } | { readonly kind: 'bad-seal' };

/**
 * A sender that speaks ranges: on the first connection of the client's session it offers one
 * file of two ranges, sends them (the second corrupted, with `bad-range`), then SEAL (a wrong
 * digest, with `bad-seal`); later connections get nothing (DONE). Returns what it heard.
 */
async function rangeSender(t: Parameters<typeof scriptedServer>[0], hash: HashName, data: Buffer, outcome: Outcome) {
  const heard: { results: Message[]; connections: number } = { results: [], connections: 0 };
  const { port } = await scriptedServer(t, async (peer) => {
    const first = heard.connections++ === 0;
    peer.hello('sender', { entries: first ? 1 : 0, files: first ? 1 : 0, bytes: first ? data.length : 0, hashes: ['sha256', 'xxh128'], hash, ranges: true });
    await peer.readHello();
    if (first) {
      const parts = [data.subarray(0, R), data.subarray(R)];
      parts.forEach((_p, id) => peer.send({ type: 'offer', id, kind: 'file', path: 'f.bin', size: data.length, mode: 0o644, mtimeMs: Date.now(), range: [id * R, id === 0 ? R : data.length] }));
      for (let id = 0; id < 2; id++) assert.equal((await expectNext(peer, 'reply')).action, 'receive');
      for (const [id, part] of parts.entries()) {
        peer.send({ type: 'begin', id, offset: 0 });
        const wire = Buffer.from(part);
        if (id === 1 && outcome.kind === 'bad-range') wire[100] = wire[100]! ^ 0xff;
        peer.data(wire);
        peer.send({ type: 'end', id, sha256: await xxhash128(part) });
      }
      for (let i = 0; i < 2; i++) heard.results.push(await expectNext(peer, 'result'));
      if (outcome.kind !== 'bad-range') {
        const whole = await digestOf(hash, data);
        peer.send({ type: 'seal', id: 0, sha256: outcome.kind === 'bad-seal' ? whole.replace(/^./, (c) => (c === '0' ? '1' : '0')) : whole });
        heard.results.push(await expectNext(peer, 'result'));
      }
    }
    peer.send({ type: 'done' });
    peer.end();
    await peer.closed();
  });
  return { port, heard };
}

for (const hash of ['sha256', 'xxh128'] as const) {
  describe(`ranges and SEAL (${hash})`, () => {
    it('two verified ranges and a right SEAL: the file is placed, with the whole-file digest', async (t) => {
      const dir = tempDir(t, 'sk-parp-');
      const data = randomBytes(R + 5000);
      const { port, heard } = await rangeSender(t, hash, data, { kind: 'ok' });
      const summary = await download({ kind: 'inet', host: '127.0.0.1', port }, { dir: join(dir, 'out'), hash, streams: 4 });
      assert.equal(summaryError(summary), undefined);
      assert.ok((await readFile(join(dir, 'out', 'f.bin'))).equals(data));
      assert.deepEqual(await readdir(join(dir, 'out')), ['f.bin'], 'no partial file, no record of ranges');
      const sealed = heard.results[2];
      assert.ok(sealed?.type === 'result' && sealed.ok && sealed.sha256 === (await digestOf(hash, data)));
      assert.equal(heard.connections, 4, 'the peer takes ranges: four connections');
    });

    it('a corrupted range: ERR_HASH_MISMATCH for that range, and no final file', async (t) => {
      const dir = tempDir(t, 'sk-parp-');
      const data = randomBytes(R + 5000);
      const { port, heard } = await rangeSender(t, hash, data, { kind: 'bad-range' });
      const summary = await download({ kind: 'inet', host: '127.0.0.1', port }, { dir: join(dir, 'out'), hash, streams: 4 });
      assert.equal(summaryError(summary)?.code, 'ERR_HASH_MISMATCH');
      const byId = new Map(heard.results.map((m) => [m.type === 'result' ? m.id : -1, m]));
      const good = byId.get(0);
      assert.ok(good?.type === 'result' && good.ok, 'the good range is verified');
      const bad = byId.get(1);
      assert.ok(bad?.type === 'result' && !bad.ok && bad.code === 'ERR_HASH_MISMATCH', JSON.stringify(bad));
      assert.equal(await exists(join(dir, 'out', 'f.bin')), false, 'no final file');
    });

    it('a SEAL whose digest is not the file\'s: ERR_HASH_MISMATCH, nothing kept', async (t) => {
      const dir = tempDir(t, 'sk-parp-');
      const data = randomBytes(R + 5000);
      const { port, heard } = await rangeSender(t, hash, data, { kind: 'bad-seal' });
      const summary = await download({ kind: 'inet', host: '127.0.0.1', port }, { dir: join(dir, 'out'), hash, streams: 4 });
      assert.equal(summaryError(summary)?.code, 'ERR_HASH_MISMATCH');
      const sealed = heard.results[2];
      assert.ok(sealed?.type === 'result' && !sealed.ok && sealed.code === 'ERR_HASH_MISMATCH', JSON.stringify(sealed));
      assert.deepEqual(await readdir(join(dir, 'out')), [], 'no final file, no partial file, no record');
    });
  });
}

describe('peers that do not take ranges get one ordinary connection', () => {
  for (const version of [1, 2]) {
    it(`get -P 4 from a version-${version} server`, async (t) => {
      const dir = tempDir(t, 'sk-parp-');
      const data = randomBytes(3 * R);
      let connections = 0;
      let offered: Message | undefined;
      const { port } = await scriptedServer(t, async (peer) => {
        connections++;
        // As that version spoke: no "ranges" (and, in version 1, no hashes).
        helloAs(peer, version, 'sender', { entries: 1, files: 1, bytes: data.length, ...(version === 2 ? { hashes: ['sha256', 'xxh128'] } : {}) });
        const hello = await peer.readHello();
        assert.ok(hello.info.parallel !== undefined, 'the client says it would go parallel');
        peer.send({ type: 'offer', id: 0, kind: 'file', path: 'f.bin', size: data.length, mode: 0o644, mtimeMs: Date.now() });
        assert.equal((await expectNext(peer, 'reply')).action, 'receive');
        peer.send({ type: 'begin', id: 0, offset: 0 });
        peer.data(data);
        peer.send({ type: 'end', id: 0, sha256: sha(data) });
        offered = await expectNext(peer, 'result');
        peer.send({ type: 'done' });
        peer.end();
        await peer.closed();
      });
      const summary = await download({ kind: 'inet', host: '127.0.0.1', port }, { dir: join(dir, 'out'), streams: 4, rangeSize: R });
      assert.equal(summaryError(summary), undefined);
      assert.equal(connections, 1);
      assert.ok(offered?.type === 'result' && offered.ok);
      assert.ok((await readFile(join(dir, 'out', 'f.bin'))).equals(data));
    });

    it(`send -P 4 to a version-${version} receiver: whole files, no ranges`, async (t) => {
      const dir = tempDir(t, 'sk-parp-');
      const data = randomBytes(3 * R);
      await writeFile(join(dir, 'f.bin'), data);
      let connections = 0;
      const got: Buffer[] = [];
      const { port } = await scriptedServer(t, async (peer) => {
        connections++;
        helloAs(peer, version, 'receiver', version === 2 ? { hashes: ['sha256', 'xxh128'] } : {});
        await peer.readHello();
        const offer = await expectNext(peer, 'offer');
        assert.equal(offer.range, undefined, 'a whole file');
        assert.equal(offer.size, data.length);
        peer.send({ type: 'reply', id: 0, action: 'receive', offset: 0 });
        await expectNext(peer, 'begin');
        for (;;) {
          const m = await peer.next();
          assert.ok(m !== null);
          if (m.type === 'data') got.push(Buffer.from(m.bytes));
          if (m.type === 'end') {
            assert.equal(m.sha256, sha(data));
            peer.send({ type: 'result', id: 0, ok: true, sha256: m.sha256 });
            break;
          }
        }
        await expectNext(peer, 'done');
        peer.end();
        await peer.closed();
      });
      const summary = await upload({ kind: 'inet', host: '127.0.0.1', port }, [join(dir, 'f.bin')], { streams: 4, rangeSize: R });
      assert.equal(summaryError(summary), undefined);
      assert.equal(connections, 1);
      assert.ok(Buffer.concat(got).equals(data));
    });
  }
});

// The hash agreed in the hello (SKFT version 2, issue 17): SHA-256 by default, XXH3-128 when one
// side asks for it, SHA-256 whenever either side asks for it, and version 1 (always SHA-256) to a
// version-1 peer. The version-1 peers are scripted (test/helpers/skft-peer.ts): the wire format
// spoken by hand, as the previous release spoke it.
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { lstat, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { xxhash128 } from 'hash-wasm';
import type { Endpoint } from '../src/net/endpoint.js';
import { download, startFileServer, startReceiveServer, summaryError, upload, type TransferEvent, type TransferServer } from '../src/transfer/index.js';
import { agreeHash, encodeHello } from '../src/transfer/protocol.js';
import type { HashName } from '../src/transfer/digest.js';
import { connectWhenListening, scriptedServer, SkftPeer } from './helpers/skft-peer.js';
import { tempDir } from './helpers/tmp.js';
import { encodeFrame } from '../src/codec/index.js';

const LOOPBACK: Endpoint = { kind: 'inet', host: '127.0.0.1', port: 0 };
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

async function exists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    () => false,
  );
}

async function track<T extends TransferServer>(t: TestContext, server: Promise<T>): Promise<T> {
  const s = await server;
  t.after(() => s.close());
  return s;
}

/** The digest the receiver reported for the one file. */
function doneDigest(events: readonly TransferEvent[]): string | undefined {
  const done = events.find((e) => e.event === 'file-done');
  return done?.event === 'file-done' ? done.sha256 : undefined;
}

/** Sends a hello with an explicit version byte (a version-1 peer's hello, as it was). */
function helloV1(peer: SkftPeer, role: 'sender' | 'receiver', info: Record<string, unknown> = {}): void {
  const payload = encodeHello(role, info);
  payload[4] = 1;
  for (const part of encodeFrame(payload)) peer.socket.write(part);
}

describe('hash agreed in the hello', () => {
  it('agreeHash: who asked decides, SHA-256 wins a disagreement, version 1 is always SHA-256', () => {
    const peer = (hash?: HashName, hashes: HashName[] = ['sha256', 'xxh128']) => ({ version: 2, role: 'sender' as const, info: { hashes, ...(hash ? { hash } : {}) } });
    assert.equal(agreeHash(2, undefined, peer()), 'sha256');
    assert.equal(agreeHash(2, 'xxh128', peer()), 'xxh128');
    assert.equal(agreeHash(2, undefined, peer('xxh128')), 'xxh128');
    assert.equal(agreeHash(2, 'sha256', peer('xxh128')), 'sha256');
    assert.equal(agreeHash(2, 'xxh128', peer('sha256')), 'sha256');
    assert.equal(agreeHash(2, 'xxh128', peer(undefined, ['sha256'])), 'sha256', 'a peer that cannot verify XXH3-128');
    assert.equal(agreeHash(1, 'xxh128', peer('xxh128')), 'sha256');
  });

  const sizes: Array<[string, number]> = [
    ['empty', 0],
    ['1-byte', 1],
    ['3 MiB + 7 B', 3 * 1024 * 1024 + 7],
  ];
  for (const [name, size] of sizes) {
    for (const [serverAsks, clientAsks, agreed] of [
      ['xxh128', undefined, 'xxh128'],
      [undefined, 'xxh128', 'xxh128'],
      ['xxh128', 'sha256', 'sha256'],
      [undefined, undefined, 'sha256'],
    ] as Array<[HashName | undefined, HashName | undefined, HashName]>) {
      it(`serve/get a ${name} file, server asks ${serverAsks ?? 'nothing'}, client ${clientAsks ?? 'nothing'}: ${agreed}`, async (t) => {
        const dir = tempDir(t, 'sk-fast-');
        const data = randomBytes(size);
        await writeFile(join(dir, 'src.bin'), data);
        const server = await track(t, startFileServer(LOOPBACK, { paths: [join(dir, 'src.bin')], ...(serverAsks ? { hash: serverAsks } : {}) }));
        const events: TransferEvent[] = [];
        const summary = await download(server.endpoint, { dir: join(dir, 'out'), onEvent: (e) => events.push(e), ...(clientAsks ? { hash: clientAsks } : {}) });
        assert.equal(summaryError(summary), undefined);
        assert.equal(summary.hash, agreed);
        assert.ok((await readFile(join(dir, 'out', 'src.bin'))).equals(data));
        assert.equal(doneDigest(events), agreed === 'sha256' ? sha(data) : await xxhash128(data));
      });
    }
  }

  it('send/receive with XXH3-128 asked by the sender: a tree, verified', async (t) => {
    const dir = tempDir(t, 'sk-fast-');
    const a = randomBytes(1500_000);
    const b = randomBytes(10);
    await mkdir(join(dir, 'tree', 'sub'), { recursive: true });
    await writeFile(join(dir, 'tree', 'a.bin'), a);
    await writeFile(join(dir, 'tree', 'sub', 'b.bin'), b);
    const server = await track(t, startReceiveServer(LOOPBACK, { dir: join(dir, 'in') }));
    const summary = await upload(server.endpoint, [join(dir, 'tree')], { hash: 'xxh128' });
    assert.equal(summaryError(summary), undefined);
    assert.equal(summary.hash, 'xxh128');
    assert.equal(summary.files, 2);
    assert.ok((await readFile(join(dir, 'in', 'tree', 'a.bin'))).equals(a));
    assert.ok((await readFile(join(dir, 'in', 'tree', 'sub', 'b.bin'))).equals(b));
  });

  it('resumes a partial file with XXH3-128: the prefix is checked with the agreed hash', async (t) => {
    const dir = tempDir(t, 'sk-fast-');
    const data = randomBytes(2 * 1024 * 1024 + 5);
    await writeFile(join(dir, 'src.bin'), data);
    const out = join(dir, 'out');
    await mkdir(out);
    await writeFile(join(out, '.src.bin.sk-partial'), data.subarray(0, 1024 * 1024));
    const server = await track(t, startFileServer(LOOPBACK, { paths: [join(dir, 'src.bin')], hash: 'xxh128' }));
    const summary = await download(server.endpoint, { dir: out });
    assert.equal(summaryError(summary), undefined);
    assert.equal(summary.hash, 'xxh128');
    assert.equal(summary.transferred, data.length - 1024 * 1024, 'only the rest was sent');
    assert.ok((await readFile(join(out, 'src.bin'))).equals(data));
  });

  it('a wrong XXH3-128 digest: ERR_HASH_MISMATCH, and no final file', async (t) => {
    const dir = tempDir(t, 'sk-fast-');
    const data = randomBytes(100_000);
    const { port } = await scriptedServer(t, async (peer) => {
      peer.hello('sender', { entries: 1, files: 1, bytes: data.length, hashes: ['sha256', 'xxh128'], hash: 'xxh128' });
      await peer.readHello();
      peer.send({ type: 'offer', id: 0, kind: 'file', path: 'f.bin', size: data.length, mode: 0o644, mtimeMs: Date.now() });
      assert.equal((await peer.next())?.type, 'reply');
      peer.send({ type: 'begin', id: 0, offset: 0 });
      peer.data(data);
      peer.send({ type: 'end', id: 0, sha256: 'f'.repeat(32) });
      peer.send({ type: 'done' });
      await peer.next();
      peer.end();
      await peer.closed();
    });
    const summary = await download({ kind: 'inet', host: '127.0.0.1', port }, { dir: join(dir, 'out') });
    assert.equal(summary.hash, 'xxh128');
    assert.equal(summary.failures[0]?.code, 'ERR_HASH_MISMATCH');
    assert.equal(await exists(join(dir, 'out', 'f.bin')), false);
  });

  it('a SHA-256-sized digest when XXH3-128 was agreed is a protocol error', async (t) => {
    const dir = tempDir(t, 'sk-fast-');
    const { port } = await scriptedServer(t, async (peer) => {
      peer.hello('sender', { entries: 1, files: 1, bytes: 1, hashes: ['sha256', 'xxh128'], hash: 'xxh128' });
      await peer.readHello();
      peer.send({ type: 'offer', id: 0, kind: 'file', path: 'f.bin', size: 1, mode: 0o644, mtimeMs: Date.now() });
      await peer.next();
      peer.send({ type: 'begin', id: 0, offset: 0 });
      peer.data(Buffer.from('x'));
      peer.send({ type: 'end', id: 0, sha256: sha(Buffer.from('x')) });
      await peer.closed();
    });
    await assert.rejects(download({ kind: 'inet', host: '127.0.0.1', port }, { dir: join(dir, 'out') }), { code: 'ERR_TRANSFER_PROTOCOL' });
    assert.equal(await exists(join(dir, 'out', 'f.bin')), false);
  });
});

describe('a version-1 peer', () => {
  it('a version-1 receiver gets version 1 from a server that asks for XXH3-128: SHA-256 digests', async (t) => {
    const dir = tempDir(t, 'sk-fast-');
    const data = randomBytes(200_000);
    await writeFile(join(dir, 'f.bin'), data);
    const server = await track(t, startFileServer(LOOPBACK, { paths: [join(dir, 'f.bin')], hash: 'xxh128' }));
    const ep = server.endpoint;
    assert.equal(ep.kind, 'inet');
    const socket = await connectWhenListening(ep.kind === 'inet' ? ep.port : 0);
    const peer = new SkftPeer(socket);
    t.after(() => socket.destroy());
    helloV1(peer, 'receiver');
    const hello = await peer.readHello();
    assert.equal(hello.version, 2, 'the server announces what it speaks');
    const offer = await peer.next();
    assert.equal(offer?.type, 'offer');
    peer.send({ type: 'reply', id: 0, action: 'receive', offset: 0 });
    const chunks: Buffer[] = [];
    let end: string | undefined;
    for (;;) {
      const m = await peer.next();
      assert.ok(m !== null, 'the server closed early');
      if (m.type === 'data') chunks.push(Buffer.from(m.bytes));
      if (m.type === 'end') {
        end = m.sha256;
        break;
      }
    }
    assert.ok(Buffer.concat(chunks).equals(data));
    assert.equal(end, sha(data), 'version 1: the END carries the SHA-256');
    peer.send({ type: 'result', id: 0, ok: true, sha256: end });
    assert.equal((await peer.next())?.type, 'done');
    peer.end();
    await peer.closed();
  });

  it('a version-1 sender is verified with SHA-256 by a client that asks for XXH3-128', async (t) => {
    const dir = tempDir(t, 'sk-fast-');
    const data = randomBytes(300_000);
    let helloSeen: number | undefined;
    const { port } = await scriptedServer(t, async (peer) => {
      helloV1(peer, 'sender', { entries: 1, files: 1, bytes: data.length });
      helloSeen = (await peer.readHello()).version;
      peer.send({ type: 'offer', id: 0, kind: 'file', path: 'f.bin', size: data.length, mode: 0o644, mtimeMs: Date.now() });
      await peer.next();
      peer.send({ type: 'begin', id: 0, offset: 0 });
      peer.data(data);
      peer.send({ type: 'end', id: 0, sha256: sha(data) });
      peer.send({ type: 'done' });
      await peer.next();
      peer.end();
      await peer.closed();
    });
    const events: TransferEvent[] = [];
    const summary = await download({ kind: 'inet', host: '127.0.0.1', port }, { dir: join(dir, 'out'), hash: 'xxh128', onEvent: (e) => events.push(e) });
    assert.equal(summaryError(summary), undefined);
    assert.equal(helloSeen, 2);
    assert.equal(summary.hash, 'sha256');
    assert.equal(doneDigest(events), sha(data));
    assert.ok((await readFile(join(dir, 'out', 'f.bin'))).equals(data));
  });
});

// What a receiver may do to the files already in its folder (issue 11, items 1, 1b, 4 and the
// empty partial files of 15): only socketkit's own partial files are truncated or resumed into,
// a user's file is continued only when the sender proves it is a prefix, received modes obey the
// umask and never carry setuid/setgid/sticky, and a failure leaves no empty partial file.
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { lstat, mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Endpoint } from '../src/net/endpoint.js';
import { download, startFileServer, startReceiveServer, upload, type TransferServer } from '../src/transfer/index.js';
import { isPartialName, partialPath, processUmask, receivedMode } from '../src/transfer/place.js';
import { BIN, spawnProcess } from './helpers/cli.js';
import { SkftPeer, connectWhenListening } from './helpers/skft-peer.js';
import { tempDir } from './helpers/tmp.js';

const LOOPBACK: Endpoint = { kind: 'inet', host: '127.0.0.1', port: 0 };
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

async function track<T extends TransferServer>(t: TestContext, server: Promise<T>): Promise<T> {
  const s = await server;
  t.after(() => s.close());
  return s;
}

async function exists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    () => false,
  );
}

/** A scripted sender on `socket`: sends each file whole (offset 0) and returns the RESULT codes. */
async function sendFiles(peer: SkftPeer, files: ReadonlyArray<{ path: string; data: Buffer; mode: number }>): Promise<Array<string | true>> {
  peer.hello('sender', { entries: files.length });
  await peer.readHello();
  for (const [id, f] of files.entries()) peer.send({ type: 'offer', id, kind: 'file', path: f.path, size: f.data.length, mode: f.mode, mtimeMs: 0 });
  for (const [id, f] of files.entries()) {
    const reply = await peer.next();
    assert.ok(reply?.type === 'reply' && reply.action === 'receive' && reply.id === id);
    peer.send({ type: 'begin', id, offset: 0 });
    peer.data(f.data);
    peer.send({ type: 'end', id, sha256: sha(f.data) });
  }
  const results: Array<string | true> = [];
  for (let i = 0; i < files.length; i++) {
    const r = await peer.next();
    assert.equal(r?.type, 'result');
    if (r?.type === 'result') results[r.id] = r.ok ? true : r.code;
  }
  peer.send({ type: 'done' });
  peer.end();
  await peer.closed();
  return results;
}

describe('partial files are socketkit\'s own', () => {
  it('are named .NAME.sk-partial beside NAME, and recognised by that name only', () => {
    assert.equal(partialPath('/in/notes'), '/in/.notes.sk-partial');
    assert.equal(isPartialName('/in/.notes.sk-partial'), true);
    assert.equal(isPartialName('/in/notes.part'), false);
    assert.equal(isPartialName('/in/notes.sk-partial'), false);
  });

  it("a user's finished notes.part survives receiving notes (and both arrive intact)", async (t) => {
    const dir = tempDir(t, 'sk-trust-');
    const inbox = join(dir, 'inbox');
    await mkdir(join(dir, 'src1'));
    await mkdir(join(dir, 'src2'));
    const one = randomBytes(53);
    const two = randomBytes(30);
    await writeFile(join(dir, 'src1', 'notes.part'), one);
    await writeFile(join(dir, 'src2', 'notes'), two);
    const server = await track(t, startReceiveServer(LOOPBACK, { dir: inbox }));
    const a = await upload(server.endpoint, [join(dir, 'src1', 'notes.part')]);
    assert.deepEqual(a.failures, []);
    const b = await upload(server.endpoint, [join(dir, 'src2', 'notes')]);
    assert.deepEqual(b.failures, []);
    assert.deepEqual((await readdir(inbox)).sort(), ['notes', 'notes.part']);
    assert.deepEqual(await readFile(join(inbox, 'notes.part')), one);
    assert.deepEqual(await readFile(join(inbox, 'notes')), two);
  });
});

describe('--resume continues only a proven prefix', () => {
  it('get --resume refuses an unrelated existing file with ERR_EXISTS and leaves it intact', async (t) => {
    const dir = tempDir(t, 'sk-trust-');
    await mkdir(join(dir, 'd'));
    await writeFile(join(dir, 'stale.bin'), randomBytes(2 * 1024 * 1024));
    await writeFile(join(dir, 'd', 'stale.bin'), 'MY PRECIOUS DATA\n');
    const server = await track(t, startFileServer(LOOPBACK, { paths: [join(dir, 'stale.bin')] }));
    const s = await download(server.endpoint, { dir: join(dir, 'd'), resume: true });
    assert.equal(s.files, 0);
    assert.equal(s.failures[0]?.code, 'ERR_EXISTS');
    assert.equal(await readFile(join(dir, 'd', 'stale.bin'), 'utf8'), 'MY PRECIOUS DATA\n');
    assert.deepEqual(await readdir(join(dir, 'd')), ['stale.bin'], 'no partial file left either');
  });

  it('receive --resume does the same', async (t) => {
    const dir = tempDir(t, 'sk-trust-');
    const inbox = join(dir, 'inbox');
    await mkdir(inbox);
    await writeFile(join(dir, 'stale.bin'), randomBytes(1024 * 1024));
    await writeFile(join(inbox, 'stale.bin'), 'MY PRECIOUS DATA\n');
    const server = await track(t, startReceiveServer(LOOPBACK, { dir: inbox, resume: true }));
    const s = await upload(server.endpoint, [join(dir, 'stale.bin')]);
    assert.equal(s.failures[0]?.code, 'ERR_EXISTS');
    assert.equal(await readFile(join(inbox, 'stale.bin'), 'utf8'), 'MY PRECIOUS DATA\n');
  });

  it('a user file that is a true prefix is continued and verified', async (t) => {
    const dir = tempDir(t, 'sk-trust-');
    const data = randomBytes(3 * 1024 * 1024 + 17);
    await mkdir(join(dir, 'd'));
    await writeFile(join(dir, 'big.bin'), data);
    await writeFile(join(dir, 'd', 'big.bin'), data.subarray(0, 1024 * 1024));
    const server = await track(t, startFileServer(LOOPBACK, { paths: [join(dir, 'big.bin')] }));
    const s = await download(server.endpoint, { dir: join(dir, 'd'), resume: true });
    assert.deepEqual(s.failures, []);
    assert.equal(s.transferred, data.length - 1024 * 1024);
    assert.deepEqual(await readFile(join(dir, 'd', 'big.bin')), data);
  });
});

describe('received modes', () => {
  it('drop setuid/setgid/sticky and obey the umask', () => {
    const mask = processUmask();
    assert.equal(receivedMode(0o4777), 0o777 & ~mask);
    assert.equal(receivedMode(0o7666), 0o666 & ~mask);
  });

  it('the real receive under umask 022: 0777 arrives as 0755, 0666 as 0644, setuid as nothing', async (t) => {
    const dir = tempDir(t, 'sk-trust-');
    const inbox = join(dir, 'in');
    const sock = join(dir, 'receive.sock');
    const cmd = `umask 022; exec "$0" "$1" receive --once --listen "unix:$3" --dir "$2"`;
    const proc = spawnProcess('sh', ['-c', cmd, process.execPath, BIN, inbox, sock], t);
    const peer = new SkftPeer(await connectWhenListening(sock));
    t.after(() => peer.socket.destroy());
    const results = await sendFiles(peer, [
      { path: 'all', data: randomBytes(10), mode: 0o777 },
      { path: 'rw', data: randomBytes(10), mode: 0o666 },
      { path: 'suid', data: randomBytes(10), mode: 0o4755 },
      { path: 'sticky', data: randomBytes(10), mode: 0o3777 },
    ]);
    assert.deepEqual(results, [true, true, true, true]);
    assert.equal((await proc.waitExit(10_000)).code, 0);
    assert.equal((await stat(join(inbox, 'all'))).mode & 0o7777, 0o755);
    assert.equal((await stat(join(inbox, 'rw'))).mode & 0o7777, 0o644);
    assert.equal((await stat(join(inbox, 'suid'))).mode & 0o7777, 0o755);
    assert.equal((await stat(join(inbox, 'sticky'))).mode & 0o7777, 0o755);
  });
});

describe('no empty partial file after a protocol error', () => {
  it('more data than offered: ERR_TRANSFER_PROTOCOL, and .f.sk-partial is gone', async (t) => {
    const dir = tempDir(t, 'sk-trust-');
    const inbox = join(dir, 'in');
    const server = await track(t, startReceiveServer(LOOPBACK, { dir: inbox }));
    const port = server.endpoint.kind === 'inet' ? server.endpoint.port : 0;
    const peer = new SkftPeer(await connectWhenListening(port));
    t.after(() => peer.socket.destroy());
    peer.hello('sender', { entries: 1 });
    await peer.readHello();
    peer.send({ type: 'offer', id: 0, kind: 'file', path: 'f', size: 10, mode: 0o644, mtimeMs: 0 });
    const reply = await peer.next();
    assert.ok(reply?.type === 'reply' && reply.action === 'receive');
    peer.send({ type: 'begin', id: 0, offset: 0 });
    peer.data(randomBytes(20));
    const last = await peer.next();
    assert.equal(last?.type === 'error' ? last.code : last?.type, 'ERR_TRANSFER_PROTOCOL');
    await peer.closed();
    for (let i = 0; i < 200 && server.stats.active > 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(await exists(join(inbox, '.f.sk-partial')), false);
    assert.deepEqual(await readdir(inbox), []);
  });
});

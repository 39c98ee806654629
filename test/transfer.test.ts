// Integration tests of file transfer over real loopback sockets (port 0, ::1, a Unix socket in a
// temporary folder): sizes from 0 B to more than the socket buffers hold, folder trees, resume
// after an interrupted transfer, corruption caught by the hash, unsafe paths, overwrites, stalls
// and the raw mode. Every test removes its folders and closes its servers and sockets.
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import { chmod, lstat, mkdir, readFile, readdir, stat, symlink, truncate, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { connect } from '../src/net/connect.js';
import type { Endpoint } from '../src/net/endpoint.js';
import {
  Link,
  download,
  downloadRaw,
  runSender,
  startFileServer,
  startReceiveServer,
  summaryError,
  upload,
  type TransferEvent,
  type TransferServer,
} from '../src/transfer/index.js';
import { collectEntries } from '../src/transfer/entries.js';
import { tempDir } from './helpers/tmp.js';

const LOOPBACK: Endpoint = { kind: 'inet', host: '127.0.0.1', port: 0 };

async function writeRandom(path: string, size: number): Promise<Buffer> {
  const data = randomBytes(size);
  await writeFile(path, data);
  return data;
}

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

async function exists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    () => false,
  );
}

/** Starts a server and closes it when the test ends. */
async function track<T extends TransferServer>(t: TestContext, server: Promise<T>): Promise<T> {
  const s = await server;
  t.after(() => s.close());
  return s;
}

/** Lists a folder's tree as sorted relative paths (folders end with /). */
async function tree(root: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for (const e of (await readdir(join(root, prefix), { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(`${rel}/`, ...(await tree(root, rel)));
    else out.push(rel);
  }
  return out;
}

/**
 * A TCP proxy between a client and `target`. `cutAfter` bytes from the client are forwarded and
 * then both connections are destroyed (a network cut); `flipAt` flips one byte of the
 * client-to-server stream at that offset (a corrupted stream).
 */
async function proxy(t: TestContext, target: Endpoint, options: { cutAfter?: number; flipAt?: number }): Promise<Endpoint> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = target.kind === 'unix' ? netConnect({ path: target.path }) : netConnect({ host: target.host, port: target.port });
    sockets.add(client).add(upstream);
    client.on('error', () => undefined);
    upstream.on('error', () => undefined);
    let seen = 0;
    client.on('data', (chunk: Buffer) => {
      let out = chunk;
      if (options.flipAt !== undefined && options.flipAt >= seen && options.flipAt < seen + chunk.length) {
        out = Buffer.from(chunk);
        out[options.flipAt - seen]! ^= 0xff;
      }
      if (options.cutAfter !== undefined && seen + chunk.length > options.cutAfter) {
        upstream.write(out.subarray(0, Math.max(0, options.cutAfter - seen)), () => {
          upstream.destroy();
          client.destroy();
        });
        seen += chunk.length;
        return;
      }
      seen += chunk.length;
      if (!upstream.write(out)) client.pause();
    });
    upstream.on('drain', () => client.resume());
    upstream.on('data', (chunk: Buffer) => client.write(chunk));
    client.on('end', () => upstream.end());
    upstream.on('end', () => client.end());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  );
  const addr = server.address();
  assert.ok(addr !== null && typeof addr === 'object');
  return { kind: 'inet', host: '127.0.0.1', port: addr.port };
}

describe('framed transfer: sizes', () => {
  // 0 B, 1 B, 10 MiB, and more than the loopback socket buffers hold (several MiB each way).
  const sizes: Array<[string, number]> = [
    ['0 B', 0],
    ['1 B', 1],
    ['10 MiB', 10 * 1024 * 1024],
    ['40 MiB (larger than the socket buffers)', 40 * 1024 * 1024],
  ];
  for (const [name, size] of sizes) {
    it(`serve/get a ${name} file, byte-identical and verified`, async (t) => {
      const dir = tempDir(t, 'sk-transfer-');
      const data = await writeRandom(join(dir, 'src.bin'), size);
      const server = await track(t, startFileServer(LOOPBACK, { paths: [join(dir, 'src.bin')] }));
      const events: TransferEvent[] = [];
      const summary = await download(server.endpoint, { dir: join(dir, 'out'), onEvent: (e) => events.push(e) });
      assert.equal(summaryError(summary), undefined);
      assert.equal(summary.files, 1);
      assert.equal(summary.bytes, size);
      const got = await readFile(join(dir, 'out', 'src.bin'));
      assert.equal(got.length, size);
      assert.ok(got.equals(data));
      const done = events.find((e) => e.event === 'file-done');
      assert.equal(done?.event === 'file-done' ? done.sha256 : undefined, sha(data));
      assert.equal(await exists(join(dir, 'out', '.src.bin.sk-partial')), false, 'no .part left');
    });
  }

  it('over IPv6 and a Unix socket too', async (t) => {
    const dir = tempDir(t, 'sk-transfer-');
    const data = await writeRandom(join(dir, 'f'), 300_000);
    const endpoints: Endpoint[] = [{ kind: 'unix', path: join(dir, 's.sock') }];
    const v6 = await new Promise<boolean>((resolve) => {
      const s = createServer();
      s.once('error', () => resolve(false));
      s.listen({ host: '::1', port: 0 }, () => s.close(() => resolve(true)));
    });
    if (v6) endpoints.push({ kind: 'inet', host: '::1', port: 0 });
    for (const [i, ep] of endpoints.entries()) {
      const server = await track(t, startFileServer(ep, { paths: [join(dir, 'f')] }));
      const out = join(dir, `out${i}`);
      await download(server.endpoint, { dir: out });
      assert.ok((await readFile(join(out, 'f'))).equals(data), ep.kind);
    }
  });

  it('serves many clients at once', async (t) => {
    const dir = tempDir(t, 'sk-transfer-');
    const data = await writeRandom(join(dir, 'f'), 3 * 1024 * 1024);
    const server = await track(t, startFileServer(LOOPBACK, { paths: [join(dir, 'f')] }));
    const results = await Promise.all(Array.from({ length: 6 }, (_, i) => download(server.endpoint, { dir: join(dir, `c${i}`) })));
    for (const [i, r] of results.entries()) {
      assert.equal(r.files, 1);
      assert.ok((await readFile(join(dir, `c${i}`, 'f'))).equals(data));
    }
  });

  it('writes the one file to -o OUT, and refuses several entries for one OUT', async (t) => {
    const dir = tempDir(t, 'sk-transfer-');
    const data = await writeRandom(join(dir, 'a'), 1000);
    await writeRandom(join(dir, 'b'), 10);
    const one = await track(t, startFileServer(LOOPBACK, { paths: [join(dir, 'a')] }));
    await download(one.endpoint, { out: join(dir, 'renamed.bin') });
    assert.ok((await readFile(join(dir, 'renamed.bin'))).equals(data));
    const two = await track(t, startFileServer(LOOPBACK, { paths: [join(dir, 'a'), join(dir, 'b')] }));
    await assert.rejects(download(two.endpoint, { out: join(dir, 'x') }), { code: 'ERR_INVALID_ARG' });
    assert.equal(await exists(join(dir, 'x')), false);
  });
});

describe('framed transfer: folders', () => {
  it('send/receive a tree: structure, empty folders, empty files, modes and times kept; links inside not followed', async (t) => {
    const dir = tempDir(t, 'sk-transfer-');
    const src = join(dir, 'proj');
    await mkdir(join(src, 'a', 'b', 'c'), { recursive: true });
    await mkdir(join(src, 'empty'));
    await writeRandom(join(src, 'top.bin'), 70_000);
    await writeRandom(join(src, 'a', 'one.txt'), 1);
    await writeFile(join(src, 'a', 'b', 'zero'), '');
    await writeRandom(join(src, 'a', 'b', 'c', 'deep.bin'), 2 * 1024 * 1024 + 3);
    await chmod(join(src, 'a', 'one.txt'), 0o600);
    await utimes(join(src, 'top.bin'), new Date(1_600_000_000_000), new Date(1_600_000_000_000));
    await symlink('/etc/hostname', join(src, 'a', 'link'));
    const skipped: string[] = [];
    const inbox = join(dir, 'inbox');
    const server = await track(t, startReceiveServer(LOOPBACK, { dir: inbox }));
    const summary = await upload(server.endpoint, [src], { onSkip: (s) => skipped.push(s.source) });
    assert.equal(summaryError(summary), undefined);
    assert.deepEqual(await tree(inbox), [
      'proj/',
      'proj/a/',
      'proj/a/b/',
      'proj/a/b/c/',
      'proj/a/b/c/deep.bin',
      'proj/a/b/zero',
      'proj/a/one.txt',
      'proj/empty/',
      'proj/top.bin',
    ]);
    assert.deepEqual(skipped, [join(src, 'a', 'link')]);
    for (const f of ['top.bin', 'a/one.txt', 'a/b/zero', 'a/b/c/deep.bin']) {
      assert.ok((await readFile(join(inbox, 'proj', f))).equals(await readFile(join(src, f))), f);
    }
    assert.equal((await stat(join(inbox, 'proj', 'a', 'one.txt'))).mode & 0o777, 0o600);
    assert.equal(Math.round((await stat(join(inbox, 'proj', 'top.bin'))).mtimeMs), 1_600_000_000_000);
    assert.equal(summary.files, 4);
    assert.equal(summary.dirs, 5);
  });
});

describe('framed transfer: resume', () => {
  it('an interrupted upload leaves a .part; sending again continues it into a verified, identical file', async (t) => {
    const dir = tempDir(t, 'sk-transfer-');
    const size = 24 * 1024 * 1024;
    const data = await writeRandom(join(dir, 'big.bin'), size);
    const inbox = join(dir, 'inbox');
    const server = await track(t, startReceiveServer(LOOPBACK, { dir: inbox }));
    // The network is cut after 6 MiB: the sender fails, the receiver keeps what it got.
    const cut = await proxy(t, server.endpoint, { cutAfter: 6 * 1024 * 1024 });
    await assert.rejects(upload(cut, [join(dir, 'big.bin')], { stallTimeoutMs: 5000 }));
    const part = join(inbox, '.big.bin.sk-partial');
    // The receiver notices the cut on its own side a moment later, and flushes what it has.
    for (let i = 0; i < 250 && (server.stats.connections === 0 || server.stats.active > 0); i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(server.stats.active, 0);
    const kept = (await stat(part)).size;
    assert.ok(kept > 0 && kept < size, `kept ${kept} bytes`);
    assert.equal(await exists(join(inbox, 'big.bin')), false, 'no final file after a failed transfer');

    const events: TransferEvent[] = [];
    const summary = await upload(server.endpoint, [join(dir, 'big.bin')], { onEvent: (e) => events.push(e) });
    assert.equal(summaryError(summary), undefined);
    const start = events.find((e) => e.event === 'file-start');
    assert.equal(start?.event === 'file-start' ? start.offset : -1, kept, 'resumed where the .part ended');
    assert.equal(summary.transferred, size - kept, 'only the missing bytes crossed the wire');
    assert.ok((await readFile(join(inbox, 'big.bin'))).equals(data));
    assert.equal(await exists(part), false);
  });

  it('a .part that is not a prefix of the file (stale) is restarted from 0, not completed into a wrong file', async (t) => {
    const dir = tempDir(t, 'sk-transfer-');
    const data = await writeRandom(join(dir, 'f.bin'), 3 * 1024 * 1024);
    const out = join(dir, 'out');
    await mkdir(out);
    await writeFile(join(out, '.f.bin.sk-partial'), randomBytes(1024 * 1024));
    const server = await track(t, startFileServer(LOOPBACK, { paths: [join(dir, 'f.bin')] }));
    const events: TransferEvent[] = [];
    const summary = await download(server.endpoint, { dir: out, onEvent: (e) => events.push(e) });
    assert.equal(summaryError(summary), undefined);
    const start = events.find((e) => e.event === 'file-start');
    assert.equal(start?.event === 'file-start' ? start.offset : -1, 0);
    assert.ok((await readFile(join(out, 'f.bin'))).equals(data));
  });

  it('--resume continues an existing shorter file with the final name, verifying the whole', async (t) => {
    const dir = tempDir(t, 'sk-transfer-');
    const data = await writeRandom(join(dir, 'f.bin'), 2 * 1024 * 1024);
    const out = join(dir, 'out');
    await mkdir(out);
    await writeFile(join(out, 'f.bin'), data.subarray(0, 500_000));
    const server = await track(t, startFileServer(LOOPBACK, { paths: [join(dir, 'f.bin')] }));
    const refused = await download(server.endpoint, { dir: out });
    assert.equal(refused.failures[0]?.code, 'ERR_EXISTS', 'without --resume or --force an existing file is refused');
    const summary = await download(server.endpoint, { dir: out, resume: true });
    assert.equal(summaryError(summary), undefined);
    assert.equal(summary.transferred, data.length - 500_000);
    assert.ok((await readFile(join(out, 'f.bin'))).equals(data));
  });
});

describe('framed transfer: integrity and safety', () => {
  it('a corrupted stream is caught by the hash: ERR_HASH_MISMATCH, no final file, no .part', async (t) => {
    const dir = tempDir(t, 'sk-transfer-');
    await writeRandom(join(dir, 'f.bin'), 4 * 1024 * 1024);
    const inbox = join(dir, 'inbox');
    const server = await track(t, startReceiveServer(LOOPBACK, { dir: inbox }));
    // Byte 2 000 000 of the stream lies inside the file data (the first DATA frame is 1 MiB).
    const bad = await proxy(t, server.endpoint, { flipAt: 2_000_000 });
    const summary = await upload(bad, [join(dir, 'f.bin')]);
    assert.equal(summary.files, 0);
    assert.equal(summary.failures[0]?.code, 'ERR_HASH_MISMATCH');
    assert.equal(summaryError(summary)?.exitCode, 1);
    assert.equal(await exists(join(inbox, 'f.bin')), false);
    assert.equal(await exists(join(inbox, '.f.bin.sk-partial')), false);
  });

  it('refuses paths that leave the target folder, with ERR_PATH_UNSAFE, and creates nothing outside', async (t) => {
    const dir = tempDir(t, 'sk-transfer-');
    const inbox = join(dir, 'inbox');
    const outside = join(dir, 'outside');
    await mkdir(inbox);
    await mkdir(outside);
    await symlink(outside, join(inbox, 'escape'));
    const server = await track(t, startReceiveServer(LOOPBACK, { dir: inbox }));
    const evil = ['../evil.txt', '/tmp/abs.txt', 'a/../../evil.txt', 'escape/pwned.txt', 'a\\..\\b', 'x/./y'];
    // A hostile sender: the protocol spoken by hand, with the paths a real one never sends.
    const socket = await connect(server.endpoint);
    const link = new Link(socket, { peer: 'receiver' });
    t.after(() => link.destroy());
    link.sendHello('sender', { entries: evil.length });
    await link.readHello();
    for (const [id, path] of evil.entries()) link.send({ type: 'offer', id, kind: 'file', path, size: 5, mode: 0o644, mtimeMs: 0 });
    for (const path of evil) {
      const reply = await link.next();
      assert.ok(reply?.type === 'reply' && reply.action === 'skip', path);
      assert.equal(reply.code, 'ERR_PATH_UNSAFE', path);
    }
    assert.deepEqual(await readdir(outside), []);
    assert.deepEqual(await readdir(inbox), ['escape']);
    assert.equal(await exists(join(dir, 'evil.txt')), false);
  });

  it('a hostile server cannot make get write outside its folder either', async (t) => {
    const dir = tempDir(t, 'sk-transfer-');
    const out = join(dir, 'out');
    // A server that speaks the protocol and offers ../evil.
    const server = createServer((socket) => {
      const link = new Link(socket, { peer: 'client' });
      link.sendHello('sender', { entries: 1 });
      link.send({ type: 'offer', id: 0, kind: 'file', path: '../evil', size: 1, mode: 0o644, mtimeMs: 0 });
      link.send({ type: 'done' });
      void link.next().then(
        () => link.finish(),
        () => link.destroy(),
      );
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const addr = server.address() as { port: number };
    const summary = await download({ kind: 'inet', host: '127.0.0.1', port: addr.port }, { dir: out });
    assert.equal(summary.failures[0]?.code, 'ERR_PATH_UNSAFE');
    assert.equal(await exists(join(dir, 'evil')), false);
  });

  it('never overwrites an existing file without force; replaces it with force', async (t) => {
    const dir = tempDir(t, 'sk-transfer-');
    const data = await writeRandom(join(dir, 'f.txt'), 1000);
    const out = join(dir, 'out');
    await mkdir(out);
    await writeFile(join(out, 'f.txt'), 'precious');
    const server = await track(t, startFileServer(LOOPBACK, { paths: [join(dir, 'f.txt')] }));
    const refused = await download(server.endpoint, { dir: out });
    assert.equal(refused.failures[0]?.code, 'ERR_EXISTS');
    assert.equal(summaryError(refused)?.exitCode, 2);
    assert.equal(await readFile(join(out, 'f.txt'), 'utf8'), 'precious');
    const forced = await download(server.endpoint, { dir: out, force: true });
    assert.equal(summaryError(forced), undefined);
    assert.ok((await readFile(join(out, 'f.txt'))).equals(data));
  });

  it('a sender that goes silent mid-file fails with ERR_STALLED instead of hanging; no final file', async (t) => {
    const dir = tempDir(t, 'sk-transfer-');
    const inbox = join(dir, 'inbox');
    const server = await track(t, startReceiveServer(LOOPBACK, { dir: inbox, stallTimeoutMs: 300 }));
    const socket = await connect(server.endpoint);
    const link = new Link(socket, { peer: 'receiver', stallTimeoutMs: 0 });
    t.after(() => link.destroy());
    link.sendHello('sender', { entries: 1 });
    await link.readHello();
    link.send({ type: 'offer', id: 0, kind: 'file', path: 'f', size: 1000, mode: 0o644, mtimeMs: 0 });
    assert.equal((await link.next())?.type, 'reply');
    link.send({ type: 'begin', id: 0, offset: 0 });
    link.sendData(Buffer.alloc(100), () => undefined);
    // ...and nothing more. The receiver gives up, says why, and keeps the bytes for a resume.
    const last = await link.next();
    assert.equal(last?.type === 'error' ? last.code : last?.type, 'ERR_STALLED');
    assert.equal(await exists(join(inbox, 'f')), false);
    for (let i = 0; i < 100 && server.stats.failed === 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(server.stats.failed, 1);
    assert.equal((await stat(join(inbox, '.f.sk-partial'))).size, 100);
  });

  it('names the mismatch when a framed get meets a raw server, or two senders meet', async (t) => {
    const dir = tempDir(t, 'sk-transfer-');
    await writeFile(join(dir, 'f'), randomBytes(100_000));
    const raw = await track(t, startFileServer(LOOPBACK, { paths: [join(dir, 'f')], raw: true }));
    await assert.rejects(download(raw.endpoint, { dir: join(dir, 'o1') }), { code: 'ERR_TRANSFER_PROTOCOL' });
    const serve = await track(t, startFileServer(LOOPBACK, { paths: [join(dir, 'f')] }));
    await assert.rejects(upload(serve.endpoint, [join(dir, 'f')]), { code: 'ERR_TRANSFER_ROLE' });
  });

  it('a file that shrinks while being sent is aborted with ERR_SOURCE_CHANGED; the others still arrive', async (t) => {
    const dir = tempDir(t, 'sk-transfer-');
    await writeRandom(join(dir, 'a'), 1000);
    const b = await writeRandom(join(dir, 'b'), 1000);
    const entries = await collectEntries([join(dir, 'a'), join(dir, 'b')]);
    await truncate(join(dir, 'a'), 10);
    const inbox = join(dir, 'inbox');
    const server = await track(t, startReceiveServer(LOOPBACK, { dir: inbox }));
    const socket = await connect(server.endpoint);
    const summary = await runSender(new Link(socket, { peer: 'receiver' }), entries);
    assert.equal(summary.failures[0]?.code, 'ERR_SOURCE_CHANGED');
    assert.equal(summary.files, 1);
    assert.ok((await readFile(join(inbox, 'b'))).equals(b));
    assert.equal(await exists(join(inbox, 'a')), false);
  });

  it('answers a message out of order with ERR_TRANSFER_PROTOCOL and closes', async (t) => {
    const dir = tempDir(t, 'sk-transfer-');
    const server = await track(t, startReceiveServer(LOOPBACK, { dir }));
    const socket = await connect(server.endpoint);
    const link = new Link(socket, { peer: 'receiver' });
    t.after(() => link.destroy());
    link.sendHello('sender', {});
    await link.readHello();
    link.send({ type: 'begin', id: 99, offset: 0 });
    const reply = await link.next();
    assert.equal(reply?.type === 'error' ? reply.code : reply?.type, 'ERR_TRANSFER_PROTOCOL');
  });
});

describe('raw transfer', () => {
  it('serve --raw streams the file and closes; downloadRaw writes it via .part and renames', async (t) => {
    const dir = tempDir(t, 'sk-transfer-');
    const data = await writeRandom(join(dir, 'f'), 9 * 1024 * 1024 + 7);
    const server = await track(t, startFileServer(LOOPBACK, { paths: [join(dir, 'f')], raw: true }));
    const r = await downloadRaw(server.endpoint, join(dir, 'out'));
    assert.equal(r.bytes, data.length);
    assert.ok((await readFile(join(dir, 'out'))).equals(data));
    await assert.rejects(downloadRaw(server.endpoint, join(dir, 'out')), { code: 'ERR_EXISTS' });
    await downloadRaw(server.endpoint, join(dir, 'out'), { force: true });
    assert.equal(await exists(join(dir, '.out.sk-partial')), false);
  });

  it('a raw stream that is reset mid-way leaves no file under the final name (what arrived stays in .part)', async (t) => {
    const dir = tempDir(t, 'sk-transfer-');
    await writeRandom(join(dir, 'f'), 1024 * 1024);
    // A raw "server" that sends half the bytes and then resets the connection.
    const server = createServer((socket) => {
      socket.write(randomBytes(300_000), () => socket.resetAndDestroy());
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const port = (server.address() as { port: number }).port;
    await assert.rejects(downloadRaw({ kind: 'inet', host: '127.0.0.1', port }, join(dir, 'out')), { code: 'ERR_CONN_RESET' });
    assert.equal(await exists(join(dir, 'out')), false);
  });

  it('refuses raw mode for a folder or several files', async (t) => {
    const dir = tempDir(t, 'sk-transfer-');
    await writeFile(join(dir, 'a'), 'a');
    await assert.rejects(startFileServer(LOOPBACK, { paths: [dir], raw: true }), { code: 'ERR_INVALID_ARG' });
    await assert.rejects(startFileServer(LOOPBACK, { paths: [join(dir, 'a'), join(dir, 'a')], raw: true }), { code: 'ERR_INVALID_ARG' });
  });
});

// Parallel streams (issue 17, -P N): N connections share one transfer; files larger than a range
// travel in ranges on several connections at once, smaller ones are spread across them. For each
// hash and for 1 and 4 streams, both ways: 0 B, 1 B, a file smaller than a range, files larger
// than one (an exact multiple and not), in a tree. Every file arrives whole, with the digest
// sha256sum (or XXH3-128) gives for the whole file, and nothing of the partial files is left.
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { xxhash128 } from 'hash-wasm';
import type { Endpoint } from '../src/net/endpoint.js';
import { download, startFileServer, startReceiveServer, summaryError, upload, type TransferEvent, type TransferServer } from '../src/transfer/index.js';
import type { HashName } from '../src/transfer/digest.js';
import { tempDir } from './helpers/tmp.js';

const LOOPBACK: Endpoint = { kind: 'inet', host: '127.0.0.1', port: 0 };
/** Small ranges, so that a test file of a few hundred KiB is several of them. */
const RANGE = 64 * 1024;

async function digestOf(hash: HashName, bytes: Uint8Array): Promise<string> {
  return hash === 'sha256' ? createHash('sha256').update(bytes).digest('hex') : xxhash128(bytes);
}

async function track<T extends TransferServer>(t: TestContext, server: Promise<T>): Promise<T> {
  const s = await server;
  t.after(() => s.close());
  return s;
}

/** Every file under `dir`, relative, with its bytes. */
async function tree(dir: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (e.isFile()) {
      const full = join(e.parentPath, e.name);
      out.set(relative(dir, full), await readFile(full));
    }
  }
  return out;
}

/** A tree with every size that matters: 0 B, 1 B, under a range, exactly 4 ranges, 5.5 ranges. */
async function makeTree(root: string): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>([
    ['empty', Buffer.alloc(0)],
    ['one', randomBytes(1)],
    ['small.bin', randomBytes(RANGE / 2)],
    ['sub/four-ranges.bin', randomBytes(RANGE * 4)],
    ['sub/deeper/odd.bin', randomBytes(RANGE * 5 + RANGE / 2 + 7)],
  ]);
  for (const [path, bytes] of files) {
    await mkdir(join(root, path, '..'), { recursive: true });
    await writeFile(join(root, path), bytes);
  }
  return files;
}

/** The digests the receiving side reported, by path. */
function digests(events: readonly TransferEvent[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const e of events) if (e.event === 'file-done') out.set(e.path, e.sha256);
  return out;
}

async function checkArrived(t: { hash: HashName }, sent: Map<string, Buffer>, dir: string, events: readonly TransferEvent[]): Promise<void> {
  const got = await tree(dir);
  // Nothing but the files: no .NAME.sk-partial, no .NAME.sk-ranges left.
  assert.deepEqual([...got.keys()].sort(), [...sent.keys()].map((p) => `src/${p}`).sort());
  const reported = digests(events);
  for (const [path, bytes] of sent) {
    assert.ok(got.get(`src/${path}`)!.equals(bytes), `${path} arrived whole`);
    assert.equal(reported.get(`src/${path}`), await digestOf(t.hash, bytes), `${path}: the whole file's ${t.hash}`);
  }
}

for (const hash of ['sha256', 'xxh128'] as const) {
  for (const streams of [1, 4]) {
    describe(`${hash}, -P ${streams}`, () => {
      it('get: a tree from serve', async (t) => {
        const dir = tempDir(t, 'sk-par-');
        const sent = await makeTree(join(dir, 'src'));
        const server = await track(t, startFileServer(LOOPBACK, { paths: [join(dir, 'src')], hash }));
        const events: TransferEvent[] = [];
        const summary = await download(server.endpoint, { dir: join(dir, 'out'), hash, streams, rangeSize: RANGE, onEvent: (e) => events.push(e) });
        assert.equal(summaryError(summary), undefined);
        assert.equal(summary.hash, hash);
        assert.equal(summary.files, sent.size);
        assert.equal(summary.bytes, [...sent.values()].reduce((n, b) => n + b.length, 0));
        assert.equal(server.stats.connections, streams, 'one connection per stream');
        // A file of several ranges starts once and is done once, as one file.
        assert.equal(events.filter((e) => e.event === 'file-start' && e.path === 'src/sub/deeper/odd.bin').length, 1);
        await checkArrived({ hash }, sent, join(dir, 'out'), events);
      });

      it('send: a tree to receive', async (t) => {
        const dir = tempDir(t, 'sk-par-');
        const sent = await makeTree(join(dir, 'src'));
        const events: TransferEvent[] = [];
        const server = await track(
          t,
          startReceiveServer(LOOPBACK, { dir: join(dir, 'in'), hash, onEvent: (e) => void (e.event === 'transfer' && events.push(e.detail)) }),
        );
        const summary = await upload(server.endpoint, [join(dir, 'src')], { hash, streams, rangeSize: RANGE });
        assert.equal(summaryError(summary), undefined);
        assert.equal(summary.files, sent.size);
        assert.equal(server.stats.connections, streams);
        await checkArrived({ hash }, sent, join(dir, 'in'), events);
      });
    });
  }
}

describe('-P 4 with small files only', () => {
  it('spreads them across the connections', async (t) => {
    const dir = tempDir(t, 'sk-par-');
    const files = new Map<string, Buffer>();
    for (let i = 0; i < 300; i++) files.set(`f${i}`, randomBytes(1 + (i % 7) * 100));
    await mkdir(join(dir, 'src'));
    for (const [p, b] of files) await writeFile(join(dir, 'src', p), b);
    const perConn = new Map<number, number>();
    const server = await track(
      t,
      startFileServer(LOOPBACK, {
        paths: [join(dir, 'src')],
        onEvent: (e) => {
          if (e.event === 'transfer' && e.detail.event === 'file-done') perConn.set(e.conn, (perConn.get(e.conn) ?? 0) + 1);
        },
      }),
    );
    const summary = await download(server.endpoint, { dir: join(dir, 'out'), streams: 4 });
    assert.equal(summaryError(summary), undefined);
    assert.equal(summary.files, files.size);
    assert.equal((await tree(join(dir, 'out'))).size, files.size);
    assert.ok(perConn.size > 1, `files went on more than one connection: ${JSON.stringify([...perConn])}`);
    assert.equal([...perConn.values()].reduce((a, b) => a + b, 0), files.size);
  });
});

describe('-P 4 against a server that serves one client (--once)', () => {
  it('admits the client\'s four connections, then closes with its outcome', async (t) => {
    const dir = tempDir(t, 'sk-par-');
    const data = randomBytes(RANGE * 6 + 3);
    await mkdir(join(dir, 'src'));
    await writeFile(join(dir, 'src', 'f.bin'), data);
    const server = await track(t, startFileServer(LOOPBACK, { paths: [join(dir, 'src', 'f.bin')], once: true }));
    const summary = await download(server.endpoint, { dir: join(dir, 'out'), streams: 4, rangeSize: RANGE });
    assert.equal(summaryError(summary), undefined);
    assert.ok((await readFile(join(dir, 'out', 'f.bin'))).equals(data));
    const outcome = await server.done;
    assert.ok(outcome.summary !== undefined, 'done settles with the first connection\'s outcome');
    assert.equal(server.stats.connections, 4);
    assert.equal(server.stats.failed, 0);
  });
});

describe('-P 4 with -o OUT', () => {
  it('writes the one file, sent in ranges (several on each connection), under the name given', async (t) => {
    const dir = tempDir(t, 'sk-par-');
    const data = randomBytes(RANGE * 12 + 11);
    await writeFile(join(dir, 'f.bin'), data);
    const server = await track(t, startFileServer(LOOPBACK, { paths: [join(dir, 'f.bin')] }));
    const summary = await download(server.endpoint, { out: join(dir, 'copy.bin'), streams: 4, rangeSize: RANGE });
    assert.equal(summaryError(summary), undefined);
    assert.equal(summary.files, 1);
    assert.ok((await readFile(join(dir, 'copy.bin'))).equals(data));
    assert.equal(server.stats.connections, 4);
  });
});

// A server that goes away mid-download (issue 12, item 9): `get` says the connection closed in
// the middle of the file, names the partial file it kept, and how to continue; running it again
// does continue it. The real binary against a scripted SKFT server, loopback only.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { statSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { runCli } from './helpers/cli.js';
import { scriptedServer, type SkftPeer } from './helpers/skft-peer.js';
import { dataPrefix } from '../src/transfer/protocol.js';
import { tempDir } from './helpers/tmp.js';
import { waitUntil } from './helpers/net.js';

const SIZE = 1024 * 1024;
const CONTENT = Buffer.alloc(SIZE, 0x5a);
const SENT = 300_000;

/**
 * Offers one file, sends a first DATA frame, waits until the receiver has written it to `part`
 * (an event the test can see), then announces a frame with the rest, sends part of it and
 * closes.
 */
async function cutMidFrame(peer: SkftPeer, part: string): Promise<void> {
  peer.hello('sender', { entries: 1, files: 1, bytes: SIZE });
  await peer.readHello();
  peer.send({ type: 'offer', id: 1, kind: 'file', path: 'big.bin', size: SIZE, mode: 0o644, mtimeMs: Date.now() });
  const reply = await peer.next();
  assert.equal(reply?.type, 'reply');
  peer.send({ type: 'begin', id: 1, offset: 0 });
  // A whole first DATA frame, which the receiver writes to its partial file...
  const FIRST = 64 * 1024;
  peer.data(CONTENT.subarray(0, FIRST));
  await waitUntil(() => (statSync(part, { throwIfNoEntry: false })?.size ?? 0) > 0, 'the receiver wrote to its partial file', 10_000);
  // ...then a frame announcing the rest of the file, of which only part comes.
  peer.socket.write(dataPrefix(SIZE - FIRST));
  peer.socket.write(CONTENT.subarray(FIRST, SENT));
  peer.end();
}

describe('get, when the server goes away mid-file', () => {
  it('says the connection closed in the middle of the file, names the kept partial file, and a second get continues it', async (t) => {
    const dir = tempDir(t, 'sk-c2-mid-');
    let resumedFrom: number | undefined;
    let connections = 0;
    const { port } = await scriptedServer(t, async (peer) => {
      connections++;
      if (connections === 1) return cutMidFrame(peer, join(dir, '.big.bin.sk-partial'));
      // The second time: send the rest properly, from where the receiver says it is.
      peer.hello('sender', { entries: 1, files: 1, bytes: SIZE });
      await peer.readHello();
      peer.send({ type: 'offer', id: 1, kind: 'file', path: 'big.bin', size: SIZE, mode: 0o644, mtimeMs: Date.now() });
      const reply = await peer.next();
      assert.ok(reply?.type === 'reply' && reply.action === 'receive');
      resumedFrom = reply.offset;
      peer.send({ type: 'begin', id: 1, offset: reply.offset });
      peer.data(CONTENT.subarray(reply.offset));
      peer.send({ type: 'end', id: 1, sha256: createHash('sha256').update(CONTENT).digest('hex') });
      peer.send({ type: 'done' });
      await peer.next();
      peer.end();
    });
    const first = await runCli(['get', `127.0.0.1:${port}`, '--dir', dir]);
    assert.equal(first.code, 2, first.stderr);
    const line = first.stderr.split('\n').find((l) => l.startsWith('socketkit: '))!;
    // Cut inside a DATA frame: whether the link sees it mid-frame (ERR_FRAME_TRUNCATED) or the
    // receiver sees the transfer cut short (ERR_CONN_CLOSED) depends on how the reads fall.
    assert.match(line, /\((ERR_FRAME_TRUNCATED|ERR_CONN_CLOSED)\)$/);
    assert.doesNotMatch(line, /stream ended inside a frame|payload bytes/, 'said in a user\'s words');
    assert.match(line, /closed the connection mid-message|ended the connection before the transfer was complete/);
    assert.match(line, /'big\.bin' stopped at \d+ of 1048576 bytes/);
    const part = join(dir, '.big.bin.sk-partial');
    assert.ok(line.includes(part), line);
    assert.match(line, /run the same 'socketkit get' again to continue it/);
    const kept = (await stat(part)).size;
    assert.ok(kept > 0 && kept <= SENT, `kept ${kept}`);

    const second = await runCli(['get', `127.0.0.1:${port}`, '--dir', dir]);
    assert.equal(second.code, 0, second.stderr);
    assert.equal(resumedFrom, kept, 'the second get continued the partial file');
    assert.deepEqual(await readFile(join(dir, 'big.bin')), CONTENT);
  });
});

// The framed sender's sendfile path (issue 17, "sendfile where it can"): with the native helper and
// a plain socket, DATA payloads go by sendfile(2) while the hash is taken from the read buffer.
// The link counts the bytes it sent that way, so the test sees that the path was taken, and the
// received file and its digest are checked against the source, byte for byte.
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { readFile, writeFile } from 'node:fs/promises';
import { connect, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { nativeHelper } from '../src/native/helper.js';
import { createDigest, type HashName } from '../src/transfer/digest.js';
import { collectEntries } from '../src/transfer/entries.js';
import type { TransferEvent } from '../src/transfer/events.js';
import { Link } from '../src/transfer/link.js';
import { Receiver } from '../src/transfer/receiver.js';
import { runSender } from '../src/transfer/sender.js';
import { tempDir } from './helpers/tmp.js';

const noHelper = nativeHelper() === undefined ? 'the native helper is not built' : false;

/** Sends `file` over loopback TCP from an in-process sender to an in-process receiver. */
async function transfer(t: TestContext, file: string, dir: string, hash: HashName, sendfile: boolean) {
  const server = createServer({ allowHalfOpen: true });
  t.after(() => server.close());
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  const accepted = once(server, 'connection') as Promise<[Socket]>;
  const client = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  t.after(() => client.destroy());
  await once(client, 'connect');
  const [socket] = await accepted;
  t.after(() => socket.destroy());
  const sendLink = new Link(socket, { peer: 'receiver' });
  const events: TransferEvent[] = [];
  const receiver = new Receiver({ dir, hash });
  const recvLink = new Link(client, { peer: 'sender', ...(receiver.sink ? { data: receiver.sink } : {}) });
  // Small chunks: many DATA frames, each a sendfile call, with control messages between files.
  const [sent, received] = await Promise.all([
    runSender(sendLink, await collectEntries([file]), { hash, sendfile, chunkSize: 64 * 1024, onEvent: (e) => events.push(e) }),
    receiver.run(recvLink),
  ]);
  return { sent, received, events, sendfileBytes: sendLink.sendfileBytes };
}

describe('framed sender with sendfile', { skip: noHelper }, () => {
  for (const hash of ['sha256', 'xxh128'] as const) {
    it(`sends the payload by sendfile, and bytes and ${hash} digest are exact`, { timeout: 60_000 }, async (t) => {
      const src = tempDir(t, 'sk-sf-src-');
      const dst = tempDir(t, 'sk-sf-dst-');
      // Not a multiple of the chunk: the last frame is short.
      const data = Buffer.alloc(3 * 1024 * 1024 + 7);
      for (let i = 0; i < data.length; i += 4) data.writeUInt32LE((i * 2654435761) >>> 0, Math.min(i, data.length - 4));
      const file = join(src, 'data.bin');
      await writeFile(file, data);
      const { sent, received, events, sendfileBytes } = await transfer(t, file, dst, hash, true);
      assert.equal(sent.failures.length, 0);
      assert.equal(received.failures.length, 0);
      assert.equal(sent.hash, hash);
      assert.equal(sendfileBytes, data.length, 'every payload byte went by sendfile');
      assert.ok((await readFile(join(dst, 'data.bin'))).equals(data));
      const expected = await createDigest(hash);
      expected.update(data);
      const done = events.find((e) => e.event === 'file-done');
      assert.ok(done && done.event === 'file-done');
      assert.equal(done.sha256, expected.digest());
      if (hash === 'sha256') assert.equal(done.sha256, createHash('sha256').update(data).digest('hex'));
    });
  }

  it('writes from the read buffer when told not to use sendfile', { timeout: 60_000 }, async (t) => {
    const src = tempDir(t, 'sk-sf-src-');
    const dst = tempDir(t, 'sk-sf-dst-');
    const data = Buffer.alloc(200_001, 0x5a);
    const file = join(src, 'data.bin');
    await writeFile(file, data);
    const { sent, sendfileBytes } = await transfer(t, file, dst, 'sha256', false);
    assert.equal(sent.failures.length, 0);
    assert.equal(sendfileBytes, 0);
    assert.ok((await readFile(join(dst, 'data.bin'))).equals(data));
  });
});

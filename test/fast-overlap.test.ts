// The overlapped receive path (issue 17): OverlapFileSink copies each chunk at once into one of a
// few reused buffers and writes full buffers through the thread pool, in order, one at a time.
// A fake file handle holds writes back so a test sees what is in flight; no timing is involved.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { open, readFile } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { OverlapFileSink } from '../src/transfer/file-io.js';
import { tempDir } from './helpers/tmp.js';

/** A write the fake handle has been asked for, and how to finish it. */
interface HeldWrite {
  readonly bytes: Buffer;
  readonly position: number;
  finish(bytesWritten?: number): void;
  fail(err: Error): void;
}

/** A FileHandle whose writes complete only when the test says so. */
function heldHandle(): { fh: FileHandle; held: HeldWrite[]; inFlight: () => number; maxInFlight: () => number } {
  const held: HeldWrite[] = [];
  let inFlight = 0;
  let max = 0;
  const fh = {
    write(buf: Buffer, offset: number, length: number, position: number): Promise<{ bytesWritten: number; buffer: Buffer }> {
      inFlight++;
      max = Math.max(max, inFlight);
      return new Promise((resolve, reject) => {
        held.push({
          // A copy of what the buffer held when the write was asked for.
          bytes: Buffer.from(buf.subarray(offset, offset + length)),
          position,
          finish: (n = length) => {
            inFlight--;
            resolve({ bytesWritten: n, buffer: buf });
          },
          fail: (err) => {
            inFlight--;
            reject(err);
          },
        });
      });
    },
  } as unknown as FileHandle;
  return { fh, held, inFlight: () => inFlight, maxInFlight: () => max };
}

/** Lets promise callbacks run (the sink's write loop) without a timer. */
async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve();
}

describe('overlapped file sink', () => {
  it('writes every byte in order at its offset, from a caller buffer that is overwritten at once', async (t) => {
    const dir = tempDir(t, 'sk-fast-');
    const path = join(dir, 'out');
    const fh = await open(path, 'w+');
    try {
      await fh.write(Buffer.from('PREFIX'), 0, 6, 0);
      const sink = new OverlapFileSink(fh, { path, position: 6, bufferSize: 1000, buffers: 3 });
      const reused = Buffer.alloc(4096);
      const expected: Buffer[] = [Buffer.from('PREFIX')];
      // Sizes that cross buffer boundaries every way: smaller, equal, larger than a buffer.
      const sizes = [1, 999, 1000, 1001, 2500, 7, 4096, 3, 1000, 0, 640];
      let refused = 0;
      for (const [i, size] of sizes.entries()) {
        const view = reused.subarray(0, size);
        view.fill(i + 1);
        expected.push(Buffer.from(view));
        const more = sink.write(view);
        // The caller's buffer is reused as soon as write() returns.
        reused.fill(0xee);
        if (!more) {
          refused++;
          await sink.drained();
        }
      }
      await sink.flush();
      assert.ok(refused > 0, 'with three buffers of 1000 bytes, 15 KB must make the caller wait');
      const total = sizes.reduce((a, b) => a + b, 0);
      assert.equal(sink.written, total);
      assert.deepEqual(await readFile(path), Buffer.concat(expected));
    } finally {
      await fh.close();
    }
  });

  it('keeps one write in flight, asks the caller to wait while one buffer is left besides the one filling, and reuses its buffers', async () => {
    const h = heldHandle();
    const sink = new OverlapFileSink(h.fh, { path: 'fake', position: 100, bufferSize: 10, buffers: 4 });
    // Two buffers full and queued (one in flight), the third being filled, the fourth the spare: wait.
    assert.equal(sink.write(Buffer.alloc(10, 1)), true);
    assert.equal(sink.write(Buffer.alloc(10, 2)), false, 'two full buffers of four: wait');
    // What the caller still holds when told goes in all the same (the rest of a read).
    sink.write(Buffer.alloc(5, 3));
    await settle();
    assert.equal(h.held.length, 1, 'one write at a time');
    let drained = false;
    void sink.drained().then(() => (drained = true));
    await settle();
    assert.equal(drained, false);
    h.held[0]!.finish();
    await settle();
    assert.equal(drained, true, 'a finished write frees a buffer');
    assert.equal(h.held.length, 2);
    h.held[1]!.finish();
    await settle();
    const flushed = sink.flush();
    await settle();
    h.held[2]!.finish();
    await flushed;
    assert.deepEqual(
      h.held.map((w) => [w.position, w.bytes]),
      [
        [100, Buffer.alloc(10, 1)],
        [110, Buffer.alloc(10, 2)],
        [120, Buffer.alloc(5, 3)],
      ],
    );
    assert.equal(h.maxInFlight(), 1);
    assert.equal(sink.written, 25);
  });

  it('finishes a short write before the next buffer', async () => {
    const h = heldHandle();
    const sink = new OverlapFileSink(h.fh, { path: 'fake', position: 0, bufferSize: 8, buffers: 2 });
    sink.write(Buffer.from('abcdefgh'));
    const flushed = sink.write(Buffer.from('ij')) ? sink.flush() : sink.drained().then(() => sink.flush());
    await settle();
    h.held[0]!.finish(3);
    await settle();
    assert.deepEqual([h.held[1]!.position, h.held[1]!.bytes.toString()], [3, 'defgh']);
    h.held[1]!.finish();
    await settle();
    h.held[2]!.finish();
    await flushed;
    assert.equal(sink.written, 10);
  });

  it('a full disk sticks: the waits reject with ERR_DISK_FULL and later writes throw it', async () => {
    const h = heldHandle();
    const sink = new OverlapFileSink(h.fh, { path: 'fake', position: 0, bufferSize: 4, buffers: 2 });
    sink.write(Buffer.alloc(4));
    const waiting = sink.drained();
    await settle();
    h.held[0]!.fail(Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28, syscall: 'write' }));
    await assert.rejects(waiting, { code: 'ERR_DISK_FULL' });
    assert.throws(() => sink.write(Buffer.alloc(1)), { code: 'ERR_DISK_FULL' });
    await assert.rejects(sink.flush(), { code: 'ERR_DISK_FULL' });
  });
});

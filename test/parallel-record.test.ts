// The record of the ranges a partial file holds (`.NAME.sk-ranges`, parallel streams): a receiver
// killed while saving it must leave a whole record, the old one or the new, never a truncated one.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { open, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Assembly, OrderedDigest, rangesPath, readBackFrom, readRanges } from '../src/transfer/parallel.js';
import { tempDir } from './helpers/tmp.js';

const SIZE = 4096;

async function assembly(dir: string): Promise<Assembly> {
  const target = join(dir, 'f.bin');
  const part = join(dir, '.f.bin.sk-partial');
  const fh = await open(part, 'w+');
  const digest = await OrderedDigest.create('xxh128', SIZE, readBackFrom(fh, part));
  return new Assembly({ target, part, session: 'ab'.repeat(16), size: SIZE, mode: 0o644, mtimeMs: 0, fh, digest, held: [], path: 'f.bin' });
}

describe('the record of held ranges', () => {
  it('is replaced whole on every save (a new file renamed over the old), and read back as saved', async (t) => {
    const dir = tempDir(t, 'sk-rec-');
    const a = await assembly(dir);
    try {
      await a.hold(0, 1024, true);
      const first = await stat(rangesPath(a.target));
      await a.hold(2048, 3072, true);
      const second = await stat(rangesPath(a.target));
      // Written in place (O_TRUNC, then the bytes), a kill between the two left an empty record.
      assert.notEqual(second.ino, first.ino, 'a new file took the old one\'s name');
      assert.deepEqual(await readRanges(a.target, SIZE), [
        [0, 1024],
        [2048, 3072],
      ]);
      assert.deepEqual((await readdir(dir)).sort(), ['.f.bin.sk-partial', '.f.bin.sk-ranges'], 'no new record left beside it');
      // A new record that a killed receiver did not rename yet is not read, and goes with the record.
      await writeFile(`${rangesPath(a.target)}.new`, '{"size":4096,"held":[[0,');
      assert.deepEqual(await readRanges(a.target, SIZE), [
        [0, 1024],
        [2048, 3072],
      ]);
      await a.forget();
      assert.deepEqual(await readdir(dir), ['.f.bin.sk-partial']);
    } finally {
      await a.fh.close();
    }
  });
});

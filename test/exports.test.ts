// The package's curated export list (src/index.ts) against the README's Library API table:
// every function and class exported is documented there, everything documented is exported,
// and the internals stay out.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as api from '../src/index.js';

const root = join(import.meta.dirname, '..', '..');

describe('the package exports', () => {
  it("every function and class is in the README's Library API table, and the table names nothing else", async () => {
    const readme = await readFile(join(root, 'README.md'), 'utf8');
    const start = readme.indexOf('| module | what |');
    assert.ok(start >= 0);
    const table = readme.slice(start, readme.indexOf('\n\n', start));
    // The first column of each row names the exports (`name`, or `name(args)` → `Type`).
    const firstColumns = table.split('\n').slice(2).map((row) => row.split('|')[1] ?? '');
    const documented = new Set(firstColumns.flatMap((col) => [...col.matchAll(/`([A-Za-z][A-Za-z0-9_]*)[`(]/g)].map((m) => m[1]!)));
    const exported = Object.keys(api).filter((k) => !/^[A-Z0-9_]+$/.test(k) || k === 'ERROR_CODES');
    assert.deepEqual(exported.filter((k) => !documented.has(k)).sort(), [], 'exported but not in the README');
    assert.deepEqual([...documented].filter((k) => !(k in api) && k !== 'Listener').sort(), [], 'in the README but not exported');
  });

  it('leaves the internals out', () => {
    for (const internal of ['Link', 'BufferPool', 'FileSink', 'SyncFileSink', 'PeerTable', 'WorkerLink', 'workerLink', 'keepYoungGenerationSmall', 'fullGc', 'newCounters', 'IdleCompactor']) {
      assert.equal(internal in api, false, internal);
    }
  });
});

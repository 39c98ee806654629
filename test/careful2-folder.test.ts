// `get --dir` where a folder cannot be made (issue 12, item 16): it used to spin (thousands of
// failing mkdir calls: Node's recursive mkdir retries for ever under /proc) and ignore SIGTERM.
// It must fail at once, with a coded error in socketkit's words. Loopback only.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeFolder } from '../src/transfer/client.js';
import { isSocketkitError } from '../src/core/errors.js';
import { runCli, spawnCli } from './helpers/cli.js';
import { tempDir } from './helpers/tmp.js';

describe('get --dir where no folder can be made', () => {
  it('get --dir /proc/1/nope fails at once with ERR_IO in socketkit words', { skip: !existsSync('/proc/1') && 'no /proc' }, async (t) => {
    const dir = tempDir(t, 'sk-c2-dir-');
    await writeFile(join(dir, 'f.txt'), 'x\n');
    const server = spawnCli(['serve', join(dir, 'f.txt'), '--listen', '127.0.0.1:0', '--json'], t);
    const { address } = JSON.parse(await server.stdout.waitFor(/"event":"listening"/)) as { address: string };
    const t0 = performance.now();
    // Killed after 8 s: the old code spun until then.
    const r = await runCli(['get', address, '--dir', '/proc/1/nope/deeper'], { timeoutMs: 8_000 });
    assert.equal(r.timedOut, false, 'it did not spin');
    assert.ok(performance.now() - t0 < 5_000);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /^socketkit: cannot create the folder \/proc\/1\/nope: \/proc\/1 takes no new folders.*\(ERR_IO\)$/m);
    assert.doesNotMatch(r.stderr, /ENOENT|mkdir/);
  });

  it('makeFolder creates missing parents one at a time, refuses a file in the way, and stops when aborted', async (t) => {
    const dir = tempDir(t, 'sk-c2-dir-');
    await makeFolder(join(dir, 'a', 'b', 'c'));
    assert.ok((await stat(join(dir, 'a', 'b', 'c'))).isDirectory());
    await makeFolder(join(dir, 'a', 'b', 'c')); // already there
    await writeFile(join(dir, 'file'), '');
    await assert.rejects(makeFolder(join(dir, 'file', 'x')), (e) => isSocketkitError(e) && e.code === 'ERR_EXISTS');
    const ac = new AbortController();
    ac.abort();
    await assert.rejects(makeFolder(join(dir, 'd', 'e'), ac.signal), (e) => isSocketkitError(e) && e.code === 'ERR_ABORTED');
    assert.equal(existsSync(join(dir, 'd')), false);
  });
});

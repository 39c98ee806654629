// Inputs are checked before serving (issue 12, item 15): a file that cannot be read is refused at
// start, not discovered at each client. Run as an unprivileged user (root reads every file).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BIN, requireTool, run } from './helpers/cli.js';
import { tempDir } from './helpers/tmp.js';

describe('serve and send check their files first', () => {
  for (const cmd of [
    ['serve', '--listen', '127.0.0.1:0'],
    ['send', '127.0.0.1:9'],
  ] as const) {
    it(`${cmd[0]} with a file it cannot read: ERR_PERMISSION at once, nothing served or sent`, async (t) => {
      if (process.getuid?.() !== 0) return t.skip('needs root, to run the command as the unprivileged user nobody');
      const setpriv = requireTool(t, 'setpriv', 'util-linux');
      if (!setpriv) return;
      const dir = tempDir(t);
      await chmod(dir, 0o755);
      const file = join(dir, 'unreadable.txt');
      await writeFile(file, 'secret\n');
      await chmod(file, 0o000);
      const args = cmd[0] === 'serve' ? ['serve', file, ...cmd.slice(1)] : ['send', cmd[1], file];
      const r = await run(setpriv, ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, BIN, ...args], { timeoutMs: 15_000 });
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /^socketkit: permission denied: .*unreadable\.txt \(ERR_PERMISSION\)\n$/);
      assert.doesNotMatch(r.stdout.toString() + r.stderr, /serving/);
    });
  }
});

describe('receive makes its folder at start', () => {
  it('a folder that cannot be made is one coded line at once, before listening', async () => {
    const r = await run(process.execPath, [BIN, 'receive', '--dir', '/proc/1/nope', '--listen', '127.0.0.1:0'], { timeoutMs: 10_000 });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /^socketkit: cannot create the folder \/proc\/1\/nope: .*\(ERR_IO\)\n$/);
    assert.doesNotMatch(r.stderr, /receiving into/);
  });
});

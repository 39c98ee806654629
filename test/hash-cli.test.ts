// --hash on the transfer commands (issue 17): the sides agree in the hello; sha256 wins.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { ndjson, runCli, spawnCli } from './helpers/cli.js';
import { tempDir } from './helpers/tmp.js';

describe('--hash on serve and get', () => {
  for (const [serverHash, clientHash, agreed] of [
    [undefined, undefined, 'sha256'],
    ['xxh128', undefined, 'xxh128'],
    [undefined, 'xxh128', 'xxh128'],
    ['sha256', 'xxh128', 'sha256'],
  ] as const) {
    it(`serve ${serverHash ? `--hash ${serverHash}` : '(no --hash)'}, get ${clientHash ? `--hash ${clientHash}` : '(no --hash)'}: verified with ${agreed}`, async (t) => {
      const dir = tempDir(t, 'sk-hash-');
      const data = randomBytes(300 * 1024);
      await writeFile(join(dir, 'f.bin'), data);
      const server = spawnCli(['serve', join(dir, 'f.bin'), '--listen', '127.0.0.1:0', ...(serverHash ? ['--hash', serverHash] : [])], t);
      const line = await server.stderr.waitFor(/^serving /);
      const address = /on (127\.0\.0\.1:\d+);/.exec(line)?.[1];
      assert.ok(address, line);
      const got = await runCli(['get', address, '--dir', join(dir, 'out'), '--json', ...(clientHash ? ['--hash', clientHash] : [])], { timeoutMs: 20_000 });
      assert.equal(got.code, 0, got.stderr);
      assert.deepEqual(await readFile(join(dir, 'out', 'f.bin')), data);
      const done = ndjson(got.stdout.toString()).find((e) => e['event'] === 'file-done')!;
      const digest = String(done['sha256']);
      if (agreed === 'sha256') assert.equal(digest, createHash('sha256').update(data).digest('hex'));
      else assert.match(digest, /^[0-9a-f]{32}$/, 'a 128-bit XXH3 digest');
      server.kill('SIGTERM');
      await server.waitExit();
    });
  }

  it('an unknown hash is a usage error', async () => {
    const r = await runCli(['get', '127.0.0.1:9', '--hash', 'md5'], { timeoutMs: 10_000 });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--hash: 'md5' is not sha256 or xxh128 \(ERR_USAGE\)/);
  });
});

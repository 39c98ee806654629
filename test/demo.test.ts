// The tour (`npm start`, `socketkit demo`): the README's main command runs every system on
// loopback and exits 0 only when each one passed.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { runCli } from './helpers/cli.js';

describe('socketkit demo', () => {
  it('runs all six systems on loopback and exits 0', async () => {
    const r = await runCli(['demo'], { timeoutMs: 90_000 });
    const out = r.stdout.toString();
    assert.equal(r.code, 0, `${out}\n${r.stderr}`);
    for (const title of ['1. TCP echo', '2. UDP', '3. Load', '4. Security', '5. File transfer', '6. Proxy']) assert.match(out, new RegExp(`^${title}`, 'm'));
    assert.equal((out.match(/^ {3}ok \(\d+ ms\)$/gm) ?? []).length, 6, 'one ok per system');
    assert.match(out, /^6 of 6 systems passed\.$/m);
    assert.match(out, /get --raw: .*; sent with (sendfile|reads and writes)/);
    // Every step's lines are one table: a label column of 28, the text beside it in one straight
    // column; a label too long for the column (a Unix socket's path) has a line of its own.
    const body = out.split('\n').filter((l) => l.startsWith('   ') && !/^ {3}ok \(\d+ ms\)$/.test(l));
    assert.ok(body.length > 20);
    for (const line of body) {
      const ownLine = /^ {3}\S{28,}$/.test(line);
      const aligned = /^ {3}(?:\S+(?: \S+)*)? *$/.test(line.slice(0, 31)) && line.length > 32 && line[31] === ' ' && line[32] !== ' ';
      assert.ok(ownLine || aligned, `not in the table's columns: ${JSON.stringify(line)}`);
    }
  });
});

// listen --each CMD (issue 14): one program per client, the client's bytes its stdin and its
// output on ours; several clients at once stay apart under --label; stdin still goes to clients.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { runCli } from './helpers/cli.js';
import { waitUntil } from './helpers/net.js';
import { startListen, dial } from './helpers/listen.js';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

function ended(s: Socket): Promise<Buffer> {
  const parts: Buffer[] = [];
  s.on('data', (c: Buffer) => parts.push(c));
  return new Promise((resolve, reject) => {
    s.once('end', () => resolve(Buffer.concat(parts)));
    s.once('error', reject);
  });
}

describe('listen --each', { timeout: 60_000 }, () => {
  it('-k --label: two clients at once, each through its own sha256sum; every output line labelled with its client', async (t) => {
    const { p, port } = await startListen(['-k', '--label', '--each', 'sha256sum; echo "client $SOCKETKIT_CLIENT was $SOCKETKIT_PEER"'], t, true);
    const a = await dial(port);
    const b = await dial(port);
    const la = `[127.0.0.1:${a.localPort}]`;
    const lb = `[127.0.0.1:${b.localPort}]`;
    const pa = a.localPort;
    await waitUntil(() => p.stderr.lines.filter((l) => l.includes('connected')).length === 2, 'both connected', 10_000);
    const da = randomBytes(3 * 1024 * 1024);
    const db = randomBytes(2 * 1024 * 1024 + 1);
    // Both send at once, in pieces, so the two programs run side by side.
    for (let i = 0; i < 4; i++) {
      a.write(da.subarray((i * da.length) / 4, ((i + 1) * da.length) / 4));
      b.write(db.subarray((i * db.length) / 4, ((i + 1) * db.length) / 4));
    }
    const ea = ended(a);
    const eb = ended(b);
    a.end();
    b.end();
    // Each connection is closed from our side once its program is done (our FIN after its output).
    await Promise.all([ea, eb]);
    a.destroy();
    b.destroy();
    await waitUntil(() => p.stdout.lines.length >= 4, 'four output lines', 10_000);
    assert.ok(p.stdout.lines.includes(`${la} ${sha(da)}  -`), p.stdout.text);
    assert.ok(p.stdout.lines.includes(`${lb} ${sha(db)}  -`), p.stdout.text);
    assert.ok(p.stdout.lines.some((l) => l.startsWith(`${la} client `) && l.endsWith(` was 127.0.0.1:${pa}`)), p.stdout.text);
    assert.ok(p.stdout.lines.every((l) => l.startsWith(la) || l.startsWith(lb)), p.stdout.text);
    await waitUntil(() => p.stderr.lines.filter((l) => /closed: .*sh -c .* exited 0/.test(l)).length === 2, 'both endings reported', 10_000);
    p.kill('SIGINT');
    assert.equal((await p.waitExit()).code, 130);
  });

  it("stdin still goes to the client; the program's output does not (it is printed); its exit status is in the client's line", async (t) => {
    const { p, port } = await startListen(['--each', 'tr a-z A-Z; exit 3'], t, true);
    const s = await dial(port);
    const back = ended(s);
    p.child.stdin!.end('from our stdin\n');
    s.end('hello each\n');
    assert.equal((await back).toString(), 'from our stdin\n');
    s.destroy();
    const { code } = await p.waitExit();
    assert.equal(code, 3, p.stderr.text);
    assert.deepEqual(p.stdout.lines, ['HELLO EACH']);
    assert.match(p.stderr.text, /received 11 bytes.*tr a-z A-Z; exit 3' exited 3/);
  });

  it('--each with --exec, or empty, is a usage error', async () => {
    const a = await runCli(['listen', '127.0.0.1:0', '--each', 'cat', '--exec', 'cat']);
    assert.equal(a.code, 2);
    assert.match(a.stderr, /choose one: --each/);
    const b = await runCli(['listen', '127.0.0.1:0', '--each', ' ']);
    assert.equal(b.code, 2);
    assert.match(b.stderr, /--each: the command is empty/);
  });
});

// `socketkit listen`: the real binary as nc -l, against nc, Python and Node clients: one client
// and exit, -k with several at once under --label, stdin to the peer with the half-close each
// way, --exec/--sh-exec (100 MB through cat, a program that exits early, one that ignores
// stdin, one that writes to stderr), allow/deny lists and TLS. Every case is bounded.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { BIN, requireTool, run, runCli, spawnCli, spawnProcess } from './helpers/cli.js';
import { tempDir } from './helpers/tmp.js';
import { startListen, dial } from './helpers/listen.js';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Resolves when the server ends or closes `s` (a refused connection is accepted by the kernel, then closed). */
function shutBy(s: Socket): Promise<void> {
  s.on('error', () => undefined);
  return new Promise((resolve) => {
    s.once('end', () => {
      s.destroy();
      resolve();
    });
    s.once('close', () => resolve());
  });
}

/** Sends `data`, half-closes, and reads everything back at the same time. */
async function exchange(port: number, data: Buffer): Promise<Buffer> {
  const s = await dial(port);
  const parts: Buffer[] = [];
  s.on('data', (c: Buffer) => parts.push(c));
  const ended = new Promise<void>((resolve, reject) => {
    s.once('end', resolve);
    s.once('error', reject);
  });
  s.end(data);
  await ended;
  s.destroy();
  return Buffer.concat(parts);
}

describe('listen: one client', { timeout: 60_000 }, () => {
  it('prints what nc -N sends (binary, 2 MiB) and exits 0 with the first client', async (t) => {
    if (!requireTool(t, 'nc', 'netcat-openbsd')) return;
    const data = randomBytes(2 * 1024 * 1024 + 5);
    const dir = tempDir(t);
    const { readFile, writeFile } = await import('node:fs/promises');
    await writeFile(join(dir, 'in'), data);
    const p = spawnProcess('sh', ['-c', `exec "${process.execPath}" "${BIN}" listen 127.0.0.1:0 > ${join(dir, 'out')} < /dev/null`], t);
    const port = Number(/:(\d+) /.exec(await p.stderr.waitFor(/^listening on /))![1]);
    const nc = await run('sh', ['-c', `nc -N 127.0.0.1 ${port} < ${join(dir, 'in')}`], { timeoutMs: 20_000 });
    assert.equal(nc.code, 0, nc.stderr);
    const { code } = await p.waitExit();
    assert.equal(code, 0);
    assert.equal(sha(await readFile(join(dir, 'out'))), sha(data));
    await p.stderr.waitFor(new RegExp(`closed: sent 0 bytes, received ${data.length} bytes`));
  });

  it('stdin goes to the peer and is half-closed; the peer answers after our FIN (half-close the other way)', async (t) => {
    if (!requireTool(t, 'python3', 'python3')) return;
    const { p, port } = await startListen([], t, true);
    p.child.stdin!.end('hello from listen\n');
    const py = await run('python3', ['-c', PY_READ_THEN_ANSWER, String(port)], { timeoutMs: 15_000 });
    assert.equal(py.code, 0, py.stderr);
    assert.equal(py.stdout.toString(), 'hello from listen\n');
    const { code } = await p.waitExit();
    assert.equal(code, 0);
    assert.equal(p.stdout.text, 'thanks, got 18');
    await p.stderr.waitFor(/closed: sent 18 bytes, received 14 bytes, we closed first/);
  });

  it('socat sends a file to it; ncat --recv-only receives its stdin', async (t) => {
    if (!requireTool(t, 'socat', 'socat') || !requireTool(t, 'ncat', 'ncat')) return;
    const data = randomBytes(1024 * 1024 + 9);
    const dir = tempDir(t);
    const { readFile, writeFile } = await import('node:fs/promises');
    await writeFile(join(dir, 'in'), data);
    const p = spawnProcess('sh', ['-c', `exec "${process.execPath}" "${BIN}" listen 127.0.0.1:0 > ${join(dir, 'out')} < /dev/null`], t);
    const port = Number(/:(\d+) /.exec(await p.stderr.waitFor(/^listening on /))![1]);
    const so = await run('socat', ['-u', `FILE:${join(dir, 'in')}`, `TCP:127.0.0.1:${port}`], { timeoutMs: 15_000 });
    assert.equal(so.code, 0, so.stderr);
    assert.equal((await p.waitExit()).code, 0);
    assert.equal(sha(await readFile(join(dir, 'out'))), sha(data));
    const q = spawnProcess('sh', ['-c', `exec "${process.execPath}" "${BIN}" listen 127.0.0.1:0 < ${join(dir, 'in')}`], t);
    const port2 = Number(/:(\d+) /.exec(await q.stderr.waitFor(/^listening on /))![1]);
    const nc = await run('sh', ['-c', `ncat --recv-only 127.0.0.1 ${port2} | sha256sum`], { timeoutMs: 15_000 });
    assert.equal(nc.stdout.toString().split(' ')[0], sha(data));
    assert.equal((await q.waitExit()).code, 0);
  });

  it('--json: listening, connect and closed events on stderr; stdout only the data', async (t) => {
    const p = spawnCli(['listen', '127.0.0.1:0', '--json'], t);
    const listening = JSON.parse(await p.stderr.waitFor(/"event":"listening"/)) as { address: string };
    const r = await runCli(['connect', listening.address, '-q'], { input: 'data only\n' });
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await p.waitExit()).code, 0);
    assert.equal(p.stdout.text, 'data only');
    const events = p.stderr.lines.filter(Boolean).map((l) => JSON.parse(l) as { event: string; bytesReceived?: number });
    assert.deepEqual(events.map((e) => e.event), ['listening', 'connect', 'closed']);
    assert.equal(events[2]!.bytesReceived, 10);
  });

  it('a second client while the first is served is refused, and said so', async (t) => {
    const { p, port } = await startListen([], t, true);
    const first = await dial(port);
    await p.stderr.waitFor(/connected/);
    const second = await dial(port);
    await shutBy(second);
    await p.stderr.waitFor(/refused/);
    first.end('bye');
    p.child.stdin!.end();
    assert.equal((await p.waitExit()).code, 0);
    assert.match(p.stdout.text, /^bye/);
  });

  it('a client that resets: exit 2 with ERR_CONN_RESET', async (t) => {
    const { p, port } = await startListen([], t, true);
    const s = await dial(port);
    s.write('some\n');
    await p.stdout.waitFor(/^some$/);
    s.resetAndDestroy();
    const { code } = await p.waitExit();
    assert.equal(code, 2);
    await p.stderr.waitFor(/ERR_CONN_RESET/);
  });
});

describe('listen -k: many clients', { timeout: 60_000 }, () => {
  it('--label keeps lines of clients connected at once apart, a line at a time', async (t) => {
    const { p, port } = await startListen(['-k', '--label'], t, true);
    const a = await dial(port);
    const b = await dial(port);
    await p.stderr.waitFor((l) => (l.match(/connected/) ? true : false));
    // Each line written in two pieces, interleaved between the clients.
    a.write('alpha-');
    b.write('beta-');
    await p.stderr.waitFor(() => true);
    a.write('one\n');
    b.write('two\n');
    a.end('alpha-last');
    b.end();
    await p.stdout.waitFor(/alpha-last/);
    await p.stdout.waitFor(/beta-two/);
    const pa = `[127.0.0.1:${a.localPort}]`;
    const pb = `[127.0.0.1:${b.localPort}]`;
    assert.ok(p.stdout.lines.includes(`${pa} alpha-one`), p.stdout.text);
    assert.ok(p.stdout.lines.includes(`${pb} beta-two`), p.stdout.text);
    assert.ok(p.stdout.lines.includes(`${pa} alpha-last`), p.stdout.text);
    p.kill('SIGINT');
    assert.equal((await p.waitExit()).code, 130, 'SIGINT: 128 + 2');
  });

  it('--deny refuses a client and serves nobody from that block', async (t) => {
    const { p, port } = await startListen(['-k', '--deny', '127.0.0.0/8'], t, true);
    const s = await dial(port);
    await shutBy(s);
    await p.stderr.waitFor(/refused/);
    p.kill('SIGTERM');
    await p.waitExit();
  });
});

describe('listen --exec', { timeout: 120_000 }, () => {
  it('100 MB through --exec cat, SHA-256 checked, both directions at once', { timeout: 90_000 }, async (t) => {
    const data = randomBytes(100 * 1024 * 1024);
    const { p, port } = await startListen(['--exec', 'cat'], t);
    const back = await exchange(port, data);
    assert.equal(back.length, data.length);
    assert.equal(sha(back), sha(data));
    const { code } = await p.waitExit(30_000);
    assert.equal(code, 0);
    await p.stderr.waitFor(/sent 104857600 bytes, received 104857600 bytes.*cat exited 0/);
  });

  it('a program that exits early (head -c 10): the rest is discarded, the connection closes cleanly', async (t) => {
    const { p, port } = await startListen(['--exec', 'head -c 10'], t);
    const back = await exchange(port, randomBytes(1024 * 1024).fill(65));
    assert.equal(back.toString(), 'A'.repeat(10));
    assert.equal((await p.waitExit()).code, 0);
    await p.stderr.waitFor(/head exited 0/);
  });

  it('a program that ignores stdin and one that writes to stderr (--sh-exec)', async (t) => {
    const a = await startListen(['--sh-exec', 'echo hi'], t);
    assert.equal((await exchange(a.port, Buffer.from('ignored\n'))).toString(), 'hi\n');
    assert.equal((await a.p.waitExit()).code, 0);
    const b = await startListen(['--sh-exec', 'echo oops >&2; tr a-z A-Z'], t);
    assert.equal((await exchange(b.port, Buffer.from('shout\n'))).toString(), 'SHOUT\n');
    assert.equal((await b.p.waitExit()).code, 0);
    await b.p.stderr.waitFor(/^oops$/);
  });

  it("a program's non-zero exit is the exit status; a missing program is ERR_NOT_FOUND", async (t) => {
    const a = await startListen(['--sh-exec', 'cat; exit 3'], t);
    assert.equal((await exchange(a.port, Buffer.from('x'))).toString(), 'x');
    assert.equal((await a.p.waitExit()).code, 3);
    const b = await startListen(['--exec', '/nonexistent/prog'], t);
    await exchange(b.port, Buffer.from('x')).catch(() => Buffer.alloc(0));
    assert.equal((await b.p.waitExit()).code, 2);
    await b.p.stderr.waitFor(/ERR_NOT_FOUND/);
  });

  it('-k --exec: one program per client, killed when its connection ends', async (t) => {
    const { p, port } = await startListen(['-k', '--exec', 'sleep 60'], t);
    const s = await dial(port);
    await p.stderr.waitFor(/connected/);
    s.resetAndDestroy();
    await p.stderr.waitFor(/killed/);
    p.kill('SIGINT');
    assert.equal((await p.waitExit()).code, 130, 'SIGINT: 128 + 2');
  });
});

describe('listen and connect over TLS', { timeout: 30_000 }, () => {
  it('listen --cert/--key, connect --pin: the bytes go both ways encrypted', async (t) => {
    const dir = tempDir(t);
    const c = join(dir, 'c.pem');
    const k = join(dir, 'k.pem');
    const made = await runCli(['cert', '--cert', c, '--key', k, '-q']);
    assert.equal(made.code, 0, made.stderr);
    const pin = (await runCli(['cert', '--fingerprint', c])).stdout.toString().trim().split(/\s+/).pop()!;
    const { p, port } = await startListen(['--cert', c, '--key', k], t, true);
    p.child.stdin!.end('from server\n');
    const r = await runCli(['connect', `127.0.0.1:${port}`, '--pin', pin], { input: 'from client\n' });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.toString(), 'from server\n');
    assert.equal((await p.waitExit()).code, 0);
    assert.equal(p.stdout.text, 'from client');
  });
});

/** Connects to argv[1], reads to EOF (printing it), then answers and closes. */
const PY_READ_THEN_ANSWER = `
import socket, sys
c = socket.create_connection(('127.0.0.1', int(sys.argv[1])))
got = b''
while True:
    b = c.recv(65536)
    if not b: break
    got += b
sys.stdout.buffer.write(got); sys.stdout.flush()
c.sendall(b'thanks, got %d' % len(got)); c.close()
`;

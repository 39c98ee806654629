// connect and listen with 100 MB of binary, both ways, against OpenBSD nc, ncat, socat and a
// Python socket program (issue 14): SHA-256 checked on the far side, files in a temp dir, shell
// redirections (so the splice engine runs where it can; the 2 MiB cases in connect-cli and
// listen-cli cover the JS streams). Every case is bounded.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, requireTool, run, spawnProcess, type Spawned } from './helpers/cli.js';
import { freePort } from './helpers/net.js';
import { tempDir } from './helpers/tmp.js';

const SIZE = 100 * 1024 * 1024;
const SK = `"${process.execPath}" "${BIN}"`;

async function shaFile(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(path)) h.update(c as Buffer);
  return h.digest('hex');
}

/** True once something listens on the port; false if `rx` exits first (the port was taken: another test's, in CI). */
async function listeningOn(port: number, rx: Spawned): Promise<boolean> {
  let exited = false;
  void rx.exited.then(() => (exited = true));
  const deadline = Date.now() + 10_000;
  for (;;) {
    const r = await run('ss', ['-Hltn', `sport = :${port}`], { timeoutMs: 2_000 });
    if (r.stdout.toString().includes(`:${port}`)) return true;
    if (exited) return false;
    if (Date.now() > deadline) throw new Error(`nothing listening on port ${port}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

describe('100 MB through connect and listen, with other tools on the far side', { timeout: 300_000 }, () => {
  // One 100 MB file for the whole suite, removed at its end.
  let dir = '';
  let src = '';
  let want = '';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sk-interop-'));
    src = join(dir, 'in.bin');
    await writeFile(src, randomBytes(SIZE));
    want = await shaFile(src);
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** Runs the receiver (a shell line with {P}), then the sender, and checks what the receiver wrote. */
  async function pair(t: Parameters<typeof tempDir>[0], receiver: string, sender: string): Promise<void> {
    const out = join(tempDir(t), 'out.bin');
    let p = 0;
    let rx: Spawned | undefined;
    // A port free a moment ago may be taken by the time the receiver binds it: then another.
    for (let attempt = 0; attempt < 5 && rx === undefined; attempt++) {
      p = await freePort();
      // The receiver's stdin is at its end from the start: listen half-closes at once (nc -N waits for that).
      const candidate = spawnProcess('sh', ['-c', `exec ${receiver.replaceAll('{P}', String(p))} > ${out} < /dev/null`], t);
      if (await listeningOn(p, candidate)) rx = candidate;
    }
    assert.ok(rx !== undefined, 'the receiver could not listen on any of 5 free ports');
    const tx = await run('sh', ['-c', `${sender.replaceAll('{P}', String(p))} < ${src}`], { timeoutMs: 120_000 });
    assert.equal(tx.code, 0, tx.stderr);
    const { code } = await rx.waitExit(60_000);
    assert.equal(code, 0, rx.stderr.text);
    assert.equal(await shaFile(out), want);
  }

  it('connect → nc -l', async (t) => {
    if (!requireTool(t, 'nc', 'netcat-openbsd')) return;
    await pair(t, 'nc -l 127.0.0.1 {P}', `${SK} connect 127.0.0.1:{P} -q > /dev/null`);
  });
  it('nc -N → listen', async (t) => {
    if (!requireTool(t, 'nc', 'netcat-openbsd')) return;
    await pair(t, `${SK} listen 127.0.0.1:{P} -q`, 'nc -N 127.0.0.1 {P} > /dev/null');
  });
  it('connect → ncat -l --recv-only', async (t) => {
    if (!requireTool(t, 'ncat', 'ncat')) return;
    await pair(t, 'ncat -l 127.0.0.1 {P} --recv-only', `${SK} connect 127.0.0.1:{P} -q > /dev/null`);
  });
  it('ncat --send-only → listen', async (t) => {
    if (!requireTool(t, 'ncat', 'ncat')) return;
    await pair(t, `${SK} listen 127.0.0.1:{P} -q`, 'ncat --send-only 127.0.0.1 {P}');
  });
  it('connect → socat -u TCP-LISTEN', async (t) => {
    if (!requireTool(t, 'socat', 'socat')) return;
    await pair(t, 'socat -u TCP-LISTEN:{P},bind=127.0.0.1,reuseaddr STDOUT', `${SK} connect 127.0.0.1:{P} -q > /dev/null`);
  });
  it('socat -u → listen', async (t) => {
    if (!requireTool(t, 'socat', 'socat')) return;
    await pair(t, `${SK} listen 127.0.0.1:{P} -q`, 'socat -u STDIN TCP:127.0.0.1:{P}');
  });
  it('connect → a Python server; a Python client → listen', async (t) => {
    if (!requireTool(t, 'python3', 'python3')) return;
    const server = `python3 -c "import socket,sys; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('127.0.0.1', {P})); s.listen(1); c,_=s.accept(); o=sys.stdout.buffer
while True:
  b=c.recv(1<<20)
  if not b: break
  o.write(b)
o.flush(); c.close()"`;
    await pair(t, server, `${SK} connect 127.0.0.1:{P} -q > /dev/null`);
    const client = `python3 -c "import socket,sys; c=socket.create_connection(('127.0.0.1', {P})); i=sys.stdin.buffer
while True:
  b=i.read(1<<20)
  if not b: break
  c.sendall(b)
c.shutdown(socket.SHUT_WR)
while c.recv(65536): pass"`;
    await pair(t, `${SK} listen 127.0.0.1:{P} -q`, client);
  });
});

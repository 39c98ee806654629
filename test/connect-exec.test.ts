// `connect --exec`/`--sh-exec`: the connection as a program's stdin and stdout, against a
// Python server that sends and reads at once (100 MB through cat, SHA-256 checked, bounded
// time), and a server that keeps talking after the program is gone.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { requireTool, runCli, spawnProcess } from './helpers/cli.js';
import { startTestServer } from './helpers/net.js';

describe('connect --exec', { timeout: 120_000 }, () => {
  it('100 MB through --exec cat: both directions at once, no deadlock, SHA-256 equal', { timeout: 90_000 }, async (t) => {
    if (!requireTool(t, 'python3', 'python3')) return;
    const py = spawnProcess('python3', ['-c', PY_SEND_AND_HASH, String(100 * 1024 * 1024)], t);
    const port = Number(await py.stdout.waitFor(/^\d+$/));
    const started = performance.now();
    const r = await runCli(['connect', `127.0.0.1:${port}`, '--exec', 'cat'], { timeoutMs: 60_000 });
    assert.equal(r.code, 0, r.stderr);
    const [, hash, n] = (await py.stdout.waitFor(/^sent /)).split(' ');
    assert.equal(await py.stdout.waitFor(/^back /), `back ${n} ${hash}`);
    assert.match(r.stderr, /sent 104857600 bytes, received 104857600 bytes.*cat exited 0/);
    t.diagnostic(`100 MB through connect --exec cat in ${Math.round(performance.now() - started)} ms`);
  });

  it('a program that exits at once while the server keeps sending: closed cleanly after the linger', async (t) => {
    let server: Socket | undefined;
    const srv = await startTestServer({ kind: 'inet', host: '127.0.0.1', port: 0 }, (s) => {
      server = s;
      s.write(Buffer.alloc(256 * 1024, 1));
      s.on('data', () => undefined);
    }, t);
    const r = await runCli(['connect', `127.0.0.1:${srv.endpoint.kind === 'inet' ? srv.endpoint.port : 0}`, '--sh-exec', 'echo bye; exit 0'], { timeoutMs: 15_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /sh -c 'echo bye; exit 0' exited 0/);
    assert.ok(server);
  });

  it('a program that cannot be run: ERR_NOT_FOUND', async (t) => {
    const srv = await startTestServer({ kind: 'inet', host: '127.0.0.1', port: 0 }, (s) => s.resume(), t);
    const r = await runCli(['connect', `127.0.0.1:${srv.endpoint.kind === 'inet' ? srv.endpoint.port : 0}`, '--exec', '/nonexistent/prog']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /ERR_NOT_FOUND/);
  });
});

/** Prints its port; sends N random-ish bytes while reading everything back; prints both hashes. */
const PY_SEND_AND_HASH = `
import socket, sys, threading, hashlib, os
n = int(sys.argv[1])
s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(1)
print(s.getsockname()[1], flush=True)
c, _ = s.accept()
block = os.urandom(1 << 20)
hs = hashlib.sha256()
def send():
    left = n
    while left > 0:
        b = block[:min(left, len(block))]
        c.sendall(b); hs.update(b); left -= len(b)
    c.shutdown(socket.SHUT_WR)
th = threading.Thread(target=send); th.start()
hb = hashlib.sha256(); got = 0
while True:
    b = c.recv(1 << 20)
    if not b: break
    hb.update(b); got += len(b)
th.join()
print('sent', hs.hexdigest(), n, flush=True)
print('back', got, hb.hexdigest(), flush=True)
`;

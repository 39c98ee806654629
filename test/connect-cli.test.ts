// `socketkit connect`: the real binary against servers that are not echoes: Node test servers
// (half-close each way, a reset, silence, a server that never reads, one that floods a stdout
// nobody reads), and nc, ncat, socat and Python as servers. Every case is bounded.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import type { Socket } from 'node:net';
import { BIN, requireTool, runCli, spawnCli, spawnProcess } from './helpers/cli.js';
import { REFUSING_PORT, freePort, hasIPv6, startTestServer, waitUntil } from './helpers/net.js';
import { tempDir } from './helpers/tmp.js';
import { connect } from '../src/net/connect.js';
import { relay, RelayError } from '../src/relay/relay.js';
import { formatEndpoint, type Endpoint } from '../src/net/endpoint.js';
import { waitForListeningOnce } from './helpers/listen.js';

const LOOP: Endpoint = { kind: 'inet', host: '127.0.0.1', port: 0 };
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const addr = (ep: Endpoint): string => formatEndpoint(ep);

/** Collects a socket's bytes; resolves at its end. */
function collect(socket: Socket): Promise<Buffer> {
  const parts: Buffer[] = [];
  socket.on('data', (c: Buffer) => parts.push(c));
  return new Promise((resolve) => socket.once('end', () => resolve(Buffer.concat(parts))));
}

describe('connect: TCP and Unix', { timeout: 60_000 }, () => {
  it('sends stdin, half-closes, and prints everything the server sends after our end (binary-safe)', async (t) => {
    const input = randomBytes(3 * 1024 * 1024 + 7);
    let got: Buffer | undefined;
    const srv = await startTestServer(LOOP, (s) => {
      void collect(s).then((b) => {
        got = b;
        // The reply comes only after our FIN: it proves we kept reading after stdin ended.
        s.end(Buffer.concat([Buffer.from(sha(b)), Buffer.from([0, 255, 13, 10, 27])]));
      });
    }, t);
    const r = await runCli(['connect', addr(srv.endpoint)], { input, timeoutMs: 20_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(got?.length, input.length);
    assert.deepEqual(r.stdout, Buffer.concat([Buffer.from(sha(input)), Buffer.from([0, 255, 13, 10, 27])]));
    assert.match(r.stderr, new RegExp(`closed: sent ${input.length} bytes, received 69 bytes, we closed first`));
  });

  it('keeps sending after the server half-closes first (an upload is not cut short)', async (t) => {
    const input = randomBytes(4 * 1024 * 1024);
    let got: Buffer | undefined;
    const srv = await startTestServer(LOOP, (s) => {
      s.end('hello first\n'); // FIN at once; the server still reads everything
      void collect(s).then((b) => {
        got = b;
      });
    }, t);
    const r = await runCli(['connect', addr(srv.endpoint)], { input, timeoutMs: 20_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.toString(), 'hello first\n');
    // Our process may exit before the server's 'end' has run: wait for it, then compare.
    await waitUntil(() => got !== undefined, "the server's end of our stream");
    assert.ok(got!.equals(input), 'the server got all of stdin after its own FIN');
    assert.match(r.stderr, /the peer closed first/);
  });

  it('over a Unix socket, with --json giving the ending as an event on stderr', async (t) => {
    const path = join(tempDir(t), 's.sock');
    const srv = await startTestServer({ kind: 'unix', path }, (s) => void collect(s).then((b) => s.end(b.toString().toUpperCase())), t);
    const r = await runCli(['connect', `unix:${path}`, '--json'], { input: 'shout\n' });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.toString(), 'SHOUT\n');
    const ev = r.stderr.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
    const closed = ev.find((e) => e.event === 'closed');
    assert.equal(closed?.bytesSent, 6);
    assert.equal(closed?.bytesReceived, 6);
    void srv;
  });

  it('over IPv6 ([::1])', async (t) => {
    if (!(await hasIPv6())) return t.skip('no IPv6 loopback here');
    const srv = await startTestServer({ kind: 'inet', host: '::1', port: 0 }, (s) => void collect(s).then((b) => s.end(`v6 got ${b.length}`)), t);
    const r = await runCli(['connect', addr(srv.endpoint)], { input: 'sixteen bytes!!\n' });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.toString(), 'v6 got 16');
    assert.match(r.stderr, /connection to \[::1\]:\d+ closed/);
  });

  it('-q prints nothing on stderr for a clean close', async (t) => {
    const srv = await startTestServer(LOOP, (s) => s.end('x'), t);
    const r = await runCli(['connect', addr(srv.endpoint), '-q']);
    assert.equal(r.code, 0);
    assert.equal(r.stderr, '');
    assert.equal(r.stdout.toString(), 'x');
  });

  it('--no-half-close sends no FIN when stdin ends; the connection ends when the server closes', async (t) => {
    let server: Socket | undefined;
    const srv = await startTestServer(LOOP, (s) => {
      server = s;
      s.once('data', () => s.write('seen\n'));
    }, t);
    const child = spawnCli(['connect', addr(srv.endpoint), '--no-half-close'], t, { keepStdin: true });
    child.child.stdin!.end('ping\n');
    await child.stdout.waitFor(/^seen$/);
    // A second round trip: anything our side sent before it (a FIN) has arrived by now.
    server!.write('again\n');
    await child.stdout.waitFor(/^again$/);
    assert.equal(server!.readableEnded, false, 'no FIN from the client');
    server!.end();
    const { code } = await child.waitExit();
    assert.equal(code, 0);
    await child.stderr.waitFor(/closed: sent 5 bytes, received 11 bytes, the peer closed first/);
  });

  it('exits 2 with ERR_CONN_REFUSED when nothing listens', async () => {
    const port = REFUSING_PORT;
    const r = await runCli(['connect', `127.0.0.1:${port}`]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /\(ERR_CONN_REFUSED\)\n$/);
  });

  it('a server that resets mid-stream: exit 2, ERR_CONN_RESET, with the bytes each way in the one line', async (t) => {
    const srv = await startTestServer(LOOP, (s) => {
      s.write('partial');
      s.once('data', () => s.resetAndDestroy());
    }, t);
    const child = spawnCli(['connect', addr(srv.endpoint)], t, { keepStdin: true });
    await child.stdout.waitFor(() => true).catch(() => undefined);
    child.child.stdin!.write('trigger\n');
    const { code } = await child.waitExit();
    assert.equal(code, 2);
    const line = await child.stderr.waitFor(/ERR_CONN_RESET/);
    assert.match(line, /sent \d+ bytes, received 7 bytes/);
  });

  it('--idle-timeout ends a silent connection with ERR_TIMEOUT', async (t) => {
    const srv = await startTestServer(LOOP, () => undefined, t);
    const child = spawnCli(['connect', addr(srv.endpoint), '--idle-timeout', '0.3'], t, { keepStdin: true });
    const { code } = await child.waitExit();
    assert.equal(code, 2);
    await child.stderr.waitFor(/ERR_TIMEOUT/);
  });

  it('a stdout nobody reads pauses the socket: the server cannot push more than the buffers in between', async (t) => {
    const TOTAL = 256 * 1024 * 1024;
    const chunk = Buffer.alloc(1024 * 1024, 7);
    let server: Socket | undefined;
    let offered = 0;
    const srv = await startTestServer(LOOP, (s) => {
      server = s;
      const more = (): void => {
        while (offered < TOTAL) {
          offered += chunk.length;
          if (!s.write(chunk)) return;
        }
        s.end();
      };
      s.on('drain', more);
      more();
    }, t);
    // stdout is a pipe we do not read until the server has stalled.
    const child = spawn(process.execPath, [BIN, 'connect', addr(srv.endpoint), '-q'], { stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    t.after(() => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // gone
      }
    });
    child.stdin.end();
    child.stdout.pause();
    await waitUntil(() => server !== undefined, 'the connection');
    // Stalled: the bytes the kernel took from the server stop growing for a while.
    const delivered = (): number => server!.bytesWritten - server!.writableLength;
    let last = -1;
    let still = 0;
    await waitUntil(() => {
      const d = delivered();
      still = d === last ? still + 1 : 0;
      last = d;
      return still >= 10;
    }, 'the server to stall', 20_000, 50);
    assert.ok(delivered() < 48 * 1024 * 1024, `server pushed ${delivered()} bytes into a client whose stdout is not read`);
    // Now read: every byte arrives and the client exits cleanly.
    let n = 0;
    child.stdout.on('data', (c: Buffer) => (n += c.length));
    child.stdout.resume();
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    assert.equal(code, 0);
    assert.equal(n, TOTAL);
  });
});

describe('relay: a peer that never reads', { timeout: 30_000 }, () => {
  it('bounded: reading stdin stops while the socket is full (writableLength stays under one chunk plus the high-water mark)', async (t) => {
    let held: Socket | undefined;
    const srv = await startTestServer(LOOP, (s) => {
      held = s;
      s.pause(); // never reads
    }, t);
    const socket = await connect(srv.endpoint);
    let produced = 0;
    const CHUNK = 64 * 1024;
    const LIMIT = 48 * 1024 * 1024;
    const input = new Readable({
      read() {
        // Asynchronous, as a pipe is: a relay that ignores backpressure fails the bound below, not the event loop.
        setImmediate(() => {
          produced += CHUNK;
          this.push(Buffer.alloc(CHUNK));
        });
      },
    });
    const out = new PassThrough();
    const ac = new AbortController();
    const running = relay(socket, { input, output: out, peer: 'test', signal: ac.signal });
    let last = -1;
    let still = 0;
    await waitUntil(() => {
      still = produced === last ? still + 1 : 0;
      last = produced;
      return still >= 10 || produced >= LIMIT;
    }, 'input to stop being read', 20_000, 50);
    // What left the process went into the kernel's socket buffers (a few MB on loopback), not our memory.
    assert.ok(produced < LIMIT, `read ${produced} bytes of input for a peer that reads nothing`);
    assert.ok(socket.writableLength <= socket.writableHighWaterMark + CHUNK, `socket buffered ${socket.writableLength}`);
    ac.abort();
    await assert.rejects(running, (e: unknown) => e instanceof RelayError && e.code === 'ERR_ABORTED');
    held?.destroy();
  });
});

describe('connect: interop with servers that are not ours', { timeout: 60_000 }, () => {
  const input = randomBytes(2 * 1024 * 1024 + 1);

  it('OpenBSD nc -l receives stdin byte for byte and sees our half-close', async (t) => {
    if (!requireTool(t, 'nc', 'netcat-openbsd')) return;
    const dir = tempDir(t);
    const port = await freePort();
    const nc = spawnProcess('sh', ['-c', `exec nc -l 127.0.0.1 ${port} > ${join(dir, 'out')} < /dev/null`], t);
    await waitForListeningOnce(port);
    const r = await runCli(['connect', `127.0.0.1:${port}`], { input });
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await nc.waitExit()).code, 0);
    const { readFile } = await import('node:fs/promises');
    assert.equal(sha(await readFile(join(dir, 'out'))), sha(input));
  });

  it('socat EXEC:sha256sum answers only after our FIN', async (t) => {
    if (!requireTool(t, 'socat', 'socat')) return;
    const port = await freePort();
    spawnProcess('socat', [`TCP-LISTEN:${port},bind=127.0.0.1,reuseaddr`, 'EXEC:sha256sum'], t);
    await waitForListeningOnce(port);
    const r = await runCli(['connect', `127.0.0.1:${port}`], { input });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.toString().split(' ')[0], sha(input));
  });

  it('ncat -l --recv-only takes stdin and exits on our half-close; ncat -l --send-only sends us a file', async (t) => {
    // (Not ncat --exec: before 7.96 it drops a program's output after the client's FIN, nmap/nmap#962.)
    if (!requireTool(t, 'ncat', 'ncat')) return;
    const dir = tempDir(t);
    const { readFile, writeFile } = await import('node:fs/promises');
    const port = await freePort();
    const rx = spawnProcess('sh', ['-c', `exec ncat -l 127.0.0.1 ${port} --recv-only > ${join(dir, 'out')}`], t);
    await waitForListeningOnce(port);
    const r = await runCli(['connect', `127.0.0.1:${port}`], { input });
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await rx.waitExit()).code, 0);
    assert.equal(sha(await readFile(join(dir, 'out'))), sha(input));
    await writeFile(join(dir, 'in'), input);
    const port2 = await freePort();
    spawnProcess('sh', ['-c', `exec ncat -l 127.0.0.1 ${port2} --send-only < ${join(dir, 'in')}`], t);
    await waitForListeningOnce(port2);
    const r2 = await runCli(['connect', `127.0.0.1:${port2}`], { timeoutMs: 20_000 });
    assert.equal(r2.code, 0, r2.stderr);
    assert.equal(sha(r2.stdout), sha(input));
  });

  it('a Python server that sends while reading (both directions at once, 2 MiB each way)', async (t) => {
    if (!requireTool(t, 'python3', 'python3')) return;
    const py = spawnProcess('python3', ['-c', PY_BOTH_WAYS], t);
    const port = Number(await py.stdout.waitFor(/^\d+$/));
    const r = await runCli(['connect', `127.0.0.1:${port}`], { input, timeoutMs: 20_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.length, 2 * 1024 * 1024);
    const report = await py.stdout.waitFor(/^got /);
    assert.equal(report, `got ${input.length} ${sha(input)}`);
  });
});

describe('connect: at a terminal', { timeout: 30_000 }, () => {
  it('a line typed gets its reply; Ctrl-D half-closes and the rest arrives; exit 0', async (t) => {
    if (!requireTool(t, 'script', 'util-linux')) return;
    const srv = await startTestServer(LOOP, (s) => {
      s.setEncoding('utf8');
      s.on('data', (line: string) => s.write(`> ${line.toUpperCase()}`));
      s.once('end', () => s.end('the rest\n'));
    }, t);
    const cmd = `${process.execPath} ${BIN} connect ${addr(srv.endpoint)}`;
    const pty = spawnProcess('script', ['-qefc', cmd, '/dev/null'], t, { keepStdin: true });
    await waitUntil(() => srv.accepted === 1, 'the connection', 10_000);
    pty.child.stdin!.write('hello\n');
    await pty.stdout.waitFor(/> HELLO/);
    pty.child.stdin!.write('\x04');
    await pty.stdout.waitFor(/the rest/);
    const { code } = await pty.waitExit();
    assert.equal(code, 0);
    assert.match(pty.stdout.text, /closed: sent 6 bytes, received 17 bytes/);
  });
});

/** A Python server: prints its port, sends 2 MiB while reading the client to its end, then reports. */
const PY_BOTH_WAYS = `
import socket, threading, hashlib
s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(1)
print(s.getsockname()[1], flush=True)
c, _ = s.accept()
def send():
    c.sendall(b'z' * (2 * 1024 * 1024)); c.shutdown(socket.SHUT_WR)
th = threading.Thread(target=send); th.start()
h = hashlib.sha256(); n = 0
while True:
    b = c.recv(65536)
    if not b: break
    h.update(b); n += len(b)
th.join()
print('got', n, h.hexdigest(), flush=True)
`;


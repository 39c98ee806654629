// Interoperability of the TCP echo with programs that are not ours, both ways:
// nc (netcat-openbsd, `nc -N`) and a plain Python socket client against our server, and our
// client (the real binary) against `socat ... EXEC:cat` and `ncat -l --keep-open --exec /bin/cat`.
// Over 127.0.0.1, ::1 and a Unix socket where the tool supports it. A test whose tool is
// missing is skipped with a message saying so, or fails under SOCKETKIT_REQUIRE_TOOLS=1 (CI
// installs them and sets it: .ci/run). Every case is bounded (CASE_MS) and every program is
// killed with its children (its process group) when the case ends.
//
// ncat gets a smaller payload, on purpose. `ncat -l --keep-open --exec /bin/cat` (7.93 here)
// relays between the socket and cat's pipes in one process with blocking writes: it reads the
// socket and writes to cat's stdin, and reads cat's stdout only when that write returns. When the
// client sends faster than ncat drains cat's output, cat blocks writing its stdout (the pipe to
// ncat is full), stops reading its stdin, that pipe fills, and ncat blocks for ever in write()
// to it: a deadlock inside ncat, whatever the client does (plain `nc` with 5 MB hangs the same
// way; seen with strace: ncat in write(cat stdin), cat in write(stdout)). It shows in about half
// the runs with the other core busy, and the hung ncat used to outlive the test with its cat. A
// payload below one pipe buffer (64 KiB on Linux) can always be absorbed by cat's stdin pipe, so
// ncat's write never blocks and it always comes back to read the echo: the test still proves
// that our client streams many chunks to ncat, half-closes correctly (the nmap/nmap#962
// work-around) and checks the echo byte for byte. The 1 MiB payload is kept for every server
// without that fault.
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { startEchoServer, type EchoServer } from '../src/echo/server.js';
import { formatEndpoint, type Endpoint } from '../src/net/endpoint.js';
import { requireTool, run, runCli, spawnProcess } from './helpers/cli.js';
import { freePort, hasIPv6, waitForListening } from './helpers/net.js';
import { tempDir, type CleanupContext } from './helpers/tmp.js';

const PAYLOAD = randomBytes(1024 * 1024 + 3);
/** For ncat: below one Linux pipe buffer, so ncat's --exec relay cannot deadlock (see above). */
const NCAT_PAYLOAD = PAYLOAD.subarray(0, 60 * 1024 + 3);
/** Every case's bound; each program run inside it is bounded by less. */
const CASE_MS = 30_000;

let ipv6 = false;
before(async () => {
  ipv6 = await hasIPv6();
});

type Family = 'IPv4' | 'IPv6' | 'Unix';
const FAMILIES: readonly Family[] = ['IPv4', 'IPv6', 'Unix'];

/** An endpoint of the family to listen on (port 0, or a fresh Unix path), or undefined to skip. */
function listenOn(t: CleanupContext, family: Family): Endpoint | undefined {
  if (family === 'IPv4') return { kind: 'inet', host: '127.0.0.1', port: 0 };
  if (family === 'IPv6') return ipv6 ? { kind: 'inet', host: '::1', port: 0 } : undefined;
  return { kind: 'unix', path: join(tempDir(t), 'e.sock') };
}

async function ourServer(t: CleanupContext, ep: Endpoint): Promise<EchoServer> {
  const server = await startEchoServer(ep);
  t.after(() => server.close());
  return server;
}

/** True when `nc` is netcat-openbsd (it has -N, shut down the sending side on end of input). */
function isOpenBsdNc(): boolean {
  const r = spawnSync('nc', ['-h'], { encoding: 'utf8' });
  return /-N\b/.test(`${r.stdout}${r.stderr}`);
}

// A plain blocking-socket client: send everything (in a thread, so a large payload cannot
// deadlock against the echo), shut down the sending side, read to EOF, print what came back.
const PYTHON_CLIENT = `
import socket, sys, threading
kind, where = sys.argv[1], sys.argv[2:]
if kind == 'unix':
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.connect(where[0])
else:
    s = socket.socket(socket.AF_INET6 if kind == 'inet6' else socket.AF_INET, socket.SOCK_STREAM)
    s.connect((where[0], int(where[1])))
data = sys.stdin.buffer.read()
def send():
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
w = threading.Thread(target=send); w.start()
out = bytearray()
while True:
    b = s.recv(65536)
    if not b: break
    out += b
w.join()
sys.stdout.buffer.write(out)
`;

describe('other clients against our echo server', () => {
  for (const family of FAMILIES) {
    it(`nc -N over ${family} gets the 1 MiB payload back intact`, { timeout: CASE_MS }, async (t) => {
      if (!requireTool(t, 'nc', 'netcat-openbsd')) return;
      if (!isOpenBsdNc()) return t.skip('nc is not netcat-openbsd (no -N); CI installs netcat-openbsd');
      const ep = listenOn(t, family);
      if (!ep) return t.skip('no IPv6 loopback on this machine');
      const server = await ourServer(t, ep);
      const bound = server.endpoint;
      const args = bound.kind === 'unix' ? ['-N', '-U', bound.path] : ['-N', bound.host, String(bound.port)];
      const r = await run('nc', args, { input: PAYLOAD, timeoutMs: 15_000 });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.length, PAYLOAD.length);
      assert.ok(r.stdout.equals(PAYLOAD), 'nc got back exactly what it sent');
    });

    it(`a plain Python socket client over ${family} gets the 1 MiB payload back intact`, { timeout: CASE_MS }, async (t) => {
      if (!requireTool(t, 'python3', 'python3')) return;
      const ep = listenOn(t, family);
      if (!ep) return t.skip('no IPv6 loopback on this machine');
      const server = await ourServer(t, ep);
      const bound = server.endpoint;
      const where = bound.kind === 'unix' ? ['unix', bound.path] : [family === 'IPv6' ? 'inet6' : 'inet', bound.host, String(bound.port)];
      const r = await run('python3', ['-c', PYTHON_CLIENT, ...where], { input: PAYLOAD, timeoutMs: 15_000 });
      assert.equal(r.code, 0, r.stderr);
      assert.ok(r.stdout.equals(PAYLOAD), 'python got back exactly what it sent');
    });
  }
});

describe('our client against other echo servers', () => {
  /** Runs `socketkit echo ADDR` with the payload on stdin and checks the result (and --json once). */
  async function ourClient(address: string, family: Family, payload: Buffer = PAYLOAD): Promise<void> {
    const r = await runCli(['echo', address], { input: payload, timeoutMs: 12_000 });
    assert.equal(r.timedOut, false, `socketkit echo ${address} did not finish within 12 s; stderr: ${r.stderr}`);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.length, payload.length);
    assert.ok(r.stdout.equals(payload), 'our client printed exactly what it sent');
    if (family !== 'IPv4') return;
    const j = await runCli(['echo', address, 'Hola mundo', '--json'], { timeoutMs: 12_000 });
    assert.equal(j.timedOut, false, `socketkit echo --json ${address} did not finish within 12 s`);
    assert.equal(j.code, 0, j.stderr);
    const result = JSON.parse(j.stdout.toString()) as { match: boolean; bytesReceived: number };
    assert.deepEqual([result.match, result.bytesReceived], [true, 10]);
  }

  for (const family of FAMILIES) {
    it(`socat ...,fork EXEC:cat over ${family}`, { timeout: CASE_MS }, async (t) => {
      if (!requireTool(t, 'socat', 'socat')) return;
      const ep = listenOn(t, family);
      if (!ep) return t.skip('no IPv6 loopback on this machine');
      let target: Endpoint;
      let listenArg: string;
      if (ep.kind === 'unix') {
        target = ep;
        listenArg = `UNIX-LISTEN:${ep.path},fork`;
      } else {
        target = { kind: 'inet', host: ep.host, port: await freePort(ep.host) };
        listenArg = family === 'IPv6' ? `TCP6-LISTEN:${target.port},bind=[::1],reuseaddr,fork` : `TCP4-LISTEN:${target.port},bind=127.0.0.1,reuseaddr,fork`;
      }
      const socat = spawnProcess('socat', [listenArg, 'EXEC:cat'], t);
      await waitForListening(target);
      await ourClient(formatEndpoint(target), family);
      socat.kill();
    });
  }

  for (const family of FAMILIES) {
    it(`ncat -l --keep-open --exec /bin/cat over ${family}`, { timeout: CASE_MS }, async (t) => {
      if (!requireTool(t, 'ncat', 'ncat')) return;
      const ep = listenOn(t, family);
      if (!ep) return t.skip('no IPv6 loopback on this machine');
      let target: Endpoint;
      let args: string[];
      if (ep.kind === 'unix') {
        target = ep;
        args = ['-l', '-U', '--keep-open', '--exec', '/bin/cat', ep.path];
      } else {
        target = { kind: 'inet', host: ep.host, port: await freePort(ep.host) };
        args = ['-l', '--keep-open', '--exec', '/bin/cat', ep.host, String(target.port)];
      }
      const ncat = spawnProcess('ncat', args, t);
      await waitForListening(target);
      await ourClient(formatEndpoint(target), family, NCAT_PAYLOAD);
      ncat.kill();
    });
  }
});

// Tests of `socketkit echo-server` and `socketkit echo` as a user runs them: the real binary
// (graceful SIGINT/SIGTERM with totals, --json NDJSON, binary stdin, Ctrl-C, a closed output
// pipe, permission denied) and, where a process adds nothing, main() in-process (every failure
// is one line `socketkit: <message> (<CODE>)` with the right exit status). Codes, not messages.
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { parseEndpoint, formatEndpoint, type Endpoint } from '../src/net/endpoint.js';
import { startEchoServer } from '../src/echo/server.js';
import { BIN, runCli, runMain, spawnCli, type Spawned } from './helpers/cli.js';
import { freePort, hasIPv6, rawConnect, readAll, refusedSoon, startTestServer, unansweredEndpoint } from './helpers/net.js';
import { tempDir, type CleanupContext } from './helpers/tmp.js';

const v4: Endpoint = { kind: 'inet', host: '127.0.0.1', port: 0 };

let ipv6 = false;
before(async () => {
  ipv6 = await hasIPv6();
});

/** The one-line error convention; returns the code. */
function errorCode(stderr: string): string {
  const lines = stderr.split('\n').filter((l) => l !== '');
  assert.equal(lines.length, 1, `expected exactly one line on stderr, got:\n${stderr}`);
  const m = /^socketkit: .+ \((ERR_[A-Z_]+)\)$/.exec(lines[0]!);
  assert.ok(m, `not 'socketkit: <message> (<CODE>)': ${lines[0]}`);
  return m[1]!;
}

/** Starts `socketkit echo-server ADDR ...` and waits until it is listening; returns where. */
async function startServerCli(t: CleanupContext, args: readonly string[], json = false): Promise<{ proc: Spawned; endpoint: Endpoint }> {
  const proc = spawnCli(['echo-server', ...args], t);
  let address: string;
  if (json) {
    const line = await proc.stdout.waitFor((l) => l.includes('"listening"'));
    address = (JSON.parse(line) as { address: string }).address;
  } else {
    address = /listening on (\S+)$/.exec(await proc.stderr.waitFor(/listening on /))![1]!;
  }
  return { proc, endpoint: parseEndpoint(address, { defaultHost: '127.0.0.1' }) };
}

describe('echo-server and echo, the real binary', () => {
  it('on SIGTERM stops accepting, lets a live client finish within --grace, prints totals, exits 143', async (t) => {
    const { proc, endpoint } = await startServerCli(t, ['127.0.0.1:0', '--grace', '20']);
    const client = await rawConnect(endpoint);
    t.after(() => client.destroy());
    const reply = readAll(client);
    client.write('before the signal, ');
    await proc.stderr.waitFor(/connected/);
    proc.kill('SIGTERM');
    await proc.stderr.waitFor(/stopping: 1 connection/);
    // Closed to newcomers (the line may be printed just before the listening socket closes),
    // still serving the live client.
    await refusedSoon(endpoint);
    client.end('after it');
    assert.equal((await reply).toString(), 'before the signal, after it');
    const exit = await proc.waitExit();
    assert.deepEqual(exit, { code: 143, signal: null });
    assert.match(proc.stdout.text, /stopped: 1 connection\(s\), 0 refused\b.*\bin 27 B, out 27 B/);
    assert.doesNotMatch(proc.stderr.text, /\n\s+at /);
  });

  it('on SIGINT closes a client still open when the grace period ends, with --json NDJSON events', async (t) => {
    const { proc, endpoint } = await startServerCli(t, ['127.0.0.1:0', '--json', '--grace', '0.2'], true);
    const client = await rawConnect(endpoint);
    t.after(() => client.destroy());
    client.on('error', () => undefined);
    client.resume(); // read, so that the server's close is seen
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    client.write('idle after this');
    await proc.stdout.waitFor((l) => l.includes('"connect"'));
    proc.kill('SIGINT');
    await closed;
    assert.deepEqual(await proc.waitExit(), { code: 130, signal: null });
    const events = proc.stdout.lines.filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>);
    for (const e of events) {
      assert.equal(typeof e['event'], 'string');
      assert.equal(typeof e['ts'], 'string');
    }
    // Other events (periodic stats) may come in between; these four come in this order.
    const names = events.map((e) => e['event']);
    const order = ['listening', 'connect', 'disconnect', 'stopped'].map((n) => names.indexOf(n));
    assert.ok(order.every((i, k) => i >= 0 && (k === 0 || i > order[k - 1]!)), `events out of order: ${names.join(', ')}`);
    assert.equal(names[0], 'listening');
    const [connect, disconnect, stopped] = order.slice(1).map((i) => events[i]);
    assert.equal(connect!['id'], 1);
    assert.equal(disconnect!['bytesIn'], 15);
    assert.equal(stopped!['accepted'], 1);
    assert.equal(stopped!['bytesIn'], 15);
    assert.equal(proc.stderr.text, '', 'nothing on stderr in JSON mode');
  });

  it('echoes binary stdin over a Unix socket byte for byte, and reports --json figures', async (t) => {
    const path = join(tempDir(t), 'e.sock');
    await startServerCli(t, [`unix:${path}`]);
    const input = randomBytes(3 * 1024 * 1024 + 5);
    const r = await runCli(['echo', `unix:${path}`], { input });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.stdout.equals(input), 'stdout is exactly stdin');
    assert.match(r.stderr, /echoed 3\.00 MiB intact/);
    const j = await runCli(['echo', `unix:${path}`, 'Hola mundo', '--json']);
    assert.equal(j.code, 0, j.stderr);
    const lines = j.stdout.toString().trim().split('\n');
    assert.equal(lines.length, 1);
    const result = JSON.parse(lines[0]!) as Record<string, unknown>;
    assert.equal(result['event'], 'echo');
    assert.equal(result['match'], true);
    assert.equal(result['bytesSent'], 10);
    assert.equal(result['bytesReceived'], 10);
    for (const k of ['connectMs', 'firstByteMs', 'totalMs']) assert.equal(typeof result[k], 'number', k);
    assert.equal(j.stderr, '');
  });

  it('leaves no Unix socket file behind, even when it exits abruptly (its output pipe closed)', async (t) => {
    const path = join(tempDir(t), 'bye.sock');
    const { proc } = await startServerCli(t, [`unix:${path}`, '--json'], true);
    assert.equal(existsSync(path), true);
    // As `socketkit echo-server --json | head -1`: the reader goes away; the next event kills it.
    proc.child.stdout!.destroy();
    const client = await rawConnect({ kind: 'unix', path });
    t.after(() => client.destroy());
    client.on('error', () => undefined);
    assert.deepEqual(await proc.waitExit(), { code: 141, signal: null });
    assert.equal(existsSync(path), false, 'the socket file was removed');
  });

  it('works over ::1', async (t) => {
    if (!ipv6) return t.skip('no IPv6 loopback on this machine');
    const { endpoint } = await startServerCli(t, ['[::1]:0']);
    const r = await runCli(['echo', formatEndpoint(endpoint), 'over IPv6']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.toString(), 'over IPv6');
  });

  it('reports a refused connection in one line with exit 2, no stack trace', async () => {
    const r = await runCli(['echo', `127.0.0.1:${await freePort()}`, 'x']);
    assert.equal(r.code, 2);
    assert.equal(errorCode(r.stderr), 'ERR_CONN_REFUSED');
    assert.equal(r.stdout.length, 0);
  });

  it('stops on the first Ctrl-C while waiting for input: one line, exit 130', async (t) => {
    const server = await startEchoServer(v4);
    t.after(() => server.close());
    const proc = spawnCli(['echo', formatEndpoint(server.endpoint)], t, { keepStdin: true });
    proc.child.stdin!.write('typed line\n');
    await proc.stdout.waitFor(/typed line/);
    proc.kill('SIGINT');
    assert.deepEqual(await proc.waitExit(), { code: 130, signal: null });
    assert.equal(errorCode(proc.stderr.text), 'ERR_ABORTED');
  });

  it('exits quietly when its output pipe closes (like SIGPIPE), without a stack trace', async (t) => {
    const server = await startEchoServer(v4);
    t.after(() => server.close());
    const child = spawn(process.execPath, [BIN, 'echo', formatEndpoint(server.endpoint)], { stdio: ['pipe', 'pipe', 'pipe'] });
    t.after(() => child.kill('SIGKILL'));
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.stdin.on('error', () => undefined);
    // Read one chunk of the echo, then close our end of its stdout, as `| head -c 10` does.
    child.stdout.once('data', () => child.stdout.destroy());
    const big = randomBytes(8 * 1024 * 1024);
    child.stdin.end(big);
    const code = await new Promise<number | null>((resolve) => child.once('close', (c) => resolve(c)));
    assert.equal(code, 141, stderr);
    assert.equal(stderr, '');
  });

  it('reports permission denied as ERR_PERMISSION (a Unix socket in a directory it cannot write)', async (t) => {
    // Root may write anywhere, so as root the server runs as `nobody`.
    const root = process.getuid?.() === 0;
    const dir = tempDir(t);
    chmodSync(dir, 0o755);
    const locked = join(dir, 'locked');
    mkdirSync(locked, { mode: 0o555 });
    chmodSync(locked, 0o555);
    let r;
    try {
      r = await runCli(['echo-server', `unix:${join(locked, 'e.sock')}`], {
        timeoutMs: 10_000,
        cwd: '/',
        ...(root ? { uid: 65534, gid: 65534 } : {}),
      });
    } catch (err) {
      return t.skip(`cannot run as an unprivileged user here: ${(err as Error).message}`);
    }
    if (root && /EACCES|permission denied/i.test(r.stderr) && r.code !== 2) {
      return t.skip(`nobody cannot run node from here: ${r.stderr.split('\n')[0]}`);
    }
    assert.equal(r.code, 2, r.stderr);
    assert.equal(errorCode(r.stderr), 'ERR_PERMISSION');
  });
});

describe('every failure is one line and a stable code (in-process)', () => {
  it('port in use: ERR_ADDR_IN_USE, exit 2', async (t) => {
    const server = await startEchoServer(v4);
    t.after(() => server.close());
    const r = await runMain(['echo-server', formatEndpoint(server.endpoint)]);
    assert.equal(r.code, 2);
    assert.equal(errorCode(r.stderr), 'ERR_ADDR_IN_USE');
  });

  it('unknown host: ERR_UNKNOWN_HOST, exit 2 (client and server)', async () => {
    for (const argv of [['echo', 'no-such-host.invalid:9', 'x'], ['echo-server', 'no-such-host.invalid:0']]) {
      const r = await runMain(argv);
      assert.equal(r.code, 2, argv.join(' '));
      assert.equal(errorCode(r.stderr), 'ERR_UNKNOWN_HOST');
    }
  });

  it('malformed address: ERR_BAD_ADDRESS, exit 2', async () => {
    const r = await runMain(['echo', '1.2.3.4:99999', 'x']);
    assert.equal(r.code, 2);
    assert.equal(errorCode(r.stderr), 'ERR_BAD_ADDRESS');
  });

  it('a server that never echoes: ERR_TIMEOUT after --timeout, exit 2', async (t) => {
    const srv = await startTestServer(v4, (s) => s.resume(), t);
    const r = await runMain(['echo', formatEndpoint(srv.endpoint), 'anyone?', '--timeout', '0.3']);
    assert.equal(r.code, 2);
    assert.equal(errorCode(r.stderr), 'ERR_TIMEOUT');
  });

  it('a connect that gets no answer: ERR_TIMEOUT after --timeout, exit 2', async (t) => {
    const ep = await unansweredEndpoint(t);
    if (!ep) return t.skip('needs python3 and a kernel that drops SYNs to a full accept queue');
    const r = await runMain(['echo', formatEndpoint(ep), 'anyone?', '--timeout', '0.3']);
    assert.equal(r.code, 2);
    assert.equal(errorCode(r.stderr), 'ERR_TIMEOUT');
  });

  it('a different echo: ERR_ECHO_MISMATCH, exit 1', async (t) => {
    const srv = await startTestServer(
      v4,
      (s) => {
        s.on('data', (c: Buffer) => s.write(c.reverse()));
        s.on('end', () => s.end());
      },
      t,
    );
    const r = await runMain(['echo', formatEndpoint(srv.endpoint), 'abc', '--json']);
    assert.equal(r.code, 1);
    assert.equal(errorCode(r.stderr), 'ERR_ECHO_MISMATCH');
  });

  it('a short echo: ERR_ECHO_MISMATCH, exit 1', async (t) => {
    const srv = await startTestServer(
      v4,
      (s) => {
        s.once('data', (c: Buffer) => s.write(c.subarray(0, 2)));
        s.on('end', () => s.end());
      },
      t,
    );
    const r = await runMain(['echo', formatEndpoint(srv.endpoint), 'abcdef']);
    assert.equal(r.code, 1);
    assert.equal(errorCode(r.stderr), 'ERR_ECHO_MISMATCH');
  });

  it('-q prints no messages on success, but the echo still goes to stdout', async (t) => {
    const server = await startEchoServer(v4);
    t.after(() => server.close());
    const quiet = await runMain(['echo', formatEndpoint(server.endpoint), 'shh', '-q']);
    assert.deepEqual([quiet.code, quiet.stdout.toString(), quiet.stderr], [0, 'shh', '']);
    const loud = await runMain(['echo', formatEndpoint(server.endpoint), 'hello']);
    assert.equal(loud.code, 0);
    assert.equal(loud.stdout.toString(), 'hello');
  });

  it('listens on 127.0.0.1:9800 when given no address (every interface only when asked)', async (t) => {
    const ac = new AbortController();
    const running = runMain(['echo-server', '--json'], { shutdown: ac.signal });
    ac.abort();
    const r = await running;
    if (r.code === 2 && r.stderr.includes('(ERR_ADDR_IN_USE)')) return t.skip('port 9800 is in use on this machine');
    assert.equal(r.code, 0, r.stderr);
    const first = JSON.parse(r.stdout.toString().split('\n')[0]!) as { event: string; address: string };
    assert.deepEqual([first.event, first.address], ['listening', '127.0.0.1:9800']);
  });

  it('the server stops on the shutdown signal and prints totals (in-process)', async () => {
    const ac = new AbortController();
    const running = runMain(['echo-server', '127.0.0.1:0', '--json'], { shutdown: ac.signal });
    ac.abort(); // honoured whenever it comes, even before the server has bound

    const r = await running;
    assert.equal(r.code, 0, r.stderr);
    const events = r.stdout.toString().trim().split('\n').map((l) => (JSON.parse(l) as { event: string }).event);
    assert.equal(events[0], 'listening');
    assert.equal(events.at(-1), 'stopped');
  });
});

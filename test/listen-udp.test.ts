// `connect --udp` and `listen --udp`: each other, a Python UDP server, nc -u and socat; a
// refused destination. Loopback only (broadcast and multicast: listen-udp-netns.test.ts).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { requireTool, run, runCli, spawnCli, spawnProcess } from './helpers/cli.js';
import { REFUSING_PORT, freePort } from './helpers/net.js';

describe('UDP: connect --udp and listen --udp', { timeout: 60_000 }, () => {
  it('listen prints each datagram with its sender under --label and answers with stdin; connect prints the reply', async (t) => {
    const l = spawnCli(['listen', '--udp', '127.0.0.1:0', '--label', '--timeout', '5'], t, { keepStdin: true });
    const port = Number(/:(\d+)$/.exec(await l.stderr.waitFor(/^listening on udp /))![1]);
    l.child.stdin!.end('pong\n');
    const c = await runCli(['connect', '--udp', `127.0.0.1:${port}`, '--timeout', '2'], { input: 'ping\n' });
    assert.equal(c.code, 0, c.stderr);
    assert.equal(c.stdout.toString(), 'pong\n');
    assert.match(c.stderr, /sent 1 datagram\(s\) \/ 5 bytes, received 1 \/ 5 bytes/);
    const line = await l.stdout.waitFor(/ ping$/);
    assert.match(line, /^\[127\.0\.0\.1:\d+\] ping$/);
    l.kill('SIGINT');
    assert.equal((await l.waitExit()).code, 130, 'SIGINT: 128 + 2');
  });

  it('a Python UDP server answers every datagram; replies are printed as they come (binary)', async (t) => {
    if (!requireTool(t, 'python3', 'python3')) return;
    const py = spawnProcess('python3', ['-c', PY_UDP_UPPER], t);
    const port = Number(await py.stdout.waitFor(/^\d+$/));
    const c = await runCli(['connect', '--udp', `127.0.0.1:${port}`, '--timeout', '1'], { input: Buffer.from('abc\u0000\u00ff') });
    assert.equal(c.code, 0, c.stderr);
    assert.deepEqual(c.stdout, Buffer.from('ABC\u0000\u00ff'));
  });

  it('nc -u -l receives our datagram, socat answers one', async (t) => {
    if (!requireTool(t, 'nc', 'netcat-openbsd') || !requireTool(t, 'socat', 'socat')) return;
    const port = await freePort();
    const nc = spawnProcess('nc', ['-u', '-l', '127.0.0.1', String(port)], t);
    // nc -u -l binds at once; a datagram sent before that is lost, so send until it shows.
    for (let i = 0; i < 50 && !nc.stdout.lines.includes('to-nc'); i++) {
      await runCli(['connect', '--udp', `127.0.0.1:${port}`, '--timeout', '0.1', '-q'], { input: 'to-nc\n' });
    }
    await nc.stdout.waitFor(/^to-nc$/);
    nc.kill('SIGKILL');
    const port2 = await freePort();
    spawnProcess('socat', [`UDP-RECVFROM:${port2},bind=127.0.0.1,fork`, 'SYSTEM:tr a-z A-Z'], t);
    let out = '';
    for (let i = 0; i < 50 && out === ''; i++) {
      out = (await runCli(['connect', '--udp', `127.0.0.1:${port2}`, '--timeout', '0.3', '-q'], { input: 'socat\n' })).stdout.toString();
    }
    assert.equal(out, 'SOCAT\n');
  });

  it('nothing listening: ERR_CONN_REFUSED (ICMP port unreachable), exit 2', async () => {
    const port = REFUSING_PORT;
    const c = await run(process.execPath, [(await import('./helpers/cli.js')).BIN, 'connect', '--udp', `127.0.0.1:${port}`, '--timeout', '1'], { input: 'x' });
    assert.equal(c.code, 2);
    assert.match(c.stderr, /\(ERR_CONN_REFUSED\)\n$/);
  });

  it('TLS options and --exec are refused with --udp (ERR_USAGE)', async () => {
    const a = await runCli(['connect', '--udp', '127.0.0.1:9', '--tls']);
    assert.equal(a.code, 2);
    assert.match(a.stderr, /ERR_USAGE/);
    const b = await runCli(['listen', '--udp', '127.0.0.1:0', '--exec', 'cat']);
    assert.equal(b.code, 2);
    assert.match(b.stderr, /ERR_USAGE/);
  });
});

/** A UDP server on an ephemeral port: prints it, answers each datagram upper-cased. */
const PY_UDP_UPPER = `
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('127.0.0.1', 0))
print(s.getsockname()[1], flush=True)
while True:
    d, a = s.recvfrom(65535)
    s.sendto(d.upper(), a)
`;

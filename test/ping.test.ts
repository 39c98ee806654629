// Tests of ping over UDP and TCP on real loopback sockets: against our echo, against echoes
// that drop, duplicate, reorder, delay, cut and chatter, against a Python recvfrom/sendto loop
// and socat, and through the CLI. Intervals are a few milliseconds and counts small, so every
// run ends in well under a second; no assertion depends on how fast the machine is.
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type RemoteInfo } from 'node:dgram';
import { createServer, type Socket } from 'node:net';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PROBE_HEADER_SIZE, ping, startUdpEchoServer, udpEcho, type PingEvent } from '../src/udp/index.js';
import { startEchoServer } from '../src/echo/server.js';
import type { InetEndpoint } from '../src/net/endpoint.js';
import { main } from '../src/cli/main.js';
import { captureIO, ndjson, requireTool } from './helpers/cli.js';
import { hasIPv6 } from './helpers/net.js';

// ---- helpers -------------------------------------------------------------------------------

const V4: InetEndpoint = { kind: 'inet', host: '127.0.0.1', port: 0 };
/** Short enough to keep runs fast, long enough that a loaded machine does not lose replies. */
const FAST = { intervalMs: 5, timeoutMs: 1000 } as const;

/** The sequence number inside a probe (for echoes that misbehave per probe). */
const seqOf = (m: Buffer): number => (m.length >= PROBE_HEADER_SIZE ? m.readUInt32BE(8) : -1);

/**
 * A UDP "echo" whose replies are decided per datagram: `reply` returns what to send back and
 * after how many ms (an empty list drops the datagram).
 */
async function startOddEcho(
  reply: (msg: Buffer, n: number) => { data: Buffer; delayMs?: number }[],
  host = '127.0.0.1',
): Promise<{ ep: InetEndpoint; close: () => Promise<void> }> {
  const s = createSocket(host.includes(':') ? 'udp6' : 'udp4');
  const timers = new Set<NodeJS.Timeout>();
  let n = 0;
  s.on('message', (msg: Buffer, r: RemoteInfo) => {
    for (const { data, delayMs } of reply(msg, n++)) {
      if (!delayMs) s.send(data, r.port, r.address);
      else {
        const t = setTimeout(() => {
          timers.delete(t);
          s.send(data, r.port, r.address);
        }, delayMs);
        timers.add(t);
      }
    }
  });
  await new Promise<void>((resolve) => s.bind(0, host, () => resolve()));
  return {
    ep: { kind: 'inet', host, port: s.address().port },
    close: () => {
      for (const t of timers) clearTimeout(t);
      return new Promise<void>((r) => s.close(() => r()));
    },
  };
}

/** Starts a child that prints `listening on <port>` and returns the port. */
async function startChild(cmd: string, args: string[]): Promise<{ port: number; child: ChildProcess; stop: () => Promise<void> }> {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const stop = (): Promise<void> =>
    new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
    });
  const port = await new Promise<number>((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => reject(new Error(`${cmd} did not report its port`)), 10_000);
    child.stdout.on('data', (c: Buffer) => {
      text += c.toString();
      const m = /listening on (\d+)/.exec(text);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    child.once('exit', () => reject(new Error(`${cmd} exited early`)));
  }).catch(async (err: unknown) => {
    await stop();
    throw err;
  });
  return { port, child, stop };
}

/** The "ten-line Python recvfrom/sendto loop" of the reference programs, with buffer size `bufsize`. */
const pythonEcho = (bufsize: number): string[] => [
  '-c',
  [
    'import socket, sys',
    's = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)',
    "s.bind(('127.0.0.1', 0))",
    "print('listening on', s.getsockname()[1], flush=True)",
    'while True:',
    `    data, addr = s.recvfrom(${bufsize})`,
    '    s.sendto(data, addr)',
  ].join('\n'),
];



// ---- UDP -----------------------------------------------------------------------------------

describe('ping over UDP', () => {
  it('gets every reply from our echo server, with RTT percentiles', async (t) => {
    const server = await startUdpEchoServer(V4);
    t.after(() => server.close());
    const events: PingEvent[] = [];
    const s = await ping(server.endpoint, { ...FAST, count: 20, onEvent: (e) => events.push(e) });
    assert.equal(s.sent, 20);
    assert.equal(s.received, 20);
    assert.equal(s.lossPercent, 0);
    assert.equal(s.duplicates + s.late + s.truncated + s.corrupt + s.foreign, 0);
    assert.equal(s.rtt.count, 20);
    assert.ok(s.rtt.min <= s.rtt.p50 && s.rtt.p50 <= s.rtt.p90 && s.rtt.p90 <= s.rtt.p99 && s.rtt.p99 <= s.rtt.p999 && s.rtt.p999 <= s.rtt.max);
    assert.deepEqual(
      events.filter((e) => e.event === 'reply').map((e) => (e.event === 'reply' ? e.seq : -1)).sort((a, b) => a - b),
      Array.from({ length: 20 }, (_, i) => i),
    );
    assert.equal(server.stats.datagramsIn, 20);
  });

  it('reports about 50% loss from an echo that drops every other datagram, and does not hang', async (t) => {
    const echo = await startOddEcho((m, n) => (n % 2 === 1 ? [] : [{ data: m }]));
    t.after(echo.close);
    const timeouts: number[] = [];
    const s = await ping(echo.ep, { count: 20, intervalMs: 5, timeoutMs: 400, onEvent: (e) => e.event === 'timeout' && timeouts.push(e.seq) });
    assert.equal(s.sent, 20);
    assert.equal(s.received, 10);
    assert.equal(s.lossPercent, 50);
    assert.deepEqual(timeouts, [1, 3, 5, 7, 9, 11, 13, 15, 17, 19]);
  });

  it('counts duplicates', async (t) => {
    const echo = await startOddEcho((m) => [{ data: m }, { data: m }]);
    t.after(echo.close);
    const s = await ping(echo.ep, { ...FAST, count: 10 });
    assert.equal(s.received, 10);
    // The run may end before the last copy arrives; every other probe's copy is counted.
    assert.ok(s.duplicates >= 9 && s.duplicates <= 10, `duplicates ${s.duplicates}`);
    assert.equal(s.lossPercent, 0);
  });

  it('recognises reordered replies', async (t) => {
    // Holds each even probe until the next one has been answered: replies come back 1,0,3,2,...
    let held: Buffer | undefined;
    const echo = await startOddEcho((m) => {
      if (seqOf(m) % 2 === 0) {
        held = m;
        return [];
      }
      const out = [{ data: m }, ...(held ? [{ data: held }] : [])];
      held = undefined;
      return out;
    });
    t.after(echo.close);
    const s = await ping(echo.ep, { ...FAST, count: 10 });
    assert.equal(s.received, 10);
    assert.equal(s.reordered, 5);
    assert.equal(s.lossPercent, 0);
  });

  it('counts a reply after its timeout as late, not received', async (t) => {
    const echo = await startOddEcho((m) => [{ data: m, delayMs: seqOf(m) === 0 ? 300 : 0 }]);
    t.after(echo.close);
    const events: PingEvent[] = [];
    // 40 probes 20 ms apart: the run outlasts probe 0's late reply by a wide margin.
    const s = await ping(echo.ep, { count: 40, intervalMs: 20, timeoutMs: 100, onEvent: (e) => events.push(e) });
    assert.ok(s.late >= 1);
    assert.ok(s.received <= 39);
    assert.ok(events.some((e) => e.event === 'timeout' && e.seq === 0));
    assert.ok(events.some((e) => e.event === 'reply' && e.seq === 0 && e.status === 'late'));
  });

  it('reports truncated and corrupt replies, and ignores foreign datagrams', async (t) => {
    const cut = await startOddEcho((m) => [{ data: m.subarray(0, 40) }]);
    t.after(cut.close);
    const a = await ping(cut.ep, { ...FAST, count: 5, size: 100 });
    assert.equal(a.truncated, 5);
    const flip = await startOddEcho((m) => [{ data: Buffer.from(m).fill(0, 60, 61) }]);
    t.after(flip.close);
    const b = await ping(flip.ep, { ...FAST, count: 5, size: 100 });
    assert.equal(b.corrupt, 5);
    const chatty = await startOddEcho((m) => [{ data: Buffer.from('hello, not a probe') }, { data: m }]);
    t.after(chatty.close);
    const c = await ping(chatty.ep, { ...FAST, count: 5 });
    assert.equal(c.foreign, 5);
    assert.equal(c.received, 5);
  });

  it('ping-pong (interval 0) runs probes back to back', async (t) => {
    const server = await startUdpEchoServer(V4);
    t.after(() => server.close());
    const s = await ping(server.endpoint, { count: 500, intervalMs: 0, timeoutMs: 1000 });
    assert.equal(s.received, 500);
    assert.equal(s.reordered, 0);
  });

  it('ping-pong moves on after a lost probe', async (t) => {
    const echo = await startOddEcho((m, n) => (n % 3 === 2 ? [] : [{ data: m }]));
    t.after(echo.close);
    const s = await ping(echo.ep, { count: 9, intervalMs: 0, timeoutMs: 150 });
    assert.equal(s.sent, 9);
    assert.equal(s.received, 6);
  });

  it('counts ICMP port unreachable', async () => {
    const s0 = createSocket('udp4');
    await new Promise<void>((r) => s0.bind(0, '127.0.0.1', () => r()));
    const port = s0.address().port;
    await new Promise<void>((r) => s0.close(() => r()));
    const s = await ping({ kind: 'inet', host: '127.0.0.1', port }, { count: 3, intervalMs: 5, timeoutMs: 100 });
    assert.equal(s.received, 0);
    assert.ok(s.unreachable >= 1);
  });

  it('stops on abort and still summarises', async (t) => {
    const server = await startUdpEchoServer(V4);
    t.after(() => server.close());
    const ac = new AbortController();
    let replies = 0;
    const s = await ping(server.endpoint, {
      count: 0,
      intervalMs: 5,
      signal: ac.signal,
      onEvent: (e) => {
        if (e.event === 'reply' && ++replies === 5) ac.abort();
      },
    });
    assert.equal(s.interrupted, true);
    assert.ok(s.received >= 5 && s.sent >= s.received);
  });

  it('refuses bad options, oversize probes and unix: addresses with codes', async (t) => {
    const server = await startUdpEchoServer(V4);
    t.after(() => server.close());
    await assert.rejects(ping(server.endpoint, { size: PROBE_HEADER_SIZE - 1 }), { code: 'ERR_INVALID_ARG' });
    await assert.rejects(ping(server.endpoint, { count: 1_000_001 }), { code: 'ERR_INVALID_ARG' });
    await assert.rejects(ping(server.endpoint, { size: 65_508, count: 1 }), { code: 'ERR_DATAGRAM_TOO_LARGE' });
    await assert.rejects(ping({ kind: 'unix', path: '/tmp/socketkit-ping.sock' }), { code: 'ERR_UDP_UNIX_UNSUPPORTED' });
    const max = await ping(server.endpoint, { ...FAST, count: 2, size: 65_507 });
    assert.equal(max.received, 2);
  });

  describe('over IPv6', () => {
    let ipv6 = false;
    before(async () => {
      ipv6 = await hasIPv6();
    });
    it('works against [::1], up to 65,527-byte probes', async (t) => {
      if (!ipv6) return t.skip('no IPv6 loopback');
      const server = await startUdpEchoServer({ kind: 'inet', host: '::1', port: 0 });
      t.after(() => server.close());
      const s = await ping(server.endpoint, { ...FAST, count: 5, size: 65_527 });
      assert.equal(s.received, 5);
      assert.equal(s.target, `[::1]:${server.endpoint.port}`);
    });
  });
});

// ---- interop -------------------------------------------------------------------------------

describe('interop with plain UDP echoes', () => {
  it('a Python recvfrom/sendto loop', async (t) => {
    if (!requireTool(t, 'python3', 'python3')) return;
    const py = await startChild('python3', pythonEcho(65535));
    t.after(py.stop);
    const ep: InetEndpoint = { kind: 'inet', host: '127.0.0.1', port: py.port };
    const s = await ping(ep, { ...FAST, count: 10, size: 1400 });
    assert.equal(s.received, 10);
    assert.equal((await udpEcho(ep, Buffer.from('Hola mundo'))).reply.toString(), 'Hola mundo');
    const big = Buffer.alloc(65_507, 7);
    assert.ok((await udpEcho(ep, big)).reply.equals(big));
  });

  it('a Python loop with a too-small buffer: the cut is reported, not hidden', async (t) => {
    if (!requireTool(t, 'python3', 'python3')) return;
    const py = await startChild('python3', pythonEcho(1024));
    t.after(py.stop);
    const ep: InetEndpoint = { kind: 'inet', host: '127.0.0.1', port: py.port };
    await assert.rejects(udpEcho(ep, Buffer.alloc(2000, 1)), { code: 'ERR_ECHO_TRUNCATED' });
    const s = await ping(ep, { ...FAST, count: 3, size: 2000 });
    assert.equal(s.truncated, 3);
  });

  it('socat UDP-RECVFROM:PORT,fork EXEC:cat', async (t) => {
    if (!requireTool(t, 'socat', 'socat')) return;
    const probe = createSocket('udp4');
    await new Promise<void>((r) => probe.bind(0, '127.0.0.1', () => r()));
    const port = probe.address().port;
    await new Promise<void>((r) => probe.close(() => r()));
    const socat = spawn('socat', [`UDP-RECVFROM:${port},bind=127.0.0.1,fork`, 'EXEC:cat'], { stdio: 'ignore' });
    t.after(
      () =>
        new Promise<void>((resolve) => {
          if (socat.exitCode !== null) return resolve();
          socat.once('exit', () => resolve());
          socat.kill('SIGTERM');
        }),
    );
    const ep: InetEndpoint = { kind: 'inet', host: '127.0.0.1', port };
    // socat gives no sign that it is ready: echo until it answers (until it binds, the port is
    // unreachable), at most 50 times.
    let ready = '';
    for (let i = 0; i < 50 && !ready; i++) {
      try {
        ready = (await udpEcho(ep, Buffer.from('ready?'), { timeoutMs: 200 })).reply.toString();
      } catch (err) {
        if ((err as { code?: string }).code !== 'ERR_CONN_REFUSED' && (err as { code?: string }).code !== 'ERR_TIMEOUT') throw err;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    assert.equal(ready, 'ready?');
    const s = await ping(ep, { count: 5, intervalMs: 20, timeoutMs: 2000 });
    assert.equal(s.received, 5);
  });
});

// ---- TCP -----------------------------------------------------------------------------------

describe('ping over TCP', () => {
  it('round trips over one connection to our TCP echo, ping-pong and paced', async (t) => {
    const server = await startEchoServer(V4);
    t.after(() => server.close());
    const ep = server.endpoint;
    const a = await ping(ep, { transport: 'tcp', count: 200, intervalMs: 0, size: 1400 });
    assert.equal(a.received, 200);
    const b = await ping(ep, { transport: 'tcp', ...FAST, count: 10 });
    assert.equal(b.received, 10);
    assert.equal(b.transport, 'tcp');
    assert.equal(server.stats.accepted, 2);
  });

  it('cuts the byte stream back into probes however it is chunked', async (t) => {
    // An echo that returns every byte in its own write, and one that batches several probes.
    const sockets = new Set<Socket>();
    const trickle = createServer((s) => {
      sockets.add(s);
      s.on('data', (c: Buffer) => {
        for (const byte of c) s.write(Buffer.from([byte]));
      });
      s.on('close', () => sockets.delete(s));
    });
    await new Promise<void>((r) => trickle.listen(0, '127.0.0.1', () => r()));
    t.after(() => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((r) => trickle.close(() => r()));
    });
    const port = (trickle.address() as { port: number }).port;
    const s = await ping({ kind: 'inet', host: '127.0.0.1', port }, { transport: 'tcp', ...FAST, count: 10, size: 100 });
    assert.equal(s.received, 10);
    assert.equal(s.corrupt + s.foreign, 0);
  });

  it('works over a Unix socket', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'socketkit-ping-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const server = await startEchoServer({ kind: 'unix', path: join(dir, 'echo.sock') });
    t.after(() => server.close());
    const s = await ping(server.endpoint, { transport: 'tcp', ...FAST, count: 5 });
    assert.equal(s.received, 5);
  });

  it('ends the run with ERR_CONN_CLOSED when the echo hangs up', async (t) => {
    const sockets = new Set<Socket>();
    let n = 0;
    const server = createServer((s) => {
      sockets.add(s);
      s.on('data', (c: Buffer) => {
        s.write(c);
        if (++n === 3) s.destroy();
      });
      s.on('close', () => sockets.delete(s));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    t.after(() => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((r) => server.close(() => r()));
    });
    const port = (server.address() as { port: number }).port;
    const s = await ping({ kind: 'inet', host: '127.0.0.1', port }, { transport: 'tcp', ...FAST, count: 20 });
    assert.equal(s.error?.code, 'ERR_CONN_CLOSED');
    assert.ok(s.sent < 20);
  });
});

// ---- CLI -----------------------------------------------------------------------------------

describe('CLI: socketkit ping', () => {
  it('prints a summary, or NDJSON events and a JSON summary', async (t) => {
    const server = await startUdpEchoServer(V4);
    t.after(() => server.close());
    const addr = `127.0.0.1:${server.endpoint.port}`;
    const text = captureIO();
    assert.equal(await main(['ping', addr, '-c', '3', '-i', '5ms'], text.io), 0);
    assert.match(text.out(), /3 sent, 3 received, 0\.0% loss/);
    assert.match(text.out(), /rtt p50\/p90\/p99\/p99\.9 = /);
    assert.doesNotMatch(text.err(), /seq=/); // per-reply lines are for terminals only
    const json = captureIO();
    assert.equal(await main(['ping', addr, '-c', '4', '-i', '5ms', '--json', '-s', '200'], json.io), 0);
    const out = ndjson(json.out());
    assert.equal(out.filter((l) => l['event'] === 'reply').length, 4);
    const summary = out.find((l) => l['event'] === 'ping')!;
    assert.equal(summary['received'], 4);
    assert.equal(summary['size'], 200);
    assert.equal((summary['rtt'] as Record<string, unknown>)['count'], 4);
  });

  it('sends 5 probes by default when not on a terminal', async (t) => {
    const server = await startUdpEchoServer(V4);
    t.after(() => server.close());
    const io = captureIO();
    assert.equal(await main(['ping', `127.0.0.1:${server.endpoint.port}`, '-i', '5ms', '--json'], io.io), 0);
    assert.equal(ndjson(io.out()).find((l) => l['event'] === 'ping')?.['sent'], 5);
  });

  it('exits 1 with ERR_NO_REPLY when nothing comes back, after the summary', async (t) => {
    const silent = await startOddEcho(() => []);
    t.after(silent.close);
    const io = captureIO();
    assert.equal(await main(['ping', `127.0.0.1:${silent.ep.port}`, '-c', '2', '-i', '5ms', '-W', '50ms'], io.io), 1);
    assert.match(io.out(), /2 sent, 0 received, 100\.0% loss/);
    assert.match(io.err(), /\(ERR_NO_REPLY\)/);
  });

  it('refuses --udp with --tcp, a tiny --size and unix: over UDP', async () => {
    for (const [argv, code] of [
      [['ping', '9800', '--udp', '--tcp'], 'ERR_USAGE'],
      [['ping', '9800', '-s', '10'], 'ERR_USAGE'],
      [['ping', '9800', '-c', 'lots'], 'ERR_USAGE'],
      [['ping', 'unix:/tmp/socketkit-none.sock'], 'ERR_UDP_UNIX_UNSUPPORTED'],
    ] as const) {
      const io = captureIO();
      assert.equal(await main([...argv], io.io), 2, argv.join(' '));
      assert.match(io.err(), new RegExp(`\\(${code}\\)`), argv.join(' '));
    }
  });
});

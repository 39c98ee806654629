// Tests of the UDP system's parts and its echo: the probe codec (bytes in, fields out, every
// truncation and every flipped byte), the RTT statistics, the bounded peer table, and the echo
// server and client on real loopback sockets over IPv4 and IPv6, including the protocol maxima,
// oversize refusal, truncating and lossy echoes, ICMP port unreachable and the CLI.
// Errors are matched on their `code` only.
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type RemoteInfo, type Socket as DgramSocket } from 'node:dgram';
import {
  MAX_UDP_PAYLOAD_IPV4,
  MAX_UDP_PAYLOAD_IPV6,
  PROBE_HEADER_SIZE,
  PeerTable,
  decodeProbe,
  encodeProbe,
  percentile,
  startUdpEchoServer,
  summarizeRtts,
  udpEcho,
  type UdpEchoServerEvent,
} from '../src/udp/index.js';
import type { InetEndpoint } from '../src/net/endpoint.js';
import { main } from '../src/cli/main.js';
import { captureIO, ndjson } from './helpers/cli.js';
import { hasIPv6 } from './helpers/net.js';

// ---- helpers -------------------------------------------------------------------------------

const V4: InetEndpoint = { kind: 'inet', host: '127.0.0.1', port: 0 };
const V6: InetEndpoint = { kind: 'inet', host: '::1', port: 0 };

/** A UDP "echo" whose reply to each datagram is decided by `reply` (undefined: no reply). */
async function startOddEcho(
  reply: (msg: Buffer, n: number) => Buffer | undefined,
  host = '127.0.0.1',
): Promise<{ ep: InetEndpoint; received: () => number; close: () => Promise<void> }> {
  const s = createSocket(host.includes(':') ? 'udp6' : 'udp4');
  let n = 0;
  s.on('message', (msg: Buffer, r: RemoteInfo) => {
    const out = reply(msg, n++);
    if (out !== undefined) s.send(out, r.port, r.address);
  });
  await new Promise<void>((resolve) => s.bind(0, host, () => resolve()));
  return { ep: { kind: 'inet', host, port: s.address().port }, received: () => n, close: () => new Promise<void>((r) => s.close(() => r())) };
}

/** A port with (almost certainly) nothing listening: bound, then released. */
async function closedPort(host = '127.0.0.1'): Promise<number> {
  const s: DgramSocket = createSocket('udp4');
  await new Promise<void>((resolve) => s.bind(0, host, () => resolve()));
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}



// ---- probe codec ---------------------------------------------------------------------------

describe('probe codec', () => {
  const session = 0xdeadbeef;
  const sentNs = 123_456_789_012_345n;

  it('round-trips every field, for the smallest probe and a padded one', () => {
    for (const size of [PROBE_HEADER_SIZE, 25, 64, 1400, MAX_UDP_PAYLOAD_IPV6]) {
      const p = encodeProbe({ session, seq: 7, size, sentNs });
      assert.equal(p.length, size);
      const d = decodeProbe(p, session);
      assert.equal(d.kind, 'ok');
      assert.deepEqual(d.kind === 'ok' && d.probe, { session, seq: 7, size, sentNs });
    }
  });

  it('calls foreign: too short for a header, wrong magic, another session', () => {
    const p = encodeProbe({ session, seq: 1, size: 64, sentNs });
    for (let n = 0; n < PROBE_HEADER_SIZE; n++) assert.equal(decodeProbe(p.subarray(0, n), session).kind, 'foreign', `length ${n}`);
    const wrongMagic = Buffer.from(p);
    wrongMagic[0] = wrongMagic[0]! ^ 0xff;
    assert.equal(decodeProbe(wrongMagic, session).kind, 'foreign');
    assert.equal(decodeProbe(p, session + 1).kind, 'foreign');
    assert.equal(decodeProbe(Buffer.from('Hola mundo, a plain datagram'), session).kind, 'foreign');
  });

  it('calls truncated a probe cut at every length from the header to one byte short', () => {
    const p = encodeProbe({ session, seq: 300, size: 600, sentNs });
    for (let n = PROBE_HEADER_SIZE; n < p.length; n++) {
      const d = decodeProbe(p.subarray(0, n), session);
      assert.equal(d.kind, 'truncated', `length ${n}`);
      assert.equal(d.kind === 'truncated' && d.received, n);
    }
  });

  it('calls corrupt any flipped padding byte, a longer reply, and another probe\'s padding', () => {
    const p = encodeProbe({ session, seq: 9, size: 300, sentNs });
    for (let i = PROBE_HEADER_SIZE; i < p.length; i++) {
      const q = Buffer.from(p);
      q[i] = q[i]! ^ 0x01;
      assert.equal(decodeProbe(q, session).kind, 'corrupt', `byte ${i}`);
      // A cut reply whose bytes also differ is corrupt, not merely truncated.
      assert.equal(decodeProbe(q.subarray(0, i + 1), session).kind, 'corrupt', `byte ${i}, cut`);
    }
    assert.equal(decodeProbe(Buffer.concat([p, Buffer.from([0])]), session).kind, 'corrupt');
    const other = encodeProbe({ session, seq: 10, size: 300, sentNs });
    const mixed = Buffer.concat([p.subarray(0, PROBE_HEADER_SIZE), other.subarray(PROBE_HEADER_SIZE)]);
    assert.equal(decodeProbe(mixed, session).kind, 'corrupt');
  });

  it('refuses to encode a probe smaller than its header', () => {
    assert.throws(() => encodeProbe({ session, seq: 0, size: PROBE_HEADER_SIZE - 1, sentNs }), RangeError);
  });
});

// ---- statistics ----------------------------------------------------------------------------

describe('RTT statistics', () => {
  it('reads nearest-rank percentiles', () => {
    const sorted = Float64Array.from({ length: 1000 }, (_, i) => i + 1); // 1..1000
    assert.equal(percentile(sorted, 50), 500);
    assert.equal(percentile(sorted, 90), 900);
    assert.equal(percentile(sorted, 99), 990);
    assert.equal(percentile(sorted, 99.9), 999);
    assert.equal(percentile(sorted, 100), 1000);
    assert.equal(percentile([42], 99.9), 42);
    assert.ok(Number.isNaN(percentile([], 50)));
  });

  it('summarises unsorted samples without changing them', () => {
    const samples = [4, 2, 8, 6];
    const s = summarizeRtts(samples);
    assert.deepEqual(samples, [4, 2, 8, 6]);
    assert.equal(s.count, 4);
    assert.equal(s.min, 2);
    assert.equal(s.max, 8);
    assert.equal(s.avg, 5);
    assert.equal(s.stddev, Math.sqrt(5));
    assert.equal(s.p50, 4);
    assert.equal(s.p999, 8);
    const empty = summarizeRtts([]);
    assert.equal(empty.count, 0);
    assert.ok(Number.isNaN(empty.p50) && Number.isNaN(empty.avg));
  });
});

// ---- peer table ----------------------------------------------------------------------------

describe('PeerTable', () => {
  it('evicts the least recently heard-from peer when full', () => {
    const t = new PeerTable(3);
    assert.equal(t.touch('a', 1).added, true);
    t.touch('b', 2);
    t.touch('c', 3);
    t.touch('a', 4); // a is now the most recent; b the least
    const r = t.touch('d', 5);
    assert.equal(r.added, true);
    assert.equal(r.evicted?.peer, 'b');
    assert.equal(t.size, 3);
    assert.deepEqual(
      t.snapshot().map((p) => p.peer),
      ['c', 'a', 'd'],
    );
  });

  it('stays at its capacity under a flood of distinct sources', () => {
    const t = new PeerTable(100);
    let evicted = 0;
    for (let i = 0; i < 10_000; i++) if (t.touch(`10.0.${i >> 8}.${i & 0xff}:53`, i).evicted) evicted++;
    assert.equal(t.size, 100);
    assert.equal(evicted, 9_900);
  });

  it('expires peers quiet since a cutoff, oldest first, and drains the rest', () => {
    const t = new PeerTable(10);
    t.touch('a', 1);
    t.touch('b', 2);
    t.touch('c', 3);
    t.touch('a', 4);
    assert.deepEqual(
      t.expire(3.5).map((p) => p.peer),
      ['b', 'c'],
    );
    assert.deepEqual(
      t.drain().map((p) => p.peer),
      ['a'],
    );
    assert.equal(t.size, 0);
  });
});

// ---- echo server and client ----------------------------------------------------------------

describe('UDP echo over IPv4', () => {
  it('echoes a message, an empty datagram and the 65,507-byte maximum', async (t) => {
    const server = await startUdpEchoServer(V4);
    t.after(() => server.close());
    assert.equal(server.maxPayload, MAX_UDP_PAYLOAD_IPV4);
    const r = await udpEcho(server.endpoint, Buffer.from('Hola mundo'));
    assert.equal(r.reply.toString(), 'Hola mundo');
    assert.equal(r.attempts, 1);
    const empty = await udpEcho(server.endpoint, Buffer.alloc(0));
    assert.equal(empty.bytesReceived, 0);
    const big = Buffer.alloc(MAX_UDP_PAYLOAD_IPV4, 0xa5);
    big.writeUInt32BE(0x01020304, MAX_UDP_PAYLOAD_IPV4 - 4);
    const rb = await udpEcho(server.endpoint, big);
    assert.ok(rb.reply.equals(big));
    const s = server.stats;
    assert.equal(s.datagramsIn, 3);
    assert.equal(s.bytesIn, 10 + MAX_UDP_PAYLOAD_IPV4);
  });

  it('refuses a datagram over the maximum with a coded error and sends nothing', async (t) => {
    const server = await startUdpEchoServer(V4);
    t.after(() => server.close());
    await assert.rejects(udpEcho(server.endpoint, Buffer.alloc(MAX_UDP_PAYLOAD_IPV4 + 1)), { code: 'ERR_DATAGRAM_TOO_LARGE' });
    await udpEcho(server.endpoint, Buffer.from('after')); // ordered after anything the refusal might have sent
    assert.equal(server.stats.datagramsIn, 1);
  });

  it('serves many clients at once and counts datagrams and bytes per peer', async (t) => {
    const events: UdpEchoServerEvent[] = [];
    const server = await startUdpEchoServer(V4, { peerEventsPerSecond: 1000, onEvent: (e) => events.push(e) });
    t.after(() => server.close());
    const replies = await Promise.all(Array.from({ length: 50 }, (_, i) => udpEcho(server.endpoint, Buffer.from(`client ${i}`), { timeoutMs: 2000, retries: 3 })));
    replies.forEach((r, i) => assert.equal(r.reply.toString(), `client ${i}`));
    const s = server.stats;
    assert.equal(s.peersSeen, 50);
    assert.ok(s.datagramsIn >= 50); // more if a retry was needed
    const peers = server.peers();
    assert.equal(peers.length, 50);
    for (const p of peers) assert.ok(p.datagramsIn >= 1 && p.bytesIn >= 'client 0'.length * p.datagramsIn);
    assert.equal(events.filter((e) => e.event === 'peer').length, 50);
    await server.close();
    const ends = events.filter((e) => e.event === 'peer-end');
    assert.equal(ends.length, 50);
    assert.ok(ends.every((e) => e.event === 'peer-end' && e.reason === 'stopped'));
  });

  it('keeps at most maxPeers counters and reports the ones it forgets', async (t) => {
    const events: UdpEchoServerEvent[] = [];
    const server = await startUdpEchoServer(V4, { maxPeers: 4, onEvent: (e) => events.push(e) });
    t.after(() => server.close());
    for (let i = 0; i < 10; i++) await udpEcho(server.endpoint, Buffer.from(`peer ${i}`));
    assert.equal(server.stats.peers, 4);
    assert.equal(server.stats.peersEvicted, 6);
    assert.equal(events.filter((e) => e.event === 'peer-end' && e.reason === 'evicted').length, 6);
  });

  it('reports peers that go quiet', async (t) => {
    const events: UdpEchoServerEvent[] = [];
    const server = await startUdpEchoServer(V4, { peerIdleMs: 30, onEvent: (e) => events.push(e) });
    t.after(() => server.close());
    await udpEcho(server.endpoint, Buffer.from('x'));
    for (let i = 0; i < 200 && server.stats.peers > 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(server.stats.peers, 0);
    assert.ok(events.some((e) => e.event === 'peer-end' && e.reason === 'idle' && e.datagramsIn === 1));
  });

  it('closes idempotently and stops answering', async () => {
    const server = await startUdpEchoServer(V4);
    const ep = server.endpoint;
    await Promise.all([server.close(1000), server.close()]);
    await server.close();
    assert.equal(server.status.state, 'closed');
    await assert.rejects(udpEcho(ep, Buffer.from('x'), { timeoutMs: 200 }), (err: { code?: string }) => err.code === 'ERR_CONN_REFUSED' || err.code === 'ERR_TIMEOUT');
  });
});

describe('UDP echo over IPv6', () => {
  let ipv6 = false;
  before(async () => {
    ipv6 = await hasIPv6();
  });

  it('echoes up to 65,527 bytes and refuses 65,528', async (t) => {
    if (!ipv6) return t.skip('no IPv6 loopback');
    const server = await startUdpEchoServer(V6);
    t.after(() => server.close());
    assert.equal(server.maxPayload, MAX_UDP_PAYLOAD_IPV6);
    assert.equal((await udpEcho(server.endpoint, Buffer.from('Hola mundo'))).reply.toString(), 'Hola mundo');
    const big = Buffer.alloc(MAX_UDP_PAYLOAD_IPV6, 0x5a);
    assert.ok((await udpEcho(server.endpoint, big)).reply.equals(big));
    await assert.rejects(udpEcho(server.endpoint, Buffer.alloc(MAX_UDP_PAYLOAD_IPV6 + 1)), { code: 'ERR_DATAGRAM_TOO_LARGE' });
    assert.match(server.peers()[0]!.peer, /^\[::1\]:\d+$/);
  });

  it('a dual-stack [::] server answers IPv4 clients too', async (t) => {
    if (!ipv6) return t.skip('no IPv6 loopback');
    const server = await startUdpEchoServer({ kind: 'inet', host: '::', port: 0 });
    t.after(() => server.close());
    const r = await udpEcho({ kind: 'inet', host: '127.0.0.1', port: server.endpoint.port }, Buffer.from('v4 to v6'));
    assert.equal(r.reply.toString(), 'v4 to v6');
  });
});

describe('UDP echo client against odd echoes', () => {
  it('reports a truncated reply (an echo with a too-small buffer)', async (t) => {
    const echo = await startOddEcho((m) => m.subarray(0, 1024));
    t.after(echo.close);
    await assert.rejects(udpEcho(echo.ep, Buffer.alloc(2000, 0x41)), { code: 'ERR_ECHO_TRUNCATED', exitCode: 1 });
  });

  it('reports a reply that differs or is longer', async (t) => {
    const flip = await startOddEcho((m) => Buffer.from(m).fill(0x42, 3, 4));
    t.after(flip.close);
    await assert.rejects(udpEcho(flip.ep, Buffer.from('Hola mundo')), { code: 'ERR_ECHO_MISMATCH', exitCode: 1 });
    const longer = await startOddEcho((m) => Buffer.concat([m, m]));
    t.after(longer.close);
    await assert.rejects(udpEcho(longer.ep, Buffer.from('Hola')), { code: 'ERR_ECHO_MISMATCH' });
  });

  it('sends again when a datagram is lost, and times out when none come back', async (t) => {
    const dropFirst = await startOddEcho((m, n) => (n === 0 ? undefined : m));
    t.after(dropFirst.close);
    const r = await udpEcho(dropFirst.ep, Buffer.from('again'), { timeoutMs: 200, retries: 3 });
    assert.ok(r.attempts >= 2);
    const silent = await startOddEcho(() => undefined);
    t.after(silent.close);
    await assert.rejects(udpEcho(silent.ep, Buffer.from('anyone?'), { timeoutMs: 50, retries: 2 }), { code: 'ERR_TIMEOUT' });
    assert.equal(silent.received(), 3);
  });

  it('says clearly when nothing listens (ICMP port unreachable)', async () => {
    const port = await closedPort();
    await assert.rejects(udpEcho({ kind: 'inet', host: '127.0.0.1', port }, Buffer.from('x'), { timeoutMs: 2000 }), { code: 'ERR_CONN_REFUSED' });
  });

  it('refuses unix: addresses with a coded error', async () => {
    await assert.rejects(startUdpEchoServer({ kind: 'unix', path: '/tmp/socketkit-udp.sock' }), { code: 'ERR_UDP_UNIX_UNSUPPORTED' });
    await assert.rejects(udpEcho({ kind: 'unix', path: '/tmp/socketkit-udp.sock' }, Buffer.from('x')), { code: 'ERR_UDP_UNIX_UNSUPPORTED' });
  });

  it('stops waiting when aborted', async (t) => {
    const silent = await startOddEcho(() => undefined);
    t.after(silent.close);
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 20);
    await assert.rejects(udpEcho(silent.ep, Buffer.from('x'), { timeoutMs: 5000, signal: ac.signal }), { code: 'ERR_ABORTED' });
  });
});

// ---- CLI -----------------------------------------------------------------------------------

describe('CLI: echo-server --udp and echo --udp', () => {
  it('serves, echoes, reports JSON and stops gracefully', async () => {
    const srv = captureIO();
    const running = main(['echo-server', '--udp', '127.0.0.1:0', '--json'], srv.io);
    let listening: Record<string, unknown> | undefined;
    for (let i = 0; i < 500 && !listening; i++) {
      await new Promise((r) => setTimeout(r, 10));
      listening = ndjson(srv.out()).find((l) => l['event'] === 'listening');
    }
    assert.ok(listening, 'server did not report listening');
    assert.equal(listening['transport'], 'udp');
    const address = String(listening['address']);
    try {
      const cli = captureIO();
      assert.equal(await main(['echo', '--udp', address, 'Hola mundo', '--json'], cli.io), 0);
      const result = ndjson(cli.out()).find((l) => l['event'] === 'echo');
      assert.equal(result?.['match'], true);
      assert.equal(result?.['bytesReceived'], 10);
      const text = captureIO();
      assert.equal(await main(['echo', '--udp', address, 'Hola mundo'], text.io), 0);
      assert.equal(text.out(), 'Hola mundo');
      const fromStdin = captureIO('from stdin');
      assert.equal(await main(['echo', '--udp', address], fromStdin.io), 0);
      assert.equal(fromStdin.out(), 'from stdin');
      const tooBig = captureIO('x'.repeat(MAX_UDP_PAYLOAD_IPV4 + 1));
      assert.equal(await main(['echo', '--udp', address], tooBig.io), 2);
      assert.match(tooBig.err(), /\(ERR_DATAGRAM_TOO_LARGE\)/);
    } finally {
      srv.stop();
    }
    assert.equal(await running, 0);
    const stopped = ndjson(srv.out()).find((l) => l['event'] === 'stopped');
    assert.equal(stopped?.['datagramsIn'], 3);
    assert.equal(stopped?.['peersSeen'], 3);
    assert.equal(ndjson(srv.out()).filter((l) => l['event'] === 'peer-end').length, 3);
  });

  it('refuses --framed with --udp, and unix: addresses, with coded errors', async () => {
    const a = captureIO();
    assert.equal(await main(['echo-server', '--udp', '--framed', '127.0.0.1:0'], a.io), 2);
    assert.match(a.err(), /\(ERR_USAGE\)/);
    const b = captureIO();
    assert.equal(await main(['echo', '--udp', 'unix:/tmp/socketkit-x.sock', 'hi'], b.io), 2);
    assert.match(b.err(), /\(ERR_UDP_UNIX_UNSUPPORTED\)/);
    const c = captureIO();
    assert.equal(await main(['echo', '--udp', '9800', 'hi', '--retries', 'many'], c.io), 2);
    assert.match(c.err(), /\(ERR_USAGE\)/);
  });

  it('exits 1 on a truncated reply', async (t) => {
    const echo = await startOddEcho((m) => m.subarray(0, 4));
    t.after(echo.close);
    const io = captureIO();
    assert.equal(await main(['echo', '--udp', `127.0.0.1:${echo.ep.port}`, 'Hola mundo'], io.io), 1);
    assert.match(io.err(), /\(ERR_ECHO_TRUNCATED\)/);
  });
});

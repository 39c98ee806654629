// Trust tests of the UDP echo (issue 11, items 1c and 14), run with the real binary on loopback:
// TLS options are refused with --udp instead of being silently dropped, --allow/--deny apply to
// datagrams (a denied source gets no reply and is counted), and peers cycling through a full
// peer table produce a bounded number of log lines, summarised once per second.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type Socket as DgramSocket } from 'node:dgram';
import { once } from 'node:events';
import { runCli, spawnCli, ndjson, type Spawned } from './helpers/cli.js';
import type { CleanupContext } from './helpers/tmp.js';

/** Starts `echo-server --udp ... --json` and returns it with its port once it listens. */
async function startUdpServer(t: CleanupContext, args: readonly string[]): Promise<{ proc: Spawned; port: number }> {
  const proc = spawnCli(['echo-server', '--udp', '127.0.0.1:0', '--json', ...args], t);
  const line = await proc.stdout.waitFor((l) => l.includes('"listening"'));
  const address = (JSON.parse(line) as { address: string }).address;
  return { proc, port: Number(address.slice(address.lastIndexOf(':') + 1)) };
}

/** A UDP socket bound to `host` (port chosen by the kernel), closed when the test ends. */
async function udpSocket(t: CleanupContext, host: string): Promise<DgramSocket> {
  const s = createSocket('udp4');
  s.bind(0, host);
  await once(s, 'listening');
  t.after(() => new Promise<void>((r) => s.close(() => r())));
  return s;
}

/** Sends `text` from `s` to the port and waits (bounded) for the echo. */
async function roundTrip(s: DgramSocket, port: number, text: string): Promise<string> {
  const reply = once(s, 'message', { signal: AbortSignal.timeout(5_000) });
  s.send(text, port, '127.0.0.1');
  const [msg] = (await reply) as [Buffer];
  return msg.toString();
}

describe('UDP refuses TLS options (1c)', () => {
  for (const args of [
    ['echo-server', '--udp', '127.0.0.1:0', '--cert', 'c.pem', '--key', 'k.pem'],
    ['echo-server', '--udp', '127.0.0.1:0', '--tls'],
    ['echo-server', '--udp', '127.0.0.1:0', '--psk-file', 'k.psk'],
    ['echo', '--udp', '127.0.0.1:9', 'secret', '--pin', 'AB:CD'],
    ['echo', '--udp', '127.0.0.1:9', 'secret', '--ca', 'ca.pem'],
    ['echo', '--udp', '127.0.0.1:9', 'secret', '--tls'],
    ['load', '--udp', '127.0.0.1:9', '--pin', 'AB:CD', '-n', '1'],
  ]) {
    it(`socketkit ${args.join(' ')} is a usage error, nothing sent or served`, async () => {
      const r = await runCli(args, { timeoutMs: 10_000 });
      assert.equal(r.timedOut, false, 'it must refuse, not run');
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /TLS and PSK are for TCP and Unix sockets, not --udp .*\(ERR_USAGE\)/);
    });
  }
});

describe('UDP echo applies --allow/--deny to datagrams (1c)', () => {
  /**
   * Starts the server with `args`, sends one datagram from `outsider` and then round-trips one
   * from `insider`. Both go through the server's one socket in order: once the later one is
   * echoed and the denial logged, a reply to the first would already have been sent.
   */
  async function outsiderThenInsider(t: CleanupContext, args: string[], outsider: string, insider: string) {
    const { proc, port } = await startUdpServer(t, args);
    const out = await udpSocket(t, outsider);
    const inside = await udpSocket(t, insider);
    let outsiderReplies = 0;
    out.on('message', () => outsiderReplies++);
    out.send('let me in', port, '127.0.0.1');
    assert.equal(await roundTrip(inside, port, 'hello'), 'hello');
    const denied = JSON.parse(await proc.stdout.waitFor((l) => l.includes('"denied"'))) as { peer: string; reason: string };
    return { proc, denied, outsiderReplies: () => outsiderReplies };
  }

  it('a denied source gets no reply and is counted; an allowed one is echoed', async (t) => {
    // Linux routes all of 127/8 to loopback: 127.0.0.2 is the denied source, 127.0.0.1 the allowed one.
    const { proc, denied, outsiderReplies } = await outsiderThenInsider(t, ['--deny', '127.0.0.2'], '127.0.0.2', '127.0.0.1');
    assert.match(denied.peer, /^127\.0\.0\.2:\d+$/);
    assert.match(denied.reason, /ERR_ACCESS_DENIED/);
    proc.kill('SIGTERM');
    assert.equal((await proc.waitExit()).code, 143);
    const stopped = ndjson(proc.stdout.text).find((e) => e['event'] === 'stopped')!;
    assert.equal(stopped['denied'], 1);
    assert.equal(stopped['datagramsIn'], 1, 'the denied datagram is not echoed or counted as served');
    assert.equal(outsiderReplies(), 0);
    const tracked = ndjson(proc.stdout.text).filter((e) => (e['event'] === 'peer' || e['event'] === 'peer-end') && String(e['peer']).startsWith('127.0.0.2:'));
    assert.deepEqual(tracked, [], 'a denied source takes no place in the peer table');
  });

  it('--allow admits only its block', async (t) => {
    const { denied, outsiderReplies } = await outsiderThenInsider(t, ['--allow', '127.0.0.2/32'], '127.0.0.1', '127.0.0.2');
    assert.match(denied.peer, /^127\.0\.0\.1:\d+$/);
    assert.equal(outsiderReplies(), 0);
  });
});

describe('UDP echo peer logging is rate-limited (14)', () => {
  it('5,000 source ports cycling through the 4,096-peer table give a bounded number of lines', { timeout: 60_000 }, async (t) => {
    const { proc, port } = await startUdpServer(t, []);
    const PEERS = 5_000;
    const BATCH = 100;
    for (let i = 0; i < PEERS; i += BATCH) {
      // A fresh socket per peer: a new source port each (the kernel picks them).
      await Promise.all(
        Array.from({ length: BATCH }, async () => {
          const s = createSocket('udp4');
          try {
            s.bind(0, '127.0.0.1');
            await once(s, 'listening');
            assert.equal(await roundTrip(s, port, 'p'), 'p');
          } finally {
            await new Promise<void>((r) => s.close(() => r()));
          }
        }),
      );
    }
    proc.kill('SIGTERM');
    assert.equal((await proc.waitExit(20_000)).code, 143);
    const events = ndjson(proc.stdout.text);
    const stopped = events.find((e) => e['event'] === 'stopped')!;
    assert.ok((stopped['peersSeen'] as number) > 4_096, `peers seen: ${String(stopped['peersSeen'])}`);
    assert.ok((stopped['peersEvicted'] as number) > 0);
    // Before: one line per new peer and one per evicted peer, and one per peer at stop (> 9,000).
    const perPeer = events.filter((e) => e['event'] === 'peer' || e['event'] === 'peer-end');
    const summaries = events.filter((e) => e['event'] === 'peer-summary');
    assert.ok(events.length < 400, `${events.length} lines for ${PEERS} peers`);
    assert.ok(summaries.length >= 1);
    assert.ok(perPeer.length <= 20 * (summaries.length + 1), `${perPeer.length} per-peer lines, ${summaries.length} summaries`);
    // The summaries account for what they did not show.
    const evicted = summaries.reduce((n, e) => n + (e['peersEvicted'] as number), 0) + perPeer.filter((e) => e['reason'] === 'evicted').length;
    assert.ok(evicted >= (stopped['peersEvicted'] as number), `evicted in summaries ${evicted}, in stats ${String(stopped['peersEvicted'])}`);
  });
});

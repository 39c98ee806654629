// One behaviour, two engines: every echo-server scenario that does not involve TLS runs on the
// native engine (native/echo_engine.c) and on the js engine (the reference), through the real
// binary with --json, and what a user sees is compared: the events (connect, disconnect with
// bytes and error code, idle, refused), the statistics, the final totals and the exit code.
// Timings, ports and rates are left out of the comparison; everything else must be equal.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { once } from 'node:events';
import { createSocket } from 'node:dgram';
import { parseEndpoint, type Endpoint } from '../src/net/endpoint.js';
import { nativeEchoStatus } from '../src/native/echo-engine.js';
import { spawnCli, runCli, REQUIRE_TOOLS } from './helpers/cli.js';
import { readAll, waitUntil } from './helpers/net.js';
import { tempDir, type CleanupContext } from './helpers/tmp.js';

type Json = Record<string, unknown>;
const ENGINES = ['native', 'js'] as const;
type Engine = (typeof ENGINES)[number];

const native = nativeEchoStatus();
/** Skips (visibly) where the native engine is not built; CI (SOCKETKIT_REQUIRE_TOOLS=1) fails instead. */
function needNative(t: { skip(m: string): void }): boolean {
  if (native.available) return true;
  if (REQUIRE_TOOLS) throw new Error(`the native engine is required (SOCKETKIT_REQUIRE_TOOLS=1) but ${native.reason ?? 'unavailable'}`);
  t.skip(`native engine not available: ${native.reason ?? 'unknown'}`);
  return false;
}

function sockOf(ep: Endpoint): Socket {
  return ep.kind === 'unix' ? connect({ path: ep.path }) : connect({ host: ep.host, port: ep.port });
}

async function open(ep: Endpoint): Promise<Socket> {
  const s = sockOf(ep);
  s.on('error', () => undefined);
  await once(s, 'connect');
  return s;
}

/** Writes `data` and reads until `n` bytes came back. */
async function roundTrip(s: Socket, data: Buffer, n = data.length): Promise<Buffer> {
  const parts: Buffer[] = [];
  let got = 0;
  const done = new Promise<void>((resolve, reject) => {
    const onData = (c: Buffer): void => {
      parts.push(c);
      got += c.length;
      if (got >= n) {
        s.off('data', onData);
        resolve();
      }
    };
    s.on('data', onData);
    s.once('close', () => reject(new Error(`closed after ${got} of ${n} bytes`)));
  });
  s.write(data);
  await done;
  return Buffer.concat(parts);
}

function frame(payload: Buffer): Buffer {
  const h = Buffer.alloc(4);
  h.writeUInt32BE(payload.length);
  return Buffer.concat([h, payload]);
}

/** A run of the server: its events as the comparison sees them. */
interface Run {
  readonly events: Json[];
  readonly code: number | null;
}

/** What differs between two correct runs (time, ports, rates) is dropped. */
function normalise(e: Json): Json {
  const { ts: _ts, ms: _ms, seconds: _s, roundTripsPerSecond: _r, bytesInPerSecond: _bi, bytesOutPerSecond: _bo, acceptedPerSecond: _a, idleMs: _i, engine: _e, engineReason: _er, ...rest } = e;
  if (typeof rest['peer'] === 'string') rest['peer'] = (rest['peer']).replace(/:\d+$/, ':PORT');
  if (typeof rest['address'] === 'string' && e['event'] === 'listening') rest['address'] = 'ADDR';
  return rest;
}

/**
 * Starts `echo-server ADDR --json --engine ENGINE ...args`, runs `client` against it, waits for
 * `settled` (the events it expects), stops it with SIGTERM and returns every event.
 */
async function scenario(
  t: CleanupContext,
  engine: Engine,
  addr: string,
  args: readonly string[],
  client: (ep: Endpoint, events: () => Json[]) => Promise<void>,
  settled: (events: Json[]) => boolean,
): Promise<Run> {
  const proc = spawnCli(['echo-server', addr, '--json', '--engine', engine, ...args], t);
  const listening = JSON.parse(await proc.stdout.waitFor((l) => l.includes('"listening"'), 20_000)) as Json;
  assert.equal(listening['engine'], engine);
  const ep = parseEndpoint(String(listening['address']), { defaultHost: '127.0.0.1' });
  const events = (): Json[] => proc.stdout.lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Json);
  await client(ep, events);
  await waitUntil(() => settled(events()), `${engine}: the expected events`, 10_000);
  proc.kill('SIGTERM');
  const { code } = await proc.waitExit(15_000);
  return { events: events(), code };
}

const disconnects = (n: number) => (events: Json[]) => events.filter((e) => e['event'] === 'disconnect').length >= n;

/** Runs the scenario on both engines and compares what they reported. */
async function compare(
  t: CleanupContext & { skip(m: string): void },
  addr: (engine: Engine) => string,
  args: readonly string[],
  client: (ep: Endpoint, events: () => Json[]) => Promise<void>,
  settled: (events: Json[]) => boolean,
  pick: (events: Json[]) => Json[] = (events) => events.filter((e) => e['event'] !== 'stats'),
): Promise<Record<Engine, Run>> {
  const runs = {} as Record<Engine, Run>;
  for (const engine of ENGINES) runs[engine] = await scenario(t, engine, addr(engine), args, client, settled);
  const view = (r: Run): Json[] => pick(r.events).map(normalise);
  assert.deepEqual(view(runs.native), view(runs.js), 'the native engine reports what the js engine reports');
  assert.equal(runs.native.code, runs.js.code, 'the same exit code');
  return runs;
}

/** Resolves once a new connection to `ep` is refused (bounded: 10 s). */
async function refusedSoon(ep: Endpoint): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const s = sockOf(ep);
    const outcome = await new Promise<string>((resolve) => {
      s.once('connect', () => resolve('accepted'));
      s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
    });
    s.destroy();
    if (outcome === 'ECONNREFUSED') return;
    assert.ok(Date.now() < deadline, 'the server still accepts connections 10 s after SIGTERM');
    await new Promise((r) => setTimeout(r, 20));
  }
}

const tcp = (): string => '127.0.0.1:0';
const stopped = (r: Run): Json => r.events.find((e) => e['event'] === 'stopped')!;
const ofEvent = (r: Run, name: string): Json[] => r.events.filter((e) => e['event'] === name);

describe('echo-server: the native and js engines behave the same', { timeout: 300_000 }, () => {
  it('byte echo: what goes in comes back, bytes counted on both sides, totals and exit code', { timeout: 60_000 }, async (t) => {
    if (!needNative(t)) return;
    const data = randomBytes(200_000);
    const runs = await compare(
      t,
      tcp,
      [],
      async (ep) => {
        const s = await open(ep);
        const back = await roundTrip(s, data);
        assert.ok(back.equals(data), 'echoed intact');
        s.end();
        await once(s, 'close');
      },
      disconnects(1),
      // Round trips count reads, and how a stream is cut into reads is the kernel's choice.
      (events) => events.filter((e) => e['event'] !== 'stats').map(({ roundTrips: _r, ...e }) => e),
    );
    const d = ofEvent(runs.native, 'disconnect')[0]!;
    assert.deepEqual([d['bytesIn'], d['bytesOut'], d['error']], [200_000, 200_000, undefined]);
    assert.equal(runs.native.code, 143);
  });

  it('framed echo: whole messages back, one round trip each', { timeout: 60_000 }, async (t) => {
    if (!needNative(t)) return;
    const messages = Array.from({ length: 50 }, (_, i) => frame(randomBytes(1 + i * 97)));
    const all = Buffer.concat(messages);
    const runs = await compare(
      t,
      tcp,
      ['--framed', '--max-message', '10000'],
      async (ep) => {
        const s = await open(ep);
        // Cut across frame boundaries on purpose: the engine must reassemble.
        s.write(all.subarray(0, 1001));
        const back = await roundTrip(s, all.subarray(1001), all.length);
        assert.ok(back.equals(all), 'every message back, in order');
        s.end();
        await once(s, 'close');
      },
      disconnects(1),
    );
    assert.equal(stopped(runs.native)['roundTrips'], 50);
  });

  it('framed echo: a header over --max-message closes with ERR_FRAME_TOO_LARGE; the messages before it still come back', { timeout: 60_000 }, async (t) => {
    if (!needNative(t)) return;
    const good = frame(Buffer.from('fine'));
    const bad = Buffer.alloc(4);
    bad.writeUInt32BE(10_001);
    const runs = await compare(
      t,
      tcp,
      ['--framed', '--max-message', '10000'],
      async (ep) => {
        const s = await open(ep);
        assert.ok((await roundTrip(s, good)).equals(good));
        s.write(bad);
        await once(s, 'close');
      },
      disconnects(1),
    );
    assert.equal(ofEvent(runs.native, 'disconnect')[0]!['error'], 'ERR_FRAME_TOO_LARGE');
  });

  it('framed echo: the stream ending inside a message is ERR_FRAME_TRUNCATED, and that message never comes back', { timeout: 60_000 }, async (t) => {
    if (!needNative(t)) return;
    const runs = await compare(
      t,
      tcp,
      ['--framed'],
      async (ep) => {
        const s = await open(ep);
        const whole = frame(Buffer.from('one'));
        s.end(Buffer.concat([whole, frame(Buffer.from('two, cut')).subarray(0, 7)]));
        const back = await readAll(s);
        assert.ok(back.equals(whole), `only the whole message came back (${back.length} bytes)`);
      },
      disconnects(1),
    );
    assert.equal(ofEvent(runs.native, 'disconnect')[0]!['error'], 'ERR_FRAME_TRUNCATED');
  });

  it('framed echo: a message over the memory budget closes with ERR_MEMORY_BUDGET', { timeout: 60_000 }, async (t) => {
    if (!needNative(t)) return;
    const runs = await compare(
      t,
      tcp,
      ['--framed', '--memory-budget', '1000'],
      async (ep) => {
        const s = await open(ep);
        s.write(frame(randomBytes(5000)));
        await once(s, 'close');
      },
      disconnects(1),
      // How much of the message arrived before the budget ran out is the kernel's timing.
      (events) => events.filter((e) => e['event'] !== 'stats').map(({ bytesIn: _b, ...e }) => e),
    );
    assert.equal(ofEvent(runs.native, 'disconnect')[0]!['error'], 'ERR_MEMORY_BUDGET');
  });

  it('half-close: everything sent comes back, then the server ends its side too', { timeout: 60_000 }, async (t) => {
    if (!needNative(t)) return;
    const data = randomBytes(300_000);
    await compare(
      t,
      tcp,
      [],
      async (ep) => {
        const s = await open(ep);
        s.end(data);
        const back = await readAll(s);
        assert.ok(back.equals(data), `all ${data.length} bytes back after the half-close (${back.length})`);
      },
      disconnects(1),
      (events) => events.filter((e) => e['event'] !== 'stats').map(({ roundTrips: _r, ...e }) => e),
    );
  });

  it('a client that resets: the connection ends with ERR_CONN_RESET', { timeout: 60_000 }, async (t) => {
    if (!needNative(t)) return;
    const runs = await compare(
      t,
      tcp,
      [],
      async (ep, events) => {
        const s = await open(ep);
        await roundTrip(s, Buffer.from('before the reset'));
        // Unread data on the server's side of a reset makes the kernel report it to the reader.
        await waitUntil(() => events().some((e) => e['event'] === 'connect'), 'the connect event');
        s.resetAndDestroy();
      },
      disconnects(1),
      (events) => events.filter((e) => e['event'] !== 'stats').map(({ roundTrips: _r, ...e }) => e),
    );
    assert.equal(ofEvent(runs.native, 'disconnect')[0]!['error'], 'ERR_CONN_RESET');
  });

  it('--idle-timeout: a silent connection is closed (idle event, then disconnect) and counted', { timeout: 60_000 }, async (t) => {
    if (!needNative(t)) return;
    const runs = await compare(
      t,
      tcp,
      ['--idle-timeout', '0.3'],
      async (ep) => {
        const s = await open(ep);
        await roundTrip(s, Buffer.from('x'));
        await once(s, 'close');
      },
      disconnects(1),
    );
    assert.equal(ofEvent(runs.native, 'idle').length, 1);
    assert.equal(stopped(runs.native)['idleClosed'], 1);
  });

  it('--max-conns: a connection over the limit is refused and counted; the open one is still served', { timeout: 60_000 }, async (t) => {
    if (!needNative(t)) return;
    const runs = await compare(
      t,
      tcp,
      ['--max-conns', '1'],
      async (ep, events) => {
        const a = await open(ep);
        await roundTrip(a, Buffer.from('first'));
        const b = await open(ep);
        await once(b, 'close');
        await waitUntil(() => events().some((e) => e['event'] === 'refused'), 'the refused event');
        await roundTrip(a, Buffer.from('still served'));
        a.end();
        await once(a, 'close');
      },
      disconnects(1),
      (events) => events.filter((e) => e['event'] !== 'stats').map(({ roundTrips: _r, ...e }) => e),
    );
    assert.equal(stopped(runs.native)['refused'], 1);
  });

  it('--stats: statistics lines count the same connections and bytes', { timeout: 60_000 }, async (t) => {
    if (!needNative(t)) return;
    const lastStats = (events: Json[]): Json[] => {
      const s = events.filter((e) => e['event'] === 'stats');
      return s.length > 0 ? [s[s.length - 1]!] : [];
    };
    await compare(
      t,
      tcp,
      ['--stats', '0.1', '-q'],
      async (ep, events) => {
        const a = await open(ep);
        const b = await open(ep);
        await roundTrip(a, Buffer.alloc(1000, 1));
        await roundTrip(b, Buffer.alloc(2000, 2));
        await waitUntil(() => events().some((e) => e['event'] === 'stats' && e['connections'] === 2 && e['bytesIn'] === 3000), 'a stats line with both');
        a.end();
        b.end();
        await Promise.all([once(a, 'close'), once(b, 'close')]);
      },
      (events) => events.some((e) => e['event'] === 'stats' && e['connections'] === 0 && e['accepted'] === 2),
      (events) => lastStats(events).map(({ roundTrips: _r, ...e }) => e),
    );
  });

  it('a Unix socket: the same echo, peers named unix#ID', { timeout: 60_000 }, async (t) => {
    if (!needNative(t)) return;
    const dir = tempDir(t);
    const runs = await compare(
      t,
      (engine) => `unix:${join(dir, `${engine}.sock`)}`,
      [],
      async (ep) => {
        const s = await open(ep);
        assert.equal((await roundTrip(s, Buffer.from('over unix'))).toString(), 'over unix');
        s.end();
        await once(s, 'close');
      },
      disconnects(1),
    );
    assert.equal(ofEvent(runs.native, 'connect')[0]!['peer'], 'unix#1');
  });

  it('--workers 2: both engines serve behind one address and add up the totals', { timeout: 60_000 }, async (t) => {
    if (!needNative(t)) return;
    await compare(
      t,
      tcp,
      ['--workers', '2', '-q'],
      async (ep) => {
        const socks = await Promise.all(Array.from({ length: 6 }, () => open(ep)));
        await Promise.all(socks.map((s, i) => roundTrip(s, Buffer.alloc(100 + i, i))));
        for (const s of socks) s.end();
        await Promise.all(socks.map((s) => once(s, 'close')));
      },
      () => true,
      (events) => events.filter((e) => e['event'] === 'stopped').map(({ roundTrips: _r, ...e }) => e),
    );
  });

  it('graceful stop: a live connection is served through the grace period, then the server exits', { timeout: 60_000 }, async (t) => {
    if (!needNative(t)) return;
    const results: Record<string, unknown[]> = {};
    for (const engine of ENGINES) {
      const proc = spawnCli(['echo-server', '127.0.0.1:0', '--json', '--engine', engine, '--grace', '20'], t);
      const ep = parseEndpoint(String((JSON.parse(await proc.stdout.waitFor((l) => l.includes('"listening"'), 20_000)) as Json)['address']), { defaultHost: '127.0.0.1' });
      const s = await open(ep);
      await roundTrip(s, Buffer.from('before'));
      proc.kill('SIGTERM');
      // Stopping: the listener closes first, while the live connection is kept.
      await refusedSoon(ep);
      const during = (await roundTrip(s, Buffer.from('during the grace'))).toString();
      s.end();
      const { code } = await proc.waitExit(15_000);
      const st = JSON.parse(proc.stdout.lines.find((l) => l.includes('"event":"stopped"'))!) as Json;
      results[engine] = [during, code, st['bytesIn'], st['bytesOut'], st['active']];
    }
    assert.deepEqual(results['native'], results['js']);
    assert.deepEqual(results['native'], ['during the grace', 143, 22, 22, 0]);
  });

  it('choosing: --engine native is the default for plain TCP, SOCKETKIT_NATIVE=0 gives js and says why, an unknown engine is a usage error', { timeout: 60_000 }, async (t) => {
    if (!needNative(t)) return;
    const v = await runCli(['--version']);
    assert.match(v.stdout.toString(), /^echo-server engine: native/m);
    const off = await runCli(['--version'], { env: { ...process.env, SOCKETKIT_NATIVE: '0' } });
    assert.match(off.stdout.toString(), /^echo-server engine: js \(turned off by SOCKETKIT_NATIVE=0\)/m);
    assert.match(v.stdout.toString(), /^load engine: native /m);
    assert.match(off.stdout.toString(), /^load engine: js \(turned off by SOCKETKIT_NATIVE=0\)/m);
    const bad = await runCli(['echo-server', '127.0.0.1:0', '--engine', 'rust']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /ERR_USAGE/);
    const forced = await runCli(['echo-server', '127.0.0.1:0', '--engine', 'native'], { env: { ...process.env, SOCKETKIT_NATIVE: '0' } });
    assert.match(forced.stderr, /native engine cannot run: turned off by SOCKETKIT_NATIVE=0 \(ERR_USAGE\)/);
    const proc = spawnCli(['echo-server', '127.0.0.1:0'], t);
    await proc.stderr.waitFor(/^engine: native$/);
    proc.kill('SIGTERM');
    await proc.waitExit();
  });
  it('--udp: every datagram back to its sender, the same totals on both engines; -q lets the default be native', { timeout: 60_000 }, async (t) => {
    if (!needNative(t)) return;
    const totals: Record<string, unknown> = {};
    for (const engine of ENGINES) {
      const proc = spawnCli(['echo-server', '--udp', '127.0.0.1:0', '--json', '-q', '--engine', engine], t);
      const listening = JSON.parse(await proc.stdout.waitFor((l) => l.includes('"listening"'), 20_000)) as Json;
      assert.equal(listening['engine'], engine);
      const port = Number(String(listening['address']).split(':').pop());
      const s = createSocket('udp4');
      t.after(() => s.close());
      await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', resolve));
      for (const size of [0, 1, 64, 1400, 9000, 65_507]) {
        const d = randomBytes(size);
        const echoed = once(s, 'message') as Promise<[Buffer]>;
        s.send(d, port, '127.0.0.1');
        const [back] = await echoed;
        assert.ok(back.equals(d), `${engine}: a ${size}-byte datagram came back intact`);
      }
      proc.kill('SIGTERM');
      const { code } = await proc.waitExit(15_000);
      const st = JSON.parse(proc.stdout.lines.find((l) => l.includes('"event":"stopped"'))!) as Json;
      totals[engine] = [code, st['datagramsIn'], st['datagramsOut'], st['bytesIn'], st['bytesOut'], st['dropped'], st['sendErrors']];
    }
    assert.deepEqual(totals['native'], totals['js'], JSON.stringify(totals));
    assert.deepEqual(totals['native'], [143, 6, 6, 75_972, 75_972, 0, 0]);
    const loud = spawnCli(['echo-server', '--udp', '127.0.0.1:0'], t);
    await loud.stderr.waitFor(/^engine: js \(per-peer reports \(without -q\) runs on the js engine only\)$/);
    loud.kill('SIGTERM');
    await loud.waitExit();
  });
});

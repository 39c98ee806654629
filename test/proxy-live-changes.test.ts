// Toxics changed while connections are open reach those connections, as in toxiproxy: a toxic
// added, updated or removed (in process with startProxy, and through the HTTP API) acts on a
// connection that was already open; a removed toxic passes on what it held at once, in order.
// The chain's part (stages added and removed mid-stream) is tested on a virtual clock.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Chain, seededRandom, startApiServer, startProxy, toxicConfig, toxicStage, type StageContext, type StageOutput } from '../src/proxy/index.js';
import { startManagedEchoServer } from '../src/server/index.js';
import { formatEndpoint, parseEndpoint, type Endpoint } from '../src/net/endpoint.js';
import { rawConnect, roundTripMs, waitUntil } from './helpers/net.js';
import type { CleanupContext } from './helpers/tmp.js';

const v4: Endpoint = { kind: 'inet', host: '127.0.0.1', port: 0 };

/** A virtual clock and an output that records what reaches it, and when. */
function recorder(): { ctx: StageContext; sink: StageOutput; out: string[]; advance: (ms: number) => void } {
  let t = 0;
  const timers = new Set<{ at: number; fn: () => void }>();
  const out: string[] = [];
  const ctx: StageContext = {
    now: () => t,
    random: seededRandom(7),
    setTimer: (fn, ms) => {
      const x = { at: t + ms, fn };
      timers.add(x);
      return () => timers.delete(x);
    },
    datagram: false,
  };
  const sink: StageOutput = {
    push: (c) => out.push(`${t}:${c.toString()}`),
    end: () => out.push(`${t}:END`),
    close: () => out.push(`${t}:CLOSE`),
    reset: () => out.push(`${t}:RESET`),
  };
  const advance = (ms: number): void => {
    const until = t + ms;
    for (;;) {
      let next: { at: number; fn: () => void } | undefined;
      for (const x of timers) if (x.at <= until && (!next || x.at < next.at)) next = x;
      if (!next) break;
      timers.delete(next);
      t = Math.max(t, next.at);
      next.fn();
    }
    t = until;
  };
  return { ctx, sink, out, advance };
}

const stage = (type: string, attributes: Record<string, unknown>, udp = false): ReturnType<typeof toxicStage> => toxicStage(toxicConfig({ type, attributes }, udp));

describe('a chain changed while bytes flow', () => {
  it('a stage added before another acts from then on; names keep the order asked for', () => {
    const r = recorder();
    const c = new Chain([], r.sink, r.ctx);
    c.start();
    c.write(Buffer.from('a'));
    c.add('lat', stage('latency', { latency: 100 }));
    c.add('first', stage('latency', { latency: 10 }), ['lat']);
    assert.deepEqual(c.names, ['first', 'lat']);
    c.write(Buffer.from('b'));
    r.advance(200);
    assert.deepEqual(r.out, ['0:a', '110:b']);
  });

  it('removing a latency stage passes what it holds at once, in order, then the end; later chunks follow', () => {
    const r = recorder();
    const c = new Chain([], r.sink, r.ctx);
    c.start();
    c.add('lat', stage('latency', { latency: 1000 }));
    c.write(Buffer.from('1'));
    r.advance(10);
    c.write(Buffer.from('2'));
    assert.equal(c.buffered, 2);
    r.advance(10);
    assert.deepEqual(r.out, []);
    assert.equal(c.remove('lat'), true);
    assert.equal(c.remove('lat'), false);
    assert.equal(c.buffered, 0);
    c.write(Buffer.from('3'));
    c.end();
    r.advance(2000);
    assert.deepEqual(r.out, ['20:1', '20:2', '20:3', '20:END']);
  });

  it('a stage taken out of the middle hands what it holds to the stage after it', () => {
    const r = recorder();
    const c = new Chain([], r.sink, r.ctx);
    c.start();
    c.add('a', stage('latency', { latency: 100 }));
    c.add('b', stage('latency', { latency: 50 }));
    c.write(Buffer.from('x'));
    c.remove('a'); // 'x' goes on to b at 0: leaves at 50
    r.advance(200);
    assert.deepEqual(r.out, ['50:x']);
  });

  it('slow_close removed: the end it delays passes; timeout removed: the end it swallowed passes; reorder removed: held datagrams leave', () => {
    const r1 = recorder();
    const c1 = new Chain([], r1.sink, r1.ctx);
    c1.start();
    c1.add('s', stage('slow_close', { delay: 5000 }));
    c1.end();
    r1.advance(100);
    c1.remove('s');
    assert.deepEqual(r1.out, ['100:END']);
    r1.advance(10_000);
    assert.deepEqual(r1.out, ['100:END'], 'the end passes once');

    const r2 = recorder();
    const c2 = new Chain([], r2.sink, r2.ctx);
    c2.start();
    c2.add('t', stage('timeout', { timeout: 0 }));
    c2.write(Buffer.from('dropped'));
    c2.end();
    c2.remove('t');
    assert.deepEqual(r2.out, ['0:END']);

    const r3 = recorder();
    const c3 = new Chain([], r3.sink, { ...r3.ctx, datagram: true });
    c3.start();
    c3.add('r', stage('reorder', { rate: 1, delay: 1000 }, true));
    c3.write(Buffer.from('p'));
    c3.write(Buffer.from('q'));
    assert.equal(c3.buffered, 2);
    c3.remove('r');
    assert.equal(c3.buffered, 0);
    r3.advance(2000);
    assert.deepEqual(r3.out, ['0:p', '0:q']);
  });

  it('a stage added to a started chain starts its connection-wide timer then', () => {
    const r = recorder();
    const c = new Chain([], r.sink, r.ctx);
    c.start();
    r.advance(1000);
    c.add('rp', stage('reset_peer', { timeout: 500 }));
    r.advance(499);
    assert.deepEqual(r.out, []);
    r.advance(1);
    assert.deepEqual(r.out, ['1500:RESET']);
  });
});

async function echo(t: CleanupContext): Promise<Endpoint> {
  const s = await startManagedEchoServer(v4);
  t.after(() => s.close(0));
  return s.endpoint;
}

describe('toxics changed on a live connection (startProxy)', () => {
  it('addToxic, updateToxic and removeToxic act on a connection that was already open', async (t) => {
    const p = await startProxy(v4, await echo(t));
    t.after(() => p.close(0));
    const c = await rawConnect(p.endpoint);
    t.after(() => c.destroy());
    assert.ok((await roundTripMs(c, 'a')) < 400, 'no toxic yet');
    p.addToxic({ name: 'slow', type: 'latency', attributes: { latency: 400 } });
    assert.ok((await roundTripMs(c, 'b')) >= 399, 'added: the open connection is slowed');
    p.updateToxic('slow', { attributes: { latency: 800 } });
    assert.ok((await roundTripMs(c, 'c')) >= 799, 'updated: the new latency');
    p.updateToxic('slow', { stream: 'upstream', attributes: { latency: 400 } });
    assert.ok((await roundTripMs(c, 'd')) >= 399, 'moved to the other direction, still slowed');
    p.removeToxic('slow');
    assert.ok((await roundTripMs(c, 'e')) < 400, 'removed: fast again');
  });

  it('removing a toxic that holds bytes of a live connection lets them through at once, none lost', async (t) => {
    const p = await startProxy(v4, await echo(t), { toxics: [{ name: 'hold', type: 'latency', attributes: { latency: 60_000 } }] });
    t.after(() => p.close(0));
    const c = await rawConnect(p.endpoint);
    t.after(() => c.destroy());
    const text = 'y'.repeat(10_000);
    const rtt = roundTripMs(c, text, 20_000);
    await waitUntil(() => [...p.connections].some((x) => x.held.down === text.length), 'the echo to be held by the latency toxic');
    p.removeToxic('hold');
    assert.ok((await rtt) < 10_000, 'every byte came back long before the 60 s latency');
  });

  it('a toxic added with toxicity 0 reaches no live connection', async (t) => {
    const p = await startProxy(v4, await echo(t));
    t.after(() => p.close(0));
    const c = await rawConnect(p.endpoint);
    t.after(() => c.destroy());
    p.addToxic({ type: 'timeout', toxicity: 0, attributes: { timeout: 0 } });
    assert.ok((await roundTripMs(c, 'still here', 5_000)) < 5_000);
  });
});

describe('toxics changed on a live connection (HTTP API)', () => {
  it('POST, PATCH and DELETE /proxies/{name}/toxics act on open connections; POST /reset too', async (t) => {
    const api = await startApiServer(v4);
    t.after(() => api.close());
    const base = `http://${formatEndpoint(api.endpoint)}`;
    const call = async (method: string, path: string, body?: unknown): Promise<{ status: number; json: unknown }> => {
      const r = await fetch(`${base}${path}`, { method, ...(body !== undefined ? { body: JSON.stringify(body) } : {}), signal: AbortSignal.timeout(5000) });
      const text = await r.text();
      return { status: r.status, json: text === '' ? undefined : (JSON.parse(text) as unknown) };
    };
    const made = await call('POST', '/proxies', { name: 'live', listen: '127.0.0.1:0', upstream: formatEndpoint(await echo(t)) });
    assert.equal(made.status, 201);
    const c = await rawConnect(parseEndpoint((made.json as { listen: string }).listen, { defaultHost: '127.0.0.1' }));
    t.after(() => c.destroy());
    assert.ok((await roundTripMs(c, 'a')) < 400);
    assert.equal((await call('POST', '/proxies/live/toxics', { name: 'lat', type: 'latency', attributes: { latency: 400 } })).status, 200);
    assert.ok((await roundTripMs(c, 'b')) >= 399, 'POST reached the open connection');
    assert.equal((await call('PATCH', '/proxies/live/toxics/lat', { attributes: { latency: 800 } })).status, 200);
    assert.ok((await roundTripMs(c, 'c')) >= 799, 'PATCH reached it');
    assert.equal((await call('DELETE', '/proxies/live/toxics/lat')).status, 204);
    assert.ok((await roundTripMs(c, 'd')) < 400, 'DELETE reached it');
    assert.equal((await call('POST', '/proxies/live/toxics', { name: 'lat2', type: 'latency', attributes: { latency: 400 } })).status, 200);
    assert.ok((await roundTripMs(c, 'e')) >= 399);
    assert.equal((await call('POST', '/reset')).status, 204);
    assert.ok((await roundTripMs(c, 'f')) < 400, '/reset removed it from the open connection');
  });
});

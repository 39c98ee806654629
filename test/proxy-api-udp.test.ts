// UDP proxies through the toxiproxy-compatible API (socketkit's addition: `"protocol": "udp"`):
// created, listed and shown with their protocol, driven by the same toxic endpoints with the UDP
// toxics (a TCP-only toxic is a 400), changes reaching a live session, disable and enable
// keeping the toxics, /populate, /metrics, and `socketkit proxy --api --udp LISTEN UPSTREAM`.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type Socket as DgramSocket } from 'node:dgram';
import { startApiServer } from '../src/proxy/index.js';
import { startUdpEchoServer } from '../src/udp/index.js';
import { formatEndpoint, parseEndpoint, type Endpoint } from '../src/net/endpoint.js';
import { ndjson, spawnCli } from './helpers/cli.js';
import { waitUntil } from './helpers/net.js';
import type { CleanupContext } from './helpers/tmp.js';

const v4: Endpoint = { kind: 'inet', host: '127.0.0.1', port: 0 };

type Call = (method: string, path: string, body?: unknown) => Promise<{ status: number; json: unknown }>;

async function api(t: CleanupContext): Promise<Call> {
  const server = await startApiServer(v4);
  t.after(() => server.close());
  const base = `http://${formatEndpoint(server.endpoint)}`;
  return async (method, path, body) => {
    const r = await fetch(`${base}${path}`, { method, ...(body !== undefined ? { body: JSON.stringify(body) } : {}), signal: AbortSignal.timeout(5000) });
    const text = await r.text();
    return { status: r.status, json: text === '' || (!text.startsWith('{') && !text.startsWith('[')) ? text : (JSON.parse(text) as unknown) };
  };
}

async function udpEcho(t: CleanupContext): Promise<string> {
  const s = await startUdpEchoServer(v4);
  t.after(() => s.close());
  return formatEndpoint(s.endpoint);
}

/** A UDP client that records what comes back. */
async function client(t: CleanupContext): Promise<{ socket: DgramSocket; got: string[] }> {
  const socket = createSocket('udp4');
  const got: string[] = [];
  socket.on('message', (m) => got.push(m.toString()));
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => socket.close(() => resolve())));
  return { socket, got };
}

/** Sends `text` to `to` and resolves with the ms until its first echo (rejects after 5 s). */
async function echoMs(c: { socket: DgramSocket; got: string[] }, to: string, text: string): Promise<number> {
  const ep = parseEndpoint(to, { defaultHost: '127.0.0.1' });
  if (ep.kind !== 'inet') throw new Error('inet only');
  const t0 = performance.now();
  c.socket.send(text, ep.port, ep.host);
  await waitUntil(() => c.got.includes(text), `the echo of ${text}`);
  return performance.now() - t0;
}

const listenOf = (json: unknown): string => (json as { listen: string }).listen;

describe('UDP proxies in the API', () => {
  it('create with protocol udp (and its toxics), list, show; a TCP-only toxic or a bad protocol is a 400', async (t) => {
    const call = await api(t);
    const upstream = await udpEcho(t);
    const made = await call('POST', '/proxies', { name: 'dns', protocol: 'udp', listen: '127.0.0.1:0', upstream, toxics: [{ type: 'latency', attributes: { latency: 300 } }] });
    assert.equal(made.status, 201);
    const p = made.json as { protocol: string; listen: string; toxics: { type: string }[] };
    assert.equal(p.protocol, 'udp');
    assert.deepEqual(p.toxics.map((x) => x.type), ['latency']);
    const list = (await call('GET', '/proxies')).json as Record<string, { protocol?: string }>;
    assert.equal(list['dns']!.protocol, 'udp');
    assert.equal(((await call('GET', '/proxies/dns')).json as { protocol: string }).protocol, 'udp');
    const c = await client(t);
    assert.ok((await echoMs(c, p.listen, 'first')) >= 299, 'the first datagram already has the latency');

    const slicer = await call('POST', '/proxies/dns/toxics', { type: 'slicer', attributes: { average_size: 1 } });
    assert.equal(slicer.status, 400);
    assert.match((slicer.json as { error: string }).error, /TCP streams, not UDP/);
    assert.equal((await call('POST', '/proxies', { name: 'x', protocol: 'sctp', upstream })).status, 400);
    assert.equal((await call('POST', '/proxies', { name: 'y', protocol: 'udp', upstream, toxics: [{ type: 'reset_peer' }] })).status, 400);
    assert.equal((await call('GET', '/proxies/y')).status, 404);
    assert.equal((await call('POST', '/proxies/dns', { protocol: 'tcp' })).status, 400, 'a proxy cannot change its protocol');
    // A TCP proxy's JSON stays toxiproxy's shape.
    assert.equal((await call('POST', '/proxies', { name: 'tcp', upstream: '127.0.0.1:9' })).status, 201);
    assert.equal('protocol' in ((await call('GET', '/proxies/tcp')).json as object), false);
  });

  it('toxics added, changed and removed reach a live session; disable and enable keep them', async (t) => {
    const call = await api(t);
    const made = await call('POST', '/proxies', { name: 'u', protocol: 'udp', listen: '127.0.0.1:0', upstream: await udpEcho(t) });
    const listen = listenOf(made.json);
    const c = await client(t);
    assert.ok((await echoMs(c, listen, 'a')) < 300, 'no toxic yet');
    assert.equal((await call('POST', '/proxies/u/toxics', { name: 'lat', type: 'latency', attributes: { latency: 300 } })).status, 200);
    assert.ok((await echoMs(c, listen, 'b')) >= 299, 'the live session got the latency');
    assert.equal((await call('POST', '/proxies/u/toxics', { name: 'dup', type: 'duplicate', attributes: { rate: 1 } })).status, 200);
    await echoMs(c, listen, 'c');
    await waitUntil(() => c.got.filter((x) => x === 'c').length === 2, 'the duplicate of c');
    assert.equal((await call('PATCH', '/proxies/u/toxics/lat', { attributes: { latency: 600 } })).status, 200);
    assert.ok((await echoMs(c, listen, 'd')) >= 599, 'the change reached the session');
    assert.equal((await call('DELETE', '/proxies/u/toxics/lat')).status, 204);
    assert.equal((await call('DELETE', '/proxies/u/toxics/dup')).status, 204);
    assert.ok((await echoMs(c, listen, 'e')) < 300, 'removed from the live session');

    assert.equal((await call('POST', '/proxies/u/toxics', { name: 'lat', type: 'latency', attributes: { latency: 300 } })).status, 200);
    assert.equal((await call('POST', '/proxies/u', { enabled: false })).status, 200);
    const off = (await call('GET', '/proxies/u')).json as { enabled: boolean; toxics: unknown[] };
    assert.equal(off.enabled, false);
    assert.equal(off.toxics.length, 1, 'toxics kept while disabled');
    assert.equal((await call('POST', '/proxies/u/toxics', { type: 'slicer' })).status, 400, 'still checked as UDP while disabled');
    assert.equal((await call('POST', '/proxies/u', { enabled: true })).status, 200);
    const c2 = await client(t);
    assert.ok((await echoMs(c2, listenOf((await call('GET', '/proxies/u')).json), 'f')) >= 299, 'enabled again with its toxic');

    const metrics = (await call('GET', '/metrics')).json as string;
    assert.match(metrics, /socketkit_proxy_connections_open\{proxy="u",.*protocol="udp"\} 1/);
    assert.match(metrics, /socketkit_proxy_received_bytes_total\{proxy="u",.*protocol="udp"\} 1\b/);
  });

  it('/populate creates UDP proxies; a protocol change replaces the proxy', async (t) => {
    const call = await api(t);
    const upstream = await udpEcho(t);
    const r = await call('POST', '/populate', [{ name: 'p', protocol: 'udp', listen: '127.0.0.1:0', upstream }]);
    assert.equal(r.status, 201);
    const listen = ((r.json as { proxies: { listen: string }[] }).proxies[0]!).listen;
    const c = await client(t);
    await echoMs(c, listen, 'through');
    const again = await call('POST', '/populate', [{ name: 'p', listen: '127.0.0.1:0', upstream: '127.0.0.1:9' }]);
    assert.equal(again.status, 201);
    assert.equal('protocol' in ((await call('GET', '/proxies/p')).json as object), false, 'replaced by a TCP proxy');
  });

  it('socketkit proxy --api --udp LISTEN UPSTREAM: the proxy named proxy is a UDP one', async (t) => {
    const upstream = await udpEcho(t);
    const proc = spawnCli(['proxy', '--api', '127.0.0.1:0', '--udp', '127.0.0.1:0', upstream, '--toxic', 'duplicate:rate=1', '--json'], t);
    const e = ndjson(await proc.stdout.waitFor(/"event":"listening"/))[0]!;
    const p = (e['proxies'] as Record<string, { protocol: string; listen: string; toxics: { type: string }[] }>)['proxy']!;
    assert.equal(p.protocol, 'udp');
    assert.deepEqual(p.toxics.map((x) => x.type), ['duplicate']);
    const c = await client(t);
    await echoMs(c, p.listen, 'twice');
    await waitUntil(() => c.got.length === 2, 'the duplicate');
    proc.kill('SIGTERM');
    assert.equal((await proc.waitExit()).code, 143);
  });
});

// The toxiproxy-compatible HTTP API (src/proxy/api.ts, `socketkit proxy --api`): every endpoint
// with plain HTTP requests, the JSON shapes and status codes of toxiproxy's api.go, errors
// (unknown proxy, duplicate name, bad toxic type, bad attribute, a port in use), a proxy created
// with its toxics in one request, and --config.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startApiServer, type ApiServer } from '../src/proxy/index.js';
import { startManagedEchoServer } from '../src/server/index.js';
import { formatEndpoint, parseEndpoint, type Endpoint } from '../src/net/endpoint.js';
import { runCli, spawnCli } from './helpers/cli.js';
import { rawConnect, roundTripMs } from './helpers/net.js';
import { tempDir, type CleanupContext } from './helpers/tmp.js';

const v4: Endpoint = { kind: 'inet', host: '127.0.0.1', port: 0 };

async function api(t: CleanupContext, config?: unknown): Promise<{ server: ApiServer; call: (method: string, path: string, body?: unknown) => Promise<{ status: number; json: unknown; text: string }> }> {
  const server = await startApiServer(v4, config);
  t.after(() => server.close());
  const base = `http://${formatEndpoint(server.endpoint)}`;
  const call = async (method: string, path: string, body?: unknown): Promise<{ status: number; json: unknown; text: string }> => {
    const r = await fetch(`${base}${path}`, { method, ...(body !== undefined ? { body: JSON.stringify(body), headers: { 'Content-Type': 'application/json' } } : {}), signal: AbortSignal.timeout(5000) });
    const text = await r.text();
    let json: unknown;
    try {
      json = text === '' ? undefined : JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: r.status, json, text };
  };
  return { server, call };
}

async function echoServer(t: CleanupContext): Promise<string> {
  const s = await startManagedEchoServer(v4);
  t.after(() => s.close(0));
  return formatEndpoint(s.endpoint);
}

const listenOf = (json: unknown): Endpoint => parseEndpoint((json as { listen: string }).listen, { defaultHost: '127.0.0.1' });

describe('toxiproxy-compatible API', () => {
  it('proxies: create 201, list, show, update, delete 204; errors 400, 404, 409', async (t) => {
    const { call } = await api(t);
    const upstream = await echoServer(t);
    assert.deepEqual((await call('GET', '/version')).json, { version: 'socketkit-0.1.0' });
    const created = await call('POST', '/proxies', { name: 'redis', listen: '127.0.0.1:0', upstream });
    assert.equal(created.status, 201);
    const p = created.json as Record<string, unknown>;
    assert.equal(p['name'], 'redis');
    assert.equal(p['upstream'], upstream);
    assert.equal(p['enabled'], true);
    assert.deepEqual(p['toxics'], []);
    const lp = listenOf(p);
    assert.ok(lp.kind === 'inet' && lp.port !== 0, 'the bound port is reported');
    const list = (await call('GET', '/proxies')).json as Record<string, unknown>;
    assert.deepEqual(Object.keys(list), ['redis']);
    assert.equal((await call('GET', '/proxies/redis')).status, 200);

    assert.equal((await call('POST', '/proxies', { name: 'redis', listen: '127.0.0.1:0', upstream })).status, 409);
    const missing = await call('POST', '/proxies', { name: 'x' });
    assert.equal(missing.status, 400);
    assert.deepEqual(missing.json, { error: 'missing required field: upstream', status: 400 });
    assert.equal((await call('POST', '/proxies', { upstream })).status, 400);
    assert.equal((await call('GET', '/proxies/nope')).status, 404);
    assert.deepEqual((await call('DELETE', '/proxies/nope')).json, { error: 'proxy not found', status: 404 });
    assert.equal((await call('POST', '/proxies', 'not json{')).status, 400);

    // A port in use: 500, as toxiproxy answers a listen failure.
    const inUse = formatEndpoint(listenOf(p));
    const clash = await call('POST', '/proxies', { name: 'other', listen: inUse, upstream });
    assert.equal(clash.status, 500);
    assert.match((clash.json as { error: string }).error, /in use/);

    // Disable: nothing listens; enable again.
    const off = await call('PATCH', '/proxies/redis', { enabled: false });
    assert.equal((off.json as { enabled: boolean }).enabled, false);
    await assert.rejects(rawConnect(listenOf(p)));
    const on = await call('POST', '/proxies/redis', { enabled: true });
    assert.equal(on.status, 200);
    assert.deepEqual(listenOf(on.json), listenOf(p), 'enabled again on the same address');
    const c = await rawConnect(listenOf(on.json));
    c.destroy();

    assert.equal((await call('DELETE', '/proxies/redis')).status, 204);
    assert.deepEqual((await call('GET', '/proxies')).json, {});
  });

  it('toxics: create 200, list, show, update, delete 204; bad type and bad attribute 400; duplicate 409', async (t) => {
    const { call } = await api(t);
    const upstream = await echoServer(t);
    const p = (await call('POST', '/proxies', { name: 'svc', listen: '127.0.0.1:0', upstream })).json;
    const made = await call('POST', '/proxies/svc/toxics', { type: 'latency', attributes: { latency: 150 } });
    assert.equal(made.status, 200);
    assert.deepEqual(made.json, { name: 'latency_downstream', type: 'latency', stream: 'downstream', toxicity: 1, attributes: { latency: 150, jitter: 0 } });
    const c = await rawConnect(listenOf(p));
    t.after(() => c.destroy());
    assert.ok((await roundTripMs(c, 'x')) >= 149);
    assert.equal((await call('POST', '/proxies/svc/toxics', { type: 'latency' })).status, 409);
    const badType = await call('POST', '/proxies/svc/toxics', { type: 'lightning' });
    assert.equal(badType.status, 400);
    assert.match((badType.json as { error: string }).error, /^invalid toxic type/);
    assert.equal((await call('POST', '/proxies/svc/toxics', { type: 'latency', name: 'l2', attributes: { latency: 'slow' } })).status, 400);
    assert.equal((await call('POST', '/proxies/svc/toxics', { type: 'latency', name: 'l3', attributes: { nope: 1 } })).status, 400);
    assert.equal((await call('POST', '/proxies/nope/toxics', { type: 'latency' })).status, 404);
    assert.equal(((await call('GET', '/proxies/svc/toxics')).json as unknown[]).length, 1);
    const up = await call('PATCH', '/proxies/svc/toxics/latency_downstream', { attributes: { latency: 10 } });
    assert.equal((up.json as { attributes: { latency: number } }).attributes.latency, 10);
    assert.equal((await call('GET', '/proxies/svc/toxics/latency_downstream')).status, 200);
    assert.equal((await call('GET', '/proxies/svc/toxics/none')).status, 404);
    assert.equal((await call('DELETE', '/proxies/svc/toxics/latency_downstream')).status, 204);
    assert.equal((await call('DELETE', '/proxies/svc/toxics/latency_downstream')).status, 404);
    const show = (await call('GET', '/proxies/svc')).json as { toxics: unknown[] };
    assert.deepEqual(show.toxics, []);
  });

  it('a proxy created with its toxics in one request: the first connection already has them', async (t) => {
    const { call } = await api(t);
    const upstream = await echoServer(t);
    const r = await call('POST', '/proxies', { name: 'slow', listen: '127.0.0.1:0', upstream, toxics: [{ type: 'latency', attributes: { latency: 150 } }] });
    assert.equal(r.status, 201);
    const c = await rawConnect(listenOf(r.json));
    t.after(() => c.destroy());
    assert.ok((await roundTripMs(c, 'x')) >= 149);
    assert.equal((await call('POST', '/proxies', { name: 'bad', upstream, toxics: [{ type: 'nope' }] })).status, 400);
    assert.equal((await call('GET', '/proxies/bad')).status, 404);
  });

  it('populate 201, reset 204 (toxics removed, proxies enabled), metrics, unknown path 404', async (t) => {
    const { call } = await api(t);
    const upstream = await echoServer(t);
    const pop = await call('POST', '/populate', [
      { name: 'a', listen: '127.0.0.1:0', upstream },
      { name: 'b', listen: '127.0.0.1:0', upstream, enabled: false },
    ]);
    assert.equal(pop.status, 201);
    assert.equal((pop.json as { proxies: unknown[] }).proxies.length, 2);
    assert.equal((await call('POST', '/populate', { not: 'an array' })).status, 400);
    await call('POST', '/proxies/a/toxics', { type: 'timeout' });
    assert.equal((await call('POST', '/reset')).status, 204);
    const list = (await call('GET', '/proxies')).json as Record<string, { enabled: boolean; toxics: unknown[] }>;
    assert.deepEqual(list['a']!.toxics, []);
    assert.equal(list['b']!.enabled, true);
    const m = await call('GET', '/metrics');
    assert.equal(m.status, 200);
    assert.match(m.text, /^socketkit_proxy_connections_total\{proxy="a",/m);
    assert.equal((await call('GET', '/nothing')).status, 404);
  });

  it('socketkit proxy --api with --config (toxiproxy JSON) and a bad config', async (t) => {
    const upstream = await echoServer(t);
    const dir = tempDir(t);
    const cfg = join(dir, 'toxiproxy.json');
    writeFileSync(cfg, JSON.stringify([{ name: 'web', listen: '127.0.0.1:0', upstream }]));
    const proc = spawnCli(['proxy', '--api', '127.0.0.1:0', '--config', cfg, '--json'], t);
    const line = JSON.parse(await proc.stdout.waitFor(/"event":"listening"/)) as { api: string; proxies: Record<string, { listen: string }> };
    const r = await fetch(`http://${line.api}/proxies/web`, { signal: AbortSignal.timeout(5000) });
    assert.equal(r.status, 200);
    const c = await rawConnect(parseEndpoint(line.proxies['web']!.listen, { defaultHost: '127.0.0.1' }));
    c.destroy();
    proc.kill('SIGTERM');
    assert.equal((await proc.waitExit()).code, 143, 'SIGTERM: 128 + 15');
    writeFileSync(cfg, '[{"name": "x"}]');
    const bad = await runCli(['proxy', '--api', '127.0.0.1:0', '--config', cfg]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /ERR_BAD_CONFIG/);
    const needs = await runCli(['proxy', '127.0.0.1:0', upstream, '--config', cfg]);
    assert.match(needs.stderr, /ERR_USAGE/);
  });
});

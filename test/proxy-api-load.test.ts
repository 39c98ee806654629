// The API keeps answering while thousands of connections pass through the proxy it runs
// (toxiproxy #412, #558): 2,500 connections held open through `socketkit proxy --api`, echoing
// in a closed loop (`socketkit load`, its own process, to a `socketkit echo-server`), while this
// process, doing nothing else, makes API requests (list, metrics, add, change and remove a
// toxic on every live connection) and times each. Bounded: the connection count, the number of
// requests, each request's time, and the whole run.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ndjson, spawnCli } from './helpers/cli.js';
import { freePort, waitForListening } from './helpers/net.js';

const CONNECTIONS = 2_500;
/** Requests made while the connections are open and busy. */
const ROUNDS = 10;
/**
 * The most one API request may take, and the most their median may. On the shared 2-core test
 * machine (load average 5-10) the slowest, the first as the load's measured run starts and all
 * 2,500 connections send at once, took 1.7-2.6 s, the median about 0.1 s; a hung API (toxiproxy
 * #412) takes for ever.
 */
const REQUEST_BOUND_MS = 5_000;
const MEDIAN_BOUND_MS = 1_000;

describe('the API under load', () => {
  it(`answers within ${REQUEST_BOUND_MS / 1000} s (median within ${MEDIAN_BOUND_MS / 1000} s) while ${CONNECTIONS.toLocaleString('en-US')} connections echo through its proxy`, { timeout: 120_000 }, async (t) => {
    const echoPort = await freePort();
    const echo = spawnCli(['echo-server', `127.0.0.1:${echoPort}`, '-q'], t);
    await waitForListening({ kind: 'inet', host: '127.0.0.1', port: echoPort });
    const proxy = spawnCli(['proxy', '--api', '127.0.0.1:0', '127.0.0.1:0', `127.0.0.1:${echoPort}`, '--json', '-q'], t);
    const listening = ndjson(await proxy.stdout.waitFor(/"event":"listening"/))[0]!;
    const base = `http://${listening['api'] as string}`;
    const listen = (listening['proxies'] as Record<string, { listen: string }>)['proxy']!.listen;

    const times: number[] = [];
    const call = async (method: string, path: string, body?: unknown): Promise<{ status: number; text: string }> => {
      const t0 = performance.now();
      const r = await fetch(`${base}${path}`, { method, ...(body !== undefined ? { body: JSON.stringify(body) } : {}), signal: AbortSignal.timeout(10_000) });
      const text = await r.text();
      times.push(performance.now() - t0);
      return { status: r.status, text };
    };
    const open = async (): Promise<number> => Number(/socketkit_proxy_connections_open\{proxy="proxy"[^}]*\} (\d+)/.exec((await call('GET', '/metrics')).text)?.[1] ?? 0);

    const load = spawnCli(['load', listen, '-c', String(CONNECTIONS), '-s', '64', '-d', '60', '--connect-rate', '1000', '--timeout', '30', '--json'], t);
    // The connections open at a bounded rate; the API answers while they do.
    const deadline = performance.now() + 60_000;
    while ((await open()) < CONNECTIONS) {
      assert.ok(performance.now() < deadline, `not all ${CONNECTIONS} connections opened within 60 s`);
      await new Promise((r) => setTimeout(r, 200)); // polling interval of the API, not a wait for an event
    }
    times.length = 0;
    for (let i = 0; i < ROUNDS; i++) {
      assert.equal((await call('GET', '/proxies')).status, 200);
      assert.equal((await call('POST', '/proxies/proxy/toxics', { name: 'lat', type: 'latency', attributes: { latency: 1 } })).status, 200);
      assert.equal((await call('PATCH', '/proxies/proxy/toxics/lat', { attributes: { latency: 2 } })).status, 200);
      assert.equal((await call('DELETE', '/proxies/proxy/toxics/lat')).status, 204);
      assert.ok((await open()) >= CONNECTIONS, 'the connections stay open throughout');
    }
    const worst = Math.max(...times);
    assert.equal(times.length, ROUNDS * 5);
    const median = [...times].sort((a, b) => a - b)[times.length >> 1]!;
    assert.ok(worst < REQUEST_BOUND_MS, `slowest API request ${worst.toFixed(0)} ms (of ${times.length})`);
    assert.ok(median < MEDIAN_BOUND_MS, `median API request ${median.toFixed(0)} ms`);

    // The traffic flowed all along: stop the load run and read what it measured.
    load.kill('SIGINT');
    await load.waitExit(30_000);
    const summary = ndjson(load.stdout.text).find((e) => e['event'] === 'load');
    assert.ok(summary, load.stderr.text);
    assert.equal(summary['connected'], CONNECTIONS);
    // Stopped by SIGINT: the round trip each connection had in flight is 'unanswered'; nothing else failed.
    const failures = summary['failures'] as Record<string, number>;
    assert.deepEqual({ timeout: failures['timeout'], connection: failures['connection'], mismatch: failures['mismatch'] }, { timeout: 0, connection: 0, mismatch: 0 }, JSON.stringify(summary));
    assert.ok((summary['completed'] as number) > CONNECTIONS, `round trips completed: ${String(summary['completed'])}`);
    proxy.kill('SIGTERM');
    echo.kill('SIGTERM');
    await Promise.all([proxy.waitExit(), echo.waitExit()]);
  });
});

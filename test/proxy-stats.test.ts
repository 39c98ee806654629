// `socketkit proxy --stats`: the statistics line says what a relay can count (connections, bytes
// each way); it has no round trips (it sees bytes, not requests and replies: it used to print
// "0 round trips/s" whatever passed through).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startManagedEchoServer } from '../src/server/index.js';
import { formatEndpoint, type Endpoint } from '../src/net/endpoint.js';
import { ndjson, spawnCli } from './helpers/cli.js';
import { rawConnect, readAll } from './helpers/net.js';

/** Sends n bytes through the proxy at `address` to the echo server and reads them back. */
async function echoThrough(address: string, n: number): Promise<void> {
  const c = await rawConnect({ kind: 'inet', host: '127.0.0.1', port: Number(address.split(':').at(-1)) });
  c.end(Buffer.alloc(n, 0x78));
  assert.equal((await readAll(c)).length, n);
}

const v4: Endpoint = { kind: 'inet', host: '127.0.0.1', port: 0 };

describe('socketkit proxy --stats', () => {
  it('text: connections and bytes each way, no round trips; --json: the same fields', async (t) => {
    const echo = await startManagedEchoServer(v4);
    t.after(() => echo.close(0));
    const proxy = spawnCli(['proxy', '127.0.0.1:0', formatEndpoint(echo.endpoint), '--stats', '0.1', '--json'], t);
    const listening = JSON.parse(await proxy.stdout.waitFor(/"event":"listening"/)) as { address: string };
    // Bytes pass while the statistics tick: a 200 kB echo.
    await echoThrough(listening.address, 200_000);
    const stats = ndjson(await proxy.stdout.waitFor(/"event":"stats".*"bytesIn":200000/))[0]!;
    assert.equal(stats['accepted'], 1);
    assert.equal(stats['bytesOut'], 200_000);
    assert.equal('roundTrips' in stats, false);
    assert.equal('roundTripsPerSecond' in stats, false);
    proxy.kill('SIGTERM');
    await proxy.waitExit();
    const stopped = ndjson(proxy.stdout.text).find((e) => e['event'] === 'stopped')!;
    assert.equal(stopped['bytesIn'], 200_000);
    assert.equal('roundTripsPerSecond' in stopped, false);
  });

  it('text --stats: the line, with rates that are not all zero', async (t) => {
    const echo = await startManagedEchoServer(v4);
    t.after(() => echo.close(0));
    const proxy = spawnCli(['proxy', '127.0.0.1:0', formatEndpoint(echo.endpoint), '--stats', '0.1'], t);
    const line = await proxy.stderr.waitFor(/proxy listening on/);
    const address = /listening on (\S+),/.exec(line)![1]!;
    await echoThrough(address, 300_000);
    const stats = await proxy.stderr.waitFor(/^stats: .*from clients [1-9]/);
    assert.match(stats, /^stats: \d+ open, 1 accepted, 0 refused, 0 idle-closed; from clients \S+ \S*B\/s, to clients \S+ \S*B\/s$/);
    assert.doesNotMatch(stats, /round trips/);
    proxy.kill('SIGTERM');
    await proxy.waitExit();
    assert.doesNotMatch(proxy.stderr.text, /round trips/);
  });
});

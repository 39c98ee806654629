// Trust issue, server side: connections lost for lack of descriptors are counted and reported and
// the server recovers (item 11); TLS servers report disconnects and count plaintext, and failed
// handshakes are refusals (item 12); a crashed cluster worker's counters leave the totals (12b).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect as netConnect, type Socket } from 'node:net';
import tls from 'node:tls';
import { execFileSync } from 'node:child_process';
import { startManagedEchoServer, type ServerEvent } from '../src/server/index.js';
import { generateCertificate, tlsListenTransport } from '../src/security/index.js';
import { parseEndpoint, type Endpoint } from '../src/net/endpoint.js';
import { BIN, spawnCli, spawnProcess } from './helpers/cli.js';
import { rawConnect, waitUntil } from './helpers/net.js';
import type { CleanupContext } from './helpers/tmp.js';

const v4: Endpoint = { kind: 'inet', host: '127.0.0.1', port: 0 };

function json(line: string): Record<string, unknown> {
  return JSON.parse(line) as Record<string, unknown>;
}

/** A client that either gets an echo of `x` ('served') or is closed first ('closed'). */
function probe(ep: Endpoint & { kind: 'inet' }, t: CleanupContext): Promise<{ socket: Socket; outcome: 'served' | 'closed' }> {
  return new Promise((resolve) => {
    const socket = netConnect({ host: ep.host, port: ep.port });
    t.after(() => socket.destroy());
    socket.on('error', () => undefined);
    socket.once('connect', () => socket.write('x'));
    socket.once('data', () => resolve({ socket, outcome: 'served' }));
    socket.once('close', () => resolve({ socket, outcome: 'closed' }));
  });
}

function inet(address: string): Endpoint & { kind: 'inet' } {
  const ep = parseEndpoint(address, { defaultHost: '127.0.0.1' });
  assert.equal(ep.kind, 'inet');
  return ep;
}

describe('out of descriptors (the real binary under ulimit -n 64)', () => {
  it('connections past the limit are closed, counted and logged (ERR_NO_DESCRIPTORS, rate-limited); once they go, new ones are served', async (t) => {
    const proc = spawnProcess('sh', ['-c', `ulimit -n 64; exec "${process.execPath}" "${BIN}" echo-server 127.0.0.1:0 --json -q --stats 0.2`], t);
    const ep = inet(String(json(await proc.stdout.waitFor((l) => l.includes('"listening"'), 10_000))['address']));
    const clients = await Promise.all(Array.from({ length: 150 }, () => probe(ep, t)));
    const served = clients.filter((c) => c.outcome === 'served').length;
    const closed = clients.length - served;
    assert.ok(served > 0 && served < 64, `some served (${served})`);
    assert.ok(closed > 50, `the rest closed unserved (${closed})`);
    // One coded line at once, then summaries: far fewer lines than refused connections.
    await proc.stdout.waitFor((l) => l.includes('"accept-error"') && l.includes('ERR_NO_DESCRIPTORS'), 5_000);
    const stats = json(await proc.stdout.waitFor((l) => l.includes('"stats"') && Number(json(l)['acceptErrors']) >= closed, 5_000));
    assert.equal(stats['connections'], served);
    assert.ok(Number(stats['refused']) >= closed);
    const lines = proc.stdout.lines.filter((l) => l.includes('"accept-error"'));
    assert.ok(lines.length <= 3, `rate-limited: ${lines.length} lines`);
    assert.equal(lines.reduce((n, l) => n + Number(json(l)['count']), 0) <= Number(stats['acceptErrors']), true);
    // Descriptors free again: new connections are served.
    for (const c of clients) c.socket.destroy();
    await proc.stdout.waitFor((l) => l.includes('"stats"') && json(l)['connections'] === 0, 5_000);
    const again = await Promise.all(Array.from({ length: 10 }, () => probe(ep, t)));
    assert.deepEqual(again.map((c) => c.outcome), Array(10).fill('served'));
    for (const c of again) c.socket.destroy();
    proc.kill('SIGTERM');
    assert.equal((await proc.waitExit(10_000)).code, 143);
  });
});

describe('TLS servers: one socket identity', () => {
  it('a 5-byte TLS echo: connect and disconnect events, 5 bytes in and out (plaintext); a failed handshake is refused, not accepted', async (t) => {
    const cert = await generateCertificate();
    const events: ServerEvent[] = [];
    const server = await startManagedEchoServer(v4, { transport: tlsListenTransport({ cert: cert.cert, key: cert.key }), onEvent: (e) => events.push(e) });
    t.after(() => server.close(0));
    const ep = server.endpoint as Endpoint & { kind: 'inet' };
    const c = tls.connect({ host: ep.host, port: ep.port, rejectUnauthorized: false });
    t.after(() => c.destroy());
    await new Promise<void>((resolve, reject) => c.once('secureConnect', () => resolve()).once('error', reject));
    c.write('hello');
    await new Promise<void>((resolve) => c.once('data', () => resolve()));
    c.end();
    await waitUntil(() => events.some((e) => e.event === 'disconnect'), 'the disconnect event');
    const d = events.find((e) => e.event === 'disconnect');
    assert.ok(d && d.event === 'disconnect');
    assert.deepEqual([d.bytesIn, d.bytesOut], [5, 5]);
    assert.deepEqual(events.map((e) => e.event), ['connect', 'disconnect']);
    let s = server.stats();
    assert.deepEqual([s.accepted, s.refused, s.connections, s.bytesIn, s.bytesOut], [1, 0, 0, 5, 5]);

    // A plaintext client: its handshake fails; it was never a connection.
    const plain = await rawConnect(ep);
    t.after(() => plain.destroy());
    plain.on('error', () => undefined);
    plain.end('hello world, in plain text\n');
    await waitUntil(() => server.stats().refused === 1, 'the failed handshake to be counted as refused');
    s = server.stats();
    assert.deepEqual([s.accepted, s.connections], [1, 0]);
    assert.equal(events.filter((e) => e.event === 'connect').length, 1);
  });
});

describe('cluster statistics after a worker crash (the real binary)', () => {
  it('kill -9 one of 2 workers: its connections leave the open count, nothing is counted twice, the count returns to 0', async (t) => {
    const proc = spawnCli(['echo-server', '127.0.0.1:0', '--json', '--workers', '2', '--stats', '0.1'], t);
    const ep = inet(String(json(await proc.stdout.waitFor((l) => l.includes('"listening"'), 20_000))['address']));
    const clients = await Promise.all(Array.from({ length: 20 }, () => probe(ep, t)));
    assert.deepEqual(clients.map((c) => c.outcome), Array(20).fill('served'));
    await proc.stdout.waitFor((l) => l.includes('"stats"') && json(l)['connections'] === 20 && json(l)['accepted'] === 20, 5_000);
    const workers = execFileSync('ps', ['-o', 'pid=', '--ppid', String(proc.child.pid)], { encoding: 'utf8' }).split('\n').map((x) => Number(x.trim())).filter((x) => x > 0);
    assert.equal(workers.length, 2);
    const closedBefore = (): number => clients.filter((c) => c.socket.destroyed || c.socket.readyState === 'closed').length;
    const killedAt = proc.stdout.lines.length;
    process.kill(workers[0]!, 'SIGKILL');
    await waitUntil(() => closedBefore() > 0, 'the dead worker’s connections to close');
    await proc.stdout.waitFor((l) => l.includes('"worker-restart"'), 10_000);
    // Give the killed worker's connections time to show as closed on this side too.
    await waitUntil(() => clients.every((c) => c.socket.destroyed || c.socket.readyState === 'open'), 'every client settled');
    const alive = clients.filter((c) => !c.socket.destroyed).length;
    assert.ok(alive > 0 && alive < 20, `the other worker still serves some (${alive})`);
    await proc.stdout.waitFor((l) => l.includes('"stats"') && json(l)['connections'] === alive, 5_000);
    // No statistics line since the kill counted a connection twice or kept a dead one open.
    for (const l of proc.stdout.lines.slice(killedAt).filter((x) => x.includes('"stats"'))) {
      assert.ok(Number(json(l)['accepted']) <= 20, `accepted never over 20: ${l}`);
      assert.ok(Number(json(l)['connections']) <= 20, `open never over 20: ${l}`);
    }
    for (const c of clients) c.socket.destroy();
    await proc.stdout.waitFor((l) => l.includes('"stats"') && json(l)['connections'] === 0, 5_000);
    proc.kill('SIGTERM');
    assert.equal((await proc.waitExit(15_000)).code, 143);
    const stopped = json(proc.stdout.lines.find((l) => l.includes('"stopped"'))!);
    assert.deepEqual([stopped['accepted'], stopped['active']], [20, 0]);
  });
});

// Toxics on real connections through the proxy, in each direction: latency, bandwidth (within
// 10 % over 2 s), slicer (the tutorial's recv(1024) gets one byte; socketkit's echo client still
// gets every byte), reset_peer, cut_after, limit_data, timeout, slow_close, toxicity.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect as netConnect, type Socket } from 'node:net';
import { startProxy, type ProxyServer } from '../src/proxy/index.js';
import { startManagedEchoServer } from '../src/server/index.js';
import { formatEndpoint, type Endpoint } from '../src/net/endpoint.js';
import { runCli, spawnCli } from './helpers/cli.js';
import { rawConnect, readAll, startTestServer, roundTripMs } from './helpers/net.js';
import type { CleanupContext } from './helpers/tmp.js';

const v4: Endpoint = { kind: 'inet', host: '127.0.0.1', port: 0 };

async function proxy(t: CleanupContext, upstream: Endpoint, toxics: unknown[]): Promise<ProxyServer> {
  const p = await startProxy(v4, upstream, { toxics });
  t.after(() => p.close(0));
  return p;
}

async function echo(t: CleanupContext): Promise<Endpoint> {
  const s = await startManagedEchoServer(v4);
  t.after(() => s.close(0));
  return s.endpoint;
}

/** Resolves with the error code the socket closes with ('' for a clean close) and when. */
function closing(s: Socket): Promise<{ code: string; at: number }> {
  return new Promise((resolve) => {
    let code = '';
    s.on('error', (e: NodeJS.ErrnoException) => (code = e.code ?? 'error'));
    s.once('close', () => resolve({ code, at: performance.now() }));
  });
}

/** Writes `text` and resolves with the ms until the same number of bytes came back. */
describe('toxics on live connections', () => {
  for (const stream of ['downstream', 'upstream'] as const) {
    it(`latency (${stream}) adds latency ms to a round trip`, async (t) => {
      const p = await proxy(t, await echo(t), [{ type: 'latency', stream, attributes: { latency: 100 } }]);
      const c = await rawConnect(p.endpoint);
      t.after(() => c.destroy());
      const ms = await roundTripMs(c, 'ping');
      assert.ok(ms >= 99 && ms < 1000, `round trip ${ms} ms`);
    });

    it(`slicer (${stream}): a reader sees one byte per read, and every byte arrives`, async (t) => {
      const sizes: number[] = [];
      const done = closingServer();
      const up = await startTestServer(v4, (s) => {
        if (stream === 'downstream') s.end('Hola mundo!');
        else {
          s.on('data', (d: Buffer) => sizes.push(d.length));
          s.once('end', () => {
            s.end();
            done.resolve();
          });
        }
      }, t);
      // 20 ms apart: a reader on a loaded machine still reads between pieces (which are separate
      // writes, but a late reader gets whatever has arrived, joined).
      const p = await proxy(t, up.endpoint, [{ type: 'slicer', stream, attributes: { average_size: 1, delay: 20_000 } }]);
      const c = await rawConnect(p.endpoint);
      if (stream === 'downstream') {
        // The tutorial's client: one recv(1024), and it takes what it got for the message.
        const first = await new Promise<Buffer>((resolve) => c.once('data', resolve));
        assert.ok(first.length < 11, `the first read got ${JSON.stringify(first.toString())}`);
        assert.ok('Hola mundo!'.startsWith(first.toString()));
        const rest = await readAll(c);
        assert.equal(Buffer.concat([first, rest]).toString(), 'Hola mundo!');
      } else {
        c.end('Hola mundo!');
        await done.promise;
        assert.ok(sizes.length >= 4, `reads ${JSON.stringify(sizes)}`);
        assert.equal(sizes.reduce((x, y) => x + y, 0), 11);
      }
    });
  }

  it('socketkit echo through slicer:average_size=1 still gets every byte', async (t) => {
    const p = await proxy(t, await echo(t), [{ type: 'slicer', attributes: { average_size: 1, delay: 200 } }]);
    const r = await runCli(['echo', formatEndpoint(p.endpoint), 'Hola mundo!']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.toString(), 'Hola mundo!');
  });

  for (const stream of ['downstream', 'upstream'] as const) {
    it(`bandwidth (${stream}): 1,000,000 bytes at rate=500 take 2 s within 10 %`, async (t) => {
      const total = 1_000_000;
      let start = 0;
      const finished = closingServer();
      let end = 0;
      const up = await startTestServer(v4, (s) => {
        if (stream === 'downstream') {
          start = performance.now();
          s.end(Buffer.alloc(total, 3));
        } else {
          let n = 0;
          s.on('data', (d: Buffer) => {
            if (n === 0) start = performance.now();
            n += d.length;
          });
          s.once('end', () => {
            end = performance.now();
            assert.equal(n, total);
            s.end();
            finished.resolve();
          });
        }
      }, t);
      const p = await proxy(t, up.endpoint, [{ type: 'bandwidth', stream, attributes: { rate: 500 } }]);
      const c = await rawConnect(p.endpoint);
      if (stream === 'downstream') {
        const got = await readAll(c);
        end = performance.now();
        assert.equal(got.length, total);
      } else {
        c.end(Buffer.alloc(total, 4));
        await finished.promise;
        c.destroy();
      }
      // The first 100 ms piece leaves at once: 1,000,000 bytes end 1.9 s after the first byte.
      const s = (end - start) / 1000;
      assert.ok(s > 1.9 * 0.9 && s < 2 * 1.1, `took ${s.toFixed(3)} s`);
    });
  }

  it('reset_peer: both sides are reset after timeout ms', async (t) => {
    const upClosed = closingServer<{ code: string; at: number }>();
    const up = await startTestServer(v4, (s) => void closing(s).then(upClosed.resolve), t);
    const p = await proxy(t, up.endpoint, [{ type: 'reset_peer', attributes: { timeout: 100 } }]);
    const start = performance.now();
    const c = await rawConnect(p.endpoint);
    const r = await closing(c);
    assert.equal(r.code, 'ECONNRESET');
    assert.ok(r.at - start >= 95, `after ${r.at - start} ms`);
    assert.equal((await upClosed.promise).code, 'ECONNRESET');
  });

  it('cut_after reset=false: a clean close of both sides after timeout ms, reset=true: a reset', async (t) => {
    const e = await echo(t);
    const p = await proxy(t, e, [{ type: 'cut_after', attributes: { timeout: 100, reset: false } }]);
    const c = await rawConnect(p.endpoint);
    c.resume(); // read the echo, and then the FIN
    c.write('a');
    assert.equal((await closing(c)).code, '');
    const p2 = await proxy(t, e, [{ type: 'cut_after', attributes: { timeout: 100 } }]);
    const c2 = await rawConnect(p2.endpoint);
    assert.equal((await closing(c2)).code, 'ECONNRESET');
  });

  it('limit_data (downstream): the client gets the first bytes bytes, then the connection closes', async (t) => {
    const up = await startTestServer(v4, (s) => s.write('0123456789'), t);
    const p = await proxy(t, up.endpoint, [{ type: 'limit_data', attributes: { bytes: 5 } }]);
    const c = await rawConnect(p.endpoint);
    assert.equal((await readAll(c)).toString(), '01234');
  });

  it('timeout (upstream): nothing reaches the upstream, and the connection closes after timeout ms', async (t) => {
    let got = 0;
    const up = await startTestServer(v4, (s) => s.on('data', (d: Buffer) => (got += d.length)), t);
    const p = await proxy(t, up.endpoint, [{ type: 'timeout', stream: 'upstream', attributes: { timeout: 200 } }]);
    const start = performance.now();
    const c = await rawConnect(p.endpoint);
    c.write('hello?');
    const r = await closing(c);
    assert.equal(r.code, '');
    assert.ok(r.at - start >= 195, `closed after ${r.at - start} ms`);
    assert.equal(got, 0);
  });

  it('slow_close (downstream): the FIN reaches the client delay ms after the data', async (t) => {
    const up = await startTestServer(v4, (s) => s.end('bye'), t);
    const p = await proxy(t, up.endpoint, [{ type: 'slow_close', attributes: { delay: 300 } }]);
    const c = await rawConnect(p.endpoint);
    const dataAt = await new Promise<number>((resolve) => c.once('data', () => resolve(performance.now())));
    const endAt = await new Promise<number>((resolve) => c.once('end', () => resolve(performance.now())));
    assert.ok(endAt - dataAt >= 290, `FIN ${endAt - dataAt} ms after the data`);
  });

  it('toxicity 0: no connection gets the toxic', async (t) => {
    const p = await proxy(t, await echo(t), [{ type: 'latency', toxicity: 0, attributes: { latency: 2000 } }]);
    const c = await rawConnect(p.endpoint);
    t.after(() => c.destroy());
    assert.ok((await roundTripMs(c, 'x')) < 1000);
  });

  it('socketkit proxy --toxic latency:latency=150 (CLI)', async (t) => {
    const e = await echo(t);
    const proc = spawnCli(['proxy', '127.0.0.1:0', formatEndpoint(e), '--toxic', 'latency:latency=150', '--json'], t);
    const listening = JSON.parse(await proc.stdout.waitFor(/"event":"listening"/)) as { address: string };
    const host = listening.address.split(':');
    const c = netConnect({ host: host[0]!, port: Number(host[1]) });
    await new Promise((resolve) => c.once('connect', resolve));
    t.after(() => c.destroy());
    const ms = await roundTripMs(c, 'x');
    assert.ok(ms >= 149, `round trip ${ms} ms`);
    c.destroy(); // else the stop waits out the grace period for it
    proc.kill('SIGTERM');
    await proc.waitExit();
  });
});

function closingServer<T = void>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

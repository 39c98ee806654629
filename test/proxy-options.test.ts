// The managed-server options on `socketkit proxy` (the issue: "the existing --allow/--deny,
// --max-conns and --idle-timeout apply"), --upstream-pin, and IPv6 on the listening side, run on
// the command line.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { Socket } from 'node:net';
import { startManagedEchoServer } from '../src/server/index.js';
import { formatEndpoint, parseEndpoint, type Endpoint } from '../src/net/endpoint.js';
import { ndjson, runCli, spawnCli, type Spawned } from './helpers/cli.js';
import { freePort, hasIPv6, rawConnect, roundTripMs, waitForListening } from './helpers/net.js';
import { tempDir, type CleanupContext } from './helpers/tmp.js';

const v4: Endpoint = { kind: 'inet', host: '127.0.0.1', port: 0 };

async function echo(t: CleanupContext): Promise<string> {
  const s = await startManagedEchoServer(v4);
  t.after(() => s.close(0));
  return formatEndpoint(s.endpoint);
}

async function proxyCli(t: CleanupContext, args: readonly string[]): Promise<{ proc: Spawned; listen: Endpoint }> {
  const proc = spawnCli(['proxy', ...args, '--json'], t);
  const e = ndjson(await proc.stdout.waitFor(/"event":"listening"/))[0]!;
  return { proc, listen: parseEndpoint(e['address'] as string, { defaultHost: '127.0.0.1' }) };
}

/** Resolves when the socket closes (it is never written to). */
const closed = (s: Socket): Promise<void> =>
  new Promise((resolve) => {
    s.on('error', () => undefined);
    s.once('close', () => resolve());
  });

describe('socketkit proxy: the managed server options', () => {
  it('--max-conns 1: a second connection is refused while the first is open, and logged', async (t) => {
    const { proc, listen } = await proxyCli(t, ['127.0.0.1:0', await echo(t), '--max-conns', '1']);
    const first = await rawConnect(listen);
    t.after(() => first.destroy());
    assert.ok((await roundTripMs(first, 'one')) >= 0);
    const second = await rawConnect(listen);
    await closed(second);
    const refused = ndjson(await proc.stdout.waitFor(/"event":"refused"/))[0]!;
    assert.match(String(refused['reason']), /limit|max/i);
    assert.ok((await roundTripMs(first, 'still')) >= 0, 'the first one still relays');
    proc.kill('SIGTERM');
    await proc.waitExit();
  });

  it('--deny 127.0.0.0/8: loopback clients are refused; --allow 127.0.0.1/32 admits them', async (t) => {
    const upstream = await echo(t);
    const denied = await proxyCli(t, ['127.0.0.1:0', upstream, '--deny', '127.0.0.0/8']);
    const c = await rawConnect(denied.listen);
    await closed(c);
    assert.ok(ndjson(await denied.proc.stdout.waitFor(/"event":"refused"/))[0]);
    const allowed = await proxyCli(t, ['127.0.0.1:0', upstream, '--allow', '127.0.0.1/32']);
    const ok = await rawConnect(allowed.listen);
    t.after(() => ok.destroy());
    assert.ok((await roundTripMs(ok, 'in')) >= 0);
    denied.proc.kill('SIGTERM');
    allowed.proc.kill('SIGTERM');
    await Promise.all([denied.proc.waitExit(), allowed.proc.waitExit()]);
  });

  it('--idle-timeout: a connection quiet that long is closed, and logged', async (t) => {
    const { proc, listen } = await proxyCli(t, ['127.0.0.1:0', await echo(t), '--idle-timeout', '300ms']);
    const c = await rawConnect(listen);
    assert.ok((await roundTripMs(c, 'hi')) >= 0);
    await closed(c);
    const idle = ndjson(await proc.stdout.waitFor(/"event":"idle"/))[0]!;
    assert.ok((idle['idleMs'] as number) >= 300);
    proc.kill('SIGTERM');
    await proc.waitExit();
  });

  it('--upstream-pin: the pinned certificate is accepted, another one refused (the client is reset)', async (t) => {
    const dir = tempDir(t);
    const [cert, key] = [join(dir, 'c.pem'), join(dir, 'k.pem')];
    const made = ndjson((await runCli(['cert', '--cert', cert, '--key', key, '--json'])).stdout.toString())[0]!;
    const pin = made['fingerprint'] as string;
    const upPort = await freePort();
    const server = spawnCli(['echo-server', `127.0.0.1:${upPort}`, '--cert', cert, '--key', key, '-q'], t);
    await waitForListening({ kind: 'inet', host: '127.0.0.1', port: upPort });
    const good = await proxyCli(t, ['127.0.0.1:0', `127.0.0.1:${upPort}`, '--upstream-pin', pin]);
    const r = await runCli(['echo', formatEndpoint(good.listen), 'pinned']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.toString(), 'pinned');
    const wrong = pin.replace(/^../, pin.startsWith('00') ? '11' : '00');
    const bad = await proxyCli(t, ['127.0.0.1:0', `127.0.0.1:${upPort}`, '--upstream-pin', wrong]);
    const refused = await runCli(['echo', formatEndpoint(bad.listen), 'x']);
    assert.notEqual(refused.code, 0);
    const e = ndjson(await bad.proc.stdout.waitFor(/"end":"upstream-failed"/))[0]!;
    assert.match(String(e['code']), /^ERR_/);
    for (const p of [good.proc, bad.proc, server]) p.kill('SIGTERM');
    await Promise.all([good.proc.waitExit(), bad.proc.waitExit(), server.waitExit()]);
  });

  it('listens on IPv6 ([::1]:0) and relays to IPv4', async (t) => {
    if (!(await hasIPv6())) {
      t.skip('no IPv6 loopback here');
      return;
    }
    const { proc, listen } = await proxyCli(t, ['[::1]:0', await echo(t)]);
    assert.equal(listen.kind === 'inet' ? listen.host : '', '::1');
    const c = await rawConnect(listen);
    t.after(() => c.destroy());
    assert.ok((await roundTripMs(c, 'v6')) >= 0);
    proc.kill('SIGTERM');
    await proc.waitExit();
  });
});

// Security as users run it: `socketkit cert` (files, modes, fingerprint, PSK files), servers and
// clients of every TCP command with --cert/--key, --pin, --ca, --psk-file, --allow/--deny, the
// plaintext-listener rule of serve/receive, and file transfer over TLS and TLS-PSK. Servers are
// the real binary; short-lived clients run in-process (runMain) to keep the suite fast. Errors
// are matched on their code only.
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateCertificate, generatePsk, formatPsk, loadPskFile, tlsConnectTransport, tlsListenTransport, type GeneratedCertificate } from '../src/security/index.js';
import { download, startFileServer, startReceiveServer, upload } from '../src/transfer/index.js';
import type { Endpoint } from '../src/net/endpoint.js';
import { SocketkitError } from '../src/core/errors.js';
import { jsonEvents, requireTool, run, runCli, runMain, startJsonServer, startMain } from './helpers/cli.js';
import { tempDir, type CleanupContext } from './helpers/tmp.js';

let cert: GeneratedCertificate;
before(async () => {
  cert = await generateCertificate();
});

/** The code in the error line `socketkit: message (CODE)` (usage errors add a help hint after it). */
function errorCode(stderr: string): string | undefined {
  const line = stderr.split('\n').find((l) => l.startsWith('socketkit: '));
  return line === undefined ? undefined : /\((ERR_[A-Z_]+)\)$/.exec(line)?.[1];
}

/** Writes the shared certificate, key and a PSK file into a fresh folder. */
function files(t: CleanupContext): { dir: string; cert: string; key: string; psk: string; otherPsk: string } {
  const dir = tempDir(t);
  const paths = { dir, cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem'), psk: join(dir, 'a.psk'), otherPsk: join(dir, 'b.psk') };
  writeFileSync(paths.cert, cert.cert);
  writeFileSync(paths.key, cert.key, { mode: 0o600 });
  writeFileSync(paths.psk, formatPsk(generatePsk('tests')), { mode: 0o600 });
  writeFileSync(paths.otherPsk, formatPsk(generatePsk('tests')), { mode: 0o600 });
  return paths;
}



describe('socketkit cert', () => {
  it('writes a certificate and a mode-600 key, prints the fingerprint, and refuses to overwrite without --force', async (t) => {
    const dir = tempDir(t);
    const c = join(dir, 'c.pem');
    const k = join(dir, 'k.pem');
    const made = await runCli(['cert', '--cert', c, '--key', k, '--name', 'files.example.org', '--san', 'IP:192.0.2.7', '--days', '30']);
    assert.equal(made.code, 0, made.stderr);
    const fingerprint = made.stdout.toString().trim();
    assert.match(fingerprint, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    assert.equal(statSync(k).mode & 0o777, 0o600);
    const shown = await runCli(['cert', '--fingerprint', c]);
    assert.equal(shown.stdout.toString().trim(), fingerprint);
    const again = await runCli(['cert', '--cert', c, '--key', k]);
    assert.equal(again.code, 2);
    assert.equal(errorCode(again.stderr), 'ERR_EXISTS');
    const forced = await runCli(['cert', '--cert', c, '--key', k, '--force', '--json']);
    assert.equal(forced.code, 0);
    const result = JSON.parse(forced.stdout.toString()) as { fingerprint: string; names: { value: string }[] };
    assert.notEqual(result.fingerprint, fingerprint);
    assert.deepEqual(result.names.map((n) => n.value), ['localhost', '127.0.0.1', '::1']);
    const bad = await runCli(['cert', '--cert', join(dir, 'x.pem'), '--key', join(dir, 'y.pem'), '--san', 'IP:999.1.1.1']);
    assert.equal(errorCode(bad.stderr), 'ERR_USAGE');
  });

  it('--psk writes a 32-byte key file with mode 600 that --psk-file accepts', async (t) => {
    const path = join(tempDir(t), 'shared.psk');
    const r = await runCli(['cert', '--psk', path, '--identity', 'office']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(statSync(path).mode & 0o777, 0o600);
    const psk = await loadPskFile(path);
    assert.equal(psk.identity, 'office');
    assert.equal(psk.key.length, 32);
  });
});

describe('echo-server and echo with security options', () => {
  it('--cert/--key: --pin and --ca succeed; --tls alone, a wrong pin and a plaintext client are refused with codes', async (t) => {
    const f = files(t);
    const { proc, address } = await startJsonServer(t, ['echo-server', '127.0.0.1:0', '--cert', f.cert, '--key', f.key]);
    const security = jsonEvents(proc, 'security')[0];
    assert.equal(security?.['fingerprint'], cert.fingerprint);

    const pinned = await runMain(['echo', address, 'hola', '--pin', cert.fingerprint.replace(/:/g, '').toLowerCase()]);
    assert.equal(pinned.code, 0, pinned.stderr);
    assert.equal(pinned.stdout.toString(), 'hola');
    const viaCa = await runMain(['echo', address, 'hola', '--ca', f.cert]);
    assert.equal(viaCa.code, 0, viaCa.stderr);

    const system = await runMain(['echo', address, 'hola', '--tls']);
    assert.deepEqual([system.code, errorCode(system.stderr)], [2, 'ERR_TLS_CERT']);
    const wrongPin = await runMain(['echo', address, 'hola', '--pin', 'ab'.repeat(32)]);
    assert.deepEqual([wrongPin.code, errorCode(wrongPin.stderr)], [2, 'ERR_TLS_PIN_MISMATCH']);
    const plain = await runMain(['echo', address, 'hello in plain text']);
    assert.notEqual(plain.code, 0);
    await proc.stdout.waitFor((l) => l.includes('"refused"') && l.includes('ERR_TLS_PLAINTEXT_PEER'));
    const framed = await runMain(['echo', address, 'framed', '--framed', '--pin', cert.fingerprint]);
    assert.equal(framed.code, 0, framed.stderr);
  });

  it('--psk-file: the same key gets in, another key is refused on both sides with ERR_TLS_PSK', async (t) => {
    const f = files(t);
    const { proc, address } = await startJsonServer(t, ['echo-server', '127.0.0.1:0', '--psk-file', f.psk]);
    const ok = await runMain(['echo', address, 'psk', '--psk-file', f.psk]);
    assert.equal(ok.code, 0, ok.stderr);
    const wrong = await runMain(['echo', address, 'psk', '--psk-file', f.otherPsk]);
    assert.deepEqual([wrong.code, errorCode(wrong.stderr)], [2, 'ERR_TLS_PSK']);
    await proc.stdout.waitFor((l) => l.includes('"refused"') && l.includes('ERR_TLS_PSK'));
  });

  it('--deny and --allow: a refused peer is logged with ERR_ACCESS_DENIED and counted', async (t) => {
    const { proc, address } = await startJsonServer(t, ['echo-server', '127.0.0.1:0', '--allow', '10.0.0.0/8', '--allow', '::1', '--deny', '10.9.9.9']);
    const r = await runMain(['echo', address, 'x']);
    assert.notEqual(r.code, 0);
    await proc.stdout.waitFor((l) => l.includes('"refused"') && l.includes('ERR_ACCESS_DENIED'));
    proc.kill('SIGTERM');
    await proc.waitExit();
    const stopped = jsonEvents(proc, 'stopped')[0];
    assert.equal(stopped?.['refused'], 1);
  });

  it('interop: socat and ncat speak TLS to echo-server --cert, verifying it as a CA', async (t) => {
    const f = files(t);
    const { address, endpoint } = await startJsonServer(t, ['echo-server', '127.0.0.1:0', '--cert', f.cert, '--key', f.key]);
    const port = String((endpoint as { port: number }).port);
    const socat = requireTool(t, 'socat', 'socat');
    if (socat) {
      const r = await run(socat, ['-', `OPENSSL:${address},cafile=${f.cert}`], { input: 'via socat\n', timeoutMs: 10_000 });
      assert.equal(r.stdout.toString(), 'via socat\n', r.stderr);
    }
    const ncat = requireTool(t, 'ncat', 'ncat');
    if (ncat) {
      // ncat checks DNS names only, so it connects as localhost (which the certificate names).
      const r = await run(ncat, ['--ssl', '--ssl-trustfile', f.cert, 'localhost', port], { input: 'via ncat\n', timeoutMs: 10_000 });
      assert.equal(r.stdout.toString(), 'via ncat\n', r.stderr);
    }
    if (!socat && !ncat) t.skip('neither socat nor ncat is installed');
  });

  it('usage and configuration errors are one coded line', async (t) => {
    const f = files(t);
    const cases: [string[], string][] = [
      [['echo-server', '127.0.0.1:0', '--tls'], 'ERR_USAGE'],
      [['echo-server', '127.0.0.1:0', '--cert', f.cert, '--key', f.key, '--psk-file', f.psk], 'ERR_USAGE'],
      [['echo-server', '127.0.0.1:0', '--allow', 'not-a-cidr'], 'ERR_USAGE'],
      [['echo-server', '127.0.0.1:0', '--cert', f.cert, '--key', join(f.dir, 'missing.pem')], 'ERR_NOT_FOUND'],
      [['echo', '127.0.0.1:1', 'x', '--psk-file', f.psk, '--pin', cert.fingerprint], 'ERR_USAGE'],
      [['echo', '127.0.0.1:1', 'x', '--pin', 'nope'], 'ERR_USAGE'],
      [['load', '127.0.0.1:1', '--udp', '--tls'], 'ERR_USAGE'],
    ];
    const loose = join(f.dir, 'loose.psk');
    writeFileSync(loose, readFileSync(f.psk), { mode: 0o644 });
    cases.push([['echo', '127.0.0.1:1', 'x', '--psk-file', loose], 'ERR_TLS_CONFIG']);
    for (const [argv, code] of cases) {
      const r = await runMain(argv);
      assert.equal(errorCode(r.stderr), code, `${argv.join(' ')}: ${r.stderr}`);
      assert.equal(r.stderr.trim().split('\n')[0]!.startsWith('socketkit: '), true);
    }
  });
});

describe('file transfer over TLS and TLS-PSK', () => {
  it('serve/get over TLS with a pin, and receive/send over PSK (the real binaries)', async (t) => {
    const f = files(t);
    const src = join(f.dir, 'payload.bin');
    const data = randomBytes(3 * 1024 * 1024 + 7);
    writeFileSync(src, data);
    const served = await startJsonServer(t, ['serve', src, '--listen', '127.0.0.1:0', '--cert', f.cert, '--key', f.key]);
    const out = tempDir(t);
    const got = await runMain(['get', served.address, '--dir', out, '--pin', cert.fingerprint]);
    assert.equal(got.code, 0, got.stderr);
    assert.ok(readFileSync(join(out, 'payload.bin')).equals(data));

    const inbox = tempDir(t);
    const recv = await startJsonServer(t, ['receive', '--listen', '127.0.0.1:0', '--dir', inbox, '--psk-file', f.psk, '--once']);
    const sent = await runMain(['send', recv.address, src, '--psk-file', f.psk]);
    assert.equal(sent.code, 0, sent.stderr);
    assert.equal((await recv.proc.waitExit()).code, 0);
    assert.ok(readFileSync(join(inbox, 'payload.bin')).equals(data));
  });

  it('a wrong PSK or pin never gets a byte of the file', async (t) => {
    const f = files(t);
    const src = join(f.dir, 'secret.bin');
    writeFileSync(src, randomBytes(1000));
    const served = await startJsonServer(t, ['serve', src, '--listen', '127.0.0.1:0', '--psk-file', f.psk]);
    const out = tempDir(t);
    const wrong = await runMain(['get', served.address, '--dir', out, '--psk-file', f.otherPsk]);
    assert.equal(errorCode(wrong.stderr), 'ERR_TLS_PSK');
    const plain = await runMain(['get', served.address, '--dir', out]);
    assert.notEqual(plain.code, 0);
    await served.proc.stdout.waitFor((l) => l.includes('ERR_TLS_PLAINTEXT_PEER'));
    assert.throws(() => statSync(join(out, 'secret.bin')));
  });

  it('serve and receive refuse plaintext on a non-loopback address unless --insecure (ERR_INSECURE_LISTENER)', async (t) => {
    const dir = tempDir(t);
    const served = await runMain(['serve', dir, '--listen', '0.0.0.0:0']);
    assert.deepEqual([served.code, errorCode(served.stderr)], [2, 'ERR_INSECURE_LISTENER']);
    const received = await runMain(['receive', '--listen', '[::]:0', '--dir', dir]);
    assert.equal(errorCode(received.stderr), 'ERR_INSECURE_LISTENER');
    // With --insecure it starts (and says so in one line), listens on every address (so on
    // loopback too), and takes an upload; then it is stopped.
    const running = startMain(['receive', '--listen', '0.0.0.0:0', '--dir', dir, '--insecure']);
    t.after(() => running.stop());
    const listening = await running.stderr.waitFor(/^receiving into .* on 0\.0\.0\.0:\d+;/);
    const port = Number(/ on 0\.0\.0\.0:(\d+);/.exec(listening)![1]);
    const src = join(tempDir(t), 'plain.txt');
    writeFileSync(src, 'insecure but working\n');
    const sent = await runMain(['send', `127.0.0.1:${port}`, src]);
    assert.equal(sent.code, 0, sent.stderr);
    assert.equal(readFileSync(join(dir, 'plain.txt'), 'utf8'), 'insecure but working\n');
    running.stop();
    const r = await running.done;
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr.split('\n').filter((l) => l.includes('--insecure')).length, 1);
  });

  it('library: download and upload over TLS and PSK with a transport', async (t) => {
    const f = files(t);
    const src = join(f.dir, 'lib.bin');
    const data = randomBytes(512 * 1024);
    writeFileSync(src, data);
    const v4: Endpoint = { kind: 'inet', host: '127.0.0.1', port: 0 };
    const server = await startFileServer(v4, { paths: [src], transport: tlsListenTransport({ cert: cert.cert, key: cert.key }) });
    t.after(() => server.close());
    const dir = tempDir(t);
    const s = await download(server.endpoint, { dir, transport: tlsConnectTransport({ pin: cert.fingerprint }) });
    assert.equal(s.files, 1);
    assert.ok(readFileSync(join(dir, 'lib.bin')).equals(data));

    const psk = generatePsk('lib');
    const inbox = tempDir(t);
    const receiver = await startReceiveServer(v4, { dir: inbox, transport: tlsListenTransport({ psk }) });
    t.after(() => receiver.close());
    const up = await upload(receiver.endpoint, [src], { transport: tlsConnectTransport({ psk }) });
    assert.equal(up.files, 1);
    assert.ok(readFileSync(join(inbox, 'lib.bin')).equals(data));
    await assert.rejects(
      upload(receiver.endpoint, [src], { transport: tlsConnectTransport({ psk: generatePsk('lib') }) }),
      (err: unknown) => err instanceof SocketkitError && err.code === 'ERR_TLS_PSK',
    );
  });
});

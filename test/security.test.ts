// Security, library level: the DER writer and self-signed certificates, pins, PSK files,
// allow/deny lists and the plaintext-listener rule; then echo over TLS and TLS-PSK on real
// sockets (127.0.0.1, ::1, a Unix path), half-close over TLS, and every refusal with its code:
// untrusted or wrong certificate, wrong host name, pin mismatch, wrong PSK or identity,
// plaintext peers both ways, handshake timeout, access lists. Codes only, never message text.
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey, randomBytes } from 'node:crypto';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import tls from 'node:tls';
import type { Socket } from 'node:net';
import * as der from '../src/security/der.js';
import {
  AccessList,
  certificateFingerprint,
  formatPsk,
  generateCertificate,
  generatePsk,
  isLoopbackHost,
  loadPskFile,
  parseAltName,
  parseCidr,
  parsePin,
  parsePsk,
  requireSecureListener,
  tlsConnectTransport,
  tlsListenTransport,
  type GeneratedCertificate,
  type PreSharedKey,
} from '../src/security/index.js';
import { startEchoServer, type EchoServerEvent } from '../src/echo/server.js';
import { echoMessage, echoStream } from '../src/echo/client.js';
import { connect } from '../src/net/connect.js';
import { listen } from '../src/net/listen.js';
import { connectMessages, echoMessages, listenMessages } from '../src/message/index.js';
import { startManagedEchoServer } from '../src/server/index.js';
import type { Endpoint } from '../src/net/endpoint.js';
import { SocketkitError } from '../src/core/errors.js';
import { tempDir, type CleanupContext } from './helpers/tmp.js';
import { hasIPv6, rawConnect, readAll, startTestServer, waitUntil } from './helpers/net.js';

const v4: Endpoint = { kind: 'inet', host: '127.0.0.1', port: 0 };
const v6: Endpoint = { kind: 'inet', host: '::1', port: 0 };

let ipv6 = false;
let cert: GeneratedCertificate;
let other: GeneratedCertificate;
before(async () => {
  ipv6 = await hasIPv6();
  [cert, other] = await Promise.all([generateCertificate(), generateCertificate({ commonName: 'other.example', includeLoopback: false })]);
});

/** Rejects with the code of the SocketkitError `fn` throws or rejects with. */
async function codeOf(fn: () => unknown): Promise<string> {
  try {
    await fn();
  } catch (err) {
    assert.ok(err instanceof SocketkitError, `not a SocketkitError: ${String(err)}`);
    return err.code;
  }
  assert.fail('expected an error');
}

/** Collects a TLS server's handshake failures by code. */
function failures(): { codes: string[]; onHandshakeError: (peer: string, err: SocketkitError) => void } {
  const codes: string[] = [];
  return { codes, onHandshakeError: (_peer, err) => codes.push(err.code) };
}

async function tlsEchoServer(t: CleanupContext, ep: Endpoint, transport: ReturnType<typeof tlsListenTransport>, onEvent?: (e: EchoServerEvent) => void) {
  const server = await startEchoServer(ep, { transport, ...(onEvent ? { onEvent } : {}) });
  t.after(() => server.close());
  return server;
}

const psk = (): PreSharedKey => ({ identity: 'laptop', key: randomBytes(32) });

describe('DER writer', () => {
  it('encodes lengths, integers, OIDs and times as DER requires', () => {
    assert.equal(der.oid('1.2.840.10045.4.3.2').toString('hex'), '06082a8648ce3d040302');
    assert.equal(der.integer(0).toString('hex'), '020100');
    assert.equal(der.integer(127).toString('hex'), '02017f');
    assert.equal(der.integer(128).toString('hex'), '02020080'); // pad: the top bit would make it negative
    assert.equal(der.integer(Buffer.from([0, 0, 1])).toString('hex'), '020101'); // minimal
    assert.equal(der.tlv(0x04, Buffer.alloc(200)).subarray(0, 3).toString('hex'), '0481c8');
    assert.equal(der.tlv(0x04, Buffer.alloc(300)).subarray(0, 4).toString('hex'), '0482012c');
    assert.equal(der.time(new Date(Date.UTC(2049, 11, 31, 23, 59, 59))).toString('latin1'), '\x17\x0d491231235959Z');
    assert.equal(der.time(new Date(Date.UTC(2050, 0, 1))).toString('latin1'), '\x18\x0f20500101000000Z');
  });

  it('writes IP addresses as 4 or 16 network-order bytes, whatever the IPv6 spelling', () => {
    assert.equal(der.ipBytes('192.0.2.7').toString('hex'), 'c0000207');
    assert.equal(der.ipBytes('::1').toString('hex'), '00000000000000000000000000000001');
    assert.equal(der.ipBytes('::').toString('hex'), '0'.repeat(32));
    assert.equal(der.ipBytes('2001:db8::8:800:200c:417a').toString('hex'), '20010db80000000000080800200c417a');
    assert.equal(der.ipBytes('fe80::').toString('hex'), 'fe80' + '0'.repeat(28));
    assert.equal(der.ipBytes('::ffff:10.1.2.3').toString('hex'), '00000000000000000000ffff0a010203');
  });
});

describe('self-signed certificates', () => {
  it('names localhost, 127.0.0.1 and ::1, verifies with its own key, and reports its fingerprint', () => {
    const x = new X509Certificate(cert.cert);
    assert.equal(x.ca, false);
    assert.ok(x.verify(x.publicKey));
    assert.ok(x.checkHost('localhost'));
    assert.ok(x.checkIP('127.0.0.1'));
    assert.ok(x.checkIP('::1'));
    assert.equal(x.fingerprint256, cert.fingerprint);
    assert.equal(certificateFingerprint(cert.cert), cert.fingerprint);
    assert.ok(x.checkPrivateKey(createPrivateKey(cert.key)));
    assert.ok(cert.notAfter.getTime() > Date.now() + 364 * 86400_000);
  });

  it('adds --name and --san entries, and can leave loopback out', async () => {
    const c = await generateCertificate({ commonName: 'files.example.org', altNames: ['IP:192.0.2.7', 'DNS:alt.example.org', '2001:db8::1'], days: 2 });
    const x = new X509Certificate(c.cert);
    assert.ok(x.checkHost('files.example.org') && x.checkHost('alt.example.org') && x.checkHost('localhost'));
    assert.ok(x.checkIP('192.0.2.7') && x.checkIP('2001:db8::1'));
    const o = new X509Certificate(other.cert);
    assert.equal(o.checkHost('localhost'), undefined);
    assert.equal(o.checkIP('127.0.0.1'), undefined);
  });

  it('refuses bad names and validity', async () => {
    assert.equal(parseAltName('ip:[::1]').value, '::1');
    assert.equal(parseAltName('Example.ORG').value, 'example.org');
    assert.equal(await codeOf(() => parseAltName('IP:300.1.1.1')), 'ERR_INVALID_ARG');
    assert.equal(await codeOf(() => parseAltName('bad name!')), 'ERR_INVALID_ARG');
    assert.equal(await codeOf(() => generateCertificate({ days: 0 })), 'ERR_INVALID_ARG');
    assert.equal(await codeOf(() => certificateFingerprint('not a certificate')), 'ERR_TLS_CONFIG');
  });
});

describe('pins', () => {
  it('accepts colon-separated or plain hex in any case, with or without a sha256 prefix', () => {
    const plain = cert.fingerprint.replace(/:/g, '');
    assert.equal(parsePin(plain.toLowerCase()), cert.fingerprint);
    assert.equal(parsePin(cert.fingerprint.toLowerCase()), cert.fingerprint);
    assert.equal(parsePin(`sha256:${plain}`), cert.fingerprint);
  });
  it('refuses anything but 32 bytes of hex (ERR_INVALID_ARG)', async () => {
    assert.equal(await codeOf(() => parsePin('AB:CD')), 'ERR_INVALID_ARG');
    assert.equal(await codeOf(() => parsePin('z'.repeat(64))), 'ERR_INVALID_ARG');
  });
});

describe('PSK files', () => {
  const hex = 'ab'.repeat(32);
  it('reads IDENTITY:HEXKEY, a bare hex key, comments, and raw binary keys', () => {
    assert.deepEqual(parsePsk(Buffer.from(`# comment\n\nlaptop:${hex}\n`)), { identity: 'laptop', key: Buffer.from(hex, 'hex') });
    assert.equal(parsePsk(Buffer.from(`${hex}\n`)).identity, 'socketkit');
    const raw = Buffer.concat([Buffer.from([0, 1, 2, 0xff]), randomBytes(40)]);
    assert.deepEqual(parsePsk(raw).key, raw);
    const g = generatePsk('box');
    assert.deepEqual(parsePsk(Buffer.from(formatPsk(g))), g);
  });
  it('refuses short keys, bad hex and several lines (ERR_TLS_CONFIG)', async () => {
    assert.equal(await codeOf(() => parsePsk(Buffer.from(`laptop:${'ab'.repeat(31)}`))), 'ERR_TLS_CONFIG');
    assert.equal(await codeOf(() => parsePsk(Buffer.from([0, 1, 2, 3]))), 'ERR_TLS_CONFIG');
    assert.equal(await codeOf(() => parsePsk(Buffer.from(`laptop:${hex}x`))), 'ERR_TLS_CONFIG');
    assert.equal(await codeOf(() => parsePsk(Buffer.from(`a:${hex}\nb:${hex}\n`))), 'ERR_TLS_CONFIG');
    assert.equal(await codeOf(() => parsePsk(Buffer.from(`bad id:${hex}`))), 'ERR_TLS_CONFIG');
  });
  it('refuses a file others may read, and a missing one', async (t) => {
    const dir = tempDir(t);
    const path = join(dir, 'k.psk');
    writeFileSync(path, `laptop:${hex}\n`, { mode: 0o600 });
    assert.equal((await loadPskFile(path)).identity, 'laptop');
    chmodSync(path, 0o644);
    assert.equal(await codeOf(() => loadPskFile(path)), 'ERR_TLS_CONFIG');
    assert.equal(await codeOf(() => loadPskFile(join(dir, 'none'))), 'ERR_NOT_FOUND');
  });
});

describe('access lists and the plaintext-listener rule', () => {
  it('parses CIDR blocks and single addresses; refuses junk (ERR_INVALID_ARG)', async () => {
    assert.deepEqual(parseCidr('10.0.0.0/8'), { address: '10.0.0.0', prefix: 8, family: 'ipv4', text: '10.0.0.0/8' });
    assert.equal(parseCidr('::1').prefix, 128);
    assert.equal(parseCidr('[2001:db8::]/32').family, 'ipv6');
    for (const bad of ['10.0.0.0/33', 'example.org', '10.0.0.0/x', '::/129']) assert.equal(await codeOf(() => parseCidr(bad)), 'ERR_INVALID_ARG');
  });

  it('deny wins over allow; with allow entries everyone else is refused; IPv4-mapped peers count as IPv4', () => {
    const list = new AccessList({ allow: ['10.0.0.0/8', '::1'], deny: ['10.0.0.66'] });
    assert.equal(list.check('10.1.2.3').allowed, true);
    assert.equal(list.check('::ffff:10.1.2.3').allowed, true);
    assert.equal(list.check('10.0.0.66').allowed, false);
    assert.equal(list.check('::ffff:10.0.0.66').allowed, false);
    assert.equal(list.check('192.0.2.1').allowed, false);
    assert.equal(list.check('::1').allowed, true);
    assert.equal(list.check(undefined).allowed, true); // a Unix socket peer
    const deny = new AccessList({ deny: ['127.0.0.0/8'] });
    assert.equal(deny.check('127.0.0.9').allowed, false);
    assert.equal(deny.check('::1').allowed, true);
    assert.ok(new AccessList().empty);
    const d = deny.check('127.0.0.1');
    assert.ok(!d.allowed && d.reason.includes('ERR_ACCESS_DENIED'));
  });

  it('refuses plaintext on a non-loopback address unless --insecure (ERR_INSECURE_LISTENER)', async () => {
    const any: Endpoint = { kind: 'inet', host: '0.0.0.0', port: 9800 };
    assert.equal(await codeOf(() => requireSecureListener(any, 'plain', false)), 'ERR_INSECURE_LISTENER');
    assert.equal(await codeOf(() => requireSecureListener({ kind: 'inet', host: '::', port: 1 }, 'plain', false)), 'ERR_INSECURE_LISTENER');
    assert.equal(await codeOf(() => requireSecureListener({ kind: 'inet', host: 'files.example.org', port: 1 }, 'plain', false)), 'ERR_INSECURE_LISTENER');
    assert.equal(typeof requireSecureListener(any, 'plain', true), 'string'); // a warning line
    assert.equal(requireSecureListener(any, 'tls', false), undefined);
    assert.equal(requireSecureListener(any, 'psk', false), undefined);
    assert.equal(requireSecureListener({ kind: 'inet', host: '127.0.0.1', port: 1 }, 'plain', false), undefined);
    assert.equal(requireSecureListener({ kind: 'unix', path: '/tmp/x' }, 'plain', false), undefined);
    for (const h of ['localhost', '127.0.0.1', '127.9.9.9', '::1', '0:0:0:0:0:0:0:1']) assert.ok(isLoopbackHost(h), h);
    for (const h of ['0.0.0.0', '::', '10.0.0.1', 'example.org']) assert.ok(!isLoopbackHost(h), h);
  });
});

describe('echo over TLS and TLS-PSK', () => {
  it('pinned self-signed certificate: 1 MiB echoed intact over 127.0.0.1, ::1 and a Unix socket, with half-close', async (t) => {
    const payload = randomBytes(1024 * 1024);
    const eps: Endpoint[] = [v4, ...(ipv6 ? [v6] : []), { kind: 'unix', path: join(tempDir(t), 'tls.sock') }];
    for (const ep of eps) {
      const server = await tlsEchoServer(t, ep, tlsListenTransport({ cert: cert.cert, key: cert.key }));
      const chunks = Array.from({ length: 16 }, (_, i) => payload.subarray(i * 65536, (i + 1) * 65536));
      const r = await echoStream(server.endpoint, chunks, { transport: tlsConnectTransport({ pin: cert.fingerprint }) });
      assert.equal(r.bytesReceived, payload.length);
    }
  });

  it('--ca: chain and host name verified for 127.0.0.1, ::1 and localhost; with a pin too', async (t) => {
    const server = await tlsEchoServer(t, v4, tlsListenTransport({ cert: cert.cert, key: cert.key }));
    const port = (server.endpoint as { port: number }).port;
    const hosts = ['127.0.0.1', 'localhost'];
    for (const host of hosts) {
      const r = await echoMessage({ kind: 'inet', host, port }, Buffer.from('hola'), { transport: tlsConnectTransport({ ca: cert.cert }) });
      assert.equal(r.reply.toString(), 'hola');
    }
    const both = await echoMessage(server.endpoint, Buffer.from('x'), { transport: tlsConnectTransport({ ca: cert.cert, pin: cert.fingerprint }) });
    assert.equal(both.reply.toString(), 'x');
    if (ipv6) {
      const s6 = await tlsEchoServer(t, v6, tlsListenTransport({ cert: cert.cert, key: cert.key }));
      const r = await echoMessage(s6.endpoint, Buffer.from('v6'), { transport: tlsConnectTransport({ ca: [cert.cert] }) });
      assert.equal(r.reply.toString(), 'v6');
    }
  });

  it('PSK: echo and framed echo; TLS 1.3 by default, TLS 1.2 (ECDHE-PSK) for older clients', async (t) => {
    const key = psk();
    const server = await tlsEchoServer(t, v4, tlsListenTransport({ psk: key }));
    const r = await echoStream(server.endpoint, [randomBytes(300_000)], { transport: tlsConnectTransport({ psk: key }) });
    assert.equal(r.bytesReceived, 300_000);

    const framed = await listenMessages(v4, { transport: tlsListenTransport({ psk: key }), onConnection: (c) => void echoMessages(c) });
    t.after(() => framed.close());
    const conn = await connectMessages(framed.endpoint, { transport: tlsConnectTransport({ psk: key }) });
    t.after(() => conn.close());
    const proto = (conn.socket as tls.TLSSocket).getProtocol();
    assert.equal(proto, 'TLSv1.3');
    await conn.send(Buffer.from('one'));
    await conn.send(Buffer.from('two'));
    await conn.end();
    const got: string[] = [];
    for await (const m of conn) got.push(Buffer.from(m).toString());
    assert.deepEqual(got, ['one', 'two']);

    const port = (server.endpoint as { port: number }).port;
    const old = tls.connect({ host: '127.0.0.1', port, maxVersion: 'TLSv1.2', ciphers: 'ECDHE-PSK-CHACHA20-POLY1305', pskCallback: () => ({ psk: key.key, identity: key.identity }), checkServerIdentity: () => undefined });
    t.after(() => old.destroy());
    await new Promise<void>((resolve, reject) => {
      old.once('secureConnect', resolve);
      old.once('error', reject);
    });
    assert.equal(old.getProtocol(), 'TLSv1.2');
    old.end('tls12');
    assert.equal((await readAll(old)).toString(), 'tls12');
  });

  it('half-close: a reply sent after the client has ended its side arrives, over TLS and PSK', async (t) => {
    const key = psk();
    const modes = [
      { server: tlsListenTransport({ cert: cert.cert, key: cert.key }), client: tlsConnectTransport({ pin: cert.fingerprint }) },
      { server: tlsListenTransport({ psk: key }), client: tlsConnectTransport({ psk: key }) },
    ];
    for (const m of modes) {
      const listener = await listen(v4, {
        transport: m.server,
        onConnection: (s: Socket) => {
          let n = 0;
          s.on('data', (c: Buffer) => (n += c.length));
          s.on('end', () => setTimeout(() => s.end(`got ${n} bytes`), 20));
        },
      });
      t.after(() => listener.close());
      const socket = await connect(listener.endpoint, {}, m.client);
      t.after(() => socket.destroy());
      socket.end(Buffer.alloc(5000, 1));
      assert.equal((await readAll(socket)).toString(), 'got 5000 bytes');
    }
  });

  it('the managed echo server takes a TLS transport and an allow list together', async (t) => {
    const server = await startManagedEchoServer(v4, { transport: tlsListenTransport({ cert: cert.cert, key: cert.key }), admit: new AccessList({ allow: ['127.0.0.0/8'] }).admit, maxConnections: 5 });
    t.after(() => server.close());
    const r = await echoMessage(server.endpoint, Buffer.from('managed'), { transport: tlsConnectTransport({ pin: cert.fingerprint }) });
    assert.equal(r.reply.toString(), 'managed');
  });
});

describe('refusals, each with its code', () => {
  it('a self-signed certificate against the system CAs: ERR_TLS_CERT; the server logs the hang-up', async (t) => {
    const f = failures();
    const server = await tlsEchoServer(t, v4, tlsListenTransport({ cert: cert.cert, key: cert.key, onHandshakeError: f.onHandshakeError }));
    assert.equal(await codeOf(() => echoMessage(server.endpoint, Buffer.from('x'), { transport: tlsConnectTransport() })), 'ERR_TLS_CERT');
    await waitUntil(() => f.codes.length > 0, 'the server to log the failed handshake');
    assert.deepEqual(f.codes, ['ERR_TLS_HANDSHAKE']);
  });

  it('the wrong CA, and a certificate for another name: ERR_TLS_CERT', async (t) => {
    const server = await tlsEchoServer(t, v4, tlsListenTransport({ cert: cert.cert, key: cert.key }));
    assert.equal(await codeOf(() => echoMessage(server.endpoint, Buffer.from('x'), { transport: tlsConnectTransport({ ca: other.cert }) })), 'ERR_TLS_CERT');
    const wrongName = await tlsEchoServer(t, v4, tlsListenTransport({ cert: other.cert, key: other.key }));
    assert.equal(await codeOf(() => echoMessage(wrongName.endpoint, Buffer.from('x'), { transport: tlsConnectTransport({ ca: other.cert }) })), 'ERR_TLS_CERT');
    // The same certificate is fine when asked for by the name it carries.
    const r = await echoMessage(wrongName.endpoint, Buffer.from('ok'), { transport: tlsConnectTransport({ ca: other.cert, servername: 'other.example' }) });
    assert.equal(r.reply.toString(), 'ok');
  });

  it('a pin that does not match: ERR_TLS_PIN_MISMATCH', async (t) => {
    const server = await tlsEchoServer(t, v4, tlsListenTransport({ cert: other.cert, key: other.key }));
    assert.equal(await codeOf(() => echoMessage(server.endpoint, Buffer.from('secret'), { transport: tlsConnectTransport({ pin: cert.fingerprint }) })), 'ERR_TLS_PIN_MISMATCH');
  });

  it('a wrong PSK or identity: ERR_TLS_PSK on both sides', async (t) => {
    const key = psk();
    const f = failures();
    const server = await tlsEchoServer(t, v4, tlsListenTransport({ psk: key, onHandshakeError: f.onHandshakeError }));
    const wrongKey = { identity: key.identity, key: randomBytes(32) };
    const wrongId = { identity: 'someone', key: key.key };
    assert.equal(await codeOf(() => echoMessage(server.endpoint, Buffer.from('x'), { transport: tlsConnectTransport({ psk: wrongKey }) })), 'ERR_TLS_PSK');
    assert.equal(await codeOf(() => echoMessage(server.endpoint, Buffer.from('x'), { transport: tlsConnectTransport({ psk: wrongId }) })), 'ERR_TLS_PSK');
    await waitUntil(() => f.codes.length >= 2, 'two failed handshakes');
    assert.deepEqual(f.codes, ['ERR_TLS_PSK', 'ERR_TLS_PSK']);
  });

  it('a plaintext client at a TLS server: the server logs ERR_TLS_PLAINTEXT_PEER (long or short first words)', async (t) => {
    const f = failures();
    const server = await tlsEchoServer(t, v4, tlsListenTransport({ cert: cert.cert, key: cert.key, onHandshakeError: f.onHandshakeError }));
    for (const words of ['hello world, in plain text\n', 'hi']) {
      const s = await rawConnect(server.endpoint);
      t.after(() => s.destroy());
      s.end(words);
      await readAll(s).catch(() => Buffer.alloc(0));
    }
    await waitUntil(() => f.codes.length >= 2, 'two failed handshakes');
    assert.deepEqual(f.codes, ['ERR_TLS_PLAINTEXT_PEER', 'ERR_TLS_PLAINTEXT_PEER']);
  });

  it('a TLS client at a plaintext server: ERR_TLS_PLAINTEXT_PEER (echo, or a text answer); a server that just closes: ERR_TLS_HANDSHAKE', async (t) => {
    const echo = await startEchoServer(v4);
    t.after(() => echo.close());
    const transport = tlsConnectTransport({ pin: cert.fingerprint });
    assert.equal(await codeOf(() => echoMessage(echo.endpoint, Buffer.from('x'), { transport })), 'ERR_TLS_PLAINTEXT_PEER');
    const text = await startTestServer(v4, (s) => s.once('data', () => s.end('ERR what is this?\n')), t);
    assert.equal(await codeOf(() => connect(text.endpoint, {}, transport)), 'ERR_TLS_PLAINTEXT_PEER');
    const closer = await startTestServer(v4, (s) => s.destroy(), t);
    assert.equal(await codeOf(() => connect(closer.endpoint, {}, transport)), 'ERR_TLS_HANDSHAKE');
  });

  it('PSK client at a certificate server: ERR_TLS_PSK; certificate client at a PSK server: ERR_TLS_HANDSHAKE', async (t) => {
    const key = psk();
    const certServer = await tlsEchoServer(t, v4, tlsListenTransport({ cert: cert.cert, key: cert.key }));
    assert.equal(await codeOf(() => connect(certServer.endpoint, {}, tlsConnectTransport({ psk: key }))), 'ERR_TLS_PSK');
    const pskServer = await tlsEchoServer(t, v4, tlsListenTransport({ psk: key }));
    assert.equal(await codeOf(() => connect(pskServer.endpoint, {}, tlsConnectTransport({ pin: cert.fingerprint }))), 'ERR_TLS_HANDSHAKE');
  });

  it('a silent client is dropped after the handshake timeout; one that hangs up mid-handshake is dropped at once', async (t) => {
    const f = failures();
    const server = await tlsEchoServer(t, v4, tlsListenTransport({ cert: cert.cert, key: cert.key, handshakeTimeoutMs: 200, onHandshakeError: f.onHandshakeError }));
    const silent = await rawConnect(server.endpoint);
    t.after(() => silent.destroy());
    await waitUntil(() => f.codes.includes('ERR_TLS_HANDSHAKE'), 'the handshake timeout');
    await readAll(silent).catch(() => undefined);

    // A long timeout: only the EOF can be what closes this one (a half-open TLS server would hold it).
    const slow = await tlsEchoServer(t, v4, tlsListenTransport({ cert: cert.cert, key: cert.key, handshakeTimeoutMs: 60_000 }));
    const quitter = await rawConnect(slow.endpoint);
    t.after(() => quitter.destroy());
    await waitUntil(() => slow.listener.pending === 1, 'the connection');
    quitter.end();
    await waitUntil(() => slow.listener.open === 0, 'the server to close the connection after the EOF');
  });

  it('unusable certificates, keys and option combinations: ERR_TLS_CONFIG / ERR_INVALID_ARG', async () => {
    assert.equal(await codeOf(() => tlsListenTransport({ cert: cert.cert, key: other.key })), 'ERR_TLS_CONFIG');
    assert.equal(await codeOf(() => tlsListenTransport({ cert: 'junk', key: cert.key })), 'ERR_TLS_CONFIG');
    assert.equal(await codeOf(() => tlsListenTransport({ cert: cert.cert })), 'ERR_INVALID_ARG');
    assert.equal(await codeOf(() => tlsListenTransport({ cert: cert.cert, key: cert.key, psk: psk() })), 'ERR_INVALID_ARG');
    assert.equal(await codeOf(() => tlsConnectTransport({ psk: psk(), pin: cert.fingerprint })), 'ERR_INVALID_ARG');
    assert.equal(await codeOf(() => tlsConnectTransport({ ca: 'no certificate here' })), 'ERR_TLS_CONFIG');
    assert.equal(await codeOf(() => tlsConnectTransport({ pin: 'abc' })), 'ERR_INVALID_ARG');
  });
});

describe('allow and deny on real connections', () => {
  it('a denied peer is closed before a byte is read, counted and reported; an allowed one is served', async (t) => {
    const events: EchoServerEvent[] = [];
    const denied = await startEchoServer(v4, { admit: new AccessList({ deny: ['127.0.0.0/8'] }).admit, onEvent: (e) => events.push(e) });
    t.after(() => denied.close());
    await assert.rejects(echoMessage(denied.endpoint, Buffer.from('x')));
    await waitUntil(() => denied.stats.refused === 1, 'the refusal to be counted');
    const refused = events.find((e) => e.event === 'refused');
    assert.ok(refused && refused.event === 'refused' && refused.reason.includes('ERR_ACCESS_DENIED'));
    assert.equal(denied.stats.accepted, 0);

    const allowed = await startEchoServer(v4, { admit: new AccessList({ allow: ['127.0.0.0/8'] }).admit });
    t.after(() => allowed.close());
    assert.equal((await echoMessage(allowed.endpoint, Buffer.from('in'))).reply.toString(), 'in');
  });

  it('over TLS: a peer outside --allow gets ERR_TLS_HANDSHAKE and the server no handshake at all', async (t) => {
    const f = failures();
    const server = await startEchoServer(v4, { transport: tlsListenTransport({ cert: cert.cert, key: cert.key, onHandshakeError: f.onHandshakeError }), admit: new AccessList({ allow: ['10.0.0.0/8'] }).admit });
    t.after(() => server.close());
    assert.equal(await codeOf(() => connect(server.endpoint, {}, tlsConnectTransport({ pin: cert.fingerprint }))), 'ERR_TLS_HANDSHAKE');
    await waitUntil(() => server.stats.refused === 1, 'the refusal');
    assert.deepEqual(f.codes, []); // refused before TLS began: reported once, as a refusal
  });

  it('IPv6: ::1 is refused by an IPv4-only allow list and admitted by an ::1 entry', async (t) => {
    if (!ipv6) return t.skip('no IPv6 loopback');
    const v4only = await startEchoServer(v6, { admit: new AccessList({ allow: ['127.0.0.0/8'] }).admit });
    t.after(() => v4only.close());
    await assert.rejects(echoMessage(v4only.endpoint, Buffer.from('x')));
    await waitUntil(() => v4only.stats.refused === 1, 'the refusal');
    const six = await startEchoServer(v6, { admit: new AccessList({ allow: ['::1/128'] }).admit });
    t.after(() => six.close());
    assert.equal((await echoMessage(six.endpoint, Buffer.from('v6'))).reply.toString(), 'v6');
  });
});

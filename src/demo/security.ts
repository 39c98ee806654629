/**
 * Tour step: security. A certificate made on the spot, echo and a file transfer over TLS with
 * the certificate pinned, echo over TLS-PSK, and each refusal with its code: an untrusted
 * certificate, a wrong pin, a wrong pre-shared key, a plaintext client, a denied address.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TourStep } from './tour.js';
import { startEchoServer } from '../echo/server.js';
import { echoMessage } from '../echo/client.js';
import { formatEndpoint, type Endpoint } from '../net/endpoint.js';
import { formatBytes, formatMs } from '../cli/report.js';
import { isSocketkitError, type SocketkitError } from '../core/errors.js';
import { download, startFileServer } from '../transfer/index.js';
import { AccessList, generateCertificate, tlsConnectTransport, tlsListenTransport } from '../security/index.js';

/** Runs `fn`, which must fail; returns the code it failed with. */
async function refusedWith(fn: () => Promise<unknown>): Promise<string> {
  try {
    await fn();
  } catch (err) {
    if (isSocketkitError(err)) return err.code;
    throw err;
  }
  throw new Error('expected a refusal, but it was let through');
}

function expect(code: string, want: string): string {
  if (code !== want) throw new Error(`expected ${want}, got ${code}`);
  return code;
}

export const securityStep: TourStep = {
  title: 'Security: TLS with a pinned self-signed certificate, TLS-PSK, and every refusal with its code',
  async run({ row, tmp }) {
    const v4: Endpoint = { kind: 'inet', host: '127.0.0.1', port: 0 };
    const t0 = performance.now();
    const cert = await generateCertificate();
    row('certificate', `self-signed, for localhost, 127.0.0.1 and ::1, made in ${formatMs(performance.now() - t0)}`);
    row('', `SHA-256 ${cert.fingerprint}`);

    const serverErrors: SocketkitError[] = [];
    const onHandshakeError = (_peer: string, err: SocketkitError): void => void serverErrors.push(err);
    const tlsServer = await startEchoServer(v4, { transport: tlsListenTransport({ cert: cert.cert, key: cert.key, onHandshakeError }) });
    try {
      const where = formatEndpoint(tlsServer.endpoint);
      const r = await echoMessage(tlsServer.endpoint, Buffer.from('Hola mundo'), { transport: tlsConnectTransport({ pin: cert.fingerprint }) });
      row(where, `TLS, pinned: sent "Hola mundo", got "${r.reply.toString()}" back (connect + handshake ${formatMs(r.connectMs)})`);
      const ca = await echoMessage(tlsServer.endpoint, Buffer.from('x'), { transport: tlsConnectTransport({ ca: cert.cert }) });
      row('', `TLS, --ca: chain and name 127.0.0.1 verified (${ca.reply.length} byte echoed)`);
      row('', `system CAs only: refused, ${expect(await refusedWith(() => echoMessage(tlsServer.endpoint, Buffer.from('x'), { transport: tlsConnectTransport() })), 'ERR_TLS_CERT')}`);
      const otherPin = createHash('sha256').update('another certificate').digest('hex');
      row('', `wrong pin: refused, ${expect(await refusedWith(() => echoMessage(tlsServer.endpoint, Buffer.from('x'), { transport: tlsConnectTransport({ pin: otherPin }) })), 'ERR_TLS_PIN_MISMATCH')}`);
      const plain = await refusedWith(() => echoMessage(tlsServer.endpoint, Buffer.from('hello, in plain text')));
      await waitFor(() => serverErrors.some((e) => e.code === 'ERR_TLS_PLAINTEXT_PEER'));
      row('', `plaintext client: its echo failed (${plain}); the server logged ERR_TLS_PLAINTEXT_PEER`);
    } finally {
      await tlsServer.close();
    }

    // A file over TLS: served, downloaded, verified by SHA-256.
    const src = join(tmp, 'security-src');
    const dst = join(tmp, 'security-dst');
    await mkdir(src, { recursive: true });
    const data = randomBytes(2 * 1024 * 1024);
    await writeFile(join(src, 'secret.bin'), data);
    const files = await startFileServer(v4, { paths: [join(src, 'secret.bin')], transport: tlsListenTransport({ cert: cert.cert, key: cert.key }) });
    try {
      const s = await download(files.endpoint, { dir: dst, transport: tlsConnectTransport({ pin: cert.fingerprint }) });
      const same = (await readFile(join(dst, 'secret.bin'))).equals(data);
      if (!same || s.files !== 1) throw new Error('the file did not arrive intact over TLS');
      row(formatEndpoint(files.endpoint), `file transfer over TLS: ${formatBytes(s.bytes)} served, downloaded and verified in ${formatMs(s.seconds * 1000)}`);
    } finally {
      await files.close();
    }

    const psk = { identity: 'tour', key: randomBytes(32) };
    const pskServer = await startEchoServer(v4, { transport: tlsListenTransport({ psk }) });
    try {
      const r = await echoMessage(pskServer.endpoint, Buffer.from('shared secret only'), { transport: tlsConnectTransport({ psk }) });
      row(formatEndpoint(pskServer.endpoint), `TLS-PSK (32-byte key, identity 'tour'): "${r.reply.toString()}" echoed, no certificate involved`);
      const wrong = { identity: 'tour', key: randomBytes(32) };
      row('', `TLS-PSK with the wrong key: refused, ${expect(await refusedWith(() => echoMessage(pskServer.endpoint, Buffer.from('x'), { transport: tlsConnectTransport({ psk: wrong }) })), 'ERR_TLS_PSK')}`);
    } finally {
      await pskServer.close();
    }

    const denied = await startEchoServer(v4, { admit: new AccessList({ allow: ['10.0.0.0/8'] }).admit });
    try {
      await refusedWith(() => echoMessage(denied.endpoint, Buffer.from('x')));
      await waitFor(() => denied.stats.refused > 0);
      row(formatEndpoint(denied.endpoint), `--allow 10.0.0.0/8: 127.0.0.1 closed before a byte was read, counted (${denied.stats.refused} refused), ERR_ACCESS_DENIED`);
    } finally {
      await denied.close();
    }
  },
};

/** Polls `cond` for up to 5 s (server-side logs land a moment after the client's error). */
async function waitFor(cond: () => boolean): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('the server did not report the refusal');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * TLS and TLS-PSK transports for `connect()` and `listen()`.
 *
 * Client verification, in order of preference:
 * - `pin`: the server certificate's SHA-256 fingerprint must match. Chain and host name are not
 *   checked (a pin is stronger than both), so a self-signed certificate is accepted — only it.
 * - `ca`: standard chain verification against the given CA certificate(s) plus the host name
 *   check (a `socketkit cert` certificate may serve as its own CA). With `pin` too, both apply.
 * - neither: the system's CAs and the host name, as Node does by default.
 * - `psk`: no certificates at all. The handshake authenticates both ends by the shared key, and
 *   the client refuses a server that answers with a certificate instead (with TLS 1.3 a server
 *   that ignores the PSK could otherwise authenticate with any CA-valid certificate).
 *
 * Half-close: Node keeps a TLS socket open after the peer's FIN only if allowHalfOpen is set,
 * but a half-open TLS server never notices a peer that hangs up mid-handshake (it holds the
 * socket until the handshake timeout). So sockets start with allowHalfOpen off and switch it on
 * once the handshake is done (Duplex documents the property as changeable before 'end'); from
 * then on a reply in flight survives the peer's half-close, over TLS 1.2 and 1.3 alike.
 *
 * Failures get stable codes: ERR_TLS_CERT, ERR_TLS_PIN_MISMATCH, ERR_TLS_PSK,
 * ERR_TLS_PLAINTEXT_PEER, ERR_TLS_HANDSHAKE, and ERR_TLS_CONFIG for unusable files.
 */
import tls, { type TLSSocket } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { isIP, type Server, type Socket } from 'node:net';
import { SocketkitError, toSocketkitError } from '../core/errors.js';
import { formatEndpoint, formatPeer } from '../net/endpoint.js';
import type { ConnectTransport } from '../net/connect.js';
import type { ListenTransport } from '../net/listen.js';
import { parsePin } from './pin.js';
import type { PreSharedKey } from './psk.js';
import { DEFAULT_HANDSHAKE_TIMEOUT_MS, PSK_CIPHERS } from './constants.js';

type Pem = string | Buffer;

export interface TlsClientOptions {
  /** CA certificate(s), PEM, to verify the server against instead of the system's CAs. */
  readonly ca?: Pem | readonly Pem[];
  /** The server certificate's SHA-256 fingerprint (hex, colons optional). */
  readonly pin?: string;
  /** The name to check the certificate against and send as SNI. Default: the host connected to. */
  readonly servername?: string;
  /** Use TLS-PSK with this key instead of certificates. */
  readonly psk?: PreSharedKey;
}

export interface TlsServerOptions {
  /** Certificate (PEM, may include the chain) and private key (PEM): certificate mode. */
  readonly cert?: Pem;
  readonly key?: Pem;
  /** PSK mode: only clients holding this key and identity get in. */
  readonly psk?: PreSharedKey;
  /** A client must finish its handshake within this many ms. Default 10 s. */
  readonly handshakeTimeoutMs?: number;
  /** Told about every failed handshake (plaintext client, wrong PSK, untrusted certificate, ...). */
  readonly onHandshakeError?: (peer: string, err: SocketkitError) => void;
}

/** A connect transport that speaks TLS; `mode` says which kind. */
export interface TlsConnectTransport extends ConnectTransport {
  readonly mode: 'tls' | 'psk';
}

/** A listen transport that speaks TLS; counts failed handshakes. */
export interface TlsListenTransport extends ListenTransport {
  readonly mode: 'tls' | 'psk';
  /** Handshakes that failed, over every server this transport created. */
  readonly handshakeFailures: number;
}

/**
 * The smallest possible ClientHello record (5-byte record header, 4-byte handshake header,
 * version, 32-byte random, empty session id, one cipher suite, one compression method): a peer
 * that sent less and hung up was not starting a TLS handshake.
 */
const MIN_CLIENT_HELLO_BYTES = 50;

const SELF_SIGNED = new Set(['DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN']);
/** Alerts and errors that mean "these bytes are not TLS": the peer speaks plaintext. */
const NOT_TLS = new Set([
  'ERR_SSL_WRONG_VERSION_NUMBER',
  'ERR_SSL_HTTP_REQUEST',
  'ERR_SSL_HTTPS_PROXY_REQUEST',
  'ERR_SSL_PACKET_LENGTH_TOO_LONG',
  'ERR_SSL_UNKNOWN_PROTOCOL',
  'ERR_SSL_UNEXPECTED_MESSAGE',
]);
/** What a wrong key or identity looks like, on either side, in TLS 1.2 and 1.3. */
const PSK_FAILURE = new Set([
  'ERR_SSL_BINDER_DOES_NOT_VERIFY',
  'ERR_SSL_PSK_IDENTITY_NOT_FOUND',
  'ERR_SSL_DECRYPTION_FAILED_OR_BAD_RECORD_MAC',
  'ERR_SSL_CIPHER_OPERATION_FAILED',
  'ERR_SSL_BAD_RECORD_MAC',
  'ERR_SSL_NO_SUITABLE_SIGNATURE_ALGORITHM',
  'ERR_SSL_NO_SHARED_CIPHER',
  'ERR_SSL_SSLV3_ALERT_ILLEGAL_PARAMETER',
  'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE',
  'ERR_SSL_SSLV3_ALERT_BAD_RECORD_MAC',
  'ERR_SSL_TLSV1_ALERT_DECRYPT_ERROR',
  'ERR_SSL_TLSV1_ALERT_UNKNOWN_PSK_IDENTITY',
]);

function codeOf(err: unknown): string {
  const c = (err as { code?: unknown } | null)?.code;
  return typeof c === 'string' ? c : '';
}

function firstLine(err: unknown): string {
  const m = err instanceof Error ? err.message : String(err);
  // OpenSSL messages look like "80EC...:error:0A00010B:SSL routines:ssl3_get_record:wrong version number:../deps/..."
  const ssl = /:SSL routines:[^:]*:([^:]+)/.exec(m);
  return (ssl?.[1] ?? m.split('\n')[0] ?? m).trim();
}

/** Certificate-verification codes from OpenSSL (X509_V_ERR_*) and Node's host name check. */
function isCertError(code: string): boolean {
  return code === 'ERR_TLS_CERT_ALTNAME_INVALID' || (!code.startsWith('ERR_') && /CERT|ISSUER|SELF_SIGNED|CHAIN|CRL|SIGNATURE|PATH/.test(code));
}

/** Maps a failure while a TLS client connects to a coded error. */
function clientError(err: unknown, what: string, mode: 'tls' | 'psk', psk: PreSharedKey | undefined): SocketkitError {
  if (err instanceof SocketkitError) return err;
  const code = codeOf(err);
  if (NOT_TLS.has(code)) {
    return new SocketkitError('ERR_TLS_PLAINTEXT_PEER', `${what} does not speak TLS (${firstLine(err)}): it looks like a plaintext server`, { cause: err });
  }
  if (isCertError(code)) {
    if (mode === 'psk') {
      return new SocketkitError('ERR_TLS_PSK', `${what} answered with a certificate, not the pre-shared key: it is not in PSK mode`, { cause: err });
    }
    if (SELF_SIGNED.has(code)) {
      return new SocketkitError(
        'ERR_TLS_CERT',
        `${what} has a self-signed certificate that is not trusted (${code}): pin its fingerprint, or trust it as a CA`,
        { cause: err },
      );
    }
    if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
      return new SocketkitError('ERR_TLS_CERT', `the certificate of ${what} is not for this name: ${firstLine(err)}`, { cause: err });
    }
    return new SocketkitError('ERR_TLS_CERT', `the certificate of ${what} is not trusted: ${firstLine(err)} (${code})`, { cause: err });
  }
  if (mode === 'psk' && (PSK_FAILURE.has(code) || code.startsWith('ERR_SSL_'))) {
    return new SocketkitError(
      'ERR_TLS_PSK',
      `TLS-PSK handshake with ${what} failed (${firstLine(err)}): the server does not hold this key for identity '${psk?.identity ?? '?'}'`,
      { cause: err },
    );
  }
  if (code === 'ECONNRESET' || code === 'EPIPE') {
    return new SocketkitError(
      'ERR_TLS_HANDSHAKE',
      `${what} closed the connection during the TLS handshake: it may be a plaintext server, or it does not admit this address`,
      { cause: err },
    );
  }
  if (code.startsWith('ERR_SSL_')) {
    const hint = code === 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE' ? ' (does the server want a pre-shared key?)' : '';
    return new SocketkitError('ERR_TLS_HANDSHAKE', `TLS handshake with ${what} failed: ${firstLine(err)}${hint}`, { cause: err });
  }
  return toSocketkitError(err, what);
}

function caList(ca: Pem | readonly Pem[] | undefined): Pem[] | undefined {
  if (ca === undefined) return undefined;
  const list = Array.isArray(ca) ? [...(ca as readonly Pem[])] : [ca as Pem];
  const certs: string[] = [];
  for (const item of list) {
    const blocks = item.toString().match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
    for (const b of blocks) {
      try {
        new X509Certificate(b);
      } catch (err) {
        throw new SocketkitError('ERR_TLS_CONFIG', `CA: a certificate in the file cannot be parsed (${firstLine(err)})`, { cause: err });
      }
      certs.push(b);
    }
  }
  if (certs.length === 0) throw new SocketkitError('ERR_TLS_CONFIG', 'CA: no PEM certificate found in the file');
  return certs;
}

/**
 * A transport for `connect()` (and everything built on it) that speaks TLS or TLS-PSK.
 * Throws ERR_INVALID_ARG for contradictory options and ERR_TLS_CONFIG for unusable CA files.
 *
 * @example
 * ```ts
 * const transport = tlsConnectTransport({ pin: 'AB:CD:...' });
 * await echoMessage(ep, Buffer.from('hi'), { transport });
 * ```
 */
export function tlsConnectTransport(options: TlsClientOptions = {}): TlsConnectTransport {
  const pin = options.pin === undefined ? undefined : parsePin(options.pin);
  const ca = caList(options.ca);
  const psk = options.psk;
  if (psk && (ca !== undefined || pin !== undefined)) {
    throw new SocketkitError('ERR_INVALID_ARG', 'a pre-shared key replaces certificates: psk cannot be combined with ca or pin');
  }
  const mode = psk ? 'psk' : 'tls';
  const base: tls.ConnectionOptions = psk
    ? {
        ciphers: PSK_CIPHERS,
        pskCallback: () => ({ psk: psk.key, identity: psk.identity }),
        // There is no certificate to check; check() makes sure none was used.
        checkServerIdentity: () => undefined,
      }
    : {
        ...(ca ? { ca } : {}),
        // With only a pin, OpenSSL must let an unknown (self-signed) certificate through to check().
        rejectUnauthorized: pin === undefined || ca !== undefined,
        ...(pin !== undefined && ca === undefined ? { checkServerIdentity: () => undefined } : {}),
      };
  // Verification failures found after the handshake, for connect()'s verify hook.
  const failures = new WeakMap<Socket, SocketkitError>();

  const check = (socket: TLSSocket, what: string): SocketkitError | undefined => {
    const cert = socket.getPeerCertificate();
    const hasCert = cert !== null && typeof cert === 'object' && Object.keys(cert).length > 0;
    if (psk) {
      if (hasCert) return new SocketkitError('ERR_TLS_PSK', `${what} authenticated with a certificate, not the pre-shared key: it is not in PSK mode`);
      return undefined;
    }
    if (pin !== undefined) {
      const got = hasCert ? cert.fingerprint256 : undefined;
      if (got !== pin) {
        return new SocketkitError('ERR_TLS_PIN_MISMATCH', `the certificate of ${what} has fingerprint ${got ?? '(none)'}, not the pinned ${pin}`);
      }
    }
    if (!socket.authorized && ca !== undefined) {
      return new SocketkitError('ERR_TLS_CERT', `the certificate of ${what} is not trusted: ${String(socket.authorizationError)}`);
    }
    return undefined;
  };

  return {
    mode,
    readyEvent: 'secureConnect',
    open(ep) {
      const what = formatEndpoint(ep);
      const servername = options.servername ?? (ep.kind === 'inet' && isIP(ep.host) === 0 ? ep.host : undefined);
      // allowHalfOpen stays false (tls.connect's default) until the handshake is done.
      const socket =
        ep.kind === 'unix'
          ? tls.connect({ ...base, path: ep.path, ...(servername ? { servername } : {}) })
          : tls.connect({ ...base, host: ep.host, port: ep.port, ...(servername ? { servername } : {}) });
      // Runs before any other 'secureConnect' listener: a socket that fails the check is
      // destroyed before anyone can write to it, even a caller that bypasses connect().
      socket.prependOnceListener('secureConnect', () => {
        const err = check(socket, what);
        if (err) {
          failures.set(socket, err);
          socket.destroy();
          return;
        }
        socket.allowHalfOpen = true;
      });
      return socket;
    },
    verify: (socket) => failures.get(socket),
    mapError: (err, what) => clientError(err, what, mode, psk),
  };
}

/** The raw TCP socket under a server-side TLS socket (Node keeps it as `_parent`). */
function rawOf(socket: TLSSocket): Socket {
  return (socket as TLSSocket & { _parent?: Socket })._parent ?? socket;
}

/** Maps a server-side handshake failure to a coded error, or undefined when not worth a line. */
function serverError(err: unknown, socket: TLSSocket, mode: 'tls' | 'psk', identity: string | undefined, timeoutMs: number): SocketkitError | undefined {
  const code = codeOf(err);
  const raw = rawOf(socket);
  if (NOT_TLS.has(code)) {
    return new SocketkitError('ERR_TLS_PLAINTEXT_PEER', `client sent plaintext, not TLS (${firstLine(err)}): it needs ${mode === 'psk' ? 'TLS with the pre-shared key' : 'TLS'}`, { cause: err });
  }
  if (code === 'ERR_TLS_HANDSHAKE_TIMEOUT') {
    return new SocketkitError('ERR_TLS_HANDSHAKE', `no TLS handshake within ${timeoutMs / 1000} s (a plaintext client waiting for us to speak?)`, { cause: err });
  }
  if (code === 'ECONNRESET' || code === 'EPIPE') {
    // A peer that hung up before sending anything (a port probe, or refused by --allow/--deny
    // and already reported) is not a handshake failure.
    if (raw.bytesRead === 0) return undefined;
    if (raw.bytesRead < MIN_CLIENT_HELLO_BYTES) {
      return new SocketkitError('ERR_TLS_PLAINTEXT_PEER', `client sent ${raw.bytesRead} bytes that are not a TLS handshake and hung up: a plaintext client (it needs ${mode === 'psk' ? 'TLS with the pre-shared key' : 'TLS'})`, { cause: err });
    }
    const why = mode === 'tls' ? ': it probably does not trust our certificate (it needs our fingerprint pinned, or our certificate as its CA)' : '';
    return new SocketkitError('ERR_TLS_HANDSHAKE', `client hung up during the TLS handshake${why}`, { cause: err });
  }
  if (mode === 'psk' && (PSK_FAILURE.has(code) || code.startsWith('ERR_SSL_'))) {
    const who = identity === undefined ? '' : ` (identity '${identity}')`;
    return new SocketkitError('ERR_TLS_PSK', `TLS-PSK handshake failed${who}: the client does not hold our key (${firstLine(err)})`, { cause: err });
  }
  if (mode === 'tls' && (code === 'ERR_SSL_NO_SHARED_CIPHER' || code === 'ERR_SSL_NO_SUITABLE_SIGNATURE_ALGORITHM')) {
    return new SocketkitError('ERR_TLS_HANDSHAKE', `TLS handshake failed: ${firstLine(err)} (a PSK-only client?)`, { cause: err });
  }
  return new SocketkitError('ERR_TLS_HANDSHAKE', `TLS handshake failed: ${firstLine(err)}${code ? ` (${code})` : ''}`, { cause: err });
}

function configError(what: string, err: unknown): SocketkitError {
  const code = codeOf(err);
  const why = code === 'ERR_OSSL_X509_KEY_VALUES_MISMATCH' ? 'the key does not belong to the certificate' : firstLine(err);
  return new SocketkitError('ERR_TLS_CONFIG', `${what}: ${why}`, { cause: err });
}

/**
 * A transport for `listen()` (and every server built on it) that speaks TLS with a
 * certificate, or TLS-PSK. Throws ERR_TLS_CONFIG at once for unusable certificates or keys.
 *
 * @example
 * ```ts
 * const { cert, key } = await generateCertificate();
 * const server = await startEchoServer(ep, { transport: tlsListenTransport({ cert, key }) });
 * ```
 */
export function tlsListenTransport(options: TlsServerOptions): TlsListenTransport {
  const { psk, cert, key } = options;
  if (psk && (cert !== undefined || key !== undefined)) {
    throw new SocketkitError('ERR_INVALID_ARG', 'choose one: a certificate and key, or a pre-shared key');
  }
  if (!psk && (cert === undefined || key === undefined)) {
    throw new SocketkitError('ERR_INVALID_ARG', 'TLS needs both a certificate and its key');
  }
  const mode = psk ? 'psk' : 'tls';
  const timeoutMs = options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
  if (!psk) {
    try {
      new X509Certificate(cert!);
    } catch (err) {
      throw configError('certificate: not a PEM certificate', err);
    }
    try {
      tls.createSecureContext({ cert: cert!, key: key! });
    } catch (err) {
      throw configError('certificate and key', err);
    }
  }
  const identities = new WeakMap<TLSSocket, string>();
  let handshakeFailures = 0;
  const serverOptions: tls.TlsOptions = {
    ...(psk
      ? {
          ciphers: PSK_CIPHERS,
          pskCallback: (socket: TLSSocket, identity: string) => {
            identities.set(socket, identity);
            return identity === psk.identity ? psk.key : null;
          },
        }
      : { cert: cert!, key: key! }),
    handshakeTimeout: timeoutMs,
    allowHalfOpen: false, // until the handshake is done: see the module comment
    noDelay: true,
  };
  return {
    mode,
    readyEvent: 'secureConnection',
    get handshakeFailures() {
      return handshakeFailures;
    },
    create(): Server {
      const server = tls.createServer(serverOptions);
      // Registered before listen()'s own handler, so the socket is half-open capable first.
      server.prependListener('secureConnection', (socket: TLSSocket) => {
        socket.allowHalfOpen = true;
      });
      // Remember each peer's address while its socket is alive; a failed handshake may report late.
      server.on('connection', (raw: Socket) => void raw.remoteAddress);
      server.on('tlsClientError', (err: Error, socket: TLSSocket) => {
        // Node reports a handshake timeout here but leaves the socket open: close it.
        socket.destroy();
        const coded = serverError(err, socket, mode, identities.get(socket), timeoutMs);
        if (!coded) return;
        handshakeFailures++;
        const raw = rawOf(socket);
        options.onHandshakeError?.(formatPeer(raw.remoteAddress, raw.remotePort), coded);
      });
      return server;
    },
  };
}

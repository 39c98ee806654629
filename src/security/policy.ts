/**
 * The rule for servers that hand out or accept files: on anything but loopback (or a Unix
 * socket), they need TLS or a PSK, unless the user says `--insecure`.
 */
import { isIP } from 'node:net';
import { SocketkitError } from '../core/errors.js';
import { formatEndpoint, type Endpoint } from '../net/endpoint.js';

/** How a connection is protected. */
export type SecurityMode = 'plain' | 'tls' | 'psk';

/** True for loopback hosts: `localhost`, 127.0.0.0/8, `::1` (and `::ffff:127.x.y.z`). */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/\.$/, '');
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) === 6) return h === '::1' || /^(0{1,4}:){7}0{0,3}1$/.test(h) || /^::ffff:127\./.test(h);
  return false;
}

/**
 * Refuses (ERR_INSECURE_LISTENER) to listen in plaintext on a non-loopback address unless
 * `insecure` is set. Returns a one-line warning when `insecure` let it through, else undefined.
 */
export function requireSecureListener(ep: Endpoint, mode: SecurityMode, insecure: boolean): string | undefined {
  if (mode !== 'plain' || ep.kind === 'unix' || isLoopbackHost(ep.host)) return undefined;
  const where = formatEndpoint(ep);
  if (!insecure) {
    throw new SocketkitError(
      'ERR_INSECURE_LISTENER',
      `refusing to serve files on ${where} in plaintext: use TLS with a certificate or a pre-shared key, or accept the risk explicitly`,
    );
  }
  return `warning: serving on ${where} without encryption: anyone on the network can read and alter the transfer`;
}

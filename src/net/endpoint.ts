/**
 * Addresses as users type them, parsed once for every command.
 *
 * Accepted forms:
 * - `PORT`                 the default host (loopback) on PORT
 * - `HOST:PORT`, `HOST`     a name or IPv4 address, with the default port when none is given
 * - `[IPV6]:PORT`, `[IPV6]` an IPv6 address in brackets; a bare `::1` is taken as a host too
 * - `:PORT`                the default host on PORT
 * - `unix:PATH`            a Unix domain socket
 */
import { isIP } from 'node:net';
import { lookup } from 'node:dns/promises';
import { SocketkitError, toSocketkitError } from '../core/errors.js';
import { DEFAULT_PORT } from '../core/defaults.js';

/** A TCP/UDP host and port. `host` is a name or a literal IPv4/IPv6 address (no brackets). */
export interface InetEndpoint {
  readonly kind: 'inet';
  readonly host: string;
  readonly port: number;
}

/** A Unix domain socket path. */
export interface UnixEndpoint {
  readonly kind: 'unix';
  readonly path: string;
}

export type Endpoint = InetEndpoint | UnixEndpoint;

export interface ParseEndpointOptions {
  /** Host used when the text names only a port. */
  readonly defaultHost: string;
  /** Port used when the text names only a host. Default 9800. */
  readonly defaultPort?: number;
  /** Whether port 0 (let the system choose) is acceptable: true for listeners. */
  readonly allowPortZero?: boolean;
}

const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62})(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62}))*\.?$/;

function bad(text: string, why: string): SocketkitError {
  return new SocketkitError('ERR_BAD_ADDRESS', `bad address '${text}': ${why}`);
}

function parsePort(text: string, portText: string, allowZero: boolean): number {
  if (!/^\d{1,5}$/.test(portText)) throw bad(text, `port '${portText}' is not a number from ${allowZero ? 0 : 1} to 65535`);
  const port = Number(portText);
  if (port > 65535 || (port === 0 && !allowZero)) {
    throw bad(text, `port ${port} is out of range (${allowZero ? 0 : 1}-65535)`);
  }
  return port;
}

function checkHost(text: string, host: string): string {
  if (host.length === 0) throw bad(text, 'empty host');
  if (isIP(host) !== 0) return host;
  // A name never ends in an all-numeric label (RFC 3696 §2): `1.2.3` or `256.0.0.1` is a
  // mistyped IPv4 address, which the resolver would otherwise read in legacy forms (1.2.0.3).
  if (/(^|\.)\d+\.?$/.test(host)) throw bad(text, `'${host}' is not a valid IPv4 address`);
  if (HOSTNAME.test(host)) return host;
  throw bad(text, `'${host}' is not a host name or IP address`);
}

/** Parses one address; throws a SocketkitError with code ERR_BAD_ADDRESS when malformed. */
export function parseEndpoint(text: string, options: ParseEndpointOptions): Endpoint {
  const defaultPort = options.defaultPort ?? DEFAULT_PORT;
  const allowZero = options.allowPortZero ?? false;
  const t = text.trim();
  if (t.length === 0) throw bad(text, 'empty');
  if (t.startsWith('unix:')) {
    const path = t.slice('unix:'.length);
    if (path.length === 0) throw bad(text, 'empty Unix socket path');
    if (path.includes('\0')) throw bad(text, 'Unix socket path contains a NUL byte');
    // sun_path holds 108 bytes on Linux, 104 on the BSDs, with the terminating NUL.
    if (Buffer.byteLength(path) > 107) throw bad(text, 'Unix socket path is longer than 107 bytes');
    return { kind: 'unix', path };
  }
  if (/^\d+$/.test(t)) return { kind: 'inet', host: options.defaultHost, port: parsePort(text, t, allowZero) };
  if (t.startsWith('[')) {
    const close = t.indexOf(']');
    if (close < 0) throw bad(text, "missing ']' after IPv6 address");
    const host = t.slice(1, close);
    if (isIP(host) !== 6) throw bad(text, `'${host}' is not an IPv6 address`);
    const rest = t.slice(close + 1);
    if (rest === '') return { kind: 'inet', host, port: defaultPort };
    if (!rest.startsWith(':')) throw bad(text, "expected ':PORT' after ']'");
    return { kind: 'inet', host, port: parsePort(text, rest.slice(1), allowZero) };
  }
  const colons = t.split(':').length - 1;
  if (colons > 1) {
    // A bare IPv6 literal: no port can follow it unambiguously.
    if (isIP(t) === 6) return { kind: 'inet', host: t, port: defaultPort };
    const withPort = /^(.*):(\d{1,5})$/.exec(t);
    if (withPort && isIP(withPort[1]!) === 6) throw bad(text, `an IPv6 address with a port must be written [ADDR]:PORT: [${withPort[1]}]:${withPort[2]}`);
    throw bad(text, 'an IPv6 address with a port must be written [ADDR]:PORT');
  }
  if (colons === 1) {
    const i = t.indexOf(':');
    const hostText = t.slice(0, i);
    const host = hostText === '' ? options.defaultHost : checkHost(text, hostText);
    return { kind: 'inet', host, port: parsePort(text, t.slice(i + 1), allowZero) };
  }
  return { kind: 'inet', host: checkHost(text, t), port: defaultPort };
}

/**
 * For a bare IPv6 literal whose last group reads as a port (`::1:9800`, which is one address),
 * how to write that address with that port; undefined for any other text.
 */
export function ipv6PortHint(text: string): string | undefined {
  const t = text.trim();
  const m = /^(.*):(\d{1,5})$/.exec(t);
  if (t.startsWith('[') || isIP(t) !== 6 || !m || isIP(m[1]!) !== 6) return undefined;
  const port = Number(m[2]);
  if (port < 1 || port > 65535) return undefined;
  return `'${t}' is one IPv6 address; for port ${port} on ${m[1]}, write [${m[1]}]:${port}`;
}

/** Formats an endpoint the way users write it: `127.0.0.1:9800`, `[::1]:9800`, `unix:/tmp/s`. */
export function formatEndpoint(ep: Endpoint): string {
  if (ep.kind === 'unix') return `unix:${ep.path}`;
  return isIP(ep.host) === 6 ? `[${ep.host}]:${ep.port}` : `${ep.host}:${ep.port}`;
}

/** Formats a peer's address and port (as reported by a socket) for logs. */
export function formatPeer(address: string | undefined, port: number | undefined): string {
  if (address === undefined) return 'unix-peer';
  return isIP(address) === 6 ? `[${address}]:${port ?? 0}` : `${address}:${port ?? 0}`;
}

/** A resolved internet endpoint: a literal address and its family. */
export interface ResolvedInet {
  readonly address: string;
  readonly family: 4 | 6;
  readonly port: number;
}

/**
 * Resolves a host name to one address (the system resolver's first answer, IPv4 or IPv6).
 * Needed where Node does not resolve for us, such as choosing a UDP socket's family.
 */
export async function resolveInet(ep: InetEndpoint): Promise<ResolvedInet> {
  const fam = isIP(ep.host);
  if (fam === 4 || fam === 6) return { address: ep.host, family: fam, port: ep.port };
  try {
    const r = await lookup(ep.host);
    return { address: r.address, family: r.family === 6 ? 6 : 4, port: ep.port };
  } catch (err) {
    throw toSocketkitError(err, ep.host);
  }
}

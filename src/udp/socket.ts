/**
 * UDP sockets from socketkit endpoints: family choice, binding, connecting, coded errors.
 *
 * `node:dgram` needs the family up front (udp4 or udp6), so names are resolved first with
 * `resolveInet`. Unix datagram sockets (AF_UNIX, SOCK_DGRAM) exist on the OS, but Node's dgram
 * module does not support them, so a `unix:` address is refused with ERR_UDP_UNIX_UNSUPPORTED.
 */
import { createSocket, type Socket as DgramSocket } from 'node:dgram';
import { SocketkitError, toSocketkitError } from '../core/errors.js';
import { formatEndpoint, resolveInet, type Endpoint, type InetEndpoint, type ResolvedInet } from '../net/endpoint.js';
import { maxUdpPayload } from './constants.js';

export type { DgramSocket };

/** Refuses what UDP cannot do here; returns the internet endpoint. */
export function requireInet(ep: Endpoint): InetEndpoint {
  if (ep.kind === 'unix') {
    throw new SocketkitError(
      'ERR_UDP_UNIX_UNSUPPORTED',
      `UDP over a Unix socket is not supported: Node's dgram module has no Unix datagram sockets (${formatEndpoint(ep)}); use a host and port`,
    );
  }
  return ep;
}

/** The coded error for a datagram over the protocol maximum (never cut, always refused). */
export function datagramTooLarge(bytes: number, family: 4 | 6, what: string): SocketkitError {
  return new SocketkitError(
    'ERR_DATAGRAM_TOO_LARGE',
    `a ${bytes}-byte datagram is over the UDP maximum of ${maxUdpPayload(family)} bytes for IPv${family} (${what}); nothing was sent`,
  );
}

/** Maps a dgram error to a coded one; ICMP port unreachable reads as ECONNREFUSED. */
export function toUdpError(err: unknown, what: string): SocketkitError {
  const code = (err as { code?: unknown } | null)?.code;
  if (code === 'ECONNREFUSED') {
    return new SocketkitError('ERR_CONN_REFUSED', `nothing is listening on UDP ${what} (ICMP port unreachable)`, { cause: err });
  }
  if (code === 'EMSGSIZE') {
    return new SocketkitError('ERR_DATAGRAM_TOO_LARGE', `datagram too large for ${what} (EMSGSIZE); nothing was sent`, { cause: err });
  }
  return toSocketkitError(err, what);
}

/** A bound UDP socket and where it is. */
export interface BoundUdp {
  readonly socket: DgramSocket;
  readonly family: 4 | 6;
  /** The bound address, with the real port when 0 was asked for. */
  readonly endpoint: InetEndpoint;
}

/** Binds a UDP socket to `ep` (port 0 picks one). IPv6 wildcards also take IPv4 (dual stack). */
export async function bindUdp(ep: Endpoint): Promise<BoundUdp> {
  const inet = requireInet(ep);
  const what = formatEndpoint(inet);
  const r = await resolveInet(inet);
  const socket = createSocket({ type: r.family === 6 ? 'udp6' : 'udp4', ipv6Only: false });
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => {
      socket.removeListener('listening', onListening);
      socket.close();
      reject(toUdpError(err, what));
    };
    const onListening = (): void => {
      socket.removeListener('error', onError);
      resolve();
    };
    socket.once('error', onError);
    socket.once('listening', onListening);
    socket.bind({ port: r.port, address: r.address, exclusive: true });
  });
  return { socket, family: r.family, endpoint: { kind: 'inet', host: inet.host, port: socket.address().port } };
}

/** A connected UDP socket: it sends only to, and hears only from, `remote`. */
export interface ConnectedUdp {
  readonly socket: DgramSocket;
  readonly remote: ResolvedInet;
  /** The largest payload this socket may send. */
  readonly maxPayload: number;
}

/**
 * Opens a UDP socket connected to `ep`. Connecting filters out datagrams from anyone else and
 * lets the kernel report ICMP port unreachable (as an 'error' event with ECONNREFUSED).
 */
export async function connectUdp(ep: Endpoint, signal?: AbortSignal): Promise<ConnectedUdp> {
  const inet = requireInet(ep);
  const what = formatEndpoint(inet);
  const remote = await resolveInet(inet);
  if (signal?.aborted) throw new SocketkitError('ERR_ABORTED', `UDP connect to ${what} aborted`);
  const socket = createSocket({ type: remote.family === 6 ? 'udp6' : 'udp4' });
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => {
      socket.removeListener('connect', onConnect);
      socket.close();
      reject(toUdpError(err, what));
    };
    const onConnect = (): void => {
      socket.removeListener('error', onError);
      resolve();
    };
    socket.once('error', onError);
    socket.once('connect', onConnect);
    socket.connect(remote.port, remote.address);
  });
  return { socket, remote, maxPayload: maxUdpPayload(remote.family) };
}

/** Closes a dgram socket once, ignoring "not running" when it already is closed. */
export function closeQuietly(socket: DgramSocket): Promise<void> {
  return new Promise((resolve) => {
    try {
      socket.close(() => resolve());
    } catch {
      resolve();
    }
  });
}

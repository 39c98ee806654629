/**
 * What the kernel knows about a socket and Node does not say: its descriptor, and whether a
 * stream that "ended" was in fact reset by the peer. Both need a plain (not TLS) TCP or Unix
 * socket; the reset check needs the native helper (`src/native/helper.ts`).
 */
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import { nativeHelper } from '../native/helper.js';

/** Linux's TCP_CLOSE: the state a reset leaves a socket in (a clean end leaves CLOSE_WAIT). */
const TCP_CLOSE = 7;

/** The socket's descriptor, for a plain TCP or Unix socket that is still open. */
export function socketFd(socket: Socket): number | undefined {
  if (socket instanceof TLSSocket || socket.destroyed) return undefined;
  const fd = (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

/**
 * Call on 'end': true when the peer reset the connection instead of closing it. libuv reports a
 * reset that arrives behind data as an end of stream, so a receiver that trusts 'end' can take
 * a cut stream for a whole one. False when it was a clean end, or when it cannot be known (no
 * native helper, not TCP, TLS).
 */
export function endedByReset(socket: Socket): boolean {
  const helper = nativeHelper();
  const fd = socketFd(socket);
  return helper !== undefined && fd !== undefined && helper.tcpState(fd) === TCP_CLOSE;
}

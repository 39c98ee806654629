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
 * a cut stream for a whole one. A reset leaves the socket CLOSED with its error (ECONNRESET, or
 * EPIPE after an earlier FIN) unread; a clean end leaves it in CLOSE_WAIT, or CLOSED without an
 * error if our side had closed first. False when it was a clean end, or when it cannot be known
 * (no native helper, not TCP, TLS). Reading the error clears it: call once.
 */
export function endedByReset(socket: Socket): boolean {
  const helper = nativeHelper();
  const fd = socketFd(socket);
  if (helper === undefined || fd === undefined || helper.tcpState(fd) !== TCP_CLOSE) return false;
  return helper.socketError(fd) > 0;
}

/**
 * Ends a connection so that the peer sees a failure, not a clean end: a TCP reset (RST) where
 * there is one, else (Unix sockets, TLS over Unix) an ordinary close. Safe on a destroyed socket.
 */
export function resetConnection(socket: Socket): void {
  if (socket.destroyed) return;
  try {
    socket.resetAndDestroy();
  } catch {
    // Not a TCP handle (a Unix socket): no RST exists; closing is all there is.
    socket.destroy();
  }
}

interface ReadingHandle {
  reading?: boolean;
  readStop?: () => number;
}

/**
 * Stops Node reading a plain socket for good, so that another owner of its descriptor (a native
 * engine) gets every byte from now on, and returns what Node had read but nobody consumed yet
 * (the bytes before the handoff; an empty buffer when none). Node's own `pause()` does not stop
 * libuv's reads (it only stops the 'data' events), so this stops the handle itself and leaves
 * its `reading` flag set: Node then never starts it again (its `_read` sees it reading).
 * undefined, with nothing changed, for a socket that has no such handle (TLS, destroyed).
 * `resumeReading` undoes it.
 */
export function takeOverReading(socket: Socket): Buffer | undefined {
  if (socketFd(socket) === undefined) return undefined;
  const handle = (socket as unknown as { _handle?: ReadingHandle })._handle;
  if (handle === undefined || typeof handle.readStop !== 'function') return undefined;
  if (handle.reading === true && handle.readStop() !== 0) return undefined;
  handle.reading = true;
  const chunks: Buffer[] = [];
  for (let c = socket.read() as Buffer | string | null; c !== null; c = socket.read() as Buffer | string | null) chunks.push(typeof c === 'string' ? Buffer.from(c) : c);
  return Buffer.concat(chunks);
}

/** Gives a socket back to Node after `takeOverReading`, with the bytes it had returned put back first. */
export function resumeReading(socket: Socket, taken: Buffer): void {
  const handle = (socket as unknown as { _handle?: ReadingHandle })._handle;
  if (handle !== undefined) handle.reading = false;
  // The last read() that emptied the buffer asked for more (the stream's own `reading` flag),
  // and no read will come to clear it: cleared here, or the stream never asks again.
  const state = (socket as unknown as { _readableState?: { reading?: boolean } })._readableState;
  if (state !== undefined) state.reading = false;
  if (taken.length > 0) socket.unshift(taken);
}

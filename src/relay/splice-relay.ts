/**
 * The relay of `connect` and `listen` by splice(2) (native/splice.c): when both local ends are
 * plain descriptors (pipes, sockets, files, devices such as /dev/null; not terminals) and the socket
 * is plain TCP or Unix, each direction runs on a thread of its own with no JS per chunk: the
 * peer's bytes are spliced by the kernel (socket -> pipe, file or /dev/null, no copy), and a
 * pipe's bytes go to the socket through one 1 MiB buffer in C (splicing a pipe's pages into
 * TCP cost more; see native/splice.c). Node's stream path moves 64 KiB per pipe read with a JS
 * turn each.
 *
 * It behaves as relay() (relay.ts) with `halfClose: true`: stdin's end half-closes the socket
 * and the peer's bytes are read to their end; the peer's end leaves sending going until stdin
 * ends; a reset, an EPIPE or an abort ends both directions with a coded RelayError carrying
 * the bytes each way. The socket is taken from Node: the bytes Node had already read are written
 * out first, then Node's handle is closed and the connection lives on in a private duplicate,
 * closed once both directions are done.
 */
import { fstatSync, writeSync } from 'node:fs';
import type { Socket } from 'node:net';
import { constants } from 'node:os';
import { getSystemErrorName } from 'node:util';
import { SocketkitError, toSocketkitError } from '../core/errors.js';
import { nativeHelper, nativeModule } from '../native/helper.js';
import { socketFd } from '../net/socket-state.js';
import { RelayError, type RelayResult } from './relay.js';

/** native/splice.c */
interface SpliceNative {
  spliceStart(inFd: number, outFd: number, shutdownOut: boolean, callback: (errno: number, bytes: number, endedMs: number) => void): number;
  spliceStop(id: number): void;
}

const { ECANCELED } = constants.errno;

function splicer(): SpliceNative | undefined {
  return nativeModule<SpliceNative>(['spliceStart', 'spliceStop']);
}

/** Why `inFd` and `outFd` cannot be relayed by splice (a sentence), or undefined when they can. */
export function spliceUnavailable(inFd: number, outFd: number): string | undefined {
  const native = splicer();
  if (native === undefined) return 'the native helper (with splice) is not available';
  try {
    const i = fstatSync(inFd);
    const o = fstatSync(outFd);
    // Sockets too (the stdio Node gives a child is a socket pair; inetd's). Terminals were excluded by the caller.
    const plain = (s: typeof i): boolean => s.isFIFO() || s.isFile() || s.isCharacterDevice() || s.isSocket();
    if (!plain(i)) return 'stdin is not a pipe, a socket, a file or a device';
    if (!plain(o)) return 'stdout is not a pipe, a socket, a file or a device';
  } catch {
    return 'stdin or stdout cannot be examined';
  }
  return undefined;
}

export interface SpliceRelayOptions {
  /** Where the bytes to send come from (0: stdin). */
  readonly inFd: number;
  /** Where the peer's bytes go (1: stdout). */
  readonly outFd: number;
  readonly signal?: AbortSignal;
  /** Names the peer in messages. */
  readonly peer: string;
}

function errnoError(errno: number, what: string): SocketkitError {
  let code: string;
  try {
    code = getSystemErrorName(-errno);
  } catch {
    code = `errno ${errno}`;
  }
  return toSocketkitError(Object.assign(new Error(`${code}`), { code, errno: -errno, syscall: 'splice' }), what);
}

/** Writes `chunk` to `fd` whole, waiting out a full non-blocking pipe. */
function writeAll(fd: number, chunk: Buffer): void {
  let off = 0;
  while (off < chunk.length) {
    try {
      off += writeSync(fd, chunk, off);
    } catch (err) {
      if ((err as { code?: string }).code !== 'EAGAIN') throw err;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
    }
  }
}

/**
 * Relays `socket` to `inFd`/`outFd` by splice until both directions have ended. Call only when
 * {@link spliceUnavailable} says it can, on a plain socket nothing else reads or writes.
 */
export async function spliceRelay(socket: Socket, options: SpliceRelayOptions): Promise<RelayResult> {
  const native = splicer();
  const helper = nativeHelper();
  const fd = socketFd(socket);
  if (native === undefined || helper === undefined || fd === undefined) throw new SocketkitError('ERR_INVALID_ARG', 'splice is not available for this socket');
  const own = helper.dup(fd);
  if (own < 0) throw errnoError(-own, options.peer);
  const { peer } = options;
  let bytesSent = 0;
  let bytesReceived = 0;
  let peerEnded = false;
  let sentEnd = false;
  let failure: SocketkitError | undefined;
  // When each direction ended, on the threads' clock: which came first is decided from these,
  // not from the order the two callbacks happen to reach this thread.
  let localEndMs: number | undefined;
  let peerEndMs: number | undefined;
  const firstEnd = (): RelayResult['firstEnd'] =>
    localEndMs === undefined ? (peerEndMs === undefined ? 'none' : 'peer') : peerEndMs === undefined || localEndMs <= peerEndMs ? 'local' : 'peer';
  const result = (): RelayResult => ({ bytesSent, bytesReceived, bytesDiscarded: 0, peerEnded, sentEnd, firstEnd: firstEnd() });
  try {
    // What Node has read already goes out first; then the connection is ours alone.
    socket.pause();
    for (let c = socket.read() as Buffer | null; c !== null; c = socket.read() as Buffer | null) {
      writeAll(options.outFd, c);
      bytesReceived += c.length;
    }
  } catch (err) {
    helper.close(own);
    socket.destroy();
    throw new RelayError(toSocketkitError(err, 'stdout'), result());
  }
  socket.removeAllListeners('data');
  socket.on('error', () => undefined);
  socket.destroy();

  const ids: number[] = [];
  const stopAll = (): void => {
    for (const id of ids) native.spliceStop(id);
  };
  const fail = (err: SocketkitError): void => {
    failure ??= err;
    stopAll();
  };
  const direction = (inFd: number, outFd: number, shutdownOut: boolean, onDone: (bytes: number, endedMs: number) => void, what: string): Promise<void> =>
    new Promise<void>((resolve) => {
      const id = native.spliceStart(inFd, outFd, shutdownOut, (errno, bytes, endedMs) => {
        // ECANCELED: stopped because of the other direction's failure or an abort, said there.
        if (errno !== 0 && errno !== ECANCELED) fail(errnoError(errno, what));
        onDone(bytes, endedMs);
        resolve();
      });
      if (id < 0) {
        fail(errnoError(-id, what));
        resolve();
      } else ids.push(id);
    });
  const onAbort = (): void => fail(new SocketkitError('ERR_ABORTED', 'stopped'));
  options.signal?.addEventListener('abort', onAbort, { once: true });
  if (options.signal?.aborted) onAbort();
  try {
    await Promise.all([
      direction(
        options.inFd,
        own,
        true,
        (n, at) => {
          bytesSent = n;
          if (failure === undefined) {
            sentEnd = true;
            localEndMs = at;
          }
        },
        peer,
      ),
      direction(
        own,
        options.outFd,
        false,
        (n, at) => {
          bytesReceived += n;
          if (failure === undefined) {
            peerEnded = true;
            peerEndMs = at;
          }
        },
        peer,
      ),
    ]);
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
    helper.close(own);
  }
  if (failure) throw new RelayError(failure, result());
  return result();
}

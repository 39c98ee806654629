/**
 * Zero-copy sending: a range of a file to a plain (not TLS) socket with sendfile(2), through the
 * optional native helper (`src/native/helper.ts`). The kernel moves page-cache pages into the
 * socket, so the sending core makes no copy in user space: on loopback this is what takes a raw
 * transfer from about nc's speed to about iperf3 -Z's.
 *
 * Each sendfile call runs on the thread pool; when the socket is full it polls for room until
 * 2 ms after the call began, then hands back. A longer wait is Node's own: the next 64 KiB go through an
 * ordinary `socket.write`, and its callback (the kernel took them) starts the next sendfile. So
 * the bytes stay in order, no thread is held for long, and a slow peer costs no more than in the
 * plain path.
 */
import type { FileHandle } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { getSystemErrorName } from 'node:util';
import { SocketkitError, toSocketkitError } from '../core/errors.js';
import { nativeHelper, type NativeHelper } from '../native/helper.js';
import { socketFd } from '../net/socket-state.js';
import { shrank } from './file-io.js';

/** Bytes one sendfile call may move before it hands back (progress and failures are checked between calls). */
export const SENDFILE_SLICE = 64 * 1024 * 1024;
/**
 * How long a sendfile call waits on the thread pool for a full socket to drain, ms: a reader
 * that keeps up never costs a round trip through JS, and a slow one holds a pool thread no
 * longer than this before the wait moves to Node's own write.
 */
export const SENDFILE_WAIT_MS = 2;
/** Bytes sent through Node's own write when the socket stays full, to learn when it drains. */
const WAKE_SIZE = 64 * 1024;

/** Options of {@link sendfileRange}. */
export interface SendfileRangeOptions {
  /** Named in file errors. */
  readonly path: string;
  /** Named in connection errors. */
  readonly peer?: string;
  /** Called whenever more bytes are in the kernel, with the bytes of the range sent so far. */
  readonly onSent?: (sent: number) => void;
  /** A failure raised elsewhere (a stall, an abort): checked between steps, and thrown. */
  readonly failure?: () => SocketkitError | undefined;
  /** How long one sendfile call may wait for a full socket on the thread pool, ms (default {@link SENDFILE_WAIT_MS}; 0: never). */
  readonly waitMs?: number;
}

/** What {@link sendfileRange} did. */
export interface SendfileRangeResult {
  /** Times the socket stayed full and the wait went through Node's own write. */
  readonly handoffs: number;
}

/** Whether {@link sendfileRange} can send to `socket` (the helper is built and the socket is plain TCP or Unix). */
export function canSendfile(socket: Socket): boolean {
  return nativeHelper() !== undefined && socketFd(socket) !== undefined;
}

function errnoError(errno: number, what: string): SocketkitError {
  let code: string;
  try {
    code = getSystemErrorName(-errno);
  } catch {
    code = `errno ${errno}`;
  }
  return toSocketkitError(Object.assign(new Error(`sendfile: ${code}`), { code, errno: -errno, syscall: 'sendfile' }), what);
}

function step(addon: NativeHelper, out: number, file: number, offset: number, length: number, waitMs: number): Promise<{ errno: number; bytes: number }> {
  return new Promise((resolve) => addon.sendfile(out, file, offset, length, SENDFILE_SLICE, waitMs, (errno, bytes) => resolve({ errno, bytes })));
}

function write(socket: Socket, chunk: Buffer): Promise<void> {
  return new Promise((resolve, reject) => socket.write(chunk, (err) => (err ? reject(err) : resolve())));
}

/**
 * Sends bytes `start` to `end` of the open file `fh` to `socket` with sendfile(2), after
 * whatever the socket already had queued. Call only when {@link canSendfile} says so, and write
 * nothing else to the socket until it settles.
 *
 * @throws SocketkitError `ERR_SOURCE_CHANGED` if the file ends before `end`, a connection error
 *   (`ERR_CONN_RESET`, `ERR_CONN_CLOSED`), the file's error, or `options.failure()`.
 */
export async function sendfileRange(socket: Socket, fh: FileHandle, start: number, end: number, options: SendfileRangeOptions): Promise<SendfileRangeResult> {
  const addon = nativeHelper();
  if (addon === undefined || socketFd(socket) === undefined) throw new SocketkitError('ERR_INVALID_ARG', 'sendfile is not available for this socket');
  if (socket.writableCorked > 0) throw new SocketkitError('ERR_INVALID_ARG', 'sendfile on a corked socket: uncork it first');
  const waitMs = options.waitMs ?? SENDFILE_WAIT_MS;
  const check = (): void => {
    const failure = options.failure?.();
    if (failure) throw failure;
  };
  // Bytes written earlier must leave first: an empty write completes after them.
  if (socket.writableLength > 0) await write(socket, Buffer.alloc(0));
  check();
  // A private descriptor, taken now (the socket may have closed during the wait, and its number
  // gone to something else): if Node closes the socket under a running call, the number cannot
  // be reused for something else while the call still writes to it.
  const fd = socketFd(socket);
  if (fd === undefined) throw new SocketkitError('ERR_CONN_CLOSED', `connection to ${options.peer ?? 'peer'} closed`);
  const out = addon.dup(fd);
  if (out < 0) throw errnoError(-out, options.peer ?? 'peer');
  const wake = Buffer.allocUnsafe(WAKE_SIZE);
  let position = start;
  let handoffs = 0;
  try {
    while (position < end) {
      check();
      const { errno, bytes } = await step(addon, out, fh.fd, position, end - position, waitMs);
      position += bytes;
      if (bytes > 0) options.onSent?.(position - start);
      if (errno !== 0) throw errnoError(errno, options.peer ?? 'peer');
      if (position >= end || bytes === SENDFILE_SLICE) continue;
      // The socket is full (or the file ended early): the next bytes go through Node, which
      // calls back once the kernel has taken them, that is, once there is room again.
      check();
      handoffs++;
      const { bytesRead } = await fh.read(wake, 0, Math.min(WAKE_SIZE, end - position), position).catch((err: unknown) => {
        throw toSocketkitError(err, options.path);
      });
      if (bytesRead === 0) throw shrank(options.path, position);
      await write(socket, wake.subarray(0, bytesRead)).catch((err: unknown) => {
        throw options.failure?.() ?? toSocketkitError(err, options.peer);
      });
      position += bytesRead;
      options.onSent?.(position - start);
    }
    check();
    return { handoffs };
  } finally {
    addon.close(out);
  }
}

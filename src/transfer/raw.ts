/**
 * Raw mode: the reference behaviour, and interoperable with `nc`. The sender streams one file's
 * bytes and closes; the receiver writes whatever arrives until the end of the stream. No hello,
 * no names, no hash: the end of the stream is the only "done" there is.
 *
 * A raw sender that cannot finish (the file shrank, a read failed) resets the connection
 * instead of closing it, so a receiver never mistakes a cut stream for a whole one. A raw
 * receiver writes `.OUT.sk-partial` and renames it only after a clean end.
 */
import type { Socket } from 'node:net';
import type { Writable } from 'node:stream';
import { open, stat, type FileHandle } from 'node:fs/promises';
import { SocketkitError, toSocketkitError } from '../core/errors.js';
import { waitDrain } from '../net/write.js';
import { endedByReset, resetConnection } from '../net/socket-state.js';
import { DEFAULT_CHUNK_SIZE, DEFAULT_READ_AHEAD, DEFAULT_STALL_TIMEOUT_MS } from './constants.js';
import { sniffSkftHello } from './link.js';
import { BufferPool, readChunks, type ChunkSink } from './file-io.js';
import { canSendfile, sendfileRange } from './zero-copy.js';

/** Options of {@link sendRawFile}. */
export interface RawSendOptions {
  /** Bytes per read and write (default 1 MiB). */
  readonly chunkSize?: number;
  /** Chunks read ahead (default 4). */
  readonly readAhead?: number;
  /** No bytes accepted by the kernel for this long (ms) fails with `ERR_STALLED`; 0 disables. Default 30 s. */
  readonly stallTimeoutMs?: number;
  /** Called after each chunk is handed to the socket, with the bytes so far. */
  readonly onProgress?: (bytes: number, size: number) => void;
  /** Named in errors (default: the path). */
  readonly peer?: string;
  /**
   * Send with sendfile(2) when the native helper is built and the socket is plain TCP or Unix
   * (default true); otherwise, or with false, with reads and writes through `chunkSize` buffers.
   */
  readonly zeroCopy?: boolean;
}

/** What a raw transfer moved. */
export interface RawResult {
  readonly bytes: number;
  readonly seconds: number;
  /** Sent with sendfile(2) (a raw send only). */
  readonly zeroCopy?: boolean;
}

/**
 * A watchdog for raw streams: `touch()` on every movement; after `ms` without one, `onStall` runs.
 */
export class StallWatch {
  #last = performance.now();
  readonly #timer: NodeJS.Timeout | undefined;

  constructor(ms: number, onStall: (err: SocketkitError) => void) {
    if (ms > 0) {
      this.#timer = setInterval(() => {
        if (performance.now() - this.#last > ms) {
          this.stop();
          onStall(new SocketkitError('ERR_STALLED', `transfer stalled: no progress for ${ms / 1000} s`));
        }
      }, Math.max(50, Math.min(1000, ms / 4)));
      this.#timer.unref();
    }
  }

  touch(): void {
    this.#last = performance.now();
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
  }
}

/**
 * Streams the file at `path` to `socket`, then ends the connection (and waits until every byte
 * has left). Whatever the peer sends is read and dropped. On failure the connection is reset
 * (RST), so the peer sees an error rather than a clean, short end.
 *
 * @throws SocketkitError the coded error of the file, `ERR_SOURCE_CHANGED` if it shrank,
 *   `ERR_STALLED`, or a connection error.
 */
export async function sendRawFile(socket: Socket, path: string, options: RawSendOptions = {}): Promise<RawResult> {
  const t0 = performance.now();
  let failure: SocketkitError | undefined;
  const watch = new StallWatch(options.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS, (err) => {
    failure ??= err;
    // A reset, so the receiver does not take what it has for the whole file.
    resetConnection(socket);
  });
  socket.on('error', (err) => {
    failure ??= toSocketkitError(err, options.peer);
  });
  // The raw protocol has nothing to say to us; draining keeps a chatty peer from blocking. A
  // receiver that half-closes its side at once (as `nc -N` and `get --raw` do) must not end
  // ours: we keep sending until the file is out.
  socket.allowHalfOpen = true;
  socket.resume();
  let fh: FileHandle | undefined;
  let sent = 0;
  try {
    try {
      fh = await open(path, 'r');
    } catch (err) {
      throw toSocketkitError(err, path);
    }
    const size = (await fh.stat()).size;
    /** Why sending must stop: a failure seen elsewhere, or a connection that is gone. */
    const stopped = (): SocketkitError | undefined =>
      failure ?? (socket.destroyed ? new SocketkitError('ERR_CONN_CLOSED', `${options.peer ?? 'peer'} closed the connection after ${sent} bytes`) : undefined);
    const zeroCopy = (options.zeroCopy ?? true) && canSendfile(socket);
    if (zeroCopy) {
      await sendfileRange(socket, fh, 0, size, {
        path,
        ...(options.peer !== undefined ? { peer: options.peer } : {}),
        failure: stopped,
        onSent: (n) => {
          watch.touch();
          sent = n;
          options.onProgress?.(sent, size);
        },
      });
    } else {
      const pool = new BufferPool(options.chunkSize ?? DEFAULT_CHUNK_SIZE, options.readAhead ?? DEFAULT_READ_AHEAD);
      for await (const chunk of readChunks(fh, 0, size, pool, path)) {
        const stop = stopped();
        if (stop) throw stop;
        // No wait for 'drain': the pool bounds what is in flight (a chunk comes back when the
        // kernel has taken it), and the next read overlaps this write.
        socket.write(chunk, () => {
          watch.touch();
          pool.release(chunk);
        });
        sent += chunk.byteLength;
        options.onProgress?.(sent, size);
      }
    }
    await new Promise<void>((resolve, reject) => {
      socket.end(() => resolve());
      socket.once('close', () => (failure ? reject(failure) : resolve()));
    });
    if (failure) throw failure;
    return { bytes: sent, seconds: (performance.now() - t0) / 1000, zeroCopy };
  } catch (err) {
    const e = failure ?? toSocketkitError(err, options.peer);
    // A reset, not a FIN: the receiver must not take a cut stream for the whole file.
    resetConnection(socket);
    throw e;
  } finally {
    watch.stop();
    await fh?.close().catch(() => undefined);
  }
}

/** Where a raw receiver writes: a {@link SyncFileSink} or a stream adapter. */
export type RawSink = ChunkSink;

/** A {@link RawSink} over a `Writable` (standard output). */
export function streamSink(stream: Writable): RawSink {
  return {
    write: (chunk) => stream.write(chunk),
    drained: () => waitDrain(stream),
    flush: () => (stream.writableNeedDrain ? waitDrain(stream) : Promise.resolve()),
  };
}

/** Options of {@link receiveRawStream}. */
export interface RawReceiveOptions {
  /** No bytes for this long (ms) fails with `ERR_STALLED`; 0 disables. Default 30 s. */
  readonly stallTimeoutMs?: number;
  /** Called as bytes arrive, with the total so far. */
  readonly onProgress?: (bytes: number) => void;
  /** Named in errors. */
  readonly peer?: string;
  /** Aborting fails the transfer with `ERR_ABORTED`. */
  readonly signal?: AbortSignal;
  /**
   * For a socket created with {@link rawReadHook}'s `onread`: the hook its reads arrive through
   * (instead of `'data'` events). The sink must then consume each chunk before `write()` returns
   * (a `SyncFileSink`): the read buffer is reused for the next read.
   */
  readonly hook?: RawReadHook;
}

/**
 * Where reads arrive for a socket made with Node's `onread` option: one buffer, reused for every
 * read, so no allocation per read and big reads (1 MiB instead of 64 KiB). Pass `onread` to
 * `net.connect` and the hook to {@link receiveRawStream}.
 */
export interface RawReadHook {
  readonly onread: { readonly buffer: Buffer; readonly callback: (n: number, buf: Buffer) => boolean };
  /** Set by the receiver: consumes one read, returns false to pause the socket. */
  feed: ((chunk: Buffer) => boolean) | undefined;
  /** Copies of reads that arrived before the receiver set `feed` (normally none). */
  readonly early: Buffer[];
}

/** Bytes per read for raw receivers that use {@link rawReadHook}. */
export const RAW_READ_SIZE = 1024 * 1024;

/** A hook with a fresh read buffer (see {@link RawReadHook}). */
export function rawReadHook(size = RAW_READ_SIZE): RawReadHook {
  const hook: RawReadHook = {
    feed: undefined,
    early: [],
    onread: {
      buffer: Buffer.allocUnsafe(size),
      // Until the receiver takes over (it does before the first read can arrive), keep a copy.
      callback: (n, buf) => (hook.feed ? hook.feed(buf.subarray(0, n)) : hook.early.push(Buffer.from(buf.subarray(0, n))) > 0),
    },
  };
  return hook;
}

/**
 * Writes everything `socket` delivers into `sink` until the peer ends the stream, pausing the
 * socket while the sink is behind.
 *
 * Our side stays open until the peer's FIN: closing first would be taken by some senders as
 * "stop" (Debian's `nc -l -p PORT < file` quits on its peer's FIN, mid-file), and the short
 * stream would then look whole. A sender that never closes (`nc -l` without -N) therefore ends
 * in `ERR_STALLED`, never in a silently short file.
 *
 * @returns Bytes received, once the stream ended cleanly and the sink is flushed.
 * @throws SocketkitError `ERR_CONN_RESET` / `ERR_CONN_CLOSED` if the stream did not end
 *   cleanly, `ERR_STALLED`, `ERR_ABORTED`, or the sink's error (`ERR_DISK_FULL`...).
 */
export async function receiveRawStream(socket: Socket, sink: RawSink, options: RawReceiveOptions = {}): Promise<RawResult> {
  const t0 = performance.now();
  let bytes = 0;
  let failure: SocketkitError | undefined;
  let finish!: () => void;
  let fail!: (err: SocketkitError) => void;
  const ended = new Promise<void>((resolve, reject) => {
    finish = resolve;
    fail = (err) => {
      failure ??= err;
      reject(failure);
    };
  });
  const watch = new StallWatch(options.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS, (err) => {
    // The usual cause after some data: a sender that never closes (nc -l without -N).
    fail(
      bytes > 0
        ? new SocketkitError('ERR_STALLED', `${err.message} after ${bytes} bytes, and the sender did not close (for nc, use -N so it closes at the end of the file)`)
        : err,
    );
    socket.destroy();
  });
  const onAbort = (): void => {
    fail(new SocketkitError('ERR_ABORTED', 'transfer aborted'));
    socket.destroy();
  };
  options.signal?.addEventListener('abort', onAbort, { once: true });
  let waiting = false;
  /**
   * The first bytes, held back (a copy) until they cannot be an SKFT hello: a framed server
   * greets first and then waits for ours, so without this check the stream would only stall.
   */
  let head: Buffer | undefined = Buffer.alloc(0);
  /** Takes one chunk; false when the socket should pause until the sink has drained. */
  const feed = (received: Buffer): boolean => {
    if (failure) return false;
    watch.touch();
    bytes += received.byteLength;
    let chunk = received;
    if (head !== undefined) {
      head = Buffer.concat([head, received]);
      const seen = sniffSkftHello(head);
      if (seen === 'more') return true;
      if (seen === 'skft') {
        fail(new SocketkitError('ERR_TRANSFER_PROTOCOL', `${options.peer ?? 'the peer'} greeted with a socketkit transfer hello, not raw bytes`, { hint: 'peer-speaks-skft' }));
        socket.destroy();
        return false;
      }
      chunk = head;
      head = undefined;
    }
    let ok: boolean;
    try {
      ok = sink.write(chunk);
    } catch (err) {
      fail(toSocketkitError(err));
      socket.destroy();
      return false;
    }
    options.onProgress?.(bytes);
    if (!ok && !waiting) {
      waiting = true;
      sink.drained().then(
        () => {
          waiting = false;
          watch.touch();
          if (!failure) socket.resume();
        },
        (err: unknown) => {
          fail(toSocketkitError(err));
          socket.destroy();
        },
      );
    }
    return ok;
  };
  const hook = options.hook;
  if (hook) {
    hook.feed = feed;
    for (const chunk of hook.early.splice(0)) feed(chunk);
  } else {
    socket.on('data', (chunk: Buffer) => {
      if (!feed(chunk)) socket.pause();
    });
  }
  socket.on('end', () => {
    // A sender that fails resets the connection; libuv may still report that as an end.
    if (endedByReset(socket)) fail(new SocketkitError('ERR_CONN_RESET', `connection reset by ${options.peer ?? 'peer'} after ${bytes} bytes: the stream is cut`));
    else {
      // A stream shorter than a hello is data like any other.
      if (head !== undefined && head.byteLength > 0 && !failure) {
        const rest = head;
        head = undefined;
        bytes -= rest.byteLength;
        feed(rest);
      }
      finish();
    }
  });
  socket.on('error', (err) => fail(toSocketkitError(err, options.peer)));
  socket.on('close', () => fail(new SocketkitError('ERR_CONN_CLOSED', `connection to ${options.peer ?? 'peer'} closed before the end of the stream`)));
  try {
    await ended;
    await sink.flush();
    return { bytes, seconds: (performance.now() - t0) / 1000 };
  } finally {
    watch.stop();
    options.signal?.removeEventListener('abort', onAbort);
    if (hook) hook.feed = undefined;
    socket.destroy();
  }
}

/**
 * Checks, before any peer is contacted, that `path` is one regular file a raw stream can carry
 * (a missing or unreadable file, or a folder, is refused here instead of after the connect).
 */
export async function checkRawSource(path: string): Promise<void> {
  const st = await stat(path).catch((err: unknown) => {
    throw toSocketkitError(err, path);
  });
  if (!st.isFile()) throw new SocketkitError('ERR_INVALID_ARG', `a raw stream carries one regular file; ${path} is not one (folders go in framed mode)`);
}

/**
 * Large, bounded file I/O for transfers: a reader that reads ahead into a fixed pool of
 * buffers, and a writer that coalesces whatever arrives while a write is in flight into one
 * `writev`.
 *
 * Both keep the work off the main thread (libuv's thread pool does the copying) and both bound
 * their memory: the reader by its pool, the writer by a high-water mark its caller honours.
 */
import { readSync, writeSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { SocketkitError, toSocketkitError } from '../core/errors.js';
import { DEFAULT_CHUNK_SIZE, DEFAULT_READ_AHEAD, DEFAULT_SINK_HIGH_WATER, DEFAULT_WRITE_BUFFERS, DEFAULT_WRITE_BUFFER_SIZE } from './constants.js';

/**
 * A fixed set of equal buffers handed out and given back. Each buffer has its own
 * `ArrayBuffer`, so a view of it (a short last chunk) finds its way home.
 */
export class BufferPool {
  readonly chunkSize: number;
  readonly #free: Buffer[] = [];
  readonly #home = new Map<ArrayBufferLike, Buffer>();
  #waiters: Array<() => void> = [];

  /**
   * @param chunkSize - Bytes per buffer (default 1 MiB).
   * @param count - Buffers in the pool (default 4).
   */
  constructor(chunkSize = DEFAULT_CHUNK_SIZE, count = DEFAULT_READ_AHEAD) {
    this.chunkSize = chunkSize;
    for (let i = 0; i < count; i++) {
      const buf = Buffer.allocUnsafeSlow(chunkSize);
      this.#free.push(buf);
      this.#home.set(buf.buffer, buf);
    }
  }

  /** Buffers not handed out. */
  get available(): number {
    return this.#free.length;
  }

  /** Hands out a buffer, or undefined when all are out. */
  take(): Buffer | undefined {
    return this.#free.pop();
  }

  /** Gives back a buffer (or any view of one). Giving back the same buffer twice is ignored. */
  release(view: Uint8Array): void {
    const buf = this.#home.get(view.buffer);
    if (buf === undefined || this.#free.includes(buf)) return;
    this.#free.push(buf);
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }

  /** Resolves when a buffer is free. */
  whenAvailable(): Promise<void> {
    if (this.#free.length > 0) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push(resolve));
  }
}

/** The error for a source file that ended before the size announced for it. */
export function shrank(path: string, at: number): SocketkitError {
  return new SocketkitError('ERR_SOURCE_CHANGED', `${path} changed while being sent: it ended at byte ${at}, before its announced size`);
}

/** Reads exactly `length` bytes at `position` into `buf` (a short read from a regular file is retried). */
async function readExactly(fh: FileHandle, buf: Buffer, length: number, position: number, path: string): Promise<Buffer> {
  let done = 0;
  while (done < length) {
    let n: number;
    try {
      ({ bytesRead: n } = await fh.read(buf, done, length - done, position + done));
    } catch (err) {
      throw toSocketkitError(err, path);
    }
    if (n === 0) throw shrank(path, position + done);
    done += n;
  }
  return length === buf.length ? buf : buf.subarray(0, length);
}

/**
 * Synchronous reads that take longer than this on average (ms), or one that takes ten times as
 * long, mean the data is not in the page cache (a cold disk, a network file system): the rest
 * of the file is read asynchronously. (A read from the page cache takes about 0.3 ms per MiB; a
 * single slow one is usually the process being preempted, hence the average.)
 */
export const SLOW_READ_MS = 2;

/** Reads exactly `length` bytes at `position` into `buf`, synchronously. */
function readExactlySync(fh: FileHandle, buf: Buffer, length: number, position: number, path: string): Buffer {
  let done = 0;
  while (done < length) {
    let n: number;
    try {
      n = readSync(fh.fd, buf, done, length - done, position + done);
    } catch (err) {
      throw toSocketkitError(err, path);
    }
    if (n === 0) throw shrank(path, position + done);
    done += n;
  }
  return length === buf.length ? buf : buf.subarray(0, length);
}

/** Options of {@link readChunks}. */
export interface ReadChunksOptions {
  /** Start with synchronous reads (default true); false reads through the thread pool from the start. */
  readonly sync?: boolean;
}

/**
 * Reads bytes `[start, end)` of an open file as chunks of the pool's size. Each chunk yielded
 * belongs to `pool`; the caller gives it back with `pool.release()` once done with it (for a
 * socket, in the write's callback). When every buffer is out, reading waits for one to come
 * back: that is the backpressure.
 *
 * Two ways of reading, chosen as it goes:
 * - From the page cache (the common case) a 1 MiB read is a quarter of a millisecond of
 *   copying, so it is done synchronously: no hand-off to the thread pool and back, and the
 *   chunk is still in the CPU's cache when it is hashed and written to the socket. Measured
 *   with `serve --raw` to `get --raw` on loopback, sender and receiver on one core each: 1.4-1.6
 *   GB/s, against 1.0-1.1 GB/s with every read through the thread pool.
 * - As soon as reads turn slow (see {@link SLOW_READ_MS}: the disk is involved), the rest is
 *   read through the thread pool, a read in flight for every free buffer, so a slow disk never
 *   holds up the event loop (and the other connections) for long.
 *
 * @throws SocketkitError `ERR_SOURCE_CHANGED` if the file is shorter than `end`; the coded error
 *   of a failed read.
 */
export async function* readChunks(
  fh: FileHandle,
  start: number,
  end: number,
  pool: BufferPool,
  path: string,
  options: ReadChunksOptions = {},
): AsyncGenerator<Buffer, void, undefined> {
  const pending: Array<Promise<Buffer>> = [];
  let position = start;
  let sync = options.sync ?? true;
  /** Smoothed duration of the synchronous reads, ms. */
  let average: number | undefined;
  try {
    while (sync && position < end) {
      const buf = pool.take();
      if (buf === undefined) {
        await pool.whenAvailable();
        continue;
      }
      const length = Math.min(buf.length, end - position);
      const t0 = performance.now();
      let chunk: Buffer;
      try {
        chunk = readExactlySync(fh, buf, length, position, path);
      } catch (err) {
        pool.release(buf);
        throw err;
      }
      const ms = performance.now() - t0;
      average = average === undefined ? ms : average + (ms - average) / 4;
      if (average > SLOW_READ_MS || ms > 10 * SLOW_READ_MS) sync = false;
      position += length;
      yield chunk;
    }
    for (;;) {
      while (position < end) {
        const buf = pool.take();
        if (buf === undefined) break;
        const length = Math.min(buf.length, end - position);
        const read = readExactly(fh, buf, length, position, path).catch((err: unknown) => {
          // The buffer of a failed read goes home at once; the error is thrown where it is awaited.
          pool.release(buf);
          throw err;
        });
        // A rejection is handled when the chunk is awaited; until then, do not report it.
        read.catch(() => undefined);
        pending.push(read);
        position += length;
      }
      const next = pending.shift();
      if (next === undefined) {
        if (position >= end) return;
        await pool.whenAvailable();
        continue;
      }
      yield await next;
    }
  } finally {
    // Stopped early (an error, or the consumer left): wait for reads still in flight and give
    // their buffers back, so the pool is whole again.
    for (const p of pending) {
      const buf = await p.catch(() => undefined);
      if (buf !== undefined) pool.release(buf);
    }
  }
}

/** Where received file bytes go: a {@link FileSink}, a {@link SyncFileSink}, or a stream adapter. */
export interface ChunkSink {
  /** Takes a chunk; false asks the caller to await `drained()` before writing more. */
  write(chunk: Uint8Array): boolean;
  /** Resolves once the sink can take more. */
  drained(): Promise<void>;
  /** Resolves once everything written has reached its destination. */
  flush(): Promise<void>;
}

/**
 * A {@link ChunkSink} that writes synchronously to a file descriptor: each chunk is on its way to
 * the file before `write()` returns, so the read buffer can be reused at once. Blocking the
 * event loop for the copy is the point: a raw download has nothing else to do meanwhile, and
 * the kernel copy from a buffer still in cache is the cheapest path there is.
 * Used where the process does nothing else: `get` (a client), not the `receive` server.
 */
export class SyncFileSink implements ChunkSink {
  readonly #fd: number;
  readonly #path: string;
  #position: number | null;

  /** @param position - Where the first byte goes; null for pipes and devices. */
  constructor(fd: number, path: string, position: number | null) {
    this.#fd = fd;
    this.#path = path;
    this.#position = position;
  }

  write(chunk: Uint8Array): boolean {
    let done = 0;
    while (done < chunk.byteLength) {
      let n: number;
      try {
        n = writeSync(this.#fd, chunk, done, chunk.byteLength - done, this.#position);
      } catch (err) {
        throw toSocketkitError(err, this.#path);
      }
      if (n === 0) throw new SocketkitError('ERR_IO', `${this.#path}: the file system accepted no bytes`);
      done += n;
      if (this.#position !== null) this.#position += n;
    }
    return true;
  }

  drained(): Promise<void> {
    return Promise.resolve();
  }

  flush(): Promise<void> {
    return Promise.resolve();
  }
}

/** Someone waiting for an overlapped sink: for a free buffer, or (`all`) for every write. */
interface SinkWaiterAll {
  readonly resolve: () => void;
  readonly reject: (err: Error) => void;
  readonly all: boolean;
}

/**
 * The bytes one thread-pool write took, its failure coded (`ERR_DISK_FULL`...), and a write
 * that took none an `ERR_IO` (it would otherwise be retried for ever).
 */
async function accepted(write: Promise<{ readonly bytesWritten: number }>, path: string): Promise<number> {
  let n: number;
  try {
    ({ bytesWritten: n } = await write);
  } catch (err) {
    throw toSocketkitError(err, path);
  }
  if (n === 0) throw new SocketkitError('ERR_IO', `${path}: the file system accepted no bytes`);
  return n;
}

/** Rejects every waiter of a sink with its error; returns the (empty) list that replaces them. */
function rejectAll<W extends { readonly reject: (err: Error) => void }>(waiters: readonly W[], error: SocketkitError): W[] {
  for (const w of waiters) w.reject(error);
  return [];
}

/** Options of {@link OverlapFileSink}. */
export interface OverlapFileSinkOptions {
  /** Byte offset of the first write. */
  readonly position: number;
  /** Named in error messages. */
  readonly path: string;
  /** Bytes per buffer, and so per write (default 2 MiB). */
  readonly bufferSize?: number;
  /** Buffers: one filling while the others wait for or are in their write (default 4). */
  readonly buffers?: number;
}

/**
 * A {@link ChunkSink} that copies each chunk at once into one of a few reused buffers, and
 * writes full buffers through the thread pool, one write at a time and in order. `write()` is
 * done with the caller's bytes when it returns (as with {@link SyncFileSink}), so they may be a
 * view of a read buffer the next read overwrites; but the write itself happens while the caller
 * goes on (hashing the next chunk), instead of blocking it.
 *
 * The copy costs the calling thread about a tenth of what a synchronous write does (memory to
 * memory, in cache), and the write runs on another core when there is one. The memory is
 * bounded by the buffers: `write()` returns false while only one is left besides the one being
 * filled, and the caller awaits `drained()`; that one is the room for what the caller still holds
 * when it is told (a link's sink takes the rest of its read, up to one read buffer). (A chunk
 * larger than the room left still goes in, into a buffer made for it and dropped after its write.)
 * The first error (ENOSPC, EIO...) sticks: later calls throw it.
 */
export class OverlapFileSink implements ChunkSink {
  readonly #fh: FileHandle;
  readonly #path: string;
  readonly #size: number;
  readonly #count: number;
  readonly #free: Buffer[] = [];
  /** The buffer being filled, and how much of it is. */
  #fill: Buffer | undefined;
  #filled = 0;
  /** Full buffers waiting for their write, in order (the first may be in flight). */
  readonly #ready: Array<{ readonly buf: Buffer; readonly length: number }> = [];
  #position: number;
  #writing = false;
  #error: SocketkitError | undefined;
  #waiters: SinkWaiterAll[] = [];
  /** Bytes written to the file so far. */
  written = 0;

  constructor(fh: FileHandle, options: OverlapFileSinkOptions) {
    this.#fh = fh;
    this.#path = options.path;
    this.#position = options.position;
    this.#size = options.bufferSize ?? DEFAULT_WRITE_BUFFER_SIZE;
    this.#count = Math.max(3, options.buffers ?? DEFAULT_WRITE_BUFFERS);
  }

  /** The first write error, if any. */
  get error(): SocketkitError | undefined {
    return this.#error;
  }

  /**
   * Copies `chunk` (which may be reused as soon as this returns).
   *
   * @returns false when the caller should await `drained()` before writing more.
   * @throws SocketkitError the error of an earlier failed write.
   */
  write(chunk: Uint8Array): boolean {
    if (this.#error) throw this.#error;
    let at = 0;
    while (at < chunk.byteLength) {
      if (this.#fill === undefined) {
        // A free buffer, a new one while the pool is not all made, or (the caller wrote past a
        // false) one just for this chunk.
        const made = this.#free.length + this.#ready.length + 1;
        this.#fill = this.#free.pop() ?? Buffer.allocUnsafeSlow(made <= this.#count ? this.#size : Math.max(this.#size, chunk.byteLength - at));
        this.#filled = 0;
      }
      const n = Math.min(chunk.byteLength - at, this.#fill.length - this.#filled);
      this.#fill.set(at === 0 && n === chunk.byteLength ? chunk : chunk.subarray(at, at + n), this.#filled);
      this.#filled += n;
      at += n;
      if (this.#filled === this.#fill.length) this.#queueFill();
    }
    return this.#hasRoom();
  }

  /** Resolves once a buffer is free; rejects on a write error. */
  drained(): Promise<void> {
    return this.#until(false);
  }

  /** Writes what is buffered and resolves once everything is in the file; rejects on a write error. */
  flush(): Promise<void> {
    if (this.#fill !== undefined && this.#filled > 0) this.#queueFill();
    return this.#until(true);
  }

  /** Room for another chunk without waiting: two buffers besides the full ones (the one filling, and a spare). */
  #hasRoom(): boolean {
    return this.#ready.length < this.#count - 2;
  }

  #until(all: boolean): Promise<void> {
    if (this.#error) return Promise.reject(this.#error);
    if (all ? this.#ready.length === 0 : this.#hasRoom()) return Promise.resolve();
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject, all }));
  }

  #queueFill(): void {
    this.#ready.push({ buf: this.#fill!, length: this.#filled });
    this.#fill = undefined;
    this.#filled = 0;
    if (!this.#writing) {
      this.#writing = true;
      void this.#run();
    }
  }

  /** The write loop: the oldest full buffer, until none is left. */
  async #run(): Promise<void> {
    try {
      while (this.#ready.length > 0) {
        const { buf, length } = this.#ready[0]!;
        let done = 0;
        while (done < length) {
          const n = await accepted(this.#fh.write(buf, done, length - done, this.#position), this.#path);
          done += n;
          this.#position += n;
          this.written += n;
        }
        this.#ready.shift();
        // A buffer made for one oversized chunk is not kept.
        if (buf.length === this.#size && this.#free.length + this.#ready.length < this.#count) this.#free.push(buf);
        this.#notify();
      }
    } catch (err) {
      this.#error = toSocketkitError(err, this.#path);
      this.#ready.length = 0;
      this.#fill = undefined;
      this.#waiters = rejectAll(this.#waiters, this.#error);
    } finally {
      this.#writing = false;
    }
  }

  #notify(): void {
    const still: SinkWaiterAll[] = [];
    for (const w of this.#waiters) {
      if (w.all ? this.#ready.length === 0 : this.#hasRoom()) w.resolve();
      else still.push(w);
    }
    this.#waiters = still;
  }
}

/** Someone waiting for a sink's pending bytes to fall below `below`. */
interface SinkWaiter {
  readonly resolve: () => void;
  readonly reject: (err: Error) => void;
  readonly below: number;
}

/** Options of {@link FileSink}. */
export interface FileSinkOptions {
  /** Byte offset of the first write; `null` writes at the file's current position (pipes, devices). Default 0. */
  readonly position?: number | null;
  /** Bytes queued or in flight above which `write()` returns false. Default 8 MiB. */
  readonly highWaterMark?: number;
  /** Named in error messages. */
  readonly path: string;
}

/**
 * An append-only writer to an open file. Chunks that arrive while a write is in flight are
 * queued and written together in one `writev`, so many small socket reads become few large
 * writes. `write()` returns false above the high-water mark; the caller then awaits
 * `drained()` (as with a stream). The first error (ENOSPC, EIO...) sticks: later calls throw it.
 */
export class FileSink implements ChunkSink {
  readonly #fh: FileHandle;
  readonly #path: string;
  readonly #highWater: number;
  #position: number | null;
  #queue: Uint8Array[] = [];
  #queuedBytes = 0;
  #inFlightBytes = 0;
  /** Whether the write loop is running. */
  #writing = false;
  #error: SocketkitError | undefined;
  #waiters: SinkWaiter[] = [];
  /** Bytes written to the file so far. */
  written = 0;

  constructor(fh: FileHandle, options: FileSinkOptions) {
    this.#fh = fh;
    this.#path = options.path;
    this.#position = options.position === undefined ? 0 : options.position;
    this.#highWater = options.highWaterMark ?? DEFAULT_SINK_HIGH_WATER;
  }

  /** Bytes accepted but not yet written. */
  get pendingBytes(): number {
    return this.#queuedBytes + this.#inFlightBytes;
  }

  /** The first write error, if any. */
  get error(): SocketkitError | undefined {
    return this.#error;
  }

  /**
   * Queues `chunk` (kept by reference until written: do not reuse it).
   *
   * @returns false when the caller should await `drained()` before writing more.
   * @throws SocketkitError the error of an earlier failed write.
   */
  write(chunk: Uint8Array): boolean {
    if (this.#error) throw this.#error;
    if (chunk.byteLength > 0) {
      this.#queue.push(chunk);
      this.#queuedBytes += chunk.byteLength;
      if (!this.#writing) {
        this.#writing = true;
        void this.#run();
      }
    }
    return this.pendingBytes < this.#highWater;
  }

  /** Resolves once pending bytes are below the high-water mark; rejects on a write error. */
  drained(): Promise<void> {
    return this.#until(this.#highWater);
  }

  /** Resolves once everything queued is written; rejects on a write error. */
  flush(): Promise<void> {
    return this.#until(1);
  }

  #until(below: number): Promise<void> {
    if (this.#error) return Promise.reject(this.#error);
    if (this.pendingBytes < below) return Promise.resolve();
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject, below }));
  }

  /** The write loop: one writev at a time, of everything queued when it starts. */
  async #run(): Promise<void> {
    try {
      while (this.#queue.length > 0) {
        // IOV_MAX is 1024 on Linux; stay well below it.
        const batch = this.#queue.length <= 256 ? this.#queue : this.#queue.slice(0, 256);
        this.#queue = this.#queue.length <= 256 ? [] : this.#queue.slice(256);
        const bytes = batch.reduce((n, c) => n + c.byteLength, 0);
        this.#queuedBytes -= bytes;
        this.#inFlightBytes = bytes;
        const n = await accepted(this.#fh.writev(batch, this.#position ?? undefined), this.#path);
        this.#inFlightBytes = 0;
        this.written += n;
        if (this.#position !== null) this.#position += n;
        if (n < bytes) {
          // A short write (rare: a signal, or the disk filling up): put the rest back in front.
          const rest = remainder(batch, n);
          this.#queue = [...rest, ...this.#queue];
          this.#queuedBytes += bytes - n;
        }
        this.#notify();
      }
    } catch (err) {
      this.#error = toSocketkitError(err, this.#path);
      this.#queue = [];
      this.#queuedBytes = 0;
      this.#inFlightBytes = 0;
      this.#waiters = rejectAll(this.#waiters, this.#error);
    } finally {
      this.#writing = false;
    }
  }

  #notify(): void {
    const pending = this.pendingBytes;
    const still: SinkWaiter[] = [];
    for (const w of this.#waiters) {
      if (pending < w.below) w.resolve();
      else still.push(w);
    }
    this.#waiters = still;
  }
}

/** The chunks of `batch` after its first `skip` bytes. */
function remainder(batch: readonly Uint8Array[], skip: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const c of batch) {
    if (skip >= c.byteLength) {
      skip -= c.byteLength;
      continue;
    }
    out.push(skip > 0 ? c.subarray(skip) : c);
    skip = 0;
  }
  return out;
}

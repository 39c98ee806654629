/**
 * TCP (and Unix, and TLS) streams of a test: the sending loop and the receiving count.
 *
 * The sender sends one buffer of `length` bytes (zeros) over and over until the time or byte
 * budget is spent, then ends the stream (FIN): the receiver's end of stream is the stream's last
 * byte. With the native helper on a plain TCP or Unix socket, the loop runs on the thread pool
 * (native/perf_io.c: send(2) of the same buffer, as iperf3's sender does), a slice per call; with
 * `zeroCopy` it sends with sendfile(2) from a sparse 1 MiB file of zeros instead (the kernel sends
 * page-cache pages: no copy in user space). Otherwise (TLS, no helper) Node writes the buffer,
 * honouring backpressure (a `write()` that returns false waits for 'drain' or 'close').
 */
import { open, rm, mkdtemp } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Socket } from 'node:net';
import { SocketkitError } from '../core/errors.js';
import { waitDrain } from '../net/write.js';
import { canSendfile, sendfileRange } from '../transfer/zero-copy.js';
import { getSystemErrorName } from 'node:util';
import { setImmediate as setImmediatePromise } from 'node:timers/promises';
import { socketFd } from '../net/socket-state.js';
import { perfIo, tcpInfo } from './native.js';
import type { StreamMeter } from './meter.js';

/**
 * The size of the file of zeros `zeroCopy` sends from (sparse: it takes no disk), sent over and
 * over: small, so its page-cache pages stay in the CPU's caches (iperf3 -Z sends its 128 KiB buffer's file).
 */
const ZEROS_FILE_SIZE = 1024 * 1024;
/** Bytes one native send call may move before it hands back (progress and the clock are checked between calls). */
const SEND_SLICE = 16 * 1024 * 1024;
/** Bytes written without a wait before the sender yields to the event loop. */
const YIELD_BYTES = 4 * 1024 * 1024;
/** How long one native send call waits on the thread pool for room in a full socket, ms. */
const SEND_WAIT_MS = 20;

export interface TcpSendOptions {
  /** Bytes per write. */
  readonly length: number;
  /** Stop at this `performance.now()` (when `bytes` is 0). */
  readonly until: number;
  /** Bytes to send in all (0: send until `until`). */
  readonly bytes: number;
  readonly zeroCopy: boolean;
  /** Stops the sender early (the stream is then destroyed, not ended). */
  readonly signal: AbortSignal;
}

/** What a sender did. */
export interface TcpSendResult {
  readonly zeroCopy: boolean;
}

let zeros: Promise<{ readonly fh: FileHandle; readonly dir: string }> | undefined;

/** The shared sparse file of zeros (created once per process, removed at once: the handle keeps it). */
async function zerosFile(): Promise<FileHandle> {
  zeros ??= (async () => {
    const dir = await mkdtemp(join(tmpdir(), 'socketkit-perf-'));
    const path = join(dir, 'zeros');
    const fh = await open(path, 'w+');
    await fh.truncate(ZEROS_FILE_SIZE);
    await rm(dir, { recursive: true, force: true });
    return { fh, dir };
  })();
  return (await zeros).fh;
}

function stopped(signal: AbortSignal): SocketkitError {
  return signal.reason instanceof SocketkitError ? signal.reason : new SocketkitError('ERR_ABORTED', 'throughput test stopped');
}

type SliceCall = (out: number, maxBytes: number, callback: (errno: number, bytes: number) => void) => void;

/** A sender of native/perf_io.c (sendfile from the zeros, or send of one buffer): the whole stream's loop on the thread pool, one slice per call. */
async function sendNative(socket: Socket, io: NonNullable<ReturnType<typeof perfIo>>, call: SliceCall, meter: StreamMeter, budget: number, more: () => boolean, signal: AbortSignal): Promise<void> {
  // The hello line must leave first: an empty write completes after what is queued.
  if (socket.writableLength > 0) await new Promise<void>((resolve, reject) => socket.write(Buffer.alloc(0), (err) => (err ? reject(err) : resolve())));
  const fd = socketFd(socket);
  if (fd === undefined) throw new SocketkitError('ERR_CONN_CLOSED', 'connection closed while sending');
  const out = io.dup(fd);
  if (out < 0) throw ioError('the stream', -out);
  try {
    while (more()) {
      if (signal.aborted) throw stopped(signal);
      if (socket.destroyed) throw new SocketkitError('ERR_CONN_CLOSED', 'connection closed while sending');
      const want = Math.min(SEND_SLICE, budget - meter.bytes);
      const { errno, bytes } = await new Promise<{ errno: number; bytes: number }>((resolve) => call(out, want, (e, b) => resolve({ errno: e, bytes: b })));
      meter.bytes += bytes;
      if (errno !== 0) throw ioError('the stream', errno);
    }
  } finally {
    io.close(out);
  }
}

/** Sends on `socket` as `options` say, counting into `meter`; ends the stream when done. */
export async function sendTcp(socket: Socket, meter: StreamMeter, options: TcpSendOptions): Promise<TcpSendResult> {
  const { length, until, bytes, signal } = options;
  const budget = bytes > 0 ? bytes : Number.POSITIVE_INFINITY;
  const more = (): boolean => meter.bytes < budget && (bytes > 0 || performance.now() < until);
  const zeroCopy = options.zeroCopy && canSendfile(socket);
  meter.tcpInfo = () => tcpInfo(socket);
  const plainIo = zeroCopy || socketFd(socket) === undefined ? undefined : perfIo();
  if (zeroCopy) {
    const fh = await zerosFile();
    const io = perfIo();
    if (io !== undefined) {
      await sendNative(socket, io, (out, max, cb) => io.sendZeros(out, fh.fd, ZEROS_FILE_SIZE, max, SEND_WAIT_MS, cb), meter, budget, more, signal);
    } else {
      while (more()) {
        if (signal.aborted) throw stopped(signal);
        const n = Math.min(ZEROS_FILE_SIZE, budget - meter.bytes);
        const base = meter.bytes;
        await sendfileRange(socket, fh, 0, n, {
          path: 'zeros',
          onSent: (sent) => (meter.bytes = base + sent),
          failure: () => (signal.aborted ? stopped(signal) : undefined),
        });
      }
    }
  } else if (plainIo !== undefined) {
    // The same loop as iperf3's sender: send(2) of one buffer of `length` bytes over and over, on the thread pool.
    await sendNative(socket, plainIo, (out, max, cb) => plainIo.sendRepeat(out, length, max, SEND_WAIT_MS, cb), meter, budget, more, signal);
  } else {
    // One buffer for every write: the kernel copies it, so reusing it at once is safe.
    const buf = Buffer.alloc(length);
    let sinceYield = 0;
    while (more()) {
      if (signal.aborted) throw stopped(signal);
      if (socket.destroyed) throw new SocketkitError('ERR_CONN_CLOSED', 'connection closed while sending');
      const left = budget - meter.bytes;
      const chunk = left < length ? buf.subarray(0, left) : buf;
      meter.bytes += chunk.length;
      sinceYield += chunk.length;
      if (!socket.write(chunk)) {
        await waitDrain(socket);
        sinceYield = 0;
      } else if (sinceYield >= YIELD_BYTES) {
        // A receiver that keeps up takes every write at once: let timers (interval reports,
        // the end of the test) and other streams run.
        await setImmediatePromise();
        sinceYield = 0;
      }
    }
  }
  meter.end(performance.now());
  meter.sampleTcp();
  socket.end();
  return { zeroCopy };
}

/** Bytes one native read call may take before it hands back (progress is counted between calls). */
const RECV_SLICE = 16 * 1024 * 1024;
/** How long one native read call waits on the thread pool for data before it hands back, ms. */
const RECV_WAIT_MS = 20;

function ioError(stream: string, errno: number): SocketkitError {
  let name: string;
  try {
    name = getSystemErrorName(-errno);
  } catch {
    name = `errno ${errno}`;
  }
  return new SocketkitError('ERR_PERF_INTERRUPTED', `${stream} failed mid-test (${name})`);
}

/**
 * Counts what arrives on `socket` into `meter` (starting with `first`, bytes that came with the
 * hello); resolves at the peer's FIN (the meter ends there), rejects with ERR_PERF_INTERRUPTED
 * when the stream closes or is reset before it.
 *
 * With the native helper, on a plain TCP or Unix socket, Node stops reading the socket and the
 * bytes are read on the thread pool into one reused buffer (native/perf_io.c), as iperf3's
 * receiver does: Node's own reads allocate a buffer per 64 KiB and cost about three times the
 * CPU per byte. Without it, Node's reads are counted.
 */
export function receiveTcp(socket: Socket, meter: StreamMeter, first: Buffer | undefined, name: string, signal: AbortSignal, onFirstBytes?: () => void): Promise<void> {
  let fresh = true;
  const arrived = (): void => {
    if (!fresh) return;
    fresh = false;
    onFirstBytes?.();
  };
  if (first && first.length > 0) {
    arrived();
    meter.bytes += first.length;
  }
  const native = perfIo();
  const fd = socketFd(socket);
  if (native === undefined || fd === undefined) return receiveWithNode(socket, meter, name, arrived);
  const own = native.dup(fd);
  if (own < 0) return receiveWithNode(socket, meter, name, arrived);
  // Node's own reading of a paused socket goes on until its buffer holds its high-water mark
  // (one read of 64 KiB), then stops; nothing ever takes those bytes out of its buffer, so the
  // count is what the native loop read plus what Node holds. Each byte is read once, by one of the two.
  socket.pause();
  let native0 = meter.bytes;
  const count = (): void => {
    const now = native0 + socket.readableLength;
    if (now > meter.bytes) arrived();
    meter.bytes = now;
  };
  count();
  // A reset or close is seen by the native reads; Node's own error event needs a listener.
  socket.on('error', () => undefined);
  return new Promise<void>((resolve, reject) => {
    const step = (): void => {
      // The private descriptor keeps the connection open even after Node closed the socket: a test that was stopped stops here.
      if (signal.aborted) {
        native.close(own);
        reject(signal.reason instanceof SocketkitError ? signal.reason : new SocketkitError('ERR_PERF_INTERRUPTED', `${name} stopped mid-test`));
        return;
      }
      native.recvDrop(own, RECV_SLICE, RECV_WAIT_MS, (errno, bytes, eof) => {
        native0 += bytes;
        count();
        if (errno !== 0) {
          native.close(own);
          reject(ioError(name, errno));
        } else if (eof) {
          native.close(own);
          meter.end(performance.now());
          resolve();
        } else {
          step();
        }
      });
    };
    step();
  });
}

function receiveWithNode(socket: Socket, meter: StreamMeter, name: string, arrived: () => void): Promise<void> {
  socket.on('data', (chunk: Buffer) => {
    arrived();
    meter.bytes += chunk.length;
  });
  return new Promise<void>((resolve, reject) => {
    let ended = false;
    socket.once('end', () => {
      ended = true;
      meter.end(performance.now());
      resolve();
    });
    socket.once('close', () => {
      if (!ended) reject(new SocketkitError('ERR_PERF_INTERRUPTED', `${name} closed mid-test`));
    });
  });
}

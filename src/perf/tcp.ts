/**
 * TCP (and Unix, and TLS) streams of a test: the sending loop and the receiving count.
 *
 * The sender sends one buffer of `length` bytes (zeros) over and over until the time or byte
 * budget is spent, then ends the stream (FIN): the receiver's end of stream is the stream's last
 * byte. With the native helper on a plain TCP or Unix socket, the loop runs on a thread of its
 * own for the whole stream (native/perf_stream.c: send(2) of the same buffer, as iperf3's sender
 * does); with `zeroCopy` it sends with sendfile(2) from a sparse 128 KiB file of zeros instead (the
 * kernel sends page-cache pages: no copy in user space). Otherwise (TLS, no helper) Node writes
 * the buffer, honouring backpressure (a `write()` that returns false waits for 'drain' or 'close').
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
import { NativeStream, tcpInfo } from './native.js';
import type { NativeStreamLoop } from './native.js';
import type { StreamMeter } from './meter.js';

/**
 * The size of the file of zeros `zeroCopy` sends from (sparse: it takes no disk), sent over and
 * over: small, so its page-cache pages stay in the CPU's caches, as iperf3 -Z's 128 KiB file does.
 * With the loop on a thread of its own, 128 KiB made 19.3-27.0 Gbit/s on loopback against
 * 15.7-17.1 for 1 MiB and 16.7-21.0 for 4 MiB (6 interleaved rounds of 2 s).
 */
const ZEROS_FILE_SIZE = 128 * 1024;
/** Bytes written without a wait before the sender yields to the event loop. */
const YIELD_BYTES = 4 * 1024 * 1024;

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

/** The native loop moving each socket's bytes on a private descriptor (kept after the loop ends: its final count). */
const offSocket = new WeakMap<Socket, { readonly stream: NativeStream; readonly dir: 'read' | 'written' }>();

/**
 * Bytes a native loop moved on `socket`'s private descriptor, which its own counters
 * (`bytesRead`, `bytesWritten`) do not show: for the server's idle sweep and statistics.
 */
export function movedOffSocket(socket: Socket): { readonly read: number; readonly written: number } {
  const o = offSocket.get(socket);
  if (o === undefined) return { read: 0, written: 0 };
  const n = o.stream.bytes();
  return o.dir === 'read' ? { read: n, written: 0 } : { read: 0, written: n };
}

function stopped(signal: AbortSignal): SocketkitError {
  return signal.reason instanceof SocketkitError ? signal.reason : new SocketkitError('ERR_ABORTED', 'throughput test stopped');
}

/**
 * Sends on `socket` with a native loop (`loop`) until the time (`until`) or the byte budget
 * (`bytes`, 0: none) is spent; false when no native loop could start (the caller sends with Node).
 */
async function sendNative(socket: Socket, loop: NativeStreamLoop, meter: StreamMeter, options: TcpSendOptions): Promise<boolean> {
  const { until, bytes, signal } = options;
  // The hello line must leave first: an empty write completes after what is queued.
  if (socket.writableLength > 0) await new Promise<void>((resolve, reject) => socket.write(Buffer.alloc(0), (err) => (err ? reject(err) : resolve())));
  if (signal.aborted) throw stopped(signal);
  const left = bytes > 0 ? bytes - meter.bytes : 0;
  if (bytes > 0 && left <= 0) return true;
  const stream = NativeStream.start(socket, loop, left);
  if (stream === undefined) return false;
  offSocket.set(socket, { stream, dir: 'written' });
  meter.follow(() => stream.bytes());
  let closed = false;
  const stop = (): void => stream.stop();
  const onClose = (): void => {
    closed = true;
    stream.stop();
  };
  const timer = bytes > 0 ? undefined : setTimeout(stop, Math.max(0, until - performance.now()));
  signal.addEventListener('abort', stop, { once: true });
  socket.once('close', onClose);
  try {
    const end = await stream.ended;
    meter.unfollow(end.bytes);
    if (signal.aborted) throw stopped(signal);
    if (end.errno !== 0) throw ioError('the stream', end.errno);
    if (closed) throw new SocketkitError('ERR_CONN_CLOSED', 'connection closed while sending');
    return true;
  } finally {
    clearTimeout(timer);
    signal.removeEventListener('abort', stop);
    socket.off('close', onClose);
  }
}

/** Sends on `socket` as `options` say, counting into `meter`; ends the stream when done. */
export async function sendTcp(socket: Socket, meter: StreamMeter, options: TcpSendOptions): Promise<TcpSendResult> {
  const { length, until, bytes, signal } = options;
  const budget = bytes > 0 ? bytes : Number.POSITIVE_INFINITY;
  const more = (): boolean => meter.bytes < budget && (bytes > 0 || performance.now() < until);
  const zeroCopy = options.zeroCopy && canSendfile(socket);
  meter.tcpInfo = () => tcpInfo(socket);
  // Measured on loopback, 6 interleaved rounds each: sendfile's one stream is faster with Nagle's
  // algorithm on (iperf3 leaves it on for its data streams): 16.7-19.1 against 14.7-16.3 Gbit/s;
  // send(2) of 128 KiB writes is faster with TCP_NODELAY (each write's tail under one segment
  // leaves at once): 18.6-19.6 against 15.7-16.6 Gbit/s.
  socket.setNoDelay(!zeroCopy);
  const zeros = zeroCopy ? await zerosFile() : undefined;
  const loop: NativeStreamLoop = zeros !== undefined ? { kind: 'sendfile', file: zeros.fd, fileSize: ZEROS_FILE_SIZE } : { kind: 'send', length };
  if (await sendNative(socket, loop, meter, options)) {
    // sent by the native loop
  } else if (zeros !== undefined) {
    while (more()) {
      if (signal.aborted) throw stopped(signal);
      const n = Math.min(ZEROS_FILE_SIZE, budget - meter.bytes);
      let counted = 0;
      await sendfileRange(socket, zeros, 0, n, {
        path: 'zeros',
        onSent: (sent) => {
          meter.add(sent - counted);
          counted = sent;
        },
        failure: () => (signal.aborted ? stopped(signal) : undefined),
      });
    }
  } else {
    // One buffer for every write: the kernel copies it, so reusing it at once is safe.
    const buf = Buffer.alloc(length);
    let sinceYield = 0;
    while (more()) {
      if (signal.aborted) throw stopped(signal);
      if (socket.destroyed) throw new SocketkitError('ERR_CONN_CLOSED', 'connection closed while sending');
      const left = budget - meter.bytes;
      const chunk = left < length ? buf.subarray(0, left) : buf;
      meter.add(chunk.length);
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
 * bytes are read on a thread of the stream's own into one reused buffer (native/perf_stream.c), as iperf3's
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
    meter.add(first.length);
  }
  // Node's own reading of a paused socket goes on until its buffer holds its high-water mark
  // (one read of 64 KiB), then stops; nothing ever takes those bytes out of its buffer, so the
  // count is what the native loop read plus what Node holds. Each byte is read once, by one of the two.
  socket.pause();
  const stream = NativeStream.start(socket, { kind: 'receive' }, 0, () => meter.asOfFollow(arrived));
  if (stream === undefined) {
    socket.resume();
    return receiveWithNode(socket, meter, name, arrived);
  }
  offSocket.set(socket, { stream, dir: 'read' });
  const held = (): number => socket.readableLength;
  if (held() > 0) arrived();
  meter.follow(() => stream.bytes() + held());
  // A reset or close is seen by the native reads; Node's own error event needs a listener.
  socket.on('error', () => undefined);
  // The private descriptor keeps the connection open even after Node closed the socket: a test that was stopped stops here.
  const stop = (): void => stream.stop();
  signal.addEventListener('abort', stop, { once: true });
  if (signal.aborted) stream.stop();
  return stream.ended.then((end) => {
    signal.removeEventListener('abort', stop);
    meter.unfollow(end.bytes + held());
    if (end.errno !== 0) throw ioError(name, end.errno);
    if (end.eof) {
      meter.end(performance.now());
      return;
    }
    throw signal.reason instanceof SocketkitError ? signal.reason : new SocketkitError('ERR_PERF_INTERRUPTED', `${name} stopped mid-test`);
  });
}

function receiveWithNode(socket: Socket, meter: StreamMeter, name: string, arrived: () => void): Promise<void> {
  socket.on('data', (chunk: Buffer) => {
    arrived();
    meter.add(chunk.length);
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

/**
 * TCP (and Unix, and TLS) streams of a test: the sending loop and the receiving count.
 *
 * The sender writes one buffer of `length` bytes (zeros) over and over, honouring backpressure
 * (a `write()` that returns false waits for 'drain' or 'close'), until the time or byte budget is
 * spent, then ends the stream (FIN): the receiver's 'end' is the stream's last byte. With
 * `zeroCopy` on a plain socket and the native helper built, it sends with sendfile(2) from a
 * sparse file of zeros instead (the kernel reads zero pages: no copy in user space).
 */
import { open, rm, mkdtemp } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Socket } from 'node:net';
import { SocketkitError } from '../core/errors.js';
import { waitDrain } from '../net/write.js';
import { canSendfile, sendfileRange } from '../transfer/zero-copy.js';
import type { StreamMeter } from './meter.js';

/** The size of the file of zeros `zeroCopy` sends from (sparse: it takes no disk). */
const ZEROS_FILE_SIZE = 8 * 1024 * 1024;

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

/** Sends on `socket` as `options` say, counting into `meter`; ends the stream when done. */
export async function sendTcp(socket: Socket, meter: StreamMeter, options: TcpSendOptions): Promise<TcpSendResult> {
  const { length, until, bytes, signal } = options;
  const budget = bytes > 0 ? bytes : Number.POSITIVE_INFINITY;
  const more = (): boolean => meter.bytes < budget && (bytes > 0 || performance.now() < until);
  const zeroCopy = options.zeroCopy && canSendfile(socket);
  if (zeroCopy) {
    const fh = await zerosFile();
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
  } else {
    const buf = Buffer.alloc(length);
    while (more()) {
      if (signal.aborted) throw stopped(signal);
      if (socket.destroyed) throw new SocketkitError('ERR_CONN_CLOSED', 'connection closed while sending');
      const left = budget - meter.bytes;
      const chunk = left < length ? buf.subarray(0, left) : buf;
      meter.bytes += chunk.length;
      if (!socket.write(chunk)) await waitDrain(socket);
    }
  }
  meter.end(performance.now());
  socket.end();
  return { zeroCopy };
}

/** Counts what arrives on `socket` into `meter` (starting with `first`, bytes that came with the hello); the meter ends at the peer's FIN. */
export function receiveTcp(socket: Socket, meter: StreamMeter, first: Buffer | undefined): void {
  if (first && first.length > 0) meter.bytes += first.length;
  socket.on('data', (chunk: Buffer) => {
    meter.bytes += chunk.length;
  });
  socket.once('end', () => {
    meter.end(performance.now());
  });
}

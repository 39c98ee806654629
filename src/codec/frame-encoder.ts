/**
 * The encoder of length-prefixed frames: a 4-byte big-endian unsigned length, then the payload.
 *
 * Small payloads are copied into one buffer with their header (one allocation beats an extra
 * buffer in every queue downstream); large ones are returned or written as two buffers so the
 * payload itself is never copied.
 */
import type { Writable } from 'node:stream';
import { SocketkitError } from '../core/errors.js';
import { COALESCE_THRESHOLD, FRAME_HEADER_SIZE, MAX_FRAME_LENGTH } from './constants.js';
import { type FrameCodecOptions, frameTooLarge, resolveMaxFrameSize } from './options.js';

/** Options of {@link encodeHeader}, {@link encodeFrame} and {@link writeFrame}. */
export type FrameEncoderOptions = FrameCodecOptions;

/** Throws unless `length` is a payload length the options allow. */
function checkLength(length: number, options: FrameEncoderOptions | undefined): void {
  const max = resolveMaxFrameSize(options);
  if (length > max) throw frameTooLarge(length, max, 'sent');
}

/** Writes `length` big-endian at `target[0..3]`. */
function putLength(target: Uint8Array, length: number): void {
  target[0] = length >>> 24;
  target[1] = (length >>> 16) & 0xff;
  target[2] = (length >>> 8) & 0xff;
  target[3] = length & 0xff;
}

/** Header and payload in one new buffer; for payloads below the coalescing threshold. */
function coalesce(payload: Uint8Array): Buffer {
  const frame = Buffer.allocUnsafe(FRAME_HEADER_SIZE + payload.byteLength);
  putLength(frame, payload.byteLength);
  frame.set(payload, FRAME_HEADER_SIZE);
  return frame;
}

/** A new 4-byte header; the length was checked by the caller. */
function header(length: number): Buffer {
  const target = Buffer.allocUnsafe(FRAME_HEADER_SIZE);
  putLength(target, length);
  return target;
}

/**
 * Encodes the 4-byte header of a frame whose payload is `length` bytes long.
 *
 * @param length - The payload length, an integer from 0 to `maxFrameSize`.
 * @param options - `maxFrameSize` (default 16 MiB; at most 2^32 - 1).
 * @returns A new 4-byte buffer.
 * @throws SocketkitError `ERR_FRAME_TOO_LARGE` if `length` exceeds `maxFrameSize`;
 *   `ERR_INVALID_ARG` if it is not a non-negative integer.
 *
 * @example
 * ```ts
 * import { encodeHeader } from 'socketkit';
 *
 * encodeHeader(258); // => <Buffer 00 00 01 02>
 * ```
 */
export function encodeHeader(length: number, options?: FrameEncoderOptions): Buffer {
  if (!Number.isInteger(length) || length < 0) {
    throw new SocketkitError('ERR_INVALID_ARG', `frame length must be a non-negative integer, got ${String(length)}`);
  }
  if (length > MAX_FRAME_LENGTH) throw frameTooLarge(length, MAX_FRAME_LENGTH, 'sent');
  checkLength(length, options);
  return header(length);
}

/**
 * Encodes one frame as the buffers to write, in order: one buffer (header and payload
 * together) for a payload under 1.5 KiB ({@link COALESCE_THRESHOLD}), where copying is cheaper
 * than a second buffer; two (header, then `payload` itself, not copied) for larger ones. Write
 * them with `writev`, or in one corked batch — {@link writeFrame} does that for a stream.
 *
 * @param payload - The message; may be empty.
 * @param options - `maxFrameSize` (default 16 MiB).
 * @returns `[frame]` or `[header, payload]`.
 * @throws SocketkitError `ERR_FRAME_TOO_LARGE` if the payload exceeds `maxFrameSize`.
 *
 * @example
 * ```ts
 * import { encodeFrame } from 'socketkit';
 *
 * encodeFrame(Buffer.from('hi')); // => [<Buffer 00 00 00 02 68 69>]
 * encodeFrame(Buffer.alloc(4096)).length; // => 2: [<Buffer 00 00 10 00>, payload]
 * ```
 */
export function encodeFrame(payload: Uint8Array, options?: FrameEncoderOptions): [Uint8Array] | [Uint8Array, Uint8Array] {
  const length = payload.byteLength;
  checkLength(length, options);
  if (length < COALESCE_THRESHOLD) return [coalesce(payload)];
  return [header(length), payload];
}

/**
 * Writes one frame to a stream (a `net.Socket`, a file, any `Writable`). A large payload is
 * written as header and payload inside `cork()`/`uncork()`, so they leave in a single `writev`
 * and the payload is not copied; a small one is written as one buffer.
 *
 * Nothing is written if the payload is refused. The caller keeps `payload` unchanged until the
 * write completes.
 *
 * @param stream - Where to write.
 * @param payload - The message; may be empty.
 * @param options - `maxFrameSize` (default 16 MiB).
 * @returns What `stream.write()` returned: `false` means the stream's buffer is full — wait for
 *   `'drain'` (or `'close'`) before writing more.
 * @throws SocketkitError `ERR_FRAME_TOO_LARGE` if the payload exceeds `maxFrameSize`.
 *
 * @example
 * ```ts
 * import { PassThrough } from 'node:stream';
 * import { once } from 'node:events';
 * import { writeFrame } from 'socketkit';
 *
 * const stream = new PassThrough(); // stands in for a net.Socket
 * if (!writeFrame(stream, Buffer.from('hello'))) await once(stream, 'drain');
 * console.log(stream.read()); // <Buffer 00 00 00 05 68 65 6c 6c 6f>
 * ```
 */
export function writeFrame(stream: Writable, payload: Uint8Array, options?: FrameEncoderOptions): boolean {
  const length = payload.byteLength;
  checkLength(length, options);
  if (length < COALESCE_THRESHOLD) return stream.write(coalesce(payload));
  stream.cork();
  try {
    stream.write(header(length));
    return stream.write(payload);
  } finally {
    stream.uncork();
  }
}

/**
 * Length-prefixed framing: each message travels as a 4-byte big-endian unsigned length, then
 * that many bytes. A zero-length frame is a valid, empty message.
 *
 * The codec knows nothing of sockets: {@link FrameDecoder} turns chunks of bytes into
 * messages however the chunks are cut, and the encoder turns messages into bytes.
 * {@link writeFrame} and {@link decodeFrames} are the thin adapters to streams.
 *
 * Error codes: `ERR_FRAME_TOO_LARGE` (a frame over `maxFrameSize`, default 16 MiB, whether
 * received or sent), `ERR_FRAME_TRUNCATED` (the input ended inside a frame), `ERR_INVALID_ARG`
 * (a bad option or length).
 *
 * @example
 * ```ts
 * import { PassThrough } from 'node:stream';
 * import { FrameDecoder, decodeFrames, writeFrame } from 'socketkit';
 *
 * // Stream side: frames written to a stream (here a PassThrough standing in for a socket)…
 * const wire = new PassThrough();
 * writeFrame(wire, Buffer.from('hello'));
 * writeFrame(wire, Buffer.alloc(0)); // an empty message
 * writeFrame(wire, Buffer.alloc(64 * 1024, 1)); // header and payload leave in one writev
 * wire.end();
 * // …and read back, whatever the chunking.
 * for await (const message of decodeFrames(wire)) console.log(message.byteLength); // 5, 0, 65536
 *
 * // Byte side: push chunks, get the frames each chunk completes.
 * const decoder = new FrameDecoder({ maxFrameSize: 1024 });
 * console.log(decoder.push(Uint8Array.of(0, 0, 0))); // [] — incomplete input is just a state
 * console.log(decoder.push(Uint8Array.of(2, 0x68, 0x69, 0, 0, 0, 0))); // [ Uint8Array(2) [104, 105], Uint8Array(0) [] ]
 * decoder.end(); // ok: the input ended on a frame boundary
 * ```
 *
 * @module
 */

export { COALESCE_THRESHOLD, DEFAULT_MAX_FRAME_SIZE, FRAME_HEADER_SIZE, MAX_FRAME_LENGTH } from './constants.js';
export type { FrameCodecOptions } from './options.js';
export { FrameDecoder, decodeFrames, type FrameDecoderOptions } from './frame-decoder.js';
export { encodeFrame, encodeHeader, writeFrame, type FrameEncoderOptions } from './frame-encoder.js';

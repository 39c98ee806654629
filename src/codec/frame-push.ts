/**
 * The framed loop every framed server runs on its sockets (the framed echo, the framed broker),
 * in one place: feed each chunk to a {@link FrameDecoder}, handle the frames it completes,
 * including those that came before a bad length prefix in the same chunk, and at the end of the
 * input check that it ended on a frame boundary.
 */
import type { FrameDecoder } from './frame-decoder.js';

/**
 * Feeds `chunk` to `decoder` and calls `onFrame` with every frame it completes, in order. The
 * frames before a bad length prefix are still handed over; then the decoder's error
 * (`ERR_FRAME_TOO_LARGE`) is returned, not thrown, for the caller to close the connection with.
 * `scratch` is an array the caller reuses between calls (left empty).
 */
export function pushFrames(decoder: FrameDecoder, chunk: Uint8Array, scratch: Uint8Array[], onFrame: (frame: Uint8Array) => void): unknown {
  let failure: unknown;
  try {
    decoder.push(chunk, scratch);
  } catch (err) {
    failure = err;
  }
  try {
    for (const f of scratch) onFrame(f);
  } finally {
    scratch.length = 0;
  }
  return failure;
}

/**
 * The peer's end of input: half-closes `stream` after what is queued when the input ended on a
 * frame boundary, else destroys it with the decoder's error (`ERR_FRAME_TRUNCATED`), made coded
 * by `coded`.
 */
export function endFrames(decoder: FrameDecoder, stream: { end(): unknown; destroy(err?: Error): unknown }, coded: (err: unknown) => Error): void {
  try {
    decoder.end();
    stream.end();
  } catch (err) {
    stream.destroy(coded(err));
  }
}

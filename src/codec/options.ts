/**
 * Options shared by the frame decoder and encoder, and the checks both sides apply.
 * Internal: `index.ts` re-exports only the option interface.
 */
import { SocketkitError } from '../core/errors.js';
import { DEFAULT_MAX_FRAME_SIZE, MAX_FRAME_LENGTH } from './constants.js';

/** Options of the framing codec (decoder and encoder alike). */
export interface FrameCodecOptions {
  /**
   * The largest payload, in bytes, that may be sent or received in one frame. A longer frame is
   * refused with `ERR_FRAME_TOO_LARGE`. An integer from 0 to 2^32 - 1;
   * default {@link DEFAULT_MAX_FRAME_SIZE} (16 MiB).
   */
  readonly maxFrameSize?: number;
}

/** Applies the default and rejects a limit that is not a length a header can carry. */
export function resolveMaxFrameSize(options: FrameCodecOptions | undefined): number {
  const max = options?.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE;
  if (!Number.isInteger(max) || max < 0 || max > MAX_FRAME_LENGTH) {
    throw new SocketkitError('ERR_INVALID_ARG', `maxFrameSize must be an integer from 0 to ${MAX_FRAME_LENGTH}, got ${String(max)}`);
  }
  return max;
}

/** The error for a frame longer than the limit, raised by both the decoder and the encoder. */
export function frameTooLarge(length: number, max: number, direction: 'received' | 'sent'): SocketkitError {
  const what = direction === 'received' ? `peer announced a frame of ${length} bytes` : `cannot send a frame of ${length} bytes`;
  return new SocketkitError('ERR_FRAME_TOO_LARGE', `${what}, more than the maximum frame size of ${max} bytes`);
}

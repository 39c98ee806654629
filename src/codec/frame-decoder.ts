/**
 * The streaming decoder of length-prefixed frames: bytes in, complete frames out.
 *
 * It knows nothing of sockets. Whoever reads the socket pushes each chunk and gets back the
 * frames that chunk completed. Like the receiver of `ws`, it keeps a list of the chunks it has
 * not consumed and a count of their bytes, hands out a view when a frame lies in one chunk, and
 * copies only a frame that spans chunks.
 */
import { SocketkitError } from '../core/errors.js';
import { FRAME_HEADER_SIZE } from './constants.js';
import { type FrameCodecOptions, frameTooLarge, resolveMaxFrameSize } from './options.js';

/** Options of {@link FrameDecoder}. */
export type FrameDecoderOptions = FrameCodecOptions;

// The states of the decoder. `push()` loops between the first two for as long as the buffered
// bytes allow, and stops — without error — as soon as it needs bytes it has not been given.

/** Waiting for the 4-byte length prefix; its bytes may be spread over up to four chunks. */
const READ_HEADER = 0;
/** The length is known (`#frameLength`) and within the limit; waiting for that many payload bytes. */
const READ_PAYLOAD = 1;
/** A protocol error was found (or the input ended mid-frame); every later call throws it again. */
const FAILED = 2;

type DecoderState = typeof READ_HEADER | typeof READ_PAYLOAD | typeof FAILED;

/**
 * Decodes a stream of frames — each a 4-byte big-endian unsigned length, then that many
 * bytes — however the stream is cut into chunks.
 *
 * - A frame that lies within one pushed chunk is returned as a view of that chunk (no copy; it
 *   shares the chunk's memory, so do not reuse a chunk you have pushed). A frame that spans
 *   chunks is copied into a new `Buffer`.
 * - A zero-length frame is a valid, empty message.
 * - Incomplete input is not an error: its bytes wait for the next chunk.
 * - A length prefix above `maxFrameSize` throws `ERR_FRAME_TOO_LARGE` as soon as the prefix is
 *   read, before any of the payload is buffered; the decoder then drops what it holds and stays
 *   failed.
 * - {@link FrameDecoder.end} throws `ERR_FRAME_TRUNCATED` if the input stopped inside a frame.
 *
 * @example
 * ```ts
 * import { FrameDecoder, encodeFrame } from 'socketkit';
 *
 * const decoder = new FrameDecoder({ maxFrameSize: 1024 * 1024 });
 * const wire = Buffer.concat(encodeFrame(Buffer.from('hello')));
 * decoder.push(wire.subarray(0, 3)); // => [] (the header is incomplete)
 * const frames = decoder.push(wire.subarray(3)); // => [<Buffer 68 65 6c 6c 6f>]
 * console.log(Buffer.from(frames[0]!).toString()); // hello
 * decoder.end(); // throws ERR_FRAME_TRUNCATED if a frame was cut short
 * ```
 */
export class FrameDecoder {
  /** The largest payload this decoder accepts, in bytes. */
  readonly maxFrameSize: number;

  /** Chunks not yet fully consumed. Never holds an empty chunk. */
  #chunks: Uint8Array[] = [];
  /** Bytes of `#chunks[0]` already consumed; always less than its length. */
  #offset = 0;
  /** Unconsumed bytes over all of `#chunks`. */
  #bufferedBytes = 0;
  #state: DecoderState = READ_HEADER;
  /** Payload length of the frame being read; meaningful in READ_PAYLOAD. */
  #frameLength = 0;
  /** The error that moved the decoder to FAILED. */
  #failure: SocketkitError | undefined;

  /**
   * @param options - `maxFrameSize`: the largest payload accepted, in bytes (default 16 MiB).
   * @throws SocketkitError `ERR_INVALID_ARG` if `maxFrameSize` is not an integer from 0 to 2^32 - 1.
   */
  constructor(options: FrameDecoderOptions = {}) {
    this.maxFrameSize = resolveMaxFrameSize(options);
  }

  /**
   * Bytes received but not yet returned as frames: a partial header (1 to 3 bytes), or the
   * part of a payload received so far (its header excluded, so always below `maxFrameSize`).
   */
  get bufferedBytes(): number {
    return this.#bufferedBytes;
  }

  /**
   * True between frames: nothing buffered and no header read whose payload is still to come. (A
   * chunk that ends right after a header leaves `bufferedBytes` at 0 in the middle of a frame.)
   */
  get atFrameBoundary(): boolean {
    return this.#state === READ_HEADER && this.#bufferedBytes === 0;
  }

  /**
   * Feeds the next chunk of the stream and returns every frame it completes, in order (often
   * none, often several).
   *
   * @param chunk - The next bytes of the stream; may be empty. The decoder keeps a reference to
   *   it until its bytes are consumed, and returned frames may be views of it.
   * @param frames - Where to append the frames; a new array by default. Frames completed before
   *   an error is thrown are already in it, so a caller that passes its own array loses none
   *   of the valid frames that preceded a bad one.
   * @returns `frames`.
   * @throws SocketkitError `ERR_FRAME_TOO_LARGE` when a length prefix exceeds `maxFrameSize`
   *   (also on every call after that).
   */
  push(chunk: Uint8Array, frames: Uint8Array[] = []): Uint8Array[] {
    if (this.#failure !== undefined) throw this.#failure;
    // An empty chunk carries nothing; not even worth a slot in the list.
    if (chunk.byteLength === 0) return frames;
    // Nothing held back: parse the chunk in place (the common case).
    if (this.#chunks.length === 0) return this.#parse(chunk, 0, frames);

    // Bytes are held back, so the current header or frame spans chunks: finish it from the list.
    this.#chunks.push(chunk);
    this.#bufferedBytes += chunk.byteLength;
    for (;;) {
      // Down to at most one chunk: what remains is parsed in place.
      if (this.#chunks.length < 2) {
        const last = this.#chunks.pop();
        if (last === undefined) return frames;
        const at = this.#offset;
        this.#offset = 0;
        this.#bufferedBytes = 0;
        return this.#parse(last, at, frames);
      }
      if (this.#state === READ_HEADER) {
        // READ_HEADER: stop until all four bytes of the prefix are here.
        if (this.#bufferedBytes < FRAME_HEADER_SIZE) return frames;
        const length = this.#readHeader();
        // Check the limit now, before the payload is waited for.
        if (length > this.maxFrameSize) this.#fail(frameTooLarge(length, this.maxFrameSize, 'received'));
        this.#frameLength = length;
        this.#state = READ_PAYLOAD;
      }
      // READ_PAYLOAD: stop until the whole payload is here, then emit it and expect a header.
      if (this.#bufferedBytes < this.#frameLength) return frames;
      // A zero-length frame is an empty message; a zero-length view of the chunk costs no memory.
      frames.push(this.#frameLength === 0 ? chunk.subarray(0, 0) : this.#consume(this.#frameLength));
      this.#state = READ_HEADER;
    }
  }

  /**
   * The same state machine as in `push()`, run over a single chunk from `at` with local
   * variables: every frame found is a view of `chunk`. The unparsed rest, if any, becomes the
   * only held chunk.
   */
  #parse(chunk: Uint8Array, at: number, frames: Uint8Array[]): Uint8Array[] {
    const size = chunk.byteLength;
    let state = this.#state;
    let frameLength = this.#frameLength;
    for (;;) {
      if (state === READ_HEADER) {
        // READ_HEADER: stop if the chunk ends inside the prefix; its bytes are kept below.
        if (size - at < FRAME_HEADER_SIZE) break;
        // Multiply the top byte rather than shift it, so that lengths of 2^31 and above stay
        // positive.
        frameLength = chunk[at]! * 0x100_0000 + ((chunk[at + 1]! << 16) | (chunk[at + 2]! << 8) | chunk[at + 3]!);
        at += FRAME_HEADER_SIZE;
        // Check the limit before anything of the payload is kept.
        if (frameLength > this.maxFrameSize) this.#fail(frameTooLarge(frameLength, this.maxFrameSize, 'received'));
        state = READ_PAYLOAD;
      }
      // READ_PAYLOAD: stop if the chunk ends inside the payload; else emit a view of it.
      if (size - at < frameLength) break;
      frames.push(chunk.subarray(at, at + frameLength));
      at += frameLength;
      state = READ_HEADER;
    }
    this.#state = state;
    this.#frameLength = frameLength;
    if (at < size) {
      this.#chunks.push(chunk);
      this.#offset = at;
      this.#bufferedBytes = size - at;
    }
    return frames;
  }

  /**
   * Declares the end of the stream. Succeeds if it ended on a frame boundary.
   *
   * @throws SocketkitError `ERR_FRAME_TRUNCATED` if part of a frame (or of its header) was
   *   received but not the rest; the decoder then stays failed. Throws the earlier error if the
   *   decoder had already failed.
   */
  end(): void {
    if (this.#failure !== undefined) throw this.#failure;
    if (this.#state === READ_PAYLOAD) {
      this.#fail(
        new SocketkitError(
          'ERR_FRAME_TRUNCATED',
          `stream ended inside a frame: received ${this.#bufferedBytes} of its ${this.#frameLength} payload bytes`,
        ),
      );
    }
    if (this.#bufferedBytes > 0) {
      this.#fail(
        new SocketkitError(
          'ERR_FRAME_TRUNCATED',
          `stream ended inside a frame header: received ${this.#bufferedBytes} of its ${FRAME_HEADER_SIZE} bytes`,
        ),
      );
    }
  }

  /**
   * Reads and consumes a 4-byte big-endian length that spans chunks (a prefix within one chunk
   * is read by `#parse`); the caller made sure 4 bytes are buffered. A byte at a time: it
   * happens at most once per push.
   */
  #readHeader(): number {
    this.#bufferedBytes -= FRAME_HEADER_SIZE;
    let length = 0;
    for (let i = 0; i < FRAME_HEADER_SIZE; i++) {
      const chunk = this.#chunks[0]!;
      length = length * 0x100 + chunk[this.#offset]!;
      this.#consumedTo(chunk, this.#offset + 1);
    }
    return length;
  }

  /** Records that `chunk` (the first in the list) is consumed up to `end`, dropping it if used up. */
  #consumedTo(chunk: Uint8Array, end: number): void {
    if (end === chunk.byteLength) {
      this.#chunks.shift();
      this.#offset = 0;
    } else {
      this.#offset = end;
    }
  }

  /** Consumes `n` > 0 buffered bytes: a view if they lie in the first chunk, else a copy. */
  #consume(n: number): Uint8Array {
    this.#bufferedBytes -= n;
    const first = this.#chunks[0]!;
    const start = this.#offset;
    if (first.byteLength - start >= n) {
      const frame = first.subarray(start, start + n);
      this.#consumedTo(first, start + n);
      return frame;
    }
    // The frame spans chunks: copy its pieces, then drop the used-up chunks in one splice
    // (not one shift per chunk, which would be quadratic for a frame fed byte by byte).
    const frame = Buffer.allocUnsafe(n);
    let copied = 0;
    let index = 0;
    let offset = start;
    while (copied < n) {
      const chunk = this.#chunks[index]!;
      const take = Math.min(chunk.byteLength - offset, n - copied);
      frame.set(offset === 0 && take === chunk.byteLength ? chunk : chunk.subarray(offset, offset + take), copied);
      copied += take;
      offset += take;
      if (offset === chunk.byteLength) {
        index++;
        offset = 0;
      }
    }
    this.#chunks.splice(0, index);
    this.#offset = offset;
    return frame;
  }

  /** Moves to FAILED: releases the buffered chunks, remembers `err` and throws it. */
  #fail(err: SocketkitError): never {
    this.#state = FAILED;
    this.#failure = err;
    this.#chunks = [];
    this.#offset = 0;
    this.#bufferedBytes = 0;
    this.#frameLength = 0;
    throw err;
  }
}

/**
 * Decodes the frames of an async iterable of chunks — a `net.Socket`, a `Readable`, a web
 * `ReadableStream` — one at a time. Reading is pulled by the consumer, so a slow consumer
 * slows the source instead of filling memory. Leaving the loop early ends the iteration of the
 * source, which for a Node stream destroys it.
 *
 * @param source - The byte stream.
 * @param options - As for {@link FrameDecoder}.
 * @returns An async generator of the frames, in order.
 * @throws SocketkitError `ERR_FRAME_TOO_LARGE` for an oversized prefix, `ERR_FRAME_TRUNCATED`
 *   if the source ends inside a frame; errors of the source pass through.
 *
 * @example
 * ```ts
 * import { Readable } from 'node:stream';
 * import { decodeFrames, encodeFrame } from 'socketkit';
 *
 * const source = Readable.from([...encodeFrame(Buffer.from('a')), ...encodeFrame(Buffer.from('bc'))]);
 * for await (const frame of decodeFrames(source)) console.log(Buffer.from(frame).toString()); // a, bc
 * ```
 */
export async function* decodeFrames(source: AsyncIterable<Uint8Array>, options: FrameDecoderOptions = {}): AsyncGenerator<Uint8Array, void, undefined> {
  const decoder = new FrameDecoder(options);
  const frames: Uint8Array[] = [];
  for await (const chunk of source) {
    let failure: unknown;
    try {
      decoder.push(chunk, frames);
    } catch (err) {
      failure = err;
    }
    // Frames that preceded a bad prefix in the same chunk are delivered before its error.
    yield* frames;
    frames.length = 0;
    // eslint-disable-next-line @typescript-eslint/only-throw-error -- rethrows what the source threw, unchanged
    if (failure !== undefined) throw failure;
  }
  decoder.end();
}

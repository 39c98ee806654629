/**
 * Moving bytes from one stream to another with backpressure both ways, abortably, counting them.
 *
 * `pump()` is `Readable.pipe()` with what pipe() lacks: a promise that settles once, on the
 * source's end, on an error of either side, or on abort, with every listener it added removed.
 * When `dst.write()` returns false the source is paused until `'drain'` (a slow stdout pauses
 * the socket, so the peer's TCP window closes instead of our memory growing); when the source
 * pauses, nothing is read from it. It never ends `dst`: the caller decides (a half-close is a
 * decision, not a side effect).
 */
import type { Readable, Writable } from 'node:stream';
import { SocketkitError, toSocketkitError } from '../core/errors.js';

export interface PumpOptions {
  /** Stops pumping; the promise rejects with ERR_ABORTED and the source is left paused. */
  readonly signal?: AbortSignal;
  /** Called with every chunk before it is written (byte counters, a traffic dump). */
  readonly onChunk?: (chunk: Buffer) => void;
  /**
   * What a failure of `dst` (EPIPE: a child that stopped reading) does. 'fail' (default)
   * rejects; 'discard' keeps reading the source to its end and drops the bytes (counted in
   * `discarded`), so the peer is not left blocked.
   */
  readonly onDstError?: 'fail' | 'discard';
  /** Names the source in errors, e.g. "127.0.0.1:9800". */
  readonly what?: string;
  /**
   * A second output fed by `onChunk` (a traffic dump on stderr): while it is `full` the source
   * is paused too, so a slow terminal slows the relay instead of growing its buffer.
   */
  readonly hold?: Hold;
}

/** Something the pump waits for besides `dst`. */
export interface Hold {
  readonly full: boolean;
  /** Calls `fn` once, when `full` is false again. */
  whenDrained(fn: () => void): void;
}

export interface PumpResult {
  /** Bytes read from the source and written to `dst`. */
  readonly bytes: number;
  /** Bytes read after `dst` failed (with `onDstError: 'discard'`). */
  readonly discarded: number;
}

/** Pumps `src` into `dst` until `src` ends. See the module comment. */
export function pump(src: Readable, dst: Writable, options: PumpOptions = {}): Promise<PumpResult> {
  const { signal, onChunk, what, hold } = options;
  const discardOnError = options.onDstError === 'discard';
  return new Promise<PumpResult>((resolve, reject) => {
    let bytes = 0;
    let discarded = 0;
    let writing = true;
    let settled = false;
    const done = (err?: SocketkitError): void => {
      if (settled) return;
      settled = true;
      src.removeListener('data', onData);
      src.removeListener('end', onEnd);
      src.removeListener('error', onSrcError);
      src.removeListener('close', onSrcClose);
      dst.removeListener('drain', onDrain);
      dst.removeListener('error', onDstError);
      dst.removeListener('close', onDstClose);
      signal?.removeEventListener('abort', onAbort);
      src.pause();
      if (err) reject(err);
      else resolve({ bytes, discarded });
    };
    const stopWriting = (err: unknown): void => {
      if (!discardOnError) {
        done(toSocketkitError(err));
        return;
      }
      writing = false;
      dst.removeListener('drain', onDrain);
      dst.removeListener('close', onDstClose);
      src.resume();
    };
    const onData = (chunk: Buffer): void => {
      if (!writing) {
        discarded += chunk.length;
        return;
      }
      bytes += chunk.length;
      onChunk?.(chunk);
      if (!dst.write(chunk)) src.pause();
      if (hold?.full) {
        src.pause();
        hold.whenDrained(onHoldDrained);
      }
    };
    const onDrain = (): void => {
      if (writing && !hold?.full) src.resume();
    };
    const onHoldDrained = (): void => {
      if (!settled && writing && !dst.writableNeedDrain) src.resume();
    };
    const onEnd = (): void => done();
    const onSrcError = (err: Error): void => done(toSocketkitError(err, what));
    // Closed without 'end' (destroyed): an error came first, or the stream was torn down.
    const onSrcClose = (): void => {
      if (!src.readableEnded) done(new SocketkitError('ERR_CONN_CLOSED', `${what ?? 'the stream'} closed before its end`));
    };
    const onDstError = (err: Error): void => stopWriting(err);
    const onDstClose = (): void => {
      if (!dst.writableFinished) stopWriting(new SocketkitError('ERR_CONN_CLOSED', 'the destination closed while data was still coming'));
    };
    const onAbort = (): void => done(new SocketkitError('ERR_ABORTED', 'stopped'));
    if (signal?.aborted) {
      onAbort();
      return;
    }
    if (src.readableEnded) {
      done();
      return;
    }
    src.on('data', onData);
    src.once('end', onEnd);
    src.once('error', onSrcError);
    src.once('close', onSrcClose);
    dst.on('drain', onDrain);
    dst.on('error', onDstError);
    dst.once('close', onDstClose);
    signal?.addEventListener('abort', onAbort, { once: true });
    src.resume();
  });
}

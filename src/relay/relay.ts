/**
 * A connection bridged to a pair of local streams: what `socketkit connect` and `listen` do.
 *
 * Two pumps run at once, each with backpressure (see pump.ts): `input` → socket and
 * socket → `output`. Neither waits for the other, so a peer that echoes a large transfer can
 * never deadlock us (both pipes full, each side blocked writing: ncat --exec's hang).
 *
 * How it ends, the part nc variants disagree on:
 * - `input` ends: the socket is half-closed (FIN) and the peer's bytes are read to their end.
 *   With `halfClose: false` nothing is sent: the connection stays open until the peer closes.
 * - the peer half-closes: `output` is ended if `endOutput` (a child's stdin), and sending goes
 *   on until `input` ends, so an upload is never cut short by an early FIN. With
 *   `stopOnPeerEnd` (an interactive terminal, or `halfClose: false`) sending stops and the
 *   socket is closed instead.
 * - a reset, a timeout or an abort: the socket is destroyed and the relay rejects with a coded
 *   error that carries the bytes each way (`RelayError`).
 */
import type { Socket } from 'node:net';
import type { Readable, Writable } from 'node:stream';
import { once } from 'node:events';
import { SocketkitError, toSocketkitError } from '../core/errors.js';
import { pump, type Hold } from './pump.js';

export interface RelayOptions {
  /**
   * What is sent to the peer. `undefined`: nothing is sent by the relay (the caller writes to
   * the socket itself, as listen's stdin fan-out does, and ends it).
   */
  readonly input?: Readable;
  /** Where the peer's bytes go. */
  readonly output: Writable;
  /** End `output` when the peer half-closes (a child's stdin). Default false (stdout stays open). */
  readonly endOutput?: boolean;
  /** Half-close the socket when `input` ends. Default true. */
  readonly halfClose?: boolean;
  /** Stop sending and close once the peer has ended. Default: `!halfClose`. */
  readonly stopOnPeerEnd?: boolean;
  /** A failed `output` (a child that exited) makes the peer's further bytes be discarded, not an error. */
  readonly discardWhenOutputFails?: boolean;
  /** Close with ERR_TIMEOUT after this long without a byte either way, ms (0: never). */
  readonly idleTimeoutMs?: number;
  /** Stops the relay: the socket is destroyed and the relay rejects with ERR_ABORTED. */
  readonly signal?: AbortSignal;
  /** Names the peer in messages, e.g. "127.0.0.1:9800". */
  readonly peer: string;
  /** Every chunk sent to the peer (where a traffic dump plugs in). */
  readonly onSent?: (chunk: Buffer) => void;
  /** Every chunk received from the peer (where a traffic dump plugs in). */
  readonly onReceived?: (chunk: Buffer) => void;
  /** Where `onSent`/`onReceived` write, if they write (a dump): while it is full neither direction reads. */
  readonly hold?: Hold;
  /** Called once the peer's FIN has arrived (all its bytes are in `output`). */
  readonly onPeerEnd?: () => void;
}

/** How a relayed connection ended, and the bytes each way. */
export interface RelayResult {
  /** Bytes sent to the peer (by the relay; 0 when `input` is undefined). */
  readonly bytesSent: number;
  /** Bytes received from the peer and written to `output`. */
  readonly bytesReceived: number;
  /** Bytes received after `output` failed, dropped. */
  readonly bytesDiscarded: number;
  /** True when the peer half-closed (sent FIN) before the end. */
  readonly peerEnded: boolean;
  /** True when we half-closed (sent FIN). */
  readonly sentEnd: boolean;
  /** Which side ended first: 'peer' (its FIN came first), 'local' (ours), or 'both' at once. */
  readonly firstEnd: 'peer' | 'local' | 'none';
}

/** A relay failure: the coded error, with how far the relay got. */
export class RelayError extends SocketkitError {
  readonly result: RelayResult;
  constructor(error: SocketkitError, result: RelayResult) {
    super(error.code, error.message, { cause: error, exitCode: error.exitCode });
    this.name = 'RelayError';
    this.result = result;
  }
}

/** Relays `socket` to `options.input`/`options.output` until both directions have ended. See the module comment. */
export async function relay(socket: Socket, options: RelayOptions): Promise<RelayResult> {
  const halfClose = options.halfClose ?? true;
  const stopOnPeerEnd = options.stopOnPeerEnd ?? !halfClose;
  const inner = new AbortController();
  const signal = options.signal ? AbortSignal.any([options.signal, inner.signal]) : inner.signal;
  // Sending alone can be stopped (the peer ended and we are interactive) without stopping receiving.
  const sendStop = new AbortController();
  const sendSignal = AbortSignal.any([signal, sendStop.signal]);
  let bytesSent = 0;
  let bytesReceived = 0;
  let bytesDiscarded = 0;
  let peerEnded = false;
  let sentEnd = false;
  let firstEnd: RelayResult['firstEnd'] = 'none';
  let failure: SocketkitError | undefined;
  const result = (): RelayResult => ({ bytesSent, bytesReceived, bytesDiscarded, peerEnded, sentEnd, firstEnd });
  const fail = (err: unknown): void => {
    failure ??= toSocketkitError(err, options.peer);
    inner.abort();
    socket.destroy();
  };
  // Errors reach the pumps; this listener only keeps a late one from crashing the process.
  const onSocketError = (err: Error): void => fail(err);
  socket.on('error', onSocketError);
  const idle = options.idleTimeoutMs ?? 0;
  const onTimeout = (): void => fail(new SocketkitError('ERR_TIMEOUT', `no byte either way for ${idle / 1000} s with ${options.peer}`));
  if (idle > 0) {
    socket.setTimeout(idle);
    socket.on('timeout', onTimeout);
  }
  // Ended by someone else (listen's stdin fan-out), or by us below: either way our FIN is out.
  const onFinish = (): void => {
    sentEnd = true;
    if (firstEnd === 'none') firstEnd = 'local';
  };
  if (socket.writableEnded) onFinish();
  else socket.once('finish', onFinish);
  const endSocket = (): void => {
    if (!socket.writableEnded && !socket.destroyed) {
      sentEnd = true;
      if (firstEnd === 'none') firstEnd = 'local';
      socket.end();
    }
  };

  const send = async (): Promise<void> => {
    if (!options.input) return;
    try {
      await pump(options.input, socket, {
        signal: sendSignal,
        what: 'input',
        ...(options.hold ? { hold: options.hold } : {}),
        onChunk: (c) => {
          bytesSent += c.length;
          options.onSent?.(c);
        },
      });
    } catch (err) {
      // Sending was stopped on purpose (the peer ended while we are interactive): not a failure.
      if (sendStop.signal.aborted && !signal.aborted) return;
      throw err;
    }
    if (halfClose) endSocket();
  };

  const receive = async (): Promise<void> => {
    const r = await pump(socket, options.output, {
      signal,
      what: options.peer,
      onChunk: (c) => {
        bytesReceived += c.length;
        options.onReceived?.(c);
      },
      onDstError: options.discardWhenOutputFails ? 'discard' : 'fail',
      ...(options.hold ? { hold: options.hold } : {}),
    });
    bytesDiscarded = r.discarded;
    peerEnded = true;
    if (firstEnd === 'none') firstEnd = 'peer';
    options.onPeerEnd?.();
    if (options.endOutput && !options.output.writableEnded && !options.output.destroyed) options.output.end();
    if (stopOnPeerEnd) {
      sendStop.abort();
      endSocket();
    }
  };

  const guard = (p: Promise<void>): Promise<void> => p.catch(fail);
  try {
    await Promise.all([guard(send()), guard(receive())]);
    if (!failure) {
      if (!options.input && !socket.writableEnded && stopOnPeerEnd) endSocket();
      // Both directions are done once our FIN is flushed (or the caller's, with no input).
      if (!socket.destroyed) await once(socket, 'close', { signal });
    }
  } catch (err) {
    fail(err);
  } finally {
    socket.removeListener('timeout', onTimeout);
    socket.removeListener('finish', onFinish);
    // A late error after the end must not crash the process.
    socket.removeListener('error', onSocketError);
    socket.on('error', () => undefined);
    if (failure) socket.destroy();
  }
  if (failure) throw new RelayError(failure, result());
  return result();
}

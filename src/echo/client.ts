/**
 * The echo client: sends a stream of bytes, half-closes, reads until every byte has come back
 * and the server has closed, and checks, as it goes, that the echo is identical. The
 * half-close waits (briefly) for the echo to complete: see `halfCloseWaitMs`.
 *
 * Memory is bounded whatever the size of the input: a sent chunk is kept only until its echo
 * has been compared, and the writer waits for 'drain', so at most the socket buffers' worth is
 * held. A reply that differs, is short, or is longer than what was sent is a mismatch.
 *
 * Once the exchange has failed (mismatch, timeout, connection error, abort) the client stops
 * waiting for more input and abandons the input iterator, so a terminal or a slow pipe on stdin
 * can never keep a failed echo hanging.
 */
import type { Socket } from 'node:net';
import { connect, type ConnectOptions, type ConnectTransport } from '../net/connect.js';
import { formatEndpoint, type Endpoint } from '../net/endpoint.js';
import { writeWithBackpressure } from '../net/write.js';
import { Fifo } from '../core/fifo.js';
import { EXIT_MISMATCH, SocketkitError, toSocketkitError, type ErrorHint } from '../core/errors.js';

/** How long (ms) the client waits, after its input has ended, for the echo before half-closing. */
export const DEFAULT_HALF_CLOSE_WAIT_MS = 250;

/** `signal` covers the whole exchange, not only the connect: abort fails it with ERR_ABORTED. */
export interface EchoClientOptions extends ConnectOptions {
  /** No reply for this long (ms) while bytes are outstanding fails with ERR_TIMEOUT. Default 10 s. */
  readonly idleTimeoutMs?: number;
  /**
   * Once the input has ended, wait up to this long (ms; every echoed chunk restarts the wait)
   * for the echo to complete before half-closing. Some servers stop forwarding as soon as they
   * see the client's FIN and drop the echo still in flight (`ncat -l --exec /bin/cat` before
   * Ncat 7.96, nmap/nmap#962); a server that echoes only after the FIN gets it after this wait.
   * 0 half-closes as soon as the input ends. Default {@link DEFAULT_HALF_CLOSE_WAIT_MS}.
   */
  readonly halfCloseWaitMs?: number;
  /** Receives each echoed chunk (to print it); awaiting it applies backpressure to the socket. */
  readonly onEcho?: (chunk: Buffer) => void | Promise<void>;
  readonly transport?: ConnectTransport;
}

export interface EchoResult {
  readonly bytesSent: number;
  readonly bytesReceived: number;
  /** Milliseconds to establish the connection. */
  readonly connectMs: number;
  /** Milliseconds from the first byte sent to the first byte echoed (NaN when nothing was sent). */
  readonly firstByteMs: number;
  /** Milliseconds from connected to the last byte echoed. */
  readonly totalMs: number;
}

/** Compares echoed bytes against what was sent, chunk by chunk, releasing what matched. */
class EchoVerifier {
  readonly #pending = new Fifo<Buffer>();
  #offset = 0; // into pending[0]
  pendingBytes = 0;
  matched = 0;

  sent(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.#pending.push(chunk);
    this.pendingBytes += chunk.length;
  }

  /** Returns the absolute offset of the first differing byte, or -1 when all of `chunk` matched. */
  received(chunk: Buffer): number {
    let at = 0;
    while (at < chunk.length) {
      const head = this.#pending.peek();
      if (head === undefined) return this.matched; // more came back than was sent
      const n = Math.min(head.length - this.#offset, chunk.length - at);
      if (head.compare(chunk, at, at + n, this.#offset, this.#offset + n) !== 0) {
        for (let i = 0; i < n; i++) if (head[this.#offset + i] !== chunk[at + i]) return this.matched + i;
      }
      this.matched += n;
      this.pendingBytes -= n;
      at += n;
      this.#offset += n;
      if (this.#offset === head.length) {
        this.#pending.shift();
        this.#offset = 0;
      }
    }
    return -1;
  }
}

function mismatch(message: string, hint?: ErrorHint): SocketkitError {
  return new SocketkitError('ERR_ECHO_MISMATCH', message, { exitCode: EXIT_MISMATCH, ...(hint ? { hint } : {}) });
}

/**
 * Sends every chunk of `input` to the echo server at `ep`, half-closes, and verifies the echo.
 * Rejects with ERR_ECHO_MISMATCH (exit 1) when the echo differs, or a connection error.
 */
export async function echoStream(ep: Endpoint, input: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, options: EchoClientOptions = {}): Promise<EchoResult> {
  const what = formatEndpoint(ep);
  const t0 = performance.now();
  const socket = await connect(ep, options, options.transport);
  const tConnected = performance.now();
  const verifier = new EchoVerifier();
  let bytesSent = 0;
  let bytesReceived = 0;
  let tFirstSent = NaN;
  let tFirstEcho = NaN;
  let inputDone = false;
  const idle = options.idleTimeoutMs ?? 10_000;
  let failure: SocketkitError | undefined;
  // Set while the writer waits for input: a failure wakes it, so a terminal or a slow pipe on
  // stdin cannot keep a failed exchange waiting. (Not Promise.race against one long-lived
  // promise: every race would leave a reaction on it, memory growing with the input.)
  let wakeWriter: (() => void) | undefined;
  const fail = (err: SocketkitError): void => {
    failure ??= err;
    socket.destroy();
    wakeWriter?.();
  };
  const halfCloseWait = options.halfCloseWaitMs ?? DEFAULT_HALF_CLOSE_WAIT_MS;
  let halfClosed = false;
  let halfCloseTimer: NodeJS.Timeout | undefined;
  const halfClose = (): void => {
    if (halfClosed || failure) return;
    halfClosed = true;
    clearTimeout(halfCloseTimer);
    socket.end();
  };
  // Runs when the input ends and after each echoed chunk from then on: half-close once every
  // byte has come back, or when the echo has stalled for `halfCloseWait`.
  const maybeHalfClose = (): void => {
    if (!inputDone || halfClosed) return;
    if (verifier.pendingBytes === 0 || halfCloseWait <= 0) return halfClose();
    if (halfCloseTimer === undefined) halfCloseTimer = setTimeout(halfClose, halfCloseWait);
    else halfCloseTimer.refresh();
  };
  const onAbort = (): void => fail(new SocketkitError('ERR_ABORTED', `echo to ${what} aborted`));
  if (options.signal?.aborted) onAbort();
  else options.signal?.addEventListener('abort', onAbort, { once: true });
  // A plaintext client of a TLS server sees exactly this: the server reads a few bytes that are
  // not a ClientHello and closes without a word.
  const short = (): SocketkitError =>
    bytesReceived === 0 && options.transport === undefined
      ? mismatch(`${what} closed the connection without echoing a byte of ${bytesSent} (is it a TLS server?)`, 'maybe-tls-server')
      : mismatch(`${what} closed the connection after echoing ${bytesReceived} of ${bytesSent} bytes`);
  if (idle > 0) {
    socket.setTimeout(idle, () => {
      // Only an echo we are waiting for can time out; slow input (a person typing) cannot.
      if (verifier.pendingBytes > 0 || inputDone) {
        fail(new SocketkitError('ERR_TIMEOUT', `no echo from ${what} for ${idle / 1000} s (${verifier.pendingBytes} bytes outstanding)`));
      }
    });
  }
  socket.on('error', (err) => fail(toSocketkitError(err, what)));

  const writer = (async () => {
    const it = Symbol.asyncIterator in input ? input[Symbol.asyncIterator]() : input[Symbol.iterator]();
    try {
      for (;;) {
        const next = await new Promise<IteratorResult<Uint8Array> | undefined>((resolve, reject) => {
          if (failure) return resolve(undefined);
          wakeWriter = () => resolve(undefined);
          Promise.resolve(it.next()).then(resolve, reject);
        });
        wakeWriter = undefined;
        if (next === undefined || failure) return;
        if (next.done === true) break;
        const chunk: Uint8Array = next.value;
        const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
        if (buf.length === 0) continue;
        if (Number.isNaN(tFirstSent)) tFirstSent = performance.now();
        verifier.sent(buf);
        bytesSent += buf.length;
        await writeWithBackpressure(socket, buf);
      }
    } finally {
      // Abandoning the input early: let it release what it holds (no wait: it may be mid-read).
      if (failure) void Promise.resolve(it.return?.()).catch(() => undefined);
    }
    inputDone = true;
    maybeHalfClose();
  })().catch((err: unknown) => fail(toSocketkitError(err, what)));

  const reader = (async () => {
    for await (const chunk of socket as AsyncIterable<Buffer>) {
      if (Number.isNaN(tFirstEcho)) tFirstEcho = performance.now();
      const bad = verifier.received(chunk);
      bytesReceived += chunk.length;
      if (bad >= 0) {
        fail(
          bad >= bytesSent && verifier.pendingBytes === 0
            ? mismatch(`${what} sent back more than was sent (${bytesReceived} bytes so far, ${bytesSent} sent)`)
            : mismatch(`echo from ${what} differs from what was sent at byte ${bad}`),
        );
        return;
      }
      maybeHalfClose();
      await options.onEcho?.(chunk);
    }
    // The server closed before our input ended: with bytes still owed the echo is short; if not,
    // nothing more can be echoed either, so report it now rather than when more input comes.
    if (!inputDone) {
      fail(verifier.pendingBytes > 0 ? short() : new SocketkitError('ERR_CONN_CLOSED', `${what} closed the connection before the input ended`));
    }
  })().catch((err: unknown) => fail(toSocketkitError(err, what)));

  try {
    await Promise.all([writer, reader]);
  } finally {
    clearTimeout(halfCloseTimer);
    options.signal?.removeEventListener('abort', onAbort);
    socket.destroy();
  }
  if (failure) throw failure;
  if (verifier.pendingBytes > 0 || bytesReceived < bytesSent) throw short();
  const tEnd = performance.now();
  return {
    bytesSent,
    bytesReceived,
    connectMs: tConnected - t0,
    firstByteMs: tFirstEcho - tFirstSent,
    totalMs: tEnd - tConnected,
  };
}

/** Echoes one message and returns it with the timings. */
export async function echoMessage(ep: Endpoint, message: Uint8Array, options: EchoClientOptions = {}): Promise<EchoResult & { readonly reply: Buffer }> {
  const parts: Buffer[] = [];
  const r = await echoStream(ep, [message], {
    ...options,
    onEcho: (c) => {
      parts.push(c);
    },
  });
  return { ...r, reply: Buffer.concat(parts) };
}

export type { Socket };

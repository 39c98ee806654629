/**
 * Framed echo: whole messages go to the server and come back whole (`--framed`).
 * The server side is `echoMessages` (src/message); this is the client that checks each reply.
 */
import { connectMessages, type ConnectMessagesOptions } from '../message/index.js';
import { formatEndpoint, type Endpoint } from '../net/endpoint.js';
import { EXIT_MISMATCH, SocketkitError } from '../core/errors.js';
import { Fifo } from '../core/fifo.js';

export interface FramedEchoOptions extends ConnectMessagesOptions {
  /** No reply for this long (ms) while messages are outstanding fails with ERR_TIMEOUT. Default 10 s. */
  readonly idleTimeoutMs?: number;
  /** Receives each reply, in order; awaiting it applies backpressure. */
  readonly onReply?: (message: Uint8Array) => void | Promise<void>;
}

export interface FramedEchoResult {
  readonly messages: number;
  readonly bytes: number;
  readonly connectMs: number;
  /** First message sent to first reply, ms (NaN when nothing was sent). */
  readonly firstReplyMs: number;
  readonly totalMs: number;
}

/** Sends each message as one frame, half-closes, and checks every reply is the same message. */
export async function echoFramed(
  ep: Endpoint,
  messages: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  options: FramedEchoOptions = {},
): Promise<FramedEchoResult> {
  const what = formatEndpoint(ep);
  const t0 = performance.now();
  const conn = await connectMessages(ep, options);
  const tConnected = performance.now();
  const pending = new Fifo<Uint8Array>();
  let sent = 0;
  let received = 0;
  let bytes = 0;
  let tFirstSent = NaN;
  let tFirstReply = NaN;
  let inputDone = false;
  let failure: SocketkitError | undefined;
  const fail = (err: unknown): void => {
    failure ??= err instanceof SocketkitError ? err : new SocketkitError('ERR_CONN_CLOSED', `${what}: ${String(err)}`);
    conn.close();
  };
  const idle = options.idleTimeoutMs ?? 10_000;
  if (idle > 0) {
    conn.socket.setTimeout(idle, () => {
      if (pending.length > 0 || inputDone) fail(new SocketkitError('ERR_TIMEOUT', `no reply from ${what} for ${idle / 1000} s (${pending.length} messages outstanding)`));
    });
  }
  // The signal covers the whole exchange, not only the connect.
  const onAbort = (): void => fail(new SocketkitError('ERR_ABORTED', `echo to ${what} aborted`));
  if (options.signal?.aborted) onAbort();
  else options.signal?.addEventListener('abort', onAbort, { once: true });
  const writer = (async () => {
    for await (const m of messages) {
      if (failure) return;
      if (Number.isNaN(tFirstSent)) tFirstSent = performance.now();
      pending.push(m);
      sent++;
      await conn.send(m);
    }
    inputDone = true;
    if (!failure) await conn.end();
  })().catch(fail);
  const reader = (async () => {
    for await (const reply of conn) {
      if (Number.isNaN(tFirstReply)) tFirstReply = performance.now();
      const expected = pending.shift();
      if (expected === undefined) throw new SocketkitError('ERR_ECHO_MISMATCH', `${what} sent a message that was never sent to it`, { exitCode: EXIT_MISMATCH });
      if (Buffer.compare(expected, reply) !== 0) {
        throw new SocketkitError('ERR_ECHO_MISMATCH', `reply ${received + 1} from ${what} differs from message ${received + 1} (${reply.byteLength} bytes, expected ${expected.byteLength})`, {
          exitCode: EXIT_MISMATCH,
        });
      }
      received++;
      bytes += reply.byteLength;
      await options.onReply?.(reply);
    }
  })().catch(fail);
  await Promise.all([writer, reader]);
  options.signal?.removeEventListener('abort', onAbort);
  conn.close();
  if (failure) throw failure;
  if (received < sent) {
    throw new SocketkitError('ERR_ECHO_MISMATCH', `${what} closed the connection after ${received} of ${sent} replies`, { exitCode: EXIT_MISMATCH });
  }
  return { messages: received, bytes, connectMs: tConnected - t0, firstReplyMs: tFirstReply - tFirstSent, totalMs: performance.now() - tConnected };
}

/**
 * The UDP echo client: one datagram out, one back, checked.
 *
 * UDP may lose the datagram or its reply, so the client waits `timeoutMs` per attempt and sends
 * the same datagram again up to `retries` times. The reply must be byte-identical: a shorter
 * reply that matches what was sent as far as it goes is reported as truncated (an echo whose
 * buffer was too small cuts datagrams silently), anything else that differs as a mismatch. A
 * datagram over the protocol maximum is refused before anything is sent, never cut.
 */
import { performance } from 'node:perf_hooks';
import { EXIT_MISMATCH, SocketkitError, type ErrorCode } from '../core/errors.js';
import { formatEndpoint, type Endpoint } from '../net/endpoint.js';
import { closeQuietly, connectUdp, datagramTooLarge, requireInet, toUdpError } from './socket.js';

/** Default time to wait for each reply, ms. */
export const DEFAULT_UDP_ECHO_TIMEOUT_MS = 10_000;

export interface UdpEchoOptions {
  /** How long to wait for the reply to each attempt, ms. Default 10 s. */
  readonly timeoutMs?: number;
  /** How many times to send again when no reply comes in time. Default 0. */
  readonly retries?: number;
  readonly signal?: AbortSignal;
}

export interface UdpEchoResult {
  readonly bytesSent: number;
  readonly bytesReceived: number;
  /** The reply, identical to what was sent. */
  readonly reply: Buffer;
  /** Datagrams sent (1 + retries used). */
  readonly attempts: number;
  /** Milliseconds from the last send to the reply. */
  readonly rttMs: number;
  /** The server's resolved address, as `ADDR:PORT`. */
  readonly peer: string;
}

function mismatch(code: ErrorCode, message: string): SocketkitError {
  return new SocketkitError(code, message, { exitCode: EXIT_MISMATCH });
}

/**
 * Sends `message` as one datagram to the echo at `ep` and waits for it to come back.
 *
 * Rejects with ERR_DATAGRAM_TOO_LARGE (nothing sent), ERR_UDP_UNIX_UNSUPPORTED, ERR_TIMEOUT
 * (no reply after every attempt), ERR_CONN_REFUSED (ICMP port unreachable), and, with exit
 * status 1, ERR_ECHO_TRUNCATED (a shorter reply) or ERR_ECHO_MISMATCH (different bytes).
 */
export async function udpEcho(ep: Endpoint, message: Uint8Array, options: UdpEchoOptions = {}): Promise<UdpEchoResult> {
  const inet = requireInet(ep);
  const what = formatEndpoint(inet);
  const timeoutMs = options.timeoutMs ?? DEFAULT_UDP_ECHO_TIMEOUT_MS;
  const retries = options.retries ?? 0;
  if (!Number.isInteger(retries) || retries < 0) throw new RangeError(`retries ${retries} is not a whole number`);
  const { socket, remote, maxPayload } = await connectUdp(inet, options.signal);
  const payload = Buffer.isBuffer(message) ? message : Buffer.from(message.buffer, message.byteOffset, message.byteLength);
  try {
    if (payload.length > maxPayload) throw datagramTooLarge(payload.length, remote.family, what);
    return await new Promise<UdpEchoResult>((resolve, reject) => {
      let attempts = 0;
      let sentAt = 0;
      let timer: NodeJS.Timeout | undefined;
      let settled = false;
      const done = (err: SocketkitError | undefined, result?: UdpEchoResult): void => {
        if (settled) return;
        settled = true;
        if (timer !== undefined) clearTimeout(timer);
        socket.removeListener('message', onMessage);
        socket.removeListener('error', onError);
        options.signal?.removeEventListener('abort', onAbort);
        if (err) reject(err);
        else resolve(result!);
      };
      const send = (): void => {
        attempts++;
        sentAt = performance.now();
        socket.send(payload, (err) => {
          if (err) done(toUdpError(err, what));
        });
        if (timeoutMs > 0) {
          timer = setTimeout(() => {
            if (attempts <= retries) send();
            else done(new SocketkitError('ERR_TIMEOUT', `no reply from UDP ${what} after ${attempts} datagram(s), ${timeoutMs / 1000} s each`));
          }, timeoutMs);
        }
      };
      const onMessage = (reply: Buffer): void => {
        const rttMs = performance.now() - sentAt;
        if (reply.equals(payload)) {
          done(undefined, { bytesSent: payload.length, bytesReceived: reply.length, reply, attempts, rttMs, peer: formatEndpoint({ kind: 'inet', host: remote.address, port: remote.port }) });
        } else if (reply.length < payload.length && payload.subarray(0, reply.length).equals(reply)) {
          done(mismatch('ERR_ECHO_TRUNCATED', `reply from UDP ${what} was truncated: ${reply.length} of ${payload.length} bytes came back`));
        } else if (reply.length > payload.length) {
          done(mismatch('ERR_ECHO_MISMATCH', `reply from UDP ${what} is longer than what was sent (${reply.length} bytes, ${payload.length} sent)`));
        } else {
          let at = 0;
          while (at < reply.length && reply[at] === payload[at]) at++;
          done(mismatch('ERR_ECHO_MISMATCH', `reply from UDP ${what} differs from what was sent at byte ${at} (${reply.length} bytes, ${payload.length} sent)`));
        }
      };
      const onError = (err: Error): void => done(toUdpError(err, what));
      const onAbort = (): void => done(new SocketkitError('ERR_ABORTED', `UDP echo to ${what} aborted`));
      socket.on('message', onMessage);
      socket.on('error', onError);
      if (options.signal?.aborted) return onAbort();
      options.signal?.addEventListener('abort', onAbort, { once: true });
      send();
    });
  } finally {
    await closeQuietly(socket);
  }
}

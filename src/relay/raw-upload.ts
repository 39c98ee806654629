/**
 * Raw upload, the other direction of a raw download: one file's bytes to any listener
 * (`nc -l > file`, `socketkit listen > file`), then our FIN, then a wait for the peer's close.
 *
 * The bytes go with sendfile(2) when the native helper is built and the socket is plain (the
 * transfer's `sendRawFile`), otherwise through reads and writes. What makes the ending honest is
 * the wait after our FIN, because TCP tells a sender more than "written" only there:
 * - the peer's FIN arrives after ours: it read everything we sent and closed (a socket closed
 *   with unread bytes sends a reset, not a FIN): `acknowledged`;
 * - a reset arrives instead: it closed without reading everything (`ERR_CONN_RESET`);
 * - its FIN came before ours (it half-closed at once, as `nc -N` and `get --raw` do): its FIN
 *   says nothing about our bytes, and nothing after it will: `peer-ended-first`;
 * - nothing within `closeTimeoutMs`: the peer still holds the connection open, and whether it
 *   read everything is not known: `unanswered` (the connection is then closed).
 */
import type { Socket } from 'node:net';
import { SocketkitError, toSocketkitError } from '../core/errors.js';
import { connect, type ConnectTransport } from '../net/connect.js';
import { formatEndpoint, type Endpoint } from '../net/endpoint.js';
import { endedByReset } from '../net/socket-state.js';
import { checkRawSource, sendRawFile } from '../transfer/raw.js';

/** How long {@link uploadRaw} waits for the peer's close after our FIN, ms. */
export const DEFAULT_RAW_CLOSE_WAIT_MS = 10_000;

/** What the peer's side of the ending said. See the module comment. */
export type RawCloseAck = 'acknowledged' | 'peer-ended-first' | 'unanswered';

export interface RawUploadOptions {
  readonly connectTimeoutMs?: number;
  /** No bytes accepted by the kernel for this long (ms) fails with `ERR_STALLED`; 0 disables. */
  readonly stallTimeoutMs?: number;
  /** After our FIN, how long to wait for the peer's close, ms (default {@link DEFAULT_RAW_CLOSE_WAIT_MS}). */
  readonly closeTimeoutMs?: number;
  readonly signal?: AbortSignal;
  /** TLS (then sendfile is not used). */
  readonly transport?: ConnectTransport;
  /** Use sendfile(2) when it can be used (default true). */
  readonly zeroCopy?: boolean;
  readonly onProgress?: (bytes: number, size: number) => void;
}

export interface RawUploadResult {
  /** Bytes of the file the kernel accepted, all of it on success. */
  readonly bytes: number;
  /** Seconds from the connect to the end of the wait for the peer's close. */
  readonly seconds: number;
  readonly zeroCopy: boolean;
  readonly close: RawCloseAck;
  /** Bytes the peer sent meanwhile (read and dropped). */
  readonly bytesReceived: number;
  readonly peer: string;
}

/** Why the wait after our FIN ended. */
type PeerSide = { readonly kind: 'fin'; readonly first: boolean } | { readonly kind: 'reset' } | { readonly kind: 'error'; readonly error: unknown } | { readonly kind: 'closed' } | { readonly kind: 'timeout' };

/** Uploads the file at `path` raw to `ep`. See the module comment. */
export async function uploadRaw(ep: Endpoint, path: string, options: RawUploadOptions = {}): Promise<RawUploadResult> {
  const peer = formatEndpoint(ep);
  await checkRawSource(path);
  const t0 = performance.now();
  const socket: Socket = await connect(
    ep,
    { ...(options.signal ? { signal: options.signal } : {}), ...(options.connectTimeoutMs !== undefined ? { timeoutMs: options.connectTimeoutMs } : {}) },
    ...(options.transport ? [options.transport] : []),
  );
  // Every way the peer's side can end is recorded from the start: its FIN may come before ours.
  let ourEnd = false;
  let side: PeerSide | undefined;
  let settle: ((s: PeerSide) => void) | undefined;
  const note = (s: PeerSide): void => {
    side ??= s;
    settle?.(side);
  };
  socket.once('finish', () => {
    ourEnd = true;
  });
  socket.once('end', () => note(endedByReset(socket) ? { kind: 'reset' } : { kind: 'fin', first: !ourEnd }));
  socket.on('error', (error) => note((error as { code?: string }).code === 'ECONNRESET' ? { kind: 'reset' } : { kind: 'error', error }));
  socket.once('close', () => note({ kind: 'closed' }));
  const onAbort = (): void => {
    socket.destroy();
  };
  options.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const sent = await sendRawFile(socket, path, {
      peer,
      ...(options.stallTimeoutMs !== undefined ? { stallTimeoutMs: options.stallTimeoutMs } : {}),
      ...(options.zeroCopy !== undefined ? { zeroCopy: options.zeroCopy } : {}),
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
    }).catch((err: unknown) => {
      if (options.signal?.aborted) throw new SocketkitError('ERR_ABORTED', `upload to ${peer} stopped`, { cause: err });
      throw err;
    });
    const bytes = sent.bytes;
    const waitMs = options.closeTimeoutMs ?? DEFAULT_RAW_CLOSE_WAIT_MS;
    const ended = await new Promise<PeerSide>((resolve) => {
      if (side) {
        resolve(side);
        return;
      }
      const timer = setTimeout(() => resolve({ kind: 'timeout' }), waitMs);
      settle = (s) => {
        clearTimeout(timer);
        resolve(s);
      };
    });
    if (options.signal?.aborted) throw new SocketkitError('ERR_ABORTED', `upload to ${peer} stopped after ${bytes} bytes`);
    const result = (close: RawCloseAck): RawUploadResult => ({ bytes, seconds: (performance.now() - t0) / 1000, zeroCopy: sent.zeroCopy === true, close, bytesReceived: socket.bytesRead, peer });
    switch (ended.kind) {
      case 'fin':
        return result(ended.first ? 'peer-ended-first' : 'acknowledged');
      case 'timeout':
        return result('unanswered');
      case 'reset':
        throw new SocketkitError('ERR_CONN_RESET', `${peer} reset the connection after all ${bytes} bytes were written: it closed without reading everything`);
      case 'error':
        throw toSocketkitError(ended.error, peer);
    }
    // Closed without a FIN or a reset seen after ours: only when the peer's FIN came first.
    return result('peer-ended-first');
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
    socket.destroy();
  }
}

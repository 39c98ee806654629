/**
 * The throughput test's native modules (`native/perf_io.c`, `native/tcp_info.c`), each absent
 * when the native helper is not built (or is an older build): the test then reads with Node's
 * own reads and reports no TCP_INFO figures.
 */
import { nativeHelper, nativeModule } from '../native/helper.js';
import type { Socket } from 'node:net';
import { socketFd } from '../net/socket-state.js';

/** A TCP socket's kernel statistics (Linux TCP_INFO; see native/tcp_info.c). */
export interface TcpInfo {
  /** Smoothed round-trip time, µs. */
  readonly rttUs: number;
  readonly rttVarUs: number;
  /** Segments retransmitted and not yet acknowledged, now. */
  readonly retrans: number;
  /** Segments retransmitted over the connection's life. */
  readonly totalRetrans: number;
  readonly lost: number;
  /** Congestion window, segments. */
  readonly cwnd: number;
  readonly sndMss: number;
  readonly pmtu: number;
  readonly unacked: number;
  readonly state: number;
}

interface TcpInfoModule {
  tcpInfo(fd: number): TcpInfo | number;
}

interface PerfStreamModule {
  perfStreamStart(mode: number, fd: number, fileFd: number, fileSize: number, length: number, maxBytes: number, callback: (errno: number, bytes: number, eof: boolean, done: boolean) => void): number;
  perfStreamBytes(id: number): number;
  perfStreamStop(id: number): void;
}

/** TCP_INFO of a plain TCP socket, or undefined (no helper, TLS, a Unix socket, closed). */
export function tcpInfo(socket: Socket): TcpInfo | undefined {
  const m = nativeModule<TcpInfoModule>(['tcpInfo']);
  const fd = socketFd(socket);
  if (m === undefined || fd === undefined) return undefined;
  const r = m.tcpInfo(fd);
  return typeof r === 'number' ? undefined : r;
}

/** Whether TCP_INFO figures are available in this process (the helper with tcp_info.c). */
export function tcpInfoAvailable(): boolean {
  return nativeModule<TcpInfoModule>(['tcpInfo']) !== undefined;
}

/** What a native stream's thread does (native/perf_stream.c). */
export type NativeStreamLoop =
  | { readonly kind: 'receive' }
  | { readonly kind: 'sendfile'; readonly file: number; readonly fileSize: number }
  | { readonly kind: 'send'; readonly length: number };

/** How a native stream ended: `stopped` after stop(), else at the peer's end (`eof`) or an error (`errno`). */
export interface NativeStreamEnd {
  readonly errno: number;
  readonly bytes: number;
  readonly eof: boolean;
  readonly stopped: boolean;
}

const LOOP_MODE = { receive: 0, sendfile: 1, send: 2 } as const;

/**
 * One TCP stream's loop on a thread of its own (native/perf_stream.c), on a private duplicate of
 * the socket's descriptor, closed when the loop has ended. Progress is read with bytes().
 */
export class NativeStream {
  readonly #m: PerfStreamModule;
  #id = -1;
  #stopped = false;
  #final: NativeStreamEnd | undefined;
  #settle: ((end: NativeStreamEnd) => void) | undefined;
  /** Settles (never rejects) when the loop is over and its descriptor closed. */
  readonly ended: Promise<NativeStreamEnd>;

  private constructor(m: PerfStreamModule) {
    this.#m = m;
    this.ended = new Promise<NativeStreamEnd>((resolve) => (this.#settle = resolve));
  }

  /**
   * Starts `loop` on `socket` (plain TCP or Unix, with a descriptor), sending at most `maxBytes`
   * (0: no limit); `onFirstBytes` runs once when a receiver's first bytes arrive. Undefined
   * without the helper, without a descriptor, or when no thread could be started: the caller
   * then moves the bytes with Node.
   */
  static start(socket: Socket, loop: NativeStreamLoop, maxBytes: number, onFirstBytes?: () => void): NativeStream | undefined {
    const m = nativeModule<PerfStreamModule>(['perfStreamStart', 'perfStreamBytes', 'perfStreamStop']);
    const h = nativeHelper();
    const fd = socketFd(socket);
    if (m === undefined || h === undefined || fd === undefined) return undefined;
    const own = h.dup(fd);
    if (own < 0) return undefined;
    const stream = new NativeStream(m);
    const onCall = (errno: number, bytes: number, eof: boolean, done: boolean): void => {
      if (!done) {
        onFirstBytes?.();
        return;
      }
      // The slot is free from here on: nothing may name its id again. The helper closed the
      // duplicate descriptor when the loop ended (it owns it once the start succeeded).
      stream.#final = { errno, bytes, eof, stopped: stream.#stopped && errno === 0 && !eof };
      stream.#settle?.(stream.#final);
    };
    const file = loop.kind === 'sendfile' ? loop : undefined;
    try {
      stream.#id = m.perfStreamStart(LOOP_MODE[loop.kind], own, file?.file ?? 0, file?.fileSize ?? 0, loop.kind === 'send' ? loop.length : 0, maxBytes, onCall);
    } catch (err) {
      // Arguments outside the helper's checks throw: the duplicate descriptor must not outlive that.
      h.close(own);
      throw err;
    }
    if (stream.#id < 0) {
      h.close(own);
      return undefined;
    }
    return stream;
  }

  /** Bytes the loop moved so far. */
  bytes(): number {
    return this.#final?.bytes ?? this.#m.perfStreamBytes(this.#id);
  }

  /** Ends the loop at its next step (`ended` then says stopped); nothing once it has ended. */
  stop(): void {
    if (this.#final !== undefined) return;
    this.#stopped = true;
    this.#m.perfStreamStop(this.#id);
  }
}

/** Whether TCP streams run on native threads in this process (the helper with perf_stream.c). */
export function nativeStreamsAvailable(): boolean {
  return nativeHelper() !== undefined && nativeModule<PerfStreamModule>(['perfStreamStart', 'perfStreamBytes', 'perfStreamStop']) !== undefined;
}

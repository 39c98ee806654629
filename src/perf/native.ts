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

interface PerfIoModule {
  recvDrop(fd: number, maxBytes: number, waitMs: number, callback: (errno: number, bytes: number, eof: boolean) => void): void;
  sendZeros(out: number, file: number, fileSize: number, maxBytes: number, waitMs: number, callback: (errno: number, bytes: number) => void): void;
  sendRepeat(out: number, length: number, maxBytes: number, waitMs: number, callback: (errno: number, bytes: number) => void): void;
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

/** The native receiver and senders (native/perf_io.c), or undefined without the helper. */
export function perfIo(): (PerfIoModule & { dup(fd: number): number; close(fd: number): void }) | undefined {
  const m = nativeModule<PerfIoModule>(['recvDrop', 'sendZeros', 'sendRepeat']);
  const h = nativeHelper();
  return m === undefined || h === undefined
    ? undefined
    : { recvDrop: m.recvDrop.bind(m), sendZeros: m.sendZeros.bind(m), sendRepeat: m.sendRepeat.bind(m), dup: h.dup.bind(h), close: h.close.bind(h) };
}

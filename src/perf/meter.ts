/**
 * One stream's byte count on one side of a test, with the end of the warm-up (`-O`) marked, so
 * results count only what came after it.
 */
import type { StreamFigures, TcpFigures } from './protocol.js';
import type { TcpInfo } from './native.js';
import type { UdpReceiverStats } from './udp-receiver.js';

export class StreamMeter {
  readonly stream: number;
  readonly dir: 'up' | 'down';
  /** Whether this side sends or receives the stream. */
  readonly role: 'sent' | 'received';
  #bytes = 0;
  /** While a native loop moves this stream's bytes: what it moved so far (see follow). */
  #live: (() => number) | undefined;
  /** UDP receivers: the datagram statistics. */
  udp: UdpReceiverStats | undefined;
  /** TCP senders: reads the socket's TCP_INFO (undefined without the native helper). */
  tcpInfo: (() => TcpInfo | undefined) | undefined;
  #lastTcp: TcpInfo | undefined;
  #markBytes = 0;
  #markAt: number | undefined;
  #endAt: number | undefined;

  constructor(stream: number, dir: 'up' | 'down', role: 'sent' | 'received') {
    this.stream = stream;
    this.dir = dir;
    this.role = role;
  }

  /** Bytes sent or received so far. */
  get bytes(): number {
    return this.#live === undefined ? this.#bytes : this.#bytes + this.#live();
  }

  /**
   * Counts `n` more bytes. An add, not a setter: `bytes += n` reads a native loop's live count
   * and would leave out whatever it moved between the read and the write.
   */
  add(n: number): void {
    this.#bytes += n;
  }

  /** Counts `moved()` (bytes a native loop moved since this call) in, until unfollow(its final count). */
  follow(moved: () => number): void {
    this.#live = moved;
  }

  /**
   * Runs `fn` with the native loop's count left out, as of the loop's start: a test that starts
   * on the stream's first bytes (and marks its meters then) counts every byte of the stream,
   * though the loop had moved more by the time JS heard of the first ones.
   */
  asOfFollow(fn: () => void): void {
    const live = this.#live;
    this.#live = undefined;
    try {
      fn();
    } finally {
      this.#live = live;
    }
  }

  unfollow(moved: number): void {
    this.#live = undefined;
    this.#bytes += moved;
  }

  /** The warm-up ends now (`performance.now()`): results count from here. */
  mark(now: number): void {
    this.#markBytes = this.bytes;
    this.#markAt = now;
  }

  /** The stream is over (its last byte sent or received), at `now` (kept once). */
  end(now: number): void {
    this.#endAt ??= now;
  }

  /** TCP_INFO now, or the last one read (the socket may be gone), or undefined. */
  sampleTcp(): TcpInfo | undefined {
    const t = this.tcpInfo?.();
    if (t !== undefined) this.#lastTcp = t;
    return this.#lastTcp;
  }

  get ended(): boolean {
    return this.#endAt !== undefined;
  }

  /** When the stream ended (its last byte), or undefined while it runs. */
  get endedAt(): number | undefined {
    return this.#endAt;
  }

  /** The figures after the warm-up; a stream that ended inside it counts nothing. */
  figures(now: number): StreamFigures {
    const markAt = this.#markAt ?? now;
    const endAt = this.#endAt ?? now;
    const seconds = Math.max(0, endAt - markAt) / 1000;
    const t = this.sampleTcp();
    const tcp: TcpFigures | undefined = t ? { retransmits: t.totalRetrans, rttUs: t.rttUs, rttVarUs: t.rttVarUs, cwnd: t.cwnd } : undefined;
    return {
      stream: this.stream,
      dir: this.dir,
      bytes: this.#markAt === undefined ? 0 : this.bytes - this.#markBytes,
      seconds,
      ...(this.udp ? { udp: this.udp.figures() } : {}),
      ...(tcp ? { tcp } : {}),
    };
  }
}

/** Bits per second of `bytes` in `seconds` (0 when no time passed). */
export function bitsPerSecond(bytes: number, seconds: number): number {
  return seconds > 0 ? (bytes * 8) / seconds : 0;
}

/**
 * A direction's total: its bytes over the longest stream's time (streams share the start mark,
 * so the longest is the direction's time).
 */
export function total(figures: readonly StreamFigures[]): { readonly bytes: number; readonly seconds: number; readonly bitsPerSecond: number } {
  const bytes = figures.reduce((a, f) => a + f.bytes, 0);
  const seconds = figures.reduce((a, f) => Math.max(a, f.seconds), 0);
  return { bytes, seconds, bitsPerSecond: bitsPerSecond(bytes, seconds) };
}

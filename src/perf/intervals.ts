/**
 * Interval reports: every `intervalMs`, each stream's bytes since the previous report and their
 * rate, and their sum; for UDP receivers the interval's datagrams, loss and the jitter estimate
 * at its end; for TCP senders, where the native helper reads TCP_INFO, the interval's
 * retransmits and the RTT and congestion window at its end. Intervals inside the warm-up (`-O`) are reported with `omitted: true`.
 */
import type { StreamMeter } from './meter.js';
import { bitsPerSecond } from './meter.js';

export interface IntervalStream {
  readonly stream: number;
  readonly dir: 'up' | 'down';
  readonly role: 'sent' | 'received';
  readonly bytes: number;
  readonly bitsPerSecond: number;
  /** UDP receivers. */
  readonly packets?: number;
  readonly lost?: number;
  readonly jitterMs?: number;
  /** UDP receivers: datagrams that arrived below the highest number seen, and copies, in the interval. */
  readonly outOfOrder?: number;
  readonly duplicates?: number;
  /** TCP senders with TCP_INFO: segments retransmitted in the interval, the RTT and congestion window at its end. */
  readonly retransmits?: number;
  readonly rttUs?: number;
  readonly cwnd?: number;
}

export interface PerfInterval {
  /** Seconds since the test started. */
  readonly start: number;
  readonly end: number;
  readonly omitted: boolean;
  readonly streams: readonly IntervalStream[];
  /** Per role: what this side sent and what it received in the interval. */
  readonly sum: { readonly sent: { bytes: number; bitsPerSecond: number }; readonly received: { bytes: number; bitsPerSecond: number } };
}

interface Last {
  retrans: number;
  bytes: number;
  unique: number;
  expected: number;
  outOfOrder: number;
  duplicates: number;
}

/** Reports intervals of `meters` from `startAt` (a `performance.now()`) until stopped. */
export class IntervalReporter {
  readonly #meters: readonly StreamMeter[];
  readonly #startAt: number;
  readonly #omitMs: number;
  readonly #onInterval: (i: PerfInterval, index: number) => void;
  readonly #last: Last[];
  #from: number;
  #index = 0;
  #stopped = false;
  readonly #timer: NodeJS.Timeout;

  /** `onInterval` gets each interval and its number, from 0 (the two sides of a test number theirs alike). */
  constructor(meters: readonly StreamMeter[], startAt: number, intervalMs: number, omitMs: number, onInterval: (i: PerfInterval, index: number) => void) {
    this.#meters = meters;
    this.#startAt = startAt;
    this.#omitMs = omitMs;
    this.#onInterval = onInterval;
    this.#last = meters.map(() => ({ retrans: 0, bytes: 0, unique: 0, expected: 0, outOfOrder: 0, duplicates: 0 }));
    this.#from = startAt;
    this.#timer = setInterval(() => this.#report(performance.now()), intervalMs);
  }

  #report(now: number): void {
    const seconds = (now - this.#from) / 1000;
    if (seconds <= 0) return;
    const streams = this.#meters.map((m, i): IntervalStream => {
      const last = this.#last[i]!;
      // Read once: a native loop's count moves between two reads, and the bytes between them would be in no interval.
      const count = m.bytes;
      const bytes = count - last.bytes;
      last.bytes = count;
      const base = { stream: m.stream, dir: m.dir, role: m.role, bytes, bitsPerSecond: bitsPerSecond(bytes, seconds) };
      if (!m.udp) {
        const t = m.role === 'sent' ? m.sampleTcp() : undefined;
        if (t === undefined) return base;
        const retransmits = t.totalRetrans - last.retrans;
        last.retrans = t.totalRetrans;
        return { ...base, retransmits, rttUs: t.rttUs, cwnd: t.cwnd };
      }
      const expected = m.udp.maxSeq + 1;
      const packets = m.udp.unique - last.unique;
      const lost = Math.max(0, expected - last.expected - packets);
      const outOfOrder = m.udp.outOfOrder - last.outOfOrder;
      const duplicates = m.udp.duplicates - last.duplicates;
      last.unique = m.udp.unique;
      last.expected = expected;
      last.outOfOrder = m.udp.outOfOrder;
      last.duplicates = m.udp.duplicates;
      return { ...base, packets, lost, outOfOrder, duplicates, jitterMs: m.udp.jitterUs / 1000 };
    });
    const sum = (role: 'sent' | 'received'): { bytes: number; bitsPerSecond: number } => {
      const bytes = streams.filter((s) => s.role === role).reduce((a, s) => a + s.bytes, 0);
      return { bytes, bitsPerSecond: bitsPerSecond(bytes, seconds) };
    };
    const start = (this.#from - this.#startAt) / 1000;
    this.#from = now;
    this.#onInterval({ start, end: (now - this.#startAt) / 1000, omitted: now - this.#startAt <= this.#omitMs, streams, sum: { sent: sum('sent'), received: sum('received') } }, this.#index++);
  }

  /**
   * Stops (once), reporting the last partial interval if bytes moved in it and it is at least
   * `minMs` long (default a tenth of a second). When every stream has ended, that interval ends
   * at the last one's end, not now: the wait for the result and for datagrams still on the way
   * is no part of it (it would draw a drop towards 0 at the end).
   */
  stop(minMs = 100): void {
    if (this.#stopped) return;
    this.#stopped = true;
    clearInterval(this.#timer);
    const ends = this.#meters.map((m) => m.endedAt);
    const now = ends.every((e) => e !== undefined) && ends.length > 0 ? Math.min(performance.now(), Math.max(...ends.map((e) => e ?? 0))) : performance.now();
    const moved = this.#meters.some((m, i) => m.bytes !== this.#last[i]!.bytes);
    // stop(0) reports what moved however short the interval: a native loop's last bytes may
    // come in under a millisecond after the last tick, and the intervals must hold every byte.
    if (moved && (minMs === 0 || now - this.#from >= minMs)) this.#report(Math.max(now, this.#from));
  }
}

/** The streams of an interval that the other side of the test measured: what it received, with its own times. */
export interface PeerInterval {
  readonly index: number;
  readonly start: number;
  readonly end: number;
  readonly omitted: boolean;
  readonly streams: readonly IntervalStream[];
}

/**
 * Puts each of this side's intervals together with the peer's interval of the same number (the
 * server's receiver figures of the streams this side sends: UDP loss and jitter) before passing
 * it on. An interval waits for its peer's at most `hold` intervals of this side; then it goes
 * on without (the peer's is dropped if it comes later). `flush()` at the end passes on every
 * interval still held, and the peer's that have no interval here, with the peer's times.
 */
export class IntervalMerger {
  readonly #emit: (i: PerfInterval) => void;
  readonly #hold: number;
  readonly #held: { readonly index: number; readonly interval: PerfInterval }[] = [];
  readonly #peer = new Map<number, PeerInterval>();
  /** The next number to pass on: a peer's interval below it is late, and dropped. */
  #next = 0;

  constructor(hold: number, emit: (i: PerfInterval) => void) {
    this.#hold = Math.max(1, hold);
    this.#emit = emit;
  }

  local(i: PerfInterval, index: number): void {
    this.#held.push({ index, interval: i });
    this.#pass(false);
  }

  peer(p: PeerInterval): void {
    if (p.index < this.#next || this.#peer.size > 4 * this.#hold) return;
    this.#peer.set(p.index, p);
    this.#pass(false);
  }

  #pass(all: boolean): void {
    for (;;) {
      const head = this.#held[0];
      if (head === undefined) break;
      const p = this.#peer.get(head.index);
      if (p === undefined && !all && this.#held.length <= this.#hold) break;
      this.#held.shift();
      this.#peer.delete(head.index);
      this.#next = head.index + 1;
      this.#emit(p === undefined ? head.interval : merged(head.interval, p.streams));
    }
  }

  flush(): void {
    this.#pass(true);
    for (const p of [...this.#peer.values()].sort((a, b) => a.index - b.index)) {
      if (p.index < this.#next) continue;
      this.#emit(merged({ start: p.start, end: p.end, omitted: p.omitted, streams: [], sum: { sent: { bytes: 0, bitsPerSecond: 0 }, received: { bytes: 0, bitsPerSecond: 0 } } }, p.streams));
    }
    this.#peer.clear();
  }
}

function merged(i: PerfInterval, peer: readonly IntervalStream[]): PerfInterval {
  if (peer.length === 0) return i;
  const streams = [...i.streams, ...peer].sort((a, b) => a.stream - b.stream || (a.role === b.role ? 0 : a.role === 'sent' ? -1 : 1));
  const seconds = i.end - i.start;
  const sum = (role: 'sent' | 'received'): { bytes: number; bitsPerSecond: number } => {
    const bytes = streams.filter((s) => s.role === role).reduce((a, s) => a + s.bytes, 0);
    return { bytes, bitsPerSecond: bitsPerSecond(bytes, seconds) };
  };
  return { ...i, streams, sum: { sent: sum('sent'), received: sum('received') } };
}

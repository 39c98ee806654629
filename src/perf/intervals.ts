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
}

/** Reports intervals of `meters` from `startAt` (a `performance.now()`) until stopped. */
export class IntervalReporter {
  readonly #meters: readonly StreamMeter[];
  readonly #startAt: number;
  readonly #omitMs: number;
  readonly #onInterval: (i: PerfInterval) => void;
  readonly #last: Last[];
  #from: number;
  readonly #timer: NodeJS.Timeout;

  constructor(meters: readonly StreamMeter[], startAt: number, intervalMs: number, omitMs: number, onInterval: (i: PerfInterval) => void) {
    this.#meters = meters;
    this.#startAt = startAt;
    this.#omitMs = omitMs;
    this.#onInterval = onInterval;
    this.#last = meters.map(() => ({ retrans: 0, bytes: 0, unique: 0, expected: 0 }));
    this.#from = startAt;
    this.#timer = setInterval(() => this.#report(performance.now()), intervalMs);
  }

  #report(now: number): void {
    const seconds = (now - this.#from) / 1000;
    if (seconds <= 0) return;
    const streams = this.#meters.map((m, i): IntervalStream => {
      const last = this.#last[i]!;
      const bytes = m.bytes - last.bytes;
      last.bytes = m.bytes;
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
      last.unique = m.udp.unique;
      last.expected = expected;
      return { ...base, packets, lost, jitterMs: m.udp.jitterUs / 1000 };
    });
    const sum = (role: 'sent' | 'received'): { bytes: number; bitsPerSecond: number } => {
      const bytes = streams.filter((s) => s.role === role).reduce((a, s) => a + s.bytes, 0);
      return { bytes, bitsPerSecond: bitsPerSecond(bytes, seconds) };
    };
    const start = (this.#from - this.#startAt) / 1000;
    this.#from = now;
    this.#onInterval({ start, end: (now - this.#startAt) / 1000, omitted: now - this.#startAt <= this.#omitMs, streams, sum: { sent: sum('sent'), received: sum('received') } });
  }

  /** Stops, reporting the last partial interval if it is at least a tenth of a second long. */
  stop(): void {
    clearInterval(this.#timer);
    const now = performance.now();
    if (now - this.#from >= 100) this.#report(now);
  }
}

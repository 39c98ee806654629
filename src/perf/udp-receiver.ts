/**
 * What a UDP receiver counts, per stream: datagrams, bytes, loss, reordering, duplicates and
 * the interarrival jitter of RFC 3550 (section 6.4.1, code in appendix A.8).
 *
 * Jitter: for each datagram i that arrives, its transit time is `R_i - S_i` (arrival time on the
 * receiver's clock minus the send time the sender wrote in it, on the sender's clock: the two
 * clocks need not agree, only differences are used). With `D = (R_i - R_j) - (S_i - S_j)` for
 * the datagram j that arrived before it, the estimate moves a sixteenth of the way towards |D|:
 * `J += (|D| - J) / 16`. It is taken in arrival order, reordered datagrams included (as the RFC
 * says), duplicates left out. Times are microseconds of a monotonic clock, reported in ms.
 *
 * Reordering and duplicates: the last {@link SEQ_WINDOW} sequence numbers below the highest seen
 * are remembered one byte each. A datagram below the highest is out of order the first time it
 * arrives and a duplicate after; one older than the window is counted out of order.
 * Loss is the sender's count (from the control connection) minus the distinct datagrams
 * received; before that count is known, the highest sequence number plus one stands in for it.
 */
import type { UdpFigures } from './protocol.js';

export const SEQ_WINDOW = 65536;

export class UdpReceiverStats {
  /** Datagrams received, duplicates included. */
  packets = 0;
  bytes = 0;
  duplicates = 0;
  outOfOrder = 0;
  /** The highest sequence number seen, -1 before any. */
  maxSeq = -1;
  /** RFC 3550 jitter, microseconds. */
  jitterUs = 0;
  /** The sender's count, once known. */
  sent: number | undefined;
  /** Called with each |D| (µs) the jitter estimate takes in (a log of them). */
  onDifference: ((us: number) => void) | undefined;
  #prevTransit: number | undefined;
  readonly #seen = new Uint8Array(SEQ_WINDOW);

  /** Records a datagram of `size` bytes with sequence number `seq`, sent at `sendUs`, arrived at `arrivalUs`. */
  record(seq: number, sendUs: number, arrivalUs: number, size: number): void {
    this.packets++;
    this.bytes += size;
    const slot = seq % SEQ_WINDOW;
    if (seq > this.maxSeq) {
      // Slots between the old highest and this one now stand for new numbers: clear them.
      const gap = seq - this.maxSeq;
      if (gap >= SEQ_WINDOW) this.#seen.fill(0);
      else for (let s = this.maxSeq + 1; s < seq; s++) this.#seen[s % SEQ_WINDOW] = 0;
      this.maxSeq = seq;
      this.#seen[slot] = 1;
    } else if (this.maxSeq - seq >= SEQ_WINDOW) {
      this.outOfOrder++;
    } else if (this.#seen[slot] === 1) {
      this.duplicates++;
      return;
    } else {
      this.#seen[slot] = 1;
      this.outOfOrder++;
    }
    const transit = arrivalUs - sendUs;
    if (this.#prevTransit !== undefined) {
      const d = Math.abs(transit - this.#prevTransit);
      this.jitterUs += (d - this.jitterUs) / 16;
      this.onDifference?.(d);
    }
    this.#prevTransit = transit;
  }

  /** Distinct datagrams received. */
  get unique(): number {
    return this.packets - this.duplicates;
  }

  /** Datagrams lost so far (see the module comment). */
  get lost(): number {
    return Math.max(0, (this.sent ?? this.maxSeq + 1) - this.unique);
  }

  figures(): UdpFigures {
    return {
      packets: this.unique,
      lost: this.lost,
      outOfOrder: this.outOfOrder,
      duplicates: this.duplicates,
      jitterMs: this.jitterUs / 1000,
      ...(this.sent !== undefined ? { sent: this.sent } : {}),
    };
  }
}

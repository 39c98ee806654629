/**
 * The paced UDP sender: datagrams evenly spaced at the target rate, not bursts.
 *
 * How: datagram k is due at `start + k * gap`, with `gap = length * 8 / rate` seconds. The loop
 * sends every datagram due by now, then waits for the next: on a timer when it is more than
 * {@link SPIN_BELOW_US} away, else by yielding to the event loop once (`setImmediate`) and looking
 * at the clock again, so datagrams leave within one event-loop turn of their due time (a few µs
 * on an idle core; at high rates this keeps one core busy, as any user-space pacer must without
 * kernel pacing). A sender that falls behind (a GC pause, a core taken by another process)
 * catches up on at most {@link MAX_CATCH_UP_US} of schedule, {@link MAX_BURST} datagrams per
 * turn; a longer stall slips the schedule (counted as `slips`) rather than turning into a burst
 * the receiver's buffer cannot hold.
 *
 * Evenness is measured, not assumed: each datagram's lateness (actual send time minus its due
 * time) goes in a histogram, and the result gives its median, 99th percentile and maximum, with
 * the largest number of datagrams sent in one turn.
 */
import type { Socket as DgramSocket } from 'node:dgram';
import { SocketkitError } from '../core/errors.js';
import { UDP_HEADER, writeUdpHeader } from './protocol.js';
import type { StreamMeter } from './meter.js';

/** Wait on a timer when the next datagram is further away than this, µs. */
export const SPIN_BELOW_US = 2000;
/** The most a late sender sends at once to catch up, in µs of schedule. */
export const MAX_CATCH_UP_US = 100_000;
/** Datagrams sent in one turn at most; a catch-up longer than this yields to I/O between turns. */
export const MAX_BURST = 64;
/** Datagrams handed to the socket and not yet sent, at most (buffers are reused). */
const RING = 1024;

export function nowUs(): number {
  return performance.now() * 1000;
}

export interface PacedSendOptions {
  /** A connected UDP socket. */
  readonly socket: DgramSocket;
  readonly tag: number;
  readonly stream: number;
  /** Datagram size, header included. */
  readonly length: number;
  /** Bits per second. */
  readonly rate: number;
  /** Stop at this `performance.now()` (when `bytes` is 0). */
  readonly until: number;
  /** Bytes to send in all (0: until `until`). */
  readonly bytes: number;
  readonly signal: AbortSignal;
}

/** How evenly the datagrams left. */
export interface PacingFigures {
  /** The intended gap between datagrams, µs. */
  readonly gapUs: number;
  readonly packets: number;
  /** Lateness (actual minus due send time), µs: median, 99th percentile, maximum. */
  readonly lateP50Us: number;
  readonly lateP99Us: number;
  readonly lateMaxUs: number;
  /** The most datagrams sent in one turn of the loop. */
  readonly maxBurst: number;
  /** Times the schedule slipped (the sender was more than MAX_CATCH_UP_US behind). */
  readonly slips: number;
}

/** Lateness histogram: 1 µs buckets to 1 ms, then 1 ms buckets to 1 s. */
class LatenessHistogram {
  readonly #fine = new Float64Array(1000);
  readonly #coarse = new Float64Array(1001);
  count = 0;
  max = 0;

  record(us: number): void {
    const v = Math.max(0, us);
    this.count++;
    if (v > this.max) this.max = v;
    if (v < 1000) this.#fine[Math.floor(v)]!++;
    else this.#coarse[Math.min(1000, Math.floor(v / 1000))]!++;
  }

  percentile(p: number): number {
    if (this.count === 0) return 0;
    const want = Math.ceil((p / 100) * this.count);
    let seen = 0;
    for (let i = 0; i < 1000; i++) {
      seen += this.#fine[i]!;
      if (seen >= want) return i + 1;
    }
    for (let i = 1; i <= 1000; i++) {
      seen += this.#coarse[i]!;
      if (seen >= want) return Math.min(this.max, (i + 1) * 1000);
    }
    return this.max;
  }
}

/** Sends paced datagrams as `options` say, counting into `meter`; resolves with the pacing figures. */
export function sendPaced(meter: StreamMeter, options: PacedSendOptions): Promise<PacingFigures> {
  const { socket, tag, stream, length, rate, until, bytes, signal } = options;
  if (length < UDP_HEADER) throw new SocketkitError('ERR_INVALID_ARG', `a datagram of ${length} bytes cannot hold the ${UDP_HEADER}-byte header`);
  if (!(rate > 0)) throw new SocketkitError('ERR_INVALID_ARG', 'a UDP test needs a rate above 0');
  const gapUs = (length * 8 * 1e6) / rate;
  const limit = bytes > 0 ? Math.ceil(bytes / length) : Number.POSITIVE_INFINITY;
  const untilUs = until * 1000;
  const ring = Array.from({ length: RING }, () => Buffer.alloc(length));
  const late = new LatenessHistogram();
  let start = nowUs();
  let k = 0;
  let inFlight = 0;
  let maxBurst = 0;
  let slips = 0;
  let sendError: Error | undefined;
  const onSent = (err: Error | null): void => {
    inFlight--;
    if (err) sendError ??= err;
  };
  return new Promise<PacingFigures>((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    let done = false;
    const finish = (err?: Error): void => {
      done = true;
      if (timer !== undefined) clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      meter.end(performance.now());
      if (err) reject(err);
      else resolve({ gapUs, packets: k, lateP50Us: late.percentile(50), lateP99Us: late.percentile(99), lateMaxUs: late.max, maxBurst, slips });
    };
    const onAbort = (): void => {
      // A sleeping sender wakes to see the abort; a spinning one sees it on its next turn.
      if (timer === undefined) return;
      clearTimeout(timer);
      timer = undefined;
      setImmediate(tick);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    const tick = (): void => {
      timer = undefined;
      if (done) return;
      if (signal.aborted) return finish(signal.reason instanceof Error ? signal.reason : new SocketkitError('ERR_ABORTED', 'throughput test stopped'));
      if (sendError) return finish(new SocketkitError('ERR_IO', `UDP send failed: ${sendError.message}`, { cause: sendError }));
      let now = nowUs();
      if (now - (start + k * gapUs) > MAX_CATCH_UP_US) {
        // Too far behind: slip the schedule rather than burst.
        slips++;
        start = now - MAX_CATCH_UP_US - k * gapUs;
      }
      let burst = 0;
      while (k < limit && now < untilUs && inFlight < RING && burst < MAX_BURST) {
        const due = start + k * gapUs;
        if (due > now) break;
        const buf = ring[k % RING]!;
        now = nowUs();
        writeUdpHeader(buf, tag, stream, 0, k, now);
        late.record(now - due);
        inFlight++;
        socket.send(buf, onSent);
        meter.bytes += length;
        k++;
        burst++;
      }
      if (burst > maxBurst) maxBurst = burst;
      if (k >= limit || now >= untilUs) return finish();
      const wait = start + k * gapUs - now;
      if (wait > SPIN_BELOW_US) timer = setTimeout(tick, Math.floor((wait - SPIN_BELOW_US / 2) / 1000));
      else setImmediate(tick);
    };
    tick();
  });
}

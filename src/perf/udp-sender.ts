/**
 * The paced UDP sender: datagrams evenly spaced at the target rate, not bursts.
 *
 * The schedule: datagram k is due at `start + k * gap`, with `gap = length * 8 / rate` seconds.
 *
 * With the native helper (native/perf_io.c) the datagrams leave from a thread of the libuv
 * pool, on a UDP socket of its own connected to the receiver: for each datagram it sleeps
 * (clock_nanosleep, timer slack 1 µs) until 60 µs before the due time when that is at least 90
 * µs away, watches the clock for the rest, then writes the send time into the header and calls send(2). One call
 * sends {@link NATIVE_SLICE_MS} of schedule and hands back the send times; the next call
 * continues the same schedule. Nothing in JS runs per datagram, so garbage collection and the
 * event loop cannot delay one. A next datagram more than 3 ms away is waited for on a timer (so a
 * slow stream does not hold a pool thread), and at most {@link MAX_NATIVE_PACERS} streams of a
 * process are paced natively at once; the others by the event loop, as without the helper.
 *
 * Without it, the event loop paces: the loop sends every datagram due by now, then waits for
 * the next, on a timer when it is more than {@link SPIN_BELOW_US} away, else by yielding to the
 * event loop once (`setImmediate`) and looking at the clock again.
 *
 * Either way, a sender that falls behind (a core taken by another process) catches up on at most
 * {@link MAX_CATCH_UP_US} of schedule; a longer stall slips the schedule (counted as `slips`)
 * rather than turning into a burst the receiver's buffer cannot hold.
 *
 * Evenness is measured, not assumed: each datagram's lateness (its send time minus its due time)
 * and each gap between two consecutive send times go in histograms; the result gives their
 * percentiles, and the longest run of datagrams sent less than a quarter of a gap apart (a burst).
 */
import type { Socket as DgramSocket } from 'node:dgram';
import { SocketkitError } from '../core/errors.js';
import { UDP_HEADER, writeUdpHeader } from './protocol.js';
import type { StreamMeter } from './meter.js';
import { nativeModule } from '../native/helper.js';
import { setTimeout as setTimeoutPromise } from 'node:timers/promises';

interface PacerModule {
  udpConnect(address: string, port: number, family: number, sndbuf: number): number;
  udpPaced(fd: number, length: number, tag: number, stream: number, seqFrom: number, count: number, startUs: number, gapUs: number, times: Float64Array, callback: (errno: number, sent: number) => void): void;
  monoUs(): number;
  close(fd: number): void;
}

/** Schedule one native call sends, ms. */
export const NATIVE_SLICE_MS = 10;
/** Socket send buffer the native pacer asks for, bytes. */
const NATIVE_SNDBUF = 4 * 1024 * 1024;

/** Which pacer sends: the native thread or the event loop (see the module comment). */
export type Pacer = 'native' | 'event-loop';

/** The pacer this process uses (`native` when the helper has native/perf_io.c). */
export function pacerKind(): Pacer {
  return nativeModule<PacerModule>(['udpConnect', 'udpPaced', 'monoUs', 'close']) ? 'native' : 'event-loop';
}

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
  /** A connected UDP socket (the event-loop pacer sends on it). */
  readonly socket: DgramSocket;
  /** Where `socket` is connected to (the native pacer connects a socket of its own there). */
  readonly target?: { readonly address: string; readonly port: number; readonly family: 4 | 6 };
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
  /** Gaps between consecutive send times, µs: 1st percentile, median, 99th percentile. */
  readonly gapP1Us: number;
  readonly gapP50Us: number;
  readonly gapP99Us: number;
  /** The longest run of datagrams sent less than a quarter of a gap apart. */
  readonly maxBurst: number;
  /** Times the schedule slipped (the sender was more than MAX_CATCH_UP_US behind). */
  readonly slips: number;
  /** Who paced. */
  readonly pacer: Pacer;
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

/** Lateness, gaps and bursts of one stream's send times. */
export class Evenness {
  readonly late = new LatenessHistogram();
  readonly gaps = new LatenessHistogram();
  readonly #gapUs: number;
  #prev: number | undefined;
  #run = 0;
  maxBurst = 0;

  constructor(gapUs: number) {
    this.#gapUs = gapUs;
  }

  record(dueUs: number, sentUs: number): void {
    this.late.record(sentUs - dueUs);
    if (this.#prev !== undefined) {
      const gap = sentUs - this.#prev;
      this.gaps.record(gap);
      this.#run = gap < this.#gapUs / 4 ? this.#run + 1 : 1;
    } else {
      this.#run = 1;
    }
    if (this.#run > this.maxBurst) this.maxBurst = this.#run;
    this.#prev = sentUs;
  }

  figures(gapUs: number, packets: number, slips: number, pacer: Pacer): PacingFigures {
    return {
      gapUs,
      packets,
      lateP50Us: this.late.percentile(50),
      lateP99Us: this.late.percentile(99),
      lateMaxUs: this.late.max,
      gapP1Us: this.gaps.percentile(1),
      gapP50Us: this.gaps.percentile(50),
      gapP99Us: this.gaps.percentile(99),
      maxBurst: this.maxBurst,
      slips,
      pacer,
    };
  }
}

function checkPacing(length: number, rate: number): void {
  if (length < UDP_HEADER) throw new SocketkitError('ERR_INVALID_ARG', `a datagram of ${length} bytes cannot hold the ${UDP_HEADER}-byte header`);
  if (!(rate > 0)) throw new SocketkitError('ERR_INVALID_ARG', 'a UDP test needs a rate above 0');
}

/** Sends paced datagrams as `options` say, counting into `meter`; resolves with the pacing figures. */
export function sendPaced(meter: StreamMeter, options: PacedSendOptions): Promise<PacingFigures> {
  const native = nativeModule<PacerModule>(['udpConnect', 'udpPaced', 'monoUs', 'close']);
  if (native && options.target && nativePacers < MAX_NATIVE_PACERS) {
    nativePacers++;
    return sendPacedNative(native, options.target, meter, options).finally(() => nativePacers--);
  }
  return sendPacedLoop(meter, options);
}

/**
 * Native pacers running at once in this process, at most: each holds a thread of libuv's pool
 * (4 by default, shared with the TCP receivers and file I/O) while it paces; further streams
 * are paced by the event loop.
 */
export const MAX_NATIVE_PACERS = 2;
let nativePacers = 0;
/** A native pacer waits on a timer, off the pool, when its next datagram is further away than this, µs. */
const NATIVE_TIMER_ABOVE_US = 3000;

async function sendPacedNative(native: PacerModule, target: NonNullable<PacedSendOptions['target']>, meter: StreamMeter, options: PacedSendOptions): Promise<PacingFigures> {
  const { tag, stream, length, rate, until, bytes, signal } = options;
  checkPacing(length, rate);
  const fd = native.udpConnect(target.address, target.port, target.family, NATIVE_SNDBUF);
  if (fd < 0) throw new SocketkitError('ERR_IO', `UDP socket to ${target.address}:${target.port} failed (errno ${-fd})`);
  const gapUs = (length * 8 * 1e6) / rate;
  const limit = bytes > 0 ? Math.ceil(bytes / length) : Number.POSITIVE_INFINITY;
  // The pacer's clock is CLOCK_MONOTONIC; `until` is on performance.now()'s.
  const untilUs = until * 1000 + (native.monoUs() - performance.now() * 1000);
  // One slice of schedule per call, but a single datagram when they are further apart than a timer wait.
  const perCall = gapUs > NATIVE_TIMER_ABOVE_US ? 1 : Math.max(1, Math.min(65_536, Math.ceil((NATIVE_SLICE_MS * 1000) / gapUs)));
  const times = new Float64Array(perCall);
  const even = new Evenness(gapUs);
  let start = native.monoUs();
  let k = 0;
  let slips = 0;
  try {
    for (;;) {
      if (signal.aborted) throw signal.reason instanceof Error ? signal.reason : new SocketkitError('ERR_ABORTED', 'throughput test stopped');
      const now = native.monoUs();
      if (now - (start + k * gapUs) > MAX_CATCH_UP_US) {
        slips++;
        start = now - MAX_CATCH_UP_US - k * gapUs;
      }
      // Datagrams due before the end of the test, at most one slice of them.
      const dueLeft = Math.ceil((untilUs - start) / gapUs) - k;
      const count = Math.min(perCall, limit - k, dueLeft);
      if (count <= 0) break;
      const wait = start + k * gapUs - now;
      if (wait > NATIVE_TIMER_ABOVE_US) {
        // A slow rate: sleep on a timer, not on a pool thread, until shortly before the next one.
        await setTimeoutPromise(Math.floor((wait - NATIVE_TIMER_ABOVE_US / 2) / 1000));
        continue;
      }
      const s0 = start;
      const k0 = k;
      const { errno, sent } = await new Promise<{ errno: number; sent: number }>((resolve) =>
        native.udpPaced(fd, length, tag, stream, k0, count, s0, gapUs, times, (e, n) => resolve({ errno: e, sent: n })),
      );
      for (let i = 0; i < sent; i++) even.record(s0 + (k0 + i) * gapUs, times[i]!);
      k += sent;
      meter.add(sent * length);
      if (errno !== 0) throw new SocketkitError('ERR_IO', `UDP send failed (errno ${errno})`);
    }
  } finally {
    native.close(fd);
    meter.end(performance.now());
  }
  return even.figures(gapUs, k, slips, 'native');
}

function sendPacedLoop(meter: StreamMeter, options: PacedSendOptions): Promise<PacingFigures> {
  const { socket, tag, stream, length, rate, until, bytes, signal } = options;
  checkPacing(length, rate);
  const gapUs = (length * 8 * 1e6) / rate;
  const limit = bytes > 0 ? Math.ceil(bytes / length) : Number.POSITIVE_INFINITY;
  const untilUs = until * 1000;
  const ring = Array.from({ length: RING }, () => Buffer.alloc(length));
  const even = new Evenness(gapUs);
  let start = nowUs();
  let k = 0;
  let inFlight = 0;
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
      else resolve(even.figures(gapUs, k, slips, 'event-loop'));
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
        even.record(due, now);
        inFlight++;
        socket.send(buf, onSent);
        meter.add(length);
        k++;
        burst++;
      }
      if (k >= limit || now >= untilUs) return finish();
      const wait = start + k * gapUs - now;
      if (wait > SPIN_BELOW_US) timer = setTimeout(tick, Math.floor((wait - SPIN_BELOW_US / 2) / 1000));
      else setImmediate(tick);
    };
    tick();
  });
}

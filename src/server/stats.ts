/**
 * Live statistics of a server: counters bumped in place (no allocation per event), snapshots on
 * demand, and rates between two snapshots.
 */

/** Counters a managed server keeps. Plain numbers, incremented in place by the server and its protocol. */
export interface ServerCounters {
  /** Replies sent: reads echoed (byte echo) or messages echoed (framed); files transferred (serve, receive). */
  roundTrips: number;
  /** Connections closed by the idle timeout. */
  idleClosed: number;
  /** Bytes received by connections that have closed (live ones are added when a snapshot is taken). */
  closedBytesIn: number;
  /** Bytes sent by connections that have closed. */
  closedBytesOut: number;
}

/** Creates zeroed counters. */
export function newCounters(): ServerCounters {
  return { roundTrips: 0, idleClosed: 0, closedBytesIn: 0, closedBytesOut: 0 };
}

/** A server's totals at one moment. */
export interface ServerStats {
  /** Connections open now. */
  readonly connections: number;
  /** Connections admitted since start. */
  readonly accepted: number;
  /**
   * Connections closed unserved since start: over the connection limit, denied, out of
   * descriptors, or (TLS) without a completed handshake.
   */
  readonly refused: number;
  /** Of those, connections lost because the process was out of descriptors (or another accept failure). */
  readonly acceptErrors: number;
  /** Connections closed for being idle since start. */
  readonly idleClosed: number;
  readonly bytesIn: number;
  readonly bytesOut: number;
  /** Replies sent since start (see {@link ServerCounters.roundTrips}). */
  readonly roundTrips: number;
}

/** All zeros: the identity of {@link sumStats}. */
export const ZERO_STATS: ServerStats = { connections: 0, accepted: 0, refused: 0, acceptErrors: 0, idleClosed: 0, bytesIn: 0, bytesOut: 0, roundTrips: 0 };

/** Adds snapshots field by field (a cluster's workers into one total). */
export function sumStats(list: Iterable<ServerStats>): ServerStats {
  const t = { ...ZERO_STATS };
  for (const s of list) {
    t.connections += s.connections;
    t.accepted += s.accepted;
    t.refused += s.refused;
    t.acceptErrors += s.acceptErrors ?? 0; // a worker of an older build may not send it
    t.idleClosed += s.idleClosed;
    t.bytesIn += s.bytesIn;
    t.bytesOut += s.bytesOut;
    t.roundTrips += s.roundTrips;
  }
  return t;
}

/** Rates over an interval, per second. */
export interface StatsRates {
  readonly seconds: number;
  readonly roundTripsPerSecond: number;
  readonly bytesInPerSecond: number;
  readonly bytesOutPerSecond: number;
  readonly acceptedPerSecond: number;
}

/** Per-second rates between two snapshots taken `ms` milliseconds apart. */
export function ratesBetween(from: ServerStats, to: ServerStats, ms: number): StatsRates {
  const seconds = ms / 1000;
  const per = (a: number, b: number): number => (seconds > 0 ? Math.max(0, b - a) / seconds : 0);
  return {
    seconds,
    roundTripsPerSecond: per(from.roundTrips, to.roundTrips),
    bytesInPerSecond: per(from.bytesIn, to.bytesIn),
    bytesOutPerSecond: per(from.bytesOut, to.bytesOut),
    acceptedPerSecond: per(from.accepted, to.accepted),
  };
}

/**
 * Takes snapshots from `read` and gives the rates since the previous one: what `--stats S`
 * prints every S seconds, and (since start) at exit.
 */
export class StatsMeter {
  readonly #read: () => ServerStats;
  readonly #started: number;
  #last: ServerStats;
  #lastAt: number;

  constructor(read: () => ServerStats, now: number = performance.now()) {
    this.#read = read;
    this.#started = now;
    this.#last = read();
    this.#lastAt = now;
  }

  /** A snapshot and the rates since the previous call (or since start). */
  tick(now: number = performance.now()): { readonly stats: ServerStats; readonly rates: StatsRates } {
    const stats = this.#read();
    const rates = ratesBetween(this.#last, stats, now - this.#lastAt);
    this.#last = stats;
    this.#lastAt = now;
    return { stats, rates };
  }

  /** A snapshot and the average rates since the meter started. */
  total(now: number = performance.now()): { readonly stats: ServerStats; readonly rates: StatsRates } {
    const stats = this.#read();
    return { stats, rates: ratesBetween(ZERO_STATS, stats, now - this.#started) };
  }
}

/**
 * Per-peer counters with a bound: a least-recently-heard-from table.
 *
 * UDP has no connections, and a datagram's source address can be forged, so a table keyed by
 * source must have a fixed capacity. A Map keeps insertion order; moving a peer to the end on
 * every datagram makes the first entry the least recently heard from, which is the one evicted
 * when the table is full (and the first to go idle).
 */

/** What the server knows about one source address. */
export interface PeerCounters {
  /** `ADDR:PORT` or `[ADDR]:PORT`. */
  readonly peer: string;
  /** `performance.now()` of the first datagram. */
  readonly firstSeen: number;
  /** `performance.now()` of the latest datagram. */
  lastSeen: number;
  datagramsIn: number;
  datagramsOut: number;
  bytesIn: number;
  bytesOut: number;
}

/** A bounded peer table; `touch` is O(1). */
export class PeerTable {
  readonly #map = new Map<string, PeerCounters>();
  readonly #capacity: number;

  /** @param capacity - Most peers kept at once (at least 1). */
  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`peer table capacity ${capacity} is not a whole number from 1`);
    this.#capacity = capacity;
  }

  get size(): number {
    return this.#map.size;
  }

  /**
   * Finds or adds `peer` and marks it as just heard from. When adding to a full table the least
   * recently heard-from peer is removed and returned as `evicted`.
   */
  touch(peer: string, now: number): { readonly counters: PeerCounters; readonly added: boolean; readonly evicted?: PeerCounters } {
    const found = this.#map.get(peer);
    if (found !== undefined) {
      found.lastSeen = now;
      this.#map.delete(peer);
      this.#map.set(peer, found);
      return { counters: found, added: false };
    }
    let evicted: PeerCounters | undefined;
    if (this.#map.size >= this.#capacity) {
      const oldest = this.#map.values().next().value as PeerCounters;
      this.#map.delete(oldest.peer);
      evicted = oldest;
    }
    const counters: PeerCounters = { peer, firstSeen: now, lastSeen: now, datagramsIn: 0, datagramsOut: 0, bytesIn: 0, bytesOut: 0 };
    this.#map.set(peer, counters);
    return evicted === undefined ? { counters, added: true } : { counters, added: true, evicted };
  }

  /** The counters of `peer`, if it is still in the table. */
  get(peer: string): PeerCounters | undefined {
    return this.#map.get(peer);
  }

  /** Removes and returns every peer last heard from before `cutoff`, oldest first. */
  expire(cutoff: number): PeerCounters[] {
    const gone: PeerCounters[] = [];
    for (const p of this.#map.values()) {
      if (p.lastSeen >= cutoff) break; // ordered by lastSeen: the rest are newer
      gone.push(p);
    }
    for (const p of gone) this.#map.delete(p.peer);
    return gone;
  }

  /** Removes and returns every peer, oldest first. */
  drain(): PeerCounters[] {
    const all = [...this.#map.values()];
    this.#map.clear();
    return all;
  }

  /** A snapshot of every peer, least recently heard from first. */
  snapshot(): PeerCounters[] {
    return [...this.#map.values()].map((p) => ({ ...p }));
  }
}

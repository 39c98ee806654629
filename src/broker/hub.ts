/**
 * The clients of one broker, and the one way bytes reach them: `fanOut` to every client but the
 * sender, through each client's bounded queue, and on to the other instances when a bridge
 * (Redis) joins them. Bytes that arrive from the bridge go to every local client.
 *
 * Flow control. A broker that reads its senders as fast as they write overruns any receiver
 * that reads slower than that, and the queue limit then cuts it off (or drops for it) although
 * it keeps reading. So when a client's queue passes half of `maxQueue` (or the bridge says its
 * backlog is high), the hub stops reading from the senders (`pause`) until that client has
 * caught up (its socket's `'drain'`): the senders go at the speed of the receivers, as with
 * ncat, and a receiver that keeps up loses nothing. Unlike ncat, the wait is bounded: a client
 * that has not caught up within `holdMs` stops holding the others back (it is "released") until
 * it next catches up, and from then on only its queue limit and the slow-consumer policy apply
 * to it. So one client that never reads costs the others one pause of `holdMs` at most, then
 * none. `holdMs` 0 turns flow control off (a write is never waited for).
 *
 * Across instances (a bridge with `hold`): the bridge bounds what may be on its way from each
 * other instance to this one (its window: a quarter of `maxQueue`, so that a client past half
 * its queue has room for all of it), and while this instance holds its senders for one of its
 * own clients it lets the others send no more; their bridges then say they are behind, and they
 * hold their senders, under the same bound. So a receiver on one instance that keeps up loses
 * nothing to a sender on another.
 *
 * Only the sockets joined with `flow: true` (the byte and framed brokers) are paused; the chat
 * sequences its own reads and is held by nothing.
 */
import type { Socket } from 'node:net';
import { newOutboxCounters, offer, type OutboxCounters, type SlowConsumerPolicy } from './outbox.js';
import type { BrokerBridge } from './bridge.js';

/** How long a client that has fallen behind may hold the senders back, ms. */
export const DEFAULT_BROKER_HOLD_MS = 500;

export interface HubOptions {
  readonly maxQueue: number;
  readonly slow: SlowConsumerPolicy;
  readonly bridge?: BrokerBridge;
  /** How long one client (or the bridge) that fell behind may hold the senders back, ms; 0: never. Default 500. */
  readonly holdMs?: number;
}

/** What the hub waits for: a client's socket, or the bridge (its backlog, or another instance's window). */
type Laggard = Socket | 'bridge';

export class BrokerHub {
  readonly counters: OutboxCounters = newOutboxCounters();
  readonly #members = new Set<Socket>();
  /** The sockets the hub pauses while someone catches up. */
  readonly #senders = new Set<Socket>();
  /** Who the senders are held for, and since when (performance.now()). */
  readonly #behind = new Map<Laggard, number>();
  /** Who held the senders for `holdMs` without catching up: not waited for until they do. */
  readonly #released = new Set<Laggard>();
  readonly #maxQueue: number;
  readonly #highWater: number;
  readonly #slow: SlowConsumerPolicy;
  readonly #bridge: BrokerBridge | undefined;
  readonly #holdMs: number;
  #paused = false;
  #timer: NodeJS.Timeout | undefined;
  /** Clients in `#behind` (not the bridge): while any, the other instances are held too. */
  #clientsBehind = 0;

  constructor(options: HubOptions) {
    this.#maxQueue = options.maxQueue;
    this.#highWater = Math.max(1, Math.floor(options.maxQueue / 2));
    this.#slow = options.slow;
    this.#bridge = options.bridge;
    this.#holdMs = options.holdMs ?? DEFAULT_BROKER_HOLD_MS;
    this.#bridge?.subscribe((data) => this.#deliver(undefined, data));
    this.#bridge?.onDrain?.(() => this.#caughtUp('bridge'));
    // What may be on its way from another instance when this one holds: a client past half its
    // queue still has room for it (and for a chunk or two being read meanwhile).
    this.#bridge?.setFlow?.({ window: Math.max(1, Math.floor(options.maxQueue / 4)), holdMs: this.#holdMs });
  }

  /** Clients connected now. */
  get size(): number {
    return this.#members.size;
  }

  /** True while the senders are held back for a client (or the bridge) catching up. */
  get holding(): boolean {
    return this.#paused;
  }

  /**
   * Adds a client until its socket closes. `flow`: the hub may pause its reading while another
   * client catches up (the caller must not pause or resume it itself).
   */
  join(socket: Socket, options: { readonly flow?: boolean } = {}): void {
    this.#members.add(socket);
    if (options.flow === true && this.#holdMs > 0) {
      this.#senders.add(socket);
      if (this.#paused) socket.pause();
    }
    socket.on('drain', () => this.#caughtUp(socket));
    socket.once('close', () => {
      this.#members.delete(socket);
      this.#senders.delete(socket);
      this.#released.delete(socket);
      this.#caughtUp(socket);
    });
  }

  /** Sends `data` from `from` to every other client here and, through the bridge, elsewhere. */
  fanOut(from: Socket, data: Uint8Array): void {
    this.#deliver(from, data);
    if (this.#bridge !== undefined && this.#bridge.publish(data) === false && this.#holdMs > 0) this.#fellBehind('bridge');
  }

  /** Sends `data` to `to` alone (a notice for one client), within its queue. */
  sendTo(to: Socket, data: Uint8Array | string): void {
    offer(to, data, typeof data === 'string' ? Buffer.byteLength(data) : data.byteLength, this.#maxQueue, this.#slow, this.counters);
  }

  #deliver(from: Socket | undefined, data: Uint8Array): void {
    const size = data.byteLength;
    const { counters } = this;
    const maxQueue = this.#maxQueue;
    const slow = this.#slow;
    const flow = this.#holdMs > 0;
    const highWater = this.#highWater;
    for (const m of this.#members) {
      if (m === from) continue;
      const queued = offer(m, data, size, maxQueue, slow, counters);
      // Past half its queue, and its socket will say 'drain' once it has caught up.
      if (flow && queued > highWater && m.writableNeedDrain) this.#fellBehind(m);
    }
  }

  #fellBehind(who: Laggard): void {
    if (this.#behind.has(who) || this.#released.has(who)) return;
    this.#behind.set(who, performance.now());
    // Not for the bridge: an instance waiting for another's window must not hold that one back.
    if (who !== 'bridge' && this.#clientsBehind++ === 0) this.#bridge?.hold?.(true);
    if (!this.#paused) {
      this.#paused = true;
      this.counters.held++;
      for (const s of this.#senders) s.pause();
    }
    this.#timer ??= setTimeout(() => this.#expire(), this.#holdMs).unref();
  }

  #caughtUp(who: Laggard): void {
    this.#released.delete(who);
    if (this.#forget(who)) this.#resumeIfDone();
  }

  /** Takes `who` out of `#behind`; true when it was there. */
  #forget(who: Laggard): boolean {
    if (!this.#behind.delete(who)) return false;
    if (who === 'bridge') return true;
    this.#clientsBehind--;
    if (this.#clientsBehind === 0) this.#bridge?.hold?.(false);
    return true;
  }

  /** Releases whoever has held the senders for `holdMs`; waits on for the others. */
  #expire(): void {
    this.#timer = undefined;
    const now = performance.now();
    let next = Infinity;
    for (const [who, since] of this.#behind) {
      const left = since + this.#holdMs - now;
      if (left <= 0) {
        this.#forget(who);
        this.#released.add(who);
        this.counters.released++;
      } else next = Math.min(next, left);
    }
    if (this.#behind.size === 0) this.#resumeIfDone();
    else this.#timer = setTimeout(() => this.#expire(), Math.max(1, Math.ceil(next))).unref();
  }

  #resumeIfDone(): void {
    if (this.#behind.size > 0 || !this.#paused) return;
    this.#paused = false;
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    for (const s of this.#senders) if (!s.destroyed) s.resume();
  }
}

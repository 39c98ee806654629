/**
 * The clients of one broker, and the one way bytes reach them: `fanOut` to every client but the
 * sender, through each client's bounded queue, and on to the other instances when a bridge
 * (Redis) joins them. Bytes that arrive from the bridge go to every local client.
 */
import type { Socket } from 'node:net';
import { newOutboxCounters, offer, type OutboxCounters, type SlowConsumerPolicy } from './outbox.js';
import type { BrokerBridge } from './bridge.js';

export interface HubOptions {
  readonly maxQueue: number;
  readonly slow: SlowConsumerPolicy;
  readonly bridge?: BrokerBridge;
}

export class BrokerHub {
  readonly counters: OutboxCounters = newOutboxCounters();
  readonly #members = new Set<Socket>();
  readonly #maxQueue: number;
  readonly #slow: SlowConsumerPolicy;
  readonly #bridge: BrokerBridge | undefined;

  constructor(options: HubOptions) {
    this.#maxQueue = options.maxQueue;
    this.#slow = options.slow;
    this.#bridge = options.bridge;
    this.#bridge?.subscribe((data) => this.#deliver(undefined, data));
  }

  /** Clients connected now. */
  get size(): number {
    return this.#members.size;
  }

  /** Adds a client until its socket closes. */
  join(socket: Socket): void {
    this.#members.add(socket);
    socket.once('close', () => this.#members.delete(socket));
  }

  /** Sends `data` from `from` to every other client here and, through the bridge, elsewhere. */
  fanOut(from: Socket, data: Uint8Array): void {
    this.#deliver(from, data);
    this.#bridge?.publish(data);
  }

  /** Sends `data` to `to` alone (a notice for one client), within its queue. */
  sendTo(to: Socket, data: Uint8Array | string): void {
    offer(to, data, this.#maxQueue, this.#slow, this.counters);
  }

  #deliver(from: Socket | undefined, data: Uint8Array): void {
    for (const m of this.#members) if (m !== from) offer(m, data, this.#maxQueue, this.#slow, this.counters);
  }
}

/**
 * What a broker may hold for one client: a bounded outgoing queue, so that a client that stops
 * reading costs at most its queue and never holds the others back for long. ncat's broker
 * writes to each client in turn with a blocking write, so one such client stalls everyone; here
 * a write never waits: it is queued (the socket's own write buffer is the queue) or, when the
 * queue is full, the slow-consumer policy decides.
 *
 * - `disconnect` (the default): the client is closed with ERR_SLOW_CONSUMER, logged by the server.
 * - `drop`: what does not fit is dropped for that client, and counted.
 *
 * A message larger than the whole queue is still accepted when the queue is empty (otherwise a
 * framed message over the queue size could never be delivered): the bound per client is the
 * queue plus one message.
 *
 * The hub (hub.ts) adds flow control on top: a client past half its queue holds the senders
 * back until it has caught up, for a bounded time, so that a client that reads, only slower
 * than the senders write, loses nothing.
 */
import type { Socket } from 'node:net';
import { SocketkitError } from '../core/errors.js';

/** What happens to a client whose outgoing queue is full. */
export type SlowConsumerPolicy = 'disconnect' | 'drop';

/** Counters of the broker's slow-consumer decisions, shared by every client of one broker. */
export interface OutboxCounters {
  /** Messages (or chunks) handed to clients' sockets. */
  delivered: number;
  /** Messages dropped under the `drop` policy. */
  dropped: number;
  /** Bytes of the dropped messages. */
  droppedBytes: number;
  /** Clients closed under the `disconnect` policy. */
  slowDisconnects: number;
  /** Times the senders were held back (stopped reading) while a client caught up. */
  held: number;
  /** Clients (or the bridge) that had not caught up within the hold time and stopped holding the senders back. */
  released: number;
}

export function newOutboxCounters(): OutboxCounters {
  return { delivered: 0, dropped: 0, droppedBytes: 0, slowDisconnects: 0, held: 0, released: 0 };
}

/**
 * Queues `data` (`size` bytes) for `socket` within `maxQueue` bytes, or applies the policy.
 * Returns the bytes now queued for it, or -1 when nothing was queued.
 */
export function offer(socket: Socket, data: Uint8Array | string, size: number, maxQueue: number, policy: SlowConsumerPolicy, counters: OutboxCounters): number {
  if (socket.destroyed || !socket.writable) return -1;
  const queued = socket.writableLength;
  if (queued > 0 && queued + size > maxQueue) {
    if (policy === 'drop') {
      counters.dropped++;
      counters.droppedBytes += size;
      return -1;
    }
    counters.slowDisconnects++;
    socket.destroy(
      new SocketkitError('ERR_SLOW_CONSUMER', `slow consumer: ${queued.toLocaleString('en-US')} bytes waiting for it, and the queue holds ${maxQueue.toLocaleString('en-US')}`),
    );
    return -1;
  }
  counters.delivered++;
  socket.write(data);
  return socket.writableLength;
}

/**
 * What a broker may hold for one client: a bounded outgoing queue, so that a client that stops
 * reading costs at most its queue and never slows the others. ncat's broker writes to each
 * client in turn with a blocking write, so one such client stalls everyone; here a write never
 * waits: it is queued (the socket's own write buffer is the queue) or, when the queue is full,
 * the slow-consumer policy decides.
 *
 * - `disconnect` (the default): the client is closed with ERR_SLOW_CONSUMER, logged by the server.
 * - `drop`: what does not fit is dropped for that client, and counted.
 *
 * A message larger than the whole queue is still accepted when the queue is empty (otherwise a
 * framed message over the queue size could never be delivered): the bound per client is the
 * queue plus one message.
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
}

export function newOutboxCounters(): OutboxCounters {
  return { delivered: 0, dropped: 0, droppedBytes: 0, slowDisconnects: 0 };
}

/** Queues `data` for `socket` within `maxQueue` bytes, or applies the policy. True when queued. */
export function offer(socket: Socket, data: Uint8Array | string, maxQueue: number, policy: SlowConsumerPolicy, counters: OutboxCounters): boolean {
  if (socket.destroyed || !socket.writable) return false;
  const size = typeof data === 'string' ? Buffer.byteLength(data) : data.byteLength;
  const queued = socket.writableLength;
  if (queued > 0 && queued + size > maxQueue) {
    if (policy === 'drop') {
      counters.dropped++;
      counters.droppedBytes += size;
      return false;
    }
    counters.slowDisconnects++;
    socket.destroy(
      new SocketkitError('ERR_SLOW_CONSUMER', `slow consumer: ${queued.toLocaleString('en-US')} bytes waiting for it, and the queue holds ${maxQueue.toLocaleString('en-US')}`),
    );
    return false;
  }
  counters.delivered++;
  socket.write(data);
  return true;
}

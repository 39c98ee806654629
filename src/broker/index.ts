/**
 * `socketkit broker`: the multi-connection server that relays between its clients, on the
 * managed server (limits, idle sweep, statistics, access lists, TLS as every server).
 */
import { randomBytes } from 'node:crypto';
import { startServer, type ManagedServer, type ManagedServerOptions } from '../server/server.js';
import type { Endpoint } from '../net/endpoint.js';
import { SocketkitError } from '../core/errors.js';
import { DEFAULT_MAX_FRAME_SIZE } from '../codec/constants.js';
import { BrokerHub, DEFAULT_BROKER_HOLD_MS } from './hub.js';
import { byteBroker, framedBroker } from './relay.js';
import { Chat, type ChatEvent } from './chat.js';
import { LocalChatDirectory, type BrokerBridge, type ChatDirectory } from './bridge.js';
import type { OutboxCounters, SlowConsumerPolicy } from './outbox.js';

export { DEFAULT_CHAT_ROOM, type ChatEvent } from './chat.js';
export { LocalChatDirectory, type BrokerBridge, type ChatDirectory } from './bridge.js';
export type { OutboxCounters, SlowConsumerPolicy } from './outbox.js';
export { DEFAULT_BROKER_HOLD_MS } from './hub.js';

/** Bytes a client may have waiting for it before the slow-consumer policy applies. */
export const DEFAULT_BROKER_MAX_QUEUE = 1024 * 1024;
/** The longest chat line relayed, bytes. */
export const DEFAULT_CHAT_MAX_LINE = 4096;
/** What happens to a client whose queue is full: it is closed (ERR_SLOW_CONSUMER). */
export const DEFAULT_SLOW_CONSUMER_POLICY: SlowConsumerPolicy = 'disconnect';

export type BrokerMode = 'bytes' | 'framed' | 'chat';

export interface BrokerOptions extends Omit<ManagedServerOptions, 'protocol'> {
  /** `bytes` (default): chunks as read; `framed`: whole length-prefixed messages; `chat`: lines, names, rooms. */
  readonly mode?: BrokerMode;
  /** With `framed`: the largest message relayed. Default 16 MiB. */
  readonly maxMessageSize?: number;
  /** Bytes a client may have waiting for it. Default 1 MiB. */
  readonly maxQueue?: number;
  /** What happens to a client whose queue is full. Default `disconnect` (ERR_SLOW_CONSUMER). */
  readonly slow?: SlowConsumerPolicy;
  /**
   * Bytes and framed modes: how long a client past half its queue (or a bridge with a high
   * backlog) may hold the senders back while it catches up, ms; 0: never (see hub.ts). Default 500.
   */
  readonly holdMs?: number;
  /** With `chat`: the longest line relayed, bytes. Default 4,096. */
  readonly maxLine?: number;
  /** Joins other instances (see redis.ts). */
  readonly bridge?: BrokerBridge;
  /** With `chat`: names and rooms, shared when instances are joined. Default this process's own. */
  readonly directory?: ChatDirectory;
  /** With `chat`: joins, leaves and renames, for the log. */
  readonly onChatEvent?: (e: ChatEvent) => void;
}

/** A running broker. */
export interface Broker {
  readonly server: ManagedServer;
  readonly endpoint: Endpoint;
  /** Delivered, dropped and slow-consumer counts. */
  readonly relay: Readonly<OutboxCounters>;
  /** Clients connected now. */
  readonly clients: number;
  close(graceMs?: number): Promise<void>;
}

function positive(name: string, v: number): number {
  if (!Number.isSafeInteger(v) || v < 1) throw new SocketkitError('ERR_INVALID_ARG', `${name} must be a whole number from 1, not ${v}`);
  return v;
}

/** Starts a broker on `ep`. */
export async function startBroker(ep: Endpoint, options: BrokerOptions = {}): Promise<Broker> {
  const { mode = 'bytes', maxMessageSize, maxQueue, slow, holdMs, maxLine, bridge, directory, onChatEvent, ...rest } = options;
  const queue = positive('queue size', maxQueue ?? DEFAULT_BROKER_MAX_QUEUE);
  const policy: SlowConsumerPolicy = slow ?? DEFAULT_SLOW_CONSUMER_POLICY;
  if (policy !== 'disconnect' && policy !== 'drop') throw new SocketkitError('ERR_INVALID_ARG', `slow-consumer policy must be disconnect or drop, not ${String(policy)}`);
  // Chat speaks JSON over the bridge; the byte brokers relay bytes through it.
  const hold = holdMs ?? DEFAULT_BROKER_HOLD_MS;
  if (!Number.isSafeInteger(hold) || hold < 0) throw new SocketkitError('ERR_INVALID_ARG', `hold time must be a whole number of ms from 0, not ${hold}`);
  const hub = new BrokerHub({ maxQueue: queue, slow: policy, holdMs: hold, ...(bridge && mode !== 'chat' ? { bridge } : {}) });
  const protocol =
    mode === 'chat'
      ? new Chat(hub, {
          maxLine: positive('line length', maxLine ?? DEFAULT_CHAT_MAX_LINE),
          directory: directory ?? new LocalChatDirectory(),
          instance: randomBytes(8).toString('hex'),
          ...(bridge ? { bridge } : {}),
          ...(onChatEvent ? { onEvent: onChatEvent } : {}),
        }).protocol()
      : mode === 'framed'
        ? framedBroker(hub, maxMessageSize ?? DEFAULT_MAX_FRAME_SIZE)
        : byteBroker(hub);
  const server = await startServer(ep, { ...rest, protocol });
  return {
    server,
    endpoint: server.endpoint,
    relay: hub.counters,
    get clients() {
      return hub.size;
    },
    async close(graceMs = 0) {
      await server.close(graceMs);
      await bridge?.close();
    },
  };
}

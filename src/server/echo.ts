/**
 * The echo protocols on a managed server: bytes (every byte back, as it arrives) and framed
 * (whole length-prefixed messages back). These are what `socketkit echo-server` runs.
 *
 * Byte echo backpressure: reading pauses while the socket's write buffer is above its
 * high-water mark (a client that sends and never reads cannot grow our memory) and resumes on
 * 'drain'. The peer's half-close is honoured: everything it sent is echoed, then we end too.
 */
import type { Socket } from 'node:net';
import { echoFramesOn } from '../message/index.js';
import { MemoryBudget } from './budget.js';
import { DEFAULT_MEMORY_BUDGET } from './defaults.js';
import type { Protocol } from './server.js';
import { startServer, type ManagedServer, type ManagedServerOptions } from './server.js';
import type { Endpoint } from '../net/endpoint.js';

/**
 * Byte-for-byte echo. Each read echoed counts as one round trip (a client that waits for each
 * echo before sending again makes one read per round trip).
 */
export const byteEcho: Protocol = (counters) => {
  // Created once per server and shared by every socket: no closure per connection.
  function onData(this: Socket, chunk: Buffer): void {
    counters.roundTrips++;
    if (!this.write(chunk)) this.pause();
  }
  function onDrain(this: Socket): void {
    this.resume();
  }
  function onEnd(this: Socket): void {
    this.end();
  }
  return (socket) => {
    socket.on('data', onData);
    socket.on('drain', onDrain);
    socket.on('end', onEnd);
  };
};

/**
 * Echo of whole messages (4-byte big-endian length, then the payload); each message is a round
 * trip. What the connections buffer is counted in `budget` (see `echoFramesOn`).
 */
export function framedEcho(options: { readonly maxMessageSize?: number; readonly budget?: MemoryBudget } = {}): Protocol {
  return (counters) => {
    const onMessage = (): void => {
      counters.roundTrips++;
    };
    return (socket) => echoFramesOn(socket, { ...options, onMessage });
  };
}

export interface ManagedEchoServerOptions extends Omit<ManagedServerOptions, 'protocol'> {
  /** Echo whole length-prefixed messages instead of bytes. */
  readonly framed?: boolean;
  /** With `framed`: the largest message accepted, bytes. */
  readonly maxMessageSize?: number;
  /** With `framed`: the bytes all connections may buffer together. Default a new budget of {@link DEFAULT_MEMORY_BUDGET}. */
  readonly memoryBudget?: MemoryBudget;
}

/** Starts the echo server with limits, idle timeout and statistics (`socketkit echo-server`). */
export function startManagedEchoServer(ep: Endpoint, options: ManagedEchoServerOptions = {}): Promise<ManagedServer> {
  const { framed, maxMessageSize, memoryBudget, ...rest } = options;
  const budget = memoryBudget ?? new MemoryBudget(DEFAULT_MEMORY_BUDGET);
  const protocol = framed ? framedEcho({ budget, ...(maxMessageSize === undefined ? {} : { maxMessageSize }) }) : byteEcho;
  return startServer(ep, { ...rest, protocol });
}

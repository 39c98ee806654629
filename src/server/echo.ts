/**
 * The echo protocols on a managed server: bytes (every byte back, as it arrives) and framed
 * (whole length-prefixed messages back). These are what `socketkit echo-server` runs.
 *
 * Byte echo backpressure: reading pauses while the socket's write buffer is above its
 * high-water mark (a client that sends and never reads cannot grow our memory) and resumes on
 * 'drain'. The peer's half-close is honoured: everything it sent is echoed, then we end too.
 */
import type { Socket } from 'node:net';
import { MessageConnection } from '../message/index.js';
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

/** Echo of whole messages (4-byte big-endian length, then the payload); each message is a round trip. */
export function framedEcho(options: { readonly maxMessageSize?: number } = {}): Protocol {
  return (counters) => (socket) => {
    const conn = new MessageConnection(socket, options.maxMessageSize === undefined ? {} : { maxMessageSize: options.maxMessageSize });
    void (async () => {
      try {
        for await (const message of conn) {
          counters.roundTrips++;
          await conn.send(message);
        }
        await conn.end();
      } catch {
        conn.close();
      }
    })();
  };
}

export interface ManagedEchoServerOptions extends Omit<ManagedServerOptions, 'protocol'> {
  /** Echo whole length-prefixed messages instead of bytes. */
  readonly framed?: boolean;
  /** With `framed`: the largest message accepted, bytes. */
  readonly maxMessageSize?: number;
}

/** Starts the echo server with limits, idle timeout and statistics (`socketkit echo-server`). */
export function startManagedEchoServer(ep: Endpoint, options: ManagedEchoServerOptions = {}): Promise<ManagedServer> {
  const { framed, maxMessageSize, ...rest } = options;
  const protocol = framed ? framedEcho(maxMessageSize === undefined ? {} : { maxMessageSize }) : byteEcho;
  return startServer(ep, { ...rest, protocol });
}

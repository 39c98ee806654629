/**
 * The TCP (and Unix socket) echo server: every byte that arrives goes back, for any number of
 * clients at once.
 *
 * Backpressure: reading from a connection pauses while its write side is above the high-water
 * mark (a client that sends and never reads cannot grow our memory), and resumes on 'drain'.
 * A client's half-close is honoured: everything it sent is echoed, then our side ends too.
 */
import type { Socket } from 'node:net';
import { listen, type ListenOptions, type ListenTransport, type Listener } from '../net/listen.js';
import { formatPeer, type Endpoint } from '../net/endpoint.js';
import { toSocketkitError } from '../core/errors.js';

/** What an echo server reports about its connections. */
export type EchoServerEvent =
  | { readonly event: 'connect'; readonly id: number; readonly peer: string; readonly active: number }
  | {
      readonly event: 'disconnect';
      readonly id: number;
      readonly peer: string;
      readonly bytesIn: number;
      readonly bytesOut: number;
      readonly ms: number;
      readonly active: number;
      readonly error?: string;
    }
  | { readonly event: 'refused'; readonly peer: string; readonly reason: string };

export interface EchoServerStats {
  accepted: number;
  refused: number;
  active: number;
  /** Bytes received and echoed by connections that have closed, plus live ones when read. */
  bytesIn: number;
  bytesOut: number;
}

/** Handles one accepted connection; returns nothing, reports through the server. */
export type ConnectionHandler = (socket: Socket) => void;

export interface EchoServerOptions {
  readonly onEvent?: (e: EchoServerEvent) => void;
  readonly signal?: AbortSignal;
  readonly admit?: ListenOptions['admit'];
  readonly transport?: ListenTransport;
  /**
   * Replaces the byte-for-byte echo with another per-connection protocol (the framed echo).
   * It must end the socket when the peer ends.
   */
  readonly handler?: ConnectionHandler;
}

/** Echoes a stream connection byte for byte, with backpressure and half-close. */
export function echoBytes(socket: Socket): void {
  socket.on('data', (chunk: Buffer) => {
    if (!socket.write(chunk)) socket.pause();
  });
  socket.on('drain', () => socket.resume());
  socket.on('end', () => socket.end());
}

/** A running echo server. */
export class EchoServer {
  readonly listener: Listener;
  readonly #closed: { bytesIn: number; bytesOut: number };

  /** @internal use `startEchoServer()` */
  constructor(listener: Listener, closed: { bytesIn: number; bytesOut: number }) {
    this.listener = listener;
    this.#closed = closed;
  }

  get endpoint(): Endpoint {
    return this.listener.endpoint;
  }

  /** Totals so far, live connections included. */
  get stats(): EchoServerStats {
    let bytesIn = this.#closed.bytesIn;
    let bytesOut = this.#closed.bytesOut;
    for (const s of this.listener.connections) {
      bytesIn += s.bytesRead;
      bytesOut += s.bytesWritten;
    }
    return {
      accepted: this.listener.counters.accepted,
      refused: this.listener.counters.refused,
      active: this.listener.connections.size,
      bytesIn,
      bytesOut,
    };
  }

  /** Graceful stop: no new connections; live ones get `graceMs` to finish. */
  close(graceMs = 0): Promise<void> {
    return this.listener.close(graceMs);
  }
}

/** Starts an echo server on `ep` (TCP over IPv4/IPv6, or a Unix socket). */
export async function startEchoServer(ep: Endpoint, options: EchoServerOptions = {}): Promise<EchoServer> {
  let nextId = 1;
  let active = 0;
  const closed = { bytesIn: 0, bytesOut: 0 };
  const handler = options.handler ?? echoBytes;
  const onConnection = (socket: Socket): void => {
    const id = nextId++;
    const peer = ep.kind === 'unix' ? `unix#${id}` : formatPeer(socket.remoteAddress, socket.remotePort);
    const started = performance.now();
    let error: string | undefined;
    active++;
    socket.on('error', (err) => {
      error ??= toSocketkitError(err, peer).code;
    });
    socket.once('close', () => {
      active--;
      const bytesIn = socket.bytesRead;
      const bytesOut = socket.bytesWritten;
      closed.bytesIn += bytesIn;
      closed.bytesOut += bytesOut;
      options.onEvent?.({
        event: 'disconnect',
        id,
        peer,
        bytesIn,
        bytesOut,
        ms: Math.round(performance.now() - started),
        active,
        ...(error !== undefined ? { error } : {}),
      });
    });
    options.onEvent?.({ event: 'connect', id, peer, active });
    handler(socket);
  };
  const listener = await listen(ep, {
    onConnection,
    ...(options.admit ? { admit: options.admit } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.transport ? { transport: options.transport } : {}),
  });
  listener.on('refused', (peer, reason) => options.onEvent?.({ event: 'refused', peer, reason }));
  return new EchoServer(listener, closed);
}

/**
 * The TCP (and Unix socket) echo server: every byte that arrives goes back, for any number of
 * clients at once.
 *
 * Backpressure: reading from a connection pauses while its write side is above the high-water
 * mark (a client that sends and never reads cannot grow our memory), and resumes on 'drain'.
 * A client's half-close is honoured: everything it sent is echoed, then our side ends too.
 *
 * This is the simple face of the managed server in src/server (which adds connection limits,
 * idle timeouts and round-trip statistics); both run the same `byteEcho` protocol.
 */
import type { Socket } from 'node:net';
import type { ListenOptions, ListenTransport, Listener } from '../net/listen.js';
import type { Endpoint } from '../net/endpoint.js';
import { startServer, type ManagedServer, type ServerEvent } from '../server/server.js';
import { byteEcho } from '../server/echo.js';

/** What an echo server reports about its connections. */
export type EchoServerEvent = Exclude<ServerEvent, { readonly event: 'idle' }>;

export interface EchoServerStats {
  accepted: number;
  refused: number;
  active: number;
  /** Bytes received and echoed, closed and live connections together. */
  bytesIn: number;
  bytesOut: number;
}

/** Handles one accepted connection; it must end the socket when the peer ends. */
export type ConnectionHandler = (socket: Socket) => void;

export interface EchoServerOptions {
  readonly onEvent?: (e: EchoServerEvent) => void;
  readonly signal?: AbortSignal;
  readonly admit?: ListenOptions['admit'];
  readonly transport?: ListenTransport;
  /** Replaces the byte-for-byte echo with another per-connection protocol (the framed echo). */
  readonly handler?: ConnectionHandler;
}

/** A running echo server. */
export class EchoServer {
  readonly #server: ManagedServer;

  /** @internal use `startEchoServer()` */
  constructor(server: ManagedServer) {
    this.#server = server;
  }

  get listener(): Listener {
    return this.#server.listener;
  }

  get endpoint(): Endpoint {
    return this.#server.endpoint;
  }

  /** Totals so far, live connections included. */
  get stats(): EchoServerStats {
    const s = this.#server.stats();
    return { accepted: s.accepted, refused: s.refused, active: s.connections, bytesIn: s.bytesIn, bytesOut: s.bytesOut };
  }

  /** Graceful stop: no new connections; live ones get `graceMs` to finish. */
  close(graceMs = 0): Promise<void> {
    return this.#server.close(graceMs);
  }
}

/** Starts an echo server on `ep` (TCP over IPv4/IPv6, or a Unix socket). */
export async function startEchoServer(ep: Endpoint, options: EchoServerOptions = {}): Promise<EchoServer> {
  const { handler, onEvent, ...rest } = options;
  const server = await startServer(ep, {
    ...rest,
    protocol: handler ? () => handler : byteEcho,
    ...(onEvent ? { onEvent: (e: ServerEvent) => e.event !== 'idle' && onEvent(e) } : {}),
  });
  return new EchoServer(server);
}

/**
 * A managed stream server: `listen()` plus the machinery every long-running server needs, so
 * the echo server and the file-transfer servers share it.
 *
 * - a connection limit: past it, new connections are refused (closed before any byte is read,
 *   counted, reported) while the open ones keep being served;
 * - an idle timeout, by one sweep timer for the whole server (see idle.ts);
 * - live statistics: connections, accepted, refused, idle-closed, bytes, round trips; for TLS,
 *   bytes are plaintext and a connection counts as accepted once its handshake completes;
 * - connections lost for lack of descriptors counted and reported, rate-limited (see listen.ts);
 * - graceful close: stop accepting, let live connections finish for a grace period.
 *
 * Small per connection on purpose (10,000 idle connections must cost little): the server adds
 * no closure and no timer per connection. Its socket listeners are functions shared by every
 * socket (Node calls them with `this` = the socket), and per-connection bookkeeping exists only
 * when someone listens to per-connection events.
 */
import type { Socket } from 'node:net';
import { listen, type ListenTransport, type Listener } from '../net/listen.js';
import { formatPeer, type Endpoint } from '../net/endpoint.js';
import { toSocketkitError } from '../core/errors.js';
import { connectionLimit, type AdmitCheck } from './limits.js';
import { IdleSweeper, type ConnectionActivity } from './idle.js';
import { newCounters, type ServerCounters, type ServerStats } from './stats.js';
import { Throttle } from './throttle.js';
import { ACCEPT_ERROR_REPORT_MS } from './defaults.js';
import type { ErrorCode, SocketkitError } from '../core/errors.js';

/** What a managed server reports about connections. */
export type ServerEvent =
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
  | { readonly event: 'refused'; readonly peer: string; readonly reason: string }
  | { readonly event: 'idle'; readonly peer: string; readonly idleMs: number };

/**
 * Connections lost to accept failures (ERR_NO_DESCRIPTORS: out of descriptors), reported the
 * first at once, then at most once a second with how many since the previous report.
 */
export interface AcceptErrorReport {
  readonly code: ErrorCode;
  readonly message: string;
  /** Connections lost since the previous report. */
  readonly count: number;
}

/** Serves one connection. It must end the socket when the peer ends (listen() keeps sockets half-open). */
export type SocketHandler = (socket: Socket) => void;

/**
 * A protocol: set up once per server with the server's counters (to count round trips), it
 * returns the per-connection handler. Set-up once lets it create its socket listeners once.
 */
export type Protocol = (counters: ServerCounters) => SocketHandler;

export interface ManagedServerOptions {
  readonly protocol: Protocol;
  /** Most connections open at once; more are refused. Default: no limit. */
  readonly maxConnections?: number;
  /** Close connections with no byte in or out for this long, ms. Default (or 0): never. */
  readonly idleTimeoutMs?: number;
  /** For the idle timeout: progress the protocol sees beyond the byte counters (a file transfer's disk work). */
  readonly activity?: ConnectionActivity;
  /** Per-connection events. Without it the server keeps no per-connection state at all. */
  readonly onEvent?: (e: ServerEvent) => void;
  /** Accept failures, rate-limited (independent of `onEvent`: a quiet server still says it is out of descriptors). */
  readonly onAcceptError?: (e: AcceptErrorReport) => void;
  /** Abort stops the server (as `close(0)`). */
  readonly signal?: AbortSignal;
  readonly backlog?: number;
  readonly transport?: ListenTransport;
  /** Another admission check (allow/deny lists), run before the connection limit. */
  readonly admit?: AdmitCheck;
  /** See ListenOptions.clearStaleUnixSocket (false in cluster workers). */
  readonly clearStaleUnixSocket?: boolean;
}

/** Per-connection bookkeeping, kept only when per-connection events are wanted. */
interface ConnectionInfo {
  readonly id: number;
  readonly peer: string;
  readonly started: number;
  error: string | undefined;
}

/** A running managed server. */
export class ManagedServer {
  readonly listener: Listener;
  readonly counters: ServerCounters;
  readonly #sweeper: IdleSweeper | undefined;
  readonly #acceptErrors: Throttle<SocketkitError> | undefined;

  /** @internal use `startServer()` */
  readonly #moved: ConnectionActivity['moved'];

  constructor(listener: Listener, counters: ServerCounters, sweeper: IdleSweeper | undefined, acceptErrors: Throttle<SocketkitError> | undefined, moved?: ConnectionActivity['moved']) {
    this.#moved = moved;
    this.listener = listener;
    this.counters = counters;
    this.#sweeper = sweeper;
    this.#acceptErrors = acceptErrors;
  }

  /** The bound address (with the real port when 0 was asked for). */
  get endpoint(): Endpoint {
    return this.listener.endpoint;
  }

  /** Totals now, live connections' bytes included. */
  stats(): ServerStats {
    let bytesIn = this.counters.closedBytesIn;
    let bytesOut = this.counters.closedBytesOut;
    const moved = this.#moved;
    for (const s of this.listener.connections) {
      bytesIn += s.bytesRead;
      bytesOut += s.bytesWritten ?? 0;
      if (moved) {
        const m = moved(s);
        bytesIn += m.read;
        bytesOut += m.written;
      }
    }
    return {
      connections: this.listener.connections.size,
      accepted: this.listener.counters.accepted,
      refused: this.listener.counters.refused,
      acceptErrors: this.listener.counters.acceptErrors,
      idleClosed: this.counters.idleClosed,
      bytesIn,
      bytesOut,
      roundTrips: this.counters.roundTrips,
    };
  }

  /** Graceful stop (idempotent): no new connections; live ones get `graceMs` to finish, then are closed. */
  close(graceMs = 0): Promise<void> {
    this.#sweeper?.stop();
    this.#acceptErrors?.flush();
    return this.listener.close(graceMs);
  }
}

/** How a connection's peer is named in events: its address, or `unix#ID` on a Unix socket. */
export function peerOf(socket: Socket, ep: Endpoint, id: number): string {
  return ep.kind === 'unix' ? `unix#${id}` : formatPeer(socket.remoteAddress, socket.remotePort);
}

/** Starts a managed server on `ep` (TCP over IPv4/IPv6, or a Unix socket). */
export async function startServer(ep: Endpoint, options: ManagedServerOptions): Promise<ManagedServer> {
  const counters = newCounters();
  const handler = options.protocol(counters);
  const onEvent = options.onEvent;
  const infos = onEvent ? new WeakMap<Socket, ConnectionInfo>() : undefined;
  let nextId = 1;

  // Shared listeners: `this` is the socket.
  const onError = infos
    ? function (this: Socket, err: Error): void {
        const info = infos.get(this);
        if (info) info.error ??= toSocketkitError(err).code;
      }
    : function (): void {
        // The socket closes itself after an error; nothing to keep.
      };

  const moved = options.activity?.moved?.bind(options.activity);
  const onClose = (socket: Socket): void => {
    const m = moved?.(socket);
    const bytesIn = socket.bytesRead + (m?.read ?? 0);
    const bytesOut = (socket.bytesWritten ?? 0) + (m?.written ?? 0);
    counters.closedBytesIn += bytesIn;
    counters.closedBytesOut += bytesOut;
    const info = infos?.get(socket);
    if (info && onEvent) {
      onEvent({
        event: 'disconnect',
        id: info.id,
        peer: info.peer,
        bytesIn,
        bytesOut,
        ms: Math.round(performance.now() - info.started),
        active: listener.connections.size,
        ...(info.error !== undefined ? { error: info.error } : {}),
      });
    }
  };

  const onConnection = (socket: Socket): void => {
    socket.on('error', onError);
    if (infos && onEvent) {
      const id = nextId++;
      const info: ConnectionInfo = { id, peer: peerOf(socket, ep, id), started: performance.now(), error: undefined };
      infos.set(socket, info);
      onEvent({ event: 'connect', id, peer: info.peer, active: listener.connections.size });
    }
    handler(socket);
  };

  const max = options.maxConnections ?? 0;
  const limit = max > 0 ? connectionLimit(max) : undefined;
  const check = options.admit;
  const admit: AdmitCheck | undefined = limit && check ? (s, l) => check(s, l) ?? limit(s, l) : (check ?? limit);
  // The closures above run only on connections, after this assignment.
  const listener: Listener = await listen(ep, {
    onConnection,
    onClose,
    ...(admit ? { admit } : {}),
    ...(options.backlog !== undefined ? { backlog: options.backlog } : {}),
    ...(options.transport ? { transport: options.transport } : {}),
    ...(options.clearStaleUnixSocket !== undefined ? { clearStaleUnixSocket: options.clearStaleUnixSocket } : {}),
  });
  if (onEvent) listener.on('refused', (peer, reason) => onEvent({ event: 'refused', peer, reason }));
  // Counted always (in the statistics); reported, rate-limited, to whoever listens.
  const onAcceptError = options.onAcceptError;
  const acceptErrors = onAcceptError
    ? new Throttle<SocketkitError>(ACCEPT_ERROR_REPORT_MS, (e, count) => onAcceptError({ code: e.code, message: e.message, count }))
    : undefined;
  if (acceptErrors) listener.on('accept-error', (e) => acceptErrors.hit(e));

  const idleMs = options.idleTimeoutMs ?? 0;
  const sweeper =
    idleMs > 0
      ? new IdleSweeper(listener.connections, {
          timeoutMs: idleMs,
          ...(options.activity ? { activity: options.activity } : {}),
          onIdle: (socket, ms) => {
            counters.idleClosed++;
            if (onEvent) {
              const info = infos?.get(socket);
              onEvent({ event: 'idle', peer: info?.peer ?? peerOf(socket, ep, 0), idleMs: Math.round(ms) });
            }
            socket.destroy();
          },
        })
      : undefined;
  const server = new ManagedServer(listener, counters, sweeper, acceptErrors, moved);
  // Abort closes the whole server (sweeper included), not just the listener.
  if (options.signal) {
    const stop = (): void => void server.close(0);
    if (options.signal.aborted) stop();
    else options.signal.addEventListener('abort', stop, { once: true });
  }
  return server;
}

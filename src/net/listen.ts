/**
 * Listening for stream connections on TCP (IPv4/IPv6) or a Unix socket path.
 *
 * The listener tracks every open connection in a Set so it can report them and shut down
 * gracefully: `close(graceMs)` stops accepting, lets live connections finish for up to
 * `graceMs`, destroys the rest, waits for every `'close'`, and is safe to call twice.
 */
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import { EventEmitter } from 'node:events';
import { lstat, unlink } from 'node:fs/promises';
import { existsSync, lstatSync, unlinkSync } from 'node:fs';
import cluster from 'node:cluster';
import { dirname, resolve as resolvePath } from 'node:path';
import { SocketkitError, toSocketkitError } from '../core/errors.js';
import { DEFAULT_BACKLOG } from '../core/defaults.js';
import { formatEndpoint, formatPeer, type Endpoint } from './endpoint.js';

/**
 * Hook for transports layered on a plain listener (TLS adds itself here): creates the server
 * and names the event that hands over a ready connection.
 */
export interface ListenTransport {
  create(): Server;
  readonly readyEvent: 'connection' | 'secureConnection';
}

/**
 * allowHalfOpen: a peer that half-closes still gets every reply; the handler ends its own side
 * (Node's default would end ours the moment the peer's FIN arrives, losing replies in flight).
 */
const plainTransport: ListenTransport = { create: () => createServer({ noDelay: true, allowHalfOpen: true }), readyEvent: 'connection' };

export interface ListenOptions {
  /** Called with every admitted, ready connection. */
  readonly onConnection: (socket: Socket) => void;
  /**
   * Admission check on each raw connection, before any byte is read: return a reason string to
   * refuse it (it is closed and counted), or undefined to admit it.
   */
  readonly admit?: (socket: Socket, listener: Listener) => string | undefined;
  /**
   * Called once as each admitted connection closes, after it has left `connections` (one
   * listener function shared by every socket, so watching closes costs no per-connection closure).
   */
  readonly onClose?: (socket: Socket) => void;
  /**
   * Whether a stale Unix socket file (left by a dead server) is removed before binding. Default
   * true. Cluster workers pass false: the primary owns the path and clears it once, and to a
   * worker the primary's live socket would look like someone else's.
   */
  readonly clearStaleUnixSocket?: boolean;
  /** Abort stops the listener (as `close(0)`). */
  readonly signal?: AbortSignal;
  readonly backlog?: number;
  readonly transport?: ListenTransport;
}

export interface ListenerCounters {
  /** Connections admitted since start. */
  accepted: number;
  /** Connections refused by `admit`. */
  refused: number;
}

export type ListenerStatus = { readonly state: 'listening' } | { readonly state: 'closing' } | { readonly state: 'closed' };

export interface ListenerEvents {
  refused: [peer: string, reason: string];
}

/** A listening server and the connections it holds. */
export class Listener extends EventEmitter<ListenerEvents> {
  /** The bound address (with the real port when 0 was asked for). */
  readonly endpoint: Endpoint;
  readonly counters: ListenerCounters = { accepted: 0, refused: 0 };
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  /** One 'close' listener for every socket: a closure per connection would cost memory per connection. */
  readonly #onSocketClose: (this: Socket) => void;
  #status: ListenerStatus = { state: 'listening' };
  #closing: Promise<void> | undefined;

  /** @internal use `listen()` */
  constructor(server: Server, endpoint: Endpoint, onClose?: (socket: Socket) => void) {
    super();
    this.#server = server;
    this.endpoint = endpoint;
    const sockets = this.#sockets;
    this.#onSocketClose = function (this: Socket) {
      sockets.delete(this);
      onClose?.(this);
    };
  }

  /** The open connections (raw sockets). */
  get connections(): ReadonlySet<Socket> {
    return this.#sockets;
  }

  get status(): ListenerStatus {
    return this.#status;
  }

  /** The underlying Node server, for options such as `maxConnections`. */
  get server(): Server {
    return this.#server;
  }

  /** @internal */
  track(socket: Socket): void {
    this.#sockets.add(socket);
    socket.on('close', this.#onSocketClose); // 'close' is emitted once; no once() wrapper needed
  }

  /**
   * Stops accepting; lets open connections finish for up to `graceMs` milliseconds; destroys
   * whatever is still open; resolves when every connection and the server have closed.
   */
  close(graceMs = 0): Promise<void> {
    this.#closing ??= this.#close(graceMs);
    return this.#closing;
  }

  async #close(graceMs: number): Promise<void> {
    this.#status = { state: 'closing' };
    const serverClosed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    if (this.#sockets.size > 0 && graceMs > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(finish, graceMs);
        const poll = setInterval(() => {
          if (this.#sockets.size === 0) finish();
        }, 20);
        function finish(): void {
          clearTimeout(timer);
          clearInterval(poll);
          resolve();
        }
      });
    }
    // The server's close callback can run before the destroyed sockets emit 'close': wait for
    // each, so that once this resolves `connections` is empty and every close has been seen.
    const closed = [...this.#sockets].map((s) => new Promise<void>((resolve) => s.once('close', () => resolve())));
    for (const s of this.#sockets) s.destroy();
    await Promise.all([serverClosed, ...closed]);
    if (this.endpoint.kind === 'unix') ownedUnixSockets.delete(this.endpoint.path); // closing removed it
    this.#status = { state: 'closed' };
  }
}

/**
 * Unix socket files this process bound and still serves, with their identity (device, inode).
 * A graceful close removes the file (libuv does); an abrupt exit (a second Ctrl-C, a fatal
 * error) would leave it behind, so at exit whatever is still listed is removed, if the file
 * there is still the one we bound.
 */
const ownedUnixSockets = new Map<string, { readonly dev: number; readonly ino: number }>();
let exitHookInstalled = false;

function removeOwnedUnixSockets(): void {
  for (const [path, id] of ownedUnixSockets) {
    try {
      const st = lstatSync(path);
      if (st.isSocket() && st.dev === id.dev && st.ino === id.ino) unlinkSync(path);
    } catch {
      // already gone, or not ours to remove
    }
  }
}

function ownUnixSocket(path: string): void {
  try {
    const st = lstatSync(path);
    if (!exitHookInstalled) {
      exitHookInstalled = true;
      process.once('exit', removeOwnedUnixSockets);
    }
    ownedUnixSockets.set(path, { dev: st.dev, ino: st.ino });
  } catch {
    // not there (an abstract or already removed path): nothing to clean up
  }
}

/**
 * Removes a Unix socket file left by a dead server; refuses to touch anything else (a regular
 * file, or a socket a live server answers on: ERR_ADDR_IN_USE).
 */
export async function clearStaleUnixSocket(path: string): Promise<void> {
  let st;
  try {
    st = await lstat(path);
  } catch {
    return; // nothing there
  }
  if (!st.isSocket()) {
    throw new SocketkitError('ERR_ADDR_IN_USE', `address already in use: unix:${path} exists and is not a socket (not removing it)`);
  }
  // Only a refused connection proves nobody is there. EAGAIN (a full backlog) means a busy live
  // server and EACCES means we cannot tell: then the file stays, and listen() reports the error.
  const state = await new Promise<'live' | 'stale' | 'unknown'>((resolve) => {
    const probe = netConnect({ path });
    probe.once('connect', () => {
      probe.destroy();
      resolve('live');
    });
    probe.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED' ? 'stale' : 'unknown'));
  });
  if (state === 'live') throw new SocketkitError('ERR_ADDR_IN_USE', `address already in use: unix:${path} (a server is listening there)`);
  if (state === 'stale') await unlink(path).catch(() => undefined);
}

/** Starts listening on `ep`; resolves once bound, or rejects with a coded error. */
export async function listen(ep: Endpoint, options: ListenOptions): Promise<Listener> {
  if (ep.kind === 'unix' && options.clearStaleUnixSocket !== false) await clearStaleUnixSocket(ep.path);
  const transport = options.transport ?? plainTransport;
  const server = transport.create();
  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      server.removeListener('listening', onListening);
      // libuv reports a Unix path in a missing directory as EACCES (for Windows' sake): say what is wrong.
      if (ep.kind === 'unix' && err.code === 'EACCES' && !existsSync(dirname(resolvePath(ep.path)))) {
        reject(new SocketkitError('ERR_NOT_FOUND', `no such directory: ${dirname(resolvePath(ep.path))} (for unix:${ep.path})`, { cause: err }));
        return;
      }
      reject(toSocketkitError(err, formatEndpoint(ep)));
    };
    const onListening = (): void => {
      server.removeListener('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    const backlog = options.backlog ?? DEFAULT_BACKLOG;
    if (ep.kind === 'unix') server.listen({ path: ep.path, backlog });
    else server.listen({ host: ep.host, port: ep.port, backlog, ipv6Only: false });
  });
  const addr = server.address();
  const bound: Endpoint =
    ep.kind === 'unix' || addr === null || typeof addr === 'string'
      ? ep
      : { kind: 'inet', host: ep.host, port: addr.port };
  const listener = new Listener(server, bound, options.onClose);
  // A cluster worker's socket file belongs to the primary (which bound it); so does one a
  // caller told us not to clear.
  if (ep.kind === 'unix' && options.clearStaleUnixSocket !== false && !cluster.isWorker) ownUnixSocket(ep.path);
  server.on('error', () => undefined); // after bind, errors belong to connections
  server.on('connection', (socket: Socket) => {
    const reason = options.admit?.(socket, listener);
    if (reason !== undefined) {
      listener.counters.refused++;
      listener.emit('refused', formatPeer(socket.remoteAddress, socket.remotePort), reason);
      socket.on('error', () => undefined);
      socket.destroy();
      return;
    }
    listener.counters.accepted++;
    listener.track(socket);
    if (transport.readyEvent === 'connection') options.onConnection(socket);
  });
  if (transport.readyEvent === 'secureConnection') {
    server.on('secureConnection', (socket: Socket) => options.onConnection(socket));
  }
  if (options.signal) {
    if (options.signal.aborted) void listener.close(0);
    else options.signal.addEventListener('abort', () => void listener.close(0), { once: true });
  }
  return listener;
}

/**
 * Listening for stream connections on TCP (IPv4/IPv6) or a Unix socket path.
 *
 * The listener tracks every open connection in a Set so it can report them and shut down
 * gracefully: `close(graceMs)` stops accepting, lets live connections finish for up to
 * `graceMs`, destroys the rest, waits for every `'close'`, and is safe to call twice.
 *
 * Socket identity lives here and only here: `connections` holds the sockets the handler was
 * given (for TLS, the TLS socket, so byte counts are plaintext and 'close' is the connection's
 * end); a TLS connection still in its handshake is a raw socket held apart (`pending`), counted
 * as accepted only when the handshake completes and as refused if it never does.
 *
 * Out of descriptors: libuv keeps a spare descriptor of its own and, when accept() fails with
 * EMFILE, closes it, accepts and closes every pending connection and reopens it, without telling
 * JavaScript (the connections just vanish). So each connection is admitted only if one more
 * descriptor can still be opened: the connection that took the last one is closed at once,
 * counted (`refused`, `acceptErrors`) and reported ('accept-error', ERR_NO_DESCRIPTORS), and the
 * server keeps accepting as soon as descriptors free up. Every excess connection goes through
 * this path, so none is lost silently.
 */
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import { EventEmitter } from 'node:events';
import { lstat, unlink } from 'node:fs/promises';
import { closeSync, existsSync, lstatSync, openSync, unlinkSync } from 'node:fs';
import { devNull } from 'node:os';
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
  /** Connections admitted and handed to the handler since start (TLS: handshake completed). */
  accepted: number;
  /**
   * Connections closed without being served: refused by `admit`, for lack of a descriptor, or
   * (TLS) whose handshake failed or never completed.
   */
  refused: number;
  /** Of those, connections lost because the process ran out of descriptors, and other accept failures. */
  acceptErrors: number;
}

export type ListenerStatus = { readonly state: 'listening' } | { readonly state: 'closing' } | { readonly state: 'closed' };

export interface ListenerEvents {
  /** Refused by `admit` (not for descriptors or handshakes: those are reported elsewhere, once each kind). */
  refused: [peer: string, reason: string];
  /** A connection lost to an accept failure; ERR_NO_DESCRIPTORS when the process is out of descriptors. */
  'accept-error': [error: SocketkitError];
}

/** The one error of every connection refused for lack of a descriptor. */
const NO_DESCRIPTORS = (): SocketkitError =>
  new SocketkitError('ERR_NO_DESCRIPTORS', 'out of file descriptors (the process limit, see ulimit -n): new connections are being closed unserved');

/** Whether this process can still open one more descriptor (two system calls: open and close). */
function descriptorSpare(): boolean {
  try {
    closeSync(openSync(devNull, 'r'));
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code !== 'EMFILE' && code !== 'ENFILE';
  }
}

function ignoreError(): void {
  // A socket being refused or abandoned: its errors are of no interest.
}

/** A listening server and the connections it holds. */
export class Listener extends EventEmitter<ListenerEvents> {
  /** The bound address (with the real port when 0 was asked for). */
  readonly endpoint: Endpoint;
  readonly counters: ListenerCounters = { accepted: 0, refused: 0, acceptErrors: 0 };
  readonly #server: Server;
  /** The sockets handed to the handler. */
  readonly #sockets = new Set<Socket>();
  /** Raw sockets of TLS connections still in their handshake. */
  readonly #handshaking = new Set<Socket>();
  /** One 'close' listener for every socket: a closure per connection would cost memory per connection. */
  readonly #onSocketClose: (this: Socket) => void;
  readonly #onHandshakeClose: (this: Socket) => void;
  #status: ListenerStatus = { state: 'listening' };
  #closing: Promise<void> | undefined;

  /** @internal use `listen()` */
  constructor(server: Server, endpoint: Endpoint, onClose?: (socket: Socket) => void) {
    super();
    this.#server = server;
    this.endpoint = endpoint;
    const sockets = this.#sockets;
    const handshaking = this.#handshaking;
    const counters = this.counters;
    this.#onSocketClose = function (this: Socket) {
      sockets.delete(this);
      onClose?.(this);
    };
    // Still in the set when it closes: the handshake failed or was abandoned.
    this.#onHandshakeClose = function (this: Socket) {
      if (handshaking.delete(this)) counters.refused++;
    };
  }

  /** The open connections: the sockets the handler was given (for TLS, the TLS sockets). */
  get connections(): ReadonlySet<Socket> {
    return this.#sockets;
  }

  /** TLS connections still in their handshake (admitted, not yet handed to the handler). */
  get pending(): number {
    return this.#handshaking.size;
  }

  /** Connections holding a slot: open ones and those still in their handshake. */
  get open(): number {
    return this.#sockets.size + this.#handshaking.size;
  }

  get status(): ListenerStatus {
    return this.#status;
  }

  /** The underlying Node server, for options such as `maxConnections`. */
  get server(): Server {
    return this.#server;
  }

  /** @internal a connection handed to the handler: counted as accepted and tracked until it closes. */
  track(socket: Socket): void {
    this.counters.accepted++;
    this.#sockets.add(socket);
    socket.on('close', this.#onSocketClose); // 'close' is emitted once; no once() wrapper needed
  }

  /** @internal a raw socket whose TLS handshake has begun. */
  trackHandshake(raw: Socket): void {
    this.#handshaking.add(raw);
    raw.on('close', this.#onHandshakeClose);
  }

  /** @internal the handshake on `raw` completed and `secure` (its TLS socket) is the connection now. */
  handshakeDone(raw: Socket | undefined, secure: Socket): boolean {
    // A handshake completing on a raw socket we no longer hold (refused, or closing): not ours to serve.
    if (raw === undefined || !this.#handshaking.delete(raw)) return false;
    this.track(secure);
    return true;
  }

  /** @internal a connection lost to an accept failure (counted as refused too when it was a connection). */
  acceptFailed(error: SocketkitError, wasConnection: boolean): void {
    this.counters.acceptErrors++;
    if (wasConnection) this.counters.refused++;
    this.emit('accept-error', error);
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
    // Handshakes in progress are not connections yet: they do not get the grace period.
    for (const raw of this.#handshaking) raw.destroy();
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
    const all = [...this.#sockets, ...this.#handshaking];
    const closed = all.map((s) => (s.closed ? Promise.resolve() : new Promise<void>((resolve) => s.once('close', () => resolve()))));
    for (const s of all) s.destroy();
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
  // After bind, the server reports accept failures here (libuv handles EMFILE itself and
  // reports only what its spare descriptor could not absorb).
  server.on('error', (err: NodeJS.ErrnoException) => {
    const out = err.code === 'EMFILE' || err.code === 'ENFILE';
    listener.acceptFailed(out ? NO_DESCRIPTORS() : toSocketkitError(err, formatEndpoint(bound)), false);
  });
  const secure = transport.readyEvent === 'secureConnection';
  server.on('connection', (socket: Socket) => {
    if (!descriptorSpare()) {
      socket.on('error', ignoreError);
      socket.destroy(); // frees the descriptor at once: the next connection can be accepted
      listener.acceptFailed(NO_DESCRIPTORS(), true);
      return;
    }
    const reason = options.admit?.(socket, listener);
    if (reason !== undefined) {
      listener.counters.refused++;
      listener.emit('refused', formatPeer(socket.remoteAddress, socket.remotePort), reason);
      socket.on('error', ignoreError);
      socket.destroy();
      return;
    }
    if (secure) {
      listener.trackHandshake(socket);
      return;
    }
    listener.track(socket);
    options.onConnection(socket);
  });
  if (secure) {
    server.on('secureConnection', (socket: Socket) => {
      // Node keeps the raw socket under a server-side TLS socket as `_parent`.
      const raw = (socket as Socket & { _parent?: Socket })._parent;
      if (listener.handshakeDone(raw, socket)) options.onConnection(socket);
      else socket.destroy();
    });
  }
  if (options.signal) {
    if (options.signal.aborted) void listener.close(0);
    else options.signal.addEventListener('abort', () => void listener.close(0), { once: true });
  }
  return listener;
}

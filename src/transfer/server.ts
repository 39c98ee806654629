/**
 * The listening side of transfers: a file server (`serve`, framed or raw) that sends to every
 * client that connects, and a drop box (`receive`) that stores what clients send. Both handle
 * any number of clients at once, each on its own connection with its own limits.
 *
 * Both are protocols of the managed server (src/server): the connection limit, the idle
 * timeout, allow/deny, TLS (socket identity stays in `listen()`), accept-failure reports and the
 * server statistics are the echo server's, not a copy of them.
 *
 * Idle, for a transfer: no byte moves on the connection, no file byte is read, hashed or written
 * for it, and it is not waiting on its disk (a write that is behind, an fsync, another
 * connection's claim on a name). A connection that is transferring, or whose peer waits for our
 * disk, is never idle; a client that connects and says nothing, or stops mid-transfer, is. (The
 * stall timeout is the transfer's own watchdog and stays as it was.)
 */
import { makeFolder } from './client.js';
import type { Socket } from 'node:net';
import { SocketkitError, toSocketkitError, type ErrorCode } from '../core/errors.js';
import type { Endpoint } from '../net/endpoint.js';
import type { ListenOptions, ListenTransport, Listener } from '../net/listen.js';
import { peerOf, startServer as startManagedServer, type AcceptErrorReport, type ManagedServer, type Protocol } from '../server/server.js';
import type { ConnectionActivity } from '../server/idle.js';
import type { ServerCounters } from '../server/stats.js';
import { DEFAULT_STALL_TIMEOUT_MS } from './constants.js';
import { collectEntries, type SkippedEntry } from './entries.js';
import type { TransferEvent, TransferSummary } from './events.js';
import { Link, type LinkOptions } from './link.js';
import { checkRawSource, sendRawFile, type RawResult } from './raw.js';
import { runReceiver } from './receiver.js';
import { runSender } from './sender.js';
import type { HashName } from './digest.js';
import { Assemblies, SendSessions } from './parallel.js';
import type { Hello } from './protocol.js';

/** What a transfer server reports. `conn` numbers connections from 1. */
export type TransferServerEvent =
  | { readonly event: 'connect'; readonly conn: number; readonly peer: string }
  | { readonly event: 'transfer'; readonly conn: number; readonly peer: string; readonly detail: TransferEvent }
  | {
      readonly event: 'disconnect';
      readonly conn: number;
      readonly peer: string;
      /** The framed transfer's outcome (absent for raw, or when the connection failed). */
      readonly summary?: TransferSummary;
      /** A raw transfer's outcome. */
      readonly raw?: RawResult;
      /** Why the connection failed, if it did. */
      readonly error?: { readonly code: ErrorCode; readonly message: string };
    }
  | { readonly event: 'refused'; readonly peer: string; readonly reason: string }
  /** Closed by the idle timeout (its 'disconnect' says how the transfer ended: cut, unless it was over). */
  | { readonly event: 'idle'; readonly peer: string; readonly idleMs: number }
  | { readonly event: 'skipped'; readonly source: string; readonly reason: string };

/** Options both servers take. */
export interface TransferServerOptions {
  /** Server and per-connection events. */
  readonly onEvent?: (e: TransferServerEvent) => void;
  /** No progress on a connection for this long (ms) drops it with `ERR_STALLED`; 0 disables (default 30 s). */
  readonly stallTimeoutMs?: number;
  /** Aborting closes the server (as `close(0)`). */
  readonly signal?: AbortSignal;
  /** Serve one client, then close: {@link TransferServer.done} settles with its outcome. */
  readonly once?: boolean;
  /** Announced in the hello. */
  readonly software?: string;
  /** The hash asked for in the framed hello (see `agreeHash`); default none: SHA-256 unless the client asks for XXH3-128. */
  readonly hash?: HashName;
  readonly transport?: ListenTransport;
  /** Another admission check (allow/deny lists): a reason to refuse a connection, or undefined. */
  readonly admit?: ListenOptions['admit'];
  /** Most connections open at once; more are refused (closed unread, counted, reported). Default: no limit. */
  readonly maxConnections?: number;
  /**
   * Close a connection that has been idle this long, ms (see the module comment for what idle
   * means here). Default (or 0): never.
   */
  readonly idleTimeoutMs?: number;
  /** Connections lost to accept failures (out of descriptors), rate-limited as the managed server reports them. */
  readonly onAcceptError?: (e: AcceptErrorReport) => void;
  /** See ListenOptions.clearStaleUnixSocket. */
  readonly clearStaleUnixSocket?: boolean;
}

/** Options of {@link startFileServer}. */
export interface FileServerOptions extends TransferServerOptions {
  /** Files and folders to send to every client. Listed again for each client, so new files show up. */
  readonly paths: readonly string[];
  /** The reference behaviour: stream the one file's bytes and close (no protocol; `nc` can receive). */
  readonly raw?: boolean;
  /** Bytes per read and DATA message (default 1 MiB). */
  readonly chunkSize?: number;
  /** Chunks read ahead per connection (default 4). */
  readonly readAhead?: number;
}

/** Options of {@link startReceiveServer}. */
export interface ReceiveServerOptions extends TransferServerOptions {
  /** Where received entries are written (created if missing). */
  readonly dir: string;
  /** Replace existing files. */
  readonly force?: boolean;
  /** Also continue an existing, shorter file with the final name. */
  readonly resume?: boolean;
}

/** The outcome of one connection, as {@link TransferServer.done} reports it for `once`. */
export interface ConnectionOutcome {
  readonly summary?: TransferSummary;
  readonly raw?: RawResult;
}

/** Totals of a server so far (the transfers; connection statistics are {@link TransferServer.managed}'s). */
export interface TransferServerStats {
  /** Connections accepted. */
  connections: number;
  /** Connections open now. */
  active: number;
  /** Connections that ended in an error. */
  failed: number;
  /** Files verified at the receiving end. */
  files: number;
  /** Their bytes. */
  bytes: number;
}

/** A running transfer server. */
export class TransferServer {
  /** The managed server it runs on: connection statistics (`stats()`), limits, idle timeout. */
  readonly managed: ManagedServer;
  readonly stats: TransferServerStats;
  /**
   * With `once`: settles when the one connection is over — resolves with its outcome, rejects
   * with its error. Without: resolves when the server has closed.
   */
  readonly done: Promise<ConnectionOutcome>;
  readonly #onClosed: () => void;

  /** @internal use `startFileServer()` / `startReceiveServer()` */
  constructor(managed: ManagedServer, stats: TransferServerStats, done: Promise<ConnectionOutcome>, onClosed: () => void) {
    this.managed = managed;
    this.stats = stats;
    this.done = done;
    this.#onClosed = onClosed;
  }

  get listener(): Listener {
    return this.managed.listener;
  }

  get endpoint(): Endpoint {
    return this.managed.endpoint;
  }

  /** Stops accepting; lets live transfers run for up to `graceMs`, then cuts them (partial files stay as `.part`). Idempotent. */
  async close(graceMs = 0): Promise<void> {
    await this.managed.close(graceMs);
    this.#onClosed();
  }
}

/** What a connection does for its transfer off the wire, for the idle sweep (see {@link ConnectionActivity}). */
interface Activity {
  /** Grows with file bytes read, hashed or written, and with progress events. */
  progress: number;
  /** Local waits of unknown length in progress (fsync, another connection's claim). */
  busy: number;
}

/**
 * The transfers' idle notion for the managed server. A connection is busy while it waits on
 * local work, or while we have paused its socket (the link stops reading when its consumer, the
 * disk, is behind): the peer's silence is then our doing. But never while our own writes wait
 * for the peer to read: a peer that sends and never reads can be idle like any other.
 */
function transferActivity(activities: WeakMap<Socket, Activity>): ConnectionActivity {
  return {
    progress: (socket) => activities.get(socket)?.progress ?? 0,
    busy: (socket) => {
      const a = activities.get(socket);
      return a !== undefined && (a.busy > 0 || socket.readableFlowing === false) && !socket.writableNeedDrain;
    },
  };
}

/**
 * The link the server's transfers run on: the library's, with its reports of local work also
 * counted for the idle sweep. (The receiver and sender call these on the link they are given.)
 *
 * With `localWaits` (the receiving role), every guarded wait counts as local work too: the
 * receiver guards its waits for the disk (a write buffer to drain, files being finalized),
 * while it waits for the peer in `next()`. The sender guards its waits for the peer's answers,
 * so it does not pass `localWaits`.
 */
class ServerLink extends Link {
  readonly #activity: Activity;
  readonly #localWaits: boolean;

  constructor(socket: Socket, options: LinkOptions, activity: Activity, localWaits = false) {
    super(socket, options);
    this.#activity = activity;
    this.#localWaits = localWaits;
  }

  override guard<T>(work: Promise<T>): Promise<T> {
    const guarded = super.guard(work);
    if (!this.#localWaits) return guarded;
    const activity = this.#activity;
    activity.busy++;
    const done = (): void => {
      activity.busy--;
      activity.progress++;
    };
    guarded.then(done, done);
    return guarded;
  }

  override markProgress(): void {
    this.#activity.progress++;
    super.markProgress();
  }

  override async busy<T>(work: Promise<T>): Promise<T> {
    this.#activity.busy++;
    try {
      return await super.busy(work);
    } finally {
      this.#activity.busy--;
      this.#activity.progress++;
    }
  }
}

/** What a connection handler gets: who it serves and its activity record. */
interface ConnectionContext {
  readonly conn: number;
  readonly peer: string;
  readonly activity: Activity;
  readonly counters: ServerCounters;
  /** Checks the peer's hello before anything is transferred: with `once`, only the connections of the first client's transfer get in. */
  readonly checkHello: (hello: Hello) => Promise<void>;
}

type Handler = (socket: Socket, ctx: ConnectionContext) => Promise<ConnectionOutcome>;

async function startServer(ep: Endpoint, options: TransferServerOptions, handle: Handler): Promise<TransferServer> {
  const emit = options.onEvent ?? (() => undefined);
  const stats: TransferServerStats = { connections: 0, active: 0, failed: 0, files: 0, bytes: 0 };
  let settle!: { resolve: (o: ConnectionOutcome) => void; reject: (err: unknown) => void };
  const done = new Promise<ConnectionOutcome>((resolve, reject) => (settle = { resolve, reject }));
  // Unobserved until someone asks; never an unhandled rejection.
  done.catch(() => undefined);
  // Set once the server is up; connections cannot arrive before that.
  const ref: { server?: TransferServer } = {};
  const activities = new WeakMap<Socket, Activity>();
  // With `once`: the first client's transfer, which may come on several connections (parallel
  // streams, one session id); the server closes when the last of them is over.
  const once = {
    /** The first connection's session, once its hello is read (undefined: it came alone). */
    session: undefined as Promise<string | undefined> | undefined,
    alone: false,
    tellSession: (_s: string | undefined): void => undefined,
    outcome: undefined as { ok: true; value: ConnectionOutcome } | { ok: false; error: unknown } | undefined,
  };
  once.session = new Promise((resolve) => (once.tellSession = resolve));
  const notOurs = new WeakSet<object>();
  const checkHello = async (conn: number, hello: Hello): Promise<void> => {
    if (!options.once) return;
    const mine = hello.info.parallel?.session;
    if (conn === 1) {
      once.alone = mine === undefined;
      once.tellSession(mine);
      return;
    }
    const first = await once.session;
    if (first === undefined || first !== mine) {
      const e = new SocketkitError('ERR_BUSY', 'this server serves one client only, and is serving it');
      notOurs.add(e);
      throw e;
    }
  };
  const onceEnded = (conn: number, result: { ok: true; value: ConnectionOutcome } | { ok: false; error: unknown }): void => {
    if (!options.once) return;
    if (conn === 1) once.outcome = result;
    else if (!result.ok && !notOurs.has(result.error as object) && once.outcome?.ok !== false) once.outcome = result;
    if (once.outcome === undefined || stats.active > 0) return;
    if (once.outcome.ok) settle.resolve(once.outcome.value);
    else settle.reject(once.outcome.error);
    void ref.server?.close(0);
  };
  const protocol: Protocol = (counters) => (socket) => {
    const conn = ++stats.connections;
    stats.active++;
    const peer = peerOf(socket, ep, conn);
    const activity: Activity = { progress: 0, busy: 0 };
    activities.set(socket, activity);
    emit({ event: 'connect', conn, peer });
    handle(socket, { conn, peer, activity, counters, checkHello: (hello) => checkHello(conn, hello) }).then(
      (outcome) => {
        stats.active--;
        if (outcome.summary) {
          stats.files += outcome.summary.files;
          stats.bytes += outcome.summary.bytes;
        } else if (outcome.raw) {
          stats.files++;
          stats.bytes += outcome.raw.bytes;
        }
        emit({ event: 'disconnect', conn, peer, ...outcome });
        onceEnded(conn, { ok: true, value: outcome });
      },
      (err: unknown) => {
        stats.active--;
        stats.failed++;
        const e = toSocketkitError(err, peer);
        emit({ event: 'disconnect', conn, peer, error: { code: e.code, message: e.message } });
        onceEnded(conn, { ok: false, error: e });
      },
    );
  };
  // With `once`, the first client is the only one (its further connections, while it is served, are checked at their hello).
  const onceCheck = options.once
    ? (): string | undefined => (stats.connections >= 1 && (once.alone || once.outcome !== undefined || stats.active === 0) ? 'already serving its one client' : undefined)
    : undefined;
  const admit = options.admit;
  const managed = await startManagedServer(ep, {
    protocol,
    activity: transferActivity(activities),
    // Connect and disconnect are the transfer's own (with their outcome); refusals and idle closes are the server's.
    onEvent: (e) => {
      if (e.event === 'refused') emit({ event: 'refused', peer: e.peer, reason: e.reason });
      else if (e.event === 'idle') emit({ event: 'idle', peer: e.peer, idleMs: e.idleMs });
    },
    ...(admit || onceCheck ? { admit: (socket: Socket, l: Listener) => admit?.(socket, l) ?? onceCheck?.() } : {}),
    ...(options.maxConnections !== undefined ? { maxConnections: options.maxConnections } : {}),
    ...(options.idleTimeoutMs !== undefined ? { idleTimeoutMs: options.idleTimeoutMs } : {}),
    ...(options.onAcceptError ? { onAcceptError: options.onAcceptError } : {}),
    ...(options.transport ? { transport: options.transport } : {}),
    ...(options.clearStaleUnixSocket !== undefined ? { clearStaleUnixSocket: options.clearStaleUnixSocket } : {}),
  });
  // Closed before its one client came (or closed at all, without `once`): nothing more to wait for.
  const s = new TransferServer(managed, stats, done, () =>
    options.once && stats.connections === 0 ? settle.reject(new SocketkitError('ERR_ABORTED', 'server closed before a client connected')) : settle.resolve({}),
  );
  ref.server = s;
  if (options.signal) {
    if (options.signal.aborted) void s.close(0);
    else options.signal.addEventListener('abort', () => void s.close(0), { once: true });
  }
  return s;
}

/**
 * A raw transfer is over for us once the kernel has the file, but the socket stays open until the
 * peer has read the tail still in the kernel's buffers (megabytes) and closes. That peer is
 * reading, not idle, though no counter here moves: the connection counts as busy until it closes,
 * for at most the stall timeout (which bounds every wait of a transfer).
 */
function drainingTail(socket: Socket, activity: Activity, stallMs: number): void {
  if (socket.closed || stallMs <= 0) return;
  activity.busy++;
  const done = (): void => {
    clearTimeout(timer);
    socket.removeListener('close', done);
    activity.busy--;
  };
  const timer = setTimeout(done, stallMs);
  timer.unref();
  socket.once('close', done);
}

/** Counts a transfer's progress events as activity (and verified files as round trips), and passes them on. */
function onTransferEvent(emit: (e: TransferServerEvent) => void, ctx: ConnectionContext): (detail: TransferEvent) => void {
  return (detail) => {
    ctx.activity.progress++;
    // A file verified is the transfer's round trip (offer, data, result).
    if (detail.event === 'file-done') ctx.counters.roundTrips++;
    emit({ event: 'transfer', conn: ctx.conn, peer: ctx.peer, detail });
  };
}

/**
 * Starts a server that sends `options.paths` to every client that connects: framed (a `get`
 * receives them, checked and verified) or, with `raw`, the bytes of one file then close.
 *
 * @throws SocketkitError for a path that cannot be read (checked once at start), `ERR_USAGE`
 *   for raw mode with anything but one regular file, and listen errors (`ERR_ADDR_IN_USE`...).
 */
export async function startFileServer(ep: Endpoint, options: FileServerOptions): Promise<TransferServer> {
  const emit = options.onEvent ?? (() => undefined);
  const common = options.stallTimeoutMs !== undefined ? { stallTimeoutMs: options.stallTimeoutMs } : {};
  if (options.raw) {
    if (options.paths.length !== 1) throw new SocketkitError('ERR_INVALID_ARG', `raw mode serves exactly one file (got ${options.paths.length} paths)`);
    const path = options.paths[0]!;
    await checkRawSource(path);
    return startServer(ep, options, async (socket, ctx) => {
      const raw = await sendRawFile(socket, path, {
        ...common,
        peer: ctx.peer,
        // Bytes sent by sendfile(2) pass the socket's counters: this is their progress.
        onProgress: () => void ctx.activity.progress++,
        ...(options.chunkSize !== undefined ? { chunkSize: options.chunkSize } : {}),
        ...(options.readAhead !== undefined ? { readAhead: options.readAhead } : {}),
      });
      // The same bytes in the server's statistics: what the socket did not count is added to its total.
      if (raw.zeroCopy === true) ctx.counters.closedBytesOut += Math.max(0, raw.bytes - (socket.bytesWritten ?? 0));
      ctx.counters.roundTrips++;
      drainingTail(socket, ctx.activity, options.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS);
      return { raw };
    });
  }
  // Fail now, not at the first client, if a path is missing.
  await collectEntries(options.paths, { onSkip: (s: SkippedEntry) => emit({ event: 'skipped', ...s }) });
  // Clients with parallel streams: their connections share one queue of pieces per transfer.
  const sessions = new SendSessions();
  return startServer(ep, options, async (socket, ctx) => {
    const link = new ServerLink(socket, { peer: ctx.peer, ...common }, ctx.activity);
    try {
      const entries = await collectEntries(options.paths);
      return {
        summary: await runSender(link, entries, {
          onEvent: onTransferEvent(emit, ctx),
          ...(options.software !== undefined ? { software: options.software } : {}),
          ...(options.chunkSize !== undefined ? { chunkSize: options.chunkSize } : {}),
          ...(options.readAhead !== undefined ? { readAhead: options.readAhead } : {}),
          ...(options.hash !== undefined ? { hash: options.hash } : {}),
          sessions,
          checkHello: ctx.checkHello,
        }),
      };
    } catch (err) {
      link.fail(err);
      throw err;
    } finally {
      link.destroy();
    }
  });
}

/**
 * Starts a drop box: every client that connects sends entries, which are written under
 * `options.dir` with the receiver's safety rules. Two clients cannot write the same file at
 * once (the second is refused with `ERR_BUSY`).
 *
 * @throws SocketkitError listen errors (`ERR_ADDR_IN_USE`...).
 */
export async function startReceiveServer(ep: Endpoint, options: ReceiveServerOptions): Promise<TransferServer> {
  // The folder is made (or found unusable) now, once, not at each client's first file.
  await makeFolder(options.dir, options.signal);
  const emit = options.onEvent ?? (() => undefined);
  const claims = new Set<string>();
  // Files arriving in ranges over several connections (parallel streams) are put together here.
  const assemblies = new Assemblies();
  return startServer(ep, options, async (socket, ctx) => {
    const link = new ServerLink(socket, { peer: ctx.peer, ...(options.stallTimeoutMs !== undefined ? { stallTimeoutMs: options.stallTimeoutMs } : {}) }, ctx.activity, true);
    try {
      return {
        summary: await runReceiver(link, {
          dir: options.dir,
          claims,
          assemblies,
          checkHello: ctx.checkHello,
          onEvent: onTransferEvent(emit, ctx),
          ...(options.force !== undefined ? { force: options.force } : {}),
          ...(options.resume !== undefined ? { resume: options.resume } : {}),
          ...(options.software !== undefined ? { software: options.software } : {}),
          ...(options.hash !== undefined ? { hash: options.hash } : {}),
        }),
      };
    } finally {
      link.destroy();
    }
  });
}

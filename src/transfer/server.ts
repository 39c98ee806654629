/**
 * The listening side of transfers: a file server (`serve`, framed or raw) that sends to every
 * client that connects, and a drop box (`receive`) that stores what clients send. Both handle
 * any number of clients at once, each on its own connection with its own limits.
 */
import type { Socket } from 'node:net';
import { stat } from 'node:fs/promises';
import { SocketkitError, toSocketkitError } from '../core/errors.js';
import { formatPeer, type Endpoint } from '../net/endpoint.js';
import { listen, type ListenOptions, type ListenTransport, type Listener } from '../net/listen.js';
import { collectEntries, type SkippedEntry } from './entries.js';
import type { TransferEvent, TransferSummary } from './events.js';
import { Link } from './link.js';
import { sendRawFile, type RawResult } from './raw.js';
import { runReceiver } from './receiver.js';
import { runSender } from './sender.js';

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
      readonly error?: { readonly code: string; readonly message: string };
    }
  | { readonly event: 'refused'; readonly peer: string; readonly reason: string }
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
  readonly transport?: ListenTransport;
  /** Another admission check (allow/deny lists): a reason to refuse a connection, or undefined. */
  readonly admit?: ListenOptions['admit'];
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

/** Totals of a server so far. */
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
  readonly listener: Listener;
  readonly stats: TransferServerStats;
  /**
   * With `once`: settles when the one connection is over — resolves with its outcome, rejects
   * with its error. Without: resolves when the server has closed.
   */
  readonly done: Promise<ConnectionOutcome>;
  readonly #onClosed: () => void;

  /** @internal use `startFileServer()` / `startReceiveServer()` */
  constructor(listener: Listener, stats: TransferServerStats, done: Promise<ConnectionOutcome>, onClosed: () => void) {
    this.listener = listener;
    this.stats = stats;
    this.done = done;
    this.#onClosed = onClosed;
  }

  get endpoint(): Endpoint {
    return this.listener.endpoint;
  }

  /** Stops accepting; lets live transfers run for up to `graceMs`, then cuts them (partial files stay as `.part`). */
  async close(graceMs = 0): Promise<void> {
    await this.listener.close(graceMs);
    this.#onClosed();
  }
}

type Handler = (socket: Socket, conn: number, peer: string) => Promise<ConnectionOutcome>;

async function startServer(ep: Endpoint, options: TransferServerOptions, handle: Handler): Promise<TransferServer> {
  const emit = options.onEvent ?? (() => undefined);
  const stats: TransferServerStats = { connections: 0, active: 0, failed: 0, files: 0, bytes: 0 };
  let settle!: { resolve: (o: ConnectionOutcome) => void; reject: (err: unknown) => void };
  const done = new Promise<ConnectionOutcome>((resolve, reject) => (settle = { resolve, reject }));
  // Unobserved until someone asks; never an unhandled rejection.
  done.catch(() => undefined);
  // Set once the listener is up; connections cannot arrive before that.
  const ref: { server?: TransferServer } = {};
  const onConnection = (socket: Socket): void => {
    const conn = ++stats.connections;
    stats.active++;
    const peer = ep.kind === 'unix' ? `unix#${conn}` : formatPeer(socket.remoteAddress, socket.remotePort);
    emit({ event: 'connect', conn, peer });
    // Until the handler takes over, an early error must not be unhandled.
    socket.on('error', () => undefined);
    handle(socket, conn, peer).then(
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
        if (options.once) {
          settle.resolve(outcome);
          void ref.server?.close(0);
        }
      },
      (err: unknown) => {
        stats.active--;
        stats.failed++;
        const e = toSocketkitError(err, peer);
        emit({ event: 'disconnect', conn, peer, error: { code: e.code, message: e.message } });
        if (options.once) {
          settle.reject(e);
          void ref.server?.close(0);
        }
      },
    );
  };
  const listener = await listen(ep, {
    onConnection,
    // With `once`, the first client is the only one.
    admit: (socket, l) => options.admit?.(socket, l) ?? (options.once && stats.connections >= 1 ? 'already serving its one client (--once)' : undefined),
    ...(options.transport ? { transport: options.transport } : {}),
  });
  listener.on('refused', (peer, reason) => emit({ event: 'refused', peer, reason }));
  // Closed before its one client came (or closed at all, without `once`): nothing more to wait for.
  const s = new TransferServer(listener, stats, done, () =>
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
    if (options.paths.length !== 1) throw new SocketkitError('ERR_USAGE', `raw mode serves exactly one file (got ${options.paths.length} paths)`);
    const path = options.paths[0]!;
    const st = await stat(path).catch((err: unknown) => {
      throw toSocketkitError(err, path);
    });
    if (!st.isFile()) throw new SocketkitError('ERR_USAGE', `raw mode serves one regular file; ${path} is not one (serve folders without --raw)`);
    return startServer(ep, options, async (socket, _conn, peer) => ({
      raw: await sendRawFile(socket, path, {
        ...common,
        peer,
        ...(options.chunkSize !== undefined ? { chunkSize: options.chunkSize } : {}),
        ...(options.readAhead !== undefined ? { readAhead: options.readAhead } : {}),
      }),
    }));
  }
  // Fail now, not at the first client, if a path is missing.
  await collectEntries(options.paths, { onSkip: (s: SkippedEntry) => emit({ event: 'skipped', ...s }) });
  return startServer(ep, options, async (socket, conn, peer) => {
    const link = new Link(socket, { peer, ...common });
    try {
      const entries = await collectEntries(options.paths);
      return {
        summary: await runSender(link, entries, {
          onEvent: (detail) => emit({ event: 'transfer', conn, peer, detail }),
          ...(options.software !== undefined ? { software: options.software } : {}),
          ...(options.chunkSize !== undefined ? { chunkSize: options.chunkSize } : {}),
          ...(options.readAhead !== undefined ? { readAhead: options.readAhead } : {}),
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
  const emit = options.onEvent ?? (() => undefined);
  const claims = new Set<string>();
  return startServer(ep, options, async (socket, conn, peer) => {
    const link = new Link(socket, { peer, ...(options.stallTimeoutMs !== undefined ? { stallTimeoutMs: options.stallTimeoutMs } : {}) });
    try {
      return {
        summary: await runReceiver(link, {
          dir: options.dir,
          claims,
          onEvent: (detail) => emit({ event: 'transfer', conn, peer, detail }),
          ...(options.force !== undefined ? { force: options.force } : {}),
          ...(options.resume !== undefined ? { resume: options.resume } : {}),
          ...(options.software !== undefined ? { software: options.software } : {}),
        }),
      };
    } finally {
      link.destroy();
    }
  });
}

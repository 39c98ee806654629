/**
 * The connecting side of transfers: `download` (what `get` runs against `serve`), `upload` (what
 * `send` runs against `receive`) and `downloadRaw` (`get --raw`, also against `nc -l < file`).
 */
import { connect as netConnect, type Socket } from 'node:net';
import type { Writable } from 'node:stream';
import { constants as fsc, ftruncateSync } from 'node:fs';
import { lstat, mkdir, open, stat, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { SocketkitError, toSocketkitError } from '../core/errors.js';
import { connect, type ConnectTransport } from '../net/connect.js';
import { formatEndpoint, type Endpoint } from '../net/endpoint.js';
import { PART_SUFFIX } from './constants.js';
import { collectEntries, type SkippedEntry } from './entries.js';
import type { TransferEvent, TransferSummary } from './events.js';
import { Link, type DataSink, type LinkOptions, type OnRead } from './link.js';
import { partialPath, place, syncDir } from './place.js';
import { SyncFileSink } from './file-io.js';
import { rawReadHook, receiveRawStream, streamSink, type RawResult } from './raw.js';
import { Receiver, type ReceiverOptions } from './receiver.js';
import { runSender, type SenderOptions } from './sender.js';
import type { HashName } from './digest.js';
import { MAX_STREAMS, TRANSFER_PROTOCOL_VERSION } from './constants.js';
import { Assemblies, SendSessions } from './parallel.js';
import { newSessionId, takesRanges, type ParallelInfo } from './protocol.js';

/** Options every connecting transfer takes. */
export interface TransferClientOptions {
  /** Connect timeout, ms (default 10 s). */
  readonly connectTimeoutMs?: number;
  /** Aborting stops the transfer with `ERR_ABORTED`; a partial file stays as `.NAME.sk-partial` for a resume. */
  readonly signal?: AbortSignal;
  /** No progress for this long (ms) fails with `ERR_STALLED`; 0 disables (default 30 s). */
  readonly stallTimeoutMs?: number;
  /** Progress and outcome of each entry. */
  readonly onEvent?: (e: TransferEvent) => void;
  /** Announced in the hello, e.g. `socketkit/0.1.0`. */
  readonly software?: string;
  /** The hash asked for in the framed hello (see `agreeHash`); default none: SHA-256 unless the server asks for XXH3-128. */
  readonly hash?: HashName;
  /** A transport other than plain TCP/Unix (TLS adds itself here). */
  readonly transport?: ConnectTransport;
  /**
   * Connections to use for the transfer (default 1). With more, files larger than `rangeSize`
   * travel in ranges on several connections at once, and smaller ones are spread across them;
   * a peer that does not take ranges (an older socketkit) gets one connection.
   */
  readonly streams?: number;
  /** With `streams` > 1: bytes per range (default 64 MiB; the sender keeps it within 64 KiB-1 GiB). */
  readonly rangeSize?: number;
}

/** Options of {@link download}. */
export interface DownloadOptions extends TransferClientOptions {
  /** The folder to write into (default: the current folder). */
  readonly dir?: string;
  /**
   * Write the one offered file here, whatever the server calls it. An existing folder is
   * taken as `dir` instead (like `cp`).
   */
  readonly out?: string;
  /** Replace existing files. */
  readonly force?: boolean;
  /** Also continue an existing, shorter file with the final name (a partial file is always continued). */
  readonly resume?: boolean;
}

/** Options of {@link upload}. */
export interface UploadOptions extends TransferClientOptions {
  /** Bytes per read and DATA message (default 1 MiB). */
  readonly chunkSize?: number;
  /** Chunks read ahead (default 4). */
  readonly readAhead?: number;
  /** Told about links and special files found inside folders (they are not sent). */
  readonly onSkip?: (skipped: SkippedEntry) => void;
}

/** Options of {@link downloadRaw}. */
export interface RawDownloadOptions extends Omit<TransferClientOptions, 'onEvent' | 'software' | 'hash'> {
  /** Replace an existing file. */
  readonly force?: boolean;
  /** Bytes received so far, as they arrive. */
  readonly onProgress?: (bytes: number) => void;
}

/**
 * Connects and wires `signal` to fail the link. With a `sink` (a download's receiver, which
 * hashes and writes file bytes synchronously), a plain socket reads into the link's own reused
 * 1 MiB buffer (Node's `onread`), and DATA goes from each read to the sink before the next
 * read: no allocation and no copy per read.
 */
async function openLink(ep: Endpoint, options: TransferClientOptions, sink?: DataSink): Promise<{ link: Link; detach: () => void }> {
  const connectOptions = {
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.connectTimeoutMs !== undefined ? { timeoutMs: options.connectTimeoutMs } : {}),
  };
  const linkOptions: LinkOptions = {
    peer: formatEndpoint(ep),
    ...(options.stallTimeoutMs !== undefined ? { stallTimeoutMs: options.stallTimeoutMs } : {}),
    ...(sink ? { data: sink } : {}),
  };
  const link =
    sink !== undefined && options.transport === undefined
      ? await Link.open((onread) => connect(ep, connectOptions, onreadTransport(onread)), linkOptions)
      : new Link(await connect(ep, connectOptions, options.transport), linkOptions);
  const onAbort = (): void => link.fail(new SocketkitError('ERR_ABORTED', 'transfer aborted; partial files are kept (as .NAME.sk-partial) for a resume'));
  options.signal?.addEventListener('abort', onAbort, { once: true });
  return { link, detach: () => options.signal?.removeEventListener('abort', onAbort) };
}

/** The hello's `parallel` field for `streams` connections, if more than one. */
function parallelInfo(options: TransferClientOptions): ParallelInfo | undefined {
  const streams = options.streams ?? 1;
  if (!Number.isSafeInteger(streams) || streams < 1 || streams > MAX_STREAMS) throw new SocketkitError('ERR_INVALID_ARG', `streams must be a whole number from 1 to ${MAX_STREAMS} (got ${streams})`);
  if (streams === 1) return undefined;
  return { session: newSessionId(), streams, ...(options.rangeSize !== undefined ? { rangeSize: options.rangeSize } : {}) };
}

/** Sums the summaries of a transfer's connections. */
function mergeSummaries(all: readonly TransferSummary[], seconds: number): TransferSummary {
  const first = all[0]!;
  return {
    files: all.reduce((n, s) => n + s.files, 0),
    dirs: all.reduce((n, s) => n + s.dirs, 0),
    bytes: all.reduce((n, s) => n + s.bytes, 0),
    transferred: all.reduce((n, s) => n + s.transferred, 0),
    seconds,
    failures: all.flatMap((s) => s.failures),
    ...(first.hash !== undefined ? { hash: first.hash } : {}),
  };
}

/** One connection of a transfer, for {@link runStreams}: its link, its role running, and how to let it go. */
function stream(link: Link, detach: () => void, run: Promise<TransferSummary>): { link: Link; run: Promise<TransferSummary>; close: () => void } {
  return {
    link,
    run,
    close: () => {
      detach();
      link.destroy();
    },
  };
}

/**
 * Runs one transfer over `info.streams` connections: the first, then, once its peer's hello says
 * it takes ranges, the others. Every connection runs to its end; the first failure is thrown.
 */
async function runStreams(
  info: ParallelInfo | undefined,
  open: () => Promise<{ link: Link; run: Promise<TransferSummary>; close: () => void }>,
): Promise<TransferSummary> {
  const t0 = performance.now();
  const first = await open();
  const runs: Array<Promise<TransferSummary>> = [first.run];
  const closers = [first.close];
  const links = [first.link];
  // Observed below, once all are running; not an unhandled rejection meanwhile.
  first.run.catch(() => undefined);
  try {
    if (info !== undefined) {
      const hello = await first.link.readHello().catch(() => undefined);
      const ranges = hello !== undefined && takesRanges(Math.min(hello.version, TRANSFER_PROTOCOL_VERSION), hello);
      for (let i = 1; ranges && i < info.streams; i++) {
        // A connection that cannot be made leaves the transfer to the ones that were.
        const more = await open().catch(() => undefined);
        if (more === undefined) break;
        more.run.catch(() => undefined);
        runs.push(more.run);
        closers.push(more.close);
        links.push(more.link);
      }
    }
    const settled = await Promise.allSettled(runs);
    const done: TransferSummary[] = [];
    for (const [i, r] of settled.entries()) {
      if (r.status === 'fulfilled') done.push(r.value);
      // A further connection the server closed before its hello (it was done, or full) carried nothing: the others did the work.
      else if (i === 0 || links[i]!.heardFrom) throw r.reason;
    }
    return mergeSummaries(done, (performance.now() - t0) / 1000);
  } finally {
    for (const c of closers) c();
  }
}

/**
 * A server that closes without a byte, even before its hello, is most often a TLS server that
 * did not like our plaintext hello: say so.
 */
function silentPeer(link: Link, err: unknown): unknown {
  if (!(err instanceof SocketkitError) || err.code !== 'ERR_CONN_CLOSED' || link.heardFrom || err.hint !== undefined) return err;
  return new SocketkitError(err.code, `${err.message} (is it a TLS server?)`, { cause: err, exitCode: err.exitCode, hint: 'maybe-tls-server' });
}

/**
 * Creates `dir` and its missing parents, one `mkdir` each, so that every failure is final and
 * said in our words (Node's recursive mkdir retries for ever on a parent that answers ENOENT,
 * as /proc does). Stops between steps when `signal` is aborted.
 *
 * @throws SocketkitError `ERR_EXISTS` (a file where a folder is needed), `ERR_PERMISSION`,
 *   `ERR_IO` (a file system that takes no new folders: /proc, read-only), `ERR_ABORTED`.
 */
export async function makeFolder(dir: string, signal?: AbortSignal): Promise<void> {
  const missing: string[] = [];
  for (let p = resolve(dir); ; ) {
    const st = await lstat(p).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT' || err.code === 'ENOTDIR') return undefined;
      throw toSocketkitError(err, p);
    });
    if (st !== undefined) {
      if (!st.isDirectory() && (await stat(p).catch(() => undefined))?.isDirectory() !== true) {
        throw new SocketkitError('ERR_EXISTS', `cannot create the folder ${dir}: ${p} is a file, not a folder`);
      }
      break;
    }
    missing.push(p);
    if (dirname(p) === p) break;
    p = dirname(p);
  }
  for (const d of missing.reverse()) {
    if (signal?.aborted) throw new SocketkitError('ERR_ABORTED', `stopped while creating the folder ${dir}`);
    try {
      await mkdir(d, { mode: 0o755 });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // Made meanwhile by someone else: fine if it is a folder.
      if (code === 'EEXIST' && (await stat(d).catch(() => undefined))?.isDirectory() === true) continue;
      const why =
        code === 'ENOENT' || code === 'EROFS' || code === 'ENOSYS'
          ? `${dirname(d)} takes no new folders (${code === 'EROFS' ? 'a read-only file system' : 'a virtual file system, such as /proc or /sys'})`
          : undefined;
      if (why !== undefined) throw new SocketkitError('ERR_IO', `cannot create the folder ${d}: ${why}`, { cause: err });
      const e = toSocketkitError(err, d);
      throw new SocketkitError(e.code, `cannot create the folder ${d}: ${e.message}`, { cause: err, exitCode: e.exitCode });
    }
  }
}

/** Failures after which the file being received is worth continuing: the connection went, or stopped moving. */
const RESUMABLE: ReadonlySet<string> = new Set(['ERR_FRAME_TRUNCATED', 'ERR_CONN_CLOSED', 'ERR_CONN_RESET', 'ERR_STALLED', 'ERR_TIMEOUT']);

/**
 * A download that failed mid-file: say so, and where the bytes received are (the receiver keeps
 * the partial file, and a new download of the same file continues it).
 */
async function keptForResume(err: unknown, file: { readonly path: string; readonly size: number; readonly bytes: number } | undefined, part: string): Promise<unknown> {
  if (file === undefined || !(err instanceof SocketkitError) || !RESUMABLE.has(err.code) || err.message.includes(PART_SUFFIX)) return err;
  const kept = (await lstat(part).catch(() => undefined))?.size ?? 0;
  if (kept === 0) return err;
  return new SocketkitError(err.code, `${err.message}: '${file.path}' stopped at ${kept} of ${file.size} bytes, kept in ${part} for a resume`, {
    cause: err,
    exitCode: err.exitCode,
    hint: 'partial-kept',
  });
}

/**
 * Downloads what a `serve` at `ep` offers into `options.dir` (default: the current folder) or
 * to `options.out`, checked, verified and resumable (see `Receiver`).
 *
 * @returns The summary; entries that failed are listed in it (see `summaryError`).
 * @throws SocketkitError for connection, protocol and fatal errors (`ERR_DISK_FULL`...).
 */
export async function download(ep: Endpoint, options: DownloadOptions = {}): Promise<TransferSummary> {
  let dir = resolve(options.dir ?? '.');
  let out: string | undefined;
  if (options.out !== undefined) {
    const target = resolve(options.out);
    const st = await stat(target).catch(() => undefined);
    if (st?.isDirectory()) dir = target;
    else {
      out = target;
      dir = dirname(target);
    }
  }
  let current: { readonly path: string; readonly size: number; readonly bytes: number } | undefined;
  const info = parallelInfo(options);
  const shared: Partial<ReceiverOptions> = info !== undefined ? { parallel: info, assemblies: new Assemblies(), claims: new Set<string>() } : {};
  const makeReceiver = (): Receiver => new Receiver({
    ...shared,
    dir,
    ...(out !== undefined ? { out } : {}),
    ...(options.force !== undefined ? { force: options.force } : {}),
    ...(options.resume !== undefined ? { resume: options.resume } : {}),
    onEvent: (e) => {
      // The file on its way, for the error when the connection goes mid-file.
      if (e.event === 'file-start') current = { path: e.path, size: e.size, bytes: e.offset };
      else if (e.event === 'file-progress' && current !== undefined) current = { ...current, bytes: e.bytes };
      else if (e.event === 'file-done' || e.event === 'file-failed') current = undefined;
      options.onEvent?.(e);
    },
    ...(options.software !== undefined ? { software: options.software } : {}),
    ...(options.hash !== undefined ? { hash: options.hash } : {}),
    // A download is all this process does: synchronous writes are the fast path (see SyncFileSink).
    syncWrites: true,
  });
  let folder: Promise<void> | undefined;
  let firstLink: Link | undefined;
  try {
    return await runStreams(info, async () => {
      const receiver = makeReceiver();
      const { link, detach } = await openLink(ep, options, receiver.sink);
      firstLink ??= link;
      // Made here, a step at a time: mkdir -p spins for ever where a parent takes no new entries (/proc).
      folder ??= makeFolder(dir, options.signal);
      return stream(link, detach, link.guard(folder).then(() => receiver.run(link)));
    });
  } catch (err) {
    throw await keptForResume(firstLink !== undefined ? silentPeer(firstLink, err) : err, current, current === undefined ? '' : partialPath(out ?? join(dir, current.path)));
  }
}

/**
 * Uploads `paths` (files and folders, structure kept) to a `receive` at `ep`. The paths are
 * listed before connecting, so a missing one fails at once.
 *
 * @returns The summary; entries that failed are listed in it (see `summaryError`).
 * @throws SocketkitError for a path that cannot be read, and for connection, protocol and
 *   fatal errors reported by the receiver (`ERR_DISK_FULL`...).
 */
export async function upload(ep: Endpoint, paths: readonly string[], options: UploadOptions = {}): Promise<TransferSummary> {
  const entries = await collectEntries(paths, options.onSkip ? { onSkip: options.onSkip } : {});
  const info = parallelInfo(options);
  const senderOptions: SenderOptions = {
    ...(options.onEvent ? { onEvent: options.onEvent } : {}),
    ...(options.software !== undefined ? { software: options.software } : {}),
    ...(options.chunkSize !== undefined ? { chunkSize: options.chunkSize } : {}),
    ...(options.readAhead !== undefined ? { readAhead: options.readAhead } : {}),
    ...(options.hash !== undefined ? { hash: options.hash } : {}),
    ...(info !== undefined ? { parallel: info, sessions: new SendSessions() } : {}),
  };
  return runStreams(info, async () => {
    const { link, detach } = await openLink(ep, options);
    const run = runSender(link, entries, senderOptions).catch((err: unknown) => {
      throw silentPeer(link, err);
    });
    return stream(link, detach, run);
  });
}

/** Flags for a raw partial file: write, create, truncate (raw streams cannot resume), no links. */
const RAW_PART_FLAGS = fsc.O_WRONLY | fsc.O_CREAT | (fsc.O_NOFOLLOW ?? 0);

/**
 * Receives a raw stream from `ep` — a `serve --raw`, or `nc -l -p PORT < file` — into `out`.
 *
 * - `out` a `Writable` (standard output): bytes are written to it as they come.
 * - `out` a device or FIFO (`/dev/null`): written directly.
 * - `out` a file name: written to `.OUT.sk-partial`, fsynced and renamed only after a clean end of the
 *   stream; an existing `OUT` is refused without `force`. After a failure the bytes received
 *   stay in `.OUT.sk-partial` (named in the error) for whoever wants them; a raw stream has no offsets,
 *   so the next attempt starts it over.
 *
 * @throws SocketkitError `ERR_EXISTS`, `ERR_USAGE` (`out` is a folder), the stream's errors
 *   (`ERR_CONN_RESET` when the sender failed, `ERR_STALLED`...) or the file's (`ERR_DISK_FULL`...).
 */
export async function downloadRaw(ep: Endpoint, out: string | Writable, options: RawDownloadOptions = {}): Promise<RawResult & { readonly path?: string }> {
  const peer = formatEndpoint(ep);
  const common = {
    peer,
    ...(options.stallTimeoutMs !== undefined ? { stallTimeoutMs: options.stallTimeoutMs } : {}),
    ...(options.onProgress ? { onProgress: options.onProgress } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
  };
  // Files and devices take the fast path: one reused 1 MiB read buffer (Node's `onread`) and
  // synchronous writes. A custom transport (TLS) keeps the ordinary stream path.
  const hook = options.transport === undefined && typeof out === 'string' ? rawReadHook() : undefined;
  const connectNow = (): Promise<Socket> =>
    connect(
      ep,
      {
        ...(options.signal ? { signal: options.signal } : {}),
        ...(options.connectTimeoutMs !== undefined ? { timeoutMs: options.connectTimeoutMs } : {}),
      },
      hook ? onreadTransport(hook.onread) : options.transport,
    );
  if (typeof out !== 'string') {
    return receiveRawStream(await connectNow(), streamSink(out), common);
  }
  const target = resolve(out);
  const existing = await lstat(target).catch(() => undefined);
  if (existing?.isDirectory()) throw new SocketkitError('ERR_INVALID_ARG', `${out} is a folder; a raw stream has no file name: give the output as FOLDER/NAME`);
  if (existing !== undefined && !existing.isFile() && !existing.isSymbolicLink()) {
    // A device or FIFO: no .part, no rename, just the bytes.
    const fh = await open(target, 'w').catch((err: unknown) => {
      throw toSocketkitError(err, target);
    });
    try {
      return await receiveRawStream(await connectNow(), new SyncFileSink(fh.fd, target, null), { ...common, ...(hook ? { hook } : {}) });
    } finally {
      await fh.close().catch(() => undefined);
    }
  }
  if (existing !== undefined && options.force !== true) throw new SocketkitError('ERR_EXISTS', `${out} already exists`, { hint: 'exists-replace' });
  const part = partialPath(target);
  // The partial file is opened before connecting (a short stream could otherwise arrive, and end,
  // before anyone listens for its end), and emptied only once the connection is up: a failed
  // connect leaves an earlier partial file as it was.
  const hadPart = (await lstat(part).catch(() => undefined)) !== undefined;
  let fh: FileHandle;
  try {
    fh = await open(part, RAW_PART_FLAGS, 0o644);
  } catch (err) {
    throw (err as NodeJS.ErrnoException).code === 'ELOOP'
      ? new SocketkitError('ERR_PATH_UNSAFE', `${basename(part)} is a symbolic link; refusing to write through it`)
      : toSocketkitError(err, part);
  }
  let socket: Socket;
  try {
    socket = await connectNow();
  } catch (err) {
    await fh.close().catch(() => undefined);
    if (!hadPart) await unlink(part).catch(() => undefined);
    throw err;
  }
  try {
    // Synchronously: no await between the connect and the receiver's listeners.
    ftruncateSync(fh.fd, 0);
    const result = await receiveRawStream(socket, new SyncFileSink(fh.fd, part, 0), { ...common, ...(hook ? { hook } : {}) });
    await fh.sync();
    await fh.close();
    await place(part, target, options.force === true);
    await syncDir(dirname(target));
    return { ...result, path: target };
  } catch (err) {
    const e = toSocketkitError(err, target);
    const kept = (await stat(part).catch(() => undefined))?.size ?? 0;
    if (kept === 0) await unlink(part).catch(() => undefined);
    throw kept > 0 && !e.message.includes(PART_SUFFIX) ? new SocketkitError(e.code, `${e.message}; the ${kept} bytes received are in ${part}`, { cause: e, exitCode: e.exitCode }) : e;
  } finally {
    await fh.close().catch(() => undefined);
  }
}

/** Plain TCP or Unix connect, with every read landing in `onread`'s one reused buffer. */
function onreadTransport(onread: OnRead): ConnectTransport {
  return {
    readyEvent: 'connect',
    // allowHalfOpen as in the plain transport: our side stays writable after the peer's FIN.
    open: (ep) =>
      ep.kind === 'unix'
        ? netConnect({ path: ep.path, onread, allowHalfOpen: true })
        : netConnect({ host: ep.host, port: ep.port, onread, allowHalfOpen: true }),
  };
}

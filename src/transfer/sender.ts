/**
 * The sending role of the framed protocol, whichever end connected: `serve` runs it for each
 * client, `send` runs it against a `receive` server.
 *
 * The digest of each file (SHA-256, or XXH3-128 when agreed in the hello) is computed while its bytes stream, never in a separate pass. When
 * the receiver resumes from an offset, the sender reads and hashes that prefix without sending
 * it (unavoidable for a whole-file hash, and only the prefix), and checks it against the
 * receiver's hash of its partial file: a stale one is restarted from byte 0, not completed into a
 * wrong file.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { SocketkitError, toSocketkitError, type ErrorCode } from '../core/errors.js';
import { DEFAULT_CHUNK_SIZE, DEFAULT_OFFER_WINDOW, DEFAULT_READ_AHEAD } from './constants.js';
import { countEntries, type TransferEntry } from './entries.js';
import type { TransferEvent, TransferFailure, TransferSummary } from './events.js';
import { BufferPool, readChunks } from './file-io.js';
import type { Link } from './link.js';
import { agreeHash, hashHello, negotiateVersion, protocolError, takesRanges, type Hello, type ParallelInfo, type ReplyMessage } from './protocol.js';
import { createDigest, HASH_LABELS, type FileDigest, type HashName } from './digest.js';
import { RANGE_HASH, SendSession, type Piece, type RangedFile, type SendSessions } from './parallel.js';

/** Options of {@link runSender}. */
export interface SenderOptions {
  /** Bytes per read and per DATA message (default 1 MiB). */
  readonly chunkSize?: number;
  /** Chunks read ahead per file (default 4); with `chunkSize`, the memory of one connection. */
  readonly readAhead?: number;
  /** Offers sent ahead of the file being streamed (default 64). */
  readonly offerWindow?: number;
  /** Progress and outcome of each entry. */
  readonly onEvent?: (e: TransferEvent) => void;
  /** Announced in the hello, e.g. `socketkit/0.1.0`. */
  readonly software?: string;
  /**
   * Opens a source file for reading (default: `open(path, 'r')` of `fs/promises`). A seam for
   * tests, which wrap the handle (a close that takes its time, a read that fails).
   */
  readonly openFile?: (path: string) => Promise<FileHandle>;
  /**
   * Read file data synchronously while the page cache has it (see `readChunks`). Default false:
   * the reads run ahead on the thread pool, a read in flight for every free buffer, while this
   * thread hashes and sends the chunks already read (an overlap that pays where a core is free;
   * README "Benchmarks").
   */
  readonly syncReads?: boolean;
  /**
   * The hash asked for (announced in the hello; see `agreeHash`). Default: none asked, so
   * SHA-256 unless the receiver asks for XXH3-128.
   */
  readonly hash?: HashName;
  /** Checks the peer's hello before anything else (a server that takes one client refuses its others here). */
  readonly checkHello?: (hello: Hello) => Promise<void>;
  /**
   * Parallel streams, as the client: announced in the hello of each of the transfer's
   * connections (the same on each; see parallel.ts). A server sender leaves it out and follows
   * the client's hello.
   */
  readonly parallel?: ParallelInfo;
  /**
   * The parallel transfers this sender's connections can belong to: a connection whose hello
   * (ours or the peer's) names a session takes its pieces from that session's shared queue.
   * Without it, every connection sends every entry, whole.
   */
  readonly sessions?: SendSessions;
}

/** How a source file is opened unless {@link SenderOptions.openFile} says otherwise. */
const openForReading = (path: string): Promise<FileHandle> => open(path, 'r');

interface Deferred<T> {
  readonly promise: Promise<T>;
  resolve(value: T): void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** A file (or a range of one, or a SEAL) whose END is sent and whose RESULT is awaited. */
interface Outstanding {
  readonly entry: TransferEntry;
  readonly offset: number;
  /** The digest sent (for a SEAL, set once the whole file is hashed). */
  sha256: string;
  readonly started: number;
  /** A range of a file sent in ranges, or its SEAL. */
  readonly ranged?: { readonly file: RangedFile; readonly seal: boolean };
  readonly range?: readonly [number, number];
}

/**
 * Offers `entries` over `link` and streams what the receiver accepts. Per-entry failures
 * (refused, exists, hash mismatch at the receiver, a source file that changed) are collected in
 * the summary; a failure of the connection itself rejects.
 *
 * @returns The summary once every accepted file has its RESULT.
 * @throws SocketkitError `ERR_TRANSFER_ROLE` when the peer is a sender too, `ERR_TRANSFER_VERSION`,
 *   `ERR_TRANSFER_PROTOCOL`, `ERR_STALLED`, a connection error, or the receiver's fatal error
 *   (e.g. `ERR_DISK_FULL`).
 */
export async function runSender(link: Link, entries: readonly TransferEntry[], options: SenderOptions = {}): Promise<TransferSummary> {
  const t0 = performance.now();
  const emit = options.onEvent ?? (() => undefined);
  const window = Math.max(1, options.offerWindow ?? DEFAULT_OFFER_WINDOW);
  const counts = countEntries(entries);
  link.sendHello('sender', {
    ...(options.software !== undefined ? { software: options.software } : {}),
    entries: entries.length,
    files: counts.files,
    bytes: counts.bytes,
    ...hashHello(options.hash),
    ...(options.parallel !== undefined ? { parallel: options.parallel } : {}),
  });
  const failures: TransferFailure[] = [];
  let files = 0;
  /** The hash agreed in the hellos. */
  let hash: HashName = 'sha256';
  let dirs = 0;
  let bytes = 0;
  let transferred = 0;
  /** Offers awaiting their reply, by id (the reader's view). */
  const replies = new Map<number, Deferred<ReplyMessage>>();
  /** Every offer's reply, by id (the writer's view; kept after the reader has resolved it). */
  const answers: Array<Deferred<ReplyMessage>> = [];
  const outstanding = new Map<number, Outstanding>();
  let allResults: Deferred<void> | undefined;
  /** Where the pieces come from: a parallel transfer's shared queue, or this connection's own (every entry, whole). */
  let source: SendSession | undefined;
  let joined: SendSession | undefined;

  const fail = (entry: TransferEntry, code: ErrorCode, message: string, file?: RangedFile): void => {
    // A file sent in ranges fails once, whichever of its ranges failed first; its SEAL is given up.
    if (file !== undefined) {
      if (file.failed) return;
      file.failed = true;
      file.sealer?.abandon();
    }
    failures.push({ path: entry.path, code, message });
    (file?.emit ?? emit)({ event: 'file-failed', path: entry.path, code, message });
  };

  /**
   * This connection carried the first range of `file`, now verified: the file's SEAL will go here,
   * with the whole file's digest, once every range is verified (whichever connection hears it);
   * the connection stays until then.
   */
  const ownSeal = (id: number, file: RangedFile): void => {
    const o: Outstanding = { entry: file.entry, offset: 0, sha256: '', started: file.started, ranged: { file, seal: true } };
    outstanding.set(id, o);
    file.sealer = {
      ready: () => sendSeal(id, file, o),
      abandon: () => {
        if (outstanding.get(id) !== o) return;
        outstanding.delete(id);
        if (outstanding.size === 0) allResults?.resolve();
      },
    };
  };
  const sendSeal = (id: number, file: RangedFile, o: Outstanding): void => {
    const digest = file.digest;
    if (digest === undefined) throw new SocketkitError('ERR_INTERNAL', `no whole-file digest for ${file.entry.path}`);
    link.busy(digest.then((d) => d.finish())).then(
      (whole) => {
        o.sha256 = whole;
        link.send({ type: 'seal', id, sha256: whole });
      },
      (err: unknown) => link.fail(toSocketkitError(err, file.entry.source)),
    );
  };

  let readerError: unknown;
  let fromPeer = false;
  /** Set once every result is in: how the connection closes after that does not matter. */
  let complete = false;
  // The reader: replies and results, in whatever order they come, for the writer below.
  const reader = async (): Promise<void> => {
    for (;;) {
      const msg = await link.next();
      if (msg === null) {
        if (replies.size > 0 || outstanding.size > 0 || allResults === undefined) {
          throw new SocketkitError('ERR_CONN_CLOSED', `${link.peer} ended the transfer before answering every file`);
        }
        return;
      }
      switch (msg.type) {
        case 'reply': {
          const d = replies.get(msg.id);
          if (d === undefined) throw protocolError(`reply for an entry that was not offered (id ${msg.id})`);
          replies.delete(msg.id);
          d.resolve(msg);
          break;
        }
        case 'result': {
          const o = outstanding.get(msg.id);
          if (o === undefined) throw protocolError(`result for a file that was not sent (id ${msg.id})`);
          outstanding.delete(msg.id);
          const ranged = o.ranged;
          if (ranged !== undefined && !ranged.seal) {
            // A range: verified on its own; the file is done at its SEAL.
            if (msg.ok && msg.sha256 === o.sha256) {
              // Its bytes are counted on the connection that carried them; the file, at its SEAL.
              bytes += o.range![1] - o.range![0];
              ranged.file.verified++;
              if (o.range![0] === 0 && !ranged.file.failed) ownSeal(msg.id, ranged.file);
              if (ranged.file.verified === ranged.file.ranges && !ranged.file.failed) ranged.file.sealer?.ready();
            } else if (msg.ok) {
              fail(o.entry, 'ERR_HASH_MISMATCH', `receiver verified a different ${HASH_LABELS[RANGE_HASH]} of a range (${msg.sha256}) than was sent (${o.sha256})`, ranged.file);
            } else {
              fail(o.entry, msg.code, msg.message, ranged.file);
            }
          } else if (msg.ok && msg.sha256 === o.sha256) {
            files++;
            if (ranged === undefined) bytes += o.entry.size;
            (ranged?.file.emit ?? emit)({ event: 'file-done', path: o.entry.path, size: o.entry.size, offset: o.offset, sha256: o.sha256, ms: performance.now() - o.started });
          } else if (msg.ok) {
            fail(o.entry, 'ERR_HASH_MISMATCH', `receiver verified a different ${HASH_LABELS[hash]} (${msg.sha256}) than was sent (${o.sha256})`);
          } else {
            fail(o.entry, msg.code, msg.message, ranged?.file);
          }
          if (outstanding.size === 0) allResults?.resolve();
          break;
        }
        case 'error':
          fromPeer = true;
          throw new SocketkitError(msg.code, `receiver ${link.peer}: ${msg.message}`, msg.code === 'ERR_HASH_MISMATCH' ? { exitCode: 1 } : {});
        default:
          throw protocolError(`unexpected '${msg.type}' message from the receiver`);
      }
    }
  };
  const reading = reader().catch((err: unknown) => {
    if (complete) return;
    readerError = err;
    // A fatal ERROR from the peer needs no answer; anything else is reported to it.
    link.fail(err, !fromPeer);
  });

  try {
    const hello = await link.readHello();
    if (hello.role !== 'receiver') {
      throw new SocketkitError('ERR_TRANSFER_ROLE', `${link.peer} wants to send too: fetch from a 'serve' with 'get', push to a 'receive' with 'send'`);
    }
    await options.checkHello?.(hello);
    const version = negotiateVersion(hello);
    hash = agreeHash(version, options.hash, hello);
    const parallel = options.parallel ?? hello.info.parallel;
    if (parallel !== undefined && options.sessions !== undefined && takesRanges(version, hello)) {
      joined = options.sessions.join(parallel);
      source = joined;
    } else {
      source = new SendSession('', Number.MAX_SAFE_INTEGER);
    }
    source.plan(entries, joined !== undefined);
    const session = source;
    // A parallel connection takes at most one range's worth of bytes ahead of the piece it streams, so the others get theirs.
    const byteWindow = joined !== undefined ? joined.rangeSize : Number.POSITIVE_INFINITY;

    const openFile = options.openFile ?? openForReading;
    const pool = new BufferPool(options.chunkSize ?? DEFAULT_CHUNK_SIZE, options.readAhead ?? DEFAULT_READ_AHEAD);
    const pieces: Piece[] = [];
    const bytesOf = (p: Piece): number => (p.range ? p.range[1] - p.range[0] : p.entry.size);
    let offered = 0;
    let aheadBytes = 0;
    /** Offers pieces ahead of the one at `current`: always the next, then up to the window. */
    const offerMore = (current: number): void => {
      while (offered < current + 1 + window) {
        if (offered > current + 1 && aheadBytes >= byteWindow) break;
        const p = session.take();
        if (p === undefined) break;
        const e = p.entry;
        pieces[offered] = p;
        aheadBytes += bytesOf(p);
        const d = deferred<ReplyMessage>();
        answers[offered] = d;
        replies.set(offered, d);
        link.send({ type: 'offer', id: offered, kind: e.kind, path: e.path, size: e.size, mode: e.mode, mtimeMs: Math.round(e.mtimeMs), ...(p.range ? { range: p.range } : {}) });
        offered++;
      }
    };
    offerMore(-1);
    for (let id = 0; id < offered; id++) {
      const piece = pieces[id]!;
      const entry = piece.entry;
      aheadBytes -= bytesOf(piece);
      const reply = await link.guard(answers[id]!.promise);
      // eslint-disable-next-line @typescript-eslint/no-array-delete -- a sparse table keyed by file id: the answered slot is freed
      delete answers[id];
      // eslint-disable-next-line @typescript-eslint/no-array-delete -- the same table's piece, freed once answered
      delete pieces[id];
      offerMore(id);
      const file = piece.range ? session.file(entry) : undefined;
      if (reply.action === 'skip') {
        fail(entry, reply.code, reply.message, file);
      } else if (reply.action === 'created') {
        if (entry.kind !== 'dir') throw protocolError(`receiver answered 'created' for the file ${entry.path}`);
        dirs++;
        emit({ event: 'dir', path: entry.path });
      } else {
        if (entry.kind !== 'file') throw protocolError(`receiver asked for the data of the folder ${entry.path}`);
        const length = bytesOf(piece);
        if (reply.offset > length) throw protocolError(`receiver holds ${reply.offset} bytes of ${entry.path}${piece.range ? `'s range [${piece.range[0]}, ${piece.range[1]})` : ''}, which has ${length}`);
        // The file is recorded as sent when its END goes out, inside sendFile: its RESULT can
        // arrive while sendFile still closes the file, and must find it.
        const io = { pool, emit, openFile, syncReads: options.syncReads ?? false, hash, ...(file !== undefined ? { file, session } : {}) };
        const sent = await sendFile(link, id, piece, reply, io, (o) => outstanding.set(id, o));
        transferred += sent.transferred;
        if (!sent.ok) fail(entry, sent.error.code, sent.error.message, file);
      }
    }
    allResults = deferred();
    if (outstanding.size === 0) allResults.resolve();
    link.send({ type: 'done' });
    await link.guard(allResults.promise);
    complete = true;
  } catch (err) {
    link.fail(err);
    await reading;
    throw toSocketkitError(readerError ?? err, link.peer);
  } finally {
    if (joined !== undefined) options.sessions?.leave(joined);
    else void source?.close();
  }
  await link.finish();
  await reading;
  return { files, dirs, bytes, transferred, seconds: (performance.now() - t0) / 1000, failures, hash };
}

/** What {@link sendFile} reads with and reports to. */
interface FileIo {
  readonly pool: BufferPool;
  readonly emit: (e: TransferEvent) => void;
  readonly openFile: (path: string) => Promise<FileHandle>;
  readonly syncReads: boolean;
  readonly hash: HashName;
  /** A range's file and its session (parallel streams). */
  readonly file?: RangedFile;
  readonly session?: SendSession;
}

type SendOutcome = { readonly ok: true; readonly transferred: number } | { readonly ok: false; readonly error: SocketkitError; readonly transferred: number };

/**
 * Streams one accepted file, or one range of a file: BEGIN, DATA..., END. `sent` records the
 * piece just before its END goes out (its RESULT may come back before this function has closed
 * the file). A problem with the file itself (gone, shrunk, unreadable) is reported to the
 * receiver with ABORT and returned; a problem with the link throws.
 */
async function sendFile(
  link: Link,
  id: number,
  piece: Piece,
  reply: Extract<ReplyMessage, { action: 'receive' }>,
  io: FileIo,
  sent: (o: Outstanding) => void,
): Promise<SendOutcome> {
  const { pool, emit, file } = io;
  const { entry } = piece;
  // A range is sent as a file of its own: its bytes, its offset, its digest (XXH3-128).
  const base = piece.range?.[0] ?? 0;
  const end = piece.range?.[1] ?? entry.size;
  const started = performance.now();
  let fh: FileHandle | undefined;
  let transferred = 0;
  try {
    try {
      fh = await io.openFile(entry.source);
    } catch (err) {
      throw toSocketkitError(err, entry.source);
    }
    const st = await fh.stat();
    if (!st.isFile() || st.size < entry.size) {
      throw new SocketkitError('ERR_SOURCE_CHANGED', `${entry.source} changed since it was listed (now ${st.size} bytes, offered ${entry.size}); send it again`);
    }
    const hashName = file !== undefined ? RANGE_HASH : io.hash;
    let offset = reply.offset;
    let hash: FileDigest = await createDigest(hashName);
    if (offset > 0) {
      // Hash what the receiver says it has, without sending it, and check that it is ours.
      for await (const chunk of readChunks(fh, base, base + offset, pool, entry.source)) {
        hash.update(chunk);
        pool.release(chunk);
        link.markProgress();
      }
      if (hash.peek() !== reply.prefixSha256) {
        // Not a prefix of this file (an older version, another file): start over.
        offset = 0;
        hash = await createDigest(hashName);
      }
    }
    const whole = file !== undefined ? await io.session!.digestOf(file, io.hash) : undefined;
    link.send({ type: 'begin', id, offset });
    if (file === undefined) emit({ event: 'file-start', path: entry.path, size: entry.size, offset });
    else {
      // The file's first range makes this connection its owner (its events, its SEAL).
      if (base === 0) {
        file.started = started;
        file.emit = emit;
        emit({ event: 'file-start', path: entry.path, size: entry.size, offset: 0 });
      }
      file.sent += offset;
    }
    let position = base + offset;
    for await (const chunk of readChunks(fh, base + offset, end, pool, entry.source, { sync: io.syncReads })) {
      hash.update(chunk);
      whole?.feed(position, chunk);
      link.sendData(chunk, () => pool.release(chunk));
      position += chunk.byteLength;
      transferred += chunk.byteLength;
      if (file === undefined) emit({ event: 'file-progress', path: entry.path, size: entry.size, bytes: position });
      else {
        file.sent += chunk.byteLength;
        file.emit?.({ event: 'file-progress', path: entry.path, size: entry.size, bytes: Math.min(entry.size, file.sent) });
      }
    }
    // The range is all here (it is our own file): the whole-file digest may read it back.
    whole?.complete(base, end);
    const sha256 = hash.digest();
    sent({ entry, offset, sha256, started, ...(file !== undefined ? { ranged: { file, seal: false }, range: [base, end] as const } : {}) });
    link.send({ type: 'end', id, sha256 });
    return { ok: true, transferred };
  } catch (err) {
    if (link.failure) throw link.failure;
    const error = toSocketkitError(err, entry.source);
    link.send({ type: 'abort', id, code: error.code, message: error.message });
    return { ok: false, error, transferred };
  } finally {
    await fh?.close().catch(() => undefined);
  }
}

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
import { agreeHash, hashHello, negotiateVersion, protocolError, type ReplyMessage } from './protocol.js';
import { createDigest, HASH_LABELS, type FileDigest, type HashName } from './digest.js';

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

/** A file whose END is sent and whose RESULT is awaited. */
interface Outstanding {
  readonly entry: TransferEntry;
  readonly offset: number;
  readonly sha256: string;
  readonly started: number;
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

  const fail = (entry: TransferEntry, code: ErrorCode, message: string): void => {
    failures.push({ path: entry.path, code, message });
    emit({ event: 'file-failed', path: entry.path, code, message });
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
          if (msg.ok && msg.sha256 === o.sha256) {
            files++;
            bytes += o.entry.size;
            emit({ event: 'file-done', path: o.entry.path, size: o.entry.size, offset: o.offset, sha256: o.sha256, ms: performance.now() - o.started });
          } else if (msg.ok) {
            fail(o.entry, 'ERR_HASH_MISMATCH', `receiver verified a different ${HASH_LABELS[hash]} (${msg.sha256}) than was sent (${o.sha256})`);
          } else {
            fail(o.entry, msg.code, msg.message);
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
    hash = agreeHash(negotiateVersion(hello), options.hash, hello);

    const openFile = options.openFile ?? openForReading;
    const pool = new BufferPool(options.chunkSize ?? DEFAULT_CHUNK_SIZE, options.readAhead ?? DEFAULT_READ_AHEAD);
    let offered = 0;
    const offerUpTo = (n: number): void => {
      for (; offered < Math.min(n, entries.length); offered++) {
        const e = entries[offered]!;
        const d = deferred<ReplyMessage>();
        answers[offered] = d;
        replies.set(offered, d);
        link.send({ type: 'offer', id: offered, kind: e.kind, path: e.path, size: e.size, mode: e.mode, mtimeMs: Math.round(e.mtimeMs) });
      }
    };
    offerUpTo(window);
    for (let id = 0; id < entries.length; id++) {
      const entry = entries[id]!;
      const reply = await link.guard(answers[id]!.promise);
      // eslint-disable-next-line @typescript-eslint/no-array-delete -- a sparse table keyed by file id: the answered slot is freed
      delete answers[id];
      offerUpTo(id + 1 + window);
      if (reply.action === 'skip') {
        fail(entry, reply.code, reply.message);
      } else if (reply.action === 'created') {
        if (entry.kind !== 'dir') throw protocolError(`receiver answered 'created' for the file ${entry.path}`);
        dirs++;
        emit({ event: 'dir', path: entry.path });
      } else {
        if (entry.kind !== 'file') throw protocolError(`receiver asked for the data of the folder ${entry.path}`);
        if (reply.offset > entry.size) throw protocolError(`receiver holds ${reply.offset} bytes of ${entry.path}, which has ${entry.size}`);
        // The file is recorded as sent when its END goes out, inside sendFile: its RESULT can
        // arrive while sendFile still closes the file, and must find it.
        const sent = await sendFile(link, id, entry, reply, { pool, emit, openFile, syncReads: options.syncReads ?? false, hash }, (o) => outstanding.set(id, o));
        transferred += sent.transferred;
        if (!sent.ok) fail(entry, sent.error.code, sent.error.message);
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
}

type SendOutcome = { readonly ok: true; readonly transferred: number } | { readonly ok: false; readonly error: SocketkitError; readonly transferred: number };

/**
 * Streams one accepted file: BEGIN, DATA..., END. `sent` records the file just before its END
 * goes out (its RESULT may come back before this function has closed the file). A problem with
 * the file itself (gone, shrunk, unreadable) is reported to the receiver with ABORT and
 * returned; a problem with the link throws.
 */
async function sendFile(
  link: Link,
  id: number,
  entry: TransferEntry,
  reply: Extract<ReplyMessage, { action: 'receive' }>,
  io: FileIo,
  sent: (o: Outstanding) => void,
): Promise<SendOutcome> {
  const { pool, emit } = io;
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
    let offset = reply.offset;
    let hash: FileDigest = await createDigest(io.hash);
    if (offset > 0) {
      // Hash what the receiver says it has, without sending it, and check that it is ours.
      for await (const chunk of readChunks(fh, 0, offset, pool, entry.source)) {
        hash.update(chunk);
        pool.release(chunk);
        link.markProgress();
      }
      if (hash.peek() !== reply.prefixSha256) {
        // Not a prefix of this file (an older version, another file): start over.
        offset = 0;
        hash = await createDigest(io.hash);
      }
    }
    link.send({ type: 'begin', id, offset });
    emit({ event: 'file-start', path: entry.path, size: entry.size, offset });
    let position = offset;
    for await (const chunk of readChunks(fh, offset, entry.size, pool, entry.source, { sync: io.syncReads })) {
      hash.update(chunk);
      link.sendData(chunk, () => pool.release(chunk));
      position += chunk.byteLength;
      transferred += chunk.byteLength;
      emit({ event: 'file-progress', path: entry.path, size: entry.size, bytes: position });
    }
    const sha256 = hash.digest();
    sent({ entry, offset, sha256, started });
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

/**
 * The receiving role of the framed protocol, whichever end connected: `get` runs it against a
 * `serve`, `receive` runs it for each client that sends. {@link Receiver} has one method per
 * message of the sender; {@link runReceiver} is `new Receiver(options).run(link)`.
 *
 * Safety, file by file:
 * - the offered path is checked and resolved inside the target folder (see `paths.ts`);
 * - an existing file is refused unless `force` (or continued, with `resume`, if it is shorter);
 * - data goes to the partial file `.NAME.sk-partial` beside `NAME` (see `place.ts`; opened with
 *   O_NOFOLLOW), hashed as it arrives; at END the digest of the whole file (SHA-256, or XXH3-128
 *   when agreed in the hello) is compared with the sender's; then the file is fsynced, placed under its final name (without replacing anything
 *   unless `force`) and its folder fsynced. A failed or mismatched file never appears under its
 *   final name; a mismatched partial file is deleted, an interrupted one kept for resuming.
 * - A partial file left by an earlier attempt is hashed and offered back as the resume point;
 *   the sender checks the hash against its own file and restarts from 0 if they differ.
 * - A full disk stops the whole transfer with an ERROR to the sender, also when it is found only
 *   while a file is finalised.
 */
import { EventEmitter, once } from 'node:events';
import { constants as fsc } from 'node:fs';
import { lstat, mkdir, open, realpath, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { SocketkitError, toSocketkitError, type ErrorCode, type ErrorHint } from '../core/errors.js';
import { DEFAULT_CHUNK_SIZE, DEFAULT_FINALIZE_CONCURRENCY, DEFAULT_STALL_TIMEOUT_MS, MAX_OFFERS_AHEAD } from './constants.js';
import type { TransferEvent, TransferFailure, TransferSummary } from './events.js';
import { BufferPool, FileSink, OverlapFileSink, SyncFileSink, readChunks, type ChunkSink } from './file-io.js';
import type { DataSink, Link } from './link.js';
import { checkWirePath, resolveUnder, unsafePath } from './paths.js';
import { adoptForResume, lstatOrUndefined, partialPath, place, receivedMode, removeIfEmpty, syncDir } from './place.js';
import { agreeHash, checkDigest, clean, hashHello, negotiateVersion, protocolError, type Message, type OfferMessage } from './protocol.js';
import { createDigest, HASH_LABELS, type FileDigest, type HashName } from './digest.js';

/** Options of {@link runReceiver}. */
export interface ReceiverOptions {
  /** The folder entries are written under (created if missing). */
  readonly dir: string;
  /**
   * Single-file mode: the sender must offer exactly one file, written here whatever its name
   * (the user chose this path, so it is not subject to the wire-path rules).
   */
  readonly out?: string;
  /** Replace existing files (never folders). Default false: an existing file is refused with `ERR_EXISTS`. */
  readonly force?: boolean;
  /**
   * Continue an existing file with the final name that is shorter than the offered one (left by
   * another tool) as if it were a partial file. A partial file is always resumed, with or without this.
   */
  readonly resume?: boolean;
  /** Progress and outcome of each entry. */
  readonly onEvent?: (e: TransferEvent) => void;
  /** Announced in the hello. */
  readonly software?: string;
  /**
   * Final paths being received by other connections of the same server; a second connection
   * offering one of them is refused with `ERR_BUSY` instead of sharing its partial file.
   */
  readonly claims?: Set<string>;
  /** Files finalised (fsync, rename) at once while the next ones arrive (default 4). */
  readonly finalizeConcurrency?: number;
  /**
   * Write file data synchronously as it arrives (see `SyncFileSink`); the receiver's
   * {@link Receiver.sink} then takes DATA straight from the link's reads: fastest, but it blocks
   * the event loop for each write, so only for a process that does nothing else (`get`).
   * Default false: writes go through the thread pool, as a server with many clients needs.
   */
  readonly syncWrites?: boolean;
  /**
   * With `syncWrites`: copy each chunk into one of a few reused buffers and write full buffers
   * through the thread pool (see `OverlapFileSink`), so that the next chunk is hashed while the
   * last one is written. Default true; false writes each chunk synchronously from the read
   * (`SyncFileSink`). Measured on the 2-core test machine (2 GiB into tmpfs, README
   * "Benchmarks"): the overlap costs the receiver about 0.6 CPU-seconds more per 2 GiB (the copy,
   * the hand-offs), and is faster when a core is free for the writes (1.21-1.38x in the paired
   * rounds of the benchmark); with every core busy it was the slower.
   */
  readonly overlapWrites?: boolean;
  /**
   * The hash asked for (announced in the hello; see `agreeHash`). Default: none asked, so
   * SHA-256 unless the sender asks for XXH3-128.
   */
  readonly hash?: HashName;
}

/** A file the receiver has agreed to receive. */
interface Incoming {
  readonly id: number;
  readonly offer: OfferMessage;
  /** Where it ends up. */
  readonly target: string;
  /** Where it is written meanwhile. */
  readonly part: string;
  /** Bytes the partial file holds that match the offer (0 if none or stale). */
  readonly offset: number;
  /** The agreed hash's state over those bytes. */
  readonly prefixHash: FileDigest | undefined;
  /** --resume: the user's file under the final name holding the prefix, adopted at BEGIN if confirmed. */
  readonly adopt?: string;
}

/** The file whose data is arriving. */
interface Current {
  readonly incoming: Incoming;
  readonly offset: number;
  readonly started: number;
  readonly hash: FileDigest;
  fh: FileHandle | undefined;
  sink: ChunkSink | undefined;
  received: number;
  /** Position of the last progress event. */
  reported: number;
  /** Set when the file cannot be completed here (not a reason to stop the transfer). */
  failed: SocketkitError | undefined;
}

/** Bytes between two progress events of a file. */
const PROGRESS_STEP = 1024 * 1024;

/** Flags for a partial file: write, create, never through a symbolic link. */
const PART_FLAGS = fsc.O_WRONLY | fsc.O_CREAT | (fsc.O_NOFOLLOW ?? 0);

/**
 * Tells connections waiting for a claimed name that it is free: one emitter per claims set,
 * an event named by the target path. (The set is shared by the connections of one server.)
 */
const claimReleases = new WeakMap<Set<string>, EventEmitter>();

function releasesOf(claims: Set<string>): EventEmitter {
  let e = claimReleases.get(claims);
  if (e === undefined) {
    e = new EventEmitter();
    // Any number of connections may wait for names; each listener goes when its wait ends.
    e.setMaxListeners(0);
    claimReleases.set(claims, e);
  }
  return e;
}

/** Frees a claimed name and wakes whoever waits for it. */
function releaseClaim(claims: Set<string>, target: string): void {
  if (claims.delete(target)) claimReleases.get(claims)?.emit(target);
}

/**
 * Waits until no other connection claims `target` (its file is still being flushed, or its
 * connection is still dying), at most the stall timeout; then claims it.
 *
 * @throws SocketkitError `ERR_BUSY` if the name is still claimed after that.
 */
async function claim(claims: Set<string>, target: string, shown: string, link: Link): Promise<void> {
  if (claims.has(target)) {
    const ms = link.stallTimeoutMs > 0 ? link.stallTimeoutMs : DEFAULT_STALL_TIMEOUT_MS;
    const signal = AbortSignal.timeout(ms);
    const releases = releasesOf(claims);
    while (claims.has(target)) {
      try {
        // busy(): the peer gets keepalives meanwhile, and a dead link ends the wait.
        await link.busy(once(releases, target, { signal }));
      } catch (err) {
        if (signal.aborted) throw new SocketkitError('ERR_BUSY', `'${shown}' is being received by another connection`);
        throw err;
      }
    }
  }
  claims.add(target);
}

/** Errors after which no later file can succeed either: the transfer stops. */
function isFatal(err: SocketkitError): boolean {
  return err.code === 'ERR_DISK_FULL';
}

/**
 * Receives what the peer offers over `link` into `options.dir` (or `options.out`): the same as
 * `new Receiver(options).run(link)`.
 *
 * @throws SocketkitError as {@link Receiver.run}.
 */
export function runReceiver(link: Link, options: ReceiverOptions): Promise<TransferSummary> {
  return new Receiver(options).run(link);
}

/**
 * The receiving role over one connection: `run()` reads the sender's messages and hands each to
 * its method (`#offer`, `#begin`, `data`, `#end`, `#abort`, `#done`). Per-entry failures
 * (unsafe path, exists, hash mismatch...) are answered to the sender and collected in the
 * summary; the connection failing, a protocol violation or a full disk rejects.
 *
 * With `syncWrites`, {@link Receiver.sink} is the link's DATA sink: give it to the link when
 * making it (`LinkOptions.data`), and file bytes are hashed and written straight from the reads.
 * A receiver runs once.
 */
export class Receiver {
  readonly #options: ReceiverOptions;
  readonly #emit: (e: TransferEvent) => void;
  /** Final paths claimed by any connection of the server (see `claim`). */
  readonly #claims: Set<string>;
  /** The ones this connection holds. */
  readonly #myClaims = new Set<string>();
  /** Files finalised at once, at most. */
  readonly #limit: number;
  #link: Link | undefined;
  /** The folder entries go under, resolved (set once the hello is checked). */
  #root = '';
  readonly #failures: TransferFailure[] = [];
  #files = 0;
  #dirs = 0;
  #bytes = 0;
  #transferred = 0;
  /** Files accepted and waiting for their BEGIN, in order. */
  readonly #accepted: Incoming[] = [];
  /** The file whose data is arriving. */
  #current: Current | undefined;
  /** Files being verified and placed. */
  readonly #finalizing = new Set<Promise<void>>();
  /** A finalisation slot frees (see `#end`). */
  #slotFree: (() => void) | undefined;
  /** A failure found in the background that stops the transfer (a full disk at finalisation). */
  #fatal: SocketkitError | undefined;
  /** DONE arrived. */
  #doneSeen = false;
  /** Offers seen (single-file mode allows one). */
  #offers = 0;
  /** The peer sent ERROR: it needs none back. */
  #fromPeer = false;
  /** The hash agreed in the hellos. */
  #hash: HashName = 'sha256';

  /**
   * Hashes and writes file bytes synchronously from the read that brought them (see
   * {@link DataSink}); undefined unless `syncWrites` (a thread-pool write keeps the bytes past
   * the read, which may be a reused buffer).
   */
  readonly sink: DataSink | undefined;

  constructor(options: ReceiverOptions) {
    this.#options = options;
    this.#emit = options.onEvent ?? (() => undefined);
    this.#claims = options.claims ?? new Set<string>();
    this.#limit = Math.max(1, options.finalizeConcurrency ?? DEFAULT_FINALIZE_CONCURRENCY);
    this.sink = options.syncWrites ? (bytes) => this.data(bytes) : undefined;
  }

  /**
   * Receives what the peer offers over `link`. Its DATA sink, if it has one, must be this
   * receiver's {@link Receiver.sink}.
   *
   * @returns The summary: files and folders received, and the entries that failed.
   * @throws SocketkitError `ERR_TRANSFER_ROLE` when the peer is a receiver too, `ERR_TRANSFER_VERSION`,
   *   `ERR_TRANSFER_PROTOCOL`, `ERR_STALLED`, `ERR_DISK_FULL`, `ERR_USAGE` (several entries offered
   *   to a single `out` file), or a connection error.
   */
  async run(link: Link): Promise<TransferSummary> {
    if (this.#link !== undefined) throw new SocketkitError('ERR_INVALID_ARG', 'a receiver runs once');
    this.#link = link;
    const t0 = performance.now();
    const options = this.#options;
    link.sendHello('receiver', { ...(options.software !== undefined ? { software: options.software } : {}), ...hashHello(options.hash) });
    let completed = false;
    try {
      await this.#hello(link);
      for (;;) {
        if (this.#fatal) throw this.#fatal;
        // Messages already queued are taken without a promise each; wait only when there are none.
        const msg = link.poll() ?? (await link.next());
        if (msg === null) {
          if (!this.#doneSeen) throw new SocketkitError('ERR_CONN_CLOSED', `${link.peer} ended the connection before the transfer was complete`);
          break;
        }
        await this.#dispatch(link, msg);
        // A file accepted and waiting for its data: keepalives alone do not keep its name.
        link.setWaitingForPeer(this.#current !== undefined || this.#accepted.length > 0);
      }
      completed = true;
    } catch (err) {
      const e = toSocketkitError(err, link.peer);
      link.fail(e, !this.#fromPeer);
      throw e;
    } finally {
      await this.#cleanUp();
      if (completed) await link.finish();
      // After a failure told to the peer: its ERROR is out before the connection goes.
      else await link.closed();
    }
    return { files: this.#files, dirs: this.#dirs, bytes: this.#bytes, transferred: this.#transferred, seconds: (performance.now() - t0) / 1000, failures: this.#failures, hash: this.#hash };
  }

  /** The sender's hello: its role and version, and the target folder made ready. */
  async #hello(link: Link): Promise<void> {
    const options = this.#options;
    const hello = await link.readHello();
    if (hello.role !== 'sender') {
      throw new SocketkitError('ERR_TRANSFER_ROLE', `${link.peer} wants to receive too: fetch from a 'serve' with 'get', push to a 'receive' with 'send'`);
    }
    this.#hash = agreeHash(negotiateVersion(hello), options.hash, hello);
    if (options.out !== undefined && hello.info.entries !== undefined && hello.info.entries !== 1) {
      throw new SocketkitError('ERR_INVALID_ARG', `the sender offers ${hello.info.entries} entries, but the output is one file`, { hint: 'output-is-one-file' });
    }
    try {
      await mkdir(options.dir, { recursive: true });
    } catch (err) {
      throw toSocketkitError(err, options.dir);
    }
    this.#root = await realpath(options.dir);
  }

  /** One message from the sender, to the method that handles it. */
  async #dispatch(link: Link, msg: Message): Promise<void> {
    switch (msg.type) {
      case 'offer':
        return this.#offer(link, msg);
      case 'begin':
        return this.#begin(msg.id, msg.offset);
      case 'data': {
        const wait = this.data(msg.bytes);
        if (wait !== undefined) await link.guard(wait);
        return;
      }
      case 'end':
        return this.#end(link, msg.id, msg.sha256);
      case 'abort':
        return this.#abort(msg.id, msg.code, msg.message);
      case 'done':
        return this.#done(link);
      case 'error':
        this.#fromPeer = true;
        throw new SocketkitError(msg.code, `sender ${link.peer}: ${msg.message}`);
      default:
        throw protocolError(`unexpected '${msg.type}' message from the sender`);
    }
  }

  /** OFFER: checks it, prepares what is needed, replies. */
  async #offer(link: Link, offer: OfferMessage): Promise<void> {
    const options = this.#options;
    if (this.#doneSeen) throw protocolError('offer after DONE');
    // Files accepted ahead of the one streaming (or of the next to stream): the sender's
    // window. Each holds a name; a peer may not hold more.
    if (offer.kind === 'file' && (this.#current !== undefined ? this.#accepted.length : this.#accepted.length - 1) >= MAX_OFFERS_AHEAD) {
      throw protocolError(`more than ${MAX_OFFERS_AHEAD} files offered ahead of the one being sent`);
    }
    if (options.out !== undefined && ++this.#offers > 1) throw new SocketkitError('ERR_INVALID_ARG', 'the sender offers several entries, but the output is one file', { hint: 'output-is-one-file' });
    try {
      if (offer.kind === 'dir') {
        if (options.out !== undefined) throw new SocketkitError('ERR_INVALID_ARG', `the sender offers the folder '${clean(offer.path, 200)}', but the output is one file`, { hint: 'output-is-one-file' });
        await makeDir(this.#root, offer);
        this.#dirs++;
        this.#emit({ event: 'dir', path: offer.path });
        link.send({ type: 'reply', id: offer.id, action: 'created' });
      } else {
        const incoming = await prepareFile(this.#root, offer, options, this.#claims, link, this.#hash);
        this.#myClaims.add(incoming.target);
        this.#accepted.push(incoming);
        link.send({
          type: 'reply',
          id: offer.id,
          action: 'receive',
          offset: incoming.offset,
          ...(incoming.prefixHash ? { prefixSha256: incoming.prefixHash.peek() } : {}),
        });
      }
    } catch (err) {
      const e = toSocketkitError(err);
      if (isFatal(e) || e.code === 'ERR_INVALID_ARG') throw e;
      this.#failEntry(offer.path, e.code, e.message, e.hint);
      link.send({ type: 'reply', id: offer.id, action: 'skip', code: e.code, message: e.message });
    }
    await link.writable();
  }

  /** BEGIN: open (or cut) the partial file and start hashing. A local failure marks the file failed. */
  async #begin(id: number, offset: number): Promise<void> {
    if (this.#current !== undefined) throw protocolError(`BEGIN while ${this.#current.incoming.offer.path} is unfinished`);
    const incoming = this.#accepted.shift();
    if (incoming === undefined || incoming.id !== id) throw protocolError(`BEGIN for entry ${id}, which is not the next accepted file`);
    if (offset !== 0 && offset !== incoming.offset) throw protocolError(`BEGIN at byte ${offset} of ${incoming.offer.path}; the receiver offered ${incoming.offset}`);
    const resumed = offset > 0 && incoming.prefixHash !== undefined;
    const cur: Current = {
      incoming,
      offset,
      started: performance.now(),
      hash: resumed ? incoming.prefixHash : await createDigest(this.#hash),
      fh: undefined,
      sink: undefined,
      received: 0,
      reported: offset,
      failed: undefined,
    };
    this.#current = cur;
    this.#emit({ event: 'file-start', path: incoming.offer.path, size: incoming.offer.size, offset });
    try {
      if (incoming.adopt !== undefined) await adoptForResume(incoming.adopt, incoming.part, incoming.offset, offset, clean(incoming.offer.path, 200));
      cur.fh = await open(incoming.part, PART_FLAGS, 0o600);
      const st = await cur.fh.stat();
      if (!st.isFile()) throw unsafePath(incoming.offer.path, `${basename(incoming.part)} is not a regular file`);
      // Exactly `offset` bytes stay: the resumed prefix, or nothing.
      if (st.size !== offset) await cur.fh.truncate(offset);
      cur.sink = this.#makeSink(cur.fh, incoming.part, offset);
    } catch (err) {
      const e = toSocketkitError(err, incoming.part);
      if (isFatal(e)) throw e;
      cur.failed = (err as NodeJS.ErrnoException).code === 'ELOOP' ? unsafePath(incoming.offer.path, `${basename(incoming.part)} is a symbolic link`) : e;
      await cur.fh?.close().catch(() => undefined);
      cur.fh = undefined;
    }
  }

  /** Where a file's bytes go: from the reads (overlapped or synchronous), or queued by reference for the thread pool. */
  #makeSink(fh: FileHandle, part: string, offset: number): ChunkSink {
    const o = this.#options;
    if (!o.syncWrites) return new FileSink(fh, { position: offset, path: part });
    return o.overlapWrites === false ? new SyncFileSink(fh.fd, part, offset) : new OverlapFileSink(fh, { position: offset, path: part });
  }

  /**
   * DATA: hash, queue the write. Synchronous on the hot path; returns a promise only when the
   * disk is behind and the caller must wait (which, by not reading, pauses the socket). It is
   * {@link Receiver.sink}, which the link calls from its read; for DATA that was queued, the
   * message loop calls it and waits on the link's guard.
   *
   * @throws SocketkitError `ERR_TRANSFER_PROTOCOL` for data outside a file or beyond its size;
   *   `ERR_DISK_FULL` (also as the promise's rejection).
   */
  data(data: Uint8Array): Promise<void> | undefined {
    const cur = this.#current;
    if (cur === undefined) throw protocolError('file data outside a file (no BEGIN)');
    cur.received += data.byteLength;
    this.#transferred += data.byteLength;
    const at = cur.offset + cur.received;
    const { size } = cur.incoming.offer;
    if (at > size) throw protocolError(`${cur.incoming.offer.path}: more data than its offered size of ${size} bytes`);
    if (cur.failed || cur.sink === undefined) return undefined;
    cur.hash.update(data);
    // Progress at most every 1 MiB (and at the end): plenty for a display, cheap per chunk.
    if (at - cur.reported >= PROGRESS_STEP || at === size) {
      cur.reported = at;
      this.#emit({ event: 'file-progress', path: cur.incoming.offer.path, size, bytes: at });
    }
    let full: boolean;
    try {
      full = !cur.sink.write(data);
    } catch (err) {
      return this.#writeFailed(cur, err);
    }
    return full ? cur.sink.drained().catch((err: unknown) => this.#writeFailed(cur, err)) : undefined;
  }

  /** A write failed: a full disk rethrows (the transfer stops); anything else fails this file only. */
  #writeFailed(cur: Current, err: unknown): undefined {
    const e = toSocketkitError(err, cur.incoming.part);
    if (isFatal(e)) throw e;
    cur.failed = e;
    return undefined;
  }

  /** END: the file's data is complete; verify and place it in the background. */
  async #end(link: Link, id: number, sha256: string): Promise<void> {
    const cur = this.#current;
    if (cur === undefined || cur.incoming.id !== id) throw protocolError(`END for entry ${id}, which is not the file being received`);
    const { offer } = cur.incoming;
    if (cur.offset + cur.received !== offer.size) {
      throw protocolError(`${offer.path}: data ended at byte ${cur.offset + cur.received} of ${offer.size}`);
    }
    checkDigest(this.#hash, sha256, `END of ${clean(offer.path, 200)}`);
    this.#current = undefined;
    const digest = cur.hash.digest();
    while (this.#finalizing.size >= this.#limit) await link.guard(new Promise<void>((resolve) => (this.#slotFree = resolve)));
    const job = this.#finalize(link, cur, sha256, digest).then(
      () => {
        this.#files++;
        this.#bytes += offer.size;
        this.#emit({ event: 'file-done', path: offer.path, size: offer.size, offset: cur.offset, sha256, ms: performance.now() - cur.started });
        link.send({ type: 'result', id, ok: true, sha256 });
      },
      (err: unknown) => {
        const e = toSocketkitError(err, cur.incoming.part);
        this.#failEntry(offer.path, e.code, e.message, e.hint);
        if (isFatal(e)) {
          // Not a RESULT: a sender that has every RESULT is done, and would take the transfer
          // for a success with one failed file. The whole transfer fails, and says why first.
          this.#fatal ??= e;
          link.fail(e);
          return;
        }
        link.send({ type: 'result', id, ok: false, code: e.code, message: e.message });
      },
    );
    const tracked: Promise<void> = job.finally(() => {
      this.#release(cur.incoming.target);
      this.#finalizing.delete(tracked);
      const free = this.#slotFree;
      this.#slotFree = undefined;
      free?.();
    });
    this.#finalizing.add(tracked);
  }

  /** Flush, verify, fsync, rename, fsync the folder. Rejects with the file's coded error. */
  async #finalize(link: Link, cur: Current, expected: string, digest: string): Promise<void> {
    const { offer, part, target } = cur.incoming;
    try {
      if (cur.failed) throw cur.failed;
      const fh = cur.fh!;
      await cur.sink!.flush();
      if (digest !== expected) {
        await fh.close();
        cur.fh = undefined;
        await unlink(part).catch(() => undefined);
        throw new SocketkitError(
          'ERR_HASH_MISMATCH',
          `${HASH_LABELS[cur.hash.name]} mismatch: received data hashes to ${digest.slice(0, 16)}…, the sender's file to ${expected.slice(0, 16)}…; nothing was kept`,
          { exitCode: 1 },
        );
      }
      await fh.chmod(receivedMode(offer.mode));
      await fh.utimes(new Date(), new Date(offer.mtimeMs));
      await link.busy(fh.sync());
      await fh.close();
      cur.fh = undefined;
      await place(part, target, this.#options.force ?? false);
      await syncDir(dirname(target));
    } finally {
      await cur.fh?.close().catch(() => undefined);
    }
  }

  /** ABORT from the sender: the file cannot be completed; keep what arrived for a later resume. */
  async #abort(id: number, code: ErrorCode, message: string): Promise<void> {
    let incoming: Incoming;
    const cur = this.#current;
    if (cur !== undefined && cur.incoming.id === id) {
      this.#current = undefined;
      incoming = cur.incoming;
      await cur.sink?.flush().catch(() => undefined);
      await cur.fh?.close().catch(() => undefined);
      if (cur.offset + cur.received === 0) await unlink(incoming.part).catch(() => undefined);
    } else if (this.#accepted[0]?.id === id) {
      incoming = this.#accepted.shift()!;
    } else {
      throw protocolError(`ABORT for entry ${id}, which is not the next file`);
    }
    this.#release(incoming.target);
    this.#failEntry(incoming.offer.path, code, `sender: ${message}`);
  }

  /** DONE: every file has been sent; wait for the last ones to be placed. */
  async #done(link: Link): Promise<void> {
    if (this.#current !== undefined || this.#accepted.length > 0) throw protocolError('DONE before every accepted file was sent');
    this.#doneSeen = true;
    await link.guard(Promise.all(this.#finalizing));
    if (this.#fatal) throw this.#fatal;
  }

  #failEntry(path: string, code: ErrorCode, message: string, hint?: ErrorHint): void {
    this.#failures.push({ path, code, message, ...(hint ? { hint } : {}) });
    this.#emit({ event: 'file-failed', path, code, message, ...(hint ? { hint } : {}) });
  }

  /** Frees a name this connection held. */
  #release(target: string): void {
    this.#myClaims.delete(target);
    releaseClaim(this.#claims, target);
  }

  /**
   * Whatever happened: the file being received keeps its partial file for a resume, files already
   * complete are still verified and placed, and every claim is released as soon as nothing of
   * this connection touches its file any more (a retry may be waiting for it).
   */
  async #cleanUp(): Promise<void> {
    for (const waiting of this.#accepted.splice(0)) this.#release(waiting.target);
    const cur = this.#current;
    this.#current = undefined;
    if (cur !== undefined) {
      await cur.sink?.flush().catch(() => undefined);
      await cur.fh?.close().catch(() => undefined);
      // An empty partial file holds nothing to resume from.
      if (cur.fh !== undefined) await removeIfEmpty(cur.incoming.part);
      this.#release(cur.incoming.target);
    }
    await Promise.allSettled([...this.#finalizing]);
    for (const target of this.#myClaims) releaseClaim(this.#claims, target);
  }
}

/** Creates an offered folder (or accepts the one already there). */
async function makeDir(root: string, offer: OfferMessage): Promise<void> {
  const target = await resolveUnder(root, offer.path, true);
  try {
    await mkdir(target, { mode: (offer.mode & 0o777) | 0o700 });
    return;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw toSocketkitError(err, target);
  }
  const st = await lstat(target);
  if (st.isDirectory()) return;
  if (st.isSymbolicLink()) {
    // An existing link is acceptable only if it leads to a folder inside the target.
    await resolveUnder(root, `${offer.path}/x`, false);
    return;
  }
  throw new SocketkitError('ERR_EXISTS', `'${clean(offer.path, 200)}' exists and is not a folder`);
}

/** Checks an offered file and works out where it goes and how much of it is already here. */
async function prepareFile(root: string, offer: OfferMessage, options: ReceiverOptions, claims: Set<string>, link: Link, hash: HashName): Promise<Incoming> {
  let target: string;
  if (options.out !== undefined) {
    const why = checkWirePath(offer.path);
    if (why !== undefined) throw unsafePath(offer.path, why);
    target = options.out;
  } else {
    target = await resolveUnder(root, offer.path, true);
  }
  const part = partialPath(target);
  const shown = clean(offer.path, 200);
  // Claimed before anything is looked at: the partial file may still be changing under another connection.
  await claim(claims, target, shown, link);
  try {
    return await inspect(target, part, shown, offer, options, link, hash);
  } catch (err) {
    releaseClaim(claims, target);
    throw err;
  }
}

/** Works out how much of an offered, claimed file is already here. */
async function inspect(target: string, part: string, shown: string, offer: OfferMessage, options: ReceiverOptions, link: Link, hash: HashName): Promise<Incoming> {
  let partSize = await sizeOf(part, offer.path);
  let adopt: string | undefined;
  const existing = await lstatOrUndefined(target);
  if (existing !== undefined) {
    if (existing.isDirectory()) throw new SocketkitError('ERR_EXISTS', `'${shown}' exists and is a folder`);
    const continuable = options.resume === true && existing.isFile() && existing.size <= offer.size && partSize === undefined;
    if (continuable) {
      // --resume: the existing file's prefix is offered; it becomes the partial file only if the sender confirms it (at BEGIN).
      adopt = target;
      partSize = existing.size;
    } else if (options.force !== true) {
      throw new SocketkitError('ERR_EXISTS', `'${shown}' already exists`, { hint: options.resume === true ? 'exists-replace' : 'exists-replace-or-resume' });
    }
  }
  let prefixHash: FileDigest | undefined;
  let offset = 0;
  // A partial longer than the file cannot be its prefix: it is cut to 0 at BEGIN.
  if (partSize !== undefined && partSize > 0 && partSize <= offer.size) {
    prefixHash = await hashPrefix(adopt ?? part, partSize, link, hash);
    offset = partSize;
  }
  return { id: offer.id, offer, target, part, offset, prefixHash, ...(adopt !== undefined ? { adopt } : {}) };
}

/** The size of a regular partial file, undefined if there is none; refuses anything else under that name. */
async function sizeOf(part: string, shown: string): Promise<number | undefined> {
  const st = await lstatOrUndefined(part);
  if (st === undefined) return undefined;
  if (!st.isFile()) throw unsafePath(shown, `${basename(part)} exists and is not a regular file`);
  return st.size;
}

/** The agreed hash over the first `size` bytes of a partial file: the resume point's proof. */
async function hashPrefix(part: string, size: number, link: Link, name: HashName): Promise<FileDigest> {
  const hash = await createDigest(name);
  let fh: FileHandle;
  try {
    fh = await open(part, fsc.O_RDONLY | (fsc.O_NOFOLLOW ?? 0));
  } catch (err) {
    throw toSocketkitError(err, part);
  }
  try {
    const pool = new BufferPool(DEFAULT_CHUNK_SIZE, 2);
    for await (const chunk of readChunks(fh, 0, size, pool, part)) {
      hash.update(chunk);
      pool.release(chunk);
      link.markProgress();
    }
    return hash;
  } finally {
    await fh.close().catch(() => undefined);
  }
}

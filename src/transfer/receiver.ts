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
import { agreeHash, checkDigest, clean, hashHello, negotiateVersion, protocolError, type Message, type OfferMessage, type Hello, type ParallelInfo } from './protocol.js';
import { createDigest, HASH_LABELS, type FileDigest, type HashName } from './digest.js';
import { Assemblies, Assembly, heldFrom, OrderedDigest, RANGE_HASH, readBackFrom, readRanges, removeRanges, checkRange, insertExtent } from './parallel.js';

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
  /** Checks the peer's hello before anything else (a server that takes one client refuses its others here). */
  readonly checkHello?: (hello: Hello) => Promise<void>;
  /** Parallel streams, as the client: announced in the hello of each of the transfer's connections (see parallel.ts). */
  readonly parallel?: ParallelInfo;
  /**
   * Files being received in ranges, shared by the connections that may carry ranges of the same
   * file (a server's, or one parallel download's). Default: this receiver's own.
   */
  readonly assemblies?: Assemblies;
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
  /** Parallel streams: the range `[start, end)` of the file this offer carries, and the file it goes into. */
  readonly range?: readonly [number, number];
  readonly assembly?: Assembly;
}

/** The file whose data is arriving. */
interface Current {
  readonly incoming: Incoming;
  /** Where the offer's data starts in the file (a range's start; else 0), and how long it is. */
  readonly base: number;
  readonly length: number;
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
  /** Files received in ranges, shared with the other connections of the transfer. */
  readonly #assemblies: Assemblies;
  /** The parallel transfer this connection belongs to (its ranges join that session's files). */
  #session = '';
  /** Those of the files this connection holds. */
  readonly #using = new Set<Assembly>();
  /** Ranges verified here, by offer id: a SEAL names one of them. */
  readonly #sealable = new Map<number, Assembly>();

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
    this.#assemblies = options.assemblies ?? new Assemblies();
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
    link.sendHello('receiver', {
      ...(options.software !== undefined ? { software: options.software } : {}),
      ...hashHello(options.hash),
      ...(options.parallel !== undefined ? { parallel: options.parallel } : {}),
    });
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
    await options.checkHello?.(hello);
    this.#hash = agreeHash(negotiateVersion(hello), options.hash, hello);
    // Ranges of one file join each other only within one parallel transfer; without one, only on this connection.
    this.#session = (options.parallel ?? hello.info.parallel)?.session ?? `conn:${Math.random().toString(16).slice(2)}`;
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
      case 'seal':
        return this.#seal(link, msg.id, msg.sha256);
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
    // A file in ranges is one entry: its first range counts.
    if (options.out !== undefined && (offer.range === undefined || offer.range[0] === 0) && ++this.#offers > 1) throw new SocketkitError('ERR_INVALID_ARG', 'the sender offers several entries, but the output is one file', { hint: 'output-is-one-file' });
    try {
      if (offer.kind === 'dir') {
        if (options.out !== undefined) throw new SocketkitError('ERR_INVALID_ARG', `the sender offers the folder '${clean(offer.path, 200)}', but the output is one file`, { hint: 'output-is-one-file' });
        await makeDir(this.#root, offer);
        this.#dirs++;
        this.#emit({ event: 'dir', path: offer.path });
        link.send({ type: 'reply', id: offer.id, action: 'created' });
      } else {
        // A range's name is claimed by its file's assembly; a whole file's, by this connection.
        const incoming = offer.range !== undefined ? await this.#prepareRange(link, offer, offer.range) : await prepareFile(this.#root, offer, options, this.#claims, link, this.#hash);
        if (incoming.assembly === undefined) this.#myClaims.add(incoming.target);
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
    const assembly = incoming.assembly;
    const base = incoming.range?.[0] ?? 0;
    const cur: Current = {
      incoming,
      base,
      length: incoming.range ? incoming.range[1] - base : incoming.offer.size,
      offset,
      started: performance.now(),
      hash: resumed ? incoming.prefixHash : await createDigest(assembly !== undefined ? RANGE_HASH : this.#hash),
      fh: undefined,
      sink: undefined,
      received: 0,
      reported: offset,
      failed: undefined,
    };
    this.#current = cur;
    if (assembly !== undefined) {
      // One file, many ranges: it starts once, and its progress is all of them.
      assembly.received += offset;
      // The file's first range makes this connection its owner: its events, and its SEAL, come here.
      if (base === 0) {
        assembly.emit = this.#emit;
        this.#emit({ event: 'file-start', path: incoming.offer.path, size: incoming.offer.size, offset: 0 });
      }
      // The shared partial file is open already, at its full size.
      cur.sink = this.#makeSink(assembly.fh, incoming.part, base + offset);
      return;
    }
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
    const from = cur.offset + cur.received;
    cur.received += data.byteLength;
    this.#transferred += data.byteLength;
    const at = cur.offset + cur.received;
    const { size } = cur.incoming.offer;
    if (at > cur.length) throw protocolError(`${cur.incoming.offer.path}: more data than its offered size of ${cur.length} bytes${cur.incoming.range ? ' (a range)' : ''}`);
    if (cur.failed || cur.sink === undefined) return undefined;
    cur.hash.update(data);
    const assembly = cur.incoming.assembly;
    if (assembly !== undefined) {
      assembly.digest.feed(cur.base + from, data);
      assembly.received += data.byteLength;
      const bytes = Math.min(size, assembly.received);
      if (bytes - assembly.reported >= PROGRESS_STEP || bytes === size) {
        assembly.reported = bytes;
        assembly.emit?.({ event: 'file-progress', path: cur.incoming.offer.path, size, bytes });
      }
    } else if (at - cur.reported >= PROGRESS_STEP || at === size) {
      // Progress at most every 1 MiB (and at the end): plenty for a display, cheap per chunk.
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
    if (cur.offset + cur.received !== cur.length) {
      throw protocolError(`${offer.path}: data ended at byte ${cur.offset + cur.received} of ${cur.length}${cur.incoming.range ? ' (a range)' : ''}`);
    }
    const assembly = cur.incoming.assembly;
    checkDigest(assembly !== undefined ? RANGE_HASH : this.#hash, sha256, `END of ${clean(offer.path, 200)}`);
    this.#current = undefined;
    const digest = cur.hash.digest();
    while (this.#finalizing.size >= this.#limit) await link.guard(new Promise<void>((resolve) => (this.#slotFree = resolve)));
    if (assembly !== undefined) {
      this.#track(this.#finalizeRange(cur, assembly, sha256, digest).then(
        () => {
          this.#sealable.set(id, assembly);
          link.send({ type: 'result', id, ok: true, sha256 });
        },
        (err: unknown) => this.#resultFailed(link, id, offer.path, toSocketkitError(err, cur.incoming.part), assembly.emit),
      ));
      return;
    }
    const job = this.#finalize(link, cur, sha256, digest).then(
      () => {
        this.#files++;
        this.#bytes += offer.size;
        this.#emit({ event: 'file-done', path: offer.path, size: offer.size, offset: cur.offset, sha256, ms: performance.now() - cur.started });
        link.send({ type: 'result', id, ok: true, sha256 });
      },
      (err: unknown) => this.#resultFailed(link, id, offer.path, toSocketkitError(err, cur.incoming.part)),
    );
    this.#track(job.finally(() => this.#release(cur.incoming.target)));
  }

  /** A file (or range, or SEAL) failed: its RESULT says why; a fatal failure stops the transfer instead. */
  #resultFailed(link: Link, id: number, path: string, e: SocketkitError, emit?: (e: TransferEvent) => void): void {
    this.#failEntry(path, e.code, e.message, e.hint, emit);
    if (isFatal(e)) {
      // Not a RESULT: a sender that has every RESULT is done, and would take the transfer
      // for a success with one failed file. The whole transfer fails, and says why first.
      this.#fatal ??= e;
      link.fail(e);
      return;
    }
    link.send({ type: 'result', id, ok: false, code: e.code, message: e.message });
  }

  /** Background work on files: at most `finalizeConcurrency` at once (the caller waits for a slot). */
  #track(job: Promise<void>): void {
    const tracked: Promise<void> = job.finally(() => {
      this.#finalizing.delete(tracked);
      const free = this.#slotFree;
      this.#slotFree = undefined;
      free?.();
    });
    this.#finalizing.add(tracked);
  }

  /** A range is complete: flushed, checked against its digest, and recorded as held (the file is placed at its SEAL). */
  async #finalizeRange(cur: Current, assembly: Assembly, expected: string, digest: string): Promise<void> {
    if (cur.failed) throw cur.failed;
    await cur.sink!.flush();
    const [start, end] = cur.incoming.range!;
    if (digest !== expected) {
      throw new SocketkitError(
        'ERR_HASH_MISMATCH',
        `${HASH_LABELS[RANGE_HASH]} mismatch in bytes ${start}-${end}: received data hashes to ${digest.slice(0, 16)}…, the sender's to ${expected.slice(0, 16)}…; the file is not kept under its name`,
        { exitCode: 1 },
      );
    }
    await assembly.hold(start, end, true);
    assembly.digest.complete(start, end);
    // The bytes count on the connection that carried them; the file, at its SEAL.
    this.#bytes += end - start;
  }

  /** SEAL: every range of a file is verified; compare the whole file's digest, then put it in place. */
  async #seal(link: Link, id: number, sha256: string): Promise<void> {
    const assembly = this.#sealable.get(id);
    if (assembly === undefined) throw protocolError(`SEAL for entry ${id}, which is not a range verified here`);
    this.#sealable.delete(id);
    const shown = clean(basename(assembly.target), 200);
    if (assembly.sealed) throw protocolError(`a second SEAL for ${shown}`);
    if (!assembly.complete) throw protocolError(`SEAL for ${shown} before every range of it was verified`);
    checkDigest(this.#hash, sha256, `SEAL of ${shown}`);
    assembly.sealed = true;
    const path = assembly.path;
    while (this.#finalizing.size >= this.#limit) await link.guard(new Promise<void>((resolve) => (this.#slotFree = resolve)));
    this.#track(
      this.#place(link, assembly, sha256)
        .then(
          () => {
            this.#files++;
            (assembly.emit ?? this.#emit)({ event: 'file-done', path, size: assembly.size, offset: 0, sha256, ms: performance.now() - assembly.started });
            link.send({ type: 'result', id, ok: true, sha256 });
          },
          (err: unknown) => this.#resultFailed(link, id, path, toSocketkitError(err, assembly.part), assembly.emit),
        )
        .finally(() => this.#dropAssembly(assembly)),
    );
  }

  /** The whole file's digest compared with the sender's; then fsync, rename, fsync the folder. */
  async #place(link: Link, assembly: Assembly, expected: string): Promise<void> {
    const digest = await link.busy(assembly.digest.finish());
    const { fh, part, target } = assembly;
    if (digest !== expected) {
      await fh.close().catch(() => undefined);
      await unlink(part).catch(() => undefined);
      await assembly.forget();
      throw new SocketkitError(
        'ERR_HASH_MISMATCH',
        `${HASH_LABELS[this.#hash]} mismatch: the received file hashes to ${digest.slice(0, 16)}…, the sender's to ${expected.slice(0, 16)}…; nothing was kept`,
        { exitCode: 1 },
      );
    }
    try {
      await fh.chmod(receivedMode(assembly.mode));
      await fh.utimes(new Date(), new Date(assembly.mtimeMs));
      await link.busy(fh.sync());
    } finally {
      await fh.close().catch(() => undefined);
    }
    await place(part, target, this.#options.force ?? false);
    await assembly.forget();
    await syncDir(dirname(target));
  }

  /**
   * Parallel streams: an offered range of a file. The first range of a file (in this session)
   * claims its name and opens the shared partial file; the others join it. How much of the
   * range the partial file already holds is offered back as the resume point, with its digest.
   */
  async #prepareRange(link: Link, offer: OfferMessage, range: readonly [number, number]): Promise<Incoming> {
    checkRange(clean(offer.path, 200), offer.size, range);
    const target = await targetOf(this.#root, offer, this.#options);
    const assembly = await this.#assembly(link, target, offer);
    this.#using.add(assembly);
    assembly.users.add(this);
    const [start, end] = range;
    const held = Math.min(end - start, heldFrom(assembly.held, start));
    let prefixHash: FileDigest | undefined;
    if (held > 0) {
      prefixHash = await createDigest(RANGE_HASH);
      const hash = prefixHash;
      for await (const chunk of readBackFrom(assembly.fh, assembly.part)(start, start + held)) {
        hash.update(chunk);
        link.markProgress();
      }
    }
    return { id: offer.id, offer, target, part: assembly.part, offset: held, prefixHash, range, assembly };
  }

  /** The session's file being assembled at `target`, made by the first of its ranges to arrive. */
  async #assembly(link: Link, target: string, offer: OfferMessage): Promise<Assembly> {
    const reg = this.#assemblies;
    const shown = clean(offer.path, 200);
    const joinable = (a: Assembly): Assembly => {
      if (a.session !== this.#session || a.sealed) throw new SocketkitError('ERR_BUSY', `'${shown}' is being received by another transfer`);
      if (a.size !== offer.size) throw protocolError(`ranges of ${shown} offered with sizes ${a.size} and ${offer.size}`);
      return a;
    };
    const existing = reg.byTarget.get(target);
    if (existing !== undefined) return joinable(existing);
    const making = reg.making.get(target);
    if (making !== undefined) return joinable(await making);
    const made = this.#makeAssembly(link, target, offer, shown);
    reg.making.set(target, made);
    try {
      const a = await made;
      reg.byTarget.set(target, a);
      return a;
    } finally {
      reg.making.delete(target);
    }
  }

  async #makeAssembly(link: Link, target: string, offer: OfferMessage, shown: string): Promise<Assembly> {
    const options = this.#options;
    const part = partialPath(target);
    await claim(this.#claims, target, shown, link);
    let fh: FileHandle | undefined;
    try {
      const existing = await lstatOrUndefined(target);
      if (existing?.isDirectory()) throw new SocketkitError('ERR_EXISTS', `'${shown}' exists and is a folder`);
      if (existing !== undefined && options.force !== true) throw new SocketkitError('ERR_EXISTS', `'${shown}' already exists`, { hint: 'exists-replace' });
      const partSize = await sizeOf(part, offer.path);
      // What the partial file holds: its record of ranges, or (left by a single stream) its prefix.
      let held: Array<[number, number]> = [];
      if (partSize !== undefined && partSize > 0) {
        held = (await readRanges(target, offer.size)) ?? (partSize <= offer.size ? [[0, partSize]] : []);
        const clipped: Array<[number, number]> = [];
        for (const [a, b] of held) if (a < partSize) insertExtent(clipped, a, Math.min(b, partSize));
        held = clipped;
      }
      try {
        fh = await open(part, fsc.O_RDWR | fsc.O_CREAT | (fsc.O_NOFOLLOW ?? 0), 0o600);
      } catch (err) {
        throw (err as NodeJS.ErrnoException).code === 'ELOOP' ? unsafePath(offer.path, `${basename(part)} is a symbolic link`) : toSocketkitError(err, part);
      }
      const st = await fh.stat();
      if (!st.isFile()) throw unsafePath(offer.path, `${basename(part)} is not a regular file`);
      if (held.length === 0 && st.size > 0) await fh.truncate(0);
      // Full size at once (sparse): each range is written at its offset.
      if (st.size !== offer.size) await fh.truncate(offer.size);
      const digest = await OrderedDigest.create(this.#hash, offer.size, readBackFrom(fh, part));
      const a = new Assembly({ target, part, session: this.#session, size: offer.size, mode: offer.mode, mtimeMs: offer.mtimeMs, fh, digest, held, path: offer.path });
      await a.save();
      return a;
    } catch (err) {
      await fh?.close().catch(() => undefined);
      releaseClaim(this.#claims, target);
      throw toSocketkitError(err, part);
    }
  }

  /** A file received in ranges is over for this session (placed, failed, or its connections gone): its name is free again. */
  async #dropAssembly(a: Assembly): Promise<void> {
    if (this.#assemblies.byTarget.get(a.target) !== a) return;
    this.#assemblies.byTarget.delete(a.target);
    if (!a.sealed) {
      await a.save();
      await a.fh.close().catch(() => undefined);
      // Nothing held: neither a partial file nor its record is left.
      if (a.held.length === 0) {
        await unlink(a.part).catch(() => undefined);
        await a.forget();
      }
    }
    releaseClaim(this.#claims, a.target);
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
      // A record of ranges left by an earlier parallel attempt is now out of date.
      await removeRanges(target);
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
      if (incoming.assembly !== undefined) {
        await this.#keepRange(cur, incoming.assembly);
        this.#failEntry(incoming.offer.path, code, `sender: ${message}`, undefined, incoming.assembly.emit);
        return;
      }
      await cur.fh?.close().catch(() => undefined);
      if (cur.offset + cur.received === 0) await unlink(incoming.part).catch(() => undefined);
    } else if (this.#accepted[0]?.id === id) {
      incoming = this.#accepted.shift()!;
      if (incoming.assembly !== undefined) {
        this.#failEntry(incoming.offer.path, code, `sender: ${message}`);
        return;
      }
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

  #failEntry(path: string, code: ErrorCode, message: string, hint?: ErrorHint, emit: (e: TransferEvent) => void = this.#emit): void {
    this.#failures.push({ path, code, message, ...(hint ? { hint } : {}) });
    emit({ event: 'file-failed', path, code, message, ...(hint ? { hint } : {}) });
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
    for (const waiting of this.#accepted.splice(0)) if (waiting.assembly === undefined) this.#release(waiting.target);
    const cur = this.#current;
    this.#current = undefined;
    if (cur?.incoming.assembly !== undefined) {
      await cur.sink?.flush().catch(() => undefined);
      await this.#keepRange(cur, cur.incoming.assembly);
    } else if (cur !== undefined) {
      await cur.sink?.flush().catch(() => undefined);
      await cur.fh?.close().catch(() => undefined);
      // An empty partial file holds nothing to resume from.
      if (cur.fh !== undefined) await removeIfEmpty(cur.incoming.part);
      this.#release(cur.incoming.target);
    }
    await Promise.allSettled([...this.#finalizing]);
    for (const target of this.#myClaims) releaseClaim(this.#claims, target);
    // Files in ranges: the last of the session's connections to go closes each (its record stays for a resume).
    for (const a of this.#using) {
      a.users.delete(this);
      if (a.users.size === 0) await this.#dropAssembly(a);
    }
    this.#using.clear();
  }

  /** A range cut short (the connection went, the sender aborted): the bytes written stay recorded for a resume, checked again then. */
  async #keepRange(cur: Current, assembly: Assembly): Promise<void> {
    const got = cur.offset + cur.received;
    if (cur.failed === undefined && got > 0) await assembly.hold(cur.base, cur.base + got, false);
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

/**
 * Where an offered file goes: under the root (its path checked and resolved), or, in single-file
 * mode, the output the user chose (the path still checked, as it is shown).
 */
async function targetOf(root: string, offer: OfferMessage, options: ReceiverOptions): Promise<string> {
  if (options.out === undefined) return resolveUnder(root, offer.path, true);
  const why = checkWirePath(offer.path);
  if (why !== undefined) throw unsafePath(offer.path, why);
  return options.out;
}

/** Checks an offered file and works out where it goes and how much of it is already here. */
async function prepareFile(root: string, offer: OfferMessage, options: ReceiverOptions, claims: Set<string>, link: Link, hash: HashName): Promise<Incoming> {
  const target = await targetOf(root, offer, options);
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
  // Left by parallel streams: the partial file is at its full size, and holds what its record says.
  const ranges = partSize !== undefined ? await readRanges(target, offer.size) : undefined;
  if (ranges !== undefined && partSize !== undefined) partSize = Math.min(partSize, heldFrom(ranges, 0));
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

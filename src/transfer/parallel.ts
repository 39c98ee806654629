/**
 * Parallel streams (`-P N`): N connections share one transfer.
 *
 * Every hello of this build says `"ranges": true`. The client (whichever role it plays) announces
 * `"parallel": {"session", "streams", "rangeSize"}` in its hello on every one of its connections,
 * all with the same random session id; it opens the second and later connections only once the
 * first has heard a hello with `"ranges": true`, so a version-1 peer, or a version-2 one without
 * ranges, gets one ordinary connection. The sender, client or server, keeps one
 * {@link SendSession} per session id: a queue of pieces that every connection of the session
 * takes from as it goes. A piece is a folder, a whole file (no larger than a range), or a range
 * `[start, end)` of a larger file. A range is offered as a file with `"range": [start, end]`; its
 * data, BEGIN offset and END digest are those of the range's bytes alone, and its digest is
 * always XXH3-128 (see the README for why). The receiver writes every range of a file into the
 * one partial file at its offset (an {@link Assembly}), recording which bytes it holds in a
 * small side file (`.NAME.sk-ranges`) so that each range resumes on its own. Once every range
 * of a file is verified, the sender sends SEAL with the digest of the whole file in the agreed
 * hash (what `sha256sum` prints for SHA-256), and the receiver compares it with its own before
 * the file is put in place.
 *
 * The whole-file digest on both ends is an {@link OrderedDigest}: bytes that arrive (or are read)
 * exactly at its frontier are hashed as they pass; the rest is read back, in order, from the
 * file (the page cache) as each range completes.
 */
import { constants as fsc } from 'node:fs';
import { open, readFile, rename, unlink, writeFile, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { SocketkitError, toSocketkitError } from '../core/errors.js';
import { DEFAULT_CHUNK_SIZE, DEFAULT_RANGE_SIZE } from './constants.js';
import { createDigest, type FileDigest, type HashName } from './digest.js';
import type { TransferEntry } from './entries.js';
import type { TransferEvent } from './events.js';
import { BufferPool, readChunks } from './file-io.js';
import { protocolError, type ParallelInfo } from './protocol.js';

/** The hash every range is verified with: fast, so that the whole-file digest is the only extra pass. */
export const RANGE_HASH: HashName = 'xxh128';

// ---- the whole-file digest ------------------------------------------------------------------

/** Reads `[start, end)` of a file in order, for {@link OrderedDigest}. */
export type ReadBack = (start: number, end: number) => AsyncIterable<Uint8Array>;

/**
 * The digest of a whole file whose bytes pass in any order: in order at the frontier, else read
 * back from the file once the bytes are known to be there.
 */
export class OrderedDigest {
  readonly size: number;
  readonly #hash: FileDigest;
  readonly #read: ReadBack;
  #frontier = 0;
  /** Extents known complete beyond the frontier, sorted, not overlapping. */
  #done: Array<[number, number]> = [];
  #advancing: Promise<void> = Promise.resolve();
  #error: unknown;
  /** Bytes hashed as they passed, and read back: what the catch-up cost. */
  inline = 0;
  readBack = 0;

  constructor(hash: FileDigest, size: number, read: ReadBack) {
    this.#hash = hash;
    this.size = size;
    this.#read = read;
  }

  static async create(name: HashName, size: number, read: ReadBack): Promise<OrderedDigest> {
    return new OrderedDigest(await createDigest(name), size, read);
  }

  /** Bytes at `position` passing by: hashed now if they are the next ones. */
  feed(position: number, bytes: Uint8Array): void {
    if (position !== this.#frontier || bytes.byteLength === 0) return;
    this.#hash.update(bytes);
    this.#frontier += bytes.byteLength;
    this.inline += bytes.byteLength;
  }

  /** `[start, end)` is complete in the file: the frontier moves through it (reading back what it did not see). */
  complete(start: number, end: number): void {
    if (end <= start) return;
    insertExtent(this.#done, start, end);
    this.#advancing = this.#advancing.then(() => this.#advance()).catch((err: unknown) => {
      this.#error ??= err;
    });
  }

  async #advance(): Promise<void> {
    while (this.#done.length > 0 && this.#done[0]![0] <= this.#frontier) {
      const [, end] = this.#done.shift()!;
      if (end <= this.#frontier) continue;
      for await (const chunk of this.#read(this.#frontier, end)) {
        this.#hash.update(chunk);
        this.#frontier += chunk.byteLength;
        this.readBack += chunk.byteLength;
      }
    }
  }

  /** The hex digest of the whole file, once every byte has been complete. */
  async finish(): Promise<string> {
    await this.#advancing;
    if (this.#error !== undefined) throw toSocketkitError(this.#error);
    if (this.#frontier !== this.size) throw new SocketkitError('ERR_INTERNAL', `whole-file digest stopped at byte ${this.#frontier} of ${this.size}`);
    return this.#hash.digest();
  }
}

/** Adds `[start, end)` to sorted, disjoint extents, merging. */
export function insertExtent(extents: Array<[number, number]>, start: number, end: number): void {
  if (end <= start) return;
  const out: Array<[number, number]> = [];
  let s = start;
  let e = end;
  let placed = false;
  for (const [a, b] of extents) {
    if (b < s) out.push([a, b]);
    else if (a > e) {
      if (!placed) out.push([s, e]);
      placed = true;
      out.push([a, b]);
    } else {
      s = Math.min(s, a);
      e = Math.max(e, b);
    }
  }
  if (!placed) out.push([s, e]);
  extents.splice(0, extents.length, ...out);
}

/** How many bytes from `start` the extents hold without a gap. */
export function heldFrom(extents: ReadonlyArray<readonly [number, number]>, start: number): number {
  for (const [a, b] of extents) if (a <= start && start < b) return b - start;
  return 0;
}

/** A reader of `[start, end)` of an open file, 1 MiB at a time. */
export function readBackFrom(fh: FileHandle, path: string): ReadBack {
  return async function* (start, end) {
    const pool = new BufferPool(DEFAULT_CHUNK_SIZE, 2);
    for await (const chunk of readChunks(fh, start, end, pool, path)) {
      try {
        yield chunk;
      } finally {
        pool.release(chunk);
      }
    }
  };
}

// ---- the sending side -----------------------------------------------------------------------

/** One piece of a transfer: a folder, a whole file, or a range of a file. */
export interface Piece {
  readonly entry: TransferEntry;
  /** `[start, end)` of the file, for a range. */
  readonly range?: readonly [number, number];
}

/** A file sent in ranges: how many are verified, and its whole-file digest. */
export interface RangedFile {
  readonly entry: TransferEntry;
  readonly ranges: number;
  verified: number;
  failed: boolean;
  /** Bytes of its ranges sent so far (for progress). */
  sent: number;
  started: number;
  /**
   * The events of the connection that carries its first range (the file's owner): its start,
   * progress and outcome are told there, as one file's, and its SEAL goes there.
   */
  emit: ((e: TransferEvent) => void) | undefined;
  /** Set by the owner once its range is verified: every range verified sends the SEAL; a failed one gives it up. */
  sealer: { readonly ready: () => void; readonly abandon: () => void } | undefined;
  digest: Promise<OrderedDigest> | undefined;
  fh: FileHandle | undefined;
}

/**
 * The shared queue of one parallel transfer's sender: every connection of the session takes its
 * next piece here.
 */
export class SendSession {
  readonly id: string;
  /** Bytes per range. */
  readonly rangeSize: number;
  /** Connections of the session running now. */
  connections = 0;
  #pieces: Piece[] | undefined;
  #next = 0;
  readonly #files = new Map<TransferEntry, RangedFile>();

  constructor(id: string, rangeSize: number) {
    this.id = id;
    this.rangeSize = rangeSize;
  }

  /** Lists the pieces once, from the first connection's entries; `ranges` false (a peer before version 3) keeps files whole. */
  plan(entries: readonly TransferEntry[], ranges: boolean): void {
    if (this.#pieces !== undefined) return;
    const pieces: Piece[] = [];
    for (const entry of entries) {
      if (entry.kind !== 'file' || !ranges || entry.size <= this.rangeSize) {
        pieces.push({ entry });
        continue;
      }
      const count = Math.ceil(entry.size / this.rangeSize);
      for (let i = 0; i < count; i++) pieces.push({ entry, range: [i * this.rangeSize, Math.min(entry.size, (i + 1) * this.rangeSize)] });
      this.#files.set(entry, { entry, ranges: count, verified: 0, failed: false, sent: 0, started: 0, emit: undefined, sealer: undefined, digest: undefined, fh: undefined });
    }
    this.#pieces = pieces;
  }

  /** The next piece nobody has taken, if any. */
  take(): Piece | undefined {
    const p = this.#pieces?.[this.#next];
    if (p !== undefined) this.#next++;
    return p;
  }

  /** The ranged file a range piece belongs to. */
  file(entry: TransferEntry): RangedFile {
    const f = this.#files.get(entry);
    if (f === undefined) throw new SocketkitError('ERR_INTERNAL', `no ranges planned for ${entry.path}`);
    return f;
  }

  /** The whole-file digest of a ranged file, made at its first range (reading back from its own handle). */
  digestOf(f: RangedFile, hash: HashName): Promise<OrderedDigest> {
    // One digest, however many of its ranges start at once.
    f.digest ??= (async () => {
      const fh = await open(f.entry.source, 'r');
      f.fh = fh;
      return OrderedDigest.create(hash, f.entry.size, readBackFrom(fh, f.entry.source));
    })();
    return f.digest;
  }

  /** Closes what the session holds open (the read-back handles). */
  async close(): Promise<void> {
    for (const f of this.#files.values()) {
      const fh = f.fh;
      f.fh = undefined;
      await fh?.close().catch(() => undefined);
    }
  }
}

/** A server's sessions, by id; a finished one is remembered so that a late connection of it gets nothing twice. */
export class SendSessions {
  readonly #live = new Map<string, SendSession>();
  readonly #ended = new Set<string>();

  /** The session a connection joins (a late one of a finished session gets an empty one). */
  join(info: ParallelInfo): SendSession {
    let s = this.#live.get(info.session);
    if (s === undefined) {
      s = new SendSession(info.session, info.rangeSize ?? DEFAULT_RANGE_SIZE);
      if (this.#ended.has(info.session)) s.plan([], false);
      this.#live.set(info.session, s);
    }
    s.connections++;
    return s;
  }

  /** A connection of the session is over. */
  leave(s: SendSession): void {
    if (--s.connections > 0) return;
    this.#live.delete(s.id);
    this.#ended.add(s.id);
    // Bounded: the oldest finished sessions are forgotten first.
    if (this.#ended.size > 4096) this.#ended.delete(this.#ended.values().next().value!);
    void s.close();
  }
}

// ---- the receiving side ---------------------------------------------------------------------

/** Where the ranges held of `NAME`'s partial file are recorded: `DIR/.NAME.sk-ranges`. */
export function rangesPath(target: string): string {
  return join(dirname(target), `.${basename(target)}.sk-ranges`);
}

/** Where a new record is written before it is renamed over the old one. */
function newRangesPath(target: string): string {
  return `${rangesPath(target)}.new`;
}

/** Removes the record of held ranges, and a new one that was not renamed into place yet. */
export async function removeRanges(target: string): Promise<void> {
  await Promise.all([unlink(rangesPath(target)), unlink(newRangesPath(target))].map((p) => p.catch(() => undefined)));
}

/** Reads the record of held ranges; anything unreadable or for another size holds nothing. */
export async function readRanges(target: string, size: number): Promise<Array<[number, number]> | undefined> {
  let text: string;
  try {
    const fh = await open(rangesPath(target), fsc.O_RDONLY | (fsc.O_NOFOLLOW ?? 0));
    try {
      text = await readFile(fh, 'utf8');
    } finally {
      await fh.close();
    }
  } catch {
    return undefined;
  }
  try {
    const v = JSON.parse(text) as { size?: unknown; held?: unknown };
    if (v.size !== size || !Array.isArray(v.held)) return [];
    const out: Array<[number, number]> = [];
    for (const x of v.held as unknown[]) {
      if (!Array.isArray(x) || x.length !== 2) continue;
      const [a, b] = x as unknown[];
      if (typeof a === 'number' && typeof b === 'number' && Number.isSafeInteger(a) && Number.isSafeInteger(b) && a >= 0 && b <= size) insertExtent(out, a, b);
    }
    return out;
  } catch {
    return [];
  }
}

/** One file being received in ranges, over any of the session's connections. */
export class Assembly {
  readonly target: string;
  readonly part: string;
  /** The path offered on the wire. */
  readonly path: string;
  readonly session: string;
  readonly size: number;
  readonly mode: number;
  readonly mtimeMs: number;
  readonly fh: FileHandle;
  readonly digest: OrderedDigest;
  /** Bytes the partial file holds (verified or from an interrupted range; checked again at resume). */
  readonly held: Array<[number, number]>;
  /** Bytes of ranges verified by this session. */
  readonly verified: Array<[number, number]> = [];
  /** Connections holding it. */
  readonly users = new Set<object>();
  /** Bytes received (for progress). */
  received = 0;
  reported = 0;
  /** The events of the connection that carries its first range: the file's start, progress and outcome are told there (and its SEAL arrives there). */
  emit: ((e: TransferEvent) => void) | undefined;
  readonly started = performance.now();
  sealed = false;
  #saving: Promise<void> = Promise.resolve();

  constructor(init: { target: string; part: string; session: string; size: number; mode: number; mtimeMs: number; fh: FileHandle; digest: OrderedDigest; held: Array<[number, number]>; path: string }) {
    this.target = init.target;
    this.path = init.path;
    this.part = init.part;
    this.session = init.session;
    this.size = init.size;
    this.mode = init.mode;
    this.mtimeMs = init.mtimeMs;
    this.fh = init.fh;
    this.digest = init.digest;
    this.held = init.held;
  }

  /** Whether every byte is verified. */
  get complete(): boolean {
    return heldFrom(this.verified, 0) === this.size;
  }

  /** Records `[start, end)` as held (and, if `verified`, as verified), and saves the record. */
  hold(start: number, end: number, verified: boolean): Promise<void> {
    insertExtent(this.held, start, end);
    if (verified) insertExtent(this.verified, start, end);
    return this.save();
  }

  /**
   * Writes the record of held ranges (in order: one write at a time), into a new file renamed
   * over the old one: a receiver killed in the middle leaves the old record or the new, never
   * a truncated one (which would hold nothing, and the resume would send every range again).
   */
  save(): Promise<void> {
    const text = JSON.stringify({ size: this.size, held: this.held });
    const fresh = newRangesPath(this.target);
    this.#saving = this.#saving
      .then(async () => {
        await writeFile(fresh, text, { mode: 0o600, flag: fsc.O_WRONLY | fsc.O_CREAT | fsc.O_TRUNC | (fsc.O_NOFOLLOW ?? 0) });
        await rename(fresh, rangesPath(this.target));
      })
      .catch(() => undefined);
    return this.#saving;
  }

  /** Removes the record (the file is placed, or nothing of it is kept). */
  async forget(): Promise<void> {
    await this.#saving;
    await removeRanges(this.target);
  }
}

/** The files being received in ranges, by final path: shared by every connection of a receiving server (or of one `get -P`). */
export class Assemblies {
  readonly byTarget = new Map<string, Assembly>();
  /** Assemblies being made, so that two connections asking at once share one. */
  readonly making = new Map<string, Promise<Assembly>>();
}

/** Checks a range against its offer. */
export function checkRange(path: string, size: number, range: readonly [number, number]): void {
  const [start, end] = range;
  if (!(start >= 0 && start < end && end <= size)) throw protocolError(`offer of ${path}: range [${start}, ${end}) is not inside its ${size} bytes`);
}

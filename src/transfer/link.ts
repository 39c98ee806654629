/**
 * One framed transfer connection: SKFT messages in and out over a socket, with bounded
 * buffering, backpressure, and a watchdog that turns a transfer that stops moving into an
 * `ERR_STALLED` error instead of a hang.
 *
 * Both roles use it; the sender and receiver modules hold the protocol logic. The link owns
 * where its bytes come from: the socket's `'data'` events, or (made with {@link Link.open}) one
 * read buffer of its own that every read lands in. File bytes leave it by one way fixed when it
 * is made: queued as DATA messages for `next()`, or, with a {@link DataSink}, handed to that
 * sink while the read that brought them is current.
 */
import { once, setMaxListeners } from 'node:events';
import type { Socket } from 'node:net';
import { SocketkitError, toSocketkitError } from '../core/errors.js';
import { FrameDecoder, writeFrame } from '../codec/index.js';
import { waitDrain } from '../net/write.js';
import { DEFAULT_RECEIVE_QUEUE_BYTES, DEFAULT_RECEIVE_QUEUE_MESSAGES, DEFAULT_STALL_TIMEOUT_MS, MAX_CONTROL_BYTES, QUEUED_MESSAGE_OVERHEAD, TRANSFER_MAGIC } from './constants.js';
import {
  type ControlMessage,
  type Hello,
  type HelloInfo,
  type Message,
  type TransferRole,
  MessageType,
  dataPrefix,
  encodeControl,
  encodeHello,
  parseHello,
  parseMessage,
  protocolError,
} from './protocol.js';

/** At most this long (ms) without a frame from us while we are busy with local work: then a NOOP. */
const KEEPALIVE_MS = 2000;

/** A DATA frame's prefix: 4 bytes of length, 1 of type. */
const DATA_PREFIX_SIZE = 5;

/**
 * The codec path takes received bytes this many at a time, and checks the queue between two
 * slices: a read full of tiny frames then overshoots the queue's limits by at most one slice.
 */
const DECODE_SLICE = 16 * 1024;

/** How long a failed link waits for the peer to take its ERROR and close, ms. */
const ERROR_GRACE_MS = 2000;

/** Bytes kept of what arrives before the peer's hello: a frame header and the magic. */
const HEAD_BYTES = 8;

/** Bytes of a link's own read buffer (see {@link Link.open}). */
export const LINK_READ_BUFFER_SIZE = 1024 * 1024;

const MAGIC = Buffer.from(TRANSFER_MAGIC, 'latin1');

/**
 * What the first bytes of a stream say about the peer: `'skft'` when they are a whole SKFT hello
 * frame, `'raw'` as soon as they cannot start one, `'more'` while they still could.
 */
export function sniffSkftHello(head: Uint8Array): 'skft' | 'raw' | 'more' {
  const have = head.byteLength;
  // A frame: 4 bytes of length (a hello's is 6 to MAX_CONTROL_BYTES), then the magic, a version
  // byte, a role byte and JSON. A length not fully here yet is bounded by the bytes that are.
  let low = 0;
  let high = 0;
  for (let i = 0; i < 4; i++) {
    low = low * 256 + (i < have ? head[i]! : 0);
    high = high * 256 + (i < have ? head[i]! : 255);
  }
  if (low > MAX_CONTROL_BYTES || high < MAGIC.length + 2) return 'raw';
  const magicSeen = Math.min(MAGIC.length, Math.max(0, have - 4));
  for (let i = 0; i < magicSeen; i++) if (head[4 + i] !== MAGIC[i]) return 'raw';
  if (have < 4 + low) return 'more';
  try {
    parseHello(head.subarray(4, 4 + low));
    return 'skft';
  } catch {
    return 'raw';
  }
}

/**
 * Takes file bytes at once, while the read that brought them is current. It must be done with
 * `bytes` when it returns (hashed, written synchronously): they may be a view of a read buffer
 * that the next read overwrites. It returns a promise when the consumer is behind; the link then
 * stops reading, gives it the rest of the current read all the same (it must take that much past
 * its limit: queueing it would copy every byte once more), and calls it again only once the
 * promise has settled and the consumer is back in `next()`. It throws (or the promise rejects)
 * to fail the link.
 *
 * The link calls it only while its consumer waits in `next()` with nothing queued, so messages
 * and file bytes reach the consumer in the order they were sent.
 */
export type DataSink = (bytes: Uint8Array) => Promise<void> | undefined;

/** Node's `onread` socket option: every read lands in `buffer`, which is reused for the next. */
export interface OnRead {
  readonly buffer: Buffer;
  readonly callback: (n: number, buf: Buffer) => boolean;
}

/**
 * The read buffer of a link made with {@link Link.open}: what `onread` delivers goes to the link,
 * or, for reads before the link is attached (normally none), into copies kept for it.
 */
class OwnReads {
  readonly onread: OnRead;
  #feed: ((chunk: Buffer) => void) | undefined;
  readonly #early: Buffer[] = [];

  constructor(size: number) {
    this.onread = {
      buffer: Buffer.allocUnsafe(size),
      callback: (n, buf) => {
        const chunk = buf.subarray(0, n);
        if (this.#feed) this.#feed(chunk);
        else this.#early.push(Buffer.from(chunk));
        // The link pauses the socket itself when its queue is full.
        return true;
      },
    };
  }

  attach(feed: (chunk: Buffer) => void): void {
    this.#feed = feed;
    for (const chunk of this.#early.splice(0)) feed(chunk);
  }
}

/** Options of a {@link Link}. */
export interface LinkOptions {
  /** Who the peer is, for messages (e.g. `127.0.0.1:50312`). */
  readonly peer: string;
  /**
   * No progress for this long (ms) fails the link with `ERR_STALLED`; 0 disables the watchdog.
   * Default 30 s.
   */
  readonly stallTimeoutMs?: number;
  /** The largest frame accepted from the peer (default 16 MiB, the codec's default). */
  readonly maxFrameSize?: number;
  /**
   * Received bytes queued for the consumer (each message counted with a fixed overhead for its
   * object) before the link stops reading (default 8 MiB).
   */
  readonly queueBytes?: number;
  /** Messages queued for the consumer before the link stops reading (default 1024). */
  readonly queueMessages?: number;
  /**
   * Where file bytes go while the consumer waits for messages (see {@link DataSink}); without
   * one, every DATA is a message from `next()`. Fixed for the link's life.
   */
  readonly data?: DataSink;
}

/** Options of {@link Link.open}. */
export interface LinkOpenOptions extends LinkOptions {
  /** Bytes of the link's read buffer (default {@link LINK_READ_BUFFER_SIZE}). */
  readonly readBufferSize?: number;
}

/**
 * A framed SKFT connection.
 *
 * Reading: every frame received is parsed and queued; `next()` hands messages out in order. Past
 * `queueBytes` queued, the socket is paused, so a fast peer is slowed by TCP rather than
 * buffered. Writing: `send()` for control messages, `sendData()` for file bytes (waits for
 * `'drain'` or failure).
 *
 * Progress: bytes received, file bytes accepted by the kernel and local work reported with
 * `markProgress()` keep the watchdog quiet. While local work goes on and nothing else is being
 * written, a NOOP is sent now and then so the peer's watchdog knows we are alive and busy.
 */
export class Link {
  readonly socket: Socket;
  readonly peer: string;
  readonly #decoder: FrameDecoder;
  readonly #queueLimit: number;
  readonly #queueCountLimit: number;
  readonly #stallMs: number;
  /** Received bytes not parsed yet because the queue was full (a copy; at most one read). */
  #held: Buffer | undefined;
  /** The most the queue has held, in messages and in counted bytes (see `queueStats`). */
  #peakMessages = 0;
  #peakBytes = 0;
  readonly #frames: Uint8Array[] = [];
  /** Messages not yet handed out, each with the frame bytes it holds (what the queue limit counts). */
  #queue: Array<{ readonly msg: Message; readonly size: number }> = [];
  #queueHead = 0;
  #queuedBytes = 0;
  #waiter: { resolve: (m: Message | null) => void; reject: (err: Error) => void } | undefined;
  #hello: Hello | undefined;
  #helloWaiter: { resolve: (h: Hello) => void; reject: (err: Error) => void } | undefined;
  #helloWait: Promise<Hello> | undefined;
  /** Payload bytes of the DATA frame being streamed on the fast path (see `#onData`). */
  #dataLeft = 0;
  #ended = false;
  #failure: SocketkitError | undefined;
  /** Aborted, with the failure as its reason, when the link fails: what `guard()` waits on. */
  readonly #failed = new AbortController();
  #lastProgress = performance.now();
  /** While set, NOOPs from the peer are not progress (see `setWaitingForPeer`). */
  #waitingForPeer = false;
  #lastWrite = performance.now();
  #localSinceTick = false;
  #busy = 0;
  /** Reads come from a reused buffer: what is kept must be copied. */
  readonly #reused: boolean;
  /**
   * A consumer that takes file bytes synchronously (hash and a synchronous write): DATA that
   * arrives while the consumer waits in `next()` with nothing queued goes straight to it,
   * without a queue entry or a promise, and (with the link's own read buffer) without a copy.
   */
  readonly #sink: DataSink | undefined;
  /**
   * While a sink call's promise has not settled: the read during which the sink fell behind. The
   * rest of that read still goes to the sink (which takes it into its own buffers anyway) instead
   * of into the queue, which would copy it once more. So a sink holds at most one read beyond its
   * limit.
   */
  #sinkBehindIn: Buffer | undefined;
  /** Which sink promise is the latest: only its settling resumes the reads. */
  #sinkCall = 0;
  readonly #timer: NodeJS.Timeout;

  /**
   * Opens a connection whose every read lands in one buffer the link owns and reuses (no
   * allocation per read, and 1 MiB reads instead of 64 KiB). `open` makes the socket with the
   * `onread` option it is given (`net.connect({ ..., onread })`); only plain TCP and Unix
   * sockets take it.
   */
  static async open(open: (onread: OnRead) => Promise<Socket>, options: LinkOpenOptions): Promise<Link> {
    const reads = new OwnReads(options.readBufferSize ?? LINK_READ_BUFFER_SIZE);
    return new Link(await open(reads.onread), options, reads);
  }

  /**
   * A link over `socket`, reading its `'data'` events.
   *
   * @param reads - Internal: the link's own read buffer, from {@link Link.open}.
   */
  constructor(socket: Socket, options: LinkOptions, reads?: OwnReads) {
    this.socket = socket;
    this.peer = options.peer;
    this.#decoder = new FrameDecoder(options.maxFrameSize === undefined ? {} : { maxFrameSize: options.maxFrameSize });
    this.#queueLimit = options.queueBytes ?? DEFAULT_RECEIVE_QUEUE_BYTES;
    this.#queueCountLimit = options.queueMessages ?? DEFAULT_RECEIVE_QUEUE_MESSAGES;
    this.#stallMs = options.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS;
    // Every guarded wait adds one listener and removes it when it settles; a few run at once.
    setMaxListeners(64, this.#failed.signal);
    this.#sink = options.data;
    this.#reused = reads !== undefined;
    if (reads) reads.attach((chunk) => this.#onData(chunk));
    else socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('end', () => this.#onEnd());
    socket.on('error', (err) => this.#setFailure(toSocketkitError(err, this.peer)));
    socket.on('close', () => this.#onClose());
    // The timer also sends keepalives, which the peer's watchdog needs even when ours is off.
    this.#timer = setInterval(() => this.#tick(), this.#stallMs > 0 ? Math.max(50, Math.min(KEEPALIVE_MS / 2, this.#stallMs / 4)) : KEEPALIVE_MS / 2);
    this.#timer.unref();
  }

  /** The error the link failed with, if it did. */
  get failure(): SocketkitError | undefined {
    return this.#failure;
  }

  /** The stall timeout, ms (0: none). */
  get stallTimeoutMs(): number {
    return this.#stallMs;
  }

  /**
   * What the receive queue holds now and the most it has held: messages, and bytes counted with
   * the per-message overhead. Whatever a peer sends, these stay within the limits plus what one
   * slice of a read can add.
   */
  get queueStats(): { readonly messages: number; readonly bytes: number; readonly peakMessages: number; readonly peakBytes: number; readonly held: number } {
    return {
      messages: this.#queue.length - this.#queueHead,
      bytes: this.#queuedBytes,
      peakMessages: this.#peakMessages,
      peakBytes: this.#peakBytes,
      held: this.#held?.byteLength ?? 0,
    };
  }

  /**
   * While `waiting` (a receiver holds a file that waits for its data), keepalives from the peer
   * do not count as progress: only its real messages, file bytes and our own local work do. A
   * peer that offers a file and then sends only NOOPs is failed with `ERR_STALLED` after the
   * stall timeout, and the name it held is free again.
   */
  setWaitingForPeer(waiting: boolean): void {
    this.#waitingForPeer = waiting;
  }

  /** Sends our hello: the first frame, always. */
  sendHello(role: TransferRole, info: HelloInfo): void {
    this.#write(encodeHello(role, info));
  }

  /** Resolves with the peer's hello; rejects if the peer speaks something else or goes away. */
  readHello(): Promise<Hello> {
    if (this.#hello) return Promise.resolve(this.#hello);
    if (this.#failure) return Promise.reject(this.#failure);
    if (this.#ended) return Promise.reject(new SocketkitError('ERR_CONN_CLOSED', `${this.peer} closed the connection before saying hello`));
    // One wait, however many ask (a parallel client looks at the hello beside the role that reads it).
    this.#helloWait ??= new Promise((resolve, reject) => {
      this.#helloWaiter = { resolve, reject };
    });
    return this.#helloWait;
  }

  /**
   * The next message from the peer (NOOPs are absorbed), or null once the peer has ended its
   * side cleanly.
   *
   * @throws SocketkitError the link's failure: a protocol error, a connection error, `ERR_STALLED`.
   */
  next(): Promise<Message | null> {
    if (this.#queueHead < this.#queue.length) return Promise.resolve(this.#shift());
    if (this.#failure) return Promise.reject(this.#failure);
    if (this.#ended) return Promise.resolve(null);
    return new Promise((resolve, reject) => {
      this.#waiter = { resolve, reject };
      // With a sink, reads resume only now, with the queue empty and the consumer waiting: what
      // they bring then goes to the sink, not into the queue (a copy of every byte, in a loop
      // that lasts while the sink is the slower side).
      if (this.#sink !== undefined && !this.#failure && this.#sinkBehindIn === undefined && (this.#held !== undefined || this.socket.isPaused())) {
        this.#release();
        this.#wake();
      }
    });
  }

  /**
   * The next message if one is already queued, else undefined (then await `next()`). Lets a
   * consumer drain a burst of DATA without a promise per message.
   */
  poll(): Message | undefined {
    return this.#queueHead < this.#queue.length ? this.#shift() : undefined;
  }

  /** Sends a control message. Control messages are small and few; they need no backpressure. */
  send(msg: ControlMessage): void {
    this.#write(encodeControl(msg));
  }

  /**
   * Sends file bytes as one DATA message: prefix and bytes leave in one `writev`, the bytes
   * uncopied. `onWritten` runs once the kernel has taken them (or the connection failed); only
   * then may the buffer be reused.
   *
   * It does not wait for `'drain'`: the caller bounds what is in flight (the sender's buffer
   * pool does: a chunk comes back only through `onWritten`), and not waiting lets it hash the
   * next chunk while the kernel takes this one.
   *
   * @throws SocketkitError if the link has failed.
   */
  sendData(bytes: Uint8Array, onWritten: () => void): void {
    if (this.#failure) throw this.#failure;
    const s = this.socket;
    s.cork();
    s.write(dataPrefix(bytes.byteLength));
    s.write(bytes, () => {
      this.#lastProgress = performance.now();
      onWritten();
    });
    s.uncork();
    this.#lastWrite = performance.now();
  }

  /** Resolves once the socket's write buffer has room (control messages piling up on a peer that does not read). */
  async writable(): Promise<void> {
    if (this.socket.writableNeedDrain) await this.guard(waitDrain(this.socket));
  }

  /** Reports local progress (bytes hashed or written to disk): keeps both watchdogs quiet. */
  markProgress(): void {
    this.#lastProgress = performance.now();
    this.#localSinceTick = true;
  }

  /**
   * Runs a local operation of unknown length (fsync) during which neither watchdog should fire:
   * ours is suspended and the peer gets keepalives.
   */
  async busy<T>(work: Promise<T>): Promise<T> {
    this.#busy++;
    try {
      return await this.guard(work);
    } finally {
      this.#busy--;
      this.#lastProgress = performance.now();
    }
  }

  /**
   * `work`, or the link's failure if that comes first, so that no local wait outlives a dead
   * link. The wait listens on an AbortSignal and stops listening when `work` settles: nothing is
   * left attached to anything long-lived (a `Promise.race` against one long-lived promise would
   * keep a reaction per call until the link dies).
   */
  guard<T>(work: Promise<T>): Promise<T> {
    const signal = this.#failed.signal;
    if (signal.aborted) {
      // `work` may still reject later; it is not awaited by anyone then.
      work.catch(() => undefined);
      return Promise.reject(signal.reason as Error);
    }
    return new Promise<T>((resolve, reject) => {
      const onFailed = (): void => reject(signal.reason as Error);
      signal.addEventListener('abort', onFailed, { once: true });
      work.then(
        (value) => {
          signal.removeEventListener('abort', onFailed);
          resolve(value);
        },
        (err: unknown) => {
          signal.removeEventListener('abort', onFailed);
          // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- passes the work's own rejection on, unchanged
          reject(err);
        },
      );
    });
  }

  /**
   * Fails the link: tells the peer (an ERROR message, when the socket can still write), closes
   * the connection, and makes every pending and later call reject with `err`. Only the first
   * failure counts.
   */
  fail(err: unknown, tellPeer = true): void {
    const e = toSocketkitError(err, this.peer);
    if (this.#failure) return;
    this.#setFailure(e);
    this.#stopTimer();
    const s = this.socket;
    if (tellPeer && !s.destroyed && s.writable) {
      writeFrame(s, encodeControl({ type: 'error', code: e.code, message: e.message }));
      s.end();
      // The ERROR must reach the peer before the connection goes: closing with unread bytes
      // would send a reset, and a reset can discard the ERROR at the peer. So keep reading (and
      // dropping) until the peer closes, bounded; `closed()` waits for that.
      this.#held = undefined;
      s.resume();
      this.#closing = true;
      setTimeout(() => s.destroy(), ERROR_GRACE_MS).unref();
    } else {
      s.destroy();
    }
  }

  /**
   * Closes the connection and resolves once the socket is closed: at once, or after a failure
   * that was told to the peer, when the peer has closed its side (at most about 2 s). Never
   * rejects.
   */
  async closed(): Promise<void> {
    const s = this.socket;
    if (!this.#closing) this.destroy();
    if (s.closed) return;
    await once(s, 'close').catch(() => undefined);
  }

  /**
   * Ends our side after our last message and waits (up to `graceMs`) for the peer to close its
   * own; the socket is destroyed afterwards whatever happened. Never throws: by the time it is
   * called the transfer's outcome is known.
   */
  async finish(graceMs = 2000): Promise<void> {
    this.#stopTimer();
    const s = this.socket;
    if (!s.destroyed) {
      s.end();
      // Whatever the peer still sends (nothing, by the protocol) is drained, not queued.
      s.resume();
      // An abort of the timeout is the end of the grace period, not an error.
      await once(s, 'close', { signal: AbortSignal.timeout(graceMs) }).catch(() => undefined);
    }
    s.destroy();
  }

  /**
   * Destroys the connection at once (no ERROR message); after a failure that told the peer,
   * the connection instead closes once the ERROR is out (see `fail`).
   */
  destroy(): void {
    this.#stopTimer();
    if (!this.#closing) this.socket.destroy();
  }

  /** A failure was told to the peer; the socket goes when the peer closes, or after a grace period. */
  #closing = false;

  /** The first bytes received before the peer's hello (a copy, at most {@link HEAD_BYTES}). */
  #head: Buffer = Buffer.alloc(0);

  /** True once the peer has sent at least one byte. */
  get heardFrom(): boolean {
    return this.#head.byteLength > 0 || this.#hello !== undefined;
  }

  /**
   * The peer went away before its hello was whole: mid-hello, or after bytes that cannot start
   * one (a raw stream shorter than a frame header), or without a byte.
   */
  #goneBeforeHello(how: string): SocketkitError {
    const head = this.#head;
    if (head.byteLength > 0 && sniffSkftHello(head) === 'raw') {
      return protocolError(`${this.peer} does not speak the socketkit transfer protocol (it sent bytes that are no hello, and ${how}: is it a raw stream?)`, undefined, 'peer-is-raw');
    }
    return new SocketkitError('ERR_CONN_CLOSED', `${this.peer} ${how} before saying hello${head.byteLength === 0 ? ', without sending a byte' : ''}`);
  }

  // ---- internals ----------------------------------------------------------------------------

  #write(payload: Uint8Array): void {
    const s = this.socket;
    if (s.destroyed || !s.writable) return;
    writeFrame(s, payload);
    this.#lastWrite = performance.now();
  }

  /**
   * Splits received bytes into messages.
   *
   * Control frames go through the codec's FrameDecoder. DATA frames take a fast path: the
   * decoder returns each frame as one contiguous buffer, which for a 1 MiB DATA frame spread over
   * sixteen 64 KiB socket reads means allocating and copying every byte received (measured at
   * about a third of a receiver's time per GiB). File bytes need no assembly, so when the decoder
   * is at a frame boundary (nothing held, and no header read whose payload is still to come) and
   * the next frame is DATA, its 5-byte prefix is read here and its payload handed on as views of
   * the socket's chunks, however they are cut.
   * Everything else, including a DATA prefix split across chunks, takes the codec's path.
   */
  #onData(chunk: Buffer): void {
    if (this.#failure) return;
    if (this.#hello === undefined && this.#head.byteLength < HEAD_BYTES) this.#head = Buffer.concat([this.#head, chunk.subarray(0, HEAD_BYTES - this.#head.byteLength)]);
    if (!this.#waitingForPeer) this.#lastProgress = performance.now();
    const at = this.#take(chunk, 0);
    if (at < chunk.byteLength && !this.#failure) {
      // The queue is full: stop reading, and keep the rest of this read (a copy: the buffer may
      // be reused) until the consumer has taken half the queue.
      this.#held = Buffer.from(chunk.subarray(at));
    }
    if (this.#held !== undefined || this.#full()) this.socket.pause();
    this.#wake();
  }

  /** The queue is at one of its limits: parse nothing more until the consumer catches up. */
  #full(): boolean {
    return this.#queuedBytes >= this.#queueLimit || this.#queue.length - this.#queueHead >= this.#queueCountLimit;
  }

  /**
   * Parses `chunk` from `at` until it is consumed or the queue is full; returns where it
   * stopped.
   */
  #take(chunk: Buffer, at: number): number {
    const size = chunk.byteLength;
    while (at < size && this.#failure === undefined) {
      if (this.#dataLeft > 0) {
        // Inside a DATA payload on the fast path: this chunk's share of it, uncopied.
        const n = Math.min(this.#dataLeft, size - at);
        this.#dataLeft -= n;
        const bytes = chunk.subarray(at, at + n);
        at += n;
        this.#lastProgress = performance.now();
        // The consumer waits with nothing queued: hand the bytes over now (also the rest of the
        // read during which the sink fell behind).
        if (this.#sink !== undefined && (this.#sinkBehindIn === undefined || this.#sinkBehindIn === chunk) && this.#waiter !== undefined && this.#queueHead === this.#queue.length) this.#handOver(this.#sink, bytes, chunk);
        else this.#enqueue({ type: 'data', bytes: this.#keep(bytes) }, n);
        if (this.#full()) break;
        continue;
      }
      if (this.#full()) break;
      if (
        this.#hello !== undefined &&
        this.#decoder.atFrameBoundary &&
        size - at >= DATA_PREFIX_SIZE &&
        chunk[at + 4] === MessageType.DATA &&
        // A zero length would mean the type byte belongs to the next frame: the codec's case.
        chunk.readUInt32BE(at) > 0
      ) {
        // A DATA frame starts here: check its length as the codec would, then stream its payload.
        const length = chunk.readUInt32BE(at);
        if (length > this.#decoder.maxFrameSize) {
          this.fail(new SocketkitError('ERR_FRAME_TOO_LARGE', `peer announced a frame of ${length} bytes, more than the maximum frame size of ${this.#decoder.maxFrameSize} bytes`));
          return size;
        }
        this.#dataLeft = length - 1;
        at += DATA_PREFIX_SIZE;
        continue;
      }
      // The codec's path, a slice at a time so that the queue is checked between slices. The
      // decoder keeps what it has not parsed yet, so a reused read buffer is copied first.
      const end = Math.min(size, at + DECODE_SLICE);
      const rest = at === 0 && end === size ? chunk : chunk.subarray(at, end);
      this.#decode(this.#reused ? Buffer.from(rest) : rest);
      at = end;
    }
    return at;
  }

  /**
   * What a queued DATA payload keeps: a copy when it is a view of a reused read buffer, or a
   * small view of a much larger chunk (which it would otherwise keep alive entirely).
   */
  #keep(bytes: Uint8Array): Uint8Array {
    if (this.#reused || bytes.buffer.byteLength > 2 * bytes.byteLength + QUEUED_MESSAGE_OVERHEAD) return Buffer.from(bytes);
    return bytes;
  }

  /** The consumer has made room: parse what was held back, then read again. */
  #release(): void {
    const held = this.#held;
    if (held !== undefined) {
      this.#held = undefined;
      const at = this.#take(held, 0);
      if (at < held.byteLength && !this.#failure) {
        this.#held = held.subarray(at);
        return;
      }
    }
    if (this.#endPending) {
      this.#endPending = false;
      this.#onEnd();
    }
    if (!this.#failure && this.#sinkBehindIn === undefined) this.socket.resume();
  }

  /** The codec's path: every frame `bytes` completes, parsed and queued. */
  #decode(bytes: Uint8Array): void {
    const frames = this.#frames;
    let failure: unknown;
    try {
      this.#decoder.push(bytes, frames);
    } catch (err) {
      // Frames completed before the bad one still count (an ERROR from the peer, say).
      failure = err;
    }
    for (const frame of frames) {
      if (this.#failure) break;
      if (this.#hello === undefined) {
        try {
          this.#hello = parseHello(frame);
        } catch (err) {
          this.fail(err, false);
          break;
        }
        const w = this.#helloWaiter;
        this.#helloWaiter = undefined;
        w?.resolve(this.#hello);
        continue;
      }
      let msg: Message;
      try {
        msg = parseMessage(frame);
      } catch (err) {
        this.fail(err);
        break;
      }
      if (msg.type === 'noop') {
        // A keepalive: progress unless we hold a file that waits for the peer's data.
        if (!this.#waitingForPeer) this.#lastProgress = performance.now();
        continue;
      }
      this.#lastProgress = performance.now();
      this.#enqueue(msg.type === 'data' ? { type: 'data', bytes: this.#keep(msg.bytes) } : msg, frame.byteLength);
    }
    frames.length = 0;
    if (failure !== undefined && !this.#failure) {
      // Garbage before a hello means the peer is not speaking SKFT at all.
      if (this.#hello === undefined) this.fail(protocolError(`${this.peer} does not speak the socketkit transfer protocol (is it a raw stream?)`, failure, 'peer-is-raw'), false);
      else this.fail(failure);
    }
  }

  /**
   * Gives file bytes (of the read `chunk`) to the sink; a consumer that is behind pauses the
   * socket until it catches up.
   */
  #handOver(sink: DataSink, bytes: Uint8Array, chunk: Buffer): void {
    let wait: Promise<void> | undefined;
    try {
      wait = sink(bytes);
    } catch (err) {
      this.fail(err);
      return;
    }
    if (wait === undefined) return;
    const call = ++this.#sinkCall;
    this.#sinkBehindIn = chunk;
    this.socket.pause();
    wait.then(
      () => {
        if (call !== this.#sinkCall) return;
        this.#sinkBehindIn = undefined;
        // Anything queued meanwhile is the consumer's first; its next() with the queue empty
        // resumes. A consumer already waiting there (while the sink was pending, so it did not
        // release) gets what was held back, the end, and the reads now.
        if (this.#failure || this.#queueHead !== this.#queue.length) return;
        if (this.#waiter !== undefined) {
          this.#release();
          this.#wake();
        } else if (this.#held === undefined) {
          this.socket.resume();
        }
      },
      (err: unknown) => {
        if (call === this.#sinkCall) this.#sinkBehindIn = undefined;
        this.fail(err);
      },
    );
  }

  /** Queues a message, counted as its frame bytes plus a fixed overhead for the objects. */
  #enqueue(msg: Message, frameBytes: number): void {
    const size = frameBytes + QUEUED_MESSAGE_OVERHEAD;
    this.#queue.push({ msg, size });
    this.#queuedBytes += size;
    const count = this.#queue.length - this.#queueHead;
    if (count > this.#peakMessages) this.#peakMessages = count;
    if (this.#queuedBytes > this.#peakBytes) this.#peakBytes = this.#queuedBytes;
  }

  #shift(): Message {
    const { msg, size } = this.#queue[this.#queueHead]!;
    this.#queueHead++;
    // Compact now and then rather than shift() per message.
    if (this.#queueHead > 1024 || this.#queueHead === this.#queue.length) {
      this.#queue = this.#queue.slice(this.#queueHead);
      this.#queueHead = 0;
    }
    this.#queuedBytes -= size;
    if (
      !this.#failure &&
      this.#sink === undefined &&
      (this.#held !== undefined || this.socket.isPaused()) &&
      this.#queuedBytes <= this.#queueLimit / 2 &&
      this.#queue.length - this.#queueHead <= this.#queueCountLimit / 2
    ) {
      this.#release();
    }
    return msg;
  }

  #wake(): void {
    const w = this.#waiter;
    if (w === undefined) return;
    if (this.#queueHead < this.#queue.length) {
      this.#waiter = undefined;
      w.resolve(this.#shift());
    } else if (this.#failure) {
      this.#waiter = undefined;
      w.reject(this.#failure);
    } else if (this.#ended) {
      this.#waiter = undefined;
      w.resolve(null);
    }
  }

  /** The peer's end arrived while bytes were held back: it counts once they are parsed. */
  #endPending = false;

  #onEnd(): void {
    if (this.#held !== undefined) {
      this.#endPending = true;
      return;
    }
    if (this.#hello === undefined) {
      this.#setFailure(this.#goneBeforeHello('closed the connection'));
      return;
    }
    try {
      if (this.#dataLeft > 0) throw new SocketkitError('ERR_FRAME_TRUNCATED', `${this.peer} closed the connection mid-message (${this.#dataLeft} bytes of it never came)`);
      this.#decoder.end();
    } catch (err) {
      const e = toSocketkitError(err, this.peer);
      // The codec's own words are about frames; a user sees a connection that closed.
      this.#setFailure(e.code === 'ERR_FRAME_TRUNCATED' && e.message.startsWith('stream ended') ? new SocketkitError(e.code, `${this.peer} closed the connection mid-message`, { cause: e }) : e);
      return;
    }
    this.#ended = true;
    this.#wake();
  }

  #onClose(): void {
    this.#stopTimer();
    // An end still waiting behind held-back bytes is a clean end once they are parsed.
    if (!this.#ended && !this.#endPending) {
      this.#setFailure(this.#hello === undefined ? this.#goneBeforeHello('dropped the connection') : new SocketkitError('ERR_CONN_CLOSED', `connection to ${this.peer} closed mid-transfer`));
    }
  }

  #setFailure(err: SocketkitError): void {
    if (this.#failure) return;
    this.#failure = err;
    this.#failed.abort(err);
    const h = this.#helloWaiter;
    this.#helloWaiter = undefined;
    h?.reject(err);
    this.#wake();
  }

  #tick(): void {
    const now = performance.now();
    if (this.#busy > 0) this.#lastProgress = now;
    if (this.#stallMs > 0 && now - this.#lastProgress > this.#stallMs) {
      this.fail(new SocketkitError('ERR_STALLED', `transfer with ${this.peer} stalled: no progress for ${this.#stallMs / 1000} s`));
      return;
    }
    // Busy with local work and silent on the wire: say so, well before the peer's watchdog fires
    // (its timeout is not known here; a NOOP every 2 s costs nothing).
    const keepaliveMs = this.#stallMs > 0 ? Math.min(KEEPALIVE_MS, this.#stallMs / 3) : KEEPALIVE_MS;
    if ((this.#busy > 0 || this.#localSinceTick) && now - this.#lastWrite > keepaliveMs) this.send({ type: 'noop' });
    this.#localSinceTick = false;
  }

  #stopTimer(): void {
    clearInterval(this.#timer);
  }
}

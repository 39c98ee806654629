/**
 * One framed transfer connection: SKFT messages in and out over a socket, with bounded
 * buffering, backpressure, and a watchdog that turns a transfer that stops moving into an
 * `ERR_STALLED` error instead of a hang.
 *
 * Both roles use it; the sender and receiver modules hold the protocol logic.
 */
import type { Socket } from 'node:net';
import { SocketkitError, toSocketkitError } from '../core/errors.js';
import { FrameDecoder, writeFrame } from '../codec/index.js';
import { waitDrain } from '../net/write.js';
import type { RawReadHook } from './raw.js';
import { DEFAULT_RECEIVE_QUEUE_BYTES, DEFAULT_STALL_TIMEOUT_MS } from './constants.js';
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
  /** Received bytes queued for the consumer before the socket is paused (default 8 MiB). */
  readonly queueBytes?: number;
  /**
   * For a socket made with {@link rawReadHook}'s `onread` (one read buffer, reused for every
   * read): reads arrive through the hook, and the link copies whatever it keeps past a read.
   */
  readonly readHook?: RawReadHook;
}

/**
 * Takes file bytes at once, while the read that brought them is current (see `Link.direct`). It
 * must be done with `bytes` when it returns (hashed, written synchronously): they may be a view
 * of a read buffer that the next read overwrites. It returns a promise when the consumer is
 * behind; the socket then pauses, and DATA is queued as usual until the promise settles. It
 * throws to fail the link.
 */
export type DirectData = (bytes: Uint8Array) => Promise<void> | undefined;

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
  readonly #stallMs: number;
  readonly #frames: Uint8Array[] = [];
  /** Messages not yet handed out, each with the frame bytes it holds (what the queue limit counts). */
  #queue: Array<{ readonly msg: Message; readonly size: number }> = [];
  #queueHead = 0;
  #queuedBytes = 0;
  #waiter: { resolve: (m: Message | null) => void; reject: (err: Error) => void } | undefined;
  #hello: Hello | undefined;
  #helloWaiter: { resolve: (h: Hello) => void; reject: (err: Error) => void } | undefined;
  /** Payload bytes of the DATA frame being streamed on the fast path (see `#onData`). */
  #dataLeft = 0;
  #ended = false;
  #failure: SocketkitError | undefined;
  readonly #failed: Promise<never>;
  #rejectFailed!: (err: Error) => void;
  #lastProgress = performance.now();
  #lastWrite = performance.now();
  #localSinceTick = false;
  #busy = 0;
  /** Reads come from a reused buffer: what is kept must be copied. */
  readonly #reused: boolean;
  /**
   * Set by a consumer that can take file bytes synchronously (hash and a synchronous write):
   * DATA that arrives while the consumer waits in `next()` with nothing queued goes straight to
   * it, without a queue entry or a promise, and (with a read hook) without a copy.
   */
  direct: DirectData | undefined;
  /** A `direct` call's promise has not settled yet. */
  #directPending = false;
  readonly #timer: NodeJS.Timeout;
  readonly #closed: Promise<void>;

  constructor(socket: Socket, options: LinkOptions) {
    this.socket = socket;
    this.peer = options.peer;
    this.#decoder = new FrameDecoder(options.maxFrameSize === undefined ? {} : { maxFrameSize: options.maxFrameSize });
    this.#queueLimit = options.queueBytes ?? DEFAULT_RECEIVE_QUEUE_BYTES;
    this.#stallMs = options.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS;
    this.#failed = new Promise<never>((_, reject) => {
      this.#rejectFailed = reject;
    });
    // Nobody may be racing against it yet; an unobserved rejection is not an error here.
    this.#failed.catch(() => undefined);
    this.#closed = new Promise((resolve) => socket.once('close', () => resolve()));
    const hook = options.readHook;
    this.#reused = hook !== undefined;
    if (hook) {
      hook.feed = (chunk) => {
        this.#onData(chunk);
        return true;
      };
      for (const chunk of hook.early.splice(0)) this.#onData(chunk);
    } else {
      socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    }
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

  /** Sends our hello: the first frame, always. */
  sendHello(role: TransferRole, info: HelloInfo): void {
    this.#write(encodeHello(role, info));
  }

  /** Resolves with the peer's hello; rejects if the peer speaks something else or goes away. */
  readHello(): Promise<Hello> {
    if (this.#hello) return Promise.resolve(this.#hello);
    if (this.#failure) return Promise.reject(this.#failure);
    if (this.#ended) return Promise.reject(new SocketkitError('ERR_CONN_CLOSED', `${this.peer} closed the connection before saying hello`));
    return new Promise((resolve, reject) => {
      this.#helloWaiter = { resolve, reject };
    });
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

  /** Races `work` against the link's failure, so that no local wait outlives a dead link. */
  guard<T>(work: Promise<T>): Promise<T> {
    return Promise.race([work, this.#failed]);
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
    const s = this.socket;
    if (tellPeer && !s.destroyed && s.writable) {
      writeFrame(s, encodeControl({ type: 'error', code: e.code, message: e.message }));
      s.end();
      // Give the ERROR a moment to leave, then make sure the socket goes.
      setTimeout(() => s.destroy(), 1000).unref();
    } else {
      s.destroy();
    }
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
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.#closed, new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)))]);
      clearTimeout(timer);
    }
    s.destroy();
  }

  /** Destroys the connection at once (no ERROR message). */
  destroy(): void {
    this.#stopTimer();
    this.socket.destroy();
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
    this.#lastProgress = performance.now();
    const size = chunk.byteLength;
    let at = 0;
    while (at < size && this.#failure === undefined) {
      if (this.#dataLeft > 0) {
        // Inside a DATA payload on the fast path: this chunk's share of it, uncopied.
        const n = Math.min(this.#dataLeft, size - at);
        this.#dataLeft -= n;
        const bytes = chunk.subarray(at, at + n);
        at += n;
        // The consumer waits with nothing queued: hand the bytes over now.
        if (this.direct !== undefined && !this.#directPending && this.#waiter !== undefined && this.#queueHead === this.#queue.length) this.#handOver(bytes);
        else this.#enqueue({ type: 'data', bytes: this.#reused ? Buffer.from(bytes) : bytes }, n);
        continue;
      }
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
          return;
        }
        this.#dataLeft = length - 1;
        at += DATA_PREFIX_SIZE;
        continue;
      }
      // The decoder keeps what it has not parsed yet, so a reused read buffer is copied first.
      const rest = at === 0 ? chunk : chunk.subarray(at);
      this.#decode(this.#reused ? Buffer.from(rest) : rest);
      break;
    }
    if (this.#queuedBytes > this.#queueLimit) this.socket.pause();
    this.#wake();
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
      if (msg.type !== 'noop') this.#enqueue(msg, frame.byteLength);
    }
    frames.length = 0;
    if (failure !== undefined && !this.#failure) {
      // Garbage before a hello means the peer is not speaking SKFT at all.
      if (this.#hello === undefined) this.fail(protocolError(`${this.peer} does not speak the socketkit transfer protocol (is it a raw stream? try --raw)`, failure), false);
      else this.fail(failure);
    }
  }

  /** Gives file bytes to `direct`; a consumer that is behind pauses the socket until it catches up. */
  #handOver(bytes: Uint8Array): void {
    let wait: Promise<void> | undefined;
    try {
      wait = this.direct!(bytes);
    } catch (err) {
      this.fail(err);
      return;
    }
    if (wait === undefined) return;
    this.#directPending = true;
    this.socket.pause();
    wait.then(
      () => {
        this.#directPending = false;
        if (!this.#failure && this.#queuedBytes <= this.#queueLimit / 2) this.socket.resume();
      },
      (err: unknown) => {
        this.#directPending = false;
        this.fail(err);
      },
    );
  }

  #enqueue(msg: Message, size: number): void {
    this.#queue.push({ msg, size });
    this.#queuedBytes += size;
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
    if (this.#queuedBytes <= this.#queueLimit / 2 && this.socket.isPaused() && !this.#failure && !this.#directPending) this.socket.resume();
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

  #onEnd(): void {
    if (this.#hello === undefined) {
      this.#setFailure(new SocketkitError('ERR_CONN_CLOSED', `${this.peer} closed the connection before saying hello`));
      return;
    }
    try {
      if (this.#dataLeft > 0) throw new SocketkitError('ERR_FRAME_TRUNCATED', `stream ended inside a frame: ${this.#dataLeft} payload bytes missing`);
      this.#decoder.end();
    } catch (err) {
      this.#setFailure(toSocketkitError(err, this.peer));
      return;
    }
    this.#ended = true;
    this.#wake();
  }

  #onClose(): void {
    this.#stopTimer();
    if (!this.#ended) this.#setFailure(new SocketkitError('ERR_CONN_CLOSED', `connection to ${this.peer} closed mid-transfer`));
  }

  #setFailure(err: SocketkitError): void {
    if (this.#failure) return;
    this.#failure = err;
    this.#rejectFailed(err);
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

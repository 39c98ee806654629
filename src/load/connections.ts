/**
 * The load generator's connections, one class per transport: raw bytes over TCP or a Unix
 * socket, length-prefixed messages, and UDP datagrams.
 *
 * A connection knows how to send request `n` (message `n % messages.length`) and how to
 * recognise its echo; the run (run.ts) decides when to send and measures. Request numbers are
 * per connection and start at 0. Echoes are checked byte for byte as they arrive (without
 * copying), so a server that corrupts, shifts or drops bytes is an error, not a fast result.
 */
import type { Socket } from 'node:net';
import { connect, type ConnectTransport } from '../net/connect.js';
import { formatEndpoint, type Endpoint } from '../net/endpoint.js';
import { EXIT_MISMATCH, SocketkitError, toSocketkitError } from '../core/errors.js';
import { connectMessages, type MessageConnection } from '../message/index.js';
import { connectUdp, datagramTooLarge, toUdpError } from '../udp/index.js';
import { closeQuietly, type DgramSocket } from '../udp/socket.js';

/** How a connection reports to its run. */
export interface ConnectionHooks {
  /** Request `seq` came back intact. */
  complete(conn: LoadConnection, seq: number): void;
  /** The connection is unusable (reset, closed by the server, bad echo, timeout). */
  fail(conn: LoadConnection, err: SocketkitError): void;
  /** One request is lost but the connection goes on (UDP). */
  lost(conn: LoadConnection, seq: number, err: SocketkitError): void;
  /** The transport can take more after applying backpressure. */
  writable(conn: LoadConnection): void;
}

/** The byte sent (and expected back) to confirm a new connection is served. */
const WARM_UP = Buffer.from('!');

function mismatch(what: string, detail: string): SocketkitError {
  return new SocketkitError('ERR_ECHO_MISMATCH', `echo from ${what} ${detail}`, { exitCode: EXIT_MISMATCH });
}

/** One connection of a load run. */
export abstract class LoadConnection {
  readonly index: number;
  readonly messages: readonly Buffer[];
  readonly what: string;
  /** Requests written. */
  sent = 0;
  /** Requests finished (echoed, or lost for UDP). */
  done = 0;
  /** Open loop: requests scheduled for this connection so far. */
  due = 0;
  alive = true;
  /** Waiting for the transport to drain. */
  blocked = false;
  /** When the last request was written (closed loop latency starts there). */
  lastSendAt = 0;
  /** When this connection last made progress (a send onto an empty pipe, or an echo). */
  lastProgressAt = 0;
  protected hooks: ConnectionHooks | undefined;

  constructor(index: number, messages: readonly Buffer[], what: string) {
    this.index = index;
    this.messages = messages;
    this.what = what;
  }

  /** Starts reporting to the run (after the warm-up). */
  attach(hooks: ConnectionHooks): void {
    this.hooks = hooks;
  }

  /** The message of request `seq`. */
  messageOf(seq: number): Buffer {
    return this.messages[seq % this.messages.length]!;
  }

  /** Writes request number `sent` and returns its size in bytes. */
  abstract send(): number;
  /**
   * One small echo before the run, proving the server has accepted and serves this connection.
   * Fails with ERR_TIMEOUT after `timeoutMs`, and with ERR_ABORTED as soon as `signal` aborts.
   */
  abstract warmUp(timeoutMs: number, signal?: AbortSignal): Promise<void>;
  /** Closes at once (idempotent); no more reports. */
  abstract close(): void;

  protected failWith(err: SocketkitError): void {
    if (!this.alive) return;
    const hooks = this.hooks;
    if (hooks) hooks.fail(this, err);
    else this.close();
  }

  /** Settles the warm-up in progress (an error fails it); undefined when none is. */
  protected warm: ((err?: SocketkitError) => void) | undefined;
  /** Set by close(): what happens to the transport afterwards is no failure. */
  protected closing = false;

  /** The transport failed or ended: that fails the warm-up in progress, or else the run. */
  protected lost(err: SocketkitError): void {
    if (this.closing) return;
    if (this.warm) this.warm(err);
    else this.failWith(err);
  }

  /** Sends the warm-up with `send` and waits until `warm()` is settled, `timeoutMs` passes, or `signal` aborts. */
  protected awaitWarmUp(timeoutMs: number, signal: AbortSignal | undefined, send: () => void): Promise<void> {
    return withTimeout(this.what, timeoutMs, signal, (settle) => {
      this.warm = (err) => {
        this.warm = undefined;
        settle(err);
      };
      send();
    });
  }
}

/** Waits for `settle` to be called; fails after `timeoutMs`, or at once when `signal` aborts. */
function withTimeout(what: string, timeoutMs: number, signal: AbortSignal | undefined, start: (settle: (err?: SocketkitError) => void) => void): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const aborted = (): SocketkitError => new SocketkitError('ERR_ABORTED', `first echo from ${what} abandoned (aborted)`);
    if (signal?.aborted) {
      reject(aborted());
      return;
    }
    const timer = setTimeout(() => settle(new SocketkitError('ERR_TIMEOUT', `no echo of the first byte from ${what} in ${timeoutMs / 1000} s`)), timeoutMs);
    const onAbort = (): void => settle(aborted());
    signal?.addEventListener('abort', onAbort, { once: true });
    let settled = false;
    function settle(err?: SocketkitError): void {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      if (err) reject(err);
      else resolve();
    }
    start(settle);
  });
}

/** Raw bytes over TCP or a Unix socket: each request is a message's bytes, its echo the same bytes. */
export class StreamConnection extends LoadConnection {
  readonly socket: Socket;
  /** Bytes of request `done` already echoed. */
  #offset = 0;

  constructor(index: number, messages: readonly Buffer[], what: string, socket: Socket) {
    super(index, messages, what);
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('drain', () => {
      this.blocked = false;
      this.hooks?.writable(this);
    });
    socket.on('error', (err) => this.lost(toSocketkitError(err, what)));
    socket.on('end', () => this.lost(new SocketkitError('ERR_CONN_CLOSED', `${what} closed the connection`)));
    socket.on('close', () => this.lost(new SocketkitError('ERR_CONN_CLOSED', `${what} closed the connection`)));
  }

  warmUp(timeoutMs: number, signal?: AbortSignal): Promise<void> {
    return this.awaitWarmUp(timeoutMs, signal, () => this.socket.write(WARM_UP));
  }

  send(): number {
    const msg = this.messageOf(this.sent++);
    if (!this.socket.write(msg)) this.blocked = true;
    return msg.length;
  }

  #onData(chunk: Buffer): void {
    let at = 0;
    if (this.warm) {
      if (chunk.length !== 1 || chunk[0] !== WARM_UP[0]) this.warm(mismatch(this.what, 'of the first byte is wrong'));
      else this.warm();
      return;
    }
    while (at < chunk.length && this.alive) {
      if (this.done === this.sent) {
        this.failWith(mismatch(this.what, 'has more bytes than were sent'));
        return;
      }
      const msg = this.messageOf(this.done);
      const n = Math.min(msg.length - this.#offset, chunk.length - at);
      if (msg.compare(chunk, at, at + n, this.#offset, this.#offset + n) !== 0) {
        this.failWith(mismatch(this.what, `differs from request ${this.done + 1}`));
        return;
      }
      at += n;
      this.#offset += n;
      if (this.#offset === msg.length) {
        this.#offset = 0;
        const seq = this.done++;
        this.hooks?.complete(this, seq);
      }
    }
  }

  close(): void {
    this.alive = false;
    this.closing = true;
    this.socket.destroy();
  }
}

/** Length-prefixed messages (the message API): each request is one message, its echo one message. */
export class FramedConnection extends LoadConnection {
  readonly conn: MessageConnection;

  constructor(index: number, messages: readonly Buffer[], what: string, conn: MessageConnection) {
    super(index, messages, what);
    this.conn = conn;
    void this.#read();
  }

  async #read(): Promise<void> {
    try {
      for await (const reply of this.conn) {
        if (this.warm) {
          if (Buffer.compare(reply, WARM_UP) !== 0) this.warm(mismatch(this.what, 'of the first message is wrong'));
          else this.warm();
          continue;
        }
        if (!this.alive) return;
        if (this.done === this.sent) throw mismatch(this.what, 'is a message that was never sent');
        const expected = this.messageOf(this.done);
        if (Buffer.compare(reply, expected) !== 0) throw mismatch(this.what, `differs from message ${this.done + 1} (${reply.byteLength} bytes, expected ${expected.length})`);
        const seq = this.done++;
        this.hooks?.complete(this, seq);
      }
      this.lost(new SocketkitError('ERR_CONN_CLOSED', `${this.what} closed the connection`));
    } catch (err) {
      this.lost(toSocketkitError(err, this.what));
    }
  }

  warmUp(timeoutMs: number, signal?: AbortSignal): Promise<void> {
    return this.awaitWarmUp(timeoutMs, signal, () => void this.conn.send(WARM_UP).catch((err: unknown) => this.lost(toSocketkitError(err, this.what))));
  }

  send(): number {
    const msg = this.messageOf(this.sent++);
    const sending = this.conn.send(msg);
    if (this.conn.socket.writableNeedDrain) {
      this.blocked = true;
      sending.then(
        () => {
          this.blocked = false;
          this.hooks?.writable(this);
        },
        (err: unknown) => this.lost(toSocketkitError(err, this.what)),
      );
    } else {
      sending.catch((err: unknown) => this.lost(toSocketkitError(err, this.what)));
    }
    return msg.length;
  }

  close(): void {
    this.alive = false;
    this.closing = true;
    this.conn.close();
  }
}

/** Bytes of the sequence number a UDP request carries at its start (when it is long enough). */
const SEQ_BYTES = 4;

/**
 * UDP datagrams. A datagram can be lost, duplicated or come back late, so each request of 4
 * bytes or more carries its sequence number in its first 4 bytes (the rest is the message), and
 * an echo is matched by that number: a late echo of a request already counted lost is ignored,
 * never mistaken for the current one. Shorter requests are matched oldest first.
 */
export class UdpConnection extends LoadConnection {
  readonly socket: DgramSocket;
  readonly maxPayload: number;
  /** Requests in flight: sequence number -> when sent (in send order, so the oldest is first). */
  readonly #outstanding = new Map<number, number>();
  /** Echoes that matched nothing in flight (late or duplicated). */
  stray = 0;

  constructor(index: number, messages: readonly Buffer[], what: string, socket: DgramSocket, maxPayload: number) {
    super(index, messages, what);
    this.socket = socket;
    this.maxPayload = maxPayload;
    socket.on('message', (m: Buffer) => this.#onMessage(m));
    socket.on('error', (err: Error) => {
      const e = toUdpError(err, what);
      // ICMP port unreachable: nobody is listening; that ends this connection.
      if (this.warm) this.warm(e);
      else if (e.code === 'ERR_CONN_REFUSED') this.failWith(e);
    });
  }

  /** Requests in flight now. */
  get outstanding(): number {
    return this.#outstanding.size;
  }

  warmUp(timeoutMs: number, signal?: AbortSignal): Promise<void> {
    // Up to 3 tries: a datagram may be lost, that is not a reason to give up on the server.
    const tries = 3;
    const each = Math.max(1, Math.floor(timeoutMs / tries));
    const attempt = (left: number): Promise<void> =>
      this.awaitWarmUp(each, signal, () => this.socket.send(WARM_UP)).catch((err: unknown) => {
        const e = toSocketkitError(err, this.what);
        if (e.code === 'ERR_TIMEOUT' && left > 1) return attempt(left - 1);
        throw e;
      });
    return attempt(tries);
  }

  send(): number {
    const seq = this.sent++;
    const msg = this.messageOf(seq);
    let datagram = msg;
    if (msg.length >= SEQ_BYTES) {
      datagram = Buffer.allocUnsafe(msg.length);
      msg.copy(datagram);
      datagram.writeUInt32BE(seq >>> 0, 0);
    }
    this.#outstanding.set(seq, performance.now());
    this.socket.send(datagram, (err: Error | null) => {
      if (err && this.alive && this.#outstanding.delete(seq)) {
        this.done++;
        this.hooks?.lost(this, seq, toUdpError(err, this.what));
      }
    });
    return msg.length;
  }

  #onMessage(m: Buffer): void {
    if (this.warm) {
      if (m.length === 1 && m[0] === WARM_UP[0]) this.warm();
      return; // anything else during warm-up is a stray from an earlier run
    }
    if (!this.alive) return;
    let seq: number | undefined;
    if (m.length >= SEQ_BYTES) {
      // A connection sends fewer than 2^32 requests in any run we can imagine, so the tag is the number.
      const tagged = m.readUInt32BE(0);
      if (this.#outstanding.has(tagged) && this.messageOf(tagged).length === m.length) seq = tagged;
    } else {
      for (const s of this.#outstanding.keys()) {
        if (this.messageOf(s).length === m.length) {
          seq = s;
          break;
        }
      }
    }
    if (seq === undefined) {
      this.stray++;
      return;
    }
    const msg = this.messageOf(seq);
    const from = msg.length >= SEQ_BYTES ? SEQ_BYTES : 0;
    this.#outstanding.delete(seq);
    this.done++;
    if (msg.compare(m, from, m.length, from, msg.length) !== 0) {
      this.hooks?.lost(this, seq, mismatch(this.what, `differs from datagram ${seq + 1}`));
      return;
    }
    this.hooks?.complete(this, seq);
  }

  /** Counts requests older than `timeoutMs` as lost; returns how many. */
  expire(now: number, timeoutMs: number): number {
    let n = 0;
    for (const [seq, at] of this.#outstanding) {
      if (now - at < timeoutMs) break; // in send order: the rest are younger
      this.#outstanding.delete(seq);
      this.done++;
      n++;
      this.hooks?.lost(this, seq, new SocketkitError('ERR_TIMEOUT', `no echo of datagram ${seq + 1} from ${this.what} in ${timeoutMs / 1000} s (lost)`));
    }
    return n;
  }

  close(): void {
    if (this.closing) return;
    this.alive = false;
    this.closing = true;
    void closeQuietly(this.socket);
  }
}

/** Which transport a load run uses. */
export type LoadProtocol = 'stream' | 'framed' | 'udp';

/** Opens connection `index` to `ep` (not yet warmed up). */
export async function openConnection(
  protocol: LoadProtocol,
  ep: Endpoint,
  index: number,
  messages: readonly Buffer[],
  options: { readonly timeoutMs: number; readonly signal?: AbortSignal; readonly maxMessageSize?: number; readonly transport?: ConnectTransport },
): Promise<LoadConnection> {
  const what = formatEndpoint(ep);
  const connectOptions = { timeoutMs: options.timeoutMs, ...(options.signal ? { signal: options.signal } : {}) };
  switch (protocol) {
    case 'stream':
      return new StreamConnection(index, messages, what, await connect(ep, connectOptions, options.transport));
    case 'framed': {
      const conn = await connectMessages(ep, { ...connectOptions, ...(options.maxMessageSize !== undefined ? { maxMessageSize: options.maxMessageSize } : {}), ...(options.transport ? { transport: options.transport } : {}) });
      return new FramedConnection(index, messages, what, conn);
    }
    case 'udp': {
      const u = await connectUdp(ep, options.signal);
      const largest = Math.max(...messages.map((m) => m.length));
      if (largest > u.maxPayload) {
        await closeQuietly(u.socket);
        throw datagramTooLarge(largest, u.remote.family, what);
      }
      return new UdpConnection(index, messages, what, u.socket, u.maxPayload);
    }
  }
}

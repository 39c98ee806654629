/**
 * Message connections: a stream socket that carries whole messages, never half of one.
 *
 * Each message travels as one length-prefixed frame (see src/codec). `send()` honours
 * backpressure (it resolves once the socket's buffer is below its high-water mark and rejects
 * if the connection closes first); async iteration yields whole messages and, because it pulls
 * from the socket only as fast as the consumer asks, a slow consumer pauses the socket.
 */
import type { Socket } from 'node:net';
import { decodeFrames, writeFrame, DEFAULT_MAX_FRAME_SIZE } from '../codec/index.js';
import { connect, type ConnectOptions, type ConnectTransport } from '../net/connect.js';
import { listen, type ListenOptions, type Listener } from '../net/listen.js';
import { endAndFlush, waitDrain } from '../net/write.js';
import { SocketkitError, toSocketkitError } from '../core/errors.js';
import type { Endpoint } from '../net/endpoint.js';

export interface MessageOptions {
  /** The largest message accepted or sent, in bytes. Default 16 MiB. */
  readonly maxMessageSize?: number;
}

/** A connection that sends and receives whole messages. */
export class MessageConnection implements AsyncIterable<Uint8Array> {
  readonly socket: Socket;
  readonly #maxFrameSize: number;
  #iterating = false;
  #corked = false;

  constructor(socket: Socket, options: MessageOptions = {}) {
    this.socket = socket;
    this.#maxFrameSize = options.maxMessageSize ?? DEFAULT_MAX_FRAME_SIZE;
    // Errors surface through send() and iteration; this keeps an unread error from crashing.
    socket.on('error', () => undefined);
  }

  /**
   * Sends one message. Resolves when the socket can take more (below its high-water mark);
   * rejects with ERR_CONN_CLOSED if the connection is gone, ERR_FRAME_TOO_LARGE if oversized.
   */
  async send(message: Uint8Array): Promise<void> {
    if (this.socket.destroyed || this.socket.writableEnded) {
      throw new SocketkitError('ERR_CONN_CLOSED', 'connection closed: cannot send');
    }
    // Messages sent in the same tick leave in one writev: cork now, uncork on the next tick.
    if (!this.#corked) {
      this.#corked = true;
      this.socket.cork();
      process.nextTick(this.#uncork);
    }
    if (!writeFrame(this.socket, message, { maxFrameSize: this.#maxFrameSize })) {
      this.#uncork();
      await waitDrain(this.socket);
    }
  }

  readonly #uncork = (): void => {
    if (!this.#corked) return;
    this.#corked = false;
    this.socket.uncork();
  };

  /** Half-closes after everything sent has been flushed: the peer's iteration ends. */
  end(): Promise<void> {
    this.#uncork();
    return endAndFlush(this.socket);
  }

  /** Closes the connection at once. */
  close(): void {
    this.socket.destroy();
  }

  /**
   * Yields each whole message until the peer half-closes. A stream that ends mid-message
   * throws ERR_FRAME_TRUNCATED; an oversized length prefix throws ERR_FRAME_TOO_LARGE and
   * closes the connection. Only one iteration may run.
   */
  async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array, void, undefined> {
    if (this.#iterating) throw new SocketkitError('ERR_INVALID_ARG', 'a message connection can be iterated only once');
    this.#iterating = true;
    try {
      // destroyOnReturn: false, so a decode error (not a generic abort) is what closes the socket.
      const chunks = this.socket.iterator({ destroyOnReturn: false }) as AsyncIterable<Uint8Array>;
      yield* decodeFrames(chunks, { maxFrameSize: this.#maxFrameSize });
    } catch (err) {
      const coded = toSocketkitError(err);
      this.socket.destroy(coded);
      throw coded;
    }
  }
}

export interface ConnectMessagesOptions extends ConnectOptions, MessageOptions {
  readonly transport?: ConnectTransport;
}

/** Connects to `ep` and returns a message connection. Takes an AbortSignal and a timeout. */
export async function connectMessages(ep: Endpoint, options: ConnectMessagesOptions = {}): Promise<MessageConnection> {
  const socket = await connect(ep, options, options.transport);
  return new MessageConnection(socket, options);
}

export interface ListenMessagesOptions extends Omit<ListenOptions, 'onConnection'>, MessageOptions {
  /** Called with each new message connection. */
  readonly onConnection: (conn: MessageConnection) => void;
}

/** Listens on `ep`; every accepted connection is handed over as a message connection. */
export function listenMessages(ep: Endpoint, options: ListenMessagesOptions): Promise<Listener> {
  const { onConnection, maxMessageSize, ...rest } = options;
  return listen(ep, {
    ...rest,
    onConnection: (socket) => onConnection(new MessageConnection(socket, maxMessageSize === undefined ? {} : { maxMessageSize })),
  });
}

/**
 * Echoes whole messages on a connection until the peer half-closes, then half-closes too.
 * Used by `echo-server --framed`.
 */
export async function echoMessages(conn: MessageConnection): Promise<void> {
  try {
    for await (const message of conn) await conn.send(message);
    await conn.end();
  } catch {
    conn.close();
  }
}

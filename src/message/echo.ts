/**
 * The framed echo on one socket (`echo-server --framed`): whole length-prefixed messages come
 * back whole, with what the connection holds bounded.
 *
 * What a connection may hold: the partial message being received (up to the largest message
 * accepted: it cannot be echoed before it is whole), and the replies of one read. As soon as the
 * socket's write side is above its high-water mark (the client is not reading its replies),
 * reading stops (`pause`) until it drains, so a client that sends and never reads cannot make the
 * server hold more messages for it. Every byte held is counted in a {@link MemoryBudget} shared by
 * the server's connections: input that would overspend it closes the connection with
 * ERR_MEMORY_BUDGET, and a connection gives back all it held when it closes.
 */
import type { Socket } from 'node:net';
import { FrameDecoder, writeFrame, DEFAULT_MAX_FRAME_SIZE } from '../codec/index.js';
import { endFrames, pushFrames } from '../codec/frame-push.js';
import { toSocketkitError } from '../core/errors.js';
import { budgetSpent, type MemoryBudget } from '../server/budget.js';

export interface FramedEchoSocketOptions {
  /** The largest message accepted, bytes. Default 16 MiB. */
  readonly maxMessageSize?: number;
  /** Counts (and bounds) the bytes held, shared with other connections. Without it, only the pause bounds them. */
  readonly budget?: MemoryBudget;
  /** Called once per message echoed (the server counts round trips). */
  readonly onMessage?: () => void;
}

/**
 * Echoes whole messages on `socket` until the peer half-closes (then half-closes after the last
 * reply), or closes it with a coded error: ERR_FRAME_TOO_LARGE, ERR_FRAME_TRUNCATED,
 * ERR_MEMORY_BUDGET.
 */
export function echoFramesOn(socket: Socket, options: FramedEchoSocketOptions = {}): void {
  const maxFrameSize = options.maxMessageSize ?? DEFAULT_MAX_FRAME_SIZE;
  const decoder = new FrameDecoder({ maxFrameSize });
  const { budget, onMessage } = options;
  const frames: Uint8Array[] = [];
  /** Bytes this connection has counted in the budget. */
  let held = 0;
  /** Brings the budget to what is held now: the partial message and the unsent replies. */
  const account = (): void => {
    const now = decoder.bufferedBytes + socket.writableLength;
    budget?.adjust(now - held);
    held = now;
  };
  socket.on('data', (chunk: Buffer) => {
    if (budget !== undefined) {
      if (!budget.tryReserve(chunk.length)) {
        socket.destroy(budgetSpent(budget, chunk.length));
        return;
      }
      held += chunk.length;
    }
    // The messages before a bad frame are still echoed.
    const failure = pushFrames(decoder, chunk, frames, (f) => {
      onMessage?.();
      writeFrame(socket, f, { maxFrameSize });
    });
    if (failure !== undefined) {
      socket.destroy(toSocketkitError(failure));
      return;
    }
    if (budget !== undefined) account();
    // The client is not taking its replies: stop reading until it does.
    if (socket.writableNeedDrain) socket.pause();
  });
  socket.on('drain', () => {
    if (budget !== undefined) account();
    socket.resume();
  });
  socket.on('end', () => endFrames(decoder, socket, toSocketkitError));
  socket.on('close', () => {
    budget?.release(held);
    held = 0;
  });
}

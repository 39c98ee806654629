/**
 * The byte and framed brokers: what one client sends goes to every other client, never back to
 * the sender (ncat's `--broker`). Bytes are relayed chunk by chunk as they are read; framed
 * mode relays whole length-prefixed messages, never split or merged, each checked against the
 * largest message allowed before any of its payload is held.
 *
 * Each client's outgoing bytes are bounded (see outbox.ts), so a client that does not read
 * never slows the others. A client's FIN ends its session: what is queued for it is flushed and
 * the connection closed, as ncat does (so `nc -N` scripts end).
 */
import type { Socket } from 'node:net';
import { FrameDecoder } from '../codec/frame-decoder.js';
import { encodeFrame } from '../codec/frame-encoder.js';
import { endFrames, pushFrames } from '../codec/frame-push.js';
import { toSocketkitError } from '../core/errors.js';
import type { Protocol } from '../server/server.js';
import type { BrokerHub } from './hub.js';

/** Bytes: each chunk read from a client goes to every other client. */
export function byteBroker(hub: BrokerHub): Protocol {
  return (counters) => {
    function onData(this: Socket, chunk: Buffer): void {
      counters.roundTrips++;
      hub.fanOut(this, chunk);
    }
    function onEnd(this: Socket): void {
      this.end();
    }
    return (socket) => {
      hub.join(socket, { flow: true });
      socket.on('data', onData);
      socket.on('end', onEnd);
    };
  };
}

/**
 * Whole messages (4-byte big-endian length, then the payload), each relayed as one frame. The
 * messages before a bad length prefix in the same read are relayed; then the sender is closed.
 */
export function framedBroker(hub: BrokerHub, maxMessageSize: number): Protocol {
  return (counters) => (socket) => {
    hub.join(socket, { flow: true });
    const decoder = new FrameDecoder({ maxFrameSize: maxMessageSize });
    const frames: Uint8Array[] = [];
    const relayOne = (frame: Uint8Array): void => {
      counters.roundTrips++;
      const parts = encodeFrame(frame);
      hub.fanOut(socket, parts.length === 1 ? parts[0] : Buffer.concat(parts));
    };
    socket.on('data', (chunk: Buffer) => {
      const failure = pushFrames(decoder, chunk, frames, relayOne);
      // ERR_FRAME_TOO_LARGE: the server logs it with the disconnect; the others are unaffected.
      if (failure !== undefined) socket.destroy(toSocketkitError(failure));
    });
    socket.on('end', () => endFrames(decoder, socket, toSocketkitError));
  };
}

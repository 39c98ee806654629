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

/** Whole messages (4-byte big-endian length, then the payload), each relayed as one frame. */
export function framedBroker(hub: BrokerHub, maxMessageSize: number): Protocol {
  return (counters) => (socket) => {
    hub.join(socket, { flow: true });
    const decoder = new FrameDecoder({ maxFrameSize: maxMessageSize });
    socket.on('data', (chunk: Buffer) => {
      let frames: Uint8Array[];
      try {
        frames = decoder.push(chunk);
      } catch (err) {
        // ERR_FRAME_TOO_LARGE: the server logs it with the disconnect; the others are unaffected.
        socket.destroy(toSocketkitError(err));
        return;
      }
      for (const frame of frames) {
        counters.roundTrips++;
        const parts = encodeFrame(frame);
        hub.fanOut(socket, parts.length === 1 ? parts[0] : Buffer.concat(parts));
      }
    });
    socket.on('end', () => {
      try {
        decoder.end();
        socket.end();
      } catch (err) {
        socket.destroy(toSocketkitError(err));
      }
    });
  };
}

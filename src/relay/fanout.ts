/**
 * One input (listen's stdin) sent to every connected peer, with backpressure.
 *
 * Input is read only while at least one peer is connected (bytes read with nobody to take them
 * would be lost), and paused while any peer's socket is above its high-water mark: the slowest
 * reader sets the pace, but nothing blocks, so every peer's own bytes keep being read and
 * printed meanwhile (ncat's broker blocks in send() to one client and stalls everyone). When
 * the input ends every peer is half-closed, and so is each peer that connects afterwards,
 * unless `halfClose` is false.
 */
import type { Readable, Writable } from 'node:stream';
import type { Hold } from './pump.js';

export interface FanoutOptions {
  /** Half-close each peer when the input ends. Default true. */
  readonly halfClose?: boolean;
  /** What the `onWrite` hooks write to (a dump): the input is paused while it is full. */
  readonly hold?: Hold;
}

/** See the module comment. */
export class Fanout {
  readonly #input: Readable;
  readonly #halfClose: boolean;
  readonly #hold: Hold | undefined;
  /** Each peer, with what is told of every chunk written to it (a dump). */
  readonly #peers = new Map<Writable, ((chunk: Buffer) => void) | undefined>();
  /** Peers above their high-water mark: input stays paused while any is. */
  readonly #full = new Set<Writable>();
  #ended = false;
  /** Bytes read from the input so far. */
  bytesIn = 0;

  constructor(input: Readable, options: FanoutOptions = {}) {
    this.#input = input;
    this.#halfClose = options.halfClose ?? true;
    this.#hold = options.hold;
    input.on('data', (chunk: Buffer) => this.#onData(chunk));
    input.once('end', () => this.#onEnd());
    // A failing input (a closed terminal) counts as its end.
    input.once('error', () => this.#onEnd());
    input.pause();
  }

  /** True once the input has ended. */
  get ended(): boolean {
    return this.#ended;
  }

  /** Starts sending the input to `peer` (until it closes or `remove`); `onWrite` sees every chunk written to it. */
  add(peer: Writable, onWrite?: (chunk: Buffer) => void): void {
    if (this.#ended) {
      if (this.#halfClose) peer.end();
      return;
    }
    this.#peers.set(peer, onWrite);
    peer.on('drain', () => {
      this.#full.delete(peer);
      this.#flow();
    });
    peer.once('close', () => this.remove(peer));
    this.#flow();
  }

  /** Stops sending to `peer`. */
  remove(peer: Writable): void {
    this.#peers.delete(peer);
    this.#full.delete(peer);
    this.#flow();
  }

  #flow(): void {
    if (this.#ended) return;
    if (this.#peers.size > 0 && this.#full.size === 0 && !this.#hold?.full) this.#input.resume();
    else this.#input.pause();
  }

  #onData(chunk: Buffer): void {
    this.bytesIn += chunk.length;
    for (const [peer, onWrite] of this.#peers) {
      if (peer.destroyed || peer.writableEnded) continue;
      onWrite?.(chunk);
      if (!peer.write(chunk)) this.#full.add(peer);
    }
    if (this.#hold?.full) this.#hold.whenDrained(() => this.#flow());
    this.#flow();
  }

  #onEnd(): void {
    if (this.#ended) return;
    this.#ended = true;
    if (this.#halfClose) for (const peer of this.#peers.keys()) if (!peer.destroyed && !peer.writableEnded) peer.end();
  }
}

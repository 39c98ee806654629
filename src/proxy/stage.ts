/**
 * A toxic is a stage that the bytes of one direction of one connection pass through, in order
 * (the way toxiproxy's link.go chains its toxic stubs). A stage knows nothing of sockets: it
 * takes chunks and an end, and hands chunks, an end, or a verdict on the whole connection (close
 * or reset) to its output, now or later. Tests drive a stage by feeding it chunks.
 *
 * Memory: a stage that holds chunks (latency, bandwidth, slicer) says how many bytes it holds
 * (`buffered`); the relay stops reading the source while the chain and the destination hold
 * more than a high-water mark, so no stage needs backpressure of its own.
 */

/** Where a stage sends what it lets through. */
export interface StageOutput {
  /** Passes a chunk on. */
  push(chunk: Buffer): void;
  /** Passes the end of this direction on (a FIN). */
  end(): void;
  /** Closes the whole connection cleanly (FIN both ways), as toxiproxy's stub Close does. */
  close(): void;
  /** Resets the whole connection (RST both ways). */
  reset(): void;
}

/** What a stage may use of the world: a clock, timers, randomness (all replaceable in tests). */
export interface StageContext {
  /** Milliseconds, monotonic. */
  now(): number;
  /** A number in [0, 1). */
  random(): number;
  /** Starts a timer; returns what cancels it (a stage cancels its timers in `destroy()`). */
  setTimer(fn: () => void, ms: number): () => void;
  /** True when the chunks are datagrams (UDP): a datagram is never split or joined. */
  readonly datagram: boolean;
}

/** One stage of one direction of one connection. */
export interface Stage {
  /** Called once, when the connection is established (timers of connection-wide toxics start here). */
  start?(): void;
  /** A chunk (or datagram) from upstream of this stage. */
  write(chunk: Buffer): void;
  /** The end of this direction (FIN) from upstream of this stage. */
  end(): void;
  /** Bytes this stage holds now. */
  readonly buffered: number;
  /**
   * Passes on at once, in order, everything it holds (chunks, and the end when it holds that):
   * the toxic is being removed from a live connection. A stage that holds nothing has none.
   */
  flush?(): void;
  /** Stops every timer and drops what is held (the connection is gone). */
  destroy(): void;
}

/** Makes a stage, given its output and context. */
export type StageFactory = (out: StageOutput, ctx: StageContext) => Stage;

/** The default context: real time, Math.random, real timers. */
export function systemContext(datagram = false, random: () => number = Math.random): StageContext {
  return {
    now: () => performance.now(),
    random,
    setTimer: (fn, ms) => {
      const t = setTimeout(fn, ms);
      return () => clearTimeout(t);
    },
    datagram,
  };
}

/**
 * A deterministic random source (mulberry32), for reproducible loss and jitter (`--seed`).
 * Not for anything secret.
 */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A queue of chunks released in order at given times: the common part of latency, bandwidth and
 * slicer. Each entry is a chunk (or the end) with the time it may leave; entries leave in order,
 * so a later entry never overtakes an earlier one whose time is later.
 */
export class TimedQueue {
  readonly #out: StageOutput;
  readonly #ctx: StageContext;
  readonly #items: { at: number; chunk: Buffer | null }[] = [];
  #cancel: (() => void) | undefined;
  #buffered = 0;
  #destroyed = false;
  readonly #spaced: boolean;

  /** `spaced`: see #flush. */
  constructor(out: StageOutput, ctx: StageContext, spaced = false) {
    this.#out = out;
    this.#ctx = ctx;
    this.#spaced = spaced;
  }

  get buffered(): number {
    return this.#buffered;
  }

  /** Time the last queued entry leaves (or now, when empty). */
  get lastAt(): number {
    const last = this.#items.at(-1);
    return last ? last.at : this.#ctx.now();
  }

  /** Queues a chunk (null: the end) to leave at `at` (not before any entry queued earlier). */
  add(chunk: Buffer | null, at: number): void {
    if (this.#destroyed) return;
    this.#items.push({ at: Math.max(at, this.lastAt), chunk });
    if (chunk) this.#buffered += chunk.length;
    if (this.#items.length === 1) this.#flush();
  }

  #flush(): void {
    this.#cancel = undefined;
    while (!this.#destroyed && this.#items.length > 0) {
      const first = this.#items[0]!;
      const wait = first.at - this.#ctx.now();
      if (wait > 0) {
        this.#cancel = this.#ctx.setTimer(() => this.#flush(), wait);
        return;
      }
      this.#items.shift();
      if (first.chunk) {
        this.#buffered -= first.chunk.length;
        this.#out.push(first.chunk);
      } else this.#out.end();
      // Spaced: entries meant for different times leave in different turns of the event loop
      // even when both are late, so the writes they become stay apart.
      const next = this.#items[0];
      if (this.#spaced && next !== undefined && next.at > first.at) {
        this.#cancel = this.#ctx.setTimer(() => this.#flush(), Math.max(0, next.at - this.#ctx.now()));
        return;
      }
    }
  }

  /** Lets every entry leave now, in order, whatever its time (the stage is being removed). */
  flush(): void {
    this.#cancel?.();
    this.#cancel = undefined;
    const items = this.#items.splice(0);
    this.#buffered = 0;
    for (const it of items) {
      if (this.#destroyed) return;
      if (it.chunk) this.#out.push(it.chunk);
      else this.#out.end();
    }
  }

  destroy(): void {
    this.#destroyed = true;
    this.#cancel?.();
    this.#items.length = 0;
    this.#buffered = 0;
  }
}

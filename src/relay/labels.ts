/**
 * A peer's bytes as labelled lines (`[127.0.0.1:50312] hello`), for output shared by several
 * peers: lines of different peers never interleave mid-line (ncat's --chat prefixes each
 * recv() chunk instead). A line longer than `maxLine` without a newline is written in pieces,
 * each labelled and ended with a newline. Backpressure passes through: a write waits for the
 * output's 'drain'.
 */
import { Writable } from 'node:stream';
import { once } from 'node:events';
import { MAX_LABEL_LINE } from './constants.js';

const NL = 0x0a;

export class LabelledLines extends Writable {
  readonly #out: Writable;
  readonly #label: Buffer;
  readonly #maxLine: number;
  #partial: Buffer[] = [];
  #partialBytes = 0;

  /** `label` is written as given: neutralise it first if it reaches a terminal. */
  constructor(out: Writable, label: string, maxLine = MAX_LABEL_LINE) {
    super();
    this.#out = out;
    this.#label = Buffer.from(label);
    this.#maxLine = maxLine;
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    const lines: Buffer[] = [];
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(NL, start);
      if (nl < 0) break;
      lines.push(this.#label, ...this.#partial, chunk.subarray(start, nl + 1));
      this.#partial = [];
      this.#partialBytes = 0;
      start = nl + 1;
    }
    if (start < chunk.length) {
      this.#partial.push(chunk.subarray(start));
      this.#partialBytes += chunk.length - start;
      if (this.#partialBytes >= this.#maxLine) lines.push(...this.#takePartial());
    }
    this.#emit(lines, cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.#emit(this.#partialBytes > 0 ? this.#takePartial() : [], cb);
  }

  #takePartial(): Buffer[] {
    const out = [this.#label, ...this.#partial, Buffer.from('\n')];
    this.#partial = [];
    this.#partialBytes = 0;
    return out;
  }

  #emit(parts: Buffer[], cb: (err?: Error | null) => void): void {
    if (parts.length === 0) {
      cb();
      return;
    }
    if (this.#out.write(Buffer.concat(parts))) cb();
    else once(this.#out, 'drain').then(() => cb(), cb);
  }
}

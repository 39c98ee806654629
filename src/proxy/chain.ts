/**
 * The stages one direction of one connection passes through, in order: stage i's output is
 * stage i+1's input, and the last stage's output is the relay's (the destination socket). As
 * toxiproxy's link.go, but synchronous calls instead of channels: a stage that lets a chunk
 * through at once costs one function call.
 */
import type { Stage, StageContext, StageFactory, StageOutput } from './stage.js';

export class Chain {
  readonly #stages: Stage[] = [];
  /** The entry: the first stage, or the output itself when there is none. */
  readonly #head: Pick<Stage, 'write' | 'end'>;

  constructor(factories: readonly StageFactory[], sink: StageOutput, ctx: StageContext) {
    let next: StageOutput = sink;
    for (let i = factories.length - 1; i >= 0; i--) {
      const stage = factories[i]!(next, ctx);
      this.#stages.unshift(stage);
      const to = stage;
      next = { push: (c) => to.write(c), end: () => to.end(), close: () => sink.close(), reset: () => sink.reset() };
    }
    this.#head = this.#stages[0] ?? { write: (c: Buffer) => sink.push(c), end: () => sink.end() };
  }

  /** Starts the stages' connection-wide timers. */
  start(): void {
    for (const s of this.#stages) s.start?.();
  }

  write(chunk: Buffer): void {
    this.#head.write(chunk);
  }

  end(): void {
    this.#head.end();
  }

  /** Bytes held by all stages together. */
  get buffered(): number {
    let n = 0;
    for (const s of this.#stages) n += s.buffered;
    return n;
  }

  destroy(): void {
    for (const s of this.#stages) s.destroy();
  }
}

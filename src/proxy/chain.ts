/**
 * The stages one direction of one connection passes through, in order: stage i's output is
 * stage i+1's input, and the last stage's output is the relay's (the destination socket). As
 * toxiproxy's link.go, but synchronous calls instead of channels: a stage that lets a chunk
 * through at once costs one function call.
 *
 * Stages can be added and removed while bytes flow (a toxic added to or removed from a live
 * connection, as toxiproxy does): each stage's output looks up the stage after it when it
 * passes something on, so a stage taken out of the middle hands what it holds (`flush`) to the
 * stage that followed it, and what comes after goes straight there, in order.
 */
import type { Stage, StageContext, StageFactory, StageOutput } from './stage.js';

interface Node {
  readonly name: string;
  stage: Stage;
  next: Node | undefined;
}

export class Chain {
  readonly #sink: StageOutput;
  readonly #ctx: StageContext;
  #first: Node | undefined;
  #started = false;
  #destroyed = false;

  /** `factories`: stages in order (named `#0`, `#1`, ...; see `add` for named ones). */
  constructor(factories: readonly StageFactory[], sink: StageOutput, ctx: StageContext) {
    this.#sink = sink;
    this.#ctx = ctx;
    factories.forEach((f, i) => this.add(`#${i}`, f));
  }

  /** Starts the stages' connection-wide timers (a stage added later starts when added). */
  start(): void {
    this.#started = true;
    for (let n = this.#first; n; n = n.next) n.stage.start?.();
  }

  write(chunk: Buffer): void {
    if (this.#first) this.#first.stage.write(chunk);
    else this.#sink.push(chunk);
  }

  end(): void {
    if (this.#first) this.#first.stage.end();
    else this.#sink.end();
  }

  /** Whether there are no stages (what is written goes straight to the output). */
  get empty(): boolean {
    return this.#first === undefined;
  }

  /** The stages' names, in order. */
  get names(): string[] {
    const out: string[] = [];
    for (let n = this.#first; n; n = n.next) out.push(n.name);
    return out;
  }

  /**
   * Adds a stage named `name`, before the first stage whose name is in `before` (at the end when
   * there is none). Ignored once the chain is destroyed.
   */
  add(name: string, factory: StageFactory, before: readonly string[] = []): void {
    if (this.#destroyed) return;
    const sink = this.#sink;
    const node: Node = { name, stage: undefined as unknown as Stage, next: undefined };
    const out: StageOutput = {
      push: (c) => (node.next ? node.next.stage.write(c) : sink.push(c)),
      end: () => (node.next ? node.next.stage.end() : sink.end()),
      close: () => sink.close(),
      reset: () => sink.reset(),
    };
    node.stage = factory(out, this.#ctx);
    let prev: Node | undefined;
    let at = this.#first;
    while (at && !before.includes(at.name)) {
      prev = at;
      at = at.next;
    }
    node.next = at;
    if (prev) prev.next = node;
    else this.#first = node;
    if (this.#started) node.stage.start?.();
  }

  /**
   * Removes the stage named `name`: what it holds is passed on at once (as toxiproxy does when a
   * toxic is removed), then it is destroyed. Returns whether there was one.
   */
  remove(name: string): boolean {
    let prev: Node | undefined;
    let n = this.#first;
    while (n && n.name !== name) {
      prev = n;
      n = n.next;
    }
    if (!n) return false;
    if (prev) prev.next = n.next;
    else this.#first = n.next;
    // Its output still points at the stage after it: what it holds goes there, ahead of anything new.
    if (!this.#destroyed) n.stage.flush?.();
    n.stage.destroy();
    return true;
  }

  /** Bytes held by all stages together. */
  get buffered(): number {
    let b = 0;
    for (let n = this.#first; n; n = n.next) b += n.stage.buffered;
    return b;
  }

  destroy(): void {
    this.#destroyed = true;
    for (let n = this.#first; n; n = n.next) n.stage.destroy();
  }
}

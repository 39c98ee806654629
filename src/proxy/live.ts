/**
 * A proxy's toxics and the live connections they act on. As in toxiproxy, a toxic added,
 * changed or removed reaches every connection already open, not only the ones that come after:
 * each connection (a TCP connection, or a UDP client's session) registers its two chains here,
 * and every change is applied to each of them. Each connection draws each toxic's `toxicity`
 * for itself when the toxic reaches it (and again when it is changed). A removed toxic passes
 * on what it holds at once (latency's delayed chunks, slow_close's end): nothing is lost or
 * reordered by taking a toxic away.
 */
import { SocketkitError } from '../core/errors.js';
import type { Chain } from './chain.js';
import { toxicConfig, toxicStage } from './spec.js';
import type { ToxicConfig } from './toxic.js';

/** One connection's two directions, as the toxics see them. */
export interface ToxicLink {
  /** Client to upstream (toxiproxy's `upstream` stream). */
  readonly up: Chain;
  /** Upstream to client (`downstream`). */
  readonly down: Chain;
  /** Draws toxicity. */
  readonly random: () => number;
}

/** What a change to a toxic may say; what it leaves out stays as it was. */
export interface ToxicChange {
  readonly stream?: string;
  readonly toxicity?: number;
  readonly attributes?: Record<string, unknown>;
}

export class ToxicSet {
  readonly #toxics: ToxicConfig[] = [];
  readonly #links = new Set<ToxicLink>();
  readonly #udp: boolean;

  /** Checks `initial` (ERR_BAD_TOXIC; a name given twice: ERR_TOXIC_EXISTS). `udp`: for a UDP proxy. */
  constructor(initial: readonly unknown[] = [], udp = false) {
    this.#udp = udp;
    for (const t of initial) {
      const c = toxicConfig(t, udp);
      if (this.#find(c.name) >= 0) throw new SocketkitError('ERR_TOXIC_EXISTS', `toxic '${c.name}' given twice`);
      this.#toxics.push(c);
    }
  }

  get list(): readonly ToxicConfig[] {
    return [...this.#toxics];
  }

  /** Connections the toxics act on now. */
  get links(): number {
    return this.#links.size;
  }

  /** A new connection gets the toxics (each by its toxicity) and every later change; returns what detaches it. */
  attach(link: ToxicLink): () => void {
    for (const c of this.#toxics) this.#place(link, c);
    this.#links.add(link);
    return () => this.#links.delete(link);
  }

  /** Adds a toxic, to live connections too (checked: ERR_BAD_TOXIC; a duplicate name: ERR_TOXIC_EXISTS). */
  add(input: unknown): ToxicConfig {
    const c = toxicConfig(input, this.#udp);
    if (this.#find(c.name) >= 0) throw new SocketkitError('ERR_TOXIC_EXISTS', `toxic '${c.name}' already exists`);
    this.#toxics.push(c);
    for (const l of this.#links) this.#place(l, c);
    return c;
  }

  /** Changes a toxic's attributes, stream or toxicity, on live connections too (ERR_TOXIC_NOT_FOUND). */
  update(name: string, change: ToxicChange): ToxicConfig {
    const i = this.#find(name);
    if (i < 0) throw new SocketkitError('ERR_TOXIC_NOT_FOUND', `no toxic '${name}'`);
    const old = this.#toxics[i]!;
    const c = toxicConfig(
      { name, type: old.type, stream: change.stream ?? old.stream, toxicity: change.toxicity ?? old.toxicity, attributes: { ...old.attributes, ...change.attributes } },
      this.#udp,
    );
    this.#toxics[i] = c;
    for (const l of this.#links) {
      this.#unplace(l, name);
      this.#place(l, c);
    }
    return c;
  }

  /** Removes a toxic from the proxy and from every live connection (ERR_TOXIC_NOT_FOUND). */
  remove(name: string): void {
    const i = this.#find(name);
    if (i < 0) throw new SocketkitError('ERR_TOXIC_NOT_FOUND', `no toxic '${name}'`);
    this.#toxics.splice(i, 1);
    for (const l of this.#links) this.#unplace(l, name);
  }

  /** Removes every toxic (toxiproxy's /reset). */
  clear(): void {
    for (const c of [...this.#toxics]) this.remove(c.name);
  }

  #find(name: string): number {
    return this.#toxics.findIndex((t) => t.name === name);
  }

  /** Puts `c` into the link's chain for its stream (if the link draws it), in the proxy's order of toxics. */
  #place(link: ToxicLink, c: ToxicConfig): void {
    if (c.toxicity < 1 && link.random() >= c.toxicity) return;
    const i = this.#find(c.name);
    const after = this.#toxics.slice(i + 1).map((t) => t.name);
    (c.stream === 'upstream' ? link.up : link.down).add(c.name, toxicStage(c), after);
  }

  #unplace(link: ToxicLink, name: string): void {
    link.up.remove(name);
    link.down.remove(name);
  }
}

/**
 * `startProxy()`: a TCP (or Unix socket) proxy in this process, for other projects' test suites.
 * Its toxics can be added, changed and removed while it runs; a change applies to connections
 * accepted after it (a live connection keeps the stages it was given). Toxics passed to
 * `startProxy` are in place before the first connection is accepted.
 */
import type { Endpoint } from '../net/endpoint.js';
import { SocketkitError } from '../core/errors.js';
import { startServer, type ManagedServer, type ManagedServerOptions } from '../server/server.js';
import { relayProtocol, ProxyConnection, type RelayOptions } from './relay.js';
import { chooseToxics, toxicConfig } from './spec.js';
import type { ToxicConfig } from './toxic.js';

export interface ProxyOptions extends Omit<ManagedServerOptions, 'protocol'>, Omit<RelayOptions, 'upstream' | 'toxics' | 'connections'> {
  /** Toxics in place from the start: toxiproxy's JSON shape (`{type, stream?, toxicity?, attributes?}`). */
  readonly toxics?: readonly unknown[];
}

/** A running proxy. */
export class ProxyServer {
  readonly server: ManagedServer;
  readonly connections: ReadonlySet<ProxyConnection>;
  readonly #toxics: ToxicConfig[];

  /** @internal use `startProxy()` */
  constructor(server: ManagedServer, connections: ReadonlySet<ProxyConnection>, toxics: ToxicConfig[]) {
    this.server = server;
    this.connections = connections;
    this.#toxics = toxics;
  }

  /** Where it listens (the real port when 0 was asked for). */
  get endpoint(): Endpoint {
    return this.server.endpoint;
  }

  get toxics(): readonly ToxicConfig[] {
    return [...this.#toxics];
  }

  /** Adds a toxic (checked: ERR_BAD_TOXIC; a duplicate name: ERR_TOXIC_EXISTS). */
  addToxic(toxic: unknown): ToxicConfig {
    const c = toxicConfig(toxic);
    if (this.#toxics.some((t) => t.name === c.name)) throw new SocketkitError('ERR_TOXIC_EXISTS', `toxic '${c.name}' already exists`);
    this.#toxics.push(c);
    return c;
  }

  /** Changes a toxic's attributes, stream or toxicity (ERR_TOXIC_NOT_FOUND when there is none of that name). */
  updateToxic(name: string, change: { readonly stream?: string; readonly toxicity?: number; readonly attributes?: Record<string, unknown> }): ToxicConfig {
    const i = this.#toxics.findIndex((t) => t.name === name);
    if (i < 0) throw new SocketkitError('ERR_TOXIC_NOT_FOUND', `no toxic '${name}'`);
    const old = this.#toxics[i]!;
    const c = toxicConfig({ name, type: old.type, stream: change.stream ?? old.stream, toxicity: change.toxicity ?? old.toxicity, attributes: { ...old.attributes, ...change.attributes } });
    this.#toxics[i] = c;
    return c;
  }

  /** Removes a toxic (ERR_TOXIC_NOT_FOUND when there is none of that name). */
  removeToxic(name: string): void {
    const i = this.#toxics.findIndex((t) => t.name === name);
    if (i < 0) throw new SocketkitError('ERR_TOXIC_NOT_FOUND', `no toxic '${name}'`);
    this.#toxics.splice(i, 1);
  }

  /** Stops accepting; live connections get `graceMs` to finish, then are closed. Idempotent. */
  close(graceMs = 0): Promise<void> {
    return this.server.close(graceMs);
  }
}

/** Starts a proxy listening on `listen` that relays every connection to `upstream`. */
export async function startProxy(listen: Endpoint, upstream: Endpoint, options: ProxyOptions = {}): Promise<ProxyServer> {
  const { toxics: initial, upstreamTransport, connectTimeoutMs, highWaterMark, dump, random, onProxyEvent, ...server } = options;
  const toxics = (initial ?? []).map((t) => toxicConfig(t));
  const names = new Set<string>();
  for (const t of toxics) {
    if (names.has(t.name)) throw new SocketkitError('ERR_TOXIC_EXISTS', `toxic '${t.name}' given twice`);
    names.add(t.name);
  }
  const connections = new Set<ProxyConnection>();
  const rnd = random ?? Math.random;
  const protocol = relayProtocol({
    upstream,
    connections,
    toxics: () => chooseToxics(toxics, rnd),
    random: rnd,
    ...(upstreamTransport ? { upstreamTransport } : {}),
    ...(connectTimeoutMs !== undefined ? { connectTimeoutMs } : {}),
    ...(highWaterMark !== undefined ? { highWaterMark } : {}),
    ...(dump ? { dump } : {}),
    ...(onProxyEvent ? { onProxyEvent } : {}),
  });
  const s = await startServer(listen, { ...server, protocol });
  return new ProxyServer(s, connections, toxics);
}

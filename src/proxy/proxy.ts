/**
 * `startProxy()`: a TCP (or Unix socket) proxy in this process, for other projects' test suites.
 * Its toxics can be added, changed and removed while it runs, and, as in toxiproxy, a change
 * reaches the connections already open as well as the ones to come. Toxics passed to
 * `startProxy` are in place before the first connection is accepted.
 */
import type { Endpoint } from '../net/endpoint.js';
import { startServer, type ManagedServer, type ManagedServerOptions } from '../server/server.js';
import { relayProtocol, ProxyConnection, type RelayOptions } from './relay.js';
import { ToxicSet, type ToxicChange } from './live.js';
import type { ToxicConfig } from './toxic.js';

export interface ProxyOptions extends Omit<ManagedServerOptions, 'protocol'>, Omit<RelayOptions, 'upstream' | 'toxics' | 'connections'> {
  /** Toxics in place from the start: toxiproxy's JSON shape (`{type, stream?, toxicity?, attributes?}`). */
  readonly toxics?: readonly unknown[];
}

/** A running proxy. */
export class ProxyServer {
  readonly server: ManagedServer;
  readonly connections: ReadonlySet<ProxyConnection>;
  readonly #toxics: ToxicSet;

  /** @internal use `startProxy()` */
  constructor(server: ManagedServer, connections: ReadonlySet<ProxyConnection>, toxics: ToxicSet) {
    this.server = server;
    this.connections = connections;
    this.#toxics = toxics;
  }

  /** Where it listens (the real port when 0 was asked for). */
  get endpoint(): Endpoint {
    return this.server.endpoint;
  }

  get toxics(): readonly ToxicConfig[] {
    return this.#toxics.list;
  }

  /** Adds a toxic, to open connections too (checked: ERR_BAD_TOXIC; a duplicate name: ERR_TOXIC_EXISTS). */
  addToxic(toxic: unknown): ToxicConfig {
    return this.#toxics.add(toxic);
  }

  /** Changes a toxic's attributes, stream or toxicity, on open connections too (ERR_TOXIC_NOT_FOUND when there is none of that name). */
  updateToxic(name: string, change: ToxicChange): ToxicConfig {
    return this.#toxics.update(name, change);
  }

  /** Removes a toxic, from open connections too: what it holds is passed on at once (ERR_TOXIC_NOT_FOUND when there is none of that name). */
  removeToxic(name: string): void {
    this.#toxics.remove(name);
  }

  /** Stops accepting; live connections get `graceMs` to finish, then are closed. Idempotent. */
  close(graceMs = 0): Promise<void> {
    return this.server.close(graceMs);
  }
}

/** Starts a proxy listening on `listen` that relays every connection to `upstream`. */
export async function startProxy(listen: Endpoint, upstream: Endpoint, options: ProxyOptions = {}): Promise<ProxyServer> {
  const { toxics: initial, upstreamTransport, connectTimeoutMs, highWaterMark, dump, random, onProxyEvent, ...server } = options;
  const toxics = new ToxicSet(initial ?? []);
  const connections = new Set<ProxyConnection>();
  const protocol = relayProtocol({
    upstream,
    connections,
    toxics,
    ...(random ? { random } : {}),
    ...(upstreamTransport ? { upstreamTransport } : {}),
    ...(connectTimeoutMs !== undefined ? { connectTimeoutMs } : {}),
    ...(highWaterMark !== undefined ? { highWaterMark } : {}),
    ...(dump ? { dump } : {}),
    ...(onProxyEvent ? { onProxyEvent } : {}),
  });
  const s = await startServer(listen, { ...server, protocol });
  return new ProxyServer(s, connections, toxics);
}

/**
 * `startProxy()`: a TCP (or Unix socket) proxy in this process, for other projects' test suites.
 * Its toxics can be added, changed and removed while it runs, and, as in toxiproxy, a change
 * reaches the connections already open as well as the ones to come. Toxics passed to
 * `startProxy` are in place before the first connection is accepted.
 */
import type { Endpoint } from '../net/endpoint.js';
import { startServer, type ManagedServer, type ManagedServerOptions } from '../server/server.js';
import type { ServerStats } from '../server/stats.js';
import { relayProtocol, ProxyConnection, type RelayOptions } from './relay.js';
import { ToxicSet, type ToxicChange } from './live.js';
import type { ToxicConfig } from './toxic.js';
import { SocketkitError } from '../core/errors.js';
import { NativeRelay, nativeRelayStatus, type NativeRelayTuning } from '../native/proxy-engine.js';
import type { Socket } from 'node:net';
import { EventEmitter, once } from 'node:events';

export interface ProxyOptions extends Omit<ManagedServerOptions, 'protocol' | 'activity'>, Omit<RelayOptions, 'upstream' | 'toxics' | 'connections' | 'engine'> {
  /** Toxics in place from the start: toxiproxy's JSON shape (`{type, stream?, toxicity?, attributes?}`). */
  readonly toxics?: readonly unknown[];
  /**
   * 'native': connections that connect while no toxic is in place, with no dump and no TLS, are
   * relayed by the native engine (splice(2) on engine threads; see src/native/proxy-engine.ts),
   * the others here; toxics added later reach only the connections relayed here. 'js' (the
   * default): every connection is relayed here and follows every toxic change.
   * ERR_INVALID_ARG when 'native' is asked for and the native helper lacks the engine.
   */
  readonly engine?: 'native' | 'js';
  /** How the native engine runs (threads, pipe size, turn): for tests and benchmarks; the defaults suit. */
  readonly engineTuning?: NativeRelayTuning;
}

/** A running proxy. */
export class ProxyServer {
  readonly server: ManagedServer;
  readonly connections: ReadonlySet<ProxyConnection>;
  readonly #toxics: ToxicSet;
  readonly #engine: NativeRelay | undefined;
  readonly #reported: EventEmitter;

  /** @internal use `startProxy()` */
  constructor(server: ManagedServer, connections: ReadonlySet<ProxyConnection>, toxics: ToxicSet, engine: NativeRelay | undefined, reported: EventEmitter) {
    this.server = server;
    this.connections = connections;
    this.#toxics = toxics;
    this.#engine = engine;
    this.#reported = reported;
  }

  /** Which engine relays connections that need nothing from JavaScript. */
  get engine(): 'native' | 'js' {
    return this.#engine ? 'native' : 'js';
  }

  /** The managed server's statistics (the bytes relayed by the native engine included). */
  stats(): ServerStats {
    return this.server.stats();
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
  async close(graceMs = 0): Promise<void> {
    await this.server.close(graceMs);
    // Every client socket is closed; the upstream sockets close, and the engine reports the ends
    // of the connections it relayed, a moment later: each connection's close event comes first.
    const signal = AbortSignal.timeout(CLOSE_REPORTS_MS);
    try {
      while (this.connections.size > 0) await once(this.#reported, 'reported', { signal });
    } catch {
      // A connection that did not report in time: stop anyway.
    }
    this.#engine?.stop();
  }
}

/** How long a closing proxy waits for its connections' close events once their client sockets are closed. */
const CLOSE_REPORTS_MS = 5_000;

/** Starts a proxy listening on `listen` that relays every connection to `upstream`. */
export async function startProxy(listen: Endpoint, upstream: Endpoint, options: ProxyOptions = {}): Promise<ProxyServer> {
  const { toxics: initial, upstreamTransport, connectTimeoutMs, highWaterMark, dump, random, onProxyEvent, engine: engineName, engineTuning, ...server } = options;
  const toxics = new ToxicSet(initial ?? []);
  const connections = new Set<ProxyConnection>();
  let engine: NativeRelay | undefined;
  if (engineName === 'native') {
    const status = nativeRelayStatus();
    if (!status.available) throw new SocketkitError('ERR_INVALID_ARG', `the native engine cannot run: ${status.reason ?? 'not available'}`);
    engine = new NativeRelay(engineTuning);
  }
  // The engine's bytes do not show in the client sockets' counters: the idle sweep and the statistics get them here.
  const byClient = new WeakMap<Socket, ProxyConnection>();
  const reported = new EventEmitter();
  const protocol = relayProtocol({
    upstream,
    connections,
    reported,
    toxics,
    ...(engine ? { engine, byClient } : {}),
    ...(random ? { random } : {}),
    ...(upstreamTransport ? { upstreamTransport } : {}),
    ...(connectTimeoutMs !== undefined ? { connectTimeoutMs } : {}),
    ...(highWaterMark !== undefined ? { highWaterMark } : {}),
    ...(dump ? { dump } : {}),
    ...(onProxyEvent ? { onProxyEvent } : {}),
  });
  let s: ManagedServer;
  try {
    s = await startServer(listen, {
      ...server,
      protocol,
      ...(engine ? { activity: { progress: () => 0, busy: () => false, moved: (socket: Socket) => byClient.get(socket)?.movedOffSocket() ?? { read: 0, written: 0 } } } : {}),
    });
  } catch (err) {
    engine?.stop();
    throw err;
  }
  return new ProxyServer(s, connections, toxics, engine, reported);
}

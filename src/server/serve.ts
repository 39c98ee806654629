/**
 * Running a managed server as a long-lived process: in this process, or as a cluster of worker
 * processes behind one address, with periodic statistics and a graceful stop. The echo server
 * uses it; any server built on `startServer()` can.
 *
 * The same call plays whichever role the process has:
 * - single: starts the server here, runs until `shutdown`, closes gracefully;
 * - cluster primary (`workers > 1`): starts the workers, prints their summed statistics, and on
 *   `shutdown` stops them gracefully and collects their final totals;
 * - cluster worker (started by a primary): starts the server with its share of the connection
 *   limit, answers the primary's statistics requests, and stops when told to (or on its own
 *   SIGINT/SIGTERM, which a terminal's Ctrl-C sends to every process of the group).
 */
import { clearStaleUnixSocket } from '../net/listen.js';
import type { Endpoint } from '../net/endpoint.js';
import { formatEndpoint } from '../net/endpoint.js';
import { shareOfLimit } from './limits.js';
import { IdleCompactor, keepYoungGenerationSmall } from './memory.js';
import { startCluster, workerLink, type ClusterEvent } from './cluster.js';
import { ratesBetween, ZERO_STATS, type ServerStats, type StatsRates } from './stats.js';
import { ManagedServer } from './server.js';

/** What `serve()` needs of a server: a ManagedServer, or another engine's server with the same face. */
export interface ServedServer {
  readonly endpoint: Endpoint;
  stats(): ServerStats;
  close(graceMs?: number): Promise<void>;
}

/** How to start one server (here, or in a worker). */
export interface StartOneOptions {
  /** This process's share of the connection limit (undefined: no limit). */
  readonly maxConnections: number | undefined;
  /** False in cluster workers (the primary clears a stale Unix socket once). */
  readonly clearStaleUnixSocket: boolean;
}

export interface ServeOptions {
  /** The address (for a Unix socket, the primary clears a stale file before the workers start). */
  readonly endpoint: Endpoint;
  /** Starts one server; called once per process. */
  readonly start: (options: StartOneOptions) => Promise<ServedServer>;
  /** Worker processes; 1 serves in this process. */
  readonly workers: number;
  /** With workers: the script and arguments a worker runs (it must call `serve()` too). */
  readonly worker?: { readonly exec: string; readonly args: readonly string[] };
  /** Most connections open at once, across all workers (each gets an even share). */
  readonly maxConnections?: number;
  /** On stop, how long live connections may finish, ms. */
  readonly graceMs: number;
  /** Stop request (SIGINT/SIGTERM). */
  readonly shutdown: AbortSignal;
  /** Report statistics this often, ms (none when undefined). */
  readonly statsIntervalMs?: number;
  /**
   * Keep server processes small (see memory.ts): V8's young generation capped, and one full
   * collection after a burst of connections once the server is quiet. Default false: it sets
   * process-wide V8 flags at run time (--semi-space-growth-factor, --expose-gc,
   * --compact-on-every-full-gc), which Node documents may behave unpredictably; a library must
   * not do that to the process it is loaded in. Without it, 10,000 idle echo connections cost
   * about the same once V8's own memory reducer has run (see the README's measurements).
   */
  readonly smallHeap?: boolean;
  readonly onListening?: (address: string, workers: number) => void;
  readonly onStats?: (stats: ServerStats, rates: StatsRates) => void;
  readonly onStopping?: (connections: number, graceMs: number) => void;
  readonly onClusterEvent?: (e: ClusterEvent) => void;
}

/** How serving ended. */
export interface ServeResult {
  readonly role: 'single' | 'primary' | 'worker';
  /** Totals (a worker: its own; a primary: the cluster's). */
  readonly stats: ServerStats;
  /** Average rates since start. */
  readonly rates: StatsRates;
}

/** The idle compactor of a server process, when `smallHeap` is on. */
function compactor(server: ServedServer, on: boolean | undefined): IdleCompactor | undefined {
  if (on !== true || !(server instanceof ManagedServer)) return undefined;
  keepYoungGenerationSmall();
  return new IdleCompactor(() => ({ accepted: server.listener.counters.accepted, connections: server.listener.connections.size, roundTrips: server.counters.roundTrips }));
}

function untilAborted(...signals: AbortSignal[]): Promise<void> {
  return new Promise<void>((resolve) => {
    if (signals.some((s) => s.aborted)) {
      resolve();
      return;
    }
    const done = (): void => {
      for (const s of signals) s.removeEventListener('abort', done);
      resolve();
    };
    for (const s of signals) s.addEventListener('abort', done, { once: true });
  });
}

/**
 * `ready`'s value, or undefined if `signal` aborts first (a stop while the workers start). The
 * abort listener goes as soon as either settles: nothing stays attached to the long-lived signal
 * (as a `Promise.race` with `untilAborted()` would leave it until shutdown).
 */
function readyUnlessAborted<T>(ready: Promise<T>, signal: AbortSignal): Promise<T | undefined> {
  if (signal.aborted) return Promise.resolve(undefined);
  return new Promise<T | undefined>((resolve, reject) => {
    const onAbort = (): void => resolve(undefined);
    signal.addEventListener('abort', onAbort, { once: true });
    ready.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}

/** A ticker that reports statistics and the rates since its previous report. */
function statsTicker(intervalMs: number | undefined, read: () => ServerStats | Promise<ServerStats>, report: ServeOptions['onStats']): () => void {
  if (intervalMs === undefined || !report) return () => undefined;
  let last = ZERO_STATS;
  let lastAt = performance.now();
  let busy = false;
  const timer = setInterval(() => {
    if (busy) return; // a slow cluster answer: skip a beat rather than pile up requests
    busy = true;
    void Promise.resolve(read())
      .then((stats) => {
        const now = performance.now();
        report(stats, ratesBetween(last, stats, now - lastAt));
        last = stats;
        lastAt = now;
      })
      // A reporter that throws (or a cluster answer that failed) costs this beat, not the
      // process: an unhandled rejection here would end the server.
      .catch(() => undefined)
      .finally(() => {
        busy = false;
      });
  }, intervalMs);
  return () => clearInterval(timer);
}

/** Serves until `shutdown`, in whichever role this process has; resolves with the totals. */
export async function serve(options: ServeOptions): Promise<ServeResult> {
  const started = performance.now();
  const link = workerLink();
  if (link) {
    // ---- Cluster worker.
    if (options.smallHeap === true) keepYoungGenerationSmall(); // before the first connection
    const max = options.maxConnections !== undefined ? shareOfLimit(options.maxConnections, link.count, link.index) : undefined;
    let server: ServedServer;
    try {
      server = await options.start({ maxConnections: max, clearStaleUnixSocket: false });
    } catch (err) {
      link.failed(err);
      throw err;
    }
    const compact = compactor(server, options.smallHeap);
    link.serveStats(() => server.stats());
    link.listening(formatEndpoint(server.endpoint));
    await untilAborted(options.shutdown, link.stopSignal);
    compact?.stop();
    await server.close(link.stopGraceMs ?? options.graceMs);
    const stats = server.stats();
    await link.final(stats);
    return { role: 'worker', stats, rates: ratesBetween(ZERO_STATS, stats, performance.now() - started) };
  }

  if (options.workers > 1) {
    // ---- Cluster primary.
    if (!options.worker) throw new Error('serve(): workers > 1 needs `worker` (what a worker process runs)');
    if (options.endpoint.kind === 'unix') await clearStaleUnixSocket(options.endpoint.path);
    const primary = startCluster({
      workers: options.workers,
      exec: options.worker.exec,
      args: options.worker.args,
      ...(options.onClusterEvent ? { onEvent: options.onClusterEvent } : {}),
    });
    try {
      const address = await readyUnlessAborted(primary.ready(), options.shutdown);
      if (address !== undefined) options.onListening?.(address, options.workers);
    } catch (err) {
      await primary.stop(0);
      throw err;
    }
    const stopTicker = statsTicker(options.statsIntervalMs, () => primary.stats(), options.onStats);
    await untilAborted(options.shutdown);
    stopTicker();
    const open = (await primary.stats()).connections;
    options.onStopping?.(open, options.graceMs);
    const stats = await primary.stop(options.graceMs);
    return { role: 'primary', stats, rates: ratesBetween(ZERO_STATS, stats, performance.now() - started) };
  }

  // ---- Single process.
  if (options.smallHeap === true) keepYoungGenerationSmall(); // before the first connection
  const server = await options.start({ maxConnections: options.maxConnections, clearStaleUnixSocket: true });
  const compact = compactor(server, options.smallHeap);
  options.onListening?.(formatEndpoint(server.endpoint), 1);
  const stopTicker = statsTicker(options.statsIntervalMs, () => server.stats(), options.onStats);
  await untilAborted(options.shutdown);
  stopTicker();
  compact?.stop();
  options.onStopping?.(server.stats().connections, options.graceMs);
  await server.close(options.graceMs);
  const stats = server.stats();
  return { role: 'single', stats, rates: ratesBetween(ZERO_STATS, stats, performance.now() - started) };
}

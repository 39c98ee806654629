/**
 * Cluster workers: one server process per core (`--workers N|auto`), behind one address.
 *
 * The primary forks the workers (Node's cluster: the primary owns the listening socket and hands
 * each new connection to a worker in turn), asks them for statistics over IPC and adds them up,
 * and on SIGINT/SIGTERM tells every worker to stop gracefully and collects their final totals.
 * A worker that dies unexpectedly is reported and replaced. Workers exit on their own if the
 * primary goes away (Node's cluster does that when the IPC channel closes).
 *
 * Messages carry a `socketkit` key so they never mix with anything else on the channel.
 */
import cluster, { type Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import { SocketkitError, asErrorCode, toSocketkitError, type ErrorCode } from '../core/errors.js';
import { sumStats, ZERO_STATS, type ServerStats } from './stats.js';
import { DEFAULT_WORKER_EXIT_MARGIN_MS, DEFAULT_WORKER_RESTART_DELAY_MS, DEFAULT_WORKER_STATS_TIMEOUT_MS } from './defaults.js';

/** Environment variables a worker is started with. */
const ENV_INDEX = 'SOCKETKIT_WORKER_INDEX';
const ENV_COUNT = 'SOCKETKIT_WORKERS';

type ToWorker = { readonly socketkit: 'stats?'; readonly seq: number } | { readonly socketkit: 'stop'; readonly graceMs: number };

type ToPrimary =
  | { readonly socketkit: 'listening'; readonly address: string }
  | { readonly socketkit: 'stats'; readonly seq: number; readonly stats: ServerStats }
  | { readonly socketkit: 'final'; readonly stats: ServerStats }
  | { readonly socketkit: 'failed'; readonly code: ErrorCode; readonly message: string };

function isToPrimary(m: unknown): m is ToPrimary {
  return typeof m === 'object' && m !== null && typeof (m as { socketkit?: unknown }).socketkit === 'string';
}

/** `auto` (one per available core) or a whole number from 1. */
export function resolveWorkerCount(text: string): number {
  if (text === 'auto') return availableParallelism();
  if (!/^\d+$/.test(text) || Number(text) < 1 || Number(text) > 1024) {
    throw new SocketkitError('ERR_INVALID_ARG', `worker count '${text}' is not 'auto' or a whole number from 1 to 1024`);
  }
  return Number(text);
}

/** What the primary reports about its workers. */
export type ClusterEvent =
  | { readonly event: 'worker-exit'; readonly worker: number; readonly pid: number; readonly code: number | null; readonly signal: string | null }
  | { readonly event: 'worker-restart'; readonly worker: number; readonly pid: number }
  | { readonly event: 'worker-failed'; readonly worker: number; readonly code: ErrorCode; readonly message: string };

export interface ClusterOptions {
  /** How many workers. */
  readonly workers: number;
  /** The script every worker runs. */
  readonly exec: string;
  /** Its arguments. */
  readonly args: readonly string[];
  /** Node options for the workers (default: the primary's). */
  readonly execArgv?: readonly string[];
  readonly onEvent?: (e: ClusterEvent) => void;
}

interface Slot {
  readonly index: number;
  worker: Worker;
  /** The last statistics it reported. */
  last: ServerStats;
  exited: boolean;
  /** Gave up on it (failed to start after the cluster was up). */
  retired: boolean;
  /** It sent its final totals: it stopped on purpose (its own SIGINT/SIGTERM), not a crash. */
  finished: boolean;
}

/** The primary of a running cluster. */
export class ClusterPrimary {
  readonly workers: number;
  readonly #options: ClusterOptions;
  readonly #slots: Slot[] = [];
  /** Totals of workers that died and were replaced (their counters would otherwise be lost). */
  #departed: ServerStats[] = [];
  #seq = 0;
  #stopping = false;
  #ready: Promise<string>;
  #stopped: Promise<ServerStats> | undefined;
  readonly #waiters = new Map<number, { pending: Set<number>; resolve: () => void }>();

  /** @internal use `startCluster()` */
  constructor(options: ClusterOptions) {
    this.workers = options.workers;
    this.#options = options;
    cluster.setupPrimary({
      exec: options.exec,
      args: [...options.args],
      ...(options.execArgv ? { execArgv: [...options.execArgv] } : {}),
    });
    const listening: Array<Promise<string>> = [];
    for (let i = 0; i < options.workers; i++) listening.push(this.#fork(i));
    this.#ready = Promise.all(listening).then((addresses) => addresses[0] ?? '');
    // A start failure is reported through ready(); this keeps it from being "unhandled" meanwhile.
    this.#ready.catch(() => undefined);
  }

  #fork(index: number, replacing?: Slot): Promise<string> {
    const worker = cluster.fork({ [ENV_INDEX]: String(index), [ENV_COUNT]: String(this.workers) });
    const slot: Slot = replacing ?? { index, worker, last: ZERO_STATS, exited: false, retired: false, finished: false };
    slot.worker = worker;
    slot.last = ZERO_STATS;
    slot.exited = false;
    slot.finished = false;
    worker.on('error', ignore); // IPC errors: the worker's 'exit' tells the story
    if (!replacing) this.#slots.push(slot);
    return new Promise<string>((resolve, reject) => {
      let started = false;
      worker.on('message', (m: unknown) => {
        // A message still in flight from a worker that has died (its slot may be a replacement's now).
        if (!isToPrimary(m) || slot.worker !== worker || slot.exited) return;
        switch (m.socketkit) {
          case 'listening':
            started = true;
            resolve(m.address);
            break;
          case 'stats':
            slot.last = m.stats;
            this.#answered(m.seq, index);
            break;
          case 'final':
            slot.last = m.stats;
            slot.finished = true;
            break;
          case 'failed':
            if (!started) reject(new SocketkitError(asErrorCode(m.code), m.message));
            slot.retired = true;
            this.#options.onEvent?.({ event: 'worker-failed', worker: index, code: m.code, message: m.message });
            break;
        }
      });
      worker.on('exit', (code, signal) => {
        slot.exited = true;
        for (const w of this.#waiters.values()) if (w.pending.delete(index) && w.pending.size === 0) w.resolve();
        if (!started) {
          reject(new SocketkitError('ERR_WORKER_FAILED', `worker ${index} exited before listening (code ${code ?? signal})`));
          return;
        }
        // Stopping, or stopped by a signal of its own (Ctrl-C reaches every process of the group): not a crash.
        if (this.#stopping || slot.finished) return;
        this.#options.onEvent?.({ event: 'worker-exit', worker: index, pid: worker.process.pid ?? 0, code, signal });
        if (slot.retired) {
          this.#depart(slot);
          return;
        }
        // Keep what it counted, then replace it after a pause (a worker that dies at once must not spin).
        this.#depart(slot);
        setTimeout(() => {
          if (this.#stopping) return;
          this.#fork(index, slot).then(
            () => this.#options.onEvent?.({ event: 'worker-restart', worker: index, pid: slot.worker.process.pid ?? 0 }),
            () => undefined,
          );
        }, DEFAULT_WORKER_RESTART_DELAY_MS).unref();
      });
    });
  }

  /**
   * A worker that died: its totals move to the departed (once, and out of its slot, so the
   * slot's replacement starts from zero and nothing is counted twice), and its open
   * connections leave the count: they died with it.
   */
  #depart(slot: Slot): void {
    this.#departed.push({ ...slot.last, connections: 0 });
    slot.last = ZERO_STATS;
  }

  #answered(seq: number, index: number): void {
    const w = this.#waiters.get(seq);
    if (w && w.pending.delete(index) && w.pending.size === 0) w.resolve();
  }

  /** Resolves with the address once every worker listens; rejects (coded) if one cannot start. */
  ready(): Promise<string> {
    return this.#ready;
  }

  /** Asks every live worker for its statistics (waiting at most ~1 s) and adds them up. */
  async stats(timeoutMs: number = DEFAULT_WORKER_STATS_TIMEOUT_MS): Promise<ServerStats> {
    const seq = ++this.#seq;
    const live = this.#slots.filter((s) => !s.exited && s.worker.isConnected());
    if (live.length > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, timeoutMs);
        const pending = new Set(live.map((s) => s.index));
        this.#waiters.set(seq, { pending, resolve: done });
        function done(): void {
          clearTimeout(timer);
          resolve();
        }
        for (const s of live) send(s.worker, { socketkit: 'stats?', seq });
      });
      this.#waiters.delete(seq);
    }
    return this.#total();
  }

  #total(): ServerStats {
    return sumStats([...this.#departed, ...this.#slots.map((s) => s.last)]);
  }

  /**
   * Graceful stop (idempotent): every worker stops accepting, lets its connections finish for
   * up to `graceMs`, and reports its final totals; a worker still running `graceMs` + 5 s later
   * is killed. Resolves with the cluster's totals.
   */
  stop(graceMs: number): Promise<ServerStats> {
    this.#stopped ??= this.#stop(graceMs);
    return this.#stopped;
  }

  async #stop(graceMs: number): Promise<ServerStats> {
    this.#stopping = true;
    const exits = this.#slots.map(
      (s) =>
        new Promise<void>((resolve) => {
          if (s.exited) {
            resolve();
            return;
          }
          const timer = setTimeout(() => s.worker.kill('SIGKILL'), graceMs + DEFAULT_WORKER_EXIT_MARGIN_MS);
          s.worker.once('exit', () => {
            clearTimeout(timer);
            resolve();
          });
          send(s.worker, { socketkit: 'stop', graceMs });
        }),
    );
    await Promise.all(exits);
    return this.#total();
  }
}

function send(worker: Worker, m: ToWorker): void {
  try {
    // With a callback, a channel closing under us (EPIPE) is reported there instead of as an 'error' event.
    if (worker.isConnected()) worker.send(m, undefined, ignore);
  } catch {
    // The worker is going away; its exit is handled elsewhere.
  }
}

function ignore(): void {
  // Nothing to do: a worker whose channel is gone is handled by its 'exit'.
}

/**
 * Starts `options.workers` workers running `options.exec`. Call `ready()` to wait until they
 * all listen. Only in a primary process.
 */
export function startCluster(options: ClusterOptions): ClusterPrimary {
  if (!cluster.isPrimary) throw new SocketkitError('ERR_INTERNAL', 'startCluster() called in a worker');
  if (!Number.isSafeInteger(options.workers) || options.workers < 1) {
    throw new SocketkitError('ERR_INVALID_ARG', `worker count must be a whole number from 1, not ${options.workers}`);
  }
  return new ClusterPrimary(options);
}

/** A worker's side of the channel to its primary. */
export class WorkerLink {
  /** This worker's number, from 0 (a replacement keeps the number of the worker it replaces). */
  readonly index: number;
  /** How many workers the cluster has. */
  readonly count: number;
  readonly #stop = new AbortController();
  #graceMs: number | undefined;
  #statsSource: (() => ServerStats) | undefined;
  #finalSent = false;

  /** @internal use `workerLink()` */
  constructor(index: number, count: number) {
    this.index = index;
    this.count = count;
    process.on('message', (m: unknown) => {
      if (typeof m !== 'object' || m === null) return;
      const msg = m as Partial<ToWorker>;
      if (msg.socketkit === 'stats?' && typeof msg.seq === 'number') {
        if (this.#statsSource) this.#send({ socketkit: 'stats', seq: msg.seq, stats: this.#statsSource() });
      } else if (msg.socketkit === 'stop') {
        this.#graceMs = typeof msg.graceMs === 'number' ? msg.graceMs : undefined;
        this.#stop.abort();
      }
    });
  }

  /** Aborted when the primary asks this worker to stop. */
  get stopSignal(): AbortSignal {
    return this.#stop.signal;
  }

  /** The grace period the primary asked for (when it asked to stop). */
  get stopGraceMs(): number | undefined {
    return this.#graceMs;
  }

  /** Tells the primary this worker listens on `address`. */
  listening(address: string): void {
    this.#send({ socketkit: 'listening', address });
  }

  /** Answers the primary's statistics requests from `read`. */
  serveStats(read: () => ServerStats): void {
    this.#statsSource = read;
  }

  /** Tells the primary this worker could not start. */
  failed(err: unknown): void {
    const e = toSocketkitError(err);
    this.#send({ socketkit: 'failed', code: e.code, message: e.message });
  }

  /** Sends the final totals and closes the channel, so the process can exit. Once only. */
  async final(stats: ServerStats): Promise<void> {
    if (this.#finalSent) return;
    this.#finalSent = true;
    await new Promise<void>((resolve) => {
      if (!process.connected || !process.send) {
        resolve();
        return;
      }
      process.send({ socketkit: 'final', stats } satisfies ToPrimary, undefined, {}, () => resolve());
    });
    if (process.connected) process.disconnect();
  }

  #send(m: ToPrimary): void {
    if (process.connected && process.send) process.send(m, undefined, {}, ignore);
  }
}

let link: WorkerLink | undefined;

/** In a socketkit cluster worker, its link to the primary; elsewhere undefined. */
export function workerLink(): WorkerLink | undefined {
  if (!cluster.isWorker) return undefined;
  const index = Number(process.env[ENV_INDEX]);
  const count = Number(process.env[ENV_COUNT]);
  if (!Number.isInteger(index) || !Number.isInteger(count)) return undefined;
  link ??= new WorkerLink(index, count);
  return link;
}

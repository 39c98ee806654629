/**
 * `runLoad` on several worker threads, each with its own event loop, connections, histograms and
 * counters, merged into one `LoadResult` as if one loop had done it all.
 *
 * The work is split: connections as evenly as they go (each thread gets at least one), and in
 * the same proportions the request count (`requests`) and the open-loop rate (`rate`), so the
 * totals are those asked for. With `startAtMs` every thread starts its measured run at the same
 * wall-clock time. Each thread sends its latencies back as a compressed HDR histogram every
 * `batchMs` (for an interval log: `onHistogram`) and its whole histogram at the end, so the
 * merged percentiles are those of every value of every thread.
 *
 * Per-reply and progress callbacks (`onReply`, `onProgress`, `onConnecting`) and a
 * `transport` cannot cross to a thread: they are refused; TLS is given as `tls`, from which each
 * thread makes its own transport.
 */
import { Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import { decodeFromCompressedBase64, type Histogram } from 'hdr-histogram-js';
import { SocketkitError, asErrorCode } from '../core/errors.js';
import type { Endpoint } from '../net/endpoint.js';
import { newLatencyHistogram, summarizeHistogram } from '../report/histogram.js';
import type { LoadOptions, LoadResult } from './run.js';
import { DEFAULT_LOAD_CONNECTIONS } from './defaults.js';
import type { TlsClientOptions } from '../security/tls.js';

/** The options a thread can be given (everything that survives a structured clone). */
export type ThreadLoadOptions = Omit<LoadOptions, 'engine' | 'threads' | 'onHistogram' | 'signal' | 'onProgress' | 'onConnecting' | 'onReply' | 'onLatency' | 'onError' | 'onRunStart' | 'transport' | 'progressIntervalMs'>;

export interface ThreadedLoadOptions extends ThreadLoadOptions {
  /** Threads to run, or `auto` (one per core). Never more than the connections. */
  readonly threads: number | 'auto';
  readonly signal?: AbortSignal;
  /** Each thread's latencies (µs) since its last batch: for an interval log (`IntervalRecorder.add`). */
  readonly onHistogram?: (h: Histogram) => void;
  /** Errors as the threads count them, batched like `onHistogram`. */
  readonly onError?: (code: string, n: number) => void;
  /** Called once, when the first thread starts its measured run. */
  readonly onRunStart?: () => void;
  /** How often a thread sends its latencies, ms. Default 100. */
  readonly batchMs?: number;
  /** TLS or TLS-PSK: each thread makes its transport from these (a transport cannot be sent to a thread). */
  readonly tls?: TlsClientOptions;
}

/** Messages a thread posts. */
export type FromThread =
  | { readonly type: 'start' }
  | { readonly type: 'batch'; readonly histogram: string | null; readonly errors: Readonly<Record<string, number>> }
  | { readonly type: 'done'; readonly result: LoadResult; readonly histogram: string | null }
  | { readonly type: 'failed'; readonly code: string; readonly message: string };

/** What a thread is started with. */
export interface ThreadInit {
  readonly ep: Endpoint;
  readonly options: ThreadLoadOptions;
  readonly batchMs: number;
  readonly tls: TlsClientOptions | undefined;
}

/** Threads for `auto`: one per core. */
export function autoThreads(): number {
  return availableParallelism();
}

/** `total` split into `parts` whole shares as even as they go (the first ones get the remainder). */
export function splitEvenly(total: number, parts: number): number[] {
  return Array.from({ length: parts }, (_, i) => Math.floor(total / parts) + (i < total % parts ? 1 : 0));
}

function decode(encoded: string | null): Histogram | undefined {
  return encoded === null ? undefined : decodeFromCompressedBase64(encoded, 32, false);
}

function sumRecords(a: Readonly<Record<string, number>>, b: Readonly<Record<string, number>>): Record<string, number> {
  const out: Record<string, number> = { ...a };
  for (const [k, v] of Object.entries(b)) out[k] = (out[k] ?? 0) + v;
  return out;
}

/** One result from the threads' results: counts added, the time the longest, latency from `histogram`. */
function mergeResults(results: readonly LoadResult[], histogram: Histogram, connections: number, rate: number | undefined): LoadResult {
  const sum = (f: (r: LoadResult) => number): number => results.reduce((n, r) => n + f(r), 0);
  const first = results[0]!;
  const seconds = Math.max(...results.map((r) => r.seconds));
  const roundTrips = sum((r) => r.roundTrips);
  const bytesReceived = sum((r) => r.bytesReceived);
  const sent = sum((r) => r.sent);
  return {
    target: first.target,
    protocol: first.protocol,
    mode: first.mode,
    rate: rate ?? null,
    connections,
    connected: sum((r) => r.connected),
    connectMs: Math.max(...results.map((r) => r.connectMs)),
    seconds,
    scheduled: sum((r) => r.scheduled),
    sent,
    completed: roundTrips,
    failed: sum((r) => r.failed),
    failures: {
      timeout: sum((r) => r.failures.timeout),
      connection: sum((r) => r.failures.connection),
      mismatch: sum((r) => r.failures.mismatch),
      unanswered: sum((r) => r.failures.unanswered),
    },
    unsent: sum((r) => r.unsent),
    unsentBy: { connectionDown: sum((r) => r.unsentBy.connectionDown), queued: sum((r) => r.unsentBy.queued) },
    inFlightAtStop: sum((r) => r.inFlightAtStop),
    connectionErrors: sum((r) => r.connectionErrors),
    interrupted: results.some((r) => r.interrupted),
    requests: sent,
    roundTrips,
    roundTripsPerSecond: roundTrips / seconds,
    bytesSent: sum((r) => r.bytesSent),
    bytesReceived,
    bytesPerSecond: bytesReceived / seconds,
    errors: sum((r) => r.errors),
    errorCodes: results.reduce<Record<string, number>>((acc, r) => sumRecords(acc, r.errorCodes), {}),
    stray: sum((r) => r.stray),
    latency: summarizeHistogram(histogram),
  };
}

/** Runs load from `threads` worker threads and merges what they measured. */
export async function runLoadThreads(ep: Endpoint, options: ThreadedLoadOptions): Promise<LoadResult> {
  const { threads: asked, signal, onHistogram, onError, onRunStart, batchMs = 100, tls, ...rest } = options;
  const extra = options as LoadOptions;
  if (extra.onReply || extra.onProgress || extra.onConnecting || extra.transport || extra.onLatency) {
    throw new SocketkitError('ERR_INVALID_ARG', 'onReply, onProgress, onConnecting, onLatency and a custom transport cannot be used with worker threads');
  }
  const connections = rest.connections ?? DEFAULT_LOAD_CONNECTIONS;
  const wanted = asked === 'auto' ? autoThreads() : asked;
  if (!Number.isSafeInteger(wanted) || wanted < 1) throw new SocketkitError('ERR_INVALID_ARG', `threads must be a positive whole number or 'auto', not ${String(asked)}`);
  const n = Math.min(wanted, connections);
  const shares = splitEvenly(connections, n);
  const requestShares = rest.requests !== undefined ? splitEvenly(rest.requests, n) : undefined;
  if (requestShares?.some((r) => r === 0)) throw new SocketkitError('ERR_INVALID_ARG', `${rest.requests} request(s) cannot be split over ${n} threads: give at least one per thread`);

  const total = newLatencyHistogram();
  const workers: Worker[] = [];
  let started = false;
  const stopAll = (): void => {
    for (const w of workers) w.postMessage({ type: 'abort' });
  };
  signal?.addEventListener('abort', stopAll, { once: true });
  try {
    const runs = shares.map((share, i) => {
      const init: ThreadInit = {
        ep,
        batchMs,
        tls,
        options: {
          ...rest,
          connections: share,
          ...(requestShares ? { requests: requestShares[i]! } : {}),
          ...(rest.rate !== undefined ? { rate: (rest.rate * share) / connections } : {}),
        },
      };
      const worker = new Worker(new URL('./worker.js', import.meta.url), { workerData: init });
      workers.push(worker);
      return new Promise<LoadResult>((resolve, reject) => {
        let settled = false;
        worker.on('message', (m: FromThread) => {
          switch (m.type) {
            case 'start':
              if (!started) {
                started = true;
                onRunStart?.();
              }
              return;
            case 'batch': {
              const h = decode(m.histogram);
              if (h) onHistogram?.(h);
              for (const [code, k] of Object.entries(m.errors)) onError?.(code, k);
              return;
            }
            case 'done': {
              const h = decode(m.histogram);
              if (h) total.add(h);
              settled = true;
              resolve(m.result);
              return;
            }
            case 'failed':
              settled = true;
              stopAll(); // the run cannot be whole: stop the other threads
              reject(new SocketkitError(asErrorCode(m.code), m.message));
              return;
          }
        });
        worker.once('error', (e) => {
          settled = true;
          reject(new SocketkitError('ERR_INTERNAL', `a load thread failed: ${e.message}`, { cause: e }));
        });
        worker.once('exit', (code) => {
          if (!settled) reject(new SocketkitError('ERR_INTERNAL', `a load thread exited (${code}) without a result`));
        });
      });
    });
    if (signal?.aborted) stopAll();
    const settled = await Promise.allSettled(runs);
    const failure = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failure) throw failure.reason;
    const results = settled.map((s) => (s as PromiseFulfilledResult<LoadResult>).value);
    return mergeResults(results, total, connections, rest.rate);
  } finally {
    signal?.removeEventListener('abort', stopAll);
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

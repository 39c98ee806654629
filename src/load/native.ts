/**
 * `runLoad` on the native engine (native/load_engine.c): native threads, each with its own epoll
 * loop, open and drive the connections; this side resolves the address, starts the threads,
 * polls their counters every few tens of milliseconds, and turns what they measured into the
 * same `LoadResult` the TypeScript engine (src/load/run.ts, the reference) gives.
 *
 * Latencies are recorded by the threads in HdrHistogram buckets (1 µs to 25 days, 3 significant
 * digits: the layout of hdr-histogram-js) and handed over as the non-empty buckets of each batch
 * with its exact minimum and maximum, recorded here into an hdr-histogram-js histogram: the
 * percentiles, the interval log (`onHistogram`) and the report are those of every value. Errors
 * come as errno values (mapped to socketkit codes as Node's system errors are) or the engine's
 * own (timeout, mismatch, closed, frame too large, aborted); counters and errors cross in
 * batches, never per message.
 */
import { constants as osConstants } from 'node:os';
import { setTimeout as delay } from 'node:timers/promises';
import type { Histogram } from 'hdr-histogram-js';
import { EXIT_MISMATCH, SocketkitError, toSocketkitError, type ErrorCode } from '../core/errors.js';
import { DEFAULT_MAX_FRAME_SIZE } from '../codec/constants.js';
import { nativeModule, nativeStatus, type NativeStatus } from '../native/helper.js';
import { resolveInet, type Endpoint } from '../net/endpoint.js';
import { datagramTooLarge, requireInet, toUdpError } from '../udp/socket.js';
import { maxUdpPayload } from '../udp/constants.js';
import { newLatencyHistogram, summarizeHistogram } from '../report/histogram.js';
import type { LoadProtocol } from './connections.js';
import type { LoadOptions, LoadResult } from './run.js';
import { DEFAULT_PROGRESS_INTERVAL_MS } from './defaults.js';
import { splitEvenly } from './threads.js';

/** One thread's share of the work. */
interface ThreadShare {
  readonly connections: number;
  /** -1: no request count. */
  readonly requests: number;
  /** Open loop: requests per second on this thread. */
  readonly rate: number;
}

interface EngineConfig {
  readonly protocol: 0 | 1 | 2;
  /** 4 or 6 with `address` and `port`; 0 with `path` (a Unix socket). */
  readonly family: 0 | 4 | 6;
  readonly address: string;
  readonly port: number;
  readonly path: string;
  readonly messages: readonly Buffer[];
  readonly threads: readonly ThreadShare[];
  readonly connectRate: number;
  readonly connectConcurrency: number;
  readonly timeoutMs: number;
  readonly drainMs: number;
  /** -1: no time limit. */
  readonly durationMs: number;
  readonly maxMessage: number;
  readonly open: number;
}

interface ThreadPoll {
  readonly opened: number;
  readonly firstError: number;
  readonly connectMs: number;
  readonly seconds: number;
  readonly interrupted: number;
}

/** What `loadPoll` returns: counters summed over the threads (cumulative), the latencies since the last poll. */
interface EnginePoll {
  readonly minPhase: number;
  readonly maxPhase: number;
  readonly opened: number;
  readonly openFailed: number;
  readonly connectionErrors: number;
  readonly scheduled: number;
  readonly sent: number;
  readonly completed: number;
  readonly failed: number;
  readonly failTimeout: number;
  readonly failConnection: number;
  readonly failMismatch: number;
  readonly failUnanswered: number;
  readonly unsentDown: number;
  readonly unsentQueued: number;
  readonly inFlightAtStop: number;
  readonly bytesSent: number;
  readonly bytesReceived: number;
  readonly stray: number;
  readonly alive: number;
  /** [id, count, ...], cumulative. */
  readonly errors: readonly number[];
  readonly threads: readonly ThreadPoll[];
  /** [value µs, count, ...] of the latencies since the last poll, ascending. */
  readonly histogram: Float64Array;
  readonly histMin: number;
  readonly histMax: number;
  readonly histCount: number;
}

/** The functions of native/load_engine.c. */
interface LoadEngine {
  loadStart(config: EngineConfig): object;
  loadPoll(handle: object): EnginePoll;
  loadGo(handle: object): void;
  loadStop(handle: object, interrupted: boolean): void;
  loadFree(handle: object): void;
}

const FUNCTIONS = ['loadStart', 'loadPoll', 'loadGo', 'loadStop', 'loadFree'] as const;

/** The phases a thread goes through. */
const PHASE_READY = 1;
const PHASE_DONE = 3;

/** The engine's own error ids (below them: an errno). */
const E_TIMEOUT = 512;
const E_MISMATCH = 513;
const E_CLOSED = 514;
const E_FRAME_TOO_LARGE = 515;
const E_ABORTED = 516;

/** How often the threads are polled while they connect, and while they run, ms. */
const CONNECT_POLL_MS = 10;
const RUN_POLL_MS = 50;

function loadEngine(): LoadEngine | undefined {
  return nativeModule<LoadEngine>([...FUNCTIONS]);
}

/** Whether the native load engine can run here, and if not, why. */
export function loadEngineStatus(): NativeStatus {
  if (loadEngine() !== undefined) return { available: true };
  const s = nativeStatus();
  return s.available ? { available: false, reason: 'the native helper was built without the load engine (an older build)' } : s;
}

const ERRNO_NAMES = new Map<number, string>(Object.entries(osConstants.errno).map(([name, n]) => [n, name] as const));

/** The socketkit error of an engine error id. */
function errorOf(id: number, protocol: LoadProtocol, what: string): SocketkitError {
  switch (id) {
    case E_TIMEOUT:
      return new SocketkitError('ERR_TIMEOUT', `no echo from ${what} in time`);
    case E_MISMATCH:
      return new SocketkitError('ERR_ECHO_MISMATCH', `echo from ${what} differs from what was sent`, { exitCode: EXIT_MISMATCH });
    case E_CLOSED:
      return new SocketkitError('ERR_CONN_CLOSED', `${what} closed the connection`);
    case E_FRAME_TOO_LARGE:
      return new SocketkitError('ERR_FRAME_TOO_LARGE', `a reply frame from ${what} is over the size limit`);
    case E_ABORTED:
      return new SocketkitError('ERR_ABORTED', `load on ${what} aborted`);
  }
  const name = ERRNO_NAMES.get(id) ?? 'EIO';
  const sys = Object.assign(new Error(`${name} (errno ${id})`), { code: name });
  return protocol === 'udp' ? toUdpError(sys, what) : toSocketkitError(sys, what);
}

/** The run's parameters, as `runLoad` has checked and completed them. */
export interface NativeRunParams {
  readonly what: string;
  readonly count: number;
  readonly protocol: LoadProtocol;
  readonly messages: readonly Buffer[];
  readonly timeoutMs: number;
  /** Infinity: no time limit. */
  readonly durationMs: number;
  /** Infinity: no request count. */
  readonly budget: number;
  readonly rate: number | undefined;
  readonly drainMs: number;
  readonly connectRate: number;
  readonly connectConcurrency: number;
  readonly threads: number;
}

/**
 * A batch's buckets as an hdr-histogram-js histogram: each bucket recorded at its lowest value,
 * except that the lowest bucket is recorded at the exact minimum and the highest at the exact
 * maximum (the same buckets: counts, percentiles and mean are those of the values themselves).
 */
function batchHistogram(p: EnginePoll): Histogram | undefined {
  if (p.histCount === 0) return undefined;
  const h = newLatencyHistogram();
  const pairs = p.histogram;
  const last = pairs.length - 2;
  for (let i = 0; i < pairs.length; i += 2) {
    const value = pairs[i]!;
    const n = pairs[i + 1]!;
    if (i === 0 && i === last) {
      h.recordValueWithCount(p.histMin, 1);
      if (n > 1) h.recordValueWithCount(p.histMax, n - 1);
    } else if (i === 0) h.recordValueWithCount(p.histMin, n);
    else if (i === last) h.recordValueWithCount(p.histMax, n);
    else h.recordValueWithCount(value, n);
  }
  return h;
}

/** Runs the load on the native engine; `options` as given to `runLoad`, `p` as it checked them. */
export async function runNativeLoad(ep: Endpoint, p: NativeRunParams, options: LoadOptions): Promise<LoadResult> {
  const engine = loadEngine();
  if (engine === undefined) throw new SocketkitError('ERR_INVALID_ARG', `the native engine cannot run: ${loadEngineStatus().reason ?? 'not available'}`);
  const { what, protocol, count } = p;
  let address: Pick<EngineConfig, 'family' | 'address' | 'port' | 'path'>;
  if (protocol === 'udp') requireInet(ep);
  if (ep.kind === 'unix') address = { family: 0, address: '', port: 0, path: ep.path };
  else {
    const r = await resolveInet(ep);
    address = { family: r.family, address: r.address, port: r.port, path: '' };
    const largest = Math.max(...p.messages.map((m) => m.length));
    if (protocol === 'udp' && largest > maxUdpPayload(r.family)) throw datagramTooLarge(largest, r.family, what);
  }
  const n = Math.max(1, Math.min(p.threads, count));
  const shares = splitEvenly(count, n);
  const requestShares = Number.isFinite(p.budget) ? splitEvenly(p.budget, n) : undefined;
  if (requestShares?.some((r) => r === 0)) throw new SocketkitError('ERR_INVALID_ARG', `${p.budget} request(s) cannot be split over ${n} threads: give at least one per thread`);
  const open = p.rate !== undefined;
  const signal = options.signal;
  let interrupted = signal?.aborted ?? false;
  const handle = engine.loadStart({
    protocol: protocol === 'stream' ? 0 : protocol === 'framed' ? 1 : 2,
    ...address,
    messages: p.messages,
    threads: shares.map((share, i) => ({ connections: share, requests: requestShares ? requestShares[i]! : -1, rate: open ? ((p.rate ?? 0) * share) / count : 0 })),
    connectRate: p.connectRate / n,
    connectConcurrency: Math.max(1, Math.ceil(p.connectConcurrency / n)),
    timeoutMs: p.timeoutMs,
    drainMs: p.drainMs,
    durationMs: Number.isFinite(p.durationMs) ? p.durationMs : -1,
    maxMessage: options.maxMessageSize ?? DEFAULT_MAX_FRAME_SIZE,
    open: open ? 1 : 0,
  });
  const onAbort = (): void => {
    interrupted = true;
    engine.loadStop(handle, true);
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  if (interrupted) onAbort();

  const total = newLatencyHistogram();
  const errorCodes: Record<string, number> = {};
  const seen = new Map<number, number>();
  let errors = 0;
  let last: EnginePoll | undefined;
  /** Polls the threads: their latencies and errors since the last poll go to the histograms and hooks. */
  const poll = (): EnginePoll => {
    const q = engine.loadPoll(handle);
    for (let i = 0; i < q.errors.length; i += 2) {
      const id = q.errors[i]!;
      const delta = q.errors[i + 1]! - (seen.get(id) ?? 0);
      if (delta <= 0) continue;
      seen.set(id, q.errors[i + 1]!);
      const code: ErrorCode = errorOf(id, protocol, what).code;
      errorCodes[code] = (errorCodes[code] ?? 0) + delta;
      errors += delta;
      options.onError?.(code, delta);
    }
    const batch = batchHistogram(q);
    if (batch !== undefined) {
      total.add(batch);
      options.onHistogram?.(batch);
    }
    last = q;
    return q;
  };

  try {
    // ---- Connect phase: the threads open their connections; this side watches.
    let reported = -1;
    for (;;) {
      const q = poll();
      if (q.opened + q.openFailed !== reported) {
        reported = q.opened + q.openFailed;
        options.onConnecting?.(q.opened, q.openFailed, count);
      }
      if (q.minPhase >= PHASE_READY) break;
      await delay(CONNECT_POLL_MS);
    }
    const connected = poll();
    const connectMs = Math.max(...connected.threads.map((t) => t.connectMs));
    const result = (q: EnginePoll, seconds: number): LoadResult => ({
      target: what,
      protocol,
      mode: open ? 'open' : 'closed',
      rate: p.rate ?? null,
      connections: count,
      connected: q.opened,
      connectMs,
      seconds,
      scheduled: q.scheduled,
      sent: q.sent,
      completed: q.completed,
      failed: q.failed,
      failures: { timeout: q.failTimeout, connection: q.failConnection, mismatch: q.failMismatch, unanswered: q.failUnanswered },
      unsent: q.unsentDown + q.unsentQueued,
      unsentBy: { connectionDown: q.unsentDown, queued: q.unsentQueued },
      inFlightAtStop: q.inFlightAtStop,
      connectionErrors: q.connectionErrors,
      interrupted,
      requests: q.sent,
      roundTrips: q.completed,
      roundTripsPerSecond: seconds > 0 ? q.completed / seconds : 0,
      bytesSent: q.bytesSent,
      bytesReceived: q.bytesReceived,
      bytesPerSecond: seconds > 0 ? q.bytesReceived / seconds : 0,
      errors,
      errorCodes: { ...errorCodes },
      stray: q.stray,
      latency: summarizeHistogram(total),
    });
    if (interrupted || connected.threads.some((t) => t.interrupted > 0)) {
      interrupted = true;
      return result(connected, 0);
    }
    // A thread that opened nothing fails the run with its first error (one thread: no connection at all).
    const empty = connected.threads.find((t) => t.opened === 0);
    if (empty !== undefined) {
      throw empty.firstError >= 0 ? errorOf(empty.firstError, protocol, what) : new SocketkitError('ERR_ABORTED', `load on ${what} aborted before any connection opened`);
    }
    const startAtMs = options.startAtMs;
    if (startAtMs !== undefined) {
      const late = Date.now() - startAtMs;
      if (late >= 0) {
        throw new SocketkitError('ERR_START_PASSED', `the start time ${new Date(startAtMs).toISOString()} had passed once the connections were open (${(late / 1000).toFixed(3)} s ago): agents would measure different windows`);
      }
      await delay(startAtMs - Date.now(), undefined, signal ? { signal } : {}).catch(() => undefined);
      if (signal?.aborted) {
        interrupted = true;
        return result(connected, 0);
      }
    }
    options.onRunStart?.();
    engine.loadGo(handle);

    // ---- The measured run: poll until every thread is done.
    const t0 = performance.now();
    const every = options.progressIntervalMs ?? DEFAULT_PROGRESS_INTERVAL_MS;
    let progressAt = t0;
    let progressTrips = 0;
    for (;;) {
      await delay(RUN_POLL_MS);
      const q = poll();
      if (q.minPhase >= PHASE_DONE) break;
      const now = performance.now();
      if (options.onProgress && now - progressAt >= every) {
        options.onProgress({
          elapsedMs: now - t0,
          durationMs: Number.isFinite(p.durationMs) ? p.durationMs : NaN,
          roundTrips: q.completed,
          roundTripsPerSecond: ((q.completed - progressTrips) * 1000) / Math.max(1, now - progressAt),
          errors,
          connections: q.alive,
          latency: summarizeHistogram(total),
        });
        progressAt = now;
        progressTrips = q.completed;
      }
    }
    const end = last ?? poll();
    if (end.threads.some((t) => t.interrupted > 0)) interrupted = true;
    return result(end, Math.max(...end.threads.map((t) => t.seconds)));
  } finally {
    signal?.removeEventListener('abort', onAbort);
    engine.loadFree(handle);
  }
}

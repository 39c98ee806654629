/**
 * The load generator: many connections to an echo server, round trips measured.
 *
 * Closed loop (the default): each connection sends a request, waits until it is back, and
 * sends the next at once; latency is from send to echo. This measures what a server sustains
 * with C requests in flight.
 *
 * Open loop (`rate`): requests are due at a fixed total rate, whatever the server does (request
 * k at start + k/rate, on connection k mod C), and each one's latency is measured from the time
 * it was *scheduled*, not sent. When the server stalls, requests due meanwhile wait and their
 * wait counts: a closed-loop tool would send fewer requests during the stall and so record
 * one slow sample instead of many ("coordinated omission"). In flight per connection is
 * bounded; beyond it requests wait unsent (still on the clock), so memory stays bounded.
 *
 * Connections are opened at a bounded rate, a few at a time, each confirmed by a one-byte echo
 * (not measured) before it counts as open, so a server's listen backlog is never overrun; the
 * measured run starts when all are open.
 *
 * Every request is accounted for exactly once: `scheduled = completed + failed + unsent`.
 * Open loop, a request is scheduled when it falls due; closed loop, when it is sent (so nothing
 * is ever unsent there and `sent = completed + failed`). A connection that fails fails every
 * request outstanding on it, each counted with that failure's reason; requests due on it that
 * were never written, and requests due later on it, are unsent. Requests still unanswered once
 * the run has stopped and drained fail as `unanswered`.
 */
import { setMaxListeners } from 'node:events';
import type { Histogram } from 'hdr-histogram-js';
import type { EngineName } from '../native/engine-choice.js';
import { runNativeLoad } from './native.js';
import { setTimeout as delay } from 'node:timers/promises';
import { formatEndpoint, type Endpoint } from '../net/endpoint.js';
import type { ConnectTransport } from '../net/connect.js';
import { SocketkitError, toSocketkitError } from '../core/errors.js';
import { LatencyRecorder, type LatencySummary } from './histogram.js';
import { openConnection, UdpConnection, type ConnectionHooks, type LoadConnection, type LoadProtocol } from './connections.js';
import { payloadOfSize } from './messages.js';
import {
  DEFAULT_CONNECT_CONCURRENCY,
  DEFAULT_CONNECT_RATE,
  DEFAULT_DRAIN_MS,
  DEFAULT_LOAD_CONNECTIONS,
  DEFAULT_LOAD_DURATION_MS,
  DEFAULT_LOAD_SIZE,
  DEFAULT_LOAD_TIMEOUT_MS,
  DEFAULT_PROGRESS_INTERVAL_MS,
  MAX_LOAD_CONNECTIONS,
  MAX_OUTSTANDING_PER_CONNECTION,
} from './defaults.js';

export interface LoadOptions {
  /** Connections (UDP: sockets, each its own source port). Default 1. */
  readonly connections?: number;
  /** Bytes per request, when `messages` is not given. Default 64. */
  readonly size?: number;
  /** Requests to send in turn on each connection (cycling), instead of `size` bytes. */
  readonly messages?: readonly Uint8Array[];
  /** How long the measured run lasts, ms. Default 10 s, or unbounded when `requests` is given. */
  readonly durationMs?: number;
  /** Stop after this many round trips in all (open loop: this many are scheduled). */
  readonly requests?: number;
  /** Open loop: requests per second in all, spread evenly over the connections. */
  readonly rate?: number;
  /** Connections opened per second at most. Default 2,000. */
  readonly connectRate?: number;
  /** Connections being opened at once at most. Default 64. */
  readonly connectConcurrency?: number;
  /** Default 'stream' (raw bytes over TCP or a Unix socket). */
  readonly protocol?: LoadProtocol;
  /** Connect timeout, and how long an echo may take before it is an error (UDP: lost), ms. Default 10 s. */
  readonly timeoutMs?: number;
  /** After the run, how long echoes in flight are waited for, ms. Default 2 s (at most the timeout). */
  readonly drainMs?: number;
  /** With `framed`: the largest message accepted. */
  readonly maxMessageSize?: number;
  /** TLS or TLS-PSK for stream and framed connections (src/security). */
  readonly transport?: ConnectTransport;
  /** Abort ends the run early; the result covers what was measured. */
  readonly signal?: AbortSignal;
  /** Called every `progressIntervalMs` during the measured run. */
  readonly onProgress?: (p: LoadProgress) => void;
  readonly progressIntervalMs?: number;
  /** Called as connections are opened (for a progress line while thousands connect). */
  readonly onConnecting?: (opened: number, failed: number, total: number) => void;
  /**
   * Called with each reply of the measured run, and the index of its connection (0-based). The
   * reply has been checked byte for byte against its request, so `reply` is that request's
   * message (do not modify it).
   */
  readonly onReply?: (connection: number, reply: Buffer) => void;
  /**
   * Called with each latency of the measured run, µs (closed loop: from send; open loop: from the
   * scheduled send time), to feed an interval log. Called before `onReply`; keep it cheap.
   */
  readonly onLatency?: (us: number) => void;
  /** Called with every error as it is counted: `n` of `code` (the same counts as `errorCodes`). */
  readonly onError?: (code: string, n: number) => void;
  /** Called when the measured run starts (connections open; at `startAtMs` when given). */
  readonly onRunStart?: () => void;
  /** Wall-clock time (ms since the epoch) at which the measured run starts, after connecting; must not have passed. */
  readonly startAtMs?: number;
  /**
   * Which engine runs the load: 'js' (the default: Node's sockets, the readable reference) or
   * 'native' (native threads with their own epoll loops: see src/load/native.ts). The native
   * engine takes no `transport`, `onReply` or `onLatency` (it hands over latencies in batches:
   * `onHistogram`).
   */
  readonly engine?: EngineName;
  /** Native engine: how many native threads share the connections (default 1; never more than the connections). */
  readonly threads?: number;
  /** Native engine: each batch of latencies (µs) as it is handed over, every few tens of ms (for an interval log). */
  readonly onHistogram?: (h: Histogram) => void;
}

/** Why requests failed, one count per request. */
export interface LoadFailures {
  /** No reply within the timeout (UDP: the datagram or its echo was lost). */
  readonly timeout: number;
  /** Outstanding when their connection failed: closed or reset by the server, a write error. */
  readonly connection: number;
  /** The reply differed from the request (and every request outstanding with it on that connection). */
  readonly mismatch: number;
  /** Still in flight once the run had stopped and the drain was over (or was cut short by an abort). */
  readonly unanswered: number;
}

/** Why scheduled requests were never sent (open loop only). */
export interface LoadUnsent {
  /** Due on a connection that had failed, or waiting on it when it failed. */
  readonly connectionDown: number;
  /** Due but still waiting (in-flight limit or backpressure) when the run ended. */
  readonly queued: number;
}

/** A progress report during the run. */
export interface LoadProgress {
  readonly elapsedMs: number;
  /** The planned length of the run, ms (NaN when it ends on a request count). */
  readonly durationMs: number;
  readonly roundTrips: number;
  /** Round trips per second over the last interval. */
  readonly roundTripsPerSecond: number;
  readonly errors: number;
  /** Connections still alive. */
  readonly connections: number;
  /** Latency so far. */
  readonly latency: LatencySummary;
}

/** The result of a load run. */
export interface LoadResult {
  readonly target: string;
  readonly protocol: LoadProtocol;
  readonly mode: 'closed' | 'open';
  /** Requests per second asked for (open loop). */
  readonly rate: number | null;
  /** Connections asked for. */
  readonly connections: number;
  /** Connections that opened and answered the first echo. */
  readonly connected: number;
  /** Milliseconds to open them. */
  readonly connectMs: number;
  /** Seconds measured: from the start of the run to the last echo. */
  readonly seconds: number;
  /**
   * Requests of the measured run: open loop, those that fell due before the run stopped; closed
   * loop, those sent. Always `completed + failed + unsent`.
   */
  readonly scheduled: number;
  /** Requests written (`completed + failed`). */
  readonly sent: number;
  /** Requests whose reply came back intact (the same as `roundTrips`). */
  readonly completed: number;
  /** Requests that failed: `failures` says why. */
  readonly failed: number;
  readonly failures: LoadFailures;
  /** Scheduled requests never sent (open loop): `unsentBy` says why. Closed loop: 0. */
  readonly unsent: number;
  readonly unsentBy: LoadUnsent;
  /** Requests in flight when sending stopped: the drain then completed or failed each of them. */
  readonly inFlightAtStop: number;
  /** Connections that failed with no request outstanding: while opening, or idle in the run. */
  readonly connectionErrors: number;
  /** The run was cut short by `signal` (while connecting, running or draining). */
  readonly interrupted: boolean;
  /** Requests sent in the measured run (the same as `sent`). */
  readonly requests: number;
  readonly roundTrips: number;
  readonly roundTripsPerSecond: number;
  /** Payload bytes sent and received back. */
  readonly bytesSent: number;
  readonly bytesReceived: number;
  /** Payload bytes echoed per second (one direction). */
  readonly bytesPerSecond: number;
  /** `failed + connectionErrors`: every failed request, and every connection that failed with none outstanding. */
  readonly errors: number;
  /** `errors` by code, e.g. `{ ERR_CONN_REFUSED: 2 }`; the counts add up to `errors`. */
  readonly errorCodes: Readonly<Record<string, number>>;
  /** UDP: echoes that matched no request in flight (late after being counted lost, or duplicated). */
  readonly stray: number;
  readonly latency: LatencySummary;
}

function positive(name: string, v: number | undefined, integer: boolean): void {
  if (v === undefined) return;
  if (!(v > 0) || !Number.isFinite(v) || (integer && !Number.isSafeInteger(v))) {
    throw new SocketkitError('ERR_INVALID_ARG', `${name} must be a positive ${integer ? 'whole ' : ''}number, not ${v}`);
  }
}

function toBuffer(m: Uint8Array): Buffer {
  return Buffer.isBuffer(m) ? m : Buffer.from(m.buffer, m.byteOffset, m.byteLength);
}

/** ERR_START_PASSED when `startAtMs` (ms since the epoch) is not in the future. */
function startPassed(startAtMs: number, when: string): void {
  const late = Date.now() - startAtMs;
  if (late >= 0) {
    throw new SocketkitError('ERR_START_PASSED', `the start time ${new Date(startAtMs).toISOString()} had passed ${when} (${(late / 1000).toFixed(3)} s ago): agents would measure different windows`);
  }
}

/** Runs load against the echo server at `ep` and measures it. */
export async function runLoad(ep: Endpoint, options: LoadOptions = {}): Promise<LoadResult> {
  const count = options.connections ?? DEFAULT_LOAD_CONNECTIONS;
  positive('connections', count, true);
  if (count > MAX_LOAD_CONNECTIONS) throw new SocketkitError('ERR_INVALID_ARG', `connections must be at most ${MAX_LOAD_CONNECTIONS}`);
  positive('size', options.size, true);
  positive('duration', options.durationMs, false);
  positive('requests', options.requests, true);
  positive('rate', options.rate, false);
  positive('connect rate', options.connectRate, false);
  positive('timeout', options.timeoutMs, false);
  const startAtMs = options.startAtMs;
  if (startAtMs !== undefined) {
    if (!Number.isFinite(startAtMs)) throw new SocketkitError('ERR_INVALID_ARG', `the start time must be a time, not ${startAtMs}`);
    startPassed(startAtMs, 'before connecting');
  }
  const messages = options.messages ? options.messages.map(toBuffer) : [payloadOfSize(options.size ?? DEFAULT_LOAD_SIZE)];
  if (messages.length === 0 || messages.some((m) => m.length === 0)) {
    throw new SocketkitError('ERR_INVALID_ARG', 'every message must have at least one byte (an empty echo never comes back)');
  }
  const protocol = options.protocol ?? 'stream';
  const timeoutMs = options.timeoutMs ?? DEFAULT_LOAD_TIMEOUT_MS;
  const durationMs = options.durationMs ?? (options.requests !== undefined ? Infinity : DEFAULT_LOAD_DURATION_MS);
  const budget = options.requests ?? Infinity;
  const rate = options.rate;
  const open = rate !== undefined;
  const signal = options.signal;
  const what = formatEndpoint(ep);
  if (options.engine === 'native') {
    const jsOnly = [options.transport ? 'a TLS transport' : '', options.onReply ? 'onReply' : '', options.onLatency ? 'onLatency' : ''].filter((x) => x !== '');
    if (jsOnly.length > 0) throw new SocketkitError('ERR_INVALID_ARG', `the native engine cannot run: ${jsOnly.join(', ')} ${jsOnly.length === 1 ? 'needs' : 'need'} the js engine`);
    positive('threads', options.threads, true);
    return runNativeLoad(ep, {
      what,
      count,
      protocol,
      messages,
      timeoutMs,
      durationMs,
      budget,
      rate,
      drainMs: Number.isFinite(budget) ? timeoutMs : Math.min(options.drainMs ?? DEFAULT_DRAIN_MS, timeoutMs),
      connectRate: options.connectRate ?? DEFAULT_CONNECT_RATE,
      connectConcurrency: Math.min(count, options.connectConcurrency ?? DEFAULT_CONNECT_CONCURRENCY),
      threads: options.threads ?? 1,
    }, options);
  }
  if (options.threads !== undefined || options.onHistogram !== undefined) {
    throw new SocketkitError('ERR_INVALID_ARG', 'threads and onHistogram are for the native engine (worker threads of the js engine: runLoadThreads)');
  }

  const errorCodes: Record<string, number> = {};
  let errors = 0;
  /** Counts `n` errors of `code` (a failed connection, or requests that failed). */
  const onError = options.onError;
  const countError = (code: string, n = 1): void => {
    errors += n;
    errorCodes[code] = (errorCodes[code] ?? 0) + n;
    onError?.(code, n);
  };
  let connectionErrors = 0;
  const connectionError = (err: SocketkitError): void => {
    connectionErrors++;
    countError(err.code);
  };
  const failures = { timeout: 0, connection: 0, mismatch: 0, unanswered: 0 };
  let failed = 0;
  /** Counts `n` requests failed by `err` (or, with `unanswered`, left without a reply at the end). */
  const failRequests = (n: number, code: string, reason: keyof LoadFailures): void => {
    if (n <= 0) return;
    failed += n;
    failures[reason] += n;
    countError(code, n);
  };
  const reasonOf = (err: SocketkitError): keyof LoadFailures =>
    err.code === 'ERR_TIMEOUT' ? 'timeout' : err.code === 'ERR_ECHO_MISMATCH' ? 'mismatch' : 'connection';
  const unsentBy = { connectionDown: 0, queued: 0 };
  let interrupted = false;

  // ---- Connect phase: bounded rate, bounded concurrency, each confirmed by a one-byte echo.
  const tConnect = performance.now();
  const slots: Array<LoadConnection | undefined> = new Array<LoadConnection | undefined>(count);
  let firstError: SocketkitError | undefined;
  let opened = 0;
  let openFailed = 0;
  {
    const connectRate = options.connectRate ?? DEFAULT_CONNECT_RATE;
    const concurrency = Math.min(count, options.connectConcurrency ?? DEFAULT_CONNECT_CONCURRENCY);
    // One signal for the connects in flight, with room for all of them (each adds an abort listener).
    const connectAbort = new AbortController();
    setMaxListeners(concurrency + 8, connectAbort.signal);
    const forward = (): void => {
      interrupted = true;
      connectAbort.abort();
    };
    signal?.addEventListener('abort', forward, { once: true });
    if (signal?.aborted) forward();
    let next = 0;
    const opener = async (): Promise<void> => {
      while (next < count && !connectAbort.signal.aborted) {
        const i = next++;
        const dueAt = tConnect + (i * 1000) / connectRate;
        const wait = dueAt - performance.now();
        if (wait > 1) {
          // Paced: an abort ends the wait (and the loop) at once.
          await delay(wait, undefined, { signal: connectAbort.signal }).catch(() => undefined);
          if (connectAbort.signal.aborted) break;
        }
        let conn: LoadConnection | undefined;
        try {
          conn = await openConnection(protocol, ep, i, messages, { timeoutMs, signal: connectAbort.signal, ...(options.maxMessageSize !== undefined ? { maxMessageSize: options.maxMessageSize } : {}), ...(options.transport ? { transport: options.transport } : {}) });
          await conn.warmUp(timeoutMs, connectAbort.signal);
          slots[i] = conn;
          opened++;
        } catch (err) {
          conn?.close();
          // Abandoned because the opening was stopped (abort, or nothing works): not a failure of its own.
          if (connectAbort.signal.aborted) break;
          const e = toSocketkitError(err, what);
          firstError ??= e;
          openFailed++;
          connectionError(e);
          // A datagram over the size limit fails every connection the same way: stop at once.
          if (e.code === 'ERR_DATAGRAM_TOO_LARGE') throw e;
          // Nothing works at all (no server, wrong address): do not try thousands more.
          if (opened === 0 && openFailed >= concurrency) connectAbort.abort();
        }
        options.onConnecting?.(opened, openFailed, count);
      }
    };
    const openers = Array.from({ length: concurrency }, opener);
    const results = await Promise.allSettled(openers);
    signal?.removeEventListener('abort', forward);
    const fatal = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (fatal) {
      for (const c of slots) c?.close();
      throw toSocketkitError(fatal.reason, what);
    }
  }
  const conns = slots.filter((c): c is LoadConnection => c !== undefined);
  const connectMs = performance.now() - tConnect;
  const result = (r: Omit<LoadResult, 'target' | 'protocol' | 'mode' | 'rate' | 'connections' | 'connectMs' | 'errors' | 'errorCodes' | 'connectionErrors' | 'interrupted' | 'failed' | 'failures' | 'unsentBy' | 'unsent' | 'requests' | 'completed'>): LoadResult => ({
    target: what,
    protocol,
    mode: open ? 'open' : 'closed',
    rate: rate ?? null,
    connections: count,
    connectMs,
    ...r,
    completed: r.roundTrips,
    failed,
    failures: { ...failures },
    unsent: unsentBy.connectionDown + unsentBy.queued,
    unsentBy: { ...unsentBy },
    requests: r.sent,
    connectionErrors,
    errors,
    errorCodes,
    interrupted,
  });
  if (interrupted) {
    // Stopped while connecting: nothing was measured; the result says how far opening got.
    for (const c of conns) c.close();
    return result({ connected: conns.length, seconds: 0, scheduled: 0, sent: 0, inFlightAtStop: 0, roundTrips: 0, roundTripsPerSecond: 0, bytesSent: 0, bytesReceived: 0, bytesPerSecond: 0, stray: 0, latency: new LatencyRecorder().summary() });
  }
  if (conns.length === 0) {
    throw firstError ?? new SocketkitError('ERR_ABORTED', `load on ${what} aborted before any connection opened`);
  }
  if (startAtMs !== undefined) {
    // Every agent measures the same window: wait for the wall-clock start (an abort ends the wait).
    try {
      startPassed(startAtMs, 'once the connections were open');
    } catch (e) {
      for (const c of conns) c.close();
      throw e;
    }
    await delay(startAtMs - Date.now(), undefined, signal ? { signal } : {}).catch(() => undefined);
    if (signal?.aborted) {
      interrupted = true;
      for (const c of conns) c.close();
      return result({ connected: conns.length, seconds: 0, scheduled: 0, sent: 0, inFlightAtStop: 0, roundTrips: 0, roundTripsPerSecond: 0, bytesSent: 0, bytesReceived: 0, bytesPerSecond: 0, stray: 0, latency: new LatencyRecorder().summary() });
    }
  }
  options.onRunStart?.();

  // ---- Measured run.
  const recorder = new LatencyRecorder();
  const onLatency = options.onLatency;
  const C = conns.length;
  /** Each connection's place among those open (the schedule's k mod C; its slot index may differ). */
  const position = new Map(conns.map((c, i) => [c, i] as const));
  let roundTrips = 0;
  let requests = 0;
  let scheduled = 0;
  let inFlightAtStop = 0;
  let bytesSent = 0;
  let bytesReceived = 0;
  let alive = C;
  /** Requests sent and not yet echoed or lost, on live connections. */
  let inFlight = 0;
  let running = true;
  let nextK = 0; // open loop: the next request number to schedule
  const t0 = performance.now();
  let tLast = t0;
  let tStopped = Infinity;
  const totalRequests = open ? budget : Infinity;
  const perRequestMs = open ? 1000 / rate : 0;
  /** When request `seq` of connection `index` is due (open loop). */
  const scheduledAt = (index: number, seq: number): number => t0 + (index + seq * C) * perRequestMs;

  let wake: (() => void) | undefined;
  const maybeDone = (): void => {
    if (!running && (alive === 0 || inFlight === 0)) wake?.();
  };
  let onStopped: () => void = () => undefined;
  const stopped = new Promise<void>((resolve) => {
    onStopped = resolve;
  });
  const stop = (): void => {
    if (!running) return;
    running = false;
    tStopped = performance.now();
    inFlightAtStop = inFlight;
    onStopped();
  };

  const pump = (conn: LoadConnection): void => {
    if (!conn.alive || conn.blocked) return;
    if (!open) {
      if (!running || conn.sent !== conn.done) return;
      const now = performance.now();
      conn.lastSendAt = now;
      conn.lastProgressAt = now;
      requests++;
      scheduled++;
      inFlight++;
      bytesSent += conn.send();
      if (requests >= budget) stop();
      return;
    }
    while (conn.alive && !conn.blocked && conn.sent < conn.due && conn.sent - conn.done < MAX_OUTSTANDING_PER_CONNECTION) {
      if (conn.sent === conn.done) conn.lastProgressAt = performance.now();
      requests++;
      inFlight++;
      bytesSent += conn.send();
    }
  };

  const hooks: ConnectionHooks = {
    complete(conn, seq) {
      const now = performance.now();
      const ms = now - (open ? scheduledAt(position.get(conn) ?? 0, seq) : conn.lastSendAt);
      recorder.record(ms);
      onLatency?.(ms * 1000);
      roundTrips++;
      inFlight--;
      bytesReceived += conn.messageOf(seq).length;
      conn.lastProgressAt = now;
      tLast = now;
      options.onReply?.(conn.index, conn.messageOf(seq));
      pump(conn);
      if (!running) maybeDone();
    },
    fail(conn, err) {
      if (!conn.alive) return;
      conn.close();
      alive--;
      // Every request outstanding on it fails with this reason; one that was idle is one connection error.
      const outstanding = conn.sent - conn.done;
      inFlight -= outstanding;
      if (outstanding > 0) failRequests(outstanding, err.code, reasonOf(err));
      else if (running) connectionError(err);
      // Requests due on it and not yet written will never be.
      unsentBy.connectionDown += conn.due - Math.min(conn.due, conn.sent);
      conn.due = conn.sent;
      if (alive === 0) stop();
      maybeDone();
    },
    lost(conn, _seq, err) {
      failRequests(1, err.code, reasonOf(err));
      inFlight--;
      conn.lastProgressAt = performance.now();
      pump(conn);
      if (!running) maybeDone();
    },
    writable(conn) {
      pump(conn);
    },
  };
  for (const c of conns) c.attach(hooks);

  const timers: NodeJS.Timeout[] = [];
  // An abort stops at once: no more sending, and no drain (what is in flight stays unanswered).
  const onAbort = (): void => {
    interrupted = true;
    stop();
    wake?.();
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  if (signal?.aborted) onAbort();
  if (Number.isFinite(durationMs)) timers.push(setTimeout(stop, durationMs));

  // Reply timeouts: one timer for all connections.
  const checkEvery = Math.max(10, Math.min(250, timeoutMs / 4));
  timers.push(
    setInterval(() => {
      const now = performance.now();
      for (const c of conns) {
        if (!c.alive) continue;
        if (c instanceof UdpConnection) c.expire(now, timeoutMs);
        else if (c.sent > c.done && now - c.lastProgressAt > timeoutMs) {
          hooks.fail(c, new SocketkitError('ERR_TIMEOUT', `no echo from ${what} for ${timeoutMs / 1000} s (${c.sent - c.done} request(s) outstanding)`));
        }
      }
    }, checkEvery),
  );

  if (options.onProgress) {
    const every = options.progressIntervalMs ?? DEFAULT_PROGRESS_INTERVAL_MS;
    let lastAt = t0;
    let lastTrips = 0;
    timers.push(
      setInterval(() => {
        const now = performance.now();
        options.onProgress?.({
          elapsedMs: now - t0,
          durationMs: Number.isFinite(durationMs) ? durationMs : NaN,
          roundTrips,
          roundTripsPerSecond: ((roundTrips - lastTrips) * 1000) / Math.max(1, now - lastAt),
          errors,
          connections: alive,
          latency: recorder.summary(),
        });
        lastAt = now;
        lastTrips = roundTrips;
      }, every),
    );
  }

  let scheduler: NodeJS.Timeout | undefined;
  if (open) {
    // Open loop: one scheduler for every connection. Each tick hands out every request now due.
    const tick = (): void => {
      if (!running) return;
      const now = performance.now();
      const dueK = Math.min(totalRequests, Math.floor((now - t0) / perRequestMs) + 1);
      for (; nextK < dueK; nextK++) {
        scheduled++;
        const conn = conns[nextK % C]!;
        if (!conn.alive) {
          unsentBy.connectionDown++;
          continue;
        }
        conn.due++;
        pump(conn);
      }
      if (nextK >= totalRequests) {
        stop();
        return;
      }
      scheduler = setTimeout(tick, Math.max(0, t0 + nextK * perRequestMs - performance.now()));
    };
    tick();
  } else {
    for (const c of conns) pump(c);
  }

  await stopped;
  // Sending has stopped: give echoes in flight a moment (a counted run: up to the timeout), then close everything.
  const drainMs = Number.isFinite(budget) ? timeoutMs : Math.min(options.drainMs ?? DEFAULT_DRAIN_MS, timeoutMs);
  if (alive > 0 && inFlight > 0 && !interrupted) {
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, drainMs);
      wake = () => {
        clearTimeout(t);
        resolve();
      };
      maybeDone();
    });
  }
  if (scheduler !== undefined) clearTimeout(scheduler);
  for (const t of timers) {
    clearTimeout(t);
    clearInterval(t);
  }
  signal?.removeEventListener('abort', onAbort);
  let stray = 0;
  for (const c of conns) {
    if (c instanceof UdpConnection) stray += c.stray;
    if (c.alive) {
      // Still unanswered after the drain (ERR_TIMEOUT), or when an abort cut it short (ERR_ABORTED).
      failRequests(c.sent - c.done, interrupted ? 'ERR_ABORTED' : 'ERR_TIMEOUT', 'unanswered');
      // Due but never written (in-flight limit or backpressure) when the run ended.
      unsentBy.queued += c.due - Math.min(c.due, c.sent);
    }
    c.alive = false;
    c.close();
  }
  // Measured until the last echo, or until sending stopped if the last echoes never came.
  const seconds = Math.max(1e-9, (Math.max(tLast, Math.min(tStopped, performance.now())) - t0) / 1000);
  return result({
    connected: C,
    seconds,
    scheduled,
    sent: requests,
    inFlightAtStop,
    roundTrips,
    roundTripsPerSecond: roundTrips / seconds,
    bytesSent,
    bytesReceived,
    bytesPerSecond: bytesReceived / seconds,
    stray,
    latency: recorder.summary(),
  });
}

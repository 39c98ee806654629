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
 */
import { setMaxListeners } from 'node:events';
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
  /** Requests sent in the measured run. */
  readonly requests: number;
  readonly roundTrips: number;
  readonly roundTripsPerSecond: number;
  /** Payload bytes sent and received back. */
  readonly bytesSent: number;
  readonly bytesReceived: number;
  /** Payload bytes echoed per second (one direction). */
  readonly bytesPerSecond: number;
  /** Failed connections, bad echoes, timeouts and (UDP) lost datagrams. */
  readonly errors: number;
  /** Errors by code, e.g. `{ ERR_CONN_REFUSED: 2 }`. */
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

  const errorCodes: Record<string, number> = {};
  let errors = 0;
  const countError = (err: SocketkitError): void => {
    errors++;
    errorCodes[err.code] = (errorCodes[err.code] ?? 0) + 1;
  };

  // ---- Connect phase: bounded rate, bounded concurrency, each confirmed by a one-byte echo.
  const tConnect = performance.now();
  const slots: Array<LoadConnection | undefined> = new Array<LoadConnection | undefined>(count);
  let firstError: SocketkitError | undefined;
  let opened = 0;
  let failed = 0;
  {
    const connectRate = options.connectRate ?? DEFAULT_CONNECT_RATE;
    const concurrency = Math.min(count, options.connectConcurrency ?? DEFAULT_CONNECT_CONCURRENCY);
    // One signal for the connects in flight, with room for all of them (each adds an abort listener).
    const connectAbort = new AbortController();
    setMaxListeners(concurrency + 8, connectAbort.signal);
    const forward = (): void => connectAbort.abort();
    signal?.addEventListener('abort', forward, { once: true });
    if (signal?.aborted) connectAbort.abort();
    let next = 0;
    const opener = async (): Promise<void> => {
      while (next < count && !connectAbort.signal.aborted) {
        const i = next++;
        const dueAt = tConnect + (i * 1000) / connectRate;
        const wait = dueAt - performance.now();
        if (wait > 1) await new Promise((r) => setTimeout(r, wait));
        let conn: LoadConnection | undefined;
        try {
          conn = await openConnection(protocol, ep, i, messages, { timeoutMs, signal: connectAbort.signal, ...(options.maxMessageSize !== undefined ? { maxMessageSize: options.maxMessageSize } : {}), ...(options.transport ? { transport: options.transport } : {}) });
          await conn.warmUp(timeoutMs);
          slots[i] = conn;
          opened++;
        } catch (err) {
          conn?.close();
          const e = toSocketkitError(err, what);
          firstError ??= e;
          failed++;
          countError(e);
          // A datagram over the size limit fails every connection the same way: stop at once.
          if (e.code === 'ERR_DATAGRAM_TOO_LARGE') throw e;
          // Nothing works at all (no server, wrong address): do not try thousands more.
          if (opened === 0 && failed >= concurrency) connectAbort.abort();
        }
        options.onConnecting?.(opened, failed, count);
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
  if (conns.length === 0) {
    throw firstError ?? new SocketkitError('ERR_ABORTED', `load on ${what} aborted before any connection opened`);
  }

  // ---- Measured run.
  const recorder = new LatencyRecorder();
  const C = conns.length;
  let roundTrips = 0;
  let requests = 0;
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
      recorder.record(now - (open ? scheduledAt(conn.index, seq) : conn.lastSendAt));
      roundTrips++;
      inFlight--;
      bytesReceived += conn.messageOf(seq).length;
      conn.lastProgressAt = now;
      tLast = now;
      pump(conn);
      if (!running) maybeDone();
    },
    fail(conn, err) {
      if (!conn.alive) return;
      conn.close();
      alive--;
      const unanswered = conn.sent - conn.done;
      inFlight -= unanswered;
      if (running || unanswered > 0) countError(err);
      if (alive === 0) stop();
      maybeDone();
    },
    lost(conn, _seq, err) {
      countError(err);
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
  const onAbort = (): void => stop();
  signal?.addEventListener('abort', onAbort, { once: true });
  if (signal?.aborted) stop();
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
        const conn = conns[nextK % C]!;
        if (!conn.alive) continue;
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
  if (alive > 0 && inFlight > 0) {
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
    // Requests still unanswered after the drain are errors: timeouts (UDP: each datagram lost).
    if (c instanceof UdpConnection) {
      if (c.alive) c.expire(Infinity, 0);
      stray += c.stray;
    } else if (c.alive && c.sent > c.done) {
      countError(new SocketkitError('ERR_TIMEOUT', `${c.sent - c.done} echo(es) from ${what} still outstanding at the end`));
    }
    c.alive = false;
    c.close();
  }
  // Measured until the last echo, or until sending stopped if the last echoes never came.
  const seconds = Math.max(1e-9, (Math.max(tLast, Math.min(tStopped, performance.now())) - t0) / 1000);
  return {
    target: what,
    protocol,
    mode: open ? 'open' : 'closed',
    rate: rate ?? null,
    connections: count,
    connected: C,
    connectMs,
    seconds,
    requests,
    roundTrips,
    roundTripsPerSecond: roundTrips / seconds,
    bytesSent,
    bytesReceived,
    bytesPerSecond: bytesReceived / seconds,
    errors,
    errorCodes,
    stray,
    latency: recorder.summary(),
  };
}

/**
 * `ping` over UDP (to any datagram echo) or TCP (round trips over one connection to any byte
 * echo), with loss, duplicate, reordering and late-reply accounting and exact RTT percentiles.
 *
 * Each probe carries its sequence number and send time (see `probe.ts`), so every reply is
 * attributed to the probe it answers, whatever order replies come back in, and a dumb echo
 * needs to do nothing but return bytes unchanged.
 *
 * How a reply is counted:
 * - in time, first reply for its sequence number: `received` (and its RTT is a sample); also
 *   `reordered` when a later probe was already answered, and `truncated` or `corrupt` when its
 *   bytes are not exactly what was sent;
 * - after its probe's timeout: `late` (the probe stays lost; no RTT sample);
 * - for a sequence number already answered: `duplicates`;
 * - not a probe of this run at all: `foreign` (ignored).
 *
 * Probes are sent every `intervalMs`; with `intervalMs` 0 the run is ping-pong: the next probe
 * leaves as soon as the previous one is answered or lost (one in flight, as fast as the path
 * allows — this is what the benchmark measures).
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Socket } from 'node:net';
import { SocketkitError, toSocketkitError, type ErrorCode } from '../core/errors.js';
import { formatEndpoint, type Endpoint } from '../net/endpoint.js';
import { connect } from '../net/connect.js';
import { waitDrain } from '../net/write.js';
import { DEFAULT_PING_COUNT, DEFAULT_PING_INTERVAL_MS, DEFAULT_PING_SIZE, DEFAULT_PING_TIMEOUT_MS, MAX_PING_COUNT, MAX_TCP_PROBE_SIZE } from './constants.js';
import { PROBE_HEADER_SIZE, decodeProbe, encodeProbe } from './probe.js';
import { closeQuietly, connectUdp, datagramTooLarge, toUdpError } from './socket.js';
import { summarizeRtts, type RttSummary } from './stats.js';

export type PingTransport = 'udp' | 'tcp';

/** How a reply was classified (see the module comment). */
export type PingReplyStatus = 'ok' | 'reordered' | 'truncated' | 'corrupt' | 'late' | 'duplicate';

/** What a ping run reports as it goes. */
export type PingEvent =
  | { readonly event: 'reply'; readonly seq: number; readonly bytes: number; readonly rttMs: number; readonly status: PingReplyStatus }
  | { readonly event: 'timeout'; readonly seq: number }
  | { readonly event: 'foreign'; readonly bytes: number }
  | { readonly event: 'unreachable'; readonly message: string };

export interface PingOptions {
  /** `udp` (default): datagrams to a UDP echo. `tcp`: round trips over one connection. */
  readonly transport?: PingTransport;
  /** Probes to send; 0 means until `signal` aborts (at most {@link MAX_PING_COUNT}). Default 5. */
  readonly count?: number;
  /** Milliseconds between probes; 0 is ping-pong. Default 1000. */
  readonly intervalMs?: number;
  /** Probe size in bytes, header included (at least 24). Default 64. */
  readonly size?: number;
  /** A probe unanswered this long (ms) is lost. Also the TCP connect timeout. Default 2000. */
  readonly timeoutMs?: number;
  /** Stops the run early; the summary covers what was sent (in-flight probes count as lost). */
  readonly signal?: AbortSignal;
  /** Receives every reply, timeout and oddity. */
  readonly onEvent?: (e: PingEvent) => void;
  /** Called with the round-trip time of each probe answered in time (its first reply), µs: for an interval log. */
  readonly onLatency?: (us: number) => void;
  /** Called with each probe lost (`ERR_TIMEOUT`, n = 1). */
  readonly onError?: (code: string, n: number) => void;
}

/** The result of a ping run. */
export interface PingSummary {
  readonly target: string;
  readonly transport: PingTransport;
  readonly size: number;
  readonly sent: number;
  /** Distinct probes answered in time. */
  readonly received: number;
  /** Percentage of sent probes not answered in time. */
  readonly lossPercent: number;
  readonly duplicates: number;
  readonly reordered: number;
  readonly late: number;
  readonly truncated: number;
  readonly corrupt: number;
  readonly foreign: number;
  /** ICMP port-unreachable reports (UDP: nothing listening at the target). */
  readonly unreachable: number;
  readonly rtt: RttSummary;
  /** Milliseconds from the first probe to the end of the run. */
  readonly elapsedMs: number;
  /** True when the run was stopped by `signal`. */
  readonly interrupted: boolean;
  /** Set when a transport failure ended the run early (the TCP connection closed, ...). */
  readonly error?: { readonly code: ErrorCode; readonly message: string };
}

/** Sends probes; the run hands it received bytes through the callbacks given at open. */
interface ProbeChannel {
  readonly maxSize: number;
  /** Resolves when the probe is handed to the OS (TCP: waits for 'drain' first). */
  send(probe: Buffer): void | Promise<void>;
  close(): Promise<void>;
}

interface ChannelHandlers {
  readonly record: (bytes: Buffer) => void;
  readonly unreachable: (message: string) => void;
  readonly fatal: (err: SocketkitError) => void;
}

// Sequence number states.
const PENDING = 0;
const ANSWERED = 1;
const LOST = 2;

/** Validates options and fills in defaults. */
function resolveOptions(options: PingOptions): Required<Omit<PingOptions, 'signal' | 'onEvent' | 'onLatency' | 'onError'>> {
  const transport = options.transport ?? 'udp';
  const count = options.count ?? DEFAULT_PING_COUNT;
  const intervalMs = options.intervalMs ?? DEFAULT_PING_INTERVAL_MS;
  const size = options.size ?? DEFAULT_PING_SIZE;
  const timeoutMs = options.timeoutMs ?? DEFAULT_PING_TIMEOUT_MS;
  const usage = (m: string): SocketkitError => new SocketkitError('ERR_INVALID_ARG', m);
  if (transport !== 'udp' && transport !== 'tcp') throw usage(`transport must be udp or tcp, not ${String(transport)}`);
  if (!Number.isInteger(count) || count < 0 || count > MAX_PING_COUNT) throw usage(`count must be a whole number from 0 to ${MAX_PING_COUNT}`);
  if (!Number.isFinite(intervalMs) || intervalMs < 0) throw usage('interval must be 0 or more milliseconds');
  if (!Number.isInteger(size) || size < PROBE_HEADER_SIZE) throw usage(`size must be at least ${PROBE_HEADER_SIZE} bytes (the probe header)`);
  if (transport === 'tcp' && size > MAX_TCP_PROBE_SIZE) throw usage(`size over TCP must be at most ${MAX_TCP_PROBE_SIZE} bytes`);
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw usage('timeout must be more than 0 ms');
  return { transport, count, intervalMs, size, timeoutMs };
}

async function openUdpChannel(ep: Endpoint, size: number, what: string, h: ChannelHandlers, signal?: AbortSignal): Promise<ProbeChannel> {
  const { socket, remote, maxPayload } = await connectUdp(ep, signal);
  if (size > maxPayload) {
    await closeQuietly(socket);
    throw datagramTooLarge(size, remote.family, what);
  }
  socket.on('message', (msg: Buffer) => h.record(msg));
  socket.on('error', (err) => {
    const e = toUdpError(err, what);
    if (e.code === 'ERR_CONN_REFUSED') h.unreachable(e.message);
    else h.fatal(e);
  });
  return {
    maxSize: maxPayload,
    send(probe) {
      socket.send(probe, (err) => {
        if (!err) return;
        const e = toUdpError(err, what);
        if (e.code === 'ERR_CONN_REFUSED') h.unreachable(e.message);
        else h.fatal(e);
      });
    },
    close: () => closeQuietly(socket),
  };
}

async function openTcpChannel(ep: Endpoint, size: number, timeoutMs: number, what: string, h: ChannelHandlers, signal?: AbortSignal): Promise<ProbeChannel> {
  const socket: Socket = await connect(ep, { timeoutMs, ...(signal ? { signal } : {}) });
  // A byte echo returns a stream: cut it back into probe-sized records. At most one partial
  // record is held, so memory stays bounded whatever the peer sends.
  let parts: Buffer[] = [];
  let partBytes = 0;
  let closing = false;
  socket.on('data', (chunk: Buffer) => {
    let off = 0;
    if (partBytes > 0) {
      const need = size - partBytes;
      if (chunk.length < need) {
        parts.push(chunk);
        partBytes += chunk.length;
        return;
      }
      parts.push(chunk.subarray(0, need));
      h.record(Buffer.concat(parts, size));
      parts = [];
      partBytes = 0;
      off = need;
    }
    while (chunk.length - off >= size) {
      h.record(chunk.subarray(off, off + size));
      off += size;
    }
    if (off < chunk.length) {
      parts.push(chunk.subarray(off));
      partBytes = chunk.length - off;
    }
  });
  socket.on('error', (err) => h.fatal(toSocketkitError(err, what)));
  socket.on('close', () => {
    if (!closing) h.fatal(new SocketkitError('ERR_CONN_CLOSED', `${what} closed the connection during the ping`));
  });
  return {
    maxSize: MAX_TCP_PROBE_SIZE,
    async send(probe) {
      if (socket.writableNeedDrain) await waitDrain(socket);
      socket.write(probe);
    },
    close() {
      closing = true;
      return new Promise<void>((resolve) => {
        if (socket.closed) resolve();
        else {
          socket.once('close', () => resolve());
          socket.destroy();
        }
      });
    },
  };
}

/**
 * Pings the echo at `ep` and resolves with the summary.
 *
 * Rejects before the first probe for bad options (ERR_USAGE), an oversize probe
 * (ERR_DATAGRAM_TOO_LARGE), a `unix:` address over UDP (ERR_UDP_UNIX_UNSUPPORTED) and failures
 * to connect. Once running, a transport failure ends the run and is reported in `error`.
 *
 * @example
 * ```ts
 * const s = await ping({ kind: 'inet', host: '127.0.0.1', port: 9800 }, { count: 10, intervalMs: 100 });
 * console.log(`${s.lossPercent}% loss, p99 ${s.rtt.p99} ms`);
 * ```
 */
export async function ping(ep: Endpoint, options: PingOptions = {}): Promise<PingSummary> {
  const o = resolveOptions(options);
  const what = formatEndpoint(ep);
  const limit = o.count === 0 ? MAX_PING_COUNT : o.count;
  const session = randomBytes(4).readUInt32BE(0);
  const onEvent = options.onEvent;
  const onLatency = options.onLatency;
  const onError = options.onError;
  const signal = options.signal;
  const timeoutNs = o.timeoutMs * 1e6;

  // Per-sequence tables, grown by doubling (a run of unknown length starts small).
  let state = new Uint8Array(Math.min(limit, 1024));
  let sentRel = new Float64Array(state.length); // ns since t0, as sent
  const grow = (): void => {
    const n = Math.min(limit, state.length * 2);
    const s = new Uint8Array(n);
    s.set(state);
    const t = new Float64Array(n);
    t.set(sentRel);
    state = s;
    sentRel = t;
  };

  const rtts: number[] = [];
  let sent = 0;
  let settled = 0; // probes answered or lost
  let highestAnswered = -1;
  let expireCursor = 0; // every seq below it is settled
  const c = { duplicates: 0, reordered: 0, late: 0, truncated: 0, corrupt: 0, foreign: 0, unreachable: 0 };
  let t0 = 0n;
  let startMs = 0;
  let finished = false;
  let interrupted = false;
  let error: SocketkitError | undefined;
  let expiryTimer: NodeJS.Timeout | undefined;
  let sendTimer: NodeJS.Timeout | undefined;
  let finish: () => void = () => undefined;
  const ended = new Promise<void>((resolve) => {
    finish = () => {
      if (finished) return;
      finished = true;
      if (expiryTimer !== undefined) clearTimeout(expiryTimer);
      if (sendTimer !== undefined) clearTimeout(sendTimer);
      resolve();
    };
  });

  const complete = (): boolean => sent >= limit && settled === sent;

  const onRecord = (bytes: Buffer): void => {
    if (finished) return;
    const now = process.hrtime.bigint();
    const d = decodeProbe(bytes, session);
    if (d.kind === 'foreign') {
      c.foreign++;
      onEvent?.({ event: 'foreign', bytes: bytes.length });
      return;
    }
    const { seq } = d.probe;
    const rel = Number(d.probe.sentNs - t0);
    // A sequence number never sent, or a send time that is not the one recorded, is not an
    // answer to any probe of ours (a corrupted header), so it cannot be attributed.
    if (seq >= sent || sentRel[seq] !== rel) {
      c.corrupt++;
      onEvent?.({ event: 'reply', seq, bytes: bytes.length, rttMs: NaN, status: 'corrupt' });
      return;
    }
    const rttMs = Number(now - d.probe.sentNs) / 1e6;
    const st = state[seq]!;
    if (st !== PENDING) {
      const status: PingReplyStatus = st === LOST ? 'late' : 'duplicate';
      if (st === LOST) {
        c.late++;
        state[seq] = ANSWERED; // a second copy of a late reply is a duplicate
      } else c.duplicates++;
      onEvent?.({ event: 'reply', seq, bytes: bytes.length, rttMs, status });
      return;
    }
    state[seq] = ANSWERED;
    settled++;
    rtts.push(rttMs);
    onLatency?.(rttMs * 1000);
    let status: PingReplyStatus = 'ok';
    if (d.kind === 'truncated') {
      c.truncated++;
      status = 'truncated';
    } else if (d.kind === 'corrupt') {
      c.corrupt++;
      status = 'corrupt';
    } else if (seq < highestAnswered) {
      c.reordered++;
      status = 'reordered';
    }
    if (seq > highestAnswered) highestAnswered = seq;
    onEvent?.({ event: 'reply', seq, bytes: bytes.length, rttMs, status });
    if (complete()) finish();
    else if (o.intervalMs === 0 && seq === sent - 1) sendNext();
  };

  /** Marks every pending probe past its timeout as lost; re-arms for the next one. */
  const sweep = (): void => {
    expiryTimer = undefined;
    if (finished) return;
    const nowRel = Number(process.hrtime.bigint() - t0);
    let lostLast = false;
    while (expireCursor < sent) {
      const s = state[expireCursor]!;
      if (s === PENDING) {
        if (sentRel[expireCursor]! + timeoutNs > nowRel) break;
        state[expireCursor] = LOST;
        settled++;
        onError?.('ERR_TIMEOUT', 1);
        onEvent?.({ event: 'timeout', seq: expireCursor });
        if (expireCursor === sent - 1) lostLast = true;
      }
      expireCursor++;
    }
    if (complete()) return finish();
    armExpiry();
    if (o.intervalMs === 0 && lostLast) sendNext();
  };

  const armExpiry = (): void => {
    if (expiryTimer !== undefined || expireCursor >= sent) return;
    const nowRel = Number(process.hrtime.bigint() - t0);
    const due = sentRel[expireCursor]! + timeoutNs - nowRel;
    expiryTimer = setTimeout(sweep, Math.max(0, Math.ceil(due / 1e6)));
  };

  const fatal = (err: SocketkitError): void => {
    if (finished) return; // e.g. a write waiting for 'drain' fails when close() destroys the socket
    error ??= err;
    finish();
  };

  const h: ChannelHandlers = {
    record: onRecord,
    unreachable: (message) => {
      if (finished) return;
      c.unreachable++;
      onEvent?.({ event: 'unreachable', message });
    },
    fatal,
  };

  const channel = o.transport === 'udp' ? await openUdpChannel(ep, o.size, what, h, signal) : await openTcpChannel(ep, o.size, o.timeoutMs, what, h, signal);

  let sending = false;
  let wantNext = false;
  /** Sends the next probe (one at a time: a TCP send may wait for 'drain'). */
  function sendNext(): void {
    if (finished || sent >= limit) return;
    if (sending) {
      wantNext = true; // ping-pong: the reply beat the drain; send once the write is done
      return;
    }
    const seq = sent;
    if (seq >= state.length) grow();
    const sentNs = process.hrtime.bigint();
    const probe = encodeProbe({ session, seq, size: o.size, sentNs });
    sentRel[seq] = Number(sentNs - t0);
    sent++;
    let r: void | Promise<void>;
    try {
      r = channel.send(probe);
    } catch (err) {
      return fatal(o.transport === 'udp' ? toUdpError(err, what) : toSocketkitError(err, what));
    }
    armExpiry();
    if (r instanceof Promise) {
      sending = true;
      r.then(
        () => {
          sending = false;
          if (wantNext) {
            wantNext = false;
            sendNext();
          } else schedule();
        },
        (err: unknown) => fatal(toSocketkitError(err, what)),
      );
    } else schedule();
  }

  /** Interval mode: arms the timer for the next probe at t0 + n * interval (no drift). */
  function schedule(): void {
    if (o.intervalMs === 0 || finished || sent >= limit || sendTimer !== undefined) return;
    const due = startMs + sent * o.intervalMs - performance.now();
    sendTimer = setTimeout(() => {
      sendTimer = undefined;
      sendNext();
    }, Math.max(0, due));
  }

  const onAbort = (): void => {
    interrupted = true;
    finish();
  };
  if (signal?.aborted) onAbort();
  else signal?.addEventListener('abort', onAbort, { once: true });

  t0 = process.hrtime.bigint();
  startMs = performance.now();
  if (!finished) sendNext();
  await ended;
  const elapsedMs = performance.now() - startMs;
  signal?.removeEventListener('abort', onAbort);
  await channel.close();

  const received = rtts.length;
  return {
    target: what,
    transport: o.transport,
    size: o.size,
    sent,
    received,
    lossPercent: sent === 0 ? 0 : ((sent - received) / sent) * 100,
    ...c,
    rtt: summarizeRtts(rtts),
    elapsedMs,
    interrupted,
    ...(error ? { error: { code: error.code, message: error.message } } : {}),
  };
}

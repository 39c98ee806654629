/**
 * The throughput test client (`socketkit perf`): opens a test on a `perf-server`, runs it, and
 * returns both sides' figures. The result's `bitsPerSecond` is the test's total rate as
 * received: the server's count for what the client sent, the client's for what the server sent.
 */
import { createSocket, type Socket as DgramSocket } from 'node:dgram';
import { randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import { once, setMaxListeners } from 'node:events';
import { SocketkitError, asErrorCode, toSocketkitError } from '../core/errors.js';
import { connect, type ConnectTransport } from '../net/connect.js';
import { resolveInet, type Endpoint } from '../net/endpoint.js';
import {
  LineSplitter,
  PERF_LIMITS,
  UDP_FLAG_HELLO,
  UDP_HEADER,
  controlHello,
  dataHello,
  encodeControl,
  parseControl,
  readUdpHeader,
  shareOf,
  streamPlan,
  testTag,
  writeUdpHeader,
  type ControlMessage,
  type StreamFigures,
  type TestParams,
} from './protocol.js';
import { StreamMeter, total } from './meter.js';
import { receiveTcp, sendTcp } from './tcp.js';
import { UdpReceiverStats } from './udp-receiver.js';
import { nowUs, sendPaced, type PacingFigures } from './udp-sender.js';
import { IntervalMerger, IntervalReporter, type PeerInterval, type PerfInterval } from './intervals.js';
import { DEFAULT_PERF_DURATION_MS, DEFAULT_PERF_TCP_LENGTH, DEFAULT_PERF_UDP_LENGTH, DEFAULT_PERF_UDP_RATE } from './defaults.js';
import { UDP_BUFFER_BYTES, UDP_DRAIN_MS } from './server.js';

export interface PerfOptions {
  readonly proto?: 'tcp' | 'udp';
  /** Parallel streams (each way with `bidir`). Default 1. */
  readonly streams?: number;
  /** The server sends. */
  readonly reverse?: boolean;
  /** Both send at once. */
  readonly bidir?: boolean;
  /** How long the senders send, ms, after the warm-up. Default 10 s; ignored when `bytes` is given. */
  readonly durationMs?: number;
  /** Bytes each direction sends in all, split between its streams. */
  readonly bytes?: number;
  /** Bytes per write (TCP) or per datagram (UDP). */
  readonly length?: number;
  /** Warm-up left out of the results, ms. */
  readonly omitMs?: number;
  /** UDP: target rate per stream, bits/s. */
  readonly rate?: number;
  /** TCP: send with sendfile(2) from a file of zeros where the native helper can. */
  readonly zeroCopy?: boolean;
  /** Report intervals this often, ms (with `onInterval`). */
  readonly intervalMs?: number;
  readonly onInterval?: (i: PerfInterval) => void;
  /** The test starts now (the client said start). */
  readonly onStart?: () => void;
  /** UDP streams this side receives: each transit-time difference |D| (µs) of RFC 3550's jitter estimate. */
  readonly onUdpDifference?: (stream: number, us: number) => void;
  readonly transport?: ConnectTransport;
  readonly signal?: AbortSignal;
  readonly connectTimeoutMs?: number;
}

export interface DirectionTotal {
  readonly bytes: number;
  readonly seconds: number;
  readonly bitsPerSecond: number;
}

export interface PerfResult {
  readonly test: string;
  readonly params: TestParams;
  /** Every stream as its receiver counted it. */
  readonly received: readonly StreamFigures[];
  /** Every stream as its sender counted it. */
  readonly sent: readonly StreamFigures[];
  /** All received, every direction: bytes, and the rate over the longest stream's time. */
  readonly bytes: number;
  readonly seconds: number;
  readonly bitsPerSecond: number;
  readonly up?: DirectionTotal;
  readonly down?: DirectionTotal;
  /** Whether this side's TCP senders used sendfile(2). */
  readonly zeroCopy: boolean;
  /** UDP senders on this side: how evenly they paced. */
  readonly pacing?: readonly PacingFigures[];
}

/** The parameters a test runs with, defaults filled in (checked: ERR_INVALID_ARG). */
export function perfParams(o: PerfOptions): TestParams {
  const proto = o.proto ?? 'tcp';
  const length = o.length ?? (proto === 'udp' ? DEFAULT_PERF_UDP_LENGTH : DEFAULT_PERF_TCP_LENGTH);
  const p: TestParams = {
    proto,
    streams: o.streams ?? 1,
    reverse: o.reverse ?? false,
    bidir: o.bidir ?? false,
    durationMs: o.bytes !== undefined && o.bytes > 0 ? 0 : Math.round(o.durationMs ?? DEFAULT_PERF_DURATION_MS),
    bytes: o.bytes ?? 0,
    length,
    omitMs: Math.round(o.omitMs ?? 0),
    rate: proto === 'udp' ? Math.round(o.rate ?? DEFAULT_PERF_UDP_RATE) : 0,
    zeroCopy: o.zeroCopy ?? false,
    intervalMs: o.onInterval && o.intervalMs !== undefined && o.intervalMs > 0 ? Math.max(1, Math.round(o.intervalMs)) : 0,
  };
  if (!Number.isInteger(p.streams) || p.streams < 1 || p.streams > 128) throw new SocketkitError('ERR_INVALID_ARG', 'streams must be 1 to 128');
  if (proto === 'udp' && (length < UDP_HEADER || length > 65_507)) throw new SocketkitError('ERR_INVALID_ARG', `a UDP datagram must be ${UDP_HEADER} to 65,507 bytes`);
  if (proto === 'udp' && !(p.rate > 0)) throw new SocketkitError('ERR_INVALID_ARG', 'a UDP test needs a rate above 0');
  if (p.durationMs <= 0 && p.bytes <= 0) throw new SocketkitError('ERR_INVALID_ARG', 'a test needs a duration or a byte count above 0');
  return p;
}

/** The control connection, as messages: `next()` the one after the last, in order. */
class Control {
  readonly socket: Socket;
  readonly #queue: ControlMessage[] = [];
  readonly #lines = new LineSplitter();
  #failure: SocketkitError | undefined;
  #wake: (() => void) | undefined;
  #finished = false;
  /** The server's interval figures, as they come (not queued). */
  onInterval: ((p: PeerInterval) => void) | undefined;
  /** The control connection failed mid-test (called once): the test stops at once, whatever it is waiting for. */
  onFailure: ((e: SocketkitError) => void) | undefined;

  constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      try {
        for (const line of this.#lines.push(chunk)) {
          const m = parseControl(line);
          if (m.type === 'interval') this.onInterval?.(m);
          else this.#queue.push(m);
        }
      } catch (err) {
        this.#fail(toSocketkitError(err));
        socket.destroy();
      }
      this.#notify();
    });
    socket.on('error', (err) => this.#fail(new SocketkitError('ERR_PERF_INTERRUPTED', `the server went away mid-test (${toSocketkitError(err).code})`, { cause: err })));
    const gone = (): void => this.#fail(new SocketkitError('ERR_PERF_INTERRUPTED', 'the server closed the test before its result'));
    // The socket is half-open: the server's end is its going away, whether or not it is ever closed.
    socket.once('end', gone);
    socket.once('close', gone);
  }

  #fail(e: SocketkitError): void {
    if (!this.#finished && this.#failure === undefined) {
      this.#failure = e;
      this.onFailure?.(e);
    }
    this.#notify();
  }

  #notify(): void {
    const w = this.#wake;
    this.#wake = undefined;
    w?.();
  }

  /** The test is over: a close from now on is no failure. */
  finish(): void {
    this.#finished = true;
  }

  send(m: ControlMessage): void {
    this.socket.write(encodeControl(m));
  }

  /** The next message; a server's `error` rejects with its code. */
  async next(signal: AbortSignal): Promise<ControlMessage> {
    for (;;) {
      const m = this.#queue.shift();
      if (m !== undefined) {
        if (m.type === 'error') throw new SocketkitError(asErrorCode(m.code), `the server: ${m.message}`);
        return m;
      }
      if (this.#failure) throw this.#failure;
      if (signal.aborted) throw signal.reason instanceof SocketkitError ? signal.reason : new SocketkitError('ERR_ABORTED', 'throughput test stopped');
      await new Promise<void>((resolve) => {
        const onAbort = (): void => {
          this.#wake = undefined;
          resolve();
        };
        signal.addEventListener('abort', onAbort, { once: true });
        this.#wake = () => {
          signal.removeEventListener('abort', onAbort);
          resolve();
        };
      });
    }
  }

  async expect<T extends ControlMessage['type']>(type: T, signal: AbortSignal): Promise<Extract<ControlMessage, { type: T }>> {
    const m = await this.next(signal);
    if (m.type !== type) throw new SocketkitError('ERR_PERF_PROTOCOL', `throughput test protocol: '${m.type}' where '${type}' was due`);
    return m as Extract<ControlMessage, { type: T }>;
  }
}

function udpBuffers(u: DgramSocket): void {
  try {
    u.setRecvBufferSize(UDP_BUFFER_BYTES);
    u.setSendBufferSize(UDP_BUFFER_BYTES);
  } catch {
    // the kernel's limit stands (net.core.rmem_max)
  }
}

/** A connection error while the test runs is the server going away. */
function interrupted(err: unknown, signal: AbortSignal): SocketkitError {
  if (signal.aborted && signal.reason instanceof SocketkitError) return signal.reason;
  const e = toSocketkitError(err);
  if (e.code === 'ERR_PERF_INTERRUPTED' || e.code === 'ERR_ABORTED') return e;
  return new SocketkitError('ERR_PERF_INTERRUPTED', `the server went away mid-test (${e.code}: ${e.message})`, { cause: err });
}

/** Resolves at the peer's FIN on `socket`; rejects if it closes without one. */
function endOf(socket: Socket, stream: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let ended = false;
    socket.once('end', () => {
      ended = true;
      socket.end();
      resolve();
    });
    socket.once('close', () => {
      if (!ended) reject(new SocketkitError('ERR_PERF_INTERRUPTED', `the server's stream ${stream} closed mid-test`));
    });
  });
}

/** Runs one throughput test against the `perf-server` at `ep`. */
export async function runPerf(ep: Endpoint, options: PerfOptions = {}): Promise<PerfResult> {
  const params = perfParams(options);
  if (params.proto === 'udp' && ep.kind === 'unix') throw new SocketkitError('ERR_UDP_UNIX_UNSUPPORTED', 'UDP tests need a host and port, not a Unix socket');
  const test = randomUUID();
  const tag = testTag(test);
  const ac = new AbortController();
  const signal = options.signal ? AbortSignal.any([options.signal, ac.signal]) : ac.signal;
  // Every stream's connect and sender listens to it at once: up to 2 x 128 streams.
  setMaxListeners(4 * PERF_LIMITS.streams + 8, signal);
  const connectOptions = { signal, noDelay: true, ...(options.connectTimeoutMs !== undefined ? { timeoutMs: options.connectTimeoutMs } : {}) };
  const plan = streamPlan(params);
  const meters = plan.map((p) => {
    const m = new StreamMeter(p.stream, p.dir, p.dir === 'up' ? 'sent' : 'received');
    if (params.proto === 'udp' && p.dir === 'down') {
      const stats = new UdpReceiverStats();
      const hook = options.onUdpDifference;
      if (hook) stats.onDifference = (us) => hook(p.stream, us);
      m.udp = stats;
    }
    return m;
  });
  const sockets: Socket[] = [];
  let started = false;
  let udp: DgramSocket | undefined;
  let rx: DgramSocket | undefined;
  let helloTimer: NodeJS.Timeout | undefined;
  let omitTimer: NodeJS.Timeout | undefined;
  let reporter: IntervalReporter | undefined;
  let merger: IntervalMerger | undefined;
  let drainTimer: NodeJS.Timeout | undefined;
  const control = new Control(await connect(ep, connectOptions, options.transport));
  sockets.push(control.socket);
  // The server gone stops every sender and receiver now: a UDP sender would otherwise send on to its end time.
  control.onFailure = (e) => ac.abort(e);
  try {
    control.socket.write(controlHello(test, params));
    const accepted = await control.expect('accepted', signal);
    const lastArrival = new Map<number, number>();
    let udpWake: (() => void) | undefined;
    let udpTarget: { address: string; port: number; family: 4 | 6 } | undefined;
    const dataSockets: Socket[] = [];
    if (params.proto === 'tcp') {
      await Promise.all(
        plan.map(async (p, i) => {
          const s = await connect(ep, connectOptions, options.transport);
          sockets.push(s);
          dataSockets[i] = s;
          s.on('error', () => undefined);
          // Closed before the test starts: refused (the server's connection limit, its access list) or the server gone.
          s.once('close', () => {
            if (!started) ac.abort(new SocketkitError('ERR_PERF_INTERRUPTED', `the server closed stream ${p.stream} before the test started (refused, or gone)`));
          });
          s.write(dataHello(test, p.stream));
        }),
      );
    } else {
      if (ep.kind !== 'inet' || accepted.udpPort === undefined) throw new SocketkitError('ERR_PERF_PROTOCOL', 'throughput test protocol: a UDP test accepted without a UDP port');
      const { address, family } = await resolveInet(ep);
      udpTarget = { address, port: accepted.udpPort, family: family === 6 ? 6 : 4 };
      const kind = family === 6 ? 'udp6' : 'udp4';
      const onDatagram = (msg: Buffer): void => {
        const h = readUdpHeader(msg);
        if (!h || h.tag !== tag) return;
        const meter = meters.find((m) => m.stream === h.stream && m.udp);
        if (!meter?.udp) return;
        const at = performance.now();
        meter.udp.record(h.seq, h.sendUs, at * 1000, msg.length);
        meter.add(msg.length);
        lastArrival.set(h.stream, at);
        udpWake?.();
      };
      const port = accepted.udpPort;
      if (plan.some((p) => p.dir === 'up')) {
        const u = createSocket(kind);
        udp = u;
        u.on('error', () => undefined);
        u.connect(port, address);
        await once(u, 'connect', { signal });
        udpBuffers(u);
      }
      if (plan.some((p) => p.dir === 'down')) {
        // Unconnected, so it takes the server's datagrams from whatever port they leave; the
        // server learns where to send from this hello, repeated until it says ready.
        const r = createSocket(kind);
        rx = r;
        r.on('error', () => undefined);
        r.on('message', onDatagram);
        r.bind(0);
        await once(r, 'listening', { signal });
        udpBuffers(r);
        const hello = Buffer.alloc(UDP_HEADER);
        const sendHello = (): void => {
          writeUdpHeader(hello, tag, 0, UDP_FLAG_HELLO, 0, nowUs());
          r.send(hello, port, address);
        };
        sendHello();
        helloTimer = setInterval(sendHello, 100);
      }
    }
    await control.expect('ready', signal);
    started = true;
    if (helloTimer !== undefined) clearInterval(helloTimer);
    control.send({ type: 'start' });
    const startAt = performance.now();
    options.onStart?.();
    const mark = (): void => {
      const now = performance.now();
      for (const m of meters) m.mark(now);
    };
    if (params.omitMs > 0) omitTimer = setTimeout(mark, params.omitMs);
    else mark();
    if (options.onInterval && params.intervalMs > 0) {
      const onInterval = options.onInterval;
      if (params.proto === 'udp' && plan.some((p) => p.dir === 'up')) {
        // The server's receiver figures of the datagrams sent from here join each interval; one
        // waits for them up to a second (at least three intervals).
        const m = new IntervalMerger(Math.max(3, Math.ceil(1000 / params.intervalMs)), onInterval);
        merger = m;
        control.onInterval = (p) => m.peer(p);
        reporter = new IntervalReporter(meters, startAt, params.intervalMs, params.omitMs, (i, index) => m.local(i, index));
      } else {
        reporter = new IntervalReporter(meters, startAt, params.intervalMs, params.omitMs, (i) => onInterval(i));
      }
    }
    const until = startAt + params.omitMs + params.durationMs;
    const up = plan.filter((p) => p.dir === 'up');
    let zeroCopy = false;
    const pacing: PacingFigures[] = [];
    const senders: Promise<unknown>[] = [];
    const work: Promise<unknown>[] = plan.map(async (p, i) => {
      const meter = meters[i]!;
      const share = params.bytes > 0 ? shareOf(params.bytes, p.dir === 'up' ? up.length : plan.length - up.length, p.dir === 'up' ? up.indexOf(p) : i - up.length) : 0;
      if (params.proto === 'tcp') {
        const socket = dataSockets[i]!;
        if (p.dir === 'up') {
          const sending = sendTcp(socket, meter, { length: params.length, until, bytes: share, zeroCopy: params.zeroCopy, signal }).catch((err: unknown) => {
            throw interrupted(err, signal);
          });
          senders.push(sending);
          const r = await sending;
          zeroCopy ||= r.zeroCopy;
          await endOf(socket, p.stream).catch(() => undefined);
        } else {
          await receiveTcp(socket, meter, undefined, `the server's stream ${p.stream}`, signal);
          socket.end();
        }
      } else if (p.dir === 'up') {
        const sending = sendPaced(meter, { socket: udp!, ...(udpTarget ? { target: udpTarget } : {}), tag, stream: p.stream, length: params.length, rate: params.rate, until, bytes: share, signal }).catch((err: unknown) => {
          // A send refused (the server's port closed) or stopped by the control connection's close: the server went away.
          throw interrupted(err, signal);
        });
        senders.push(sending);
        pacing.push(await sending);
      }
    });
    // Every stream's sockets fail loudly if the server goes: the sender's writes and the receiver's close.
    const result = (async () => {
      if (up.length > 0) {
        await Promise.all(senders);
        control.send({
          type: 'done',
          sent: meters.filter((m) => m.role === 'sent').map((m) => ({ stream: m.stream, bytes: m.bytes, ...(params.proto === 'udp' ? { packets: Math.round(m.bytes / params.length) } : {}) })),
        });
      }
      return control.expect('result', signal);
    })();
    const [server] = await Promise.all([result, ...work]);
    if (params.proto === 'udp') {
      // Datagrams the server sent may still be on the way: wait for its count, at most UDP_DRAIN_MS.
      for (const f of server.sent) {
        const m = meters.find((x) => x.stream === f.stream && x.udp);
        if (m?.udp && f.udp?.sent !== undefined) m.udp.sent = f.udp.sent;
      }
      const receivers = meters.filter((m) => m.udp);
      const complete = (): boolean => receivers.every((m) => m.udp!.unique >= (m.udp!.sent ?? 0));
      if (!complete()) {
        await new Promise<void>((resolve) => {
          drainTimer = setTimeout(resolve, UDP_DRAIN_MS);
          udpWake = () => {
            if (complete()) resolve();
          };
        });
      }
      for (const m of receivers) m.end(lastArrival.get(m.stream) ?? performance.now());
    }
    control.finish();
    reporter?.stop();
    reporter = undefined;
    merger?.flush();
    merger = undefined;
    const now = performance.now();
    const mine = meters.map((m) => m.figures(now));
    const received = [...server.received, ...mine.filter((f) => f.dir === 'down')].sort((a, b) => a.stream - b.stream);
    const sent = [...mine.filter((f) => f.dir === 'up'), ...server.sent].sort((a, b) => a.stream - b.stream);
    const all = total(received);
    const upFig = received.filter((f) => f.dir === 'up');
    const downFig = received.filter((f) => f.dir === 'down');
    return {
      test,
      params,
      received,
      sent,
      ...all,
      ...(upFig.length > 0 ? { up: total(upFig) } : {}),
      ...(downFig.length > 0 ? { down: total(downFig) } : {}),
      zeroCopy,
      ...(pacing.length > 0 ? { pacing } : {}),
    };
  } catch (err) {
    const e = toSocketkitError(err);
    ac.abort(e);
    throw options.signal?.aborted ? new SocketkitError('ERR_ABORTED', 'throughput test stopped', { cause: err }) : e;
  } finally {
    reporter?.stop();
    if (helloTimer !== undefined) clearInterval(helloTimer);
    if (omitTimer !== undefined) clearTimeout(omitTimer);
    if (drainTimer !== undefined) clearTimeout(drainTimer);
    control.finish();
    control.socket.end();
    for (const s of sockets.slice(1)) s.destroy();
    udp?.close();
    rx?.close();
    if (!ac.signal.aborted) ac.abort(new SocketkitError('ERR_ABORTED', 'test over'));
  }
}

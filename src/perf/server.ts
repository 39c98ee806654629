/**
 * The throughput test server (`socketkit perf-server`): a protocol on the managed server, so it
 * has the connection limit, TLS and the allow/deny lists, and serves any number of tests at
 * once, from any number of clients. Each test is its own object, found by the id its control
 * connection gave, with its own streams, meters and result: tests never wait for each other
 * and one failing fails only itself.
 *
 * UDP tests: the datagrams go to a UDP socket bound to the same port number (found by the
 * datagram's test tag). A reverse UDP test sends from a socket of its own, connected to the
 * address the client's hello datagram came from.
 */
import { createSocket, type RemoteInfo, type Socket as DgramSocket } from 'node:dgram';
import type { Socket } from 'node:net';
import { once, setMaxListeners } from 'node:events';
import { SocketkitError, toSocketkitError } from '../core/errors.js';
import type { Endpoint } from '../net/endpoint.js';
import { peerOf, startServer, type ManagedServer, type ManagedServerOptions } from '../server/server.js';
import {
  LineSplitter,
  PERF_LIMITS,
  UDP_FLAG_HELLO,
  encodeControl,
  parseControl,
  parseHello,
  readUdpHeader,
  shareOf,
  streamPlan,
  testTag,
  type PlannedStream,
  type StreamFigures,
  type TestParams,
} from './protocol.js';
import { StreamMeter, total } from './meter.js';
import { movedOffSocket, receiveTcp, sendTcp } from './tcp.js';
import { UdpReceiverStats } from './udp-receiver.js';
import { sendPaced } from './udp-sender.js';
import { IntervalReporter, type PerfInterval } from './intervals.js';

/** After the sender's count arrives, how long a UDP receiver waits for datagrams still on the way, ms. */
export const UDP_DRAIN_MS = 250;
/** Socket buffers asked for on UDP sockets (the kernel may give less): room for bursts of the event loop. */
export const UDP_BUFFER_BYTES = 8 * 1024 * 1024;

/** What the server reports about each test. */
export type PerfServerEvent =
  | {
      readonly event: 'test-start';
      readonly test: string;
      readonly peer: string;
      readonly proto: 'tcp' | 'udp';
      readonly streams: number;
      readonly reverse: boolean;
      readonly bidir: boolean;
    }
  | {
      readonly event: 'test-end';
      readonly test: string;
      readonly peer: string;
      readonly received: readonly StreamFigures[];
      readonly sent: readonly StreamFigures[];
      /** What the server received, bits/s. */
      readonly bitsPerSecond: number;
      /** What the server sent, bits/s. */
      readonly sentBitsPerSecond: number;
    }
  | ({ readonly event: 'test-interval'; readonly test: string; readonly peer: string } & PerfInterval)
  | { readonly event: 'test-failed'; readonly test: string; readonly peer: string; readonly code: string; readonly message: string };

export interface PerfServerOptions extends Omit<ManagedServerOptions, 'protocol' | 'activity'> {
  readonly onTest?: (e: PerfServerEvent) => void;
  /** Serve UDP tests too (a UDP socket on the same port). Default true for TCP addresses. */
  readonly udp?: boolean;
}

function tryBuffers(s: DgramSocket): void {
  try {
    s.setRecvBufferSize(UDP_BUFFER_BYTES);
    s.setSendBufferSize(UDP_BUFFER_BYTES);
  } catch {
    // The kernel's limit stands (net.core.rmem_max); the test still runs.
  }
}

interface ServerContext {
  readonly tests: Map<string, ServerTest>;
  readonly byTag: Map<number, ServerTest>;
  readonly udpPort: number | undefined;
  readonly onTest: ((e: PerfServerEvent) => void) | undefined;
}

/** One test, from its control connection's hello to its close. */
class ServerTest {
  readonly id: string;
  readonly params: TestParams;
  readonly #control: Socket;
  readonly #peer: string;
  readonly #ctx: ServerContext;
  readonly #plan: readonly PlannedStream[];
  readonly #meters: StreamMeter[];
  readonly #sockets = new Map<number, Socket>();
  readonly #ac = new AbortController();
  readonly #lastArrival = new Map<number, number>();
  #state: 'waiting' | 'running' | 'done' | 'failed' = 'waiting';
  #sendersLeft: number;
  #udpOut: DgramSocket | undefined;
  #udpTarget: { address: string; port: number; family: 4 | 6 } | undefined;
  #omitTimer: NodeJS.Timeout | undefined;
  #reporter: IntervalReporter | undefined;
  #drainTimer: NodeJS.Timeout | undefined;
  #udpDone = false;
  #ready = false;
  #clientDone = false;

  constructor(id: string, params: TestParams, control: Socket, peer: string, ctx: ServerContext) {
    this.id = id;
    this.params = params;
    this.#control = control;
    this.#peer = peer;
    this.#ctx = ctx;
    this.#plan = streamPlan(params);
    this.#meters = this.#plan.map((p) => {
      const m = new StreamMeter(p.stream, p.dir, p.dir === 'up' ? 'received' : 'sent');
      if (params.proto === 'udp' && p.dir === 'up') m.udp = new UdpReceiverStats();
      return m;
    });
    this.#sendersLeft = this.#plan.filter((p) => p.dir === 'down').length;
    setMaxListeners(4 * PERF_LIMITS.streams + 8, this.#ac.signal);
  }

  get tag(): number {
    return testTag(this.id);
  }

  /** Bytes the test's streams moved so far, every direction: the control connection's progress while it is silent. */
  moved(): number {
    return this.#meters.reduce((a, m) => a + m.bytes, 0);
  }

  #send(m: Parameters<typeof encodeControl>[0]): void {
    if (!this.#control.destroyed && !this.#control.writableEnded) this.#control.write(encodeControl(m));
  }

  /** The control connection said hello: accept, and for tests needing no data connection, say ready. */
  open(): void {
    this.#ctx.onTest?.({ event: 'test-start', test: this.id, peer: this.#peer, proto: this.params.proto, streams: this.params.streams, reverse: this.params.reverse, bidir: this.params.bidir });
    if (this.params.proto === 'udp') {
      if (this.#ctx.udpPort === undefined) return this.fail(new SocketkitError('ERR_UDP_UNIX_UNSUPPORTED', 'this server takes no UDP tests (it listens on a Unix socket)'));
      this.#send({ type: 'accepted', udpPort: this.#ctx.udpPort });
      if (this.#sendersLeft === 0) this.#sendReady();
      return;
    }
    this.#send({ type: 'accepted' });
  }

  #sendReady(): void {
    this.#ready = true;
    this.#send({ type: 'ready' });
  }

  controlLine(line: string): void {
    const m = parseControl(line);
    if (m.type === 'start') {
      // A test starts with its first data if that overtakes the start line.
      if (this.#state === 'running' || this.#state === 'done') return;
      if (this.#state !== 'waiting') throw new SocketkitError('ERR_PERF_PROTOCOL', 'throughput test protocol: start twice, or before ready');
      this.#begin();
    } else if (m.type === 'done') {
      for (const c of m.sent) {
        const meter = this.#meters.find((x) => x.stream === c.stream && x.udp);
        if (meter?.udp && typeof c.packets === 'number') meter.udp.sent = c.packets;
      }
      this.#clientDone = true;
      if (this.params.proto === 'udp') {
        this.#udpDone = true;
        this.#drainUdp();
      } else {
        this.#maybeFinish();
      }
    } else {
      throw new SocketkitError('ERR_PERF_PROTOCOL', `throughput test protocol: a client sent '${m.type}'`);
    }
  }

  /** A data connection joined. */
  attach(stream: number, socket: Socket, rest: Buffer): void {
    const p = this.#plan.find((x) => x.stream === stream);
    if (this.params.proto !== 'tcp' || p === undefined || this.#sockets.has(stream) || this.#state !== 'waiting') {
      socket.destroy();
      return this.fail(new SocketkitError('ERR_PERF_PROTOCOL', `throughput test protocol: an unexpected data connection (stream ${stream})`));
    }
    this.#sockets.set(stream, socket);
    const meter = this.#meters[this.#plan.indexOf(p)]!;
    if (p.dir === 'up') {
      // The stream's first bytes may overtake the start line (another connection): they start the test.
      receiveTcp(socket, meter, rest, `the client's stream ${stream}`, this.#ac.signal, () => this.#implicitStart()).then(
        () => {
          socket.end();
          this.#maybeFinish();
        },
        (err: unknown) => this.fail(err),
      );
    }
    // A receiving stream's end or failure is receiveTcp's to say (its reads may outlast Node's socket).
    if (p.dir === 'down') {
      socket.once('close', () => {
        // The client closes its end after the stream's last byte: only a close before that is a failure.
        if (this.#state !== 'done' && !meter.ended) this.fail(new SocketkitError('ERR_PERF_INTERRUPTED', `the client's stream ${stream} closed mid-test`));
      });
    }
    if (this.#sockets.size === this.#plan.length) this.#sendReady();
  }

  /** A datagram for this test arrived on the server's UDP socket. */
  datagram(stream: number, flags: number, seq: number, sendUs: number, size: number, from: RemoteInfo): void {
    if ((flags & UDP_FLAG_HELLO) !== 0) {
      if (this.#udpOut !== undefined || this.#sendersLeft === 0) return;
      const out = createSocket(from.family === 'IPv6' ? 'udp6' : 'udp4');
      this.#udpOut = out;
      this.#udpTarget = { address: from.address, port: from.port, family: from.family === 'IPv6' ? 6 : 4 };
      out.on('error', (err) => this.fail(toSocketkitError(err, 'UDP')));
      out.connect(from.port, from.address, () => {
        tryBuffers(out);
        this.#sendReady();
      });
      return;
    }
    this.#implicitStart();
    if (this.#state !== 'running') return;
    const meter = this.#meters.find((m) => m.stream === stream && m.udp);
    if (!meter?.udp) return;
    const at = performance.now();
    meter.udp.record(seq, sendUs, at * 1000, size);
    meter.add(size);
    this.#lastArrival.set(stream, at);
    if (this.#udpDone) this.#drainUdp();
  }

  #implicitStart(): void {
    if (this.#state === 'waiting' && this.#ready) this.#begin();
  }

  #begin(): void {
    this.#state = 'running';
    const startAt = performance.now();
    const mark = (): void => {
      const now = performance.now();
      for (const m of this.#meters) m.mark(now);
    };
    if (this.params.omitMs > 0) this.#omitTimer = setTimeout(mark, this.params.omitMs);
    // Without a warm-up every byte of the test counts, also what native loops read before the
    // JS thread heard of the start (a stream's first bytes may start the test, and a thread may
    // read a short stream whole by then).
    else for (const m of this.#meters) m.asOfFollow(() => m.mark(startAt));
    if (this.params.intervalMs >= PERF_LIMITS.intervalMs) this.#reporter = new IntervalReporter(this.#meters, startAt, this.params.intervalMs, this.params.omitMs, (i, index) => this.#interval(i, index));
    const until = startAt + this.params.omitMs + this.params.durationMs;
    const down = this.#plan.filter((p) => p.dir === 'down');
    down.forEach((p, i) => {
      const meter = this.#meters[this.#plan.indexOf(p)]!;
      const bytes = this.params.bytes > 0 ? shareOf(this.params.bytes, down.length, i) : 0;
      const done = (): void => {
        this.#sendersLeft--;
        this.#maybeFinish();
      };
      const failed = (err: unknown): void => this.fail(this.#ac.signal.aborted ? this.#ac.signal.reason : new SocketkitError('ERR_PERF_INTERRUPTED', `sending to the client failed: ${toSocketkitError(err).message}`, { cause: err }));
      if (this.params.proto === 'tcp') {
        const socket = this.#sockets.get(p.stream)!;
        void sendTcp(socket, meter, { length: this.params.length, until, bytes, zeroCopy: this.params.zeroCopy, signal: this.#ac.signal }).then(done, failed);
      } else {
        void sendPaced(meter, { socket: this.#udpOut!, ...(this.#udpTarget ? { target: this.#udpTarget } : {}), tag: this.tag, stream: p.stream, length: this.params.length, rate: this.params.rate, until, bytes, signal: this.#ac.signal }).then((pacing) => {
          this.#pacing.set(p.stream, pacing.packets);
          done();
        }, failed);
      }
    });
  }

  readonly #pacing = new Map<number, number>();

  /**
   * An interval of this side: reported as the server's own (`test-interval`), and for a UDP test
   * the receiver figures of the client's streams go to the client. A control connection that
   * is behind (the client not reading) misses intervals rather than queueing them.
   */
  #interval(i: PerfInterval, index: number): void {
    this.#ctx.onTest?.({ event: 'test-interval', test: this.id, peer: this.#peer, ...i });
    if (this.params.proto !== 'udp' || this.#control.writableNeedDrain) return;
    const streams = i.streams.filter((x) => x.role === 'received');
    if (streams.length > 0) this.#send({ type: 'interval', index, start: i.start, end: i.end, omitted: i.omitted, streams });
  }

  /** UDP: once the client's count is in, wait for the datagrams still on the way (at most UDP_DRAIN_MS). */
  #drainUdp(): void {
    const receivers = this.#meters.filter((m) => m.udp);
    const all = receivers.every((m) => m.udp!.unique >= (m.udp!.sent ?? 0));
    if (all) {
      if (this.#drainTimer !== undefined) clearTimeout(this.#drainTimer);
      this.#drainTimer = undefined;
      this.#endUdp();
    } else {
      this.#drainTimer ??= setTimeout(() => this.#endUdp(), UDP_DRAIN_MS);
    }
  }

  #endUdp(): void {
    for (const m of this.#meters) if (m.udp) m.end(this.#lastArrival.get(m.stream) ?? performance.now());
    this.#maybeFinish();
  }

  #maybeFinish(): void {
    if (this.#state !== 'running') return;
    if (this.#sendersLeft > 0) return;
    if (!this.#clientDone && this.#meters.some((m) => m.role === 'received')) return;
    if (this.#meters.some((m) => m.role === 'received' && !m.ended)) return;
    this.#state = 'done';
    // The last partial interval goes before the result, however short: the client's intervals then hold every datagram counted here.
    this.#reporter?.stop(0);
    const now = performance.now();
    const received = this.#meters.filter((m) => m.role === 'received').map((m) => m.figures(now));
    const sent = this.#meters
      .filter((m) => m.role === 'sent')
      .map((m) => {
        const f = m.figures(now);
        const packets = this.#pacing.get(m.stream);
        return packets === undefined ? f : { ...f, udp: { packets, lost: 0, outOfOrder: 0, duplicates: 0, jitterMs: 0, sent: packets } };
      });
    this.#send({ type: 'result', received, sent });
    this.#ctx.onTest?.({ event: 'test-end', test: this.id, peer: this.#peer, received, sent, bitsPerSecond: total(received).bitsPerSecond, sentBitsPerSecond: total(sent).bitsPerSecond });
  }

  /** Ends the test with `err` (once): the client is told on the control connection, the streams are closed. */
  fail(err: unknown): void {
    if (this.#state === 'done' || this.#state === 'failed') return;
    this.#state = 'failed';
    const e = toSocketkitError(err);
    this.#ac.abort(e);
    this.#send({ type: 'error', code: e.code, message: e.message });
    this.#control.end();
    for (const s of this.#sockets.values()) s.destroy();
    this.#ctx.onTest?.({ event: 'test-failed', test: this.id, peer: this.#peer, code: e.code, message: e.message });
    this.dispose();
  }

  /** The control connection closed: the test is over, one way or another. */
  closed(): void {
    if (this.#state !== 'done') this.fail(new SocketkitError('ERR_PERF_INTERRUPTED', `the client ${this.#peer} went away mid-test`));
    this.dispose();
  }

  dispose(): void {
    this.#reporter?.stop(Infinity);
    if (this.#omitTimer !== undefined) clearTimeout(this.#omitTimer);
    if (this.#drainTimer !== undefined) clearTimeout(this.#drainTimer);
    this.#ac.abort(new SocketkitError('ERR_ABORTED', 'test over'));
    for (const s of this.#sockets.values()) if (!s.destroyed && s.writableEnded) s.destroySoon();
    this.#udpOut?.close();
    this.#udpOut = undefined;
    if (this.#ctx.tests.get(this.id) === this) this.#ctx.tests.delete(this.id);
    if (this.#ctx.byTag.get(this.tag) === this) this.#ctx.byTag.delete(this.tag);
  }
}

/** A running throughput test server. */
export class PerfServer {
  readonly managed: ManagedServer;
  /** The UDP socket for UDP tests, when there is one. */
  readonly udp: DgramSocket | undefined;
  readonly #ctx: ServerContext;

  /** @internal use `startPerfServer()` */
  constructor(managed: ManagedServer, udp: DgramSocket | undefined, ctx: ServerContext) {
    this.managed = managed;
    this.udp = udp;
    this.#ctx = ctx;
  }

  get endpoint(): Endpoint {
    return this.managed.endpoint;
  }

  /** Tests running now. */
  get tests(): number {
    return this.#ctx.tests.size;
  }

  /** Stops (idempotent): no new tests; running ones get `graceMs`, then are closed (and fail, ERR_PERF_INTERRUPTED, on both sides). */
  async close(graceMs = 0): Promise<void> {
    if (this.udp) {
      const u = this.udp;
      try {
        u.close();
      } catch {
        // closed already
      }
    }
    await this.managed.close(graceMs);
  }
}

/** Starts the throughput test server on `ep` (TCP, TLS or a Unix socket; UDP tests on the same port). */
export async function startPerfServer(ep: Endpoint, options: PerfServerOptions = {}): Promise<PerfServer> {
  const { onTest, udp: wantUdp, ...rest } = options;
  const tests = new Map<string, ServerTest>();
  const byTag = new Map<number, ServerTest>();
  const ctx: { tests: Map<string, ServerTest>; byTag: Map<number, ServerTest>; udpPort: number | undefined; onTest: ServerContext['onTest'] } = { tests, byTag, udpPort: undefined, onTest };
  let nextId = 1;
  /** Each test's control connection: silent while its streams run, so their bytes are its progress. */
  const controls = new WeakMap<Socket, ServerTest>();
  const managed = await startServer(ep, {
    ...rest,
    // Native loops move a stream's bytes on a private descriptor: they are its data connection's
    // own (the idle sweep, the statistics), and the progress of its test's control connection.
    activity: { progress: (socket) => controls.get(socket)?.moved() ?? 0, busy: () => false, moved: movedOffSocket },
    protocol: () => (socket) => {
      const id = nextId++;
      const splitter = new LineSplitter();
      const fail = (err: unknown): void => {
        const e = toSocketkitError(err);
        if (!socket.destroyed) socket.end(encodeControl({ type: 'error', code: e.code, message: e.message }));
      };
      const onFirst = (chunk: Buffer): void => {
        let got;
        try {
          got = splitter.first(chunk);
          if (got === undefined) return;
          socket.removeListener('data', onFirst);
          const hello = parseHello(got.line);
          if (hello.kind === 'data') {
            const test = tests.get(hello.test);
            if (!test) throw new SocketkitError('ERR_PERF_PROTOCOL', 'throughput test protocol: a data connection for no running test');
            test.attach(hello.stream, socket, got.rest);
            return;
          }
          if (tests.has(hello.test) || byTag.has(testTag(hello.test))) throw new SocketkitError('ERR_PERF_PROTOCOL', 'throughput test protocol: a test id already in use');
          const { kind: _kind, test: testId, ...params } = hello;
          const test = new ServerTest(testId, params, socket, peerOf(socket, ep, id), ctx);
          controls.set(socket, test);
          tests.set(testId, test);
          byTag.set(test.tag, test);
          const lines = new LineSplitter();
          const onLines = (c: Buffer): void => {
            try {
              for (const line of lines.push(c)) test.controlLine(line);
            } catch (err) {
              test.fail(err);
            }
          };
          socket.on('data', onLines);
          socket.once('end', () => socket.end());
          socket.once('close', () => test.closed());
          test.open();
          if (got.rest.length > 0) onLines(got.rest);
        } catch (err) {
          socket.removeListener('data', onFirst);
          fail(err);
        }
      };
      socket.on('data', onFirst);
      socket.once('end', () => {
        if (socket.listenerCount('data') > 0 && socket.listeners('data').includes(onFirst)) socket.end();
      });
    },
  });
  let udp: DgramSocket | undefined;
  if (ep.kind === 'inet' && wantUdp !== false) {
    const host = managed.endpoint.kind === 'inet' ? managed.endpoint.host : ep.host;
    const sock = createSocket({ type: host.includes(':') ? 'udp6' : 'udp4', reuseAddr: false });
    try {
      sock.bind(managed.endpoint.kind === 'inet' ? managed.endpoint.port : 0, host);
      await once(sock, 'listening');
    } catch (err) {
      sock.close();
      await managed.close(0);
      throw toSocketkitError(err, `UDP ${host}`);
    }
    tryBuffers(sock);
    ctx.udpPort = sock.address().port;
    sock.on('message', (msg, from) => {
      const h = readUdpHeader(msg);
      if (!h) return;
      byTag.get(h.tag)?.datagram(h.stream, h.flags, h.seq, h.sendUs, msg.length, from);
    });
    sock.on('error', () => undefined);
    udp = sock;
  }
  return new PerfServer(managed, udp, ctx);
}

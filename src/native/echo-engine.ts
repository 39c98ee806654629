/**
 * The echo server on the native engine (native/echo_engine.c): `socketkit echo-server
 * --engine native`. The same face as the managed echo server (src/server/echo.ts), which stays
 * the readable reference: the same events, counters, error codes and limits.
 *
 * What stays here, in TypeScript: listening (the same `listen()`, so stale Unix sockets,
 * out-of-descriptor accounting and allow/deny lists work as everywhere), admission (the
 * connection limit), per-connection events, statistics and the graceful stop. Each admitted
 * connection is accepted paused (Node never reads from it), its descriptor handed to the engine
 * (which keeps a private duplicate), and Node's socket closed at once: from then on the engine's
 * threads move its bytes, and report its end (bytes, milliseconds, reason) in batches.
 */
import { createServer, type Socket } from 'node:net';
import { constants as osConstants } from 'node:os';
import { listen, type ListenOptions, type ListenTransport, type Listener } from '../net/listen.js';
import { formatEndpoint, resolveInet, type Endpoint, type InetEndpoint } from '../net/endpoint.js';
import { requireInet, toUdpError } from '../udp/socket.js';
import { maxUdpPayload } from '../udp/constants.js';
import { SocketkitError, toSocketkitError, type ErrorCode } from '../core/errors.js';
import { DEFAULT_MAX_FRAME_SIZE } from '../codec/constants.js';
import { ACCEPT_ERROR_REPORT_MS, DEFAULT_MEMORY_BUDGET } from '../server/defaults.js';
import { Throttle } from '../server/throttle.js';
import { peerOf, type AcceptErrorReport, type ServerEvent } from '../server/server.js';
import type { ServerStats } from '../server/stats.js';
import { nativeModule, nativeStatus, type NativeStatus } from './helper.js';

/** The opaque handle of a running engine. */
declare const engineBrand: unique symbol;
type EngineHandle = { readonly [engineBrand]: true };

/** The engine's functions in the native helper. */
interface EchoEngineModule {
  echoEngineStart(threads: number, framed: boolean, maxMessage: number, memoryBudget: number, idleMs: number, onEnds: (records: Float64Array, final: boolean) => void): EngineHandle;
  /** 0, or a negative errno (the descriptor stays the caller's either way). */
  echoEngineAdd(handle: EngineHandle, fd: number, id: number): number;
  /** [open, roundTrips, bytesIn, bytesOut, idleClosed, budgetUsed]. */
  echoEngineStats(handle: EngineHandle): Float64Array;
  echoEngineStop(handle: EngineHandle): void;
}

const FUNCTIONS = ['echoEngineStart', 'echoEngineAdd', 'echoEngineStats', 'echoEngineStop'] as const;

/** Fields of one connection-end record (see native/echo_engine.c). */
const REC = 6;
/** Reasons below 0 (above 0 they are errnos). */
const REASONS: Readonly<Record<number, ErrorCode | 'idle' | 'stopped'>> = { [-1]: 'ERR_FRAME_TOO_LARGE', [-2]: 'ERR_FRAME_TRUNCATED', [-3]: 'ERR_MEMORY_BUDGET', [-4]: 'idle', [-5]: 'stopped' };

function engineModule(): EchoEngineModule | undefined {
  return nativeModule<EchoEngineModule>([...FUNCTIONS]);
}

/** Whether the native echo engine can run here, and if not, why. */
export function nativeEchoStatus(): NativeStatus {
  const helper = nativeStatus();
  if (!helper.available) return helper;
  return engineModule() ? helper : { available: false, reason: 'the native helper was built without the echo engine (rebuild it: node scripts/build-native.js)' };
}

/** errno number -> name (ECONNRESET, ...), for the same codes the TS engine reports. */
const ERRNO_NAMES = new Map<number, string>(Object.entries(osConstants.errno).map(([name, n]) => [n, name]));

/** The error code of an end reason, or undefined for a clean end (or idle, or stopped). */
function reasonCode(reason: number): ErrorCode | undefined {
  if (reason === 0) return undefined;
  if (reason < 0) {
    const r = REASONS[reason];
    return r === 'idle' || r === 'stopped' ? undefined : r;
  }
  return toSocketkitError(Object.assign(new Error(`errno ${reason}`), { code: ERRNO_NAMES.get(reason) ?? `E${reason}` })).code;
}

/** Accepted connections are never read by Node: their descriptors go to the engine. */
const pausedTransport: ListenTransport = { create: () => createServer({ noDelay: true, allowHalfOpen: true, pauseOnConnect: true }), readyEvent: 'connection' };

export interface NativeEchoServerOptions {
  /** Engine threads, each with its own epoll loop. Default 1. */
  readonly threads?: number;
  /** Echo whole length-prefixed messages instead of bytes. */
  readonly framed?: boolean;
  /** With `framed`: the largest message accepted, bytes. */
  readonly maxMessageSize?: number;
  /** With `framed`: the most bytes all connections may hold together. Default {@link DEFAULT_MEMORY_BUDGET}. */
  readonly memoryBudget?: number;
  /** Most connections open at once; more are refused. Default: no limit. */
  readonly maxConnections?: number;
  /** Close connections with no byte in or out for this long, ms. Default (or 0): never. */
  readonly idleTimeoutMs?: number;
  /** Per-connection events. Without it nothing is kept per connection on the JS side. */
  readonly onEvent?: (e: ServerEvent) => void;
  readonly onAcceptError?: (e: AcceptErrorReport) => void;
  /** Another admission check (allow/deny lists), run before the connection limit. */
  readonly admit?: ListenOptions['admit'];
  /** TLS cannot run on the engine: a transport other than plain is refused. */
  readonly transport?: ListenTransport;
  readonly clearStaleUnixSocket?: boolean;
  readonly backlog?: number;
}

interface ConnectionInfo {
  readonly peer: string;
}

/** A running echo server on the native engine. */
export class NativeEchoServer {
  readonly listener: Listener;
  /** Engine threads. */
  readonly threads: number;
  readonly #engine: EchoEngineModule;
  readonly #handle: EngineHandle;
  readonly #state: EngineState;
  readonly #acceptErrors: Throttle<SocketkitError> | undefined;
  #closing: Promise<void> | undefined;

  /** @internal use `startNativeEchoServer()` */
  constructor(listener: Listener, engine: EchoEngineModule, handle: EngineHandle, state: EngineState, threads: number, acceptErrors: Throttle<SocketkitError> | undefined) {
    this.listener = listener;
    this.#engine = engine;
    this.#handle = handle;
    this.#state = state;
    this.threads = threads;
    this.#acceptErrors = acceptErrors;
  }

  get endpoint(): Endpoint {
    return this.listener.endpoint;
  }

  /** Connections the engine holds (as far as its reports have reached JS). */
  get open(): number {
    return this.#state.open;
  }

  /** Totals now, live connections included. */
  stats(): ServerStats {
    const s = this.#state.stopped ? this.#state.last : this.#engine.echoEngineStats(this.#handle);
    return {
      connections: this.#state.open,
      accepted: this.listener.counters.accepted,
      refused: this.listener.counters.refused,
      acceptErrors: this.listener.counters.acceptErrors,
      idleClosed: s[4] ?? 0,
      bytesIn: s[2] ?? 0,
      bytesOut: s[3] ?? 0,
      roundTrips: s[1] ?? 0,
    };
  }

  /** Bytes the framed echo holds now, over every connection (what the memory budget counts). */
  get memoryHeld(): number {
    const s = this.#state.stopped ? this.#state.last : this.#engine.echoEngineStats(this.#handle);
    return s[5] ?? 0;
  }

  /** Graceful stop (idempotent): no new connections; live ones get `graceMs` to finish, then are closed. */
  close(graceMs = 0): Promise<void> {
    this.#closing ??= this.#close(graceMs);
    return this.#closing;
  }

  async #close(graceMs: number): Promise<void> {
    this.#acceptErrors?.flush();
    await this.listener.close(0); // its sockets were all handed over: this only stops accepting
    const st = this.#state;
    if (st.open > 0 && graceMs > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, graceMs);
        st.onEmpty = done;
        function done(): void {
          clearTimeout(timer);
          st.onEmpty = undefined;
          resolve();
        }
      });
    }
    st.last = this.#engine.echoEngineStats(this.#handle);
    const finals = new Promise<void>((resolve) => {
      st.onFinal = resolve;
      if (st.finals >= this.threads) resolve();
    });
    this.#engine.echoEngineStop(this.#handle); // closes what is left and waits for the threads
    await finals;
    st.last = Float64Array.from(st.last, (v, i) => (i === 0 ? 0 : v));
    st.stopped = true;
  }
}

/** What the JS side keeps of a running engine. */
interface EngineState {
  open: number;
  finals: number;
  stopped: boolean;
  last: Float64Array;
  onEmpty: (() => void) | undefined;
  onFinal: (() => void) | undefined;
}

/** Starts the echo server on the native engine; rejects with ERR_INVALID_ARG when the engine is not available here. */
export async function startNativeEchoServer(ep: Endpoint, options: NativeEchoServerOptions = {}): Promise<NativeEchoServer> {
  const engine = engineModule();
  if (!engine) throw new SocketkitError('ERR_INVALID_ARG', `the native engine cannot run: ${nativeEchoStatus().reason ?? 'not available'}`);
  if (options.transport !== undefined) throw new SocketkitError('ERR_INVALID_ARG', 'the native engine cannot run: TLS runs on the js engine only');
  const threads = options.threads ?? 1;
  if (!Number.isSafeInteger(threads) || threads < 1 || threads > 256) throw new SocketkitError('ERR_INVALID_ARG', `engine threads must be a whole number from 1 to 256, not ${threads}`);
  const max = options.maxConnections ?? 0;
  if (!Number.isSafeInteger(max) || max < 0) throw new SocketkitError('ERR_INVALID_ARG', `connection limit must be a whole number from 1, not ${max}`);
  const onEvent = options.onEvent;
  const infos = onEvent ? new Map<number, ConnectionInfo>() : undefined;
  const state: EngineState = { open: 0, finals: 0, stopped: false, last: new Float64Array(6), onEmpty: undefined, onFinal: undefined };

  const onEnds = (records: Float64Array, final: boolean): void => {
    for (let i = 0; i + REC <= records.length; i += REC) {
      const id = records[i]!;
      const reason = records[i + 4]!;
      state.open--;
      if (infos === undefined || onEvent === undefined) continue;
      const info = infos.get(id);
      infos.delete(id);
      const peer = info?.peer ?? `#${id}`;
      if (reason === -4) onEvent({ event: 'idle', peer, idleMs: Math.round(records[i + 5]!) });
      const code = reasonCode(reason);
      onEvent({
        event: 'disconnect',
        id,
        peer,
        bytesIn: records[i + 1]!,
        bytesOut: records[i + 2]!,
        ms: Math.round(records[i + 3]!),
        active: state.open,
        ...(code !== undefined ? { error: code } : {}),
      });
    }
    if (state.open === 0) state.onEmpty?.();
    if (final) {
      state.finals++;
      if (state.finals >= threads) state.onFinal?.();
    }
  };

  const handle = engine.echoEngineStart(threads, options.framed === true, options.maxMessageSize ?? DEFAULT_MAX_FRAME_SIZE, options.memoryBudget ?? DEFAULT_MEMORY_BUDGET, options.idleTimeoutMs ?? 0, onEnds);
  let nextId = 1;
  const limitReason = `connection limit reached: ${max} open (ERR_CONN_LIMIT)`;
  const check = options.admit;
  const admit: ListenOptions['admit'] = (socket, l) => check?.(socket, l) ?? (max > 0 && state.open >= max ? limitReason : undefined);

  const onConnection = (socket: Socket): void => {
    const fd = (socket as Socket & { _handle?: { fd?: unknown } })._handle?.fd;
    const id = nextId++;
    const peer = infos ? peerOf(socket, ep, id) : '';
    const r = typeof fd === 'number' && fd >= 0 ? engine.echoEngineAdd(handle, fd, id) : -(osConstants.errno.EBADF);
    socket.destroy(); // Node's descriptor; the engine has its own
    if (r < 0) {
      // Not handed over: it ends here, as a connection that failed at once.
      if (onEvent) onEvent({ event: 'disconnect', id, peer, bytesIn: 0, bytesOut: 0, ms: 0, active: state.open, ...(reasonCode(-r) ? { error: reasonCode(-r)! } : {}) });
      return;
    }
    state.open++;
    if (infos && onEvent) {
      infos.set(id, { peer });
      onEvent({ event: 'connect', id, peer, active: state.open });
    }
  };

  let listener: Listener;
  try {
    listener = await listen(ep, {
      onConnection,
      admit,
      transport: pausedTransport,
      ...(options.backlog !== undefined ? { backlog: options.backlog } : {}),
      ...(options.clearStaleUnixSocket !== undefined ? { clearStaleUnixSocket: options.clearStaleUnixSocket } : {}),
    });
  } catch (err) {
    engine.echoEngineStop(handle);
    throw err;
  }
  if (onEvent) listener.on('refused', (peer, reason) => onEvent({ event: 'refused', peer, reason }));
  const onAcceptError = options.onAcceptError;
  const acceptErrors = onAcceptError
    ? new Throttle<SocketkitError>(ACCEPT_ERROR_REPORT_MS, (e, count) => onAcceptError({ code: e.code, message: e.message, count }))
    : undefined;
  if (acceptErrors) listener.on('accept-error', (e) => acceptErrors.hit(e));
  return new NativeEchoServer(listener, engine, handle, state, threads, acceptErrors);
}

// ---- UDP echo on the engine.

/** The UDP echo's functions in the native helper. */
interface UdpEngineModule {
  /** The engine's own socket bound to `address`:`port` (0: any), or a negative errno. */
  udpEchoStart(family: 4 | 6, address: string, port: number): EngineHandle | number;
  /** [datagramsIn, datagramsOut, bytesIn, bytesOut, sendErrors, dropped, port]. */
  udpEchoStats(handle: EngineHandle): Float64Array;
  udpEchoStop(handle: EngineHandle): void;
}

/** Totals of a UDP echo on the native engine (it keeps no table of peers). */
export interface NativeUdpEchoStats {
  readonly datagramsIn: number;
  readonly datagramsOut: number;
  readonly bytesIn: number;
  readonly bytesOut: number;
  /** Echoes the kernel refused. */
  readonly sendErrors: number;
  /** Echoes the socket could not take at once (a UDP socket cannot be paused). */
  readonly dropped: number;
}

/** Whether the native UDP echo can run here, and if not, why. */
export function nativeUdpEchoStatus(): NativeStatus {
  const helper = nativeStatus();
  if (!helper.available) return helper;
  return nativeModule<UdpEngineModule>(['udpEchoStart', 'udpEchoStats', 'udpEchoStop'])
    ? helper
    : { available: false, reason: 'the native helper was built without the UDP echo engine (rebuild it: node scripts/build-native.js)' };
}

/** A UDP echo server on the native engine: one thread, recvmmsg/sendmmsg batches. */
export class NativeUdpEchoServer {
  readonly endpoint: InetEndpoint;
  readonly family: 4 | 6;
  readonly maxPayload: number;
  readonly #engine: UdpEngineModule;
  readonly #handle: EngineHandle;
  #last: Float64Array | undefined;

  /** @internal use `startNativeUdpEchoServer()` */
  constructor(engine: UdpEngineModule, handle: EngineHandle, endpoint: InetEndpoint, family: 4 | 6) {
    this.#engine = engine;
    this.#handle = handle;
    this.endpoint = endpoint;
    this.family = family;
    this.maxPayload = maxUdpPayload(family);
  }

  get stats(): NativeUdpEchoStats {
    const s = this.#last ?? this.#engine.udpEchoStats(this.#handle);
    return { datagramsIn: s[0] ?? 0, datagramsOut: s[1] ?? 0, bytesIn: s[2] ?? 0, bytesOut: s[3] ?? 0, sendErrors: s[4] ?? 0, dropped: s[5] ?? 0 };
  }

  /** Stops (idempotent): echoes are sent as they come, so nothing is left to wait for. */
  close(): Promise<void> {
    if (this.#last === undefined) {
      this.#engine.udpEchoStop(this.#handle);
      this.#last = this.#engine.udpEchoStats(this.#handle);
    }
    return Promise.resolve();
  }
}

/**
 * Starts a UDP echo server on `ep` on the native engine, which binds its own socket (IPv6
 * wildcards take IPv4 too, as on the TS engine); a bind failure is the same coded error.
 */
export async function startNativeUdpEchoServer(ep: Endpoint): Promise<NativeUdpEchoServer> {
  const engine = nativeModule<UdpEngineModule>(['udpEchoStart', 'udpEchoStats', 'udpEchoStop']);
  if (!engine) throw new SocketkitError('ERR_INVALID_ARG', `the native engine cannot run: ${nativeUdpEchoStatus().reason ?? 'not available'}`);
  const inet = requireInet(ep);
  const r = await resolveInet(inet);
  const handle = engine.udpEchoStart(r.family, r.address, r.port);
  if (typeof handle === 'number') {
    throw toUdpError(Object.assign(new Error(`errno ${-handle}`), { code: ERRNO_NAMES.get(-handle) ?? `E${-handle}` }), formatEndpoint(inet));
  }
  const port = engine.udpEchoStats(handle)[6] ?? r.port;
  return new NativeUdpEchoServer(engine, handle, { kind: 'inet', host: inet.host, port }, r.family);
}

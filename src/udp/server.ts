/**
 * The UDP echo server: every datagram, of any size up to the protocol maximum, goes back to the
 * address and port it came from, for any number of clients, over IPv4 or IPv6.
 *
 * UDP has no connections, so the server's "connections" are peers: a source address is
 * reported the first time it is heard from (`peer`), and reported again with its counters when
 * it goes quiet, is pushed out of the bounded peer table, or the server stops (`peer-end`).
 *
 * Memory is bounded whatever the peers do: the peer table has a capacity (least recently heard
 * from is evicted), and since a UDP socket cannot be paused, an echo that would go into an
 * already long send queue is dropped and counted instead of queued.
 */
import { performance } from 'node:perf_hooks';
import type { RemoteInfo } from 'node:dgram';
import { formatPeer, type InetEndpoint, type Endpoint } from '../net/endpoint.js';
import { DEFAULT_UDP_MAX_PEERS, DEFAULT_UDP_PEER_EVENTS_PER_SECOND, DEFAULT_UDP_PEER_IDLE_MS, DEFAULT_UDP_SEND_QUEUE_LIMIT, maxUdpPayload } from './constants.js';
import { PeerTable, type PeerCounters } from './peers.js';
import { bindUdp, closeQuietly, toUdpError, type DgramSocket } from './socket.js';
import type { ErrorCode } from '../core/errors.js';

/** Why a peer's counters were released. */
export type PeerEndReason = 'idle' | 'evicted' | 'stopped';

/** What a UDP echo server reports. */
export type UdpEchoServerEvent =
  | { readonly event: 'peer'; readonly peer: string; readonly peers: number }
  | {
      readonly event: 'peer-end';
      readonly peer: string;
      readonly reason: PeerEndReason;
      readonly datagramsIn: number;
      readonly datagramsOut: number;
      readonly bytesIn: number;
      readonly bytesOut: number;
      /** Milliseconds from the first to the last datagram. */
      readonly ms: number;
      readonly peers: number;
    }
  | { readonly event: 'denied'; readonly peer: string; readonly reason: string }
  | {
      /**
       * Per-peer events beyond {@link UdpEchoServerOptions.peerEventsPerSecond} in one window are
       * not reported one by one; this counts what the window held instead.
       */
      readonly event: 'peer-summary';
      /** Length of the window, ms. */
      readonly ms: number;
      readonly peersNew: number;
      readonly peersEnded: number;
      readonly peersEvicted: number;
      readonly denied: number;
      /** How many of those events were not reported one by one. */
      readonly suppressed: number;
      readonly peers: number;
    }
  | { readonly event: 'error'; readonly peer?: string; readonly code: ErrorCode; readonly message: string };

/** Totals since start (all peers, including forgotten ones). */
export interface UdpEchoServerStats {
  datagramsIn: number;
  datagramsOut: number;
  bytesIn: number;
  bytesOut: number;
  /** Echoes not sent because the send queue was full. */
  dropped: number;
  /** Echoes the kernel refused (counted, not fatal). */
  sendErrors: number;
  /** Distinct peers heard from (a peer forgotten and heard from again counts twice). */
  peersSeen: number;
  /** Peers pushed out of the table to make room. */
  peersEvicted: number;
  /** Datagrams refused by `admit` (no reply, no peer entry). */
  denied: number;
  /** Peers in the table now. */
  peers: number;
}

export interface UdpEchoServerOptions {
  readonly onEvent?: (e: UdpEchoServerEvent) => void;
  /** Abort stops the server (as `close(0)`). */
  readonly signal?: AbortSignal;
  /** Most peers with counters at once. Default {@link DEFAULT_UDP_MAX_PEERS}. */
  readonly maxPeers?: number;
  /** A peer silent this long (ms) is reported and forgotten; 0 never. Default {@link DEFAULT_UDP_PEER_IDLE_MS}. */
  readonly peerIdleMs?: number;
  /** Echoes allowed in the send queue before new ones are dropped. Default {@link DEFAULT_UDP_SEND_QUEUE_LIMIT}. */
  readonly sendQueueLimit?: number;
  /**
   * Checks each datagram's source address before anything else: a reason to refuse it (the
   * datagram gets no reply, takes no place in the peer table, and is counted in `denied`), or
   * undefined to echo it. An `AccessList`'s `check` fits: `(a) => list.check(a).allowed ? undefined : reason`.
   */
  readonly admit?: (address: string) => string | undefined;
  /**
   * Most `peer`, `peer-end` and `denied` events reported one by one per second; the rest of that
   * second is counted in one `peer-summary` event (a flood of sources, or peers cycling through
   * a full table, cannot turn into a flood of log lines). Default {@link DEFAULT_UDP_PEER_EVENTS_PER_SECOND}.
   */
  readonly peerEventsPerSecond?: number;
}

/** Counts of one rate-limit window of per-peer events. */
interface PeerWindow {
  start: number;
  reported: number;
  suppressed: number;
  peersNew: number;
  peersEnded: number;
  peersEvicted: number;
  denied: number;
}

/** The length of a rate-limit window of per-peer events, ms. */
const PEER_EVENT_WINDOW_MS = 1000;

export type UdpEchoServerStatus = { readonly state: 'listening' } | { readonly state: 'closing' } | { readonly state: 'closed' };

/** A running UDP echo server. */
export class UdpEchoServer {
  /** The bound address (with the real port when 0 was asked for). */
  readonly endpoint: InetEndpoint;
  readonly family: 4 | 6;
  /** The largest datagram this server can receive and echo. */
  readonly maxPayload: number;
  readonly #socket: DgramSocket;
  readonly #peers: PeerTable;
  readonly #stats: UdpEchoServerStats;
  readonly #onEvent: ((e: UdpEchoServerEvent) => void) | undefined;
  readonly #sendQueueLimit: number;
  readonly #idleTimer: NodeJS.Timeout | undefined;
  readonly #admit: ((address: string) => string | undefined) | undefined;
  readonly #peerEventLimit: number;
  #window: PeerWindow = { start: 0, reported: 0, suppressed: 0, peersNew: 0, peersEnded: 0, peersEvicted: 0, denied: 0 };
  #windowTimer: NodeJS.Timeout | undefined;
  #status: UdpEchoServerStatus = { state: 'listening' };
  #closing: Promise<void> | undefined;

  /** @internal use `startUdpEchoServer()` */
  constructor(socket: DgramSocket, endpoint: InetEndpoint, family: 4 | 6, options: UdpEchoServerOptions) {
    this.#socket = socket;
    this.endpoint = endpoint;
    this.family = family;
    this.maxPayload = maxUdpPayload(family);
    this.#peers = new PeerTable(options.maxPeers ?? DEFAULT_UDP_MAX_PEERS);
    this.#onEvent = options.onEvent;
    this.#sendQueueLimit = options.sendQueueLimit ?? DEFAULT_UDP_SEND_QUEUE_LIMIT;
    this.#admit = options.admit;
    this.#peerEventLimit = options.peerEventsPerSecond ?? DEFAULT_UDP_PEER_EVENTS_PER_SECOND;
    this.#stats = { datagramsIn: 0, datagramsOut: 0, bytesIn: 0, bytesOut: 0, dropped: 0, sendErrors: 0, peersSeen: 0, peersEvicted: 0, denied: 0, peers: 0 };
    socket.on('message', (msg, rinfo) => this.#onMessage(msg, rinfo));
    // After bind, an error concerns one datagram (an unconnected socket sees no ICMP errors on
    // Linux, but other systems may report them): count it, keep serving.
    socket.on('error', (err) => this.#emitError(err));
    const idleMs = options.peerIdleMs ?? DEFAULT_UDP_PEER_IDLE_MS;
    if (idleMs > 0) {
      this.#idleTimer = setInterval(() => this.#expire(performance.now() - idleMs), Math.min(idleMs, 10_000));
      this.#idleTimer.unref();
    }
  }

  get status(): UdpEchoServerStatus {
    return this.#status;
  }

  /** Totals so far. */
  get stats(): UdpEchoServerStats {
    return { ...this.#stats, peers: this.#peers.size };
  }

  /** Counters of every peer in the table, least recently heard from first. */
  peers(): PeerCounters[] {
    return this.#peers.snapshot();
  }

  /** The underlying dgram socket, for options such as buffer sizes. */
  get socket(): DgramSocket {
    return this.#socket;
  }

  #onMessage(msg: Buffer, rinfo: RemoteInfo): void {
    if (this.#status.state !== 'listening') return;
    const now = performance.now();
    this.#tick(now);
    const peer = formatPeer(rinfo.address, rinfo.port);
    const refusal = this.#admit?.(rinfo.address);
    if (refusal !== undefined) {
      this.#stats.denied++;
      this.#window.denied++;
      this.#peerEvent(() => ({ event: 'denied', peer, reason: refusal }));
      return;
    }
    const { counters, added, evicted } = this.#peers.touch(peer, now);
    if (evicted !== undefined) {
      this.#stats.peersEvicted++;
      this.#window.peersEvicted++;
      this.#end(evicted, 'evicted');
    }
    if (added) {
      this.#stats.peersSeen++;
      this.#window.peersNew++;
      this.#peerEvent(() => ({ event: 'peer', peer, peers: this.#peers.size }));
    }
    counters.datagramsIn++;
    counters.bytesIn += msg.length;
    this.#stats.datagramsIn++;
    this.#stats.bytesIn += msg.length;
    if (this.#socket.getSendQueueCount() >= this.#sendQueueLimit) {
      this.#stats.dropped++;
      return;
    }
    // `msg` is this datagram's own buffer, so it can go back as it is, without a copy.
    this.#socket.send(msg, rinfo.port, rinfo.address, (err) => {
      if (err) {
        this.#stats.sendErrors++;
        this.#emitError(err, peer);
        return;
      }
      counters.datagramsOut++;
      counters.bytesOut += msg.length;
      this.#stats.datagramsOut++;
      this.#stats.bytesOut += msg.length;
    });
  }

  #emitError(err: Error, peer?: string): void {
    const e = toUdpError(err, peer ?? 'peer');
    this.#onEvent?.({ event: 'error', ...(peer !== undefined ? { peer } : {}), code: e.code, message: e.message });
  }

  /**
   * Reports a per-peer event unless this window has had its share; then it is only counted, and
   * the window ends with one `peer-summary`. (`make` builds the event only when it is reported.)
   */
  #peerEvent(make: () => UdpEchoServerEvent): void {
    if (this.#onEvent === undefined) return;
    if (this.#window.reported < this.#peerEventLimit) {
      this.#window.reported++;
      this.#onEvent(make());
      return;
    }
    this.#window.suppressed++;
    // The summary must come even if no datagram arrives after the window ends.
    if (this.#windowTimer === undefined) {
      this.#windowTimer = setTimeout(() => this.#flushWindow(), Math.max(0, this.#window.start + PEER_EVENT_WINDOW_MS - performance.now()));
      this.#windowTimer.unref();
    }
  }

  /** Starts a new window of per-peer events when the current one is over. */
  #tick(now: number): void {
    if (now - this.#window.start >= PEER_EVENT_WINDOW_MS) this.#flushWindow();
  }

  /** Ends the current window: one `peer-summary` if anything in it went unreported. */
  #flushWindow(): void {
    if (this.#windowTimer !== undefined) clearTimeout(this.#windowTimer);
    this.#windowTimer = undefined;
    const w = this.#window;
    if (w.suppressed > 0) {
      this.#onEvent?.({
        event: 'peer-summary',
        ms: Math.round(Math.min(performance.now() - w.start, PEER_EVENT_WINDOW_MS)),
        peersNew: w.peersNew,
        peersEnded: w.peersEnded,
        peersEvicted: w.peersEvicted,
        denied: w.denied,
        suppressed: w.suppressed,
        peers: this.#peers.size,
      });
    }
    this.#window = { start: performance.now(), reported: 0, suppressed: 0, peersNew: 0, peersEnded: 0, peersEvicted: 0, denied: 0 };
  }

  #end(p: PeerCounters, reason: PeerEndReason): void {
    if (reason !== 'evicted') this.#window.peersEnded++;
    this.#peerEvent(() => ({
      event: 'peer-end',
      peer: p.peer,
      reason,
      datagramsIn: p.datagramsIn,
      datagramsOut: p.datagramsOut,
      bytesIn: p.bytesIn,
      bytesOut: p.bytesOut,
      ms: Math.round(p.lastSeen - p.firstSeen),
      peers: this.#peers.size,
    }));
  }

  #expire(cutoff: number): void {
    this.#tick(performance.now());
    for (const p of this.#peers.expire(cutoff)) this.#end(p, 'idle');
  }

  /**
   * Graceful stop: no more datagrams are taken; echoes already queued get up to `graceMs` to
   * leave; then the socket closes and every remaining peer is reported. Safe to call twice.
   */
  close(graceMs = 0): Promise<void> {
    this.#closing ??= this.#close(graceMs);
    return this.#closing;
  }

  async #close(graceMs: number): Promise<void> {
    this.#status = { state: 'closing' };
    if (this.#idleTimer !== undefined) clearInterval(this.#idleTimer);
    if (graceMs > 0 && this.#queued() > 0) {
      const until = performance.now() + graceMs;
      while (this.#queued() > 0 && performance.now() < until) await new Promise((r) => setTimeout(r, 5));
    }
    await closeQuietly(this.#socket);
    this.#tick(performance.now());
    for (const p of this.#peers.drain()) this.#end(p, 'stopped');
    this.#flushWindow();
    this.#status = { state: 'closed' };
  }

  #queued(): number {
    try {
      return this.#socket.getSendQueueCount();
    } catch {
      return 0; // already closed
    }
  }
}

/**
 * Starts a UDP echo server on `ep` (IPv4 or IPv6; port 0 picks one). A `unix:` address fails
 * with ERR_UDP_UNIX_UNSUPPORTED.
 *
 * @example
 * ```ts
 * const server = await startUdpEchoServer({ kind: 'inet', host: '127.0.0.1', port: 0 });
 * const r = await udpEcho(server.endpoint, Buffer.from('Hola mundo'));
 * await server.close();
 * ```
 */
export async function startUdpEchoServer(ep: Endpoint, options: UdpEchoServerOptions = {}): Promise<UdpEchoServer> {
  const { socket, endpoint, family } = await bindUdp(ep);
  const server = new UdpEchoServer(socket, endpoint, family, options);
  if (options.signal) {
    if (options.signal.aborted) void server.close(0);
    else options.signal.addEventListener('abort', () => void server.close(0), { once: true });
  }
  return server;
}

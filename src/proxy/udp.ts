/**
 * The UDP relay (`socketkit proxy --udp`): every client address gets its own upstream socket
 * (connected to the upstream, so replies are told apart by socket), in a table with a fixed
 * capacity. When the table is full, the session least recently heard from (by its client) is
 * evicted and counted; a session quiet for `idleMs` expires. Each datagram passes its direction's
 * toxic stages whole (packet_loss, duplicate, reorder, corrupt, latency, bandwidth).
 *
 * UDP has no backpressure to pass on: a session whose toxics already hold `maxHeldBytes` drops
 * what arrives (counted), so a flood through a latency toxic cannot grow memory without bound.
 */
import type { RemoteInfo } from 'node:dgram';
import { formatEndpoint, formatPeer, type Endpoint } from '../net/endpoint.js';
import { bindUdp, connectUdp, type DgramSocket } from '../udp/socket.js';
import { closeQuietly } from '../udp/socket.js';
import { toSocketkitError } from '../core/errors.js';
import { Chain } from './chain.js';
import { systemContext, type StageOutput } from './stage.js';
import { ToxicSet, type ToxicChange } from './live.js';
import type { ToxicConfig } from './toxic.js';
import type { DumpSink } from './dump.js';

export const DEFAULT_UDP_PROXY_MAX_SESSIONS = 4096;
export const DEFAULT_UDP_PROXY_IDLE_MS = 60_000;
/** Bytes a session's toxics may hold before it drops what arrives. */
export const DEFAULT_UDP_PROXY_MAX_HELD = 4 * 1024 * 1024;
/** Datagrams kept while a new session's upstream socket opens. */
const PENDING_LIMIT = 64;

export type UdpSessionEnd = 'idle' | 'evicted' | 'stopped' | 'failed';

export type UdpProxyEvent =
  | { readonly event: 'session'; readonly id: number; readonly peer: string }
  | {
      readonly event: 'session-end';
      readonly id: number;
      readonly peer: string;
      readonly reason: UdpSessionEnd;
      readonly datagramsUp: number;
      readonly datagramsDown: number;
      readonly bytesUp: number;
      readonly bytesDown: number;
      readonly dropped: number;
      readonly ms: number;
      readonly code?: string;
    }
  | { readonly event: 'refused'; readonly peer: string; readonly reason: string };

export interface UdpProxyOptions {
  /** Toxics (toxiproxy's JSON shape), UDP ones and latency/bandwidth. */
  readonly toxics?: readonly unknown[];
  readonly maxSessions?: number;
  readonly idleMs?: number;
  readonly maxHeldBytes?: number;
  readonly random?: () => number;
  readonly dump?: DumpSink;
  /** Returns a reason to refuse datagrams from `address` (allow/deny lists). */
  readonly admit?: (address: string) => string | undefined;
  readonly onEvent?: (e: UdpProxyEvent) => void;
}

export interface UdpProxyStats {
  readonly sessions: number;
  readonly opened: number;
  readonly evicted: number;
  readonly expired: number;
  readonly datagramsUp: number;
  readonly datagramsDown: number;
  /** Bytes from clients, and from the upstream for them. */
  readonly bytesUp: number;
  readonly bytesDown: number;
  readonly dropped: number;
}

class Session {
  readonly started = performance.now();
  lastHeard = performance.now();
  upstream: DgramSocket | undefined;
  pending: Buffer[] | undefined = [];
  up!: Chain;
  down!: Chain;
  detach: (() => void) | undefined;
  datagramsUp = 0;
  datagramsDown = 0;
  bytesUp = 0;
  bytesDown = 0;
  dropped = 0;
  closed = false;
  constructor(
    readonly id: number,
    readonly key: string,
    readonly address: string,
    readonly port: number,
  ) {}
}

/** A running UDP proxy. */
export class UdpProxy {
  readonly #listen: DgramSocket;
  readonly endpoint: Endpoint;
  readonly #upstream: Endpoint;
  readonly #options: UdpProxyOptions;
  readonly #toxics: ToxicSet;
  readonly #sessions = new Map<string, Session>();
  readonly #sweep: NodeJS.Timeout;
  #nextId = 1;
  #opened = 0;
  #evicted = 0;
  #expired = 0;
  #datagramsUp = 0;
  #datagramsDown = 0;
  #bytesUp = 0;
  #bytesDown = 0;
  #dropped = 0;
  #closing: Promise<void> | undefined;

  /** @internal use `startUdpProxy()` */
  constructor(listen: DgramSocket, endpoint: Endpoint, upstream: Endpoint, options: UdpProxyOptions, toxics: ToxicSet) {
    this.#listen = listen;
    this.endpoint = endpoint;
    this.#upstream = upstream;
    this.#options = options;
    this.#toxics = toxics;
    listen.on('message', (msg, rinfo) => this.#fromClient(msg, rinfo));
    listen.on('error', () => undefined); // ICMP errors from clients that went away
    const idle = options.idleMs ?? DEFAULT_UDP_PROXY_IDLE_MS;
    this.#sweep = setInterval(() => this.#expire(idle), Math.max(10, Math.min(1000, idle / 4)));
    this.#sweep.unref();
  }

  get toxics(): readonly ToxicConfig[] {
    return this.#toxics.list;
  }

  /** Adds a toxic, to live sessions too (ERR_BAD_TOXIC, also for a TCP-only type; ERR_TOXIC_EXISTS). */
  addToxic(toxic: unknown): ToxicConfig {
    return this.#toxics.add(toxic);
  }

  /** Changes a toxic, on live sessions too (ERR_TOXIC_NOT_FOUND). */
  updateToxic(name: string, change: ToxicChange): ToxicConfig {
    return this.#toxics.update(name, change);
  }

  /** Removes a toxic, from live sessions too: datagrams it holds leave at once (ERR_TOXIC_NOT_FOUND). */
  removeToxic(name: string): void {
    this.#toxics.remove(name);
  }

  stats(): UdpProxyStats {
    return {
      sessions: this.#sessions.size,
      opened: this.#opened,
      evicted: this.#evicted,
      expired: this.#expired,
      datagramsUp: this.#datagramsUp,
      datagramsDown: this.#datagramsDown,
      bytesUp: this.#bytesUp,
      bytesDown: this.#bytesDown,
      dropped: this.#dropped,
    };
  }

  #fromClient(msg: Buffer, rinfo: RemoteInfo): void {
    const key = formatPeer(rinfo.address, rinfo.port);
    let s = this.#sessions.get(key);
    if (s) {
      // Least recently heard from first: move to the end.
      this.#sessions.delete(key);
      this.#sessions.set(key, s);
    } else {
      const why = this.#options.admit?.(rinfo.address);
      if (why !== undefined) {
        this.#options.onEvent?.({ event: 'refused', peer: key, reason: why });
        return;
      }
      const max = this.#options.maxSessions ?? DEFAULT_UDP_PROXY_MAX_SESSIONS;
      if (this.#sessions.size >= max) {
        const oldest = this.#sessions.values().next().value as Session;
        this.#evicted++;
        this.#end(oldest, 'evicted');
      }
      s = new Session(this.#nextId++, key, rinfo.address, rinfo.port);
      this.#sessions.set(key, s);
      this.#opened++;
      this.#options.onEvent?.({ event: 'session', id: s.id, peer: key });
      void this.#open(s);
    }
    s.lastHeard = performance.now();
    s.datagramsUp++;
    s.bytesUp += msg.length;
    this.#datagramsUp++;
    this.#bytesUp += msg.length;
    this.#options.dump?.chunk(s.id, '>', s.bytesUp - msg.length, msg);
    if (s.pending) {
      if (s.pending.length < PENDING_LIMIT) s.pending.push(msg);
      else this.#drop(s);
      return;
    }
    this.#into(s, s.up, msg);
  }

  #into(s: Session, chain: Chain, msg: Buffer): void {
    if (chain.buffered + msg.length > (this.#options.maxHeldBytes ?? DEFAULT_UDP_PROXY_MAX_HELD)) this.#drop(s);
    else chain.write(msg);
  }

  #drop(s: Session): void {
    s.dropped++;
    this.#dropped++;
  }

  async #open(s: Session): Promise<void> {
    let sock: DgramSocket;
    try {
      sock = (await connectUdp(this.#upstream)).socket;
    } catch (err) {
      this.#end(s, 'failed', toSocketkitError(err).code);
      return;
    }
    if (s.closed) {
      await closeQuietly(sock);
      return;
    }
    s.upstream = sock;
    const random = this.#options.random ?? Math.random;
    const ctx = systemContext(true, random);
    const noop = (): void => undefined;
    const toUpstream: StageOutput = {
      push: (d) => {
        if (!s.closed) sock.send(d);
      },
      end: noop,
      close: noop,
      reset: noop,
    };
    const toClient: StageOutput = {
      push: (d) => {
        if (!s.closed) this.#listen.send(d, s.port, s.address);
      },
      end: noop,
      close: noop,
      reset: noop,
    };
    s.up = new Chain([], toUpstream, ctx);
    s.down = new Chain([], toClient, ctx);
    s.detach = this.#toxics.attach({ up: s.up, down: s.down, random });
    s.up.start();
    s.down.start();
    sock.on('message', (msg) => {
      s.datagramsDown++;
      s.bytesDown += msg.length;
      this.#datagramsDown++;
      this.#bytesDown += msg.length;
      this.#options.dump?.chunk(s.id, '<', s.bytesDown - msg.length, msg);
      this.#into(s, s.down, msg);
    });
    // ICMP port unreachable from the upstream: nothing to do but keep the session (UDP).
    sock.on('error', () => undefined);
    const pending = s.pending ?? [];
    s.pending = undefined;
    for (const m of pending) this.#into(s, s.up, m);
  }

  #expire(idleMs: number): void {
    const cutoff = performance.now() - idleMs;
    const gone: Session[] = [];
    for (const s of this.#sessions.values()) {
      if (s.lastHeard >= cutoff) break; // ordered by lastHeard
      gone.push(s);
    }
    for (const s of gone) {
      this.#expired++;
      this.#end(s, 'idle');
    }
  }

  #end(s: Session, reason: UdpSessionEnd, code?: string): void {
    if (s.closed) return;
    s.closed = true;
    this.#sessions.delete(s.key);
    s.detach?.();
    s.up?.destroy();
    s.down?.destroy();
    if (s.upstream) void closeQuietly(s.upstream);
    this.#options.onEvent?.({
      event: 'session-end',
      id: s.id,
      peer: s.key,
      reason,
      datagramsUp: s.datagramsUp,
      datagramsDown: s.datagramsDown,
      bytesUp: s.bytesUp,
      bytesDown: s.bytesDown,
      dropped: s.dropped,
      ms: Math.round(performance.now() - s.started),
      ...(code !== undefined ? { code } : {}),
    });
  }

  /** Stops relaying and closes every socket; idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      clearInterval(this.#sweep);
      for (const s of [...this.#sessions.values()]) this.#end(s, 'stopped');
      await closeQuietly(this.#listen);
    })();
    return this.#closing;
  }

  /** Where datagrams go. */
  get upstream(): string {
    return formatEndpoint(this.#upstream);
  }
}

/** Starts a UDP proxy on `listen` relaying datagrams to `upstream`. */
export async function startUdpProxy(listen: Endpoint, upstream: Endpoint, options: UdpProxyOptions = {}): Promise<UdpProxy> {
  // Check the toxics before binding: a bad one must not leave a socket open.
  const toxics = new ToxicSet(options.toxics ?? [], true);
  const bound = await bindUdp(listen);
  return new UdpProxy(bound.socket, bound.endpoint, upstream, options, toxics);
}

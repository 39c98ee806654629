/**
 * The TCP (and Unix socket) relay: a managed-server protocol that gives every accepted
 * connection its own connection to the upstream, and passes bytes both ways through each
 * direction's chain of toxics.
 *
 * - Half-close travels through: a FIN from one side becomes, after whatever the chain holds, a
 *   FIN to the other, and the other direction keeps flowing.
 * - A reset becomes a reset: a side that resets (an ECONNRESET, or an end that the kernel says
 *   was a reset, see `endedByReset`) makes the proxy reset the other side.
 * - An upstream that refuses or cannot be reached: the client is reset, and one event with the
 *   error's code says why.
 * - Backpressure both ways: a direction stops reading its source while its chain and its
 *   destination's write buffer hold `highWaterMark` bytes or more, and resumes when they hold
 *   less, so what the proxy buffers per connection is bounded whatever the peers do.
 */
import type { Socket } from 'node:net';
import type { EventEmitter } from 'node:events';
import { connect, type ConnectTransport } from '../net/connect.js';
import { formatPeer, type Endpoint } from '../net/endpoint.js';
import { endedByReset, resetConnection, resumeReading, socketFd, takeOverReading } from '../net/socket-state.js';
import { toSocketkitError } from '../core/errors.js';
import type { NativeRelay, RelayCounts, RelayEnd } from '../native/proxy-engine.js';
import type { Protocol } from '../server/server.js';
import { Chain } from './chain.js';
import type { StageContext, StageOutput } from './stage.js';
import type { ToxicSet } from './live.js';
import { systemContext } from './stage.js';
import type { DumpSink } from './dump.js';

/** Bytes a direction may hold (chain plus the destination's write buffer) before it stops reading. */
export const DEFAULT_PROXY_HIGH_WATER_MARK = 256 * 1024;
/** How long connecting to the upstream may take. */
export const DEFAULT_UPSTREAM_CONNECT_TIMEOUT_MS = 10_000;

/** `>`: client to upstream ("upstream" in toxiproxy's words); `<`: upstream to client ("downstream"). */
export type Direction = '>' | '<';

/** How a proxied connection ended. */
export type ProxyEnd =
  /** Both sides closed cleanly (FIN both ways). */
  | 'closed'
  | 'client-reset'
  | 'upstream-reset'
  /** The upstream refused or could not be reached (see `code`). */
  | 'upstream-failed'
  /** A toxic closed the connection (timeout, limit_data, cut_after with reset=false). */
  | 'toxic-closed'
  /** A toxic reset the connection (reset_peer, cut_after). */
  | 'toxic-reset'
  /** The server closed it (idle timeout, stop). */
  | 'stopped';

export type ProxyEvent =
  | { readonly event: 'open'; readonly id: number; readonly peer: string }
  | {
      readonly event: 'close';
      readonly id: number;
      readonly peer: string;
      /** Bytes read from the client (toward the upstream). */
      readonly bytesUp: number;
      /** Bytes read from the upstream (toward the client). */
      readonly bytesDown: number;
      readonly ms: number;
      readonly end: ProxyEnd;
      /** The error code, when an error ended it. */
      readonly code?: string;
      readonly message?: string;
    };

export interface RelayOptions {
  readonly upstream: Endpoint;
  /** TLS towards the upstream (see security/tls.ts), or another transport. */
  readonly upstreamTransport?: ConnectTransport;
  readonly connectTimeoutMs?: number;
  readonly highWaterMark?: number;
  /** The toxics: every connection gets them (each by its toxicity) and follows their changes. Default none. */
  readonly toxics?: ToxicSet;
  /** Where chunks are shown as they are read. */
  readonly dump?: DumpSink;
  /** Randomness for toxics (default Math.random). */
  readonly random?: () => number;
  readonly onProxyEvent?: (e: ProxyEvent) => void;
  /** Live connections, for statistics and tests. */
  readonly connections?: Set<ProxyConnection>;
  /**
   * The native engine: connections with nothing for JavaScript to do (no toxic in place when
   * they connect, no dump, plain TCP or Unix sockets on both sides) are handed to it and relayed
   * with splice(2). Toxics added later do not reach them. Default: every connection in JS.
   */
  readonly engine?: NativeRelay;
  /** Emits 'reported' after each connection's close event (and its removal from `connections`). */
  readonly reported?: EventEmitter;
  /** Filled with each connection by its client socket (for the server's statistics). */
  readonly byClient?: WeakMap<Socket, ProxyConnection>;
}

/** One direction: source socket, chain, destination socket. */
class Pipe {
  readonly chain: Chain;
  bytes = 0;
  paused = false;

  constructor(
    readonly src: Socket,
    readonly dst: Socket,
    readonly dir: Direction,
    conn: ProxyConnection,
    ctx: StageContext,
    readonly hwm: number,
  ) {
    const sink: StageOutput = {
      push: (c) => {
        if (dst.destroyed || dst.writableEnded) return;
        dst.write(c);
        // A stage that held bytes let them go: there may be room to read again.
        this.maybeResume();
      },
      end: () => {
        if (!dst.destroyed && !dst.writableEnded) dst.end();
      },
      close: () => conn.toxicClose(),
      reset: () => conn.toxicReset(),
    };
    this.chain = new Chain([], sink, ctx);
  }

  /** Bytes this direction holds: in its toxics and in the destination's write buffer. */
  get held(): number {
    return this.chain.buffered + this.dst.writableLength;
  }

  checkPause(): void {
    if (!this.paused && this.held >= this.hwm) {
      this.paused = true;
      this.src.pause();
    }
  }

  maybeResume(): void {
    if (this.paused && this.held < this.hwm && !this.src.destroyed) {
      this.paused = false;
      this.src.resume();
    }
  }
}

let nextConnectionId = 1;

/** One proxied connection. */
export class ProxyConnection {
  readonly id = nextConnectionId++;
  readonly peer: string;
  readonly #client: Socket;
  readonly #options: RelayOptions;
  readonly #started = performance.now();
  readonly #abort = new AbortController();
  #upstream: Socket | undefined;
  #up: Pipe | undefined;
  #down: Pipe | undefined;
  #end: ProxyEnd | undefined;
  #code: string | undefined;
  #message: string | undefined;
  #open = 2; // sockets not yet closed (the upstream counts until it closes or fails)
  #reported = false;
  /** Stops the toxics' changes from reaching this connection. */
  #detach: (() => void) | undefined;
  /** The native engine relaying this connection (after the handoff). */
  #native: NativeRelay | undefined;
  /** Bytes Node had read before the handoff, each way. */
  #prefix = { up: 0, down: 0 };
  /** The engine's counts once it has ended. */
  #nativeFinal: RelayCounts | undefined;

  constructor(client: Socket, options: RelayOptions) {
    this.#client = client;
    this.#options = options;
    this.peer = client.remoteAddress === undefined ? `unix#${this.id}` : formatPeer(client.remoteAddress, client.remotePort);
    client.pause();
    options.connections?.add(this);
    options.byClient?.set(client, this);
    options.onProxyEvent?.({ event: 'open', id: this.id, peer: this.peer });
    client.on('error', (err) => this.#error('client', err));
    client.once('close', (hadError) => this.#closed('client', hadError));
    void this.#connect();
  }

  /** 'native' once its bytes are relayed by the native engine, else 'js'. */
  get engine(): 'native' | 'js' {
    return this.#native !== undefined ? 'native' : 'js';
  }

  /**
   * Bytes the native engine moved on the client's socket, which the socket's own counters do
   * not see (zero on the js engine): read from the client, written to it.
   */
  movedOffSocket(): { readonly read: number; readonly written: number } {
    const c = this.#nativeFinal ?? (this.#native ? this.#native.counts(this.id) : undefined);
    return c === undefined ? { read: 0, written: 0 } : { read: c.fromClient, written: c.toClient };
  }

  /** Bytes this connection holds, per direction (toxics plus write buffers). */
  get held(): { readonly up: number; readonly down: number } {
    if (this.#native !== undefined) {
      // In the engine's pipes: read from one side (before the handoff too), not yet written to the other.
      const c = this.#nativeFinal ?? this.#native.counts(this.id);
      if (c === undefined) return { up: 0, down: 0 };
      return { up: this.#prefix.up + c.fromClient - c.toUpstream, down: this.#prefix.down + c.fromUpstream - c.toClient };
    }
    return { up: this.#up?.held ?? 0, down: this.#down?.held ?? 0 };
  }

  /**
   * Whether each direction has stopped reading its source (backpressure). On the native engine a
   * direction reads only while its pipe is empty: it has stopped while it holds bytes.
   */
  get paused(): { readonly up: boolean; readonly down: boolean } {
    if (this.#native !== undefined) {
      const h = this.held;
      return { up: h.up > 0, down: h.down > 0 };
    }
    return { up: this.#up?.paused ?? false, down: this.#down?.paused ?? false };
  }

  async #connect(): Promise<void> {
    const o = this.#options;
    let upstream: Socket;
    try {
      upstream = await connect(o.upstream, { signal: this.#abort.signal, timeoutMs: o.connectTimeoutMs ?? DEFAULT_UPSTREAM_CONNECT_TIMEOUT_MS }, ...(o.upstreamTransport ? [o.upstreamTransport] : []));
    } catch (err) {
      const e = toSocketkitError(err);
      this.#finish('upstream-failed', e.code, e.message);
      this.#open--; // no upstream socket to wait for
      resetConnection(this.#client);
      this.#report();
      return;
    }
    if (this.#client.destroyed) {
      upstream.destroy();
      this.#open--;
      this.#report();
      return;
    }
    this.#upstream = upstream;
    upstream.on('error', (err) => this.#error('upstream', err));
    upstream.once('close', (hadError) => this.#closed('upstream', hadError));
    if (o.engine !== undefined && this.#handOver(upstream, o.engine)) return;
    const random = o.random ?? Math.random;
    const hwm = o.highWaterMark ?? DEFAULT_PROXY_HIGH_WATER_MARK;
    const up = new Pipe(this.#client, upstream, '>', this, systemContext(false, random), hwm);
    const down = new Pipe(upstream, this.#client, '<', this, systemContext(false, random), hwm);
    this.#up = up;
    this.#down = down;
    this.#detach = o.toxics?.attach({ up: up.chain, down: down.chain, random });
    for (const p of [up, down]) this.#wire(p);
    up.chain.start();
    down.chain.start();
    this.#client.resume();
  }

  /**
   * Hands both sockets to the native engine when nothing needs JavaScript: Node stops reading
   * them (what it had read goes to the engine first), the engine relays with splice(2), and
   * `#nativeEnded` closes Node's sockets the way the connection ended. False when it stays here.
   */
  #handOver(upstream: Socket, engine: NativeRelay): boolean {
    const o = this.#options;
    if (o.dump !== undefined || (o.toxics?.list.length ?? 0) > 0) return false;
    const client = this.#client;
    const cfd = socketFd(client);
    const ufd = socketFd(upstream);
    if (cfd === undefined || ufd === undefined) return false;
    const toUpstream = takeOverReading(client);
    const toClient = toUpstream === undefined ? undefined : takeOverReading(upstream);
    if (toUpstream === undefined || toClient === undefined) {
      if (toUpstream !== undefined) resumeReading(client, toUpstream);
      return false;
    }
    this.#native = engine;
    this.#prefix = { up: toUpstream.length, down: toClient.length };
    if (!engine.add(cfd, ufd, this.id, { toUpstream, toClient }, (end) => this.#nativeEnded(end))) {
      // The engine could not take it (no slot, no descriptors for its pipes): relayed here after all.
      this.#native = undefined;
      this.#prefix = { up: 0, down: 0 };
      resumeReading(client, toUpstream);
      resumeReading(upstream, toClient);
      return false;
    }
    return true;
  }

  #nativeEnded(end: RelayEnd): void {
    this.#nativeFinal = end;
    const client = this.#client;
    const upstream = this.#upstream;
    if (end.how === 'client' || end.how === 'upstream') {
      const side = end.how;
      const e = toSocketkitError(Object.assign(new Error(end.errno ?? 'ECONNRESET'), { code: end.errno ?? 'ECONNRESET' }));
      this.#finish(side === 'client' ? 'client-reset' : 'upstream-reset', e.code, e.code === 'ERR_CONN_RESET' ? `connection reset by ${side}` : `${side}: ${e.message}`);
      // The engine has closed its descriptors: Node's are the last, so a reset goes out now.
      const other = side === 'client' ? upstream : client;
      if (other) resetConnection(other);
      (side === 'client' ? client : upstream)?.destroy();
      return;
    }
    this.#finish(end.how === 'clean' ? 'closed' : 'stopped');
    client.destroy();
    upstream?.destroy();
  }

  #wire(p: Pipe): void {
    const dump = this.#options.dump;
    p.src.on('data', (chunk: Buffer) => {
      dump?.chunk(this.id, p.dir, p.bytes, chunk);
      p.bytes += chunk.length;
      p.chain.write(chunk);
      p.checkPause();
      if (dump?.full === true && !p.paused) {
        p.paused = true;
        p.src.pause();
        dump.whenDrained(() => p.maybeResume());
      }
    });
    p.src.once('end', () => {
      // libuv reports a reset that arrives behind data as an end: ask the kernel.
      if (endedByReset(p.src)) {
        this.#resetFrom(p.src === this.#client ? 'client' : 'upstream');
        return;
      }
      p.chain.end();
    });
    p.dst.on('drain', () => p.maybeResume());
  }

  #resetFrom(side: 'client' | 'upstream'): void {
    this.#finish(side === 'client' ? 'client-reset' : 'upstream-reset', 'ERR_CONN_RESET', `connection reset by ${side}`);
    this.#destroyAll(true);
  }

  #error(side: 'client' | 'upstream', err: Error): void {
    const e = toSocketkitError(err);
    if (e.code === 'ERR_CONN_RESET') this.#finish(side === 'client' ? 'client-reset' : 'upstream-reset', e.code, `connection reset by ${side}`);
    else this.#finish(side === 'client' ? 'client-reset' : 'upstream-reset', e.code, `${side}: ${e.message}`);
  }

  #closed(side: 'client' | 'upstream', hadError: boolean): void {
    this.#open--;
    if (this.#native !== undefined) {
      // Node closed the client's socket while the engine relays it (idle sweep, stop): the engine ends it too.
      if (this.#nativeFinal === undefined) this.#native.close(this.id);
      if (side === 'client') this.#abort.abort();
      this.#report();
      return;
    }
    const s = side === 'client' ? this.#client : this.#upstream;
    const normal = !hadError && s !== undefined && s.readableEnded && s.writableFinished;
    if (!normal) {
      this.#finish(hadError ? (side === 'client' ? 'client-reset' : 'upstream-reset') : 'stopped');
      // A reset already decided (this socket was reset by us, a moment ago) resets the other too.
      const e = this.#end;
      this.#destroyAll(e === 'client-reset' || e === 'upstream-reset' || e === 'toxic-reset');
    }
    if (side === 'client') this.#abort.abort();
    this.#report();
  }

  /** A toxic asks for a clean close of the whole connection: what is written is flushed, then both close. */
  toxicClose(): void {
    this.#finish('toxic-closed');
    this.#up?.chain.destroy();
    this.#down?.chain.destroy();
    for (const s of [this.#client, this.#upstream]) if (s && !s.destroyed) s.destroySoon();
  }

  /** A toxic asks for a reset of the whole connection. */
  toxicReset(): void {
    this.#finish('toxic-reset');
    this.#destroyAll(true);
  }

  #destroyAll(reset: boolean): void {
    this.#up?.chain.destroy();
    this.#down?.chain.destroy();
    for (const s of [this.#client, this.#upstream]) {
      if (!s || s.destroyed) continue;
      if (reset) resetConnection(s);
      else s.destroy();
    }
  }

  #finish(end: ProxyEnd, code?: string, message?: string): void {
    if (this.#end !== undefined) return;
    this.#end = end;
    this.#code = code;
    this.#message = message;
  }

  #report(): void {
    if (this.#open > 0 || this.#reported) return;
    this.#reported = true;
    this.#detach?.();
    this.#up?.chain.destroy();
    this.#down?.chain.destroy();
    this.#options.connections?.delete(this);
    this.#options.onProxyEvent?.({
      event: 'close',
      id: this.id,
      peer: this.peer,
      bytesUp: this.#nativeFinal ? this.#prefix.up + this.#nativeFinal.fromClient : (this.#up?.bytes ?? 0),
      bytesDown: this.#nativeFinal ? this.#prefix.down + this.#nativeFinal.fromUpstream : (this.#down?.bytes ?? 0),
      ms: Math.round(performance.now() - this.#started),
      end: this.#end ?? 'closed',
      ...(this.#code !== undefined ? { code: this.#code } : {}),
      ...(this.#message !== undefined ? { message: this.#message } : {}),
    });
    this.#options.reported?.emit('reported');
  }
}

/** The relay as a managed-server protocol (see server/server.ts). */
export function relayProtocol(options: RelayOptions): Protocol {
  return () => (socket) => {
    new ProxyConnection(socket, options);
  };
}

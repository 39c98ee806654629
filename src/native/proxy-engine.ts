/**
 * The relay's native engine (native/proxy_engine.c): the connections of `socketkit proxy` that
 * have nothing to do in JavaScript (no toxic, no dump, no TLS) are relayed by engine threads with
 * splice(2), socket -> pipe -> socket, so their bytes never enter user space. The TypeScript relay
 * (src/proxy/relay.ts) stays the readable reference and does everything else: it accepts, admits
 * and connects, then hands both descriptors over (see ProxyConnection), keeps Node's sockets open
 * but idle for the managed server's bookkeeping, and closes them when the engine reports the end.
 */
import { constants as osConstants } from 'node:os';
import { nativeModule, nativeStatus, type NativeStatus } from './helper.js';

declare const relayBrand: unique symbol;
type RelayHandle = { readonly [relayBrand]: true };

interface ProxyEngineModule {
  proxyEngineStart(threads: number, maxSlots: number, pipeSize: number, turnBytes: number, onEnds: (records: Float64Array, final: boolean) => void): RelayHandle;
  /** 0, or a negative errno (the descriptors stay the caller's either way). */
  proxyEngineAdd(handle: RelayHandle, clientFd: number, upstreamFd: number, id: number, slot: number, prefixToUpstream: Buffer | null, prefixToClient: Buffer | null): number;
  proxyEngineClose(handle: RelayHandle, slot: number, id: number): void;
  /** [fromClient, toUpstream, fromUpstream, toClient]. */
  proxyEngineCounters(handle: RelayHandle, slot: number): Float64Array;
  proxyEngineStop(handle: RelayHandle): void;
}

const FUNCTIONS = ['proxyEngineStart', 'proxyEngineAdd', 'proxyEngineClose', 'proxyEngineCounters', 'proxyEngineStop'] as const;
const REC = 8;

/** Most connections one engine relays at once (more stay on the js engine). */
export const NATIVE_RELAY_SLOTS = 65_536;

function relayModule(): ProxyEngineModule | undefined {
  return nativeModule<ProxyEngineModule>([...FUNCTIONS]);
}

/** Whether the native relay can run here, and if not, why. */
export function nativeRelayStatus(): NativeStatus {
  const helper = nativeStatus();
  if (!helper.available) return helper;
  return relayModule() ? helper : { available: false, reason: 'the native helper was built without the relay engine (rebuild it: node scripts/build-native.js)' };
}

/** How the engine runs (the defaults suit; for tests and benchmarks). */
export interface NativeRelayTuning {
  /** Engine threads (default 1). */
  readonly threads?: number;
  /** Bytes per direction's pipe (default 0: the system's, 64 KiB on Linux). */
  readonly pipeSize?: number;
  /** Bytes a connection moves before the others get their turn (default 0: 1 MiB). */
  readonly turnBytes?: number;
  /** Most connections on the engine at once; more stay in JS (default NATIVE_RELAY_SLOTS). */
  readonly maxConnections?: number;
}

/** Bytes each way, as the engine counted them ("from": what it read, prefixes not included; "to": all it wrote). */
export interface RelayCounts {
  readonly fromClient: number;
  readonly toUpstream: number;
  readonly fromUpstream: number;
  readonly toClient: number;
}

/** How a natively relayed connection ended. */
export interface RelayEnd extends RelayCounts {
  /** clean: both sides closed (FIN both ways); client/upstream: that side failed (errno); stopped: closed on request. */
  readonly how: 'clean' | 'client' | 'upstream' | 'stopped';
  /** The errno's name (ECONNRESET, EPIPE, ...), when a side failed. */
  readonly errno?: string;
}

const ERRNO_NAMES = new Map<number, string>(Object.entries(osConstants.errno).map(([name, n]) => [n, name]));
const HOW = ['clean', 'client', 'upstream', 'stopped'] as const;

/** One engine: threads, and the connections handed to them. */
export class NativeRelay {
  readonly #m: ProxyEngineModule;
  readonly #handle: RelayHandle;
  readonly #waiting = new Map<number, (end: RelayEnd) => void>();
  readonly #slotOf = new Map<number, number>();
  readonly #free: number[] = [];
  #nextSlot = 0;
  readonly #slots: number;
  #stopped = false;

  constructor(tuning: NativeRelayTuning = {}) {
    const m = relayModule();
    if (m === undefined) throw new Error(nativeRelayStatus().reason ?? 'the native relay is not available');
    this.#m = m;
    this.#slots = Math.max(1, Math.min(NATIVE_RELAY_SLOTS, tuning.maxConnections ?? NATIVE_RELAY_SLOTS));
    this.#handle = m.proxyEngineStart(tuning.threads ?? 1, this.#slots, tuning.pipeSize ?? 0, tuning.turnBytes ?? 0, (records) => this.#ends(records));
  }

  /**
   * Hands a connection over: from now on the engine moves its bytes (first `prefix`, what Node
   * had read from each side before), and `onEnd` runs once when
   * it has ended (the engine has closed its own descriptors). False, with nothing handed over,
   * when the engine cannot take it (stopped, every slot in use, out of descriptors for the
   * pipes): the caller relays it itself.
   */
  add(clientFd: number, upstreamFd: number, id: number, prefix: { readonly toUpstream: Buffer; readonly toClient: Buffer }, onEnd: (end: RelayEnd) => void): boolean {
    if (this.#stopped) return false;
    const slot = this.#free.pop() ?? (this.#nextSlot < this.#slots ? this.#nextSlot++ : undefined);
    if (slot === undefined) return false;
    const r = this.#m.proxyEngineAdd(this.#handle, clientFd, upstreamFd, id, slot, prefix.toUpstream.length > 0 ? prefix.toUpstream : null, prefix.toClient.length > 0 ? prefix.toClient : null);
    if (r < 0) {
      this.#free.push(slot);
      return false;
    }
    this.#slotOf.set(id, slot);
    this.#waiting.set(id, onEnd);
    return true;
  }

  /** Bytes moved so far by a connection still on the engine. */
  counts(id: number): RelayCounts | undefined {
    const slot = this.#slotOf.get(id);
    if (slot === undefined) return undefined;
    const c = this.#m.proxyEngineCounters(this.#handle, slot);
    return { fromClient: c[0]!, toUpstream: c[1]!, fromUpstream: c[2]!, toClient: c[3]! };
  }

  /** Asks the engine to end a connection (its end is then 'stopped'); nothing if it has ended. */
  close(id: number): void {
    const slot = this.#slotOf.get(id);
    if (slot !== undefined && !this.#stopped) this.#m.proxyEngineClose(this.#handle, slot, id);
  }

  /** Ends every connection (reported as stopped) and the threads. Idempotent. */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#m.proxyEngineStop(this.#handle);
  }

  #ends(r: Float64Array): void {
    for (let i = 0; i + REC <= r.length; i += REC) {
      const id = r[i]!;
      const slot = r[i + 1]!;
      const how = HOW[r[i + 2]!] ?? 'stopped';
      const errno = r[i + 3]!;
      const onEnd = this.#waiting.get(id);
      if (onEnd === undefined) continue;
      this.#waiting.delete(id);
      this.#slotOf.delete(id);
      this.#free.push(slot);
      onEnd({
        how,
        ...(errno > 0 ? { errno: ERRNO_NAMES.get(errno) ?? `errno ${errno}` } : {}),
        fromClient: r[i + 4]!,
        toUpstream: r[i + 5]!,
        fromUpstream: r[i + 6]!,
        toClient: r[i + 7]!,
      });
    }
  }
}

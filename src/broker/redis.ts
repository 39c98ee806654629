/**
 * Brokers on several machines, joined by Redis pub/sub (`--redis redis://HOST:PORT`): what a
 * client of one instance sends reaches the clients of every instance on the same channel, and
 * chat names and rooms are kept in Redis so that they are one chat.
 *
 * What Redis pub/sub does not promise, and what is done about it:
 * - Delivery is at most once: a message published while an instance is disconnected never
 *   reaches it, and nothing is replayed. Each message carries its origin, so an instance never
 *   delivers its own message twice (it also receives it from Redis), and a sequence number per
 *   origin, so an instance counts (and says, once a second) the messages that never arrived.
 * - A subscriber that falls behind is cut off by Redis (`client-output-buffer-limit pubsub`,
 *   32 MiB at once or 8 MiB for 60 s by default). The client resubscribes; what was published
 *   meanwhile is lost, and the instance says that Redis closed its subscription alone.
 * - Flow control across instances is by credit, so that what is on its way between two
 *   instances is bounded and a receiver on one instance that keeps up is never overrun by a
 *   sender on another. Every data message carries the byte offset of its end in its origin's
 *   stream. Each instance tells every origin it hears from how far it may publish: the offset it
 *   has delivered to its own clients' queues plus its window (`window`, a quarter of its queue
 *   size), in grants on CHANNEL:credit (sent and read on connections of their own, so that they
 *   never wait behind data). An instance holding its senders for one of its own clients sends no
 *   grants meanwhile, so the others stop within a window. An instance past the grant of any
 *   other (or with half of `maxPendingBytes` on its way to Redis) says so from `publish`, and the
 *   broker holds its senders. An instance whose grant stops us for `holdMs` (the broker's
 *   bound, as for a client) is waited for no longer until it catches up; grants are repeated
 *   once a second, and an instance not heard from for a few seconds (gone without saying so)
 *   is forgotten.
 * - Publishing never waits: beyond `maxPendingBytes` on their way to Redis messages are
 *   dropped and counted, so a slow or absent Redis cannot grow our memory.
 *
 * When Redis goes away the instance keeps serving its own clients, says so once, reconnects
 * with backoff (0.1 s doubling to 5 s) and says when it is back. Chat names claimed in Redis
 * expire unless their instance renews them, so a crashed instance's names free up.
 */
import { randomBytes } from 'node:crypto';
import { SocketkitError, toSocketkitError, type ErrorCode } from '../core/errors.js';
import { LocalChatDirectory, type BrokerBridge, type ChatDirectory } from './bridge.js';

export const DEFAULT_REDIS_CHANNEL = 'socketkit';
/** Bytes on their way to Redis at most; more are dropped. */
export const DEFAULT_REDIS_MAX_PENDING = 8 * 1024 * 1024;
/** Chat names and room entries live this long in Redis unless renewed. */
const NAME_TTL_S = 60;
const RENEW_MS = 20_000;
const ORIGIN_BYTES = 8;
/** Offsets are 6-byte unsigned integers, counted modulo 2^48 (they wrap after 256 TiB). */
const OFFSET_BYTES = 6;
const OFFSET_MOD = 2 ** 48;
/** `a - b` for offsets that wrap: within ±2^47 (windows are far smaller). */
function ahead(a: number, b: number): number {
  const d = (a - b + OFFSET_MOD) % OFFSET_MOD;
  return d >= OFFSET_MOD / 2 ? d - OFFSET_MOD : d;
}
/** Data: origin, kind (1 byte), sequence number (4 bytes), the offset of the message's end. */
const HEADER_BYTES = ORIGIN_BYTES + 1 + 4 + OFFSET_BYTES;
/** Grant: origin (the granter), kind, the origin granted to, the offset it may publish up to. */
const GRANT_BYTES = ORIGIN_BYTES + 1 + ORIGIN_BYTES + OFFSET_BYTES;
const KIND_DATA = 0;
/** On the credit channel: an instance lets another publish up to an offset. */
const KIND_GRANT = 3;
/** On the credit channel: an instance leaves (wait for it no longer). */
const KIND_BYE = 4;
/** On the credit channel: an instance has started (with its offset): grant to it, and say you are here. */
const KIND_HELLO = 5;
/** On the credit channel, once a second and in answer to a hello: an instance is here (with its offset). */
const KIND_HERE = 6;
/** Hello and here: origin, kind, offset. */
const HELLO_BYTES = ORIGIN_BYTES + 1 + OFFSET_BYTES;
/** A receiving instance's window when the broker sets none: a quarter of the default queue. */
export const DEFAULT_REDIS_WINDOW = 256 * 1024;
/** Grants and heres are repeated this often, so that a living instance is told from a gone one. */
const CREDIT_REPEAT_MS = 1000;
/** An instance that has said nothing for this long is gone: not waited for, not granted to. */
const REMOTE_STALE_MS = 3500;

export interface RedisStatus {
  readonly up: boolean;
  /** The server, as given (without a password). */
  readonly where: string;
  readonly code?: ErrorCode;
  readonly message?: string;
}

/** Messages lost since the last report. */
export interface RedisLoss {
  /** Messages of this instance's clients not published: Redis was away or did not keep up (the backlog was full). */
  readonly notPublished: number;
  /** Messages of other instances that never reached this one (gaps in their sequence numbers). */
  readonly lost: number;
  readonly where: string;
}

export interface RedisBridgeOptions {
  readonly channel?: string;
  readonly maxPendingBytes?: number;
  /** Connection lost and regained (not called for the first connection's success). */
  readonly onStatus?: (s: RedisStatus) => void;
  /** Messages lost, said at most once a second with the counts since the last call. */
  readonly onLoss?: (l: RedisLoss) => void;
  readonly signal?: AbortSignal;
}

export interface RedisJoin {
  readonly bridge: BrokerBridge & {
    /** Messages not published (Redis away, or the backlog full). */
    readonly dropped: number;
    /** Messages of other instances that never arrived (gaps in their sequence numbers). */
    readonly lost: number;
    readonly published: number;
    readonly received: number;
    /** Both connections (publishing, subscription) are up. */
    readonly up: boolean;
  };
  readonly directory: ChatDirectory;
}

/** Resolves when every promise has settled, or after `ms`, whichever comes first (never rejects). */
function settledWithin(ms: number, promises: readonly Promise<unknown>[]): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    void Promise.allSettled(promises).then(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** The socket error inside a Redis client's error, when there is one. */
function systemError(err: unknown): unknown {
  const inner = (err as { socketError?: unknown; originalError?: unknown } | undefined)?.socketError ?? (err as { originalError?: unknown } | undefined)?.originalError;
  return inner ?? err;
}

/** The URL without its password, for messages. */
function shown(url: string): string {
  try {
    const u = new URL(url);
    u.password = '';
    return u.toString().replace(/\/$/, '');
  } catch {
    return url;
  }
}

/**
 * Connects to Redis at `url` and returns the bridge and chat directory of this instance. Fails
 * at once (coded: ERR_CONN_REFUSED, ERR_UNKNOWN_HOST, ...) when the first connection does.
 */
export async function connectRedisBridge(url: string, options: RedisBridgeOptions = {}): Promise<RedisJoin> {
  const { createClient } = await import('@redis/client');
  const where = shown(url);
  const channel = options.channel ?? DEFAULT_REDIS_CHANNEL;
  const maxPending = options.maxPendingBytes ?? DEFAULT_REDIS_MAX_PENDING;
  const origin = randomBytes(ORIGIN_BYTES);
  let started = false;
  const reconnectStrategy = (retries: number, cause: Error): number | Error => (started ? Math.min(100 * 2 ** retries, 5000) : cause);
  const pub = createClient({ url, disableOfflineQueue: true, socket: { reconnectStrategy, connectTimeout: 5000 } });
  const sub = pub.duplicate();
  // Grants travel on their own channel and connections: on the data connections they would wait
  // behind everything on its way (an instance also gets its own messages back).
  const ctl = pub.duplicate();
  const ctlPub = pub.duplicate();
  const creditChannel = `${channel}:credit`;
  // Each connection's own state: publishing and the chat directory need `pub` alone, so an
  // instance whose subscription Redis closed goes on publishing meanwhile.
  let pubUp = false;
  let subUp = false;
  /** Whether `pub` went down since the last time both were up (else Redis closed the subscription alone). */
  let pubWentDown = false;
  let reported = true;
  let lastDown = '';
  const down = (which: 'pub' | 'sub', err: unknown): void => {
    const e = toSocketkitError(systemError(err), where);
    if (which === 'pub') {
      pubUp = false;
      pubWentDown = true;
    } else subUp = false;
    if (!started) return;
    if (reported || lastDown !== e.message) options.onStatus?.({ up: false, where, code: e.code, message: e.message });
    reported = false;
    lastDown = e.message;
  };
  const ready = (which: 'pub' | 'sub'): void => {
    if (which === 'pub') pubUp = true;
    else subUp = true;
    if (!started || reported || !pubUp || !subUp) return;
    options.onStatus?.({
      up: true,
      where,
      // Only the subscription went: Redis closed it, which it does to a subscriber that falls behind.
      ...(pubWentDown ? {} : { message: 'Redis had closed the subscription alone (it cuts off a subscriber that falls behind: client-output-buffer-limit pubsub)' }),
    });
    reported = true;
    lastDown = '';
    pubWentDown = false;
  };
  // The control connection's trouble is the others' too; they say it.
  ctl.on('error', () => undefined);
  ctlPub.on('error', () => undefined);
  pub.on('error', (err: unknown) => down('pub', err));
  sub.on('error', (err: unknown) => down('sub', err));
  pub.on('ready', () => ready('pub'));
  sub.on('ready', () => ready('sub'));
  try {
    await pub.connect();
    await sub.connect();
    await ctl.connect();
    await ctlPub.connect();
  } catch (err) {
    for (const c of [pub, sub, ctl, ctlPub]) {
      try {
        c.destroy();
      } catch {
        // Already closed by the failed connect.
      }
    }
    // The client wraps the socket's error (ECONNREFUSED, ENOTFOUND, ...) as `socketError`.
    const e = toSocketkitError(systemError(err), where);
    throw new SocketkitError(e.code === 'ERR_INTERNAL' ? 'ERR_IO' : e.code, `redis: ${e.message}`, { cause: err });
  }
  started = true;
  pubUp = true;
  subUp = true;

  // Publishing: a backlog of at most maxPending bytes; past half of it, or past another
  // instance's grant, publish() says so (the broker then holds its senders back for a while);
  // past all of the backlog messages are dropped.
  const highWater = Math.max(1, Math.floor(maxPending / 2));
  let pendingBytes = 0;
  let needDrain = false;
  let onDrain: (() => void) | undefined;
  /** The offset of the end of this instance's last message published (modulo 2^48). */
  let offset = 0;
  /**
   * Every other instance heard from: how far it lets us publish, when it last said so, and
   * whether it is waited for no longer (it let us send no more for `holdMs`; until it catches up).
   */
  const grants = new Map<string, { limit: number; seen: number; released: boolean }>();
  /** The grant that stops us first (undefined: none does). */
  let minGrant: number | undefined;
  /** Whether the grants let us publish no more. */
  const stopped = (): boolean => minGrant !== undefined && ahead(offset, minGrant) >= 0;
  let holdMs = 500;
  /** While the window of another instance stops us: the timer that stops waiting for it. */
  let windowTimer: NodeJS.Timeout | undefined;
  const recomputeGrant = (): void => {
    minGrant = undefined;
    for (const g of grants.values()) {
      if (g.released && ahead(g.limit, offset) > 0) g.released = false;
      if (!g.released && (minGrant === undefined || ahead(g.limit, minGrant) < 0)) minGrant = g.limit;
    }
    if (windowTimer !== undefined && !stopped()) {
      clearTimeout(windowTimer);
      windowTimer = undefined;
    }
  };
  const checkDrain = (): void => {
    if (needDrain && pendingBytes <= highWater / 2 && !stopped()) {
      needDrain = false;
      onDrain?.();
    }
  };
  /** Stops waiting for the instances whose window has stopped us for `holdMs`. */
  const releaseWindows = (): void => {
    windowTimer = undefined;
    for (const g of grants.values()) if (ahead(offset, g.limit) >= 0) g.released = true;
    recomputeGrant();
    checkDrain();
  };
  // Receiving: for every origin heard from, the offset delivered to our clients' queues and the
  // grant last sent to it.
  let window = DEFAULT_REDIS_WINDOW;
  /** `granted` undefined: none sent yet. */
  const sources = new Map<string, { origin: Buffer; end: number; granted: number | undefined; seen: number }>();
  /** Our broker holds its senders for one of its clients: no grants meanwhile. */
  let holding = false;
  let grantsDue = false;
  const sendGrant = (src: { origin: Buffer; granted: number | undefined }): void => {
    if (src.granted === undefined) return;
    const message = Buffer.allocUnsafe(GRANT_BYTES);
    origin.copy(message, 0);
    message[ORIGIN_BYTES] = KIND_GRANT;
    src.origin.copy(message, ORIGIN_BYTES + 1);
    message.writeUIntBE(src.granted, ORIGIN_BYTES + 1 + ORIGIN_BYTES, OFFSET_BYTES);
    // A grant lost (Redis away) is repeated within a second.
    ctlPub.publish(creditChannel, message).catch(() => undefined);
  };
  /**
   * Sends the grants that moved by an eighth of the window or more; `all`: every grant (while
   * holding, the last ones again, not moved: we are here, but not ready for more).
   */
  const flushGrants = (all: boolean): void => {
    grantsDue = false;
    for (const src of sources.values()) {
      const limit = (src.end + window) % OFFSET_MOD;
      if (!holding && (src.granted === undefined || ahead(limit, src.granted) > (all ? 0 : window / 8))) src.granted = limit;
      // Holding: an instance new to us learns that we are here, and that it may send nothing yet.
      else if (src.granted === undefined) src.granted = src.end;
      else if (!all) continue;
      sendGrant(src);
    }
  };
  /** An instance heard from (data, hello, here): known as a source from now on. */
  const source = (from: string, message: Buffer, end: number): { end: number; seen: number; granted: number | undefined } => {
    let src = sources.get(from);
    if (src === undefined) sources.set(from, (src = { origin: Buffer.from(message.subarray(0, ORIGIN_BYTES)), end, granted: undefined, seen: 0 }));
    src.seen = performance.now();
    return src;
  };
  const sayHere = (kind: number): void => {
    const message = Buffer.allocUnsafe(HELLO_BYTES);
    origin.copy(message, 0);
    message[ORIGIN_BYTES] = kind;
    message.writeUIntBE(offset, ORIGIN_BYTES + 1, OFFSET_BYTES);
    ctlPub.publish(creditChannel, message).catch(() => undefined);
  };
  const grantSoon = (): void => {
    if (grantsDue) return;
    grantsDue = true;
    // After the messages of this read are all delivered: one grant for them.
    setImmediate(() => flushGrants(false));
  };
  let dropped = 0;
  let published = 0;
  // Every message: origin (8 bytes), kind (1 byte), sequence number (4 bytes, per origin),
  // payload. A gap in an origin's numbers is a message Redis did not deliver to us.
  let seq = 0;
  const lastSeq = new Map<string, number>();
  let lost = 0;
  let received = 0;
  let onData: ((data: Buffer) => void) | undefined;
  await sub.subscribe(
    channel,
    (message: Buffer) => {
      if (message.length < HEADER_BYTES || message.subarray(0, ORIGIN_BYTES).equals(origin)) return;
      const from = message.toString('hex', 0, ORIGIN_BYTES);
      if (message[ORIGIN_BYTES] !== KIND_DATA) return;
      const n = message.readUInt32BE(ORIGIN_BYTES + 1);
      const last = lastSeq.get(from);
      if (last !== undefined) {
        const gap = (n - last - 1) >>> 0;
        // A gap of more than 2^31 is an instance that started again (numbers from 0), not a loss.
        if (gap > 0 && gap < 0x8000_0000) lost += gap;
      }
      lastSeq.set(from, n);
      received++;
      onData?.(message.subarray(HEADER_BYTES));
      // Delivered to our clients' queues (or dropped for them): the sender may go on.
      const end = message.readUIntBE(ORIGIN_BYTES + 5, OFFSET_BYTES);
      source(from, message, end).end = end;
      grantSoon();
    },
    true,
  );

  await ctl.subscribe(
    creditChannel,
    (message: Buffer) => {
      if (message.length < ORIGIN_BYTES + 1 || message.subarray(0, ORIGIN_BYTES).equals(origin)) return;
      const from = message.toString('hex', 0, ORIGIN_BYTES);
      const kind = message[ORIGIN_BYTES];
      if (kind === KIND_BYE) {
        sources.delete(from);
        if (grants.delete(from)) {
          recomputeGrant();
          checkDrain();
        }
        return;
      }
      if ((kind === KIND_HELLO || kind === KIND_HERE) && message.length >= HELLO_BYTES) {
        // Its offset counts only for an instance new to us (else data on its way may be behind it).
        const src = source(from, message, message.readUIntBE(ORIGIN_BYTES + 1, OFFSET_BYTES));
        if (src.granted === undefined) grantSoon();
        if (kind === KIND_HELLO) sayHere(KIND_HERE);
        return;
      }
      if (kind !== KIND_GRANT || message.length < GRANT_BYTES || !message.subarray(ORIGIN_BYTES + 1, ORIGIN_BYTES + 1 + ORIGIN_BYTES).equals(origin)) return;
      const limit = message.readUIntBE(ORIGIN_BYTES + 1 + ORIGIN_BYTES, OFFSET_BYTES);
      const g = grants.get(from);
      const now = performance.now();
      if (g === undefined) grants.set(from, { limit, seen: now, released: false });
      else {
        g.seen = now;
        // Grants only grow; an older one overtaken by a newer is ignored.
        if (ahead(limit, g.limit) <= 0) return;
        g.limit = limit;
      }
      recomputeGrant();
      checkDrain();
    },
    true,
  );

  // Once a second: here, and our grants repeated (so that the others know we are here), and
  // instances gone silent forgotten. (An instance that stops us is waited for `holdMs` at most,
  // like a client: see releaseWindows.)
  const creditTimer = setInterval(() => {
    const now = performance.now();
    for (const [id, src] of sources) if (now - src.seen > REMOTE_STALE_MS) sources.delete(id);
    sayHere(KIND_HERE);
    flushGrants(true);
    let forgot = false;
    for (const [id, g] of grants) {
      if (now - g.seen > REMOTE_STALE_MS) {
        grants.delete(id);
        forgot = true;
      }
    }
    if (forgot) {
      recomputeGrant();
      checkDrain();
    }
  }, CREDIT_REPEAT_MS);
  creditTimer.unref();
  // The others learn of us now, before our clients send anything, and grant to us (and we to them).
  sayHere(KIND_HELLO);

  // Losses are said at most once a second, with how many since the last time.
  let saidDropped = 0;
  let saidLost = 0;
  const lossTimer = setInterval(() => {
    if (dropped === saidDropped && lost === saidLost) return;
    options.onLoss?.({ notPublished: dropped - saidDropped, lost: lost - saidLost, where });
    saidDropped = dropped;
    saidLost = lost;
  }, 1000);
  lossTimer.unref();

  const local = new LocalChatDirectory();
  const owned = new Map<string, string>(); // lower-case name -> room key it is in ('' for none)
  const nameKey = (name: string): string => `${channel}:nick:${name.toLowerCase()}`;
  const roomKey = (room: string): string => `${channel}:room:${room}`;
  const me = origin.toString('hex');
  /** A Redis call, or the local directory's answer while Redis is away. */
  const either = async <T>(remote: () => Promise<T>, fallback: () => Promise<T>): Promise<T> => {
    if (!pubUp) return fallback();
    try {
      return await remote();
    } catch (err) {
      down('pub', err);
      return fallback();
    }
  };
  const renew = setInterval(() => {
    if (!pubUp) return;
    const failed = (err: unknown): void => down('pub', err);
    for (const [name, room] of owned) {
      pub.expire(nameKey(name), NAME_TTL_S).catch(failed);
      if (room) pub.zAdd(roomKey(room), { score: Date.now(), value: name }).catch(failed);
    }
  }, RENEW_MS);
  renew.unref();

  const directory: ChatDirectory = {
    nextUserNumber: () => either(async () => Number(await pub.incr(`${channel}:users`)), () => local.nextUserNumber().then((n) => 1_000_000 + n)),
    claim: (name, owner) =>
      either(
        async () => (await pub.set(nameKey(name), `${me}:${owner}`, { NX: true, EX: NAME_TTL_S })) === 'OK',
        () => local.claim(name, owner),
      ).then((ok) => {
        if (ok) owned.set(name.toLowerCase(), '');
        return ok;
      }),
    release: async (name) => {
      owned.delete(name.toLowerCase());
      await local.release(name);
      await either(
        async () => void (await pub.del(nameKey(name))),
        () => Promise.resolve(),
      );
    },
    enter: async (room, name) => {
      if (owned.has(name.toLowerCase())) owned.set(name.toLowerCase(), room);
      await local.enter(room, name);
      // Room entries are scored by when they were last renewed; old ones are a dead instance's.
      await either(
        async () => void (await pub.zAdd(roomKey(room), { score: Date.now(), value: name })),
        () => Promise.resolve(),
      );
    },
    leave: async (room, name) => {
      await local.leave(room, name);
      await either(
        async () => void (await pub.zRem(roomKey(room), name)),
        () => Promise.resolve(),
      );
    },
    members: (room) =>
      either(
        async () => {
          await pub.zRemRangeByScore(roomKey(room), 0, Date.now() - NAME_TTL_S * 1000);
          return (await pub.zRange(roomKey(room), 0, -1)).sort();
        },
        () => local.members(room),
      ),
  };

  let closed = false;
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    clearInterval(renew);
    clearInterval(lossTimer);
    clearInterval(creditTimer);
    clearTimeout(windowTimer);
    // The others wait for our grants no longer.
    if (pubUp) {
      const bye = Buffer.alloc(ORIGIN_BYTES + 1);
      origin.copy(bye, 0);
      bye[ORIGIN_BYTES] = KIND_BYE;
      await settledWithin(1000, [ctlPub.publish(creditChannel, bye)]);
    }
    // Names go back (a Redis that stopped answering gets 2 s for that), then the sockets go:
    // what is still on its way is lost, as pub/sub loses it anyway.
    if (pubUp) await settledWithin(2000, [...owned.keys()].map((name) => pub.del(nameKey(name))));
    owned.clear();
    for (const c of [ctl, ctlPub, sub, pub]) {
      try {
        c.destroy();
      } catch {
        // Already closed.
      }
    }
  };
  options.signal?.addEventListener('abort', () => void close(), { once: true });

  const bridge = {
    get dropped() {
      return dropped;
    },
    get lost() {
      return lost;
    },
    get published() {
      return published;
    },
    get received() {
      return received;
    },
    get up() {
      return pubUp && subUp;
    },
    publish(data: Uint8Array): boolean {
      if (!pubUp || pendingBytes + data.byteLength > maxPending) {
        dropped++;
        return !pubUp;
      }
      const message = Buffer.allocUnsafe(HEADER_BYTES + data.byteLength);
      origin.copy(message, 0);
      message[ORIGIN_BYTES] = KIND_DATA;
      message.writeUInt32BE(seq, ORIGIN_BYTES + 1);
      seq = (seq + 1) >>> 0;
      offset = (offset + data.byteLength) % OFFSET_MOD;
      message.writeUIntBE(offset, ORIGIN_BYTES + 5, OFFSET_BYTES);
      message.set(data, HEADER_BYTES);
      pendingBytes += message.length;
      published++;
      pub
        .publish(channel, message)
        .catch((err: unknown) => {
          dropped++;
          down('pub', err);
        })
        .finally(() => {
          pendingBytes -= message.length;
          checkDrain();
        });
      if (stopped()) {
        needDrain = true;
        if (holdMs === 0) releaseWindows();
        else windowTimer ??= setTimeout(releaseWindows, holdMs).unref();
      }
      if (pendingBytes > highWater) needDrain = true;
      return !needDrain;
    },
    subscribe(listener: (data: Buffer) => void): void {
      onData = listener;
    },
    onDrain(listener: () => void): void {
      onDrain = listener;
    },
    hold(on: boolean): void {
      holding = on;
      // Caught up: the grants held back go out now.
      if (!on) flushGrants(false);
    },
    setFlow(flow: { readonly window: number; readonly holdMs: number }): void {
      window = Math.max(1, Math.floor(flow.window));
      holdMs = Math.max(0, flow.holdMs);
    },
    close,
  };
  return { bridge, directory };
}

/**
 * UDP for `connect --udp` and `listen --udp`: each read of the input is one datagram (a
 * terminal reads a line at a time; a read over the protocol maximum is sent as several), and
 * datagrams that arrive are written out as they come.
 *
 * Sending waits for each datagram's send callback before reading more input, so input is read
 * no faster than the kernel takes it. Arriving datagrams cannot be paused (UDP has no flow
 * control): while `output` is above its high-water mark they are dropped and counted, never
 * queued without bound.
 *
 * Broadcast (SO_BROADCAST) and multicast (TTL, interface, group membership) are options of the
 * same two calls. With either, the client's socket is not connected: replies come from the
 * answering hosts' own addresses, which a connected socket would filter out.
 */
import { createSocket, type RemoteInfo } from 'node:dgram';
import { networkInterfaces } from 'node:os';
import { isIP } from 'node:net';
import type { Readable, Writable } from 'node:stream';
import { SocketkitError, toSocketkitError } from '../core/errors.js';
import { formatEndpoint, formatPeer, resolveInet, type Endpoint } from '../net/endpoint.js';
import type { AccessList } from '../security/access.js';
import { maxUdpPayload } from '../udp/constants.js';
import { bindUdp, closeQuietly, connectUdp, requireInet, toUdpError, type DgramSocket } from '../udp/socket.js';
import { DEFAULT_UDP_REPLY_WAIT_MS } from './constants.js';

/** Multicast settings. */
export interface MulticastOptions {
  /** Hops a multicast datagram may take (IP_MULTICAST_TTL). Default 1: this link only. */
  readonly ttl?: number;
  /** The interface, as its IPv4 address or its name (eth0): where multicast is sent and joined. */
  readonly iface?: string;
}

/** Datagram counts one way and the other. */
export interface UdpCounts {
  readonly datagramsSent: number;
  readonly bytesSent: number;
  readonly datagramsReceived: number;
  readonly bytesReceived: number;
  /** Arrived while the output was full, or refused by the access list. */
  readonly datagramsDropped: number;
}

export interface UdpClientOptions {
  readonly input: Readable;
  /** Where replies go; see `onReply` to write them differently (with their sender). */
  readonly output: Writable;
  /** Formats a reply for `output` (default: the bytes as they are). */
  readonly format?: (data: Buffer, from: RemoteInfo) => Buffer;
  /** After the input ends, wait this long for replies (every reply restarts it), ms. */
  readonly replyWaitMs?: number;
  readonly signal?: AbortSignal;
  /** Send to a broadcast address (SO_BROADCAST). */
  readonly broadcast?: boolean;
  /** Send to a multicast group. */
  readonly multicast?: MulticastOptions;
}

export interface UdpListenOptions {
  readonly output: Writable;
  readonly format?: (data: Buffer, from: RemoteInfo) => Buffer;
  /** Sent to the last sender heard from, one datagram per read (none until someone sends). */
  readonly input?: Readable;
  readonly access?: AccessList;
  /** Join this multicast group on the bound port. */
  readonly group?: string;
  readonly multicast?: MulticastOptions;
  /** Let the socket send to broadcast addresses too. */
  readonly broadcast?: boolean;
  /** Stop after this long without a datagram, once one has come, ms (0: never). */
  readonly quietMs?: number;
  readonly signal?: AbortSignal;
  /** Called with the bound address once listening. */
  readonly onListening?: (where: string) => void;
  /** Called with the first datagram of each sender. */
  readonly onPeer?: (from: string) => void;
}

/** The IPv4 address of an interface given by name or address. */
export function interfaceAddress(iface: string): string {
  if (isIP(iface)) return iface;
  const list = networkInterfaces()[iface];
  const v4 = list?.find((a) => a.family === 'IPv4');
  if (!v4) throw new SocketkitError('ERR_ADDR_NOT_AVAILABLE', `no interface '${iface}' with an IPv4 address on this machine`);
  return v4.address;
}

function counts(): { -readonly [K in keyof UdpCounts]: UdpCounts[K] } {
  return { datagramsSent: 0, bytesSent: 0, datagramsReceived: 0, bytesReceived: 0, datagramsDropped: 0 };
}

function send(socket: DgramSocket, data: Buffer, to: { port: number; address: string } | undefined, what: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const cb = (err: Error | null): void => (err ? reject(toUdpError(err, what)) : resolve());
    if (to) socket.send(data, to.port, to.address, cb);
    else socket.send(data, cb);
  });
}

/**
 * Reads `input` to its end, sending each read as datagrams (at most `max` bytes each) through
 * `sendOne`; the next read waits for the previous send. Rejects on the first failed send.
 */
function sendInput(input: Readable, max: number, sendOne: (d: Buffer) => Promise<void>, signal: AbortSignal | undefined): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let settled = false;
    let sending = 0;
    let ended = false;
    const done = (err?: unknown): void => {
      if (settled) return;
      settled = true;
      input.removeListener('data', onData);
      input.removeListener('end', onEnd);
      input.removeListener('error', done);
      signal?.removeEventListener('abort', onAbort);
      input.pause();
      if (err !== undefined && err !== null) reject(err instanceof Error ? err : toSocketkitError(err));
      else resolve();
    };
    const onData = (chunk: Buffer): void => {
      input.pause();
      sending++;
      void (async () => {
        try {
          for (let at = 0; at < chunk.length; at += max) await sendOne(chunk.subarray(at, at + max));
        } catch (err) {
          done(err);
          return;
        }
        sending--;
        if (ended && sending === 0) done();
        else if (!settled) input.resume();
      })();
    };
    const onEnd = (): void => {
      ended = true;
      if (sending === 0) done();
    };
    const onAbort = (): void => done();
    if (signal?.aborted) {
      resolve();
      return;
    }
    input.on('data', onData);
    input.once('end', onEnd);
    input.once('error', done);
    signal?.addEventListener('abort', onAbort, { once: true });
    input.resume();
  });
}

/** Writes a datagram to `output`, or drops it while `output` is full. Returns false when dropped. */
function deliver(output: Writable, data: Buffer): boolean {
  if (output.writableNeedDrain) return false;
  output.write(data);
  return true;
}

/** The UDP client: see the module comment. Resolves once the input has ended and the replies have stopped coming. */
export async function udpClient(ep: Endpoint, options: UdpClientOptions): Promise<UdpCounts> {
  const inet = requireInet(ep);
  const what = formatEndpoint(inet);
  const c = counts();
  const unconnected = options.broadcast === true || options.multicast !== undefined;
  let socket: DgramSocket;
  let to: { port: number; address: string } | undefined;
  let max: number;
  if (unconnected) {
    const r = await resolveInet(inet);
    socket = createSocket({ type: r.family === 6 ? 'udp6' : 'udp4' });
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(0, () => {
        socket.removeListener('error', reject);
        resolve();
      });
    });
    if (options.broadcast) socket.setBroadcast(true);
    if (options.multicast) {
      socket.setMulticastTTL(options.multicast.ttl ?? 1);
      if (options.multicast.iface !== undefined) socket.setMulticastInterface(interfaceAddress(options.multicast.iface));
    }
    to = { port: r.port, address: r.address };
    max = maxUdpPayload(r.family);
  } else {
    const cu = await connectUdp(inet, options.signal);
    socket = cu.socket;
    max = cu.maxPayload;
  }
  const format = options.format ?? ((d: Buffer) => d);
  const waitMs = options.replyWaitMs ?? DEFAULT_UDP_REPLY_WAIT_MS;
  let failure: unknown;
  let timer: NodeJS.Timeout | undefined;
  let inputDone = false;
  let finish: () => void = () => undefined;
  const finished = new Promise<void>((resolve) => (finish = resolve));
  const restartWait = (): void => {
    if (!inputDone) return;
    if (timer !== undefined) clearTimeout(timer);
    timer = setTimeout(finish, waitMs);
  };
  socket.on('message', (msg: Buffer, rinfo: RemoteInfo) => {
    c.datagramsReceived++;
    c.bytesReceived += msg.length;
    if (!deliver(options.output, format(msg, rinfo))) c.datagramsDropped++;
    restartWait();
  });
  socket.on('error', (err) => {
    failure ??= toUdpError(err, what);
    finish();
  });
  const onAbort = (): void => {
    failure ??= new SocketkitError('ERR_ABORTED', `UDP to ${what} stopped`);
    finish();
  };
  options.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    await sendInput(
      options.input,
      max,
      async (d) => {
        await send(socket, d, to, what);
        c.datagramsSent++;
        c.bytesSent += d.length;
      },
      options.signal,
    );
    inputDone = true;
    restartWait();
    await finished;
  } catch (err) {
    failure ??= err;
  } finally {
    if (timer !== undefined) clearTimeout(timer);
    options.signal?.removeEventListener('abort', onAbort);
    await closeQuietly(socket);
  }
  if (failure !== undefined) throw Object.assign(toSocketkitError(failure, what), { counts: { ...c } });
  return { ...c };
}

/** The UDP listener: see the module comment. Resolves on abort, or after `quietMs` of silence. */
export async function udpListen(ep: Endpoint, options: UdpListenOptions): Promise<UdpCounts> {
  const inet = requireInet(ep);
  const c = counts();
  const bound = await bindUdp(options.group !== undefined ? { ...inet, host: isIP(inet.host) === 6 ? '::' : '0.0.0.0' } : inet);
  const socket = bound.socket;
  const what = formatEndpoint(bound.endpoint);
  if (options.broadcast) socket.setBroadcast(true);
  if (options.group !== undefined) {
    try {
      const iface = options.multicast?.iface;
      socket.addMembership(options.group, iface !== undefined ? interfaceAddress(iface) : undefined);
    } catch (err) {
      await closeQuietly(socket);
      throw toUdpError(err, `multicast group ${options.group}`);
    }
    if (options.multicast?.ttl !== undefined) socket.setMulticastTTL(options.multicast.ttl);
  }
  options.onListening?.(what);
  const format = options.format ?? ((d: Buffer) => d);
  const seen = new Set<string>();
  let last: RemoteInfo | undefined;
  let quiet: NodeJS.Timeout | undefined;
  let failure: unknown;
  let finish: () => void = () => undefined;
  const finished = new Promise<void>((resolve) => (finish = resolve));
  // Input is read only once someone has sent: before that there is nobody to answer.
  const startReplies = (input: Readable): void => {
    void sendInput(
      input,
      maxUdpPayload(bound.family),
      async (d) => {
        const to = last!;
        await send(socket, d, { port: to.port, address: to.address }, formatPeer(to.address, to.port));
        c.datagramsSent++;
        c.bytesSent += d.length;
      },
      options.signal,
    ).catch((err: unknown) => {
      failure ??= err;
      finish();
    });
  };
  socket.on('message', (msg: Buffer, rinfo: RemoteInfo) => {
    if (options.access && !options.access.check(rinfo.address).allowed) {
      c.datagramsDropped++;
      return;
    }
    c.datagramsReceived++;
    c.bytesReceived += msg.length;
    const from = formatPeer(rinfo.address, rinfo.port);
    if (!seen.has(from)) {
      seen.add(from);
      options.onPeer?.(from);
    }
    if (last === undefined && options.input) {
      last = rinfo;
      startReplies(options.input);
    }
    last = rinfo;
    if (!deliver(options.output, format(msg, rinfo))) c.datagramsDropped++;
    if ((options.quietMs ?? 0) > 0) {
      if (quiet !== undefined) clearTimeout(quiet);
      quiet = setTimeout(finish, options.quietMs);
    }
  });
  socket.on('error', (err) => {
    // A reply to a sender that went away (ICMP unreachable) is not the listener's failure.
    if ((err as { code?: string }).code === 'ECONNREFUSED') return;
    failure ??= toUdpError(err, what);
    finish();
  });
  const onAbort = (): void => finish();
  if (options.signal?.aborted) finish();
  options.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    await finished;
  } finally {
    if (quiet !== undefined) clearTimeout(quiet);
    options.signal?.removeEventListener('abort', onAbort);
    options.input?.pause();
    await closeQuietly(socket);
  }
  if (failure !== undefined) throw toSocketkitError(failure);
  return { ...c };
}

/**
 * The throughput test protocol between `perf` and `perf-server` (version 1).
 *
 * Every connection opens with one JSON line (at most {@link MAX_LINE} bytes) that says what it is:
 * - a control connection: `{"perf":1,"kind":"control","test":ID,...TestParams}`. It stays open for
 *   the whole test and carries JSON lines both ways: the server's `accepted` (or `error`) and
 *   `ready`, the client's `start`, the client's `done` once its senders finished (what it sent:
 *   a stream's end without it is a client that went away, not a finished test), the server's `result` (what it received, sent, and its own view of the test), then the client
 *   closes it. A control connection that closes before `result` interrupts the test.
 * - a data connection: `{"perf":1,"kind":"data","test":ID,"stream":N}`, then raw bytes: the
 *   stream's direction comes from the test's parameters (see {@link streamPlan}).
 *
 * UDP tests use a TCP control connection and datagrams to the server's UDP port (the same port
 * number), each starting with the {@link UDP_HEADER} bytes below.
 *
 * A codec only: lines in, messages out, nothing here touches a socket.
 */
import { SocketkitError } from '../core/errors.js';
import type { IntervalStream, PeerInterval } from './intervals.js';

export const PERF_PROTOCOL_VERSION = 1;
/** The longest JSON line either side accepts, bytes. */
export const MAX_LINE = 16 * 1024;

export interface TestParams {
  readonly proto: 'tcp' | 'udp';
  /** Streams in each direction. */
  readonly streams: number;
  readonly reverse: boolean;
  readonly bidir: boolean;
  /** How long the senders send, ms (when `bytes` is 0). */
  readonly durationMs: number;
  /** Bytes each direction sends in all (0: send for `durationMs`). */
  readonly bytes: number;
  /** Bytes per write (TCP) or per datagram (UDP, header included). */
  readonly length: number;
  /** Left out of the results: the first ms after the start. */
  readonly omitMs: number;
  /** UDP: the target rate per stream, bits/s. */
  readonly rate: number;
  /** TCP: the sender sends with sendfile(2) from a file of zeros where it can. */
  readonly zeroCopy: boolean;
  /**
   * The client's interval reports, ms (0: none). The server then sends its receiver figures of
   * each interval of a UDP test (`interval` messages), so the client reports the loss and jitter
   * of the datagrams it sends while the test runs. Optional in the hello (0 when left out).
   */
  readonly intervalMs: number;
}

export type Hello = ({ readonly kind: 'control' } & TestParams & { readonly test: string }) | { readonly kind: 'data'; readonly test: string; readonly stream: number };

/** One stream's figures from the side that received it (or, for `sent`, sent it). */
export interface StreamFigures {
  readonly stream: number;
  /** 'up': client to server; 'down': server to client. */
  readonly dir: 'up' | 'down';
  /** Bytes counted after the omitted warm-up. */
  readonly bytes: number;
  /** Seconds those bytes took (from the end of the warm-up to the last byte). */
  readonly seconds: number;
  /** UDP receivers only. */
  readonly udp?: UdpFigures;
  /** TCP senders, where the native helper reads TCP_INFO: the kernel's figures at the stream's end. */
  readonly tcp?: TcpFigures;
}

/** A TCP sender's kernel figures (TCP_INFO). */
export interface TcpFigures {
  /** Segments retransmitted over the stream's life. */
  readonly retransmits: number;
  /** Smoothed round-trip time and its variation, µs. */
  readonly rttUs: number;
  readonly rttVarUs: number;
  /** Congestion window, segments. */
  readonly cwnd: number;
}

/** What a UDP receiver saw (see udp-receiver.ts). */
export interface UdpFigures {
  readonly packets: number;
  readonly lost: number;
  readonly outOfOrder: number;
  readonly duplicates: number;
  /** RFC 3550 interarrival jitter, ms. */
  readonly jitterMs: number;
  readonly sent?: number;
}

export type ControlMessage =
  | { readonly type: 'accepted'; readonly udpPort?: number }
  | { readonly type: 'error'; readonly code: string; readonly message: string }
  | { readonly type: 'ready' }
  | { readonly type: 'start' }
  | { readonly type: 'done'; readonly sent: readonly { readonly stream: number; readonly bytes: number; readonly packets?: number }[] }
  | { readonly type: 'result'; readonly received: readonly StreamFigures[]; readonly sent: readonly StreamFigures[] }
  | ({ readonly type: 'interval' } & PeerInterval);

/** A stream of a test and who sends on it. */
export interface PlannedStream {
  readonly stream: number;
  readonly dir: 'up' | 'down';
}

/** The streams of a test: `streams` up (or down with `reverse`), or both ways with `bidir`. */
export function streamPlan(p: Pick<TestParams, 'streams' | 'reverse' | 'bidir'>): PlannedStream[] {
  const out: PlannedStream[] = [];
  for (let i = 0; i < p.streams; i++) out.push({ stream: i, dir: p.bidir ? 'up' : p.reverse ? 'down' : 'up' });
  if (p.bidir) for (let i = 0; i < p.streams; i++) out.push({ stream: p.streams + i, dir: 'down' });
  return out;
}

/** The bytes stream `index` of `count` sends when a direction sends `total` in all. */
export function shareOf(total: number, count: number, index: number): number {
  const base = Math.floor(total / count);
  return index === 0 ? total - base * (count - 1) : base;
}

function bad(what: string): SocketkitError {
  return new SocketkitError('ERR_PERF_PROTOCOL', `throughput test protocol: ${what}`);
}

function int(o: Record<string, unknown>, name: string, min: number, max: number): number {
  const v = o[name];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw bad(`${name} must be a whole number from ${min} to ${max}`);
  return v;
}

function bool(o: Record<string, unknown>, name: string): boolean {
  const v = o[name];
  if (typeof v !== 'boolean') throw bad(`${name} must be true or false`);
  return v;
}

/** Largest counts a peer may ask for; `intervalMs` is the shortest interval a server reports (a shorter one asks for none). */
export const PERF_LIMITS = { streams: 128, durationMs: 24 * 3600_000, length: 16 * 1024 * 1024, rate: 400e9, intervalMs: 10 } as const;

function object(line: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    throw bad('a line that is not JSON');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad('a line that is not a JSON object');
  return v as Record<string, unknown>;
}

/** Parses and checks a connection's first line. */
export function parseHello(line: string): Hello {
  const o = object(line);
  if (o['perf'] !== PERF_PROTOCOL_VERSION) throw new SocketkitError('ERR_PERF_PROTOCOL', `not a throughput test client of protocol version ${PERF_PROTOCOL_VERSION}`);
  const test = o['test'];
  if (typeof test !== 'string' || !/^[0-9a-f-]{8,64}$/.test(test)) throw bad('a bad test id');
  if (o['kind'] === 'data') return { kind: 'data', test, stream: int(o, 'stream', 0, 2 * PERF_LIMITS.streams - 1) };
  if (o['kind'] !== 'control') throw bad('a connection that is neither control nor data');
  const proto = o['proto'];
  if (proto !== 'tcp' && proto !== 'udp') throw bad('proto must be tcp or udp');
  const params: TestParams = {
    proto,
    streams: int(o, 'streams', 1, PERF_LIMITS.streams),
    reverse: bool(o, 'reverse'),
    bidir: bool(o, 'bidir'),
    durationMs: int(o, 'durationMs', 0, PERF_LIMITS.durationMs),
    bytes: int(o, 'bytes', 0, Number.MAX_SAFE_INTEGER),
    length: int(o, 'length', 1, PERF_LIMITS.length),
    omitMs: int(o, 'omitMs', 0, PERF_LIMITS.durationMs),
    rate: int(o, 'rate', 0, PERF_LIMITS.rate),
    zeroCopy: bool(o, 'zeroCopy'),
    intervalMs: o['intervalMs'] === undefined ? 0 : int(o, 'intervalMs', 0, PERF_LIMITS.durationMs),
  };
  if (params.durationMs === 0 && params.bytes === 0) throw bad('neither a duration nor a byte count');
  return { kind: 'control', test, ...params };
}

/** The first line of a control connection. */
export function controlHello(test: string, p: TestParams): string {
  return `${JSON.stringify({ perf: PERF_PROTOCOL_VERSION, kind: 'control', test, ...p })}\n`;
}

/** The first line of a data connection. */
export function dataHello(test: string, stream: number): string {
  return `${JSON.stringify({ perf: PERF_PROTOCOL_VERSION, kind: 'data', test, stream })}\n`;
}

export function encodeControl(m: ControlMessage): string {
  return `${JSON.stringify(m)}\n`;
}

const TYPES = new Set(['accepted', 'error', 'ready', 'start', 'done', 'result', 'interval']);

function num(o: Record<string, unknown>, name: string): number {
  const v = o[name];
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw bad(`${name} must be a number of at least 0`);
  return v;
}

function optNum(o: Record<string, unknown>, name: string): { [k: string]: number } {
  return o[name] === undefined ? {} : { [name]: num(o, name) };
}

/** A peer's interval line, rebuilt from the fields it may have (what reaches a terminal is numbers and fixed words). */
function peerInterval(o: Record<string, unknown>): { type: 'interval' } & PeerInterval {
  const list = o['streams'];
  if (!Array.isArray(list) || list.length > 2 * PERF_LIMITS.streams) throw bad('an interval without its streams');
  const streams = list.map((x: unknown): IntervalStream => {
    if (typeof x !== 'object' || x === null) throw bad('an interval stream that is not an object');
    const r = x as Record<string, unknown>;
    const dir = r['dir'];
    const role = r['role'];
    if ((dir !== 'up' && dir !== 'down') || (role !== 'sent' && role !== 'received')) throw bad('an interval stream without its direction');
    return {
      stream: int(r, 'stream', 0, 2 * PERF_LIMITS.streams - 1),
      dir,
      role,
      bytes: num(r, 'bytes'),
      bitsPerSecond: num(r, 'bitsPerSecond'),
      ...optNum(r, 'packets'),
      ...optNum(r, 'lost'),
      ...optNum(r, 'jitterMs'),
      ...optNum(r, 'outOfOrder'),
      ...optNum(r, 'duplicates'),
      ...optNum(r, 'retransmits'),
      ...optNum(r, 'rttUs'),
      ...optNum(r, 'cwnd'),
    };
  });
  return { type: 'interval', index: int(o, 'index', 0, Number.MAX_SAFE_INTEGER), start: num(o, 'start'), end: num(o, 'end'), omitted: bool(o, 'omitted'), streams };
}

/** Parses a control line (shape checked loosely: both sides are socketkit). */
export function parseControl(line: string): ControlMessage {
  const o = object(line);
  if (typeof o['type'] !== 'string' || !TYPES.has(o['type'])) throw bad(`an unknown control message`);
  if (o['type'] === 'error' && (typeof o['code'] !== 'string' || typeof o['message'] !== 'string')) throw bad('an error without a code');
  if (o['type'] === 'result' && (!Array.isArray(o['received']) || !Array.isArray(o['sent']))) throw bad('a result without figures');
  if (o['type'] === 'done' && !Array.isArray(o['sent'])) throw bad('done without counts');
  if (o['type'] === 'interval') return peerInterval(o);
  return o as unknown as ControlMessage;
}

/**
 * Splits a byte stream into lines of at most {@link MAX_LINE} bytes. `push` returns the complete
 * lines in `chunk` and keeps the rest; a longer line is ERR_PERF_PROTOCOL, found before buffering it.
 */
export class LineSplitter {
  #parts: Buffer[] = [];
  #size = 0;

  push(chunk: Buffer): string[] {
    const lines: string[] = [];
    let from = 0;
    for (;;) {
      const nl = chunk.indexOf(10, from);
      if (nl < 0) break;
      if (this.#size + nl - from > MAX_LINE) throw bad(`a line over ${MAX_LINE} bytes`);
      this.#parts.push(chunk.subarray(from, nl));
      lines.push(Buffer.concat(this.#parts).toString('utf8'));
      this.#parts = [];
      this.#size = 0;
      from = nl + 1;
    }
    if (from < chunk.length) {
      if (this.#size + chunk.length - from > MAX_LINE) throw bad(`a line over ${MAX_LINE} bytes`);
      this.#parts.push(chunk.subarray(from));
      this.#size += chunk.length - from;
    }
    return lines;
  }

  /**
   * For a connection whose first line is followed by raw bytes: the first line in `chunk` (with
   * what was kept before) and the bytes after it, or undefined while the line is incomplete.
   */
  first(chunk: Buffer): { readonly line: string; readonly rest: Buffer } | undefined {
    const nl = chunk.indexOf(10);
    if (nl < 0) {
      if (this.#size + chunk.length > MAX_LINE) throw bad(`a line over ${MAX_LINE} bytes`);
      this.#parts.push(chunk);
      this.#size += chunk.length;
      return undefined;
    }
    if (this.#size + nl > MAX_LINE) throw bad(`a line over ${MAX_LINE} bytes`);
    this.#parts.push(chunk.subarray(0, nl));
    const line = Buffer.concat(this.#parts).toString('utf8');
    this.#parts = [];
    this.#size = 0;
    return { line, rest: chunk.subarray(nl + 1) };
  }
}

/**
 * UDP datagram header, big-endian: test tag (u32: the first 8 hex digits of the test id), stream (u16), flags
 * (u16: 1 = hello from a receiving client), sequence number (u32 high, u32 low), the sender's
 * send time in microseconds of its monotonic clock (float64).
 */
export const UDP_HEADER = 24;
export const UDP_FLAG_HELLO = 1;

export function testTag(test: string): number {
  return Number.parseInt(test.replaceAll('-', '').slice(0, 8), 16) >>> 0;
}

export function writeUdpHeader(buf: Buffer, tag: number, stream: number, flags: number, seq: number, sendUs: number): void {
  buf.writeUInt32BE(tag, 0);
  buf.writeUInt16BE(stream, 4);
  buf.writeUInt16BE(flags, 6);
  buf.writeUInt32BE(Math.floor(seq / 0x1_0000_0000), 8);
  buf.writeUInt32BE(seq >>> 0, 12);
  buf.writeDoubleBE(sendUs, 16);
}

export interface UdpHeader {
  readonly tag: number;
  readonly stream: number;
  readonly flags: number;
  readonly seq: number;
  readonly sendUs: number;
}

/** The header of a datagram, or undefined when it is too short to be one of ours. */
export function readUdpHeader(buf: Buffer): UdpHeader | undefined {
  if (buf.length < UDP_HEADER) return undefined;
  return {
    tag: buf.readUInt32BE(0),
    stream: buf.readUInt16BE(4),
    flags: buf.readUInt16BE(6),
    seq: buf.readUInt32BE(8) * 0x1_0000_0000 + buf.readUInt32BE(12),
    sendUs: buf.readDoubleBE(16),
  };
}

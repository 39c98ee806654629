/**
 * The ping probe: a self-describing datagram that any plain echo returns unchanged.
 *
 * Wire format (all integers big-endian), `size` bytes in total:
 *
 * | offset | bytes | field                                                          |
 * |-------:|------:|----------------------------------------------------------------|
 * |      0 |     4 | magic `SKP1` (0x53 0x4B 0x50 0x31)                             |
 * |      4 |     4 | session id: random per ping run, so stray datagrams are told apart |
 * |      8 |     4 | sequence number, from 0                                        |
 * |     12 |     4 | total probe length in bytes (so a shortened reply is recognised) |
 * |     16 |     8 | send time, `process.hrtime.bigint()` nanoseconds of the sender |
 * |     24 |     … | padding: byte at offset `i` is `(i + seq) & 0xff`              |
 *
 * The padding depends on the sequence number, so a reply whose body was cut, altered or
 * mixed with another probe's is detected. The codec never touches a socket: bytes in, fields
 * out. Decoding classifies instead of throwing, because a ping must count bad replies and go on.
 */

/** `SKP1` as a 32-bit big-endian integer. */
export const PROBE_MAGIC = 0x534b5031;
/** Bytes before the padding; the smallest possible probe. */
export const PROBE_HEADER_SIZE = 24;

/** The fields a probe carries. */
export interface ProbeFields {
  readonly session: number;
  readonly seq: number;
  /** The whole probe's length, header included. */
  readonly size: number;
  /** Sender's `process.hrtime.bigint()` at send time. */
  readonly sentNs: bigint;
}

/** What decoding a reply found. */
export type ProbeDecodeResult =
  /** A whole, intact probe. */
  | { readonly kind: 'ok'; readonly probe: ProbeFields }
  /** Not a probe of ours: too short for a header, wrong magic, or another session. */
  | { readonly kind: 'foreign' }
  /** Our probe, but shorter than the length it declares: the echo (or the path) cut it. */
  | { readonly kind: 'truncated'; readonly probe: ProbeFields; readonly received: number }
  /** Our probe, but longer than declared or with padding that differs. */
  | { readonly kind: 'corrupt'; readonly probe: ProbeFields };

/** 256 + 64 KiB of the repeating pattern 0, 1, ..., 255: padding is a slice of it. */
let pattern: Buffer | undefined;
function padPattern(upTo: number): Buffer {
  if (pattern === undefined || pattern.length < upTo + 256) {
    const p = Buffer.allocUnsafe(Math.max(upTo, 65_536) + 256);
    for (let i = 0; i < p.length; i++) p[i] = i & 0xff;
    pattern = p;
  }
  return pattern;
}

/** The expected padding of probe `seq` between offsets `from` and `to`. */
function padding(seq: number, from: number, to: number): Buffer {
  const s = seq & 0xff;
  return padPattern(to).subarray(from + s, to + s);
}

/**
 * Encodes a probe of `size` bytes (at least {@link PROBE_HEADER_SIZE}) into a new buffer.
 *
 * @example
 * ```ts
 * const p = encodeProbe({ session: 7, seq: 0, size: 64, sentNs: process.hrtime.bigint() });
 * decodeProbe(p, 7).kind; // 'ok'
 * ```
 */
export function encodeProbe(fields: ProbeFields): Buffer {
  const { session, seq, size, sentNs } = fields;
  if (!Number.isInteger(size) || size < PROBE_HEADER_SIZE || size > 0xffffffff) {
    throw new RangeError(`probe size ${size} is not from ${PROBE_HEADER_SIZE} to 4294967295`);
  }
  const buf = Buffer.allocUnsafe(size);
  buf.writeUInt32BE(PROBE_MAGIC, 0);
  buf.writeUInt32BE(session >>> 0, 4);
  buf.writeUInt32BE(seq >>> 0, 8);
  buf.writeUInt32BE(size, 12);
  buf.writeBigUInt64BE(sentNs, 16);
  if (size > PROBE_HEADER_SIZE) padding(seq, PROBE_HEADER_SIZE, size).copy(buf, PROBE_HEADER_SIZE);
  return buf;
}

/** Decodes a reply and checks it against session `session`. Never throws. */
export function decodeProbe(buf: Uint8Array, session: number): ProbeDecodeResult {
  if (buf.byteLength < PROBE_HEADER_SIZE) return { kind: 'foreign' };
  const b = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (b.readUInt32BE(0) !== PROBE_MAGIC || b.readUInt32BE(4) !== session >>> 0) return { kind: 'foreign' };
  const probe: ProbeFields = { session: session >>> 0, seq: b.readUInt32BE(8), size: b.readUInt32BE(12), sentNs: b.readBigUInt64BE(16) };
  if (probe.size < PROBE_HEADER_SIZE) return { kind: 'corrupt', probe };
  const end = Math.min(b.length, probe.size);
  // Check what did arrive first: a short reply with wrong bytes is corrupt, not merely cut.
  if (end > PROBE_HEADER_SIZE && !b.subarray(PROBE_HEADER_SIZE, end).equals(padding(probe.seq, PROBE_HEADER_SIZE, end))) {
    return { kind: 'corrupt', probe };
  }
  if (b.length < probe.size) return { kind: 'truncated', probe, received: b.length };
  if (b.length > probe.size) return { kind: 'corrupt', probe };
  return { kind: 'ok', probe };
}

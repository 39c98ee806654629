/**
 * A minimal DER (ASN.1 Distinguished Encoding Rules) writer: just the types an X.509 v3
 * certificate needs. It only encodes values we build ourselves — it never parses input from a
 * peer — and every certificate built with it is parsed back by OpenSSL (node:crypto's
 * X509Certificate) and its signature verified before it is handed out (see cert.ts).
 *
 * Each function returns the complete TLV (tag, length, value) as a Buffer.
 */
import { isIP } from 'node:net';

/** Encodes a DER length: short form below 128, else 0x80|n followed by n big-endian bytes. */
function encodeLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

/** A TLV with any tag byte. */
export function tlv(tag: number, value: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from([tag]), encodeLength(value.length), value]);
}

export function sequence(...items: Uint8Array[]): Buffer {
  return tlv(0x30, Buffer.concat(items));
}

export function set(...items: Uint8Array[]): Buffer {
  return tlv(0x31, Buffer.concat(items));
}

/** A non-negative INTEGER from big-endian magnitude bytes (minimal, with a 0x00 pad when the top bit is set). */
export function integer(magnitude: Uint8Array | number): Buffer {
  let bytes: Buffer;
  if (typeof magnitude === 'number') {
    const out: number[] = [];
    for (let v = magnitude; v > 0; v = Math.floor(v / 256)) out.unshift(v & 0xff);
    bytes = Buffer.from(out.length === 0 ? [0] : out);
  } else {
    let start = 0;
    while (start < magnitude.length - 1 && magnitude[start] === 0) start++;
    bytes = Buffer.from(magnitude.subarray(start));
  }
  if ((bytes[0]! & 0x80) !== 0) bytes = Buffer.concat([Buffer.from([0]), bytes]);
  return tlv(0x02, bytes);
}

export function boolean(v: boolean): Buffer {
  return tlv(0x01, Buffer.from([v ? 0xff : 0x00]));
}

/** An OBJECT IDENTIFIER from dotted text ("1.2.840.10045.4.3.2"). */
export function oid(dotted: string): Buffer {
  const parts = dotted.split('.').map(Number);
  if (parts.length < 2 || parts.some((p) => !Number.isSafeInteger(p) || p < 0)) throw new TypeError(`bad OID ${dotted}`);
  const out: number[] = [parts[0]! * 40 + parts[1]!];
  for (const p of parts.slice(2)) {
    // Base 128, most significant group first, every group but the last with the high bit set.
    const groups: number[] = [p & 0x7f];
    for (let v = Math.floor(p / 128); v > 0; v = Math.floor(v / 128)) groups.unshift((v & 0x7f) | 0x80);
    out.push(...groups);
  }
  return tlv(0x06, Buffer.from(out));
}

export function octetString(value: Uint8Array): Buffer {
  return tlv(0x04, value);
}

/** A BIT STRING whose content is whole bytes (no unused bits). */
export function bitString(value: Uint8Array): Buffer {
  return tlv(0x03, Buffer.concat([Buffer.from([0]), value]));
}

export function utf8String(s: string): Buffer {
  return tlv(0x0c, Buffer.from(s, 'utf8'));
}

/** Context-specific constructed tag [n] EXPLICIT. */
export function explicit(n: number, inner: Uint8Array): Buffer {
  return tlv(0xa0 | n, inner);
}

/**
 * A certificate Time: UTCTime for years 1950–2049, GeneralizedTime otherwise (RFC 5280
 * 4.1.2.5), always in UTC, to the second.
 */
export function time(d: Date): Buffer {
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  const y = d.getUTCFullYear();
  const rest = `${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}Z`;
  if (y >= 1950 && y < 2050) return tlv(0x17, Buffer.from(`${p(y % 100)}${rest}`, 'ascii'));
  return tlv(0x18, Buffer.from(`${p(y, 4)}${rest}`, 'ascii'));
}

/** One GeneralName for subjectAltName: dNSName [2] or iPAddress [7] (4 or 16 bytes). */
export function generalName(name: { readonly type: 'dns' | 'ip'; readonly value: string }): Buffer {
  if (name.type === 'dns') return tlv(0x82, Buffer.from(name.value, 'ascii'));
  return tlv(0x87, ipBytes(name.value));
}

/** The 4 or 16 network-order bytes of an IPv4 or IPv6 literal. */
export function ipBytes(ip: string): Buffer {
  const fam = isIP(ip);
  if (fam === 4) return Buffer.from(ip.split('.').map(Number));
  if (fam !== 6) throw new TypeError(`not an IP address: ${ip}`);
  let text = ip;
  // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two hex groups.
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const b = v4[1]!.split('.').map(Number);
    text = text.slice(0, v4.index) + `${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

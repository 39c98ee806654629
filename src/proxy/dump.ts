/**
 * `--dump`: every chunk as it was read, before any toxic, the way `socat -v` (text) and
 * `socat -v -x` (hex) show them: a header line with the time, the connection, the direction
 * (`>` client to upstream, `<` back), the offset of the chunk in that direction's stream and its
 * length, then the bytes. Chunk boundaries are the reads the proxy made: what a `recv()` loop
 * sees.
 *
 * Nothing from the wire reaches the output raw: in text form every byte that is not printable
 * ASCII is an escape (`\n`, `\r`, `\t`, `\\`, `\xHH`), and every line also passes `neutralise()`.
 */
import type { Writable } from 'node:stream';
import { neutralise } from '../core/terminal-text.js';
import type { Direction } from './relay.js';

export type DumpFormat = 'text' | 'hex';

/** Where the relay shows chunks. */
export interface DumpSink {
  chunk(connection: number, dir: Direction, offset: number, data: Buffer): void;
  /** True while the output holds more than its high-water mark (the relay stops reading). */
  readonly full: boolean;
  /** Calls `fn` once the output has drained. */
  whenDrained(fn: () => void): void;
}

/** The header of one chunk: `> 2026-12-02T13:00:00.123Z #1 offset=0 length=12`. */
export function dumpHeader(at: Date, connection: number, dir: Direction, offset: number, length: number): string {
  return `${dir} ${at.toISOString()} #${connection} offset=${offset} length=${length}`;
}

/**
 * Bytes as text with escapes: printable ASCII as is (a backslash doubled), `\n` shown as `\n`
 * and a line break, `\r` and `\t` by name, any other byte as `\xHH`. Ends with a line break.
 */
export function dumpText(data: Uint8Array): string {
  let line = '';
  const lines: string[] = [];
  for (const b of data) {
    if (b === 0x0a) {
      lines.push(`${line}\\n`);
      line = '';
    } else if (b === 0x0d) line += '\\r';
    else if (b === 0x09) line += '\\t';
    else if (b === 0x5c) line += '\\\\';
    else if (b >= 0x20 && b < 0x7f) line += String.fromCharCode(b);
    else line += `\\x${b.toString(16).padStart(2, '0')}`;
  }
  if (line !== '' || lines.length === 0) lines.push(line);
  return `${lines.map((l) => neutralise(l)).join('\n')}\n`;
}

/** Bytes as hex rows of 16: offset (in the stream), hex bytes, and the printable ASCII (others `.`). */
export function dumpHex(data: Uint8Array, offset = 0): string {
  let out = '';
  for (let i = 0; i < data.length; i += 16) {
    const row = data.subarray(i, i + 16);
    const hex = Array.from(row, (b) => b.toString(16).padStart(2, '0')).join(' ');
    const ascii = Array.from(row, (b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.')).join('');
    out += `${neutralise(`${(offset + i).toString(16).padStart(8, '0')}  ${hex.padEnd(47)}  ${ascii}`)}\n`;
  }
  return out;
}

/** Renders one chunk in `format` (header and bytes). */
export function dumpChunk(format: DumpFormat, at: Date, connection: number, dir: Direction, offset: number, data: Uint8Array): string {
  const body = format === 'hex' ? dumpHex(data, offset) : dumpText(data);
  return `${dumpHeader(at, connection, dir, offset, data.length)}\n${body}`;
}

/** A DumpSink writing to a stream (stderr, or a file), with backpressure. */
export class StreamDump implements DumpSink {
  readonly #out: Writable;
  readonly #format: DumpFormat;
  readonly #waiters: (() => void)[] = [];

  constructor(out: Writable, format: DumpFormat) {
    this.#out = out;
    this.#format = format;
    out.on('drain', () => {
      for (const fn of this.#waiters.splice(0)) fn();
    });
  }

  get full(): boolean {
    return this.#out.writableNeedDrain;
  }

  whenDrained(fn: () => void): void {
    if (!this.full) fn();
    else this.#waiters.push(fn);
  }

  chunk(connection: number, dir: Direction, offset: number, data: Buffer): void {
    this.#out.write(dumpChunk(this.#format, new Date(), connection, dir, offset, data));
  }
}

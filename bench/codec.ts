/**
 * Codec benchmark: messages per second through the framing encoder and decoder, in memory (no
 * socket, so this is the codec's own ceiling).
 *
 * Rows, for 64 B and 64 KiB payloads:
 * - `encode+decode`: each message goes through `encodeFrame` and each resulting buffer is
 *   pushed to the decoder as its own chunk, as when every write arrives as its own read.
 *   Frames lie within a chunk, so the decoder returns views.
 * - `decode 64K reads`: an already encoded stream cut into 64 KiB reads, as a socket delivers
 *   a busy stream. Small frames are views; large ones span reads and are copied.
 *
 * Each row runs for about `durationMs` (default 1 s) after a short warm-up, with a bounded
 * message count. Run it directly with `node dist/bench/codec.js`.
 */
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { FrameDecoder, encodeFrame } from '../src/codec/index.js';

/** One measured configuration. */
export interface CodecBenchRow {
  readonly mode: 'encode+decode' | 'decode 64K reads';
  readonly payloadBytes: number;
  readonly messages: number;
  readonly seconds: number;
  readonly messagesPerSecond: number;
  /** Payload bytes per second, in MiB/s. */
  readonly mibPerSecond: number;
}

/** The benchmark's result. */
export interface CodecBenchResult {
  readonly name: 'codec';
  readonly rows: readonly CodecBenchRow[];
}

/** Options of {@link benchCodec}. */
export interface CodecBenchOptions {
  /** Target duration of each row, milliseconds (default 1000). */
  readonly durationMs?: number;
  /** Where the table goes (default `console.log`; pass `() => {}` for silence). */
  readonly log?: (line: string) => void;
}

const PAYLOAD_SIZES = [64, 64 * 1024] as const;
/** Bytes per simulated socket read. */
const READ_SIZE = 64 * 1024;
/** Upper bound on messages per row, whatever the speed. */
const MAX_MESSAGES = 50_000_000;
/** Messages per timed batch: about 4 MiB of payload, so clock reads cost nothing. */
const batchFor = (size: number): number => Math.max(16, Math.floor((4 * 1024 * 1024) / size));

/** Runs `batch` (which handles `n` messages and returns how many it decoded) until the time is up. */
function measure(mode: CodecBenchRow['mode'], payloadBytes: number, durationMs: number, batch: () => number): CodecBenchRow {
  const warmUntil = performance.now() + Math.min(200, durationMs / 5);
  while (performance.now() < warmUntil) batch();
  let messages = 0;
  const start = performance.now();
  const stopAt = start + durationMs;
  do messages += batch();
  while (performance.now() < stopAt && messages < MAX_MESSAGES);
  const seconds = (performance.now() - start) / 1000;
  const messagesPerSecond = messages / seconds;
  return { mode, payloadBytes, messages, seconds, messagesPerSecond, mibPerSecond: (messagesPerSecond * payloadBytes) / (1024 * 1024) };
}

/** Fails loudly if a batch did not decode what was encoded: a fast wrong codec measures nothing. */
function check(decoded: number, bytes: number, n: number, size: number): number {
  if (decoded !== n || bytes !== n * size) throw new Error(`codec bench: decoded ${decoded} frames / ${bytes} bytes, expected ${n} / ${n * size}`);
  return n;
}

function encodeDecode(size: number, durationMs: number): CodecBenchRow {
  const payload = new Uint8Array(size).fill(0x5a);
  const n = batchFor(size);
  const decoder = new FrameDecoder();
  const frames: Uint8Array[] = [];
  return measure('encode+decode', size, durationMs, () => {
    let decoded = 0;
    let bytes = 0;
    for (let i = 0; i < n; i++) {
      for (const part of encodeFrame(payload)) decoder.push(part, frames);
      for (const frame of frames) bytes += frame.byteLength;
      decoded += frames.length;
      frames.length = 0;
    }
    return check(decoded, bytes, n, size);
  });
}

function decodeReads(size: number, durationMs: number): CodecBenchRow {
  const n = batchFor(size);
  const parts = Array.from({ length: n }, () => encodeFrame(new Uint8Array(size).fill(0xa5))).flat();
  const wire = Buffer.concat(parts);
  const reads: Uint8Array[] = [];
  for (let at = 0; at < wire.length; at += READ_SIZE) reads.push(wire.subarray(at, at + READ_SIZE));
  const decoder = new FrameDecoder();
  const frames: Uint8Array[] = [];
  return measure('decode 64K reads', size, durationMs, () => {
    let decoded = 0;
    let bytes = 0;
    for (const read of reads) {
      decoder.push(read, frames);
      for (const frame of frames) bytes += frame.byteLength;
      decoded += frames.length;
      frames.length = 0;
    }
    return check(decoded, bytes, n, size);
  });
}

const formatSize = (n: number): string => (n >= 1024 ? `${n / 1024} KiB` : `${n} B`);

/**
 * Measures the framing codec in memory and prints a table.
 *
 * @param options - Duration per row and where to print.
 * @returns One row per payload size and mode.
 */
export async function benchCodec(options: CodecBenchOptions = {}): Promise<CodecBenchResult> {
  const durationMs = options.durationMs ?? 1000;
  const log = options.log ?? ((line: string) => console.log(line));
  const rows: CodecBenchRow[] = [];
  for (const size of PAYLOAD_SIZES) {
    rows.push(encodeDecode(size, durationMs));
    // Yield between rows so a caller's timers and I/O are not starved for the whole run.
    await new Promise((resolve) => setImmediate(resolve));
    rows.push(decodeReads(size, durationMs));
    await new Promise((resolve) => setImmediate(resolve));
  }
  log('codec (in memory)');
  log(`${'mode'.padEnd(18)}${'payload'.padStart(9)}${'messages/s'.padStart(14)}${'MiB/s'.padStart(10)}`);
  for (const r of rows) {
    log(
      `${r.mode.padEnd(18)}${formatSize(r.payloadBytes).padStart(9)}${Math.round(r.messagesPerSecond).toLocaleString('en-US').padStart(14)}${r.mibPerSecond.toFixed(0).padStart(10)}`,
    );
  }
  return { name: 'codec', rows };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await benchCodec();
}

/**
 * Reads the NDJSON that `get`, `send` and `receive` print with `--json` (`file-start`,
 * `progress`, `file-done`, `file-failed`, `summary`/`stopped` events, each with its `ts`) into
 * bytes moved over time: each event's bytes minus the previous event's for that file (and
 * connection), added up per one-second slot.
 */
import { SocketkitError } from '../core/errors.js';

/** Bytes moved in one slot of a transfer. */
export interface TransferSlot {
  readonly startMs: number;
  readonly endMs: number;
  readonly bytes: number;
}

/** A transfer's NDJSON, read. */
export interface TransferLog {
  readonly name: string;
  readonly startMs: number;
  readonly endMs: number;
  /** Bytes moved (resumed bytes not counted). */
  readonly bytes: number;
  /** Files finished. */
  readonly files: number;
  /** Files that failed. */
  readonly failed: number;
  readonly slots: readonly TransferSlot[];
  readonly stepMs: number;
  readonly warnings: readonly string[];
}

/** The length of a transfer's slots, ms. */
export const TRANSFER_SLOT_MS = 1000;

interface TransferEventLine {
  readonly event?: unknown;
  readonly ts?: unknown;
  readonly path?: unknown;
  readonly conn?: unknown;
  readonly bytes?: unknown;
  readonly size?: unknown;
  readonly offset?: unknown;
}

/** Whether a text looks like NDJSON (its first non-blank character opens an object). */
export function looksLikeNdjson(text: string): boolean {
  return /^\s*\{/.test(text);
}

/** Reads a transfer's NDJSON. Lines that are not transfer events are skipped; a cut last line is dropped with a warning. */
export function parseTransferLog(text: string, name = 'transfer'): TransferLog {
  const lines = text.split(/\r\n|\n|\r/);
  const cut = lines.length > 0 && lines[lines.length - 1] !== '' ? lines.length - 1 : -1;
  const warnings: string[] = [];
  const last = new Map<string, number>();
  const moves: { t: number; bytes: number }[] = [];
  let files = 0;
  let failed = 0;
  let first = Infinity;
  let end = -Infinity;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '') continue;
    let e: TransferEventLine;
    try {
      e = JSON.parse(line) as TransferEventLine;
    } catch {
      if (i === cut) {
        warnings.push(`${name}: the last line is cut (the writer stopped mid-line); read up to it`);
        continue;
      }
      throw new SocketkitError('ERR_BAD_LOG', `${name}:${i + 1}: not a JSON object`);
    }
    const t = typeof e.ts === 'string' ? Date.parse(e.ts) : NaN;
    if (!Number.isFinite(t) || typeof e.event !== 'string') continue;
    const key = `${typeof e.conn === 'number' ? e.conn : ''}\u0000${typeof e.path === 'string' ? e.path : ''}`;
    const at = (bytes: number): void => {
      const before = last.get(key) ?? 0;
      if (bytes > before) moves.push({ t, bytes: bytes - before });
      last.set(key, Math.max(before, bytes));
    };
    switch (e.event) {
      case 'file-start':
        last.set(key, typeof e.offset === 'number' ? e.offset : 0);
        break;
      case 'progress':
        if (typeof e.bytes === 'number') at(e.bytes);
        break;
      case 'file-done':
        if (typeof e.size === 'number') at(e.size);
        files++;
        last.delete(key);
        break;
      case 'file-failed':
        failed++;
        last.delete(key);
        break;
      default:
        if (e.event !== 'summary' && e.event !== 'stopped' && e.event !== 'dir') continue;
    }
    first = Math.min(first, t);
    end = Math.max(end, t);
  }
  if (!Number.isFinite(first)) {
    warnings.push(`${name}: no transfer events in the file`);
    return { name, startMs: 0, endMs: 0, bytes: 0, files, failed, slots: [], stepMs: TRANSFER_SLOT_MS, warnings };
  }
  const count = Math.max(1, Math.ceil((end - first) / TRANSFER_SLOT_MS));
  const slots = Array.from({ length: count }, (_, k) => ({ startMs: first + k * TRANSFER_SLOT_MS, endMs: first + (k + 1) * TRANSFER_SLOT_MS, bytes: 0 }));
  let bytes = 0;
  for (const m of moves) {
    // Bytes reported at time t moved during the slot that ends at or after t.
    const k = Math.min(count - 1, Math.max(0, Math.ceil((m.t - first) / TRANSFER_SLOT_MS) - 1));
    slots[k]!.bytes += m.bytes;
    bytes += m.bytes;
  }
  return { name, startMs: first, endMs: end, bytes, files, failed, slots, stepMs: TRANSFER_SLOT_MS, warnings };
}

/**
 * What a transfer reports as it goes, and what it returns: the same shapes for both roles, so
 * one progress display and one summary serve `serve`, `get`, `send` and `receive`.
 */
import { EXIT_MISMATCH, SocketkitError, type ErrorCode, type ErrorHint } from '../core/errors.js';
import type { HashName } from './digest.js';

/** Progress and outcome of the entries of one transfer (one connection). */
export type TransferEvent =
  | {
      readonly event: 'file-start';
      readonly path: string;
      readonly size: number;
      /** Bytes already at the receiver (a resumed partial file); 0 for a fresh file. */
      readonly offset: number;
    }
  | {
      readonly event: 'file-progress';
      readonly path: string;
      readonly size: number;
      /** Bytes of the file now at the receiver (sent, or received), `offset` included. */
      readonly bytes: number;
    }
  | {
      readonly event: 'file-done';
      readonly path: string;
      readonly size: number;
      /** Where the data started (bytes resumed from). */
      readonly offset: number;
      /** Digest of the whole file (hex), verified by the receiver: SHA-256 unless XXH3-128 was agreed (see the summary's `hash`; the name stays from version 1). */
      readonly sha256: string;
      /** Milliseconds from the file's start to its verification. */
      readonly ms: number;
    }
  | { readonly event: 'dir'; readonly path: string }
  | { readonly event: 'file-failed'; readonly path: string; readonly code: ErrorCode; readonly message: string; readonly hint?: ErrorHint };

/** One entry that did not make it, and why. */
export interface TransferFailure {
  readonly path: string;
  readonly code: ErrorCode;
  readonly message: string;
  /** What this side suspects would help (see ErrorHint), when it has a guess. */
  readonly hint?: ErrorHint;
}

/** The outcome of one transfer (one connection), from either side. */
export interface TransferSummary {
  /** Files verified and in place at the receiver. */
  readonly files: number;
  /** Folders created (or already there). */
  readonly dirs: number;
  /** Bytes of the verified files (whole sizes). */
  readonly bytes: number;
  /** File bytes that crossed the connection (less than `bytes` when files were resumed). */
  readonly transferred: number;
  /** Seconds from the hello to the last result. */
  readonly seconds: number;
  /** Entries that failed or were refused. */
  readonly failures: readonly TransferFailure[];
  /** The hash the files were verified with (agreed in the hello). */
  readonly hash?: HashName;
}

/**
 * Turns a summary with failures into the one coded error a command exits with: the failure's own
 * code and message when there is one, else the first one and a count. A hash mismatch anywhere
 * makes it exit with status 1 (a verification failure), like other mismatches in socketkit.
 *
 * @returns undefined when nothing failed.
 */
export function summaryError(summary: TransferSummary): SocketkitError | undefined {
  const [first] = summary.failures;
  if (first === undefined) return undefined;
  const mismatch = summary.failures.some((f) => f.code === 'ERR_HASH_MISMATCH');
  const options = mismatch ? { exitCode: EXIT_MISMATCH } : {};
  const n = summary.failures.length;
  const total = n + summary.files + summary.dirs;
  const text = n === 1 ? `${first.path}: ${first.message}` : `${n} of ${total} entries failed; first: ${first.path}: ${first.message}`;
  return new SocketkitError(first.code, text, { ...options, ...(first.hint ? { hint: first.hint } : {}) });
}

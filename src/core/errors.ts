/**
 * One error type for everything socketkit reports to a user.
 *
 * Every failure carries a stable string `code` (tests and callers match on the code, never on
 * the message) and a one-line, human-readable `message`. The CLI prints
 * `socketkit: <message> (<code>)` and exits with `exitCode`.
 */

/** Stable error codes. Later modules add their own; the string is the contract. */
export type ErrorCode =
  | 'ERR_USAGE'
  | 'ERR_BAD_ADDRESS'
  | 'ERR_UNKNOWN_HOST'
  | 'ERR_CONN_REFUSED'
  | 'ERR_CONN_RESET'
  | 'ERR_CONN_CLOSED'
  | 'ERR_ADDR_IN_USE'
  | 'ERR_ADDR_NOT_AVAILABLE'
  | 'ERR_PERMISSION'
  | 'ERR_UNREACHABLE'
  | 'ERR_TIMEOUT'
  | 'ERR_ABORTED'
  | 'ERR_NOT_FOUND'
  | 'ERR_DISK_FULL'
  | 'ERR_IO'
  | 'ERR_ECHO_MISMATCH'
  | (string & {});

/** Exit status for failures of verification (the peer answered, but wrongly). */
export const EXIT_MISMATCH = 1;
/** Exit status for usage, address, connection and I/O failures. */
export const EXIT_FAILURE = 2;

export interface SocketkitErrorOptions {
  readonly cause?: unknown;
  readonly exitCode?: number;
}

/** The base class of every error socketkit raises on purpose. */
export class SocketkitError extends Error {
  readonly code: ErrorCode;
  readonly exitCode: number;

  constructor(code: ErrorCode, message: string, options: SocketkitErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'SocketkitError';
    this.code = code;
    this.exitCode = options.exitCode ?? EXIT_FAILURE;
  }
}

/** True for errors raised by socketkit itself (as opposed to bugs). */
export function isSocketkitError(err: unknown): err is SocketkitError {
  return err instanceof SocketkitError;
}

/** The subset of Node's system errors that we read. */
interface SystemErrorLike {
  code?: string;
  syscall?: string;
  hostname?: string;
  address?: string;
  port?: number;
  path?: string;
  message?: string;
}

/**
 * Turns a Node.js system error (ECONNREFUSED, EADDRINUSE, ENOTFOUND, ...) into a coded
 * SocketkitError whose message names what the user asked for (`what`, e.g. "127.0.0.1:9800").
 * A SocketkitError passes through unchanged; anything unrecognised keeps its own message.
 */
export function toSocketkitError(err: unknown, what?: string): SocketkitError {
  if (err instanceof SocketkitError) return err;
  const e = (err ?? {}) as SystemErrorLike;
  const target = what ?? e.path ?? e.hostname ?? (e.address !== undefined ? `${e.address}${e.port !== undefined ? `:${e.port}` : ''}` : '');
  const on = target ? ` ${target}` : '';
  switch (e.code) {
    case 'ECONNREFUSED':
      return new SocketkitError('ERR_CONN_REFUSED', `connection refused by${on || ' peer'}`, { cause: err });
    case 'ECONNRESET':
    case 'ECONNABORTED':
      return new SocketkitError('ERR_CONN_RESET', `connection reset by${on || ' peer'}`, { cause: err });
    case 'EPIPE':
      return new SocketkitError('ERR_CONN_CLOSED', `connection closed by${on || ' peer'} while sending`, { cause: err });
    // Node's own stream errors when a connection goes away under a reader or writer: they mean
    // the connection closed, not a bug in socketkit.
    case 'ENOTCONN':
    case 'ERR_STREAM_PREMATURE_CLOSE':
    case 'ERR_STREAM_DESTROYED':
    case 'ERR_STREAM_WRITE_AFTER_END':
    case 'ERR_SOCKET_CLOSED':
      return new SocketkitError('ERR_CONN_CLOSED', `connection${on ? ` to${on}` : ''} closed`, { cause: err });
    case 'EADDRINUSE':
      return new SocketkitError('ERR_ADDR_IN_USE', `address already in use:${on}`, { cause: err });
    case 'EADDRNOTAVAIL':
      return new SocketkitError('ERR_ADDR_NOT_AVAILABLE', `address not available on this machine:${on}`, { cause: err });
    case 'EACCES':
    case 'EPERM':
      return new SocketkitError('ERR_PERMISSION', `permission denied:${on}`, { cause: err });
    case 'ENOTFOUND':
    case 'EAI_NONAME':
    case 'EAI_NODATA':
    case 'EAI_FAIL':
      return new SocketkitError('ERR_UNKNOWN_HOST', `unknown host:${on || ` ${e.hostname ?? '?'}`}`, { cause: err });
    case 'EAI_AGAIN':
      return new SocketkitError('ERR_UNKNOWN_HOST', `could not resolve host (temporary DNS failure):${on}`, { cause: err });
    case 'ETIMEDOUT':
    case 'ERR_SOCKET_CONNECTION_TIMEOUT':
      return new SocketkitError('ERR_TIMEOUT', `timed out:${on}`, { cause: err });
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'EAFNOSUPPORT':
      return new SocketkitError('ERR_UNREACHABLE', `network unreachable:${on}`, { cause: err });
    case 'ENOENT':
      return new SocketkitError('ERR_NOT_FOUND', `no such file or socket:${on}`, { cause: err });
    case 'ENOSPC':
    case 'EDQUOT':
      return new SocketkitError('ERR_DISK_FULL', `no space left on device:${on}`, { cause: err });
    case 'ABORT_ERR':
      return new SocketkitError('ERR_ABORTED', `aborted:${on}`, { cause: err });
    default: {
      const msg = err instanceof Error ? err.message : String(err);
      return new SocketkitError(e.code && /^E[A-Z]+$/.test(e.code) ? 'ERR_IO' : 'ERR_INTERNAL', target ? `${target}: ${msg}` : msg, {
        cause: err,
      });
    }
  }
}

/**
 * One error type for everything socketkit reports to a user.
 *
 * Every failure carries a stable string `code` (tests and callers match on the code, never on
 * the message) and a one-line, human-readable `message`. The CLI prints
 * `socketkit: <message> (<code>)` and exits with `exitCode`.
 */

/**
 * Every error code socketkit raises, with what it means: the one table. The string is the
 * contract (tests and callers match on it), the summary is what the README's table says.
 * A code not listed here does not compile; a code read from a peer goes through `asErrorCode`.
 */
export const ERROR_CODES = {
  // Usage and arguments
  ERR_USAGE: 'a command line that cannot run: unknown option, missing argument, bad option value',
  ERR_INVALID_ARG: 'a library function called with a value out of its range',
  // Addresses and connections
  ERR_BAD_ADDRESS: 'an address that does not parse',
  ERR_UNKNOWN_HOST: 'a host name that does not resolve',
  ERR_CONN_REFUSED: 'nothing listening there',
  ERR_CONN_RESET: 'the peer reset the connection',
  ERR_CONN_CLOSED: 'the peer closed the connection mid-conversation',
  ERR_ADDR_IN_USE: 'the port (or Unix path) is taken',
  ERR_ADDR_NOT_AVAILABLE: 'the address is not one of this machine\'s',
  ERR_PERMISSION: 'permission denied (a low port without privileges, a protected path)',
  ERR_UNREACHABLE: 'no route to the host or network',
  ERR_TIMEOUT: 'connect or reply timed out',
  ERR_ABORTED: 'stopped by a signal or by the caller',
  ERR_START_PASSED: 'a load run\'s start time had already passed (agents would measure different windows)',
  // Files and the machine
  ERR_NOT_FOUND: 'no such file or Unix socket',
  ERR_DISK_FULL: 'no space left on the device (or the quota is spent)',
  ERR_IO: 'another error of the operating system, named in the message',
  ERR_BAD_LOG: 'a latency log or NDJSON file that cannot be read (corrupt mid-file, or an unsupported encoding)',
  ERR_NO_DESCRIPTORS: 'out of file descriptors: a server refuses connections until some free up',
  ERR_MEMORY_BUDGET: 'a server\'s memory budget is spent: the connection that needed more is closed',
  // Echo and framing
  ERR_ECHO_MISMATCH: 'the echo differs from what was sent, or is short',
  ERR_ECHO_TRUNCATED: 'UDP: the reply datagram was cut',
  ERR_FRAME_TOO_LARGE: 'a frame over the size limit',
  ERR_FRAME_TRUNCATED: 'the stream ended inside a frame',
  ERR_DATAGRAM_TOO_LARGE: 'a datagram over the protocol maximum (nothing sent)',
  ERR_NO_REPLY: 'UDP: no reply came back at all',
  ERR_UDP_UNIX_UNSUPPORTED: 'a unix: address with UDP (Node has no Unix datagram sockets)',
  // File transfer
  ERR_HASH_MISMATCH: 'the received file\'s SHA-256 differs from the sender\'s',
  ERR_PATH_UNSAFE: 'a file name that could escape the target folder or act on a terminal',
  ERR_EXISTS: 'the file exists and is not replaced without being told to',
  ERR_STALLED: 'a transfer made no progress for the stall timeout',
  ERR_BUSY: 'another connection is writing that file now',
  ERR_SOURCE_CHANGED: 'the file changed while it was being sent',
  ERR_TRANSFER_PROTOCOL: 'the peer broke the transfer protocol (or does not speak it)',
  ERR_TRANSFER_ROLE: 'both sides want to send, or both to receive',
  ERR_TRANSFER_VERSION: 'no protocol version both sides speak',
  ERR_PEER: 'the peer reported an error with a code this version does not know',
  // Security
  ERR_TLS_CERT: 'untrusted, self-signed or wrong-name certificate',
  ERR_TLS_PIN_MISMATCH: 'the certificate\'s fingerprint is not the pinned one',
  ERR_TLS_PSK: 'wrong key or identity, or the server answered with a certificate instead of the key',
  ERR_TLS_PLAINTEXT_PEER: 'plaintext talking to TLS, either way round',
  ERR_TLS_HANDSHAKE: 'other handshake failures, or a hang-up during the handshake',
  ERR_TLS_HANDSHAKE_TIMEOUT: 'the handshake did not finish in time',
  ERR_TLS_CONFIG: 'an unusable certificate, key, CA or PSK file',
  ERR_ACCESS_DENIED: 'refused by the allow/deny lists (in the server\'s log)',
  ERR_INSECURE_LISTENER: 'a plaintext file server on a non-loopback address',
  // The proxy and its toxics
  ERR_BAD_TOXIC: 'a toxic with an unknown type, attribute or value',
  ERR_TOXIC_EXISTS: 'a toxic of that name is on the proxy already',
  ERR_TOXIC_NOT_FOUND: 'no toxic of that name on the proxy',
  ERR_BAD_CONFIG: 'a proxy configuration file that is not valid JSON or not toxiproxy\'s shape',
  ERR_BAD_REQUEST: 'a request to the proxy API that it cannot carry out',
  // Servers
  ERR_CONN_LIMIT: 'a server refused a connection: its connection limit was reached',
  ERR_SLOW_CONSUMER: 'a broker client did not read fast enough: its queue filled and it was closed',
  ERR_WORKER_FAILED: 'a server worker process failed to start',
  // Throughput tests
  ERR_PERF_PROTOCOL: 'the peer broke the throughput test protocol (or does not speak it)',
  ERR_PERF_INTERRUPTED: 'a throughput test ended early: the other side went away or stopped it',
  ERR_INTERNAL: 'a bug in socketkit: please report it',
} as const satisfies Readonly<Record<`ERR_${string}`, string>>;

/** A socketkit error code: a key of `ERROR_CODES`. */
export type ErrorCode = keyof typeof ERROR_CODES;

/** True when `code` is one of socketkit's error codes. */
export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(ERROR_CODES, code);
}

/**
 * A code that came from outside (a peer's ERROR frame, a worker's message) as one of ours:
 * itself when it is one, otherwise `ERR_PEER` (the caller keeps the original in its message).
 */
export function asErrorCode(code: unknown): ErrorCode {
  return isErrorCode(code) ? code : 'ERR_PEER';
}

/** Exit status for failures of verification (the peer answered, but wrongly). */
export const EXIT_MISMATCH = 1;
/** Exit status for usage, address, connection and I/O failures. */
export const EXIT_FAILURE = 2;

/**
 * What the library suspects is behind a failure, for a front end to turn into advice in its own
 * words (the CLI names its flags; the library never does).
 */
export type ErrorHint =
  /** The peer closed at once without a byte: it may be a TLS server, and this was plaintext. */
  | 'maybe-tls-server'
  /** The peer speaks socketkit's framed transfer protocol, and this side expected raw bytes. */
  | 'peer-speaks-skft'
  /** The peer sends raw bytes, and this side expected socketkit's framed transfer protocol. */
  | 'peer-is-raw'
  /** A file is in the way; asking to replace it would. */
  | 'exists-replace'
  /** A file is in the way; asking to replace it, or to continue it, would. */
  | 'exists-replace-or-resume'
  /** The output is one file, and the peer offers more than one file can hold: a folder would. */
  | 'output-is-one-file'
  /** A pre-shared key file that is not usable: making one would help. */
  | 'make-psk'
  /** A transfer stopped mid-file, and the partial file is kept: running it again continues it. */
  | 'partial-kept';

export interface SocketkitErrorOptions {
  readonly cause?: unknown;
  readonly exitCode?: number;
  readonly hint?: ErrorHint;
}

/** The base class of every error socketkit raises on purpose. */
export class SocketkitError extends Error {
  readonly code: ErrorCode;
  readonly exitCode: number;
  /** What the library suspects is behind it, when it has a good guess. */
  readonly hint: ErrorHint | undefined;

  constructor(code: ErrorCode, message: string, options: SocketkitErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'SocketkitError';
    this.code = code;
    this.exitCode = options.exitCode ?? EXIT_FAILURE;
    this.hint = options.hint;
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

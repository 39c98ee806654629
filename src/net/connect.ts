/**
 * Opening stream connections (TCP over IPv4/IPv6, or a Unix socket) as a Promise.
 *
 * One `done()` settles the promise and removes every listener and timer it added, so an
 * abort, a timeout and a late error can never fire twice or leak.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { SocketkitError, toSocketkitError } from '../core/errors.js';
import { DEFAULT_CONNECT_TIMEOUT_MS } from '../core/defaults.js';
import { formatEndpoint, type Endpoint } from './endpoint.js';

export interface ConnectOptions {
  /** Abandons the attempt (the promise rejects with ERR_ABORTED). */
  readonly signal?: AbortSignal;
  /** Milliseconds before the attempt fails with ERR_TIMEOUT; 0 waits forever. Default 10 s. */
  readonly timeoutMs?: number;
  /** Disable Nagle's algorithm (TCP only). Default true: socketkit is about round trips. */
  readonly noDelay?: boolean;
}

/**
 * Hook for transports layered on a plain connect (TLS adds itself here). Given the endpoint,
 * returns a socket that emits the event named by `readyEvent` when usable.
 */
export interface ConnectTransport {
  open(ep: Endpoint): Socket;
  readonly readyEvent: 'connect' | 'secureConnect';
  /** Checks a ready socket before it is handed over (TLS pinning); an error refuses it. */
  readonly verify?: (socket: Socket) => SocketkitError | undefined;
  /** Codes a failure while connecting (TLS handshake errors); default toSocketkitError. */
  readonly mapError?: (err: Error, what: string) => SocketkitError;
}

const plainTransport: ConnectTransport = {
  open(ep) {
    // allowHalfOpen: our side stays writable after the peer's FIN; callers end or destroy it.
    return ep.kind === 'unix' ? netConnect({ path: ep.path, allowHalfOpen: true }) : netConnect({ host: ep.host, port: ep.port, allowHalfOpen: true });
  },
  readyEvent: 'connect',
};

/** Connects to `ep`; resolves with the connected socket, or rejects with a coded error. */
export function connect(ep: Endpoint, options: ConnectOptions = {}, transport: ConnectTransport = plainTransport): Promise<Socket> {
  const what = formatEndpoint(ep);
  const timeoutMs = options.timeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  return new Promise<Socket>((resolve, reject) => {
    if (options.signal?.aborted) {
      reject(new SocketkitError('ERR_ABORTED', `connect to ${what} aborted`));
      return;
    }
    const socket = transport.open(ep);
    let timer: NodeJS.Timeout | undefined;
    const done = (err?: SocketkitError): void => {
      if (timer !== undefined) clearTimeout(timer);
      socket.removeListener(transport.readyEvent, onReady);
      socket.removeListener('error', onError);
      options.signal?.removeEventListener('abort', onAbort);
      if (err) {
        // Nothing listens for this socket any more: a late error from it must not crash us.
        socket.on('error', () => undefined);
        socket.destroy();
        reject(err);
      } else {
        if (ep.kind === 'inet' && (options.noDelay ?? true)) socket.setNoDelay(true);
        resolve(socket);
      }
    };
    const onReady = (): void => done(transport.verify?.(socket));
    const onError = (err: Error): void => done(transport.mapError?.(err, what) ?? toSocketkitError(err, what));
    const onAbort = (): void => done(new SocketkitError('ERR_ABORTED', `connect to ${what} aborted`));
    socket.once(transport.readyEvent, onReady);
    socket.once('error', onError);
    options.signal?.addEventListener('abort', onAbort, { once: true });
    if (timeoutMs > 0) {
      timer = setTimeout(
        () => done(new SocketkitError('ERR_TIMEOUT', `connect to ${what} timed out after ${timeoutMs / 1000} s`)),
        timeoutMs,
      );
    }
  });
}

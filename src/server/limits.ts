/** Admission control: how many connections a server holds at once. */
import type { Socket } from 'node:net';
import type { Listener } from '../net/listen.js';
import { SocketkitError } from '../core/errors.js';

/** An admission check for `listen({ admit })`: a reason to refuse, or undefined to admit. */
export type AdmitCheck = (socket: Socket, listener: Listener) => string | undefined;

/**
 * Refuses a new connection while `max` are open (TLS handshakes in progress included): it is closed at once (before any byte is read),
 * counted in `listener.counters.refused` and reported through the listener's 'refused' event,
 * while the connections already open keep being served.
 */
export function connectionLimit(max: number): AdmitCheck {
  if (!Number.isSafeInteger(max) || max < 1) throw new SocketkitError('ERR_INVALID_ARG', `connection limit must be a whole number from 1, not ${max}`);
  const reason = `connection limit reached: ${max} open (ERR_CONN_LIMIT)`;
  return (_socket, listener) => (listener.open >= max ? reason : undefined);
}

/**
 * Splits a connection limit between `workers` processes so the shares add up to `max`
 * (the first `max % workers` get one more). Each worker gets at least 1.
 */
export function shareOfLimit(max: number, workers: number, index: number): number {
  const base = Math.floor(max / workers);
  return Math.max(1, base + (index < max % workers ? 1 : 0));
}

/** Defaults of the load generator, in one place. */

/** Connections, when not given. */
export const DEFAULT_LOAD_CONNECTIONS = 1;
/** Payload bytes per round trip, when neither a size nor messages are given. */
export const DEFAULT_LOAD_SIZE = 64;
/** How long a run lasts when neither a duration nor a request count is given, ms. */
export const DEFAULT_LOAD_DURATION_MS = 10_000;
/**
 * Connections opened per second. Bounded so a server's listen backlog is not overrun: a
 * connection the server has not accepted yet waits in that queue, and a full queue drops
 * handshakes (the client then retries after a second or more, which would spoil the figures).
 */
export const DEFAULT_CONNECT_RATE = 2_000;
/**
 * Connections being opened at once (handshake and first echo not yet done). Each is confirmed
 * by a one-byte echo before it counts as open, so at most this many can sit in the backlog.
 */
export const DEFAULT_CONNECT_CONCURRENCY = 64;
/** No reply for this long while requests are outstanding is an error (and connect timeout), ms. */
export const DEFAULT_LOAD_TIMEOUT_MS = 10_000;
/** After the run, how long requests still in flight are waited for, ms. */
export const DEFAULT_DRAIN_MS = 2_000;
/** Progress reports, ms. */
export const DEFAULT_PROGRESS_INTERVAL_MS = 1_000;
/** In open loop, most requests one connection has in flight; more wait (and their latency grows). */
export const MAX_OUTSTANDING_PER_CONNECTION = 1_024;
/** Upper bound on connections, so a typo cannot exhaust the machine's ports. */
export const MAX_LOAD_CONNECTIONS = 100_000;

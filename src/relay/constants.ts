/** Defaults of the relay (connect, listen, --exec, UDP), in one place. */

/** After an --exec program is done, how long the peer may keep sending before we close, ms. */
export const DEFAULT_EXEC_LINGER_MS = 2_000;
/** After the connection ends, how long an --exec program may take to exit before SIGTERM, ms. */
export const DEFAULT_EXEC_EXIT_GRACE_MS = 1_000;
/** After SIGTERM, how long before SIGKILL, ms. */
export const DEFAULT_EXEC_KILL_AFTER_MS = 2_000;
/** UDP client: how long to wait for replies after the last datagram, ms. */
export const DEFAULT_UDP_REPLY_WAIT_MS = 1_000;
/** A --label line longer than this without a newline is printed in pieces, bytes. */
export const MAX_LABEL_LINE = 64 * 1024;

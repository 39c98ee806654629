/** Defaults shared by every command and library call, in one place. */

/** The port used when an address names none. */
export const DEFAULT_PORT = 9800;
/** Servers listen on loopback unless told otherwise; every interface must be asked for. */
export const DEFAULT_LISTEN_HOST = '127.0.0.1';
/** Clients connect to loopback when given only a port. */
export const DEFAULT_CONNECT_HOST = '127.0.0.1';
/** Connect timeout, milliseconds. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
/** How long a gracefully stopping server lets live connections finish, milliseconds. */
export const DEFAULT_GRACE_MS = 5_000;
/** Listen backlog: large enough that a burst of connects is not dropped. */
export const DEFAULT_BACKLOG = 1024;
/** Where received entries are written when no folder is given: the current folder. */
export const DEFAULT_RECEIVE_DIR = '.';

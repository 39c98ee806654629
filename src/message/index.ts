/** Whole-message connections over TCP and Unix sockets, built on the framing codec. */
export * from './connection.js';
export * from './echo.js';

/** Shared server machinery: limits, idle timeouts, live statistics, cluster workers, and the managed echo server. */
export * from './defaults.js';
export * from './stats.js';
export * from './limits.js';
export * from './idle.js';
export * from './server.js';
export * from './echo.js';
export * from './memory.js';
export * from './cluster.js';
export * from './serve.js';

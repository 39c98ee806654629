/** The load generator: many connections, closed or open loop, HDR latency percentiles. */
export * from './defaults.js';
export * from './histogram.js';
export * from './messages.js';
export * from './connections.js';
export * from './run.js';
export * from './threads.js';

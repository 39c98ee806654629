/** The proxy: a relay with toxics (latency, bandwidth, resets, slicing, loss...) and a dump of what crosses it. */
export * from './stage.js';
export * from './chain.js';
export * from './live.js';
export * from './toxic.js';
export * from './spec.js';
export * from './dump.js';
export * from './relay.js';
export * from './proxy.js';
export { TOXIC_TYPES } from './toxics/index.js';
export * from './udp.js';
export * from './api.js';

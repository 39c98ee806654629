/**
 * The UDP system: a datagram echo server with bounded per-peer counters, a one-datagram echo
 * client, and `ping` over UDP or TCP with its probe codec and RTT statistics.
 */
export * from './constants.js';
export * from './probe.js';
export * from './stats.js';
export * from './peers.js';
export { requireInet, bindUdp, connectUdp, datagramTooLarge, toUdpError, type BoundUdp, type ConnectedUdp } from './socket.js';
export * from './server.js';
export * from './client.js';
export * from './ping.js';

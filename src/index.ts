/**
 * socketkit's library API. Every CLI command is a thin layer over these functions.
 *
 * @example
 * ```ts
 * import { parseEndpoint, startEchoServer, echoMessage } from 'socketkit';
 * const server = await startEchoServer(parseEndpoint('127.0.0.1:0', { defaultHost: '127.0.0.1', allowPortZero: true }));
 * const { reply } = await echoMessage(server.endpoint, Buffer.from('Hola mundo'));
 * await server.close();
 * ```
 */
export * from './core/errors.js';
export * from './core/defaults.js';
export * from './net/endpoint.js';
export * from './net/connect.js';
export * from './net/listen.js';
export * from './net/write.js';
export { socketFd, endedByReset } from './net/socket-state.js';
export { nativeStatus, type NativeStatus } from './native/helper.js';
export * from './codec/index.js';
export * from './echo/server.js';
export * from './echo/client.js';
export * from './message/index.js';
export * from './echo/framed.js';
export * from './udp/index.js';
export * from './server/index.js';
export * from './load/index.js';
export * from './transfer/index.js';
export * from './security/index.js';
export {
  startProxy, ProxyServer, ProxyConnection, startUdpProxy, UdpProxy, parseToxic, toxicConfig, chooseToxics, seededRandom, dumpChunk, TOXIC_TYPES, DEFAULT_PROXY_HIGH_WATER_MARK,
  type ProxyOptions, type ProxyEvent, type ProxyEnd, type ToxicConfig, type ToxicType, type Stage, type StageOutput, type StageContext, type StageFactory, type DumpFormat, type UdpProxyOptions, type UdpProxyEvent,
} from './proxy/index.js';

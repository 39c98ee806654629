/**
 * socketkit's library API. Every CLI command is a thin layer over these functions.
 *
 * This list is curated: it names what a program using socketkit needs, and nothing of how the
 * systems are built (buffer pools, file sinks, the transfer link, worker plumbing, heap tuning,
 * tuning constants). Internals can change without a major version; what is here cannot.
 * test/exports.test.ts holds this list to the README's table.
 *
 * @example
 * ```ts
 * import { parseEndpoint, startEchoServer, echoMessage } from 'socketkit';
 * const server = await startEchoServer(parseEndpoint('127.0.0.1:0', { defaultHost: '127.0.0.1', allowPortZero: true }));
 * const { reply } = await echoMessage(server.endpoint, Buffer.from('Hola mundo'));
 * await server.close();
 * ```
 */

// Errors: one class, one table of codes.
export {
  ERROR_CODES,
  EXIT_FAILURE,
  EXIT_MISMATCH,
  SocketkitError,
  asErrorCode,
  isErrorCode,
  isSocketkitError,
  toSocketkitError,
  type ErrorCode,
  type SocketkitErrorOptions,
} from './core/errors.js';
export { DEFAULT_PORT, DEFAULT_LISTEN_HOST, DEFAULT_CONNECT_HOST, DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_GRACE_MS } from './core/defaults.js';

// Addresses, connections, listeners, writes.
export {
  parseEndpoint,
  formatEndpoint,
  formatPeer,
  resolveInet,
  type Endpoint,
  type InetEndpoint,
  type UnixEndpoint,
  type ParseEndpointOptions,
  type ResolvedInet,
} from './net/endpoint.js';
export { connect, type ConnectOptions, type ConnectTransport } from './net/connect.js';
export { listen, type Listener, type ListenOptions, type ListenTransport, type ListenerCounters, type ListenerStatus, type ListenerEvents } from './net/listen.js';
export { waitDrain, writeWithBackpressure, endAndFlush } from './net/write.js';
export { socketFd, endedByReset } from './net/socket-state.js';
export { nativeStatus, type NativeStatus } from './native/helper.js';

// The framing codec (no sockets).
export { DEFAULT_MAX_FRAME_SIZE, FRAME_HEADER_SIZE, MAX_FRAME_LENGTH } from './codec/constants.js';
export { FrameDecoder, decodeFrames, type FrameDecoderOptions } from './codec/frame-decoder.js';
export { encodeFrame, encodeHeader, writeFrame, type FrameEncoderOptions } from './codec/frame-encoder.js';

// Whole-message connections.
export {
  MessageConnection,
  connectMessages,
  listenMessages,
  echoMessages,
  type MessageOptions,
  type ConnectMessagesOptions,
  type ListenMessagesOptions,
} from './message/connection.js';
export { echoFramesOn, type FramedEchoSocketOptions } from './message/echo.js';

// TCP and Unix echo.
export { startEchoServer, type EchoServer, type EchoServerEvent, type EchoServerOptions, type EchoServerStats, type ConnectionHandler } from './echo/server.js';
export { echoStream, echoMessage, type EchoClientOptions, type EchoResult } from './echo/client.js';
export { echoFramed, type FramedEchoOptions, type FramedEchoResult } from './echo/framed.js';

// UDP echo and ping.
export { MAX_UDP_PAYLOAD_IPV4, MAX_UDP_PAYLOAD_IPV6, maxUdpPayload } from './udp/constants.js';
export { PROBE_HEADER_SIZE, encodeProbe, decodeProbe, type ProbeFields, type ProbeDecodeResult } from './udp/probe.js';
export { percentile, summarizeRtts, type RttSummary } from './udp/stats.js';
export {
  startUdpEchoServer,
  type UdpEchoServer,
  type UdpEchoServerEvent,
  type UdpEchoServerOptions,
  type UdpEchoServerStats,
  type UdpEchoServerStatus,
  type PeerEndReason,
} from './udp/server.js';
export { udpEcho, type UdpEchoOptions, type UdpEchoResult } from './udp/client.js';
export { ping, type PingEvent, type PingOptions, type PingReplyStatus, type PingSummary, type PingTransport } from './udp/ping.js';

// The managed server: limits, idle sweep, statistics, memory budget, cluster workers.
export { startServer, type ManagedServer, type ManagedServerOptions, type Protocol, type ServerEvent, type SocketHandler, type AcceptErrorReport } from './server/server.js';
export { startManagedEchoServer, type ManagedEchoServerOptions } from './server/echo.js';
export { StatsMeter, sumStats, ZERO_STATS, type ServerStats, type StatsRates } from './server/stats.js';
export { connectionLimit, type AdmitCheck } from './server/limits.js';
export { IdleSweeper, type IdleSweeperOptions } from './server/idle.js';
export { MemoryBudget } from './server/budget.js';
export { startCluster, resolveWorkerCount, type ClusterEvent, type ClusterOptions, type ClusterPrimary } from './server/cluster.js';
export { serve, type ServeOptions, type ServeResult, type StartOneOptions } from './server/serve.js';

// The load generator.
export { runLoad, type LoadOptions, type LoadProgress, type LoadResult } from './load/run.js';
export { LatencyRecorder, type LatencySummary } from './load/histogram.js';
export { parseMessages, payloadOfSize } from './load/messages.js';
export { type LoadProtocol } from './load/connections.js';

// File transfer.
export { DEFAULT_CHUNK_SIZE, DEFAULT_STALL_TIMEOUT_MS, TRANSFER_MAGIC, TRANSFER_PROTOCOL_VERSION } from './transfer/constants.js';
export { collectEntries, countEntries, type CollectOptions, type SkippedEntry, type TransferEntry } from './transfer/entries.js';
export { summaryError, type TransferEvent, type TransferFailure, type TransferSummary } from './transfer/events.js';
export { checkWirePath } from './transfer/paths.js';
export { runSender, type SenderOptions } from './transfer/sender.js';
export { runReceiver, type ReceiverOptions } from './transfer/receiver.js';
export { canSendfile, sendfileRange, type SendfileRangeOptions } from './transfer/zero-copy.js';
export { sendRawFile, receiveRawStream, type RawReceiveOptions, type RawResult, type RawSendOptions, type RawSink } from './transfer/raw.js';
export { download, downloadRaw, upload, type DownloadOptions, type RawDownloadOptions, type TransferClientOptions, type UploadOptions } from './transfer/client.js';
export {
  startFileServer,
  startReceiveServer,
  type FileServerOptions,
  type ReceiveServerOptions,
  type TransferServerEvent,
  type TransferServerStats,
} from './transfer/server.js';

// Security: TLS, TLS-PSK, certificates, pins, access lists.
export { DEFAULT_CERT_DAYS, MAX_CERT_DAYS, DEFAULT_PSK_IDENTITY, DEFAULT_HANDSHAKE_TIMEOUT_MS } from './security/constants.js';
export { generateCertificate, certificateFingerprint, parseAltName, type AltName, type CertificateOptions, type GeneratedCertificate } from './security/cert.js';
export { parsePin, formatFingerprint } from './security/pin.js';
export { parsePsk, loadPskFile, generatePsk, formatPsk, type PreSharedKey } from './security/psk.js';
export { AccessList, parseCidr, type AccessDecision, type AccessListOptions, type Cidr } from './security/access.js';
export { requireSecureListener, isLoopbackHost, type SecurityMode } from './security/policy.js';
export { tlsConnectTransport, tlsListenTransport, type TlsClientOptions, type TlsServerOptions, type TlsConnectTransport, type TlsListenTransport } from './security/tls.js';

// The broker: relay between clients, line chat, instances joined through Redis.
export { startBroker, DEFAULT_BROKER_MAX_QUEUE, DEFAULT_CHAT_MAX_LINE, type Broker, type BrokerMode, type BrokerOptions } from './broker/index.js';
export { LocalChatDirectory, type BrokerBridge, type ChatDirectory } from './broker/bridge.js';
export { connectRedisBridge, type RedisBridgeOptions, type RedisJoin, type RedisLoss, type RedisStatus } from './broker/redis.js';
export type { ChatEvent } from './broker/chat.js';
export type { OutboxCounters, SlowConsumerPolicy } from './broker/outbox.js';

// connect and listen: a connection relayed to local streams or a program (nc's job).
export { pump, type PumpOptions, type PumpResult } from './relay/pump.js';
export { relay, RelayError, type RelayOptions, type RelayResult } from './relay/relay.js';
export { relayExec, parseExecLine, type ExecSpec, type ExecStatus, type ExecRelayOptions, type ExecRelayResult } from './relay/exec.js';
export { Fanout, type FanoutOptions } from './relay/fanout.js';
export { LabelledLines } from './relay/labels.js';
export { udpClient, udpListen, interfaceAddress, type MulticastOptions, type UdpClientOptions, type UdpCounts, type UdpListenOptions } from './relay/udp.js';

// Latency logs and reports: HdrHistogram interval logs, merged, summarised, drawn.
export { HDR_LOG_FORMAT_VERSION, IntervalLogWriter, type IntervalErrors, type IntervalLogHeader } from './report/log-writer.js';
export { DEFAULT_LOG_INTERVAL_MS, IntervalRecorder, openIntervalLog, type IntervalRecorderOptions } from './report/recorder.js';
export { parseIntervalLog, type IntervalLog, type LogInterval } from './report/log-reader.js';
export { parseTransferLog, type TransferLog, type TransferSlot } from './report/transfer-log.js';
export { readReportInputs, type ReportInputs } from './report/input.js';
export { mergeLogs, type LogSource, type MergedInterval, type MergedRun } from './report/merge.js';
export { summarizeRun, type RunSummary } from './report/summary.js';
export { newLatencyHistogram, summarizeHistogram, type LogUnit } from './report/histogram.js';
export { renderHtmlReport, type HtmlReportInit } from './report/html.js';

// The proxy: a relay that dumps the traffic and makes the network misbehave (toxics).
export {
  startProxy,
  startUdpProxy,
  parseToxic,
  TOXIC_TYPES,
  DEFAULT_PROXY_HIGH_WATER_MARK,
  type ProxyServer,
  type UdpProxy,
  type ProxyOptions,
  type ProxyEvent,
  type ProxyEnd,
  type ToxicConfig,
  type ToxicType,
  type Stage,
  type StageOutput,
  type StageContext,
  type StageFactory,
  type DumpFormat,
  type UdpProxyOptions,
  type UdpProxyEvent,
} from './proxy/index.js';

// Throughput tests: perf and perf-server (iperf3's job, many tests at once).
export { runPerf, perfParams, type PerfOptions, type PerfResult, type DirectionTotal } from './perf/client.js';
export { startPerfServer, PerfServer, type PerfServerEvent, type PerfServerOptions } from './perf/server.js';
export { UdpReceiverStats } from './perf/udp-receiver.js';
export { sendPaced, type PacingFigures, type PacedSendOptions } from './perf/udp-sender.js';
export type { PerfInterval, IntervalStream } from './perf/intervals.js';
export type { StreamFigures, UdpFigures, TestParams } from './perf/protocol.js';
export { DEFAULT_PERF_DURATION_MS, DEFAULT_PERF_PORT, DEFAULT_PERF_TCP_LENGTH, DEFAULT_PERF_UDP_LENGTH, DEFAULT_PERF_UDP_RATE } from './perf/defaults.js';

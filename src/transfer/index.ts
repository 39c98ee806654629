/**
 * File transfer: files and folders over TCP or Unix sockets, verified with SHA-256 computed
 * while streaming, resumable, safe at the receiving end; and a raw mode that is exactly
 * "send the file's bytes, close" for `nc` interop.
 *
 * - {@link startFileServer} / {@link download}: a server sends to every client (`serve` / `get`).
 * - {@link startReceiveServer} / {@link upload}: clients send to a server (`receive` / `send`).
 * - {@link downloadRaw} and `startFileServer({ raw: true })`: raw streams.
 * - {@link runSender} / {@link runReceiver} over a {@link Link}: the two roles of the protocol,
 *   for any connected socket.
 *
 * Error codes: `ERR_PATH_UNSAFE`, `ERR_EXISTS`, `ERR_BUSY`, `ERR_HASH_MISMATCH` (exit status 1),
 * `ERR_SOURCE_CHANGED`, `ERR_STALLED`, `ERR_DISK_FULL`, `ERR_PERMISSION`, `ERR_TRANSFER_PROTOCOL`,
 * `ERR_TRANSFER_VERSION`, `ERR_TRANSFER_ROLE`, plus the connection errors of `src/net`.
 *
 * @example
 * ```ts
 * import { startFileServer, download, summaryError } from 'socketkit';
 *
 * const server = await startFileServer({ kind: 'inet', host: '127.0.0.1', port: 0 }, { paths: ['photos'] });
 * const summary = await download(server.endpoint, { dir: '/tmp/copy' });
 * console.log(`${summary.files} files, ${summary.bytes} bytes`); // each verified by SHA-256
 * const failed = summaryError(summary); // undefined when every entry made it
 * await server.close();
 * ```
 *
 * @module
 */
export {
  DEFAULT_CHUNK_SIZE,
  DEFAULT_OFFER_WINDOW,
  DEFAULT_READ_AHEAD,
  DEFAULT_STALL_TIMEOUT_MS,
  PART_SUFFIX,
  TRANSFER_MAGIC,
  TRANSFER_PROTOCOL_VERSION,
} from './constants.js';
export { collectEntries, countEntries, type CollectOptions, type SkippedEntry, type TransferEntry } from './entries.js';
export { summaryError, type TransferEvent, type TransferFailure, type TransferSummary } from './events.js';
export { checkWirePath } from './paths.js';
export { Link, type LinkOptions } from './link.js';
export { runSender, type SenderOptions } from './sender.js';
export { runReceiver, type ReceiverOptions } from './receiver.js';
export { canSendfile, sendfileRange, SENDFILE_SLICE, type SendfileRangeOptions } from './zero-copy.js';
export { sendRawFile, receiveRawStream, type RawReceiveOptions, type RawResult, type RawSendOptions, type RawSink } from './raw.js';
export { BufferPool, FileSink, SyncFileSink, readChunks, type ChunkSink, type FileSinkOptions } from './file-io.js';
export { download, downloadRaw, upload, type DownloadOptions, type RawDownloadOptions, type TransferClientOptions, type UploadOptions } from './client.js';
export {
  startFileServer,
  startReceiveServer,
  TransferServer,
  type ConnectionOutcome,
  type FileServerOptions,
  type ReceiveServerOptions,
  type TransferServerEvent,
  type TransferServerOptions,
  type TransferServerStats,
} from './server.js';

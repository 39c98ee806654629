/**
 * Writing with backpressure: when `write()` returns false, wait for `'drain'` — or for the
 * connection to close or fail, so a dead peer can never leave a writer hanging.
 */
import type { Writable } from 'node:stream';
import { SocketkitError, toSocketkitError } from '../core/errors.js';

/** Resolves when `stream` can take more data; rejects if it closes or fails first. */
export function waitDrain(stream: Writable): Promise<void> {
  if (!stream.writableNeedDrain) return Promise.resolve();
  return new Promise<void>((resolve, reject) => {
    const done = (err?: Error): void => {
      stream.removeListener('drain', onDrain);
      stream.removeListener('close', onClose);
      stream.removeListener('error', onError);
      if (err) reject(err);
      else resolve();
    };
    const onDrain = (): void => done();
    const onClose = (): void => done(new SocketkitError('ERR_CONN_CLOSED', 'connection closed while sending'));
    const onError = (err: Error): void => done(toSocketkitError(err));
    stream.once('drain', onDrain);
    stream.once('close', onClose);
    stream.once('error', onError);
  });
}

/** Writes `chunk`, then waits for drain if the stream's buffer is above its high-water mark. */
export async function writeWithBackpressure(stream: Writable, chunk: Uint8Array): Promise<void> {
  if (stream.destroyed || stream.writableEnded) {
    throw new SocketkitError('ERR_CONN_CLOSED', 'connection closed while sending');
  }
  if (!stream.write(chunk)) await waitDrain(stream);
}

/** Ends the writable side and resolves once everything written has been flushed. */
export function endAndFlush(stream: Writable): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (stream.writableFinished) {
      resolve();
      return;
    }
    // Already destroyed: no 'finish' or 'close' is coming, so waiting would hang forever.
    if (stream.destroyed) {
      reject(new SocketkitError('ERR_CONN_CLOSED', 'connection closed before all data was sent'));
      return;
    }
    const done = (err?: Error): void => {
      stream.removeListener('finish', onFinish);
      stream.removeListener('close', onClose);
      stream.removeListener('error', onError);
      if (err) reject(err);
      else resolve();
    };
    const onFinish = (): void => done();
    const onClose = (): void => done(stream.writableFinished ? undefined : new SocketkitError('ERR_CONN_CLOSED', 'connection closed before all data was sent'));
    const onError = (err: Error): void => done(toSocketkitError(err));
    stream.once('finish', onFinish);
    stream.once('close', onClose);
    stream.once('error', onError);
    stream.end();
  });
}

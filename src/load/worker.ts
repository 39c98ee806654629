/**
 * One load thread (src/load/threads.ts): runs `runLoad` on its share of the work and posts its
 * latencies (a compressed HDR histogram of µs) and errors every `batchMs`, then its result and its
 * whole histogram. An `abort` message ends its run as a signal would.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { encodeIntoCompressedBase64, type Histogram } from 'hdr-histogram-js';
import { toSocketkitError } from '../core/errors.js';
import { newLatencyHistogram } from '../report/histogram.js';
import { runLoad } from './run.js';
import { tlsConnectTransport } from '../security/tls.js';
import type { FromThread, ThreadInit } from './threads.js';

const port = parentPort;
if (port === null) throw new Error('src/load/worker.js runs as a worker thread');
const init = workerData as ThreadInit;
const post = (m: FromThread): void => port.postMessage(m);
const encode = (h: Histogram): string | null => (h.totalCount === 0 ? null : encodeIntoCompressedBase64(h, 1));

const abort = new AbortController();
port.on('message', (m: { type: string }) => {
  if (m.type === 'abort') abort.abort();
});

const total = newLatencyHistogram();
const batch = newLatencyHistogram();
let errors: Record<string, number> = {};
let pendingErrors = false;
const flush = (): void => {
  if (batch.totalCount === 0 && !pendingErrors) return;
  post({ type: 'batch', histogram: encode(batch), errors });
  batch.reset();
  errors = {};
  pendingErrors = false;
};
const timer = setInterval(flush, init.batchMs);

try {
  const result = await runLoad(init.ep, {
    ...init.options,
    ...(init.tls !== undefined ? { transport: tlsConnectTransport(init.tls) } : {}),
    signal: abort.signal,
    onRunStart: () => post({ type: 'start' }),
    onLatency: (us) => {
      const v = Math.max(1, Math.round(us));
      total.recordValue(v);
      batch.recordValue(v);
    },
    onError: (code, n) => {
      errors[code] = (errors[code] ?? 0) + n;
      pendingErrors = true;
    },
  });
  clearInterval(timer);
  flush();
  post({ type: 'done', result, histogram: encode(total) });
} catch (err) {
  clearInterval(timer);
  flush();
  const e = toSocketkitError(err, 'load thread');
  post({ type: 'failed', code: e.code, message: e.message });
} finally {
  port.close();
}

/** Latency logs and reports: HdrHistogram interval logs written, read, merged, summarised and drawn. */
export * from './log-writer.js';
export * from './log-reader.js';
export * from './recorder.js';
export * from './histogram.js';
export * from './merge.js';
export * from './summary.js';
export * from './transfer-log.js';
export * from './input.js';
export * from './html.js';

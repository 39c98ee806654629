/** Latency logs and reports: HdrHistogram interval logs written, read, merged, summarised and drawn. */
export * from './log-writer.js';
export * from './log-reader.js';
export * from './recorder.js';
export * from './histogram.js';

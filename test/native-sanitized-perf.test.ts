// The throughput test's native loops (per-stream threads, the UDP pacer, TCP_INFO) under
// AddressSanitizer and UndefinedBehaviorSanitizer (test/helpers/sanitized.ts says how): any
// sanitizer report, or any of these suites failing with the sanitized addon loaded, fails it.
import { describe, it } from 'node:test';
import { runUnderSanitizers } from './helpers/sanitized.js';

describe('the native helper under ASan and UBSan: the perf loops', () => {
  it('builds every native/*.c with -fsanitize=address,undefined and runs the perf scenarios (native streams, -Z, UDP pacing, every direction, killed peers) clean', { timeout: 115_000 }, async (t) => {
    await runUnderSanitizers(t, ['dist/test/perf-native.test.js', 'dist/test/perf-meter.test.js', 'dist/test/perf-tcp.test.js'], 20);
  });
});

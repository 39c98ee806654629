// The native echo engine and the sendfile helper under AddressSanitizer and
// UndefinedBehaviorSanitizer (test/helpers/sanitized.ts says how): any sanitizer report, or any of
// these suites failing with the sanitized addon loaded, fails it.
import { describe, it } from 'node:test';
import { runUnderSanitizers } from './helpers/sanitized.js';

describe('the native helper under ASan and UBSan: the echo engine and sendfile', () => {
  it('builds every native/*.c with -fsanitize=address,undefined and runs the echo engine scenarios (the differential echo tests, the misbehaving clients) and the zero-copy tests clean', { timeout: 115_000 }, async (t) => {
    await runUnderSanitizers(t, ['dist/test/echo-engines.test.js', 'dist/test/echo-engine-memory.test.js', 'dist/test/zero-copy.test.js'], 20);
  });
});

// The splice(2) pump of connect and listen (native/splice.c) under AddressSanitizer and
// UndefinedBehaviorSanitizer (test/helpers/sanitized.ts says how): any sanitizer report, or any of
// these suites failing with the sanitized addon loaded, fails it.
import { describe, it } from 'node:test';
import { runUnderSanitizers } from './helpers/sanitized.js';

describe('the native helper under ASan and UBSan: the splice pump', () => {
  it('builds every native/*.c with -fsanitize=address,undefined and runs the splice pump scenarios clean', { timeout: 115_000 }, async (t) => {
    await runUnderSanitizers(t, ['dist/test/relay-splice.test.js'], 8);
  });
});

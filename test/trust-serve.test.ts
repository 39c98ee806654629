// serve()'s statistics ticker: a reporter that throws must not end the server (it used to be an
// unhandled rejection, which exits the process with status 70 under the CLI's safety net).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { serve } from '../src/server/serve.js';
import { startManagedEchoServer } from '../src/server/echo.js';

describe('serve() statistics ticker', () => {
  it('keeps ticking and serving when onStats throws', async () => {
    const stop = new AbortController();
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown): void => void unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    let calls = 0;
    try {
      const result = await serve({
        endpoint: { kind: 'inet', host: '127.0.0.1', port: 0 },
        start: () => startManagedEchoServer({ kind: 'inet', host: '127.0.0.1', port: 0 }),
        workers: 1,
        graceMs: 100,
        shutdown: stop.signal,
        statsIntervalMs: 10,
        onStats: () => {
          calls++;
          if (calls >= 3) stop.abort();
          throw new Error('a reporter that fails');
        },
      });
      assert.equal(result.role, 'single');
      assert.ok(calls >= 3, `the ticker went on after a throwing reporter (${calls} calls)`);
      // Let any rejection that escaped be reported before checking.
      await new Promise<void>((resolve) => setImmediate(resolve));
      assert.deepEqual(unhandled, []);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });
});

// The tour's proxy step: through slicer:average_size=1 a client that reads once gets one byte of
// "Hola mundo!", and socketkit's echo client, through the same proxy, gets every byte.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { runTour } from '../src/demo/tour.js';
import { proxyStep } from '../src/demo/proxy.js';

describe('tour: the proxy step', () => {
  it('one read gets "H" of "Hola mundo!" through the slicer; the echo client gets all 11 bytes', async () => {
    let out = '';
    const r = await runTour((text) => (out += text), [proxyStep], AbortSignal.timeout(30_000));
    assert.deepEqual(r, { passed: 1, failed: 0, stopped: false }, out);
    assert.match(out, /one read gets "Hola mundo!" \(loopback/);
    assert.match(out, /one read \(recv\(1024\) once\) gets "H": 1 of 11 bytes/);
    assert.match(out, /socketkit echo reads until all is back: "Hola mundo!", 11 of 11 bytes/);
  });
});

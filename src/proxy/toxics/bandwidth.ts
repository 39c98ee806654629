/**
 * bandwidth: at most `rate` KB/s (1 KB = 1000 bytes, as toxiproxy). A byte stream is cut into
 * pieces of at most 100 ms worth, each sent when the link is free; a datagram is never cut, it
 * waits its whole time. 0 = no limit.
 */
import { TimedQueue } from '../stage.js';
import type { ToxicType } from '../toxic.js';

export const bandwidth: ToxicType = {
  type: 'bandwidth',
  summary: 'limit the rate to rate KB/s',
  transport: 'both',
  attributes: {
    rate: { kind: 'number', default: 0, min: 0, help: 'KB/s (1000 bytes); 0 = unlimited' },
  },
  create: (a) => (out, ctx) => {
    const bytesPerMs = (a['rate'] as number); // KB/s = bytes/ms
    const q = new TimedQueue(out, ctx);
    const piece = Math.max(1, Math.floor(bytesPerMs * 100));
    // When the link is free again: a piece of n bytes occupies it n / rate ms.
    let free = ctx.now();
    const send = (c: Buffer): void => {
      const start = Math.max(free, ctx.now());
      free = start + c.length / bytesPerMs;
      q.add(c, start);
    };
    return {
      write: (c) => {
        if (bytesPerMs <= 0) {
          q.add(c, ctx.now());
          return;
        }
        if (ctx.datagram || c.length <= piece) send(c);
        else for (let i = 0; i < c.length; i += piece) send(c.subarray(i, i + piece));
      },
      end: () => q.add(null, ctx.now()),
      get buffered() {
        return q.buffered;
      },
      flush: () => q.flush(),
      destroy: () => q.destroy(),
    };
  },
};

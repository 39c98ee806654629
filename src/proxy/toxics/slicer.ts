/**
 * slicer: every chunk is cut into pieces of `average_size` ± `size_variation` bytes (drawn
 * uniformly, at least 1), sent `delay` µs apart. Without a delay the pieces are separate writes
 * that the kernel may still join on the way; with one, each piece leaves in its own turn of the
 * event loop (Node's timers have 1 ms resolution, so a delay under 1000 µs means about 1 ms).
 * average_size 0 = no slicing.
 */
import { TimedQueue } from '../stage.js';
import type { ToxicType } from '../toxic.js';

export const slicer: ToxicType = {
  type: 'slicer',
  summary: 'cut chunks into average_size ± size_variation bytes, delay µs apart',
  transport: 'tcp',
  attributes: {
    average_size: { kind: 'number', default: 0, min: 0, integer: true, help: 'bytes; 0 = no slicing' },
    size_variation: { kind: 'number', default: 0, min: 0, integer: true, help: 'bytes' },
    delay: { kind: 'number', default: 0, min: 0, max: 3_600_000_000, help: 'µs between pieces' },
  },
  create: (a) => (out, ctx) => {
    const avg = a['average_size'] as number;
    const variation = a['size_variation'] as number;
    const delayMs = (a['delay'] as number) / 1000;
    const q = new TimedQueue(out, ctx, delayMs > 0);
    const size = (): number => Math.max(1, Math.round(avg + (variation > 0 ? (ctx.random() * 2 - 1) * variation : 0)));
    return {
      write: (c) => {
        if (avg <= 0) {
          q.add(c, ctx.now());
          return;
        }
        let at = q.buffered > 0 ? q.lastAt + delayMs : ctx.now();
        for (let i = 0; i < c.length; ) {
          const n = Math.min(size(), c.length - i);
          q.add(c.subarray(i, i + n), at);
          i += n;
          at += delayMs;
        }
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

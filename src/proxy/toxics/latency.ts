/**
 * latency: every chunk waits `latency` ms plus a jitter drawn uniformly from
 * [-`jitter`, +`jitter`] ms (the total never below 0), counted from when it arrived. Order is
 * kept: a chunk never leaves before the one ahead of it, so a large jitter makes bursts rather
 * than reordering (on UDP, use `reorder` for that). The end (FIN) waits behind the last chunk.
 */
import { TimedQueue } from '../stage.js';
import type { ToxicType } from '../toxic.js';

export const latency: ToxicType = {
  type: 'latency',
  summary: 'delay every chunk by latency ± jitter ms',
  transport: 'both',
  attributes: {
    latency: { kind: 'number', default: 0, min: 0, max: 3_600_000, help: 'ms' },
    jitter: { kind: 'number', default: 0, min: 0, max: 3_600_000, help: 'ms, uniform ±' },
  },
  create: (a) => (out, ctx) => {
    const base = a['latency'] as number;
    const jitter = a['jitter'] as number;
    const q = new TimedQueue(out, ctx);
    const delay = (): number => Math.max(0, base + (jitter > 0 ? (ctx.random() * 2 - 1) * jitter : 0));
    return {
      write: (c) => q.add(c, ctx.now() + delay()),
      end: () => q.add(null, ctx.now() + base),
      get buffered() {
        return q.buffered;
      },
      flush: () => q.flush(),
      destroy: () => q.destroy(),
    };
  },
};

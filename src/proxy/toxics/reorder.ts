/**
 * reorder (UDP): a share `rate` of datagrams is held back `delay` ms while the others pass, so
 * they arrive after datagrams sent later.
 */
import type { ToxicType } from '../toxic.js';

export const reorder: ToxicType = {
  type: 'reorder',
  summary: 'hold back a share rate of datagrams for delay ms',
  transport: 'udp',
  attributes: {
    rate: { kind: 'number', default: 0, min: 0, max: 1, help: '0.0-1.0' },
    delay: { kind: 'number', default: 10, min: 0, max: 3_600_000, help: 'ms' },
  },
  create: (a) => (out, ctx) => {
    const held = new Set<() => void>();
    let bytes = 0;
    return {
      write: (d) => {
        if (ctx.random() >= (a['rate'] as number)) {
          out.push(d);
          return;
        }
        bytes += d.length;
        const cancel = ctx.setTimer(() => {
          held.delete(cancel);
          bytes -= d.length;
          out.push(d);
        }, a['delay'] as number);
        held.add(cancel);
      },
      end: () => out.end(),
      get buffered() {
        return bytes;
      },
      destroy: () => {
        for (const c of held) c();
        held.clear();
        bytes = 0;
      },
    };
  },
};

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
    /** Held datagrams, in the order they arrived, with what cancels each one's timer. */
    const held = new Set<{ readonly d: Buffer; cancel: () => void }>();
    let bytes = 0;
    return {
      write: (d) => {
        if (ctx.random() >= (a['rate'] as number)) {
          out.push(d);
          return;
        }
        bytes += d.length;
        const entry = { d, cancel: (): void => undefined };
        entry.cancel = ctx.setTimer(() => {
          held.delete(entry);
          bytes -= d.length;
          out.push(d);
        }, a['delay'] as number);
        held.add(entry);
      },
      end: () => out.end(),
      get buffered() {
        return bytes;
      },
      flush: () => {
        const all = [...held];
        held.clear();
        bytes = 0;
        for (const e of all) {
          e.cancel();
          out.push(e.d);
        }
      },
      destroy: () => {
        for (const e of held) e.cancel();
        held.clear();
        bytes = 0;
      },
    };
  },
};

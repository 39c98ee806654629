/** duplicate (UDP): each datagram is sent twice with probability `rate`. */
import type { ToxicType } from '../toxic.js';

export const duplicate: ToxicType = {
  type: 'duplicate',
  summary: 'send datagrams twice with probability rate',
  transport: 'udp',
  attributes: { rate: { kind: 'number', default: 0, min: 0, max: 1, help: '0.0-1.0' } },
  create: (a) => (out, ctx) => ({
    write: (d) => {
      out.push(d);
      if (ctx.random() < (a['rate'] as number)) out.push(d);
    },
    end: () => out.end(),
    buffered: 0,
    destroy: () => undefined,
  }),
};

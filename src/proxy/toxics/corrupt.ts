/** corrupt (UDP): with probability `rate`, one bit of the datagram (chosen at random) is flipped (in a copy). */
import type { ToxicType } from '../toxic.js';

export const corrupt: ToxicType = {
  type: 'corrupt',
  summary: 'flip one random bit of a datagram with probability rate',
  transport: 'udp',
  attributes: { rate: { kind: 'number', default: 0, min: 0, max: 1, help: '0.0-1.0' } },
  create: (a) => (out, ctx) => ({
    write: (d) => {
      if (d.length === 0 || ctx.random() >= (a['rate'] as number)) {
        out.push(d);
        return;
      }
      const copy = Buffer.from(d);
      const bit = Math.floor(ctx.random() * d.length * 8);
      copy[bit >> 3]! ^= 1 << (bit & 7);
      out.push(copy);
    },
    end: () => out.end(),
    buffered: 0,
    destroy: () => undefined,
  }),
};

/**
 * packet_loss (UDP): each datagram is dropped with probability `loss_rate`. With `correlation`
 * c > 0, losses come in bursts: a two-state chain where, after a loss, the next datagram is
 * lost with probability p + c(1 - p), and after a delivery with p(1 - c). The long-run loss rate
 * stays p whatever c is (unlike netem's correlation, which shifts it); the mean burst length
 * is 1 / ((1 - p)(1 - c)).
 */
import type { ToxicType } from '../toxic.js';

export const packetLoss: ToxicType = {
  type: 'packet_loss',
  summary: 'drop datagrams with probability loss_rate (correlation: bursts)',
  transport: 'udp',
  attributes: {
    loss_rate: { kind: 'number', default: 0, min: 0, max: 1, help: '0.0-1.0' },
    correlation: { kind: 'number', default: 0, min: 0, max: 1, help: '0.0-1.0; higher = longer bursts' },
  },
  create: (a) => (out, ctx) => {
    const p = a['loss_rate'] as number;
    const c = a['correlation'] as number;
    let lastLost = false;
    return {
      write: (d) => {
        const chance = lastLost ? p + c * (1 - p) : p * (1 - c);
        lastLost = ctx.random() < chance;
        if (!lastLost) out.push(d);
      },
      end: () => out.end(),
      buffered: 0,
      destroy: () => undefined,
    };
  },
};

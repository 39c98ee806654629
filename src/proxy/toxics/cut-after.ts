/**
 * cut_after: the connection is cut `timeout` ms after it started, with a reset (`reset=true`,
 * the default) or a clean close (FIN both ways, `reset=false`), whatever is in flight.
 */
import type { ToxicType } from '../toxic.js';

export const cutAfter: ToxicType = {
  type: 'cut_after',
  summary: 'cut the connection after timeout ms (reset=true: RST, false: FIN)',
  transport: 'tcp',
  attributes: {
    timeout: { kind: 'number', default: 0, min: 0, max: 2_147_483_647, help: 'ms' },
    reset: { kind: 'boolean', default: true, help: 'RST (true) or FIN (false)' },
  },
  create: (a) => (out, ctx) => {
    let cancel: (() => void) | undefined;
    return {
      start: () => {
        cancel = ctx.setTimer(() => (a['reset'] === true ? out.reset() : out.close()), a['timeout'] as number);
      },
      write: (c) => out.push(c),
      end: () => out.end(),
      buffered: 0,
      destroy: () => cancel?.(),
    };
  },
};

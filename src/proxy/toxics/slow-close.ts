/** slow_close: the end (FIN) is passed on `delay` ms after it arrived; the bytes are not delayed. */
import type { ToxicType } from '../toxic.js';

export const slowClose: ToxicType = {
  type: 'slow_close',
  summary: 'delay the close (FIN) by delay ms',
  transport: 'tcp',
  attributes: { delay: { kind: 'number', default: 0, min: 0, max: 3_600_000, help: 'ms' } },
  create: (a) => (out, ctx) => {
    let cancel: (() => void) | undefined;
    return {
      write: (c) => out.push(c),
      end: () => {
        cancel = ctx.setTimer(() => {
          cancel = undefined;
          out.end();
        }, a['delay'] as number);
      },
      buffered: 0,
      flush: () => {
        if (!cancel) return;
        cancel();
        cancel = undefined;
        out.end();
      },
      destroy: () => cancel?.(),
    };
  },
};

/** reset_peer: the connection is reset (RST both ways) `timeout` ms after it started (0: at once). */
import type { ToxicType } from '../toxic.js';

export const resetPeer: ToxicType = {
  type: 'reset_peer',
  summary: 'reset the connection after timeout ms',
  transport: 'tcp',
  attributes: { timeout: { kind: 'number', default: 0, min: 0, max: 2_147_483_647, help: 'ms' } },
  create: (a) => (out, ctx) => {
    let cancel: (() => void) | undefined;
    return {
      start: () => {
        cancel = ctx.setTimer(() => out.reset(), a['timeout'] as number);
      },
      write: (c) => out.push(c),
      end: () => out.end(),
      buffered: 0,
      destroy: () => cancel?.(),
    };
  },
};

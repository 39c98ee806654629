/**
 * timeout: nothing gets through (what arrives is dropped), and the connection is closed
 * `timeout` ms after it started; 0 = never closed (data is dropped for as long as it lasts).
 */
import type { ToxicType } from '../toxic.js';

export const timeout: ToxicType = {
  type: 'timeout',
  summary: 'drop everything; close after timeout ms (0 = never)',
  transport: 'tcp',
  attributes: { timeout: { kind: 'number', default: 0, min: 0, max: 2_147_483_647, help: 'ms; 0 = never close' } },
  create: (a) => (out, ctx) => {
    let cancel: (() => void) | undefined;
    const ms = a['timeout'] as number;
    let ended = false;
    return {
      start: () => {
        if (ms > 0) cancel = ctx.setTimer(() => out.close(), ms);
      },
      write: () => undefined,
      end: () => {
        ended = true;
      },
      buffered: 0,
      // Removed: the bytes it dropped are gone (as in toxiproxy), but an end it swallowed passes.
      flush: () => {
        if (ended) out.end();
      },
      destroy: () => cancel?.(),
    };
  },
};

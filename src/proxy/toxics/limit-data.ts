/**
 * limit_data: the first `bytes` bytes pass (the chunk that crosses the limit is cut to it), then
 * the connection is closed. With 0 it is closed at the first chunk, which is dropped.
 */
import type { ToxicType } from '../toxic.js';

export const limitData: ToxicType = {
  type: 'limit_data',
  summary: 'close the connection after bytes bytes',
  transport: 'tcp',
  attributes: { bytes: { kind: 'number', default: 0, min: 0, integer: true, help: 'bytes' } },
  create: (a) => (out) => {
    let left = a['bytes'] as number;
    let closed = false;
    return {
      write: (c) => {
        if (closed) return;
        const part = c.length > left ? c.subarray(0, left) : c;
        if (part.length > 0) out.push(part);
        left -= part.length;
        if (left <= 0) {
          closed = true;
          out.close();
        }
      },
      end: () => {
        if (!closed) out.end();
      },
      buffered: 0,
      destroy: () => {
        closed = true;
      },
    };
  },
};

/**
 * `-P N` and `--range-size` for the two transfer clients (`get`, `send`): N connections share one
 * transfer, large files travel in ranges on several of them at once. The servers (`serve`,
 * `receive`) take parallel clients without an option.
 */
import { DEFAULT_RANGE_SIZE, MAX_RANGE_SIZE, MAX_STREAMS, MIN_RANGE_SIZE } from '../transfer/constants.js';
import type { OptionSpec } from './command.js';
import { count, size } from './options.js';

export const STREAM_OPTIONS = {
  parallel: count('connections that share the transfer: files larger than --range-size go in ranges on several at once, smaller ones are spread across them', {
    short: 'P',
    default: 1,
    min: 1,
    max: MAX_STREAMS,
  }),
  'range-size': size('with -P: bytes per range of a large file (the sending side splits; 64KiB to 1GiB)', {
    default: DEFAULT_RANGE_SIZE,
    min: MIN_RANGE_SIZE,
    max: MAX_RANGE_SIZE,
    needs: 'parallel',
  }),
} as const satisfies Readonly<Record<string, OptionSpec>>;

/** The library options for the parsed `-P` and `--range-size`. */
export function streamOptions(values: { readonly parallel: number; readonly 'range-size': number }): { readonly streams: number; readonly rangeSize: number } {
  return { streams: values.parallel, rangeSize: values['range-size'] };
}

/**
 * Typed option constructors for command specs. Each takes its default from the library's
 * DEFAULT_* constant (the one place a default is written), shows it in help in the unit the
 * option is typed in, and parses what the user gives into the value `run` receives.
 *
 * @example
 * ```ts
 * options: {
 *   timeout: duration('connect timeout', { default: DEFAULT_CONNECT_TIMEOUT_MS }),
 *   connections: count('connections to open', { default: 1, min: 1, max: 10_000, short: 'c' }),
 * }
 * // run({ values }) sees values.timeout: number (ms) and values.connections: number
 * ```
 */
import type { OptionSpec } from './command.js';
import { SocketkitError } from '../core/errors.js';
import { parseCount, parseDurationMs, parseSize } from './values.js';

interface Common {
  readonly short?: string;
  /** The placeholder in help, e.g. `SECONDS`. */
  readonly value?: string;
  /** The option without which this one does not apply. */
  readonly needs?: string;
}

/** A spec without `parse` (its value is the text given). */
type WithDefault<T, D> = [D] extends [T] ? OptionSpec<T> & { readonly default: T } : OptionSpec<T>;
/** A spec with `parse`: `run` sees `T` (or `T | undefined` when there is no default). */
type Typed<T> = OptionSpec<T> & { readonly parse: (option: string, text: string) => T };
type ParsedWithDefault<T, D> = [D] extends [T] ? Typed<T> & { readonly default: T } : Typed<T>;

function common(init: Common): Pick<OptionSpec, 'short' | 'needs'> {
  return { ...(init.short !== undefined ? { short: init.short } : {}), ...(init.needs !== undefined ? { needs: init.needs } : {}) };
}

/**
 * Milliseconds as people type them: `10`, `0.5`, `250ms`, `2s`, `1m`. Help shows seconds.
 * With `positive`, 0 is a usage error.
 */
export function duration<D extends number | undefined = undefined>(
  help: string,
  init: Common & { readonly default?: D; readonly positive?: boolean } = {},
): ParsedWithDefault<number, D> {
  const d = init.default;
  const positive = init.positive === true;
  return {
    type: 'string',
    value: init.value ?? 'SECONDS',
    help,
    parse: (option: string, text: string) => {
      const ms = parseDurationMs(option, text);
      if (positive && ms <= 0) throw new SocketkitError('ERR_USAGE', `--${option}: must be more than 0`);
      return ms;
    },
    ...common(init),
    ...(d !== undefined ? { default: d, show: String(d / 1000) } : {}),
  } as ParsedWithDefault<number, D>;
}

/** A byte count as help shows it: `16MiB`, `4KiB`, `64`. */
export function showSize(n: number): string {
  for (const [unit, mult] of [['GiB', 1024 ** 3], ['MiB', 1024 ** 2], ['KiB', 1024]] as const) {
    if (n >= mult && n % mult === 0) return `${n / mult}${unit}`;
  }
  return String(n);
}

/**
 * Bytes: `64`, `4k`, `4KiB`, `1M` (k, M, G and KiB, MiB, GiB are powers of 1024; KB, MB, GB
 * powers of 1000). Help shows the default as given in `show`, or as `showSize` writes it.
 * Below `min` (or above `max`) is a usage error naming the bound.
 */
export function size<D extends number | undefined = undefined>(
  help: string,
  init: Common & { readonly default?: D; readonly show?: string; readonly min?: number; readonly max?: number } = {},
): ParsedWithDefault<number, D> {
  const d = init.default;
  const { min, max } = init;
  return {
    type: 'string',
    value: init.value ?? 'BYTES',
    help,
    parse: (option: string, text: string) => {
      const n = parseSize(option, text);
      if (min !== undefined && n < min) throw new SocketkitError('ERR_USAGE', `--${option}: '${text}' is less than the smallest, ${min} byte${min === 1 ? '' : 's'}`);
      if (max !== undefined && n > max) throw new SocketkitError('ERR_USAGE', `--${option}: '${text}' is more than the largest, ${showSize(max)} (${max} bytes)`);
      return n;
    },
    ...common(init),
    ...(d !== undefined ? { default: d, show: init.show ?? showSize(d) } : {}),
  } as ParsedWithDefault<number, D>;
}

/** A whole number in [min, max]. */
export function count<D extends number | undefined = undefined>(
  help: string,
  init: Common & { readonly default?: D; readonly min?: number; readonly max?: number } = {},
): ParsedWithDefault<number, D> {
  const d = init.default;
  const min = init.min ?? 1;
  const max = init.max ?? Number.MAX_SAFE_INTEGER;
  return {
    type: 'string',
    value: init.value ?? 'N',
    help,
    parse: (option: string, text: string) => parseCount(option, text, min, max),
    ...common(init),
    ...(d !== undefined ? { default: d } : {}),
  } as ParsedWithDefault<number, D>;
}

/** Free text (an address, a path, a name). */
export function text<D extends string | undefined = undefined>(help: string, init: Common & { readonly default?: D } = {}): WithDefault<string, D> {
  const d = init.default;
  return {
    type: 'string',
    value: init.value ?? 'VALUE',
    help,
    ...common(init),
    ...(d !== undefined ? { default: d } : {}),
  } as WithDefault<string, D>;
}

/** Text turned into a typed value by `parse` (which throws ERR_USAGE naming the option). */
export function custom<T, D extends T | undefined = undefined>(
  help: string,
  parse: (option: string, text: string) => T,
  init: Common & { readonly default?: D; readonly show?: string } = {},
): ParsedWithDefault<T, D> {
  const d = init.default;
  return {
    type: 'string',
    value: init.value ?? 'VALUE',
    help,
    parse,
    ...common(init),
    ...(d !== undefined ? { default: d, ...(init.show !== undefined ? { show: init.show } : {}) } : {}),
  } as ParsedWithDefault<T, D>;
}

/** Repeatable free text (`--allow A --allow B`). */
export function list(help: string, init: Common = {}): OptionSpec<string[]> & { readonly multiple: true } {
  return { type: 'string', multiple: true, value: init.value ?? 'VALUE', help, ...common(init) };
}

/** An on/off switch. */
export function toggle(help: string, init: Pick<Common, 'short' | 'needs'> = {}): OptionSpec<boolean> & { readonly type: 'boolean' } {
  return { type: 'boolean', help, ...common(init) };
}

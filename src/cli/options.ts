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
import { parseCount, parseDurationMs, parseSize } from './values.js';

interface Common {
  readonly short?: string;
  /** The placeholder in help, e.g. `SECONDS`. */
  readonly value?: string;
  /** The option without which this one does not apply. */
  readonly needs?: string;
}

type WithDefault<T, D> = D extends T ? OptionSpec<T> & { readonly default: T } : OptionSpec<T>;

function common(init: Common): Pick<OptionSpec, 'short' | 'needs'> {
  return { ...(init.short !== undefined ? { short: init.short } : {}), ...(init.needs !== undefined ? { needs: init.needs } : {}) };
}

/** Milliseconds as people type them: `10`, `0.5`, `250ms`, `2s`, `1m`. Help shows seconds. */
export function duration<D extends number | undefined = undefined>(help: string, init: Common & { readonly default?: D } = {}): WithDefault<number, D> {
  const d = init.default;
  return {
    type: 'string',
    value: init.value ?? 'SECONDS',
    help,
    parse: parseDurationMs,
    ...common(init),
    ...(d !== undefined ? { default: d, show: String(d / 1000) } : {}),
  } as WithDefault<number, D>;
}

/** Bytes: `64`, `4k`, `4KiB`, `1M`. Help shows the default as given in `show`, or in bytes. */
export function size<D extends number | undefined = undefined>(
  help: string,
  init: Common & { readonly default?: D; readonly show?: string; readonly min?: number } = {},
): WithDefault<number, D> {
  const d = init.default;
  const min = init.min;
  return {
    type: 'string',
    value: init.value ?? 'BYTES',
    help,
    parse: (option: string, text: string) => {
      const n = parseSize(option, text);
      if (min !== undefined && n < min) return parseCount(option, String(n), min);
      return n;
    },
    ...common(init),
    ...(d !== undefined ? { default: d, show: init.show ?? String(d) } : {}),
  } as WithDefault<number, D>;
}

/** A whole number in [min, max]. */
export function count<D extends number | undefined = undefined>(
  help: string,
  init: Common & { readonly default?: D; readonly min?: number; readonly max?: number } = {},
): WithDefault<number, D> {
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
  } as WithDefault<number, D>;
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

/** Repeatable free text (`--allow A --allow B`). */
export function list(help: string, init: Common = {}): OptionSpec<string[]> & { readonly multiple: true } {
  return { type: 'string', multiple: true, value: init.value ?? 'VALUE', help, ...common(init) };
}

/** An on/off switch. */
export function toggle(help: string, init: Pick<Common, 'short' | 'needs'> = {}): OptionSpec<boolean> & { readonly type: 'boolean' } {
  return { type: 'boolean', help, ...common(init) };
}

/**
 * A small declarative command layer over Node's `util.parseArgs`.
 *
 * A command declares its options and positionals and a `run` that receives parsed values; the
 * work lives in the library, so commands stay thin. Usage errors are SocketkitErrors with code
 * ERR_USAGE, printed as one line followed by the command's usage.
 */
import { parseArgs } from 'node:util';
import type { Writable } from 'node:stream';
import { SocketkitError } from '../core/errors.js';

export interface OptionSpec<T = unknown> {
  readonly type: 'string' | 'boolean';
  readonly short?: string;
  readonly multiple?: boolean;
  /** Shown in help after the option name, e.g. `SECONDS`. */
  readonly value?: string;
  readonly help: string;
  /**
   * The value when the option is not given: typed like `parse`'s result (a string for options
   * without `parse`). Constructors in `options.ts` take it from the library's DEFAULT_* constants,
   * so each default is written once.
   */
  readonly default?: T;
  /** How help shows the default (default: `String(default)`). */
  readonly show?: string;
  /** Turns the text given on the command line into the typed value; throws ERR_USAGE naming the option. */
  readonly parse?: (option: string, text: string) => T;
  /** Another option without which this one does not apply: giving it alone is a usage error. */
  readonly needs?: string;
}

/** The typed value of one option, from its spec. */
export type OptionValue<S> = S extends { readonly type: 'boolean' }
  ? boolean
  : S extends { readonly multiple: true }
    ? S extends { readonly parse: (option: string, text: string) => infer T }
      ? T[]
      : string[]
    : S extends { readonly parse: (option: string, text: string) => infer T }
      ? S extends { readonly default: unknown }
        ? T
        : T | undefined
      : S extends { readonly default: string }
        ? string
        : string | undefined;

/** The typed values of a command's options. */
export type OptionValues<O> = { readonly [K in keyof O]: OptionValue<O[K]> };

/** Where a command writes; tests pass their own streams to run commands in-process. */
export interface CommandIO {
  readonly stdout: Writable & { isTTY?: boolean };
  readonly stderr: Writable & { isTTY?: boolean };
  readonly stdin: NodeJS.ReadableStream & { isTTY?: boolean };
  /** Receives SIGINT/SIGTERM-style stop requests (aborted once per stop request). */
  readonly shutdown: AbortSignal;
}

export interface CommandContext<V> {
  readonly values: V;
  /** The options given on the command line (a default that was filled in is not "given"). */
  readonly given: ReadonlySet<string>;
  readonly positionals: readonly string[];
  readonly io: CommandIO;
  readonly global: GlobalFlags;
}

export interface GlobalFlags {
  readonly json: boolean;
  readonly quiet: boolean;
  readonly debug: boolean;
}

export interface Command {
  readonly name: string;
  readonly summary: string;
  /** e.g. `[ADDR]` or `ADDR [MESSAGE]` */
  readonly args: string;
  readonly description?: string;
  readonly examples?: readonly string[];
  readonly options: Readonly<Record<string, OptionSpec>>;
  readonly positionals: { readonly min: number; readonly max: number };
  run(ctx: CommandContext<Record<string, string | boolean | string[] | undefined>>): Promise<number>;
}

/** A command whose `run` sees its options typed from their specs. */
export interface CommandDefinition<O extends Readonly<Record<string, OptionSpec>>> extends Omit<Command, 'options' | 'run'> {
  readonly options: O;
  run(ctx: CommandContext<OptionValues<O>>): Promise<number>;
}

/**
 * Declares a command with typed option values: `values.timeout` is the number of milliseconds
 * that `options.duration(...)` parsed, never a string to parse again.
 */
export function defineCommand<const O extends Readonly<Record<string, OptionSpec>>>(def: CommandDefinition<O>): Command {
  return def;
}

/** Options every command takes. */
export const GLOBAL_OPTIONS: Readonly<Record<string, OptionSpec>> = {
  json: { type: 'boolean', help: 'machine-readable output: NDJSON events and a JSON summary on stdout' },
  quiet: { type: 'boolean', short: 'q', help: 'print nothing but errors' },
  debug: { type: 'boolean', help: 'print stack traces for errors' },
  help: { type: 'boolean', short: 'h', help: 'show this help' },
};

/** A typed default as help shows it. */
function showDefault(v: unknown): string {
  return typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' ? String(v) : JSON.stringify(v);
}

/** Renders a command's help text. */
export function commandHelp(cmd: Command): string {
  const lines = [`Usage: socketkit ${cmd.name}${cmd.args ? ` ${cmd.args}` : ''} [options]`, '', cmd.summary];
  if (cmd.description) lines.push('', cmd.description);
  lines.push('', 'Options:');
  const all = { ...cmd.options, ...GLOBAL_OPTIONS };
  const rows = Object.entries(all).map(([name, o]) => {
    const flag = `${o.short ? `-${o.short}, ` : '    '}--${name}${o.type === 'string' ? ` ${o.value ?? 'VALUE'}` : ''}`;
    const shown = o.show ?? (o.default !== undefined && o.default !== false ? showDefault(o.default) : undefined);
    const def = shown !== undefined ? ` (default ${shown})` : '';
    return [flag, `${o.help}${def}${o.multiple ? ' (repeatable)' : ''}`] as const;
  });
  const width = Math.max(...rows.map(([f]) => f.length));
  for (const [f, h] of rows) lines.push(`  ${f.padEnd(width)}  ${h}`);
  if (cmd.examples?.length) {
    lines.push('', 'Examples:');
    for (const e of cmd.examples) lines.push(`  ${e}`);
  }
  return `${lines.join('\n')}\n`;
}

export interface Parsed {
  readonly values: Record<string, unknown>;
  readonly given: ReadonlySet<string>;
  readonly positionals: string[];
  readonly global: GlobalFlags;
  readonly help: boolean;
}

/** Parses argv for `cmd`; unknown options and wrong positional counts are ERR_USAGE. */
export function parseCommandArgs(cmd: Command, argv: readonly string[]): Parsed {
  const all = { ...cmd.options, ...GLOBAL_OPTIONS };
  const config: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = {};
  for (const [name, o] of Object.entries(all)) {
    config[name] = { type: o.type, ...(o.short ? { short: o.short } : {}), ...(o.multiple ? { multiple: true } : {}) };
  }
  let parsed;
  try {
    parsed = parseArgs({ args: joinNegativeValues(argv, all), options: config, allowPositionals: true, strict: true });
  } catch (err) {
    const msg = err instanceof Error ? err.message.split('\n')[0]! : String(err);
    throw new SocketkitError('ERR_USAGE', msg.replace(/\. To specify a positional argument.*$/, ''));
  }
  const raw = parsed.values as Record<string, string | boolean | string[] | undefined>;
  const help = raw['help'] === true;
  const global: GlobalFlags = { json: raw['json'] === true, quiet: raw['quiet'] === true, debug: raw['debug'] === true };
  const given = new Set(Object.keys(raw).filter((k) => raw[k] !== undefined));
  const values: Record<string, unknown> = { ...raw };
  if (!help) {
    for (const [name, o] of Object.entries(cmd.options)) {
      const v = raw[name];
      if (v === undefined) {
        if (o.default !== undefined) values[name] = o.default;
        // A repeatable option given no times is an empty list, as its type says.
        else if (o.multiple === true) values[name] = [];
        continue;
      }
      if (o.needs !== undefined && !given.has(o.needs)) {
        throw new SocketkitError('ERR_USAGE', `--${name} applies only with --${o.needs}`);
      }
      const parse = o.parse;
      if (parse) values[name] = Array.isArray(v) ? v.map((t) => parse(name, t)) : typeof v === 'string' ? parse(name, v) : v;
    }
  }
  const n = parsed.positionals.length;
  if (!help && n < cmd.positionals.min) {
    throw new SocketkitError('ERR_USAGE', `${cmd.name}: missing argument (expected ${cmd.args})`);
  }
  if (!help && n > cmd.positionals.max) {
    throw new SocketkitError('ERR_USAGE', `${cmd.name}: unexpected argument '${parsed.positionals[cmd.positionals.max]}'`);
  }
  return { values, given, positionals: parsed.positionals, global, help };
}

/**
 * parseArgs takes `-c -5` for two options and calls it ambiguous; a string option followed by
 * something that reads as a negative number gets it as its value, so the option's own check can
 * say what range it takes.
 */
function joinNegativeValues(argv: readonly string[], all: Readonly<Record<string, OptionSpec>>): string[] {
  const takesValue = new Set<string>();
  for (const [name, o] of Object.entries(all)) {
    if (o.type !== 'string') continue;
    takesValue.add(`--${name}`);
    if (o.short) takesValue.add(`-${o.short}`);
  }
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      out.push(...argv.slice(i));
      break;
    }
    const next = argv[i + 1];
    if (takesValue.has(a) && next !== undefined && /^-\d|^-\.\d/.test(next)) {
      out.push(a.startsWith('--') ? `${a}=${next}` : `${a}${next}`);
      i++;
    } else out.push(a);
  }
  return out;
}

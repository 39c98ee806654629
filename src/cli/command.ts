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

export interface OptionSpec {
  readonly type: 'string' | 'boolean';
  readonly short?: string;
  readonly multiple?: boolean;
  /** Shown in help after the option name, e.g. `SECONDS`. */
  readonly value?: string;
  readonly help: string;
  /** A default, shown in help. */
  readonly default?: string | boolean;
}

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

/** Options every command takes. */
export const GLOBAL_OPTIONS: Readonly<Record<string, OptionSpec>> = {
  json: { type: 'boolean', help: 'machine-readable output: NDJSON events and a JSON summary on stdout' },
  quiet: { type: 'boolean', short: 'q', help: 'print nothing but errors' },
  debug: { type: 'boolean', help: 'print stack traces for errors' },
  help: { type: 'boolean', short: 'h', help: 'show this help' },
};

/** Renders a command's help text. */
export function commandHelp(cmd: Command): string {
  const lines = [`Usage: socketkit ${cmd.name}${cmd.args ? ` ${cmd.args}` : ''} [options]`, '', cmd.summary];
  if (cmd.description) lines.push('', cmd.description);
  lines.push('', 'Options:');
  const all = { ...cmd.options, ...GLOBAL_OPTIONS };
  const rows = Object.entries(all).map(([name, o]) => {
    const flag = `${o.short ? `-${o.short}, ` : '    '}--${name}${o.type === 'string' ? ` ${o.value ?? 'VALUE'}` : ''}`;
    const def = o.default !== undefined && o.default !== false ? ` (default ${String(o.default)})` : '';
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
  readonly values: Record<string, string | boolean | string[] | undefined>;
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
    parsed = parseArgs({ args: [...argv], options: config, allowPositionals: true, strict: true });
  } catch (err) {
    const msg = err instanceof Error ? err.message.split('\n')[0]! : String(err);
    throw new SocketkitError('ERR_USAGE', msg.replace(/\. To specify a positional argument.*$/, ''));
  }
  const values = parsed.values as Record<string, string | boolean | string[] | undefined>;
  const help = values['help'] === true;
  const global: GlobalFlags = { json: values['json'] === true, quiet: values['quiet'] === true, debug: values['debug'] === true };
  for (const [name, o] of Object.entries(cmd.options)) {
    if (values[name] === undefined && o.default !== undefined) values[name] = o.default;
  }
  const n = parsed.positionals.length;
  if (!help && n < cmd.positionals.min) {
    throw new SocketkitError('ERR_USAGE', `${cmd.name}: missing argument (expected ${cmd.args})`);
  }
  if (!help && n > cmd.positionals.max) {
    throw new SocketkitError('ERR_USAGE', `${cmd.name}: unexpected argument '${parsed.positionals[cmd.positionals.max]}'`);
  }
  return { values, positionals: parsed.positionals, global, help };
}

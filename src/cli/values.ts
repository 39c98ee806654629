/**
 * Parsers for option values (durations, sizes, counts). Each throws ERR_USAGE naming the option.
 */
import { SocketkitError } from '../core/errors.js';
import { ENGINE_NAMES, type EngineName } from '../native/engine-choice.js';

function usage(option: string, text: string, what: string): SocketkitError {
  return new SocketkitError('ERR_USAGE', `--${option}: '${text}' is not ${what}`);
}

/** The longest delay Node's timers honour, in milliseconds. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Seconds as a number (`1`, `0.5`, `250ms`, `2s`, `1m`) → milliseconds. */
export function parseDurationMs(option: string, text: string): number {
  const m = /^(\d+(?:\.\d+)?|\.\d+)(ms|s|m)?$/.exec(text.trim());
  if (!m) throw usage(option, text, 'a duration (seconds, or with ms/s/m)');
  const n = Number(m[1]);
  const unit = m[2] ?? 's';
  const ms = Math.round(unit === 'ms' ? n : unit === 'm' ? n * 60_000 : n * 1000);
  // Node's timers fire after 1 ms when asked for more than 2^31-1 ms (about 24.8 days).
  if (ms > MAX_TIMER_MS) throw usage(option, text, 'a duration up to 24 days');
  return ms;
}

const SIZE_UNITS: Record<string, number> = {
  '': 1, b: 1, k: 1024, kb: 1000, kib: 1024, m: 1024 ** 2, mb: 1000 ** 2, mib: 1024 ** 2, g: 1024 ** 3, gb: 1000 ** 3, gib: 1024 ** 3,
};

/**
 * A byte size (`64`, `4k`, `4KiB`, `1M`, `2GiB`). k, M, G and KiB, MiB, GiB are powers of 1024
 * (4k = 4KiB = 4,096 bytes); KB, MB, GB are powers of 1000 (4KB = 4,000 bytes), as in SI.
 */
export function parseSize(option: string, text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(text.trim());
  const mult = m ? SIZE_UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || mult === undefined) throw usage(option, text, 'a size (bytes, or with k, M, G, KiB, MiB, GiB: powers of 1024; KB, MB, GB: powers of 1000)');
  const n = Math.round(Number(m[1]) * mult);
  if (!Number.isSafeInteger(n)) throw usage(option, text, 'a size socketkit can handle');
  return n;
}

/** A whole number within [min, max]. */
export function parseCount(option: string, text: string, min = 1, max = Number.MAX_SAFE_INTEGER): number {
  if (!/^\d+$/.test(text.trim())) throw usage(option, text, `a whole number from ${min}`);
  const n = Number(text);
  if (n < min || n > max) throw usage(option, text, `a whole number from ${min} to ${max}`);
  return n;
}

/**
 * Reads a string option of a command whose options are not typed from their specs yet (commands
 * declared with `defineCommand` get typed values and need none of this).
 */
export function str(values: Readonly<Record<string, unknown>>, name: string): string | undefined {
  const v = values[name];
  return typeof v === 'string' ? v : undefined;
}

/** Reads a boolean option of a command whose options are not typed yet. */
export function flag(values: Readonly<Record<string, unknown>>, name: string): boolean {
  return values[name] === true;
}

/** `--engine native|js`. */
export function parseEngineName(option: string, text: string): EngineName {
  const name = ENGINE_NAMES.find((n) => n === text);
  if (name === undefined) throw usage(option, text, `an engine (${ENGINE_NAMES.join(' or ')})`);
  return name;
}

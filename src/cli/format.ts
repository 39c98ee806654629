/**
 * How the CLI writes numbers for people, in one place, so every command says the same thing the
 * same way: counts with thousands separators (`351,632`), sizes in binary units that fit
 * (`1.18 MiB`), rates in decimal units that fit (`870 MB/s`, never `0.00 GB/s`), latencies in
 * milliseconds (`0.083 ms`) and elapsed times in seconds, minutes and hours (`1.53 s`, `2 min 05 s`).
 *
 * Each keeps about three significant digits, and a value that rounds up to the next unit is shown
 * in it (`1.00 MiB`, not `1024 KiB`). Whatever is not a finite number (or, for magnitudes, is
 * negative) is shown as `-`: nothing was measured.
 *
 * @example
 * ```ts
 * formatCount(351632);      // '351,632'
 * formatBytes(1234567);     // '1.18 MiB'
 * formatRate(1.93e9);       // '1.93 GB/s'
 * formatRate(812);          // '812 B/s'
 * formatMs(0.0834);         // '0.083 ms'
 * formatDuration(125_000);  // '2 min 05 s'
 * ```
 */

const NOTHING = '-';

/** About three significant digits: 1.23, 12.3, 123 (and 1,234 in a largest unit). */
function digits(v: number): string {
  if (v >= 999.5) return Math.round(v).toLocaleString('en-US');
  return v.toFixed(v >= 99.95 ? 0 : v >= 9.995 ? 1 : 2);
}

/**
 * `v` in the first of `units` (each `base` times the one before) where it shows with at most
 * three digits; the smallest unit shows whole numbers (`1,000 B`: bytes are exact).
 */
function scaled(v: number, base: number, units: readonly string[]): string {
  if (Math.round(v) < base) return `${Math.round(v).toLocaleString('en-US')} ${units[0]}`;
  let i = 0;
  // Past the smallest unit, 999.5 and up would show as 1000 (or 1,0xx): the next unit fits better.
  while (i < units.length - 1 && (i === 0 ? Math.round(v) >= base : v >= 999.5)) {
    v /= base;
    i++;
  }
  return `${digits(v)} ${units[i]}`;
}

/** A count of things, rounded, with thousands separators: 1112 → `1,112`. */
export function formatCount(n: number): string {
  if (!Number.isFinite(n)) return NOTHING;
  // `-0` would print as `-0`.
  return (Math.round(n) || 0).toLocaleString('en-US');
}

/** `1 file`, `3 files`, `1,112 connections`: a count and its noun, plural when it is not 1. */
export function formatCounted(n: number, one: string, many = `${one}s`): string {
  return `${formatCount(n)} ${Math.round(n) === 1 ? one : many}`;
}

const BYTE_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'] as const;

/** Bytes in binary units that fit: `0 B`, `1,000 B`, `1.00 KiB`, `12.3 MiB`, `1.18 GiB`. */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n) || n < 0) return NOTHING;
  return scaled(n, 1024, BYTE_UNITS);
}

const RATE_UNITS = ['B/s', 'kB/s', 'MB/s', 'GB/s', 'TB/s'] as const;

/**
 * Bytes per second in decimal units that fit, as network speeds are written: `0 B/s`, `812 B/s`,
 * `1.20 kB/s`, `870 MB/s`, `1.93 GB/s`.
 */
export function formatRate(bytesPerSecond: number): string {
  if (!Number.isFinite(bytesPerSecond) || bytesPerSecond < 0) return `${NOTHING} B/s`;
  return scaled(bytesPerSecond, 1000, RATE_UNITS);
}

/** `bytes` moved in `seconds`, as a rate; `- B/s` when no time passed (nothing to divide by). */
export function formatThroughput(bytes: number, seconds: number): string {
  return seconds > 0 ? formatRate(bytes / seconds) : formatRate(Number.NaN);
}

/** Things per second: `351,632/s`, `0.5/s` (a rate below 10 keeps one decimal). */
export function formatPerSecond(n: number): string {
  if (!Number.isFinite(n) || n < 0) return `${NOTHING}/s`;
  return `${n > 0 && n < 10 && !Number.isInteger(n) ? String(Math.round(n * 10) / 10) : formatCount(n)}/s`;
}

/** A latency, milliseconds with sensible precision: `0.083 ms`, `12.4 ms`, `1,534 ms`. */
export function formatMs(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return NOTHING;
  return `${ms < 1 ? ms.toFixed(3) : ms < 100 ? ms.toFixed(1) : Math.round(ms).toLocaleString('en-US')} ms`;
}

/**
 * An elapsed time, from milliseconds: `0 s`, `0.004 s`, `1.53 s`, `12.3 s`, `2 min 05 s`,
 * `1 h 02 min`.
 */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return NOTHING;
  const s = ms / 1000;
  if (s === 0) return '0 s';
  // Below a minute, three significant digits (with at least one decimal, so 0.004 s is not 0 s).
  if (s < 59.95) return `${s < 0.01 ? s.toFixed(3) : s < 10 ? s.toFixed(2) : s.toFixed(1)} s`;
  const whole = Math.round(s);
  if (whole < 3600) return `${Math.floor(whole / 60)} min ${String(whole % 60).padStart(2, '0')} s`;
  const minutes = Math.round(s / 60);
  return `${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, '0')} min`;
}

/** A share as a percentage with one decimal: `0.0%`, `12.5%`, `100.0%`. */
export function formatPercent(fraction: number): string {
  if (!Number.isFinite(fraction)) return NOTHING;
  return `${(fraction * 100).toFixed(1)}%`;
}

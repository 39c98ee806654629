/**
 * Text from a peer (file names, error messages, labels) made safe for a terminal: the one
 * function every peer-controlled string passes through where it is rendered.
 *
 * A terminal acts on more than printable text: C0 controls (ESC starts a sequence that can
 * retitle the window, move the cursor, clear the screen; BEL, BS and CR rewrite what is shown),
 * DEL, and the C1 controls U+0080-U+009F (U+009B is a one-character CSI for terminals that honour
 * 8-bit controls). Unicode adds characters that reorder or break what the eye sees: the line and
 * paragraph separators U+2028/U+2029 and the bidirectional overrides and isolates U+202A-U+202E,
 * U+2066-U+2069 (a name can be made to display reversed: "Trojan Source"), and the marks
 * U+200E/U+200F/U+061C. Each of these becomes `?`.
 */
import stringWidth from 'string-width';

/** Every code point {@link neutralise} replaces. */
// eslint-disable-next-line no-control-regex
export const TERMINAL_UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/** True when `text` holds a code point a terminal could act on (see {@link TERMINAL_UNSAFE}). */
export function hasTerminalUnsafe(text: string): boolean {
  TERMINAL_UNSAFE.lastIndex = 0;
  const found = TERMINAL_UNSAFE.test(text);
  TERMINAL_UNSAFE.lastIndex = 0;
  return found;
}

/**
 * Makes `text` safe to write to a terminal: every code point of {@link TERMINAL_UNSAFE} becomes
 * `?`, and, when `max` is given, the result is cut to `max` characters (ending in `…`).
 */
export function neutralise(text: string, max?: number): string {
  const safe = text.replace(TERMINAL_UNSAFE, '?');
  return max !== undefined && safe.length > max ? `${safe.slice(0, Math.max(0, max - 1))}…` : safe;
}

/** Columns `text` takes on a terminal (wide characters count two, combining marks none). */
export function displayWidth(text: string): number {
  return stringWidth(text);
}

/**
 * Shortens `text` to at most `width` columns, keeping its end (a file name's distinctive part)
 * and marking the cut with `…`; then pads it with spaces to exactly `width` columns if `pad`.
 */
export function fitColumns(text: string, width: number, pad = false): string {
  let out = text;
  let w = displayWidth(out);
  if (w > width) {
    const chars = Array.from(out);
    // Drop leading characters until the rest and the ellipsis fit.
    let start = 0;
    const room = Math.max(0, width - 1);
    while (start < chars.length && w > room) {
      w -= displayWidth(chars[start]!);
      start++;
    }
    out = width >= 1 ? `…${chars.slice(start).join('')}` : '';
    w = displayWidth(out);
  }
  return pad && w < width ? out + ' '.repeat(width - w) : out;
}

/**
 * A JSON line made safe for a terminal without changing what it means: the code points JSON
 * leaves raw but a terminal acts on (DEL, C1, separators, bidi controls) become `\uXXXX` escapes.
 * (JSON.stringify already escapes U+0000-U+001F.)
 */
export function escapeJsonLine(json: string): string {
  return json.replace(TERMINAL_UNSAFE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

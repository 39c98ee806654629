/**
 * How commands talk to people and to machines.
 *
 * Text mode: events are human lines on stderr (silenced by -q), results on stdout.
 * JSON mode (--json): one JSON object per line on stdout, each with `event` and `ts`.
 *
 * Whatever is written passes through `core/terminal-text.ts` here, at the point of rendering:
 * text lines are neutralised line by line (a peer's file name or message cannot move the cursor
 * or retitle the window), JSON lines have the code points JSON leaves raw escaped (same value).
 */
import type { CommandIO, GlobalFlags } from './command.js';
import { escapeJsonLine, neutralise } from '../core/terminal-text.js';

/** Text for a terminal: each line neutralised (see `core/terminal-text.ts`), the line breaks kept. */
export function terminalLines(text: string): string {
  return text.split('\n').map((l) => neutralise(l)).join('\n');
}

export interface Reporter {
  /** A log line for people (stderr); dropped in quiet and JSON modes. */
  log(text: string): void;
  /** A structured event: NDJSON in JSON mode, else `text` (if given) as a log line. */
  event(name: string, fields: Record<string, unknown>, text?: string): void;
  /** The final result: JSON object in JSON mode, else `text` on stdout (unless quiet). */
  result(name: string, fields: Record<string, unknown>, text: string): void;
  readonly json: boolean;
  readonly quiet: boolean;
  /** True when stderr is a terminal (live progress is worth drawing). */
  readonly tty: boolean;
}

/** Writes one NDJSON event line (`event`, `ts`, then `fields`) to stdout. */
export function jsonLine(io: Pick<CommandIO, 'stdout'>, event: string, fields: Record<string, unknown>): void {
  io.stdout.write(`${escapeJsonLine(JSON.stringify({ event, ts: new Date().toISOString(), ...fields }))}\n`);
}

export function createReporter(io: CommandIO, global: GlobalFlags): Reporter {
  const line = (event: string, fields: Record<string, unknown>): void => jsonLine(io, event, fields);
  return {
    json: global.json,
    quiet: global.quiet,
    tty: io.stderr.isTTY === true && !global.quiet && !global.json,
    log(text) {
      if (!global.quiet && !global.json) io.stderr.write(`${terminalLines(text)}\n`);
    },
    event(name, fields, text) {
      if (global.json) line(name, fields);
      else if (text !== undefined && !global.quiet) io.stderr.write(`${terminalLines(text)}\n`);
    },
    result(name, fields, text) {
      if (global.json) line(name, fields);
      else if (!global.quiet) io.stdout.write(`${terminalLines(text)}\n`);
    },
  };
}

// The number formats live in format.ts; these two stay importable from here for older callers.
export { formatBytes, formatMs } from './format.js';

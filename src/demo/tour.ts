/**
 * The tour behind `npm start` / `socketkit demo`: every system, started on loopback on free
 * ports, exercised by its own client, with a short readable report. Each system contributes
 * one step module; a failing step is reported and makes the tour exit non-zero.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { echoStep } from './echo.js';
import { udpStep } from './udp.js';
import { loadStep } from './load.js';
import { securityStep } from './security.js';
import { transferStep } from './transfer.js';
import { proxyStep } from './proxy.js';

/** What a step gets: somewhere to write lines and a private temporary folder. */
export interface TourContext {
  /** Writes one indented report line. */
  readonly say: (line: string) => void;
  /**
   * Writes one line of a two-column table: `label` (an address, or '' to continue the row above)
   * in a column of its own, `text` beside it. A label too long for the column gets a line of its
   * own, so the text column stays straight whatever the address (a Unix socket's path).
   */
  readonly row: (label: string, text: string) => void;
  /** A temporary folder, removed after the tour. */
  readonly tmp: string;
  /** Whether ::1 is usable on this machine. */
  readonly ipv6: boolean;
  /** Aborted when the tour is to stop (Ctrl-C): a step passes it to what may take a while. */
  readonly signal: AbortSignal;
}

export interface TourStep {
  readonly title: string;
  run(ctx: TourContext): Promise<void>;
}

export const STEPS: readonly TourStep[] = [echoStep, udpStep, loadStep, securityStep, transferStep, proxyStep];

export interface TourResult {
  readonly passed: number;
  readonly failed: number;
  /** The tour was stopped by `signal` before every step had run. */
  readonly stopped: boolean;
}

/**
 * Runs every step in order and writes the report with `write`. Aborting `signal` stops the tour:
 * the step under way is abandoned as soon as it notices (its servers closed), no further step
 * starts, and the report says how far it got.
 */
export async function runTour(write: (text: string) => void, steps: readonly TourStep[] = STEPS, signal: AbortSignal = new AbortController().signal): Promise<TourResult> {
  const tmp = await mkdtemp(join(tmpdir(), 'socketkit-tour-'));
  const ipv6 = await hasIPv6();
  let passed = 0;
  let failed = 0;
  try {
    for (const [i, step] of steps.entries()) {
      if (signal.aborted) break;
      write(`\n${i + 1}. ${step.title}\n`);
      const t0 = performance.now();
      try {
        const say = (line: string): void => write(`   ${line}\n`);
        await step.run({ say, row: (label, text) => tableRow(say, label, text), tmp, ipv6, signal });
        if (signal.aborted) break;
        passed++;
        write(`   ok (${Math.round(performance.now() - t0)} ms)\n`);
      } catch (err) {
        if (signal.aborted) break;
        failed++;
        const e = err as { message?: string; code?: string };
        write(`   FAILED: ${e.message ?? String(err)}${e.code ? ` (${e.code})` : ''}\n`);
      }
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  const stopped = signal.aborted && passed + failed < steps.length;
  const how = stopped ? `; stopped (${typeof signal.reason === 'string' ? signal.reason : 'aborted'}) before the other ${steps.length - passed - failed}` : '';
  write(`\n${passed} of ${steps.length} systems passed${failed ? `, ${failed} failed` : ''}${how}.\n`);
  return { passed, failed, stopped };
}

/** Width of the tour's label column. */
export const LABEL_COLUMN = 28;

function tableRow(say: (line: string) => void, label: string, text: string): void {
  if (label.length >= LABEL_COLUMN) {
    say(label);
    label = '';
  }
  say(`${label.padEnd(LABEL_COLUMN)} ${text}`);
}

async function hasIPv6(): Promise<boolean> {
  const { createServer } = await import('node:net');
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen({ host: '::1', port: 0 }, () => s.close(() => resolve(true)));
  });
}

/** `socketkit report FILE...`: HdrHistogram interval logs (and transfer NDJSON) merged, summarised, drawn. */
import { writeFile } from 'node:fs/promises';
import { defineCommand } from '../command.js';
import { SocketkitError, toSocketkitError } from '../../core/errors.js';
import { createReporter, formatBytes, formatMs } from '../report.js';
import { custom, text } from '../options.js';
import { UNITS_PER_MS, mergeLogs, readReportInputs, renderHtmlReport, summarizeRun, type LogUnit, type RunSummary, type TransferLog } from '../../report/index.js';

function parseUnit(option: string, given: string): LogUnit {
  if (given in UNITS_PER_MS) return given as LogUnit;
  throw new SocketkitError('ERR_USAGE', `--${option}: '${given}' is not one of ${Object.keys(UNITS_PER_MS).join(', ')}`);
}

/** The unit socketkit's own logs are written in. */
const DEFAULT_UNIT: LogUnit = 'us';
const DEFAULT_TITLE = 'socketkit report';

const grouped = (n: number): string => Math.round(n).toLocaleString('en-US');
const round3 = (x: number): number => Math.round(x * 1000) / 1000;

/** The lines `load` prints for its round trips, errors and latency, for one run. */
function runText(s: RunSummary, heading: string): string {
  const l = s.latency;
  const codes = Object.entries(s.errorCodes).map(([c, n]) => `${c} ${n}`).join(', ');
  return [
    `${heading}${s.sources.join(', ')}: ${s.seconds.toFixed(2)} s from ${s.startTime}`,
    `  round trips  ${grouped(s.roundTrips)}  (${grouped(s.roundTripsPerSecond)}/s)`,
    `  errors       ${s.errors}${codes ? `  (${codes})` : ''}`,
    `  latency      p50 ${formatMs(l.p50)}  p90 ${formatMs(l.p90)}  p99 ${formatMs(l.p99)}  p99.9 ${formatMs(l.p999)}  max ${formatMs(l.max)}`,
  ].join('\n');
}

function runFields(s: RunSummary): Record<string, unknown> {
  const l = s.latency;
  return {
    sources: s.sources,
    startTime: s.startTime,
    seconds: round3(s.seconds),
    roundTrips: s.roundTrips,
    roundTripsPerSecond: round3(s.roundTripsPerSecond),
    errors: s.errors,
    errorCodes: s.errorCodes,
    latencyMs: { p50: l.p50, p90: l.p90, p99: l.p99, p999: l.p999, max: l.max, min: l.min, mean: round3(l.mean), count: l.count },
    parameters: s.parameters,
  };
}

function transferSeconds(t: TransferLog): number {
  return Math.max(0, (t.endMs - t.startMs) / 1000);
}

function transferText(t: TransferLog): string {
  const seconds = transferSeconds(t);
  const rate = seconds > 0 ? `, ${formatBytes(Math.round(t.bytes / seconds))}/s` : '';
  return `transfer ${t.name}: ${t.files} file(s), ${formatBytes(t.bytes)} in ${seconds.toFixed(2)} s${rate}${t.failed ? `; ${t.failed} failed` : ''}`;
}

export default defineCommand({
  name: 'report',
  summary: 'Merge HdrHistogram interval logs (several runs or agents) and print their summary, or draw them as one HTML page.',
  args: 'FILE...',
  description:
    'Reads HdrHistogram interval logs (format 1.0 to 1.3, as socketkit, jHiccup and HdrHistogram\'s own tools write them) ' +
    'and NDJSON from get, send and receive --json. Logs (and tags within them) whose times overlap are agents of one run: ' +
    'their histograms are added, so the percentiles are those of every value of every agent. Logs that do not overlap are ' +
    'separate runs, each summarised. A last line cut mid-way (a killed agent) is read up to the cut, with a warning.',
  options: {
    html: text('also write one self-contained HTML page (charts and table; no network requests)', { value: 'OUT.html' }),
    title: text('the HTML page\'s title', { value: 'TEXT', default: DEFAULT_TITLE, needs: 'html' }),
    unit: custom('the unit of the logs\' values (socketkit logs us, jHiccup ns)', parseUnit, { value: 'ns|us|ms', default: DEFAULT_UNIT, show: DEFAULT_UNIT }),
  },
  positionals: { min: 1, max: Number.MAX_SAFE_INTEGER },
  examples: ['socketkit report run.hlog', 'socketkit report agent-*.hlog --json', 'socketkit report before.hlog after.hlog --html compare.html', 'socketkit report get.ndjson --html transfer.html'],
  async run({ values, positionals, io, global }) {
    const report = createReporter(io, global);
    const unit = values.unit;
    const inputs = await readReportInputs(positionals);
    for (const w of inputs.warnings) report.event('warning', { message: w }, `warning: ${w}`);
    const runs = mergeLogs(inputs.logs);
    const summaries = runs.map((r) => summarizeRun(r, unit));
    const html = values.html;
    if (html !== undefined) {
      const page = await renderHtmlReport({ title: values.title, runs, transfers: inputs.transfers, unit });
      try {
        await writeFile(html, page);
      } catch (e) {
        throw toSocketkitError(e, html);
      }
    }
    const text = [
      ...summaries.map((s, i) => runText(s, summaries.length > 1 ? `run ${i + 1} of ${summaries.length}: ` : 'report of ')),
      ...inputs.transfers.map(transferText),
      ...(summaries.length === 0 && inputs.transfers.length === 0 ? ['report: no intervals in the logs'] : []),
      ...(html !== undefined ? [`html: ${html}`] : []),
    ].join('\n');
    report.result(
      'report',
      {
        runs: summaries.map(runFields),
        transfers: inputs.transfers.map((t) => ({ name: t.name, startTime: new Date(t.startMs).toISOString(), seconds: round3(transferSeconds(t)), bytes: t.bytes, files: t.files, failed: t.failed })),
        html: html ?? null,
      },
      text,
    );
    return 0;
  },
});

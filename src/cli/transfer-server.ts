/**
 * What the transfer commands share: how a transfer server's events are shown, running the
 * server until it is done (`--once`) or stopped (SIGINT/SIGTERM, with a grace period), and how
 * a client's summary ends a command.
 */
import type { CommandIO } from './command.js';
import type { Reporter } from './report.js';
import { formatBytes } from './report.js';
import { summaryFields, summaryLine, type createTransferView } from './progress.js';
import { summaryError, type TransferServer, type TransferServerEvent, type TransferSummary } from '../transfer/index.js';

type TransferView = ReturnType<typeof createTransferView>;

/** Renders a transfer server's events: NDJSON with --json, else lines above the progress bars. */
export function transferServerEvents(report: Reporter, view: TransferView): (e: TransferServerEvent) => void {
  return (e) => {
    switch (e.event) {
      case 'connect':
        if (report.json) report.event('connect', { conn: e.conn, peer: e.peer });
        else view.line(`+ ${e.peer} connected (#${e.conn})`);
        break;
      case 'transfer':
        view.onEvent(e.detail, e.conn);
        break;
      case 'disconnect':
        if (report.json) {
          report.event('disconnect', {
            conn: e.conn,
            peer: e.peer,
            ...(e.summary ? summaryFields(e.summary) : {}),
            ...(e.raw ? { bytes: e.raw.bytes, seconds: e.raw.seconds, zeroCopy: e.raw.zeroCopy === true } : {}),
            ...(e.error ? { error: e.error } : {}),
          });
        } else if (e.error) view.line(`- ${e.peer} (#${e.conn}) failed: ${e.error.message} (${e.error.code})`);
        else if (e.summary) view.line(`- ${e.peer} (#${e.conn}) done: ${summaryLine(e.summary)}`);
        else if (e.raw) view.line(`- ${e.peer} (#${e.conn}) done: ${formatBytes(e.raw.bytes)} in ${e.raw.seconds.toFixed(2)} s, ${(e.raw.bytes / Math.max(1e-9, e.raw.seconds) / 1e9).toFixed(2)} GB/s${e.raw.zeroCopy ? ' (sendfile)' : ''}`);
        break;
      case 'refused':
        if (report.json) report.event('refused', { peer: e.peer, reason: e.reason });
        else view.line(`! ${e.peer} refused: ${e.reason}`);
        break;
      case 'skipped':
        if (report.json) report.event('skipped', { source: e.source, reason: e.reason });
        else view.line(`! not serving ${e.source}: ${e.reason}`);
        break;
    }
  };
}

/**
 * Runs until the server is done (its one client with --once: a failed summary is thrown) or a
 * stop is requested, then closes it gracefully; the progress view is closed either way.
 */
export async function runTransferServer(server: TransferServer, io: CommandIO, view: TransferView, graceMs: number): Promise<void> {
  try {
    const stop = new Promise<'stop'>((resolve) => {
      if (io.shutdown.aborted) resolve('stop');
      else io.shutdown.addEventListener('abort', () => resolve('stop'), { once: true });
    });
    const outcome = await Promise.race([stop, server.done]);
    if (outcome === 'stop') {
      if (server.stats.active > 0) view.line(`stopping: ${server.stats.active} transfer(s) running, waiting up to ${graceMs / 1000} s`);
      await server.close(graceMs);
    } else if (outcome.summary) {
      const err = summaryError(outcome.summary);
      if (err) throw err;
    }
  } finally {
    view.close();
  }
}

/** Closes the progress view, reports a client's summary, and throws if any entry failed. */
export function finishTransfer(report: Reporter, view: TransferView, summary: TransferSummary): void {
  view.close();
  report.result('summary', summaryFields(summary), summaryLine(summary));
  const err = summaryError(summary);
  if (err) throw err;
}

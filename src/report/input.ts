/**
 * What `report` reads: HdrHistogram interval logs and transfer NDJSON, told apart by their
 * first character (`{` is NDJSON).
 */
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { toSocketkitError } from '../core/errors.js';
import { parseIntervalLog, type IntervalLog } from './log-reader.js';
import { looksLikeNdjson, parseTransferLog, type TransferLog } from './transfer-log.js';

/** Files read, by kind. */
export interface ReportInputs {
  readonly logs: readonly IntervalLog[];
  readonly transfers: readonly TransferLog[];
  /** Every warning of every file. */
  readonly warnings: readonly string[];
}

/** Reads texts (name and content) into logs and transfers. */
export function parseReportInputs(files: readonly { readonly name: string; readonly text: string }[]): ReportInputs {
  const logs: IntervalLog[] = [];
  const transfers: TransferLog[] = [];
  const warnings: string[] = [];
  for (const f of files) {
    if (looksLikeNdjson(f.text)) {
      const t = parseTransferLog(f.text, f.name);
      transfers.push(t);
      warnings.push(...t.warnings);
    } else {
      const l = parseIntervalLog(f.text, f.name);
      logs.push(l);
      warnings.push(...l.warnings);
    }
  }
  return { logs, transfers, warnings };
}

/** Reads files into logs and transfers; a file is named by its base name (its path when two share one). */
export async function readReportInputs(paths: readonly string[]): Promise<ReportInputs> {
  const names = paths.map((p) => basename(p));
  const files = await Promise.all(
    paths.map(async (p, i) => {
      try {
        const text = await readFile(p, 'utf8');
        return { name: names.filter((n) => n === names[i]).length > 1 ? p : names[i]!, text };
      } catch (e) {
        throw toSocketkitError(e, p);
      }
    }),
  );
  return parseReportInputs(files);
}

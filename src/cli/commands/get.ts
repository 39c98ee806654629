/** `socketkit get ADDR [-o OUT | --dir DIR] [--raw]`: download from a `serve` (or, raw, from `nc -l < file`). */
import type { Command } from '../command.js';
import { parseEndpoint } from '../../net/endpoint.js';
import { DEFAULT_CONNECT_HOST } from '../../core/defaults.js';
import { SocketkitError } from '../../core/errors.js';
import { DEFAULT_STALL_TIMEOUT_MS, download, downloadRaw } from '../../transfer/index.js';
import { createReporter, formatBytes } from '../report.js';
import { flag, parseDurationMs, str } from '../values.js';
import { ProgressBars, createTransferView, formatRate } from '../progress.js';
import { finishTransfer } from '../transfer-server.js';
import { CLIENT_SECURITY_OPTIONS, clientSecurity } from '../security-options.js';

const command: Command = {
  name: 'get',
  summary: 'Download what a `socketkit serve` offers (verified, resumable), or a raw stream with --raw.',
  args: 'ADDR',
  description:
    'Entries are written under the current folder (or --dir DIR) with the names the server gives, after checking that every path stays ' +
    'inside it. Each file is written as .NAME.sk-partial, verified by SHA-256, fsynced and renamed. An existing file is refused unless --force; ' +
    'a .NAME.sk-partial left by an interrupted transfer is continued and the whole file verified. With --raw, every byte that arrives is written ' +
    'to OUT (-o - for standard output) until the sender closes; this also works against `nc -N -l -p PORT < file` (without -N, that nc ' +
    'never closes, which ends in ERR_STALLED after --stall-timeout; the bytes are kept in .OUT.sk-partial).',
  options: {
    out: { type: 'string', short: 'o', value: 'OUT', help: 'write the one file offered here (raw: required; - is standard output)' },
    dir: { type: 'string', value: 'DIR', help: 'write entries under DIR (created if missing)', default: '.' },
    raw: { type: 'boolean', help: 'receive a raw byte stream (no protocol, no verification)' },
    force: { type: 'boolean', help: 'replace existing files' },
    resume: { type: 'boolean', help: 'also continue an existing shorter file with the final name if the sender confirms it is a prefix (else ERR_EXISTS); a .NAME.sk-partial is always continued' },
    'stall-timeout': { type: 'string', value: 'SECONDS', help: 'fail when the transfer makes no progress this long (0: never)', default: String(DEFAULT_STALL_TIMEOUT_MS / 1000) },
    timeout: { type: 'string', value: 'SECONDS', help: 'connect timeout', default: '10' },
    ...CLIENT_SECURITY_OPTIONS,
  },
  positionals: { min: 1, max: 1 },
  examples: [
    'socketkit get 192.0.2.7:9800 --dir ~/Downloads',
    'socketkit get 9800 -o report.pdf',
    'socketkit get 9800 --raw -o big.iso          # from serve --raw, or: nc -N -l -p 9800 < big.iso',
    'socketkit get 9800 --raw -o - | tar x',
  ],
  async run({ values, positionals, io, global }) {
    const ep = parseEndpoint(positionals[0]!, { defaultHost: DEFAULT_CONNECT_HOST });
    const stallTimeoutMs = parseDurationMs('stall-timeout', str(values, 'stall-timeout') ?? '30');
    const connectTimeoutMs = parseDurationMs('timeout', str(values, 'timeout') ?? '10');
    const out = str(values, 'out');
    const dirGiven = str(values, 'dir');
    const dir = dirGiven ?? '.';
    const report = createReporter(io, global);
    const sec = await clientSecurity(values);
    if (out !== undefined && dirGiven !== undefined && dirGiven !== '.') throw new SocketkitError('ERR_USAGE', 'give -o OUT or --dir DIR, not both');

    if (flag(values, 'raw')) {
      if (out === undefined) throw new SocketkitError('ERR_USAGE', 'a raw stream has no file name: give -o OUT (or -o - for standard output)');
      if (flag(values, 'resume')) throw new SocketkitError('ERR_USAGE', 'a raw stream cannot resume (the sender has no offsets); resuming needs the framed protocol');
      const bars = new ProgressBars({ stream: io.stderr, enabled: report.tty });
      bars.start('raw', out === '-' ? 'stdout' : out, undefined);
      try {
        const r = await downloadRaw(ep, out === '-' ? io.stdout : out, {
          stallTimeoutMs,
          connectTimeoutMs,
          signal: io.shutdown,
          ...sec.connect,
          force: flag(values, 'force'),
          onProgress: (bytes) => bars.update('raw', bytes),
        });
        bars.close();
        const rate = r.bytes / Math.max(1e-9, r.seconds);
        const fields = { bytes: r.bytes, seconds: Math.round(r.seconds * 1000) / 1000, gbps: Math.round((rate / 1e9) * 1000) / 1000, ...(r.path ? { path: r.path } : {}) };
        const text = `received ${formatBytes(r.bytes)} in ${r.seconds.toFixed(2)} s, ${(rate / 1e9).toFixed(2)} GB/s (${formatRate(rate)})${r.path ? ` into ${r.path}` : ''}`;
        // With -o - the data is on standard output: the summary goes to stderr.
        if (out === '-') report.event('summary', fields, text);
        else report.result('summary', fields, text);
        return 0;
      } finally {
        bars.close();
      }
    }

    const view = createTransferView(report, io.stderr);
    try {
      const summary = await download(ep, {
        ...(out !== undefined ? { out } : { dir }),
        force: flag(values, 'force'),
        resume: flag(values, 'resume'),
        stallTimeoutMs,
        connectTimeoutMs,
        signal: io.shutdown,
        ...sec.connect,
        onEvent: (e) => view.onEvent(e),
      });
      finishTransfer(report, view, summary);
      return 0;
    } finally {
      view.close();
    }
  },
};

export default command;

/** `socketkit get ADDR [-o OUT | --dir DIR] [--raw]`: download from a `serve` (or, raw, from `nc -l < file`). */
import { defineCommand } from '../command.js';
import { parseEndpoint } from '../../net/endpoint.js';
import { DEFAULT_CONNECT_HOST, DEFAULT_CONNECT_TIMEOUT_MS } from '../../core/defaults.js';
import { lstat, stat } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { dirname, isAbsolute, relative, resolve } from 'node:path';
import { SocketkitError, toSocketkitError } from '../../core/errors.js';
import { DEFAULT_STALL_TIMEOUT_MS, download, downloadRaw } from '../../transfer/index.js';
import { createReporter, formatBytes } from '../report.js';
import { formatDuration } from '../format.js';
import { duration, text, toggle } from '../options.js';
import { ProgressBars, createTransferView, formatRate } from '../progress.js';
import { finishTransfer } from '../transfer-server.js';
import { CLIENT_SECURITY_OPTIONS, clientSecurity } from '../security-options.js';
import { HASH_OPTION, hashOption } from '../hash-option.js';
import { STREAM_OPTIONS, streamOptions } from '../stream-options.js';

/** `lstat`, or undefined when nothing is there. */
async function lstatOrUndefined(path: string): Promise<Stats | undefined> {
  try {
    return await lstat(path);
  } catch (err) {
    // ENOTDIR: a part of the path is a file, which the caller finds looking further up.
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw toSocketkitError(err, path);
  }
}

/** -o OUT: an existing file is refused under the name given (unless --force, or --resume may continue it). */
async function checkOut(out: string, force: boolean, resume: boolean): Promise<void> {
  const st = await lstatOrUndefined(out);
  if (st === undefined) return;
  if (st.isDirectory()) throw new SocketkitError('ERR_EXISTS', `-o ${out}: '${out}' is a folder (to download into it, use --dir ${out})`);
  if (!force && !resume) throw new SocketkitError('ERR_EXISTS', `'${out}' already exists (use --force to replace it, or --resume to continue it)`);
}

/** --dir DIR: DIR, or the nearest part of it that exists, must be a folder. */
async function checkFolder(option: string, dir: string): Promise<void> {
  for (let p = resolve(dir); ; p = dirname(p)) {
    const st = await lstatOrUndefined(p);
    if (st !== undefined) {
      if (st.isDirectory() || (st.isSymbolicLink() && (await stat(p).catch(() => undefined))?.isDirectory() === true)) return;
      const shown = isAbsolute(dir) ? p : relative(process.cwd(), p);
      throw new SocketkitError('ERR_USAGE', `--${option} ${dir}: '${shown}' is a file, not a folder`);
    }
    if (dirname(p) === p) return;
  }
}

/** Where entries go when neither -o nor --dir is given. */
const DEFAULT_DIR = '.';

export default defineCommand({
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
    out: text('write the one file offered here (raw: required; - is standard output)', { short: 'o', value: 'OUT' }),
    dir: text('write entries under DIR (created if missing)', { value: 'DIR', default: DEFAULT_DIR }),
    raw: toggle('receive a raw byte stream (no protocol, no verification)'),
    force: toggle('replace existing files'),
    resume: toggle('also continue an existing shorter file with the final name if the sender confirms it is a prefix (else ERR_EXISTS); a .NAME.sk-partial is always continued'),
    'stall-timeout': duration('fail when the transfer makes no progress this long (0: never)', { default: DEFAULT_STALL_TIMEOUT_MS }),
    timeout: duration('connect timeout', { default: DEFAULT_CONNECT_TIMEOUT_MS }),
    ...HASH_OPTION,
    ...STREAM_OPTIONS,
    ...CLIENT_SECURITY_OPTIONS,
  },
  positionals: { min: 1, max: 1 },
  examples: [
    'socketkit get 192.0.2.7:9800 --dir ~/Downloads',
    'socketkit get 9800 -o report.pdf',
    'socketkit get 192.0.2.7:9800 -P 4 --dir ~/Downloads   # four connections; big files in 64 MiB ranges',
    'socketkit get 9800 --raw -o big.iso          # from serve --raw, or: nc -N -l -p 9800 < big.iso',
    'socketkit get 9800 --raw -o - | tar x',
  ],
  async run({ values, given, positionals, io, global }) {
    const ep = parseEndpoint(positionals[0]!, { defaultHost: DEFAULT_CONNECT_HOST });
    const stallTimeoutMs = values['stall-timeout'];
    const connectTimeoutMs = values.timeout;
    const out = values.out;
    const dir = values.dir;
    const report = createReporter(io, global);
    if (out !== undefined && given.has('dir')) throw new SocketkitError('ERR_USAGE', 'give -o OUT or --dir DIR, not both');
    if (out === '-' && !values.raw) {
      throw new SocketkitError('ERR_USAGE', '-o - (standard output) needs --raw: a verified download is written to a file, checked, then put in place');
    }
    // Said before connecting, naming what the user gave (the server's name for the file is another).
    if (!values.raw && out !== undefined) await checkOut(out, values.force, values.resume);
    if (!values.raw && out === undefined) await checkFolder('dir', dir);
    const sec = await clientSecurity(values);

    if (values.raw) {
      if (out === undefined) throw new SocketkitError('ERR_USAGE', 'a raw stream has no file name: give -o OUT (or -o - for standard output)');
      if (values.resume) throw new SocketkitError('ERR_USAGE', 'a raw stream cannot resume (the sender has no offsets); resuming needs the framed protocol');
      if (values.parallel > 1) throw new SocketkitError('ERR_USAGE', 'a raw stream is one connection: -P needs the framed protocol');
      const bars = new ProgressBars({ stream: io.stderr, enabled: report.tty });
      bars.start('raw', out === '-' ? 'stdout' : out, undefined);
      try {
        const r = await downloadRaw(ep, out === '-' ? io.stdout : out, {
          stallTimeoutMs,
          connectTimeoutMs,
          signal: io.shutdown,
          ...sec.connect,
          force: values.force,
          onProgress: (bytes) => bars.update('raw', bytes),
        });
        bars.close();
        const rate = r.bytes / Math.max(1e-9, r.seconds);
        const fields = { bytes: r.bytes, seconds: Math.round(r.seconds * 1000) / 1000, gbps: Math.round((rate / 1e9) * 1000) / 1000, ...(r.path ? { path: r.path } : {}) };
        const text = `received ${formatBytes(r.bytes)} in ${formatDuration(r.seconds * 1000)}, ${formatRate(rate)}${r.path ? ` into ${r.path}` : ''}`;
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
        force: values.force,
        resume: values.resume,
        stallTimeoutMs,
        connectTimeoutMs,
        ...hashOption(values.hash),
        ...streamOptions(values),
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
});

/** `socketkit send ADDR PATH...`: upload files and folders to a `socketkit receive`. */
import { defineCommand } from '../command.js';
import { parseEndpoint } from '../../net/endpoint.js';
import { DEFAULT_CONNECT_HOST, DEFAULT_CONNECT_TIMEOUT_MS } from '../../core/defaults.js';
import { DEFAULT_STALL_TIMEOUT_MS, upload, type TransferEvent, type TransferFailure, type TransferSummary } from '../../transfer/index.js';
import { createReporter } from '../report.js';
import { duration } from '../options.js';
import { createTransferView } from '../progress.js';
import { finishTransfer } from '../transfer-server.js';
import { CLIENT_SECURITY_OPTIONS, clientSecurity } from '../security-options.js';
import { HASH_OPTION, hashOption } from '../hash-option.js';
import { RAW_SEND_OPTIONS, runRawSend } from './send-raw.js';
import { STREAM_OPTIONS, streamOptions } from '../stream-options.js';

/**
 * A refusal of the receiver names the receiver's options (`--force`, `--resume`), which send
 * does not have: say where they go.
 */
function receiverSide<F extends TransferFailure | Extract<TransferEvent, { event: 'file-failed' }>>(f: F): F {
  if (f.code !== 'ERR_EXISTS') return f;
  const named = f.message.replace(/(?<!receive )--(force|resume)\b/g, "'receive --$1'");
  const message = named !== f.message ? `${named} on the receiving side` : `${f.message} (the receiving side decides: 'socketkit receive --force' replaces existing files)`;
  return { ...f, message };
}

export default defineCommand({
  name: 'send',
  summary: 'Upload files and folders (structure kept) to a `socketkit receive`, verified and resumable.',
  args: 'ADDR PATH...',
  description:
    'Each PATH arrives under its own name (a folder with everything in it; links inside folders are skipped). Each file streams with its ' +
    'SHA-256 computed on the way; the receiver verifies it before the file appears under its name. A file the receiver already has in part ' +
    '(.NAME.sk-partial) continues from there. Whether existing files may be replaced is the receiver\'s choice (receive --force).',
  options: {
    'stall-timeout': duration('fail when the transfer makes no progress this long (0: never)', { default: DEFAULT_STALL_TIMEOUT_MS }),
    timeout: duration('connect timeout', { default: DEFAULT_CONNECT_TIMEOUT_MS }),
    ...HASH_OPTION,
    ...STREAM_OPTIONS,
    ...CLIENT_SECURITY_OPTIONS,
    ...RAW_SEND_OPTIONS,
  },
  positionals: { min: 2, max: Number.MAX_SAFE_INTEGER },
  examples: ['socketkit send 192.0.2.7:9800 photos/ notes.txt', 'socketkit send unix:/tmp/drop.sock build.tar --json', 'socketkit send --raw 192.0.2.7:9800 disk.img   # to nc -l 9800 > disk.img, or socketkit listen 9800 > disk.img'],
  async run(ctx) {
    if (ctx.values.raw) return runRawSend(ctx);
    const { values, positionals, io, global } = ctx;
    const ep = parseEndpoint(positionals[0]!, { defaultHost: DEFAULT_CONNECT_HOST });
    const stallTimeoutMs = values['stall-timeout'];
    const connectTimeoutMs = values.timeout;
    const report = createReporter(io, global);
    const sec = await clientSecurity(values);
    const view = createTransferView(report, io.stderr);
    try {
      const summary = await upload(ep, positionals.slice(1), {
        ...hashOption(values.hash),
        ...streamOptions(values),
        stallTimeoutMs,
        connectTimeoutMs,
        signal: io.shutdown,
        ...sec.connect,
        onEvent: (e) => view.onEvent(e.event === 'file-failed' ? receiverSide(e) : e),
        onSkip: (s) => {
          if (report.json) report.event('skipped', { source: s.source, reason: s.reason });
          else view.line(`! not sending ${s.source}: ${s.reason}`);
        },
      });
      finishTransfer(report, view, { ...summary, failures: summary.failures.map(receiverSide) } satisfies TransferSummary);
      return 0;
    } finally {
      view.close();
    }
  },
});

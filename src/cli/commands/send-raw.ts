/**
 * `socketkit send --raw ADDR FILE`: one file's bytes to any listener (`nc -l > file`,
 * `socketkit listen > file`), then our FIN and a wait for the peer's close; the last line says
 * how many bytes were written and whether the peer acknowledged the close (src/relay/raw-upload.ts).
 */
import type { CommandContext, OptionSpec } from '../command.js';
import { SocketkitError } from '../../core/errors.js';
import { DEFAULT_CONNECT_HOST } from '../../core/defaults.js';
import { parseEndpoint } from '../../net/endpoint.js';
import { DEFAULT_RAW_CLOSE_WAIT_MS, uploadRaw, type RawCloseAck } from '../../relay/raw-upload.js';
import { createReporter } from '../report.js';
import { duration, toggle } from '../options.js';
import { formatBytes, formatDuration, formatRate } from '../format.js';
import { ProgressBars } from '../progress.js';
import { clientSecurity, type ClientSecurityValues } from '../security-options.js';

/** send's options for a raw upload. */
export const RAW_SEND_OPTIONS = {
  raw: toggle('send one FILE as a raw byte stream (no protocol), to nc -l or socketkit listen; then wait for the peer to close'),
  'close-timeout': duration('with --raw: after the last byte and our FIN, how long to wait for the peer to close', { default: DEFAULT_RAW_CLOSE_WAIT_MS, needs: 'raw' }),
} as const satisfies Readonly<Record<string, OptionSpec>>;

type RawSendValues = ClientSecurityValues & {
  readonly raw: boolean;
  readonly 'close-timeout': number;
  readonly timeout: number;
  readonly 'stall-timeout': number;
};

const ACK_TEXT: Readonly<Record<RawCloseAck, string>> = {
  acknowledged: 'the peer closed after our end: it read every byte',
  'peer-ended-first': 'the peer had half-closed before our end, so its close does not tell whether it read every byte',
  unanswered: 'no close from the peer',
};

/** Runs `send --raw ADDR FILE`. */
export async function runRawSend({ values, positionals, io, global, given }: CommandContext<RawSendValues>): Promise<number> {
  const framedOnly = ['parallel', 'range-size', 'hash'].filter((o) => given.has(o));
  if (framedOnly.length > 0) throw new SocketkitError('ERR_USAGE', `--${framedOnly[0]!} applies to framed transfers, not to --raw (a raw stream is one connection with no digest)`);
  if (positionals.length !== 2) throw new SocketkitError('ERR_USAGE', 'send --raw takes one ADDR and one FILE (a raw stream has no names: one file per connection)');
  const ep = parseEndpoint(positionals[0]!, { defaultHost: DEFAULT_CONNECT_HOST });
  const path = positionals[1]!;
  const report = createReporter(io, global);
  const sec = await clientSecurity(values);
  const bars = new ProgressBars({ stream: io.stderr, enabled: report.tty });
  bars.start('raw', path, undefined);
  try {
    const r = await uploadRaw(ep, path, {
      connectTimeoutMs: values.timeout,
      stallTimeoutMs: values['stall-timeout'],
      closeTimeoutMs: values['close-timeout'],
      signal: io.shutdown,
      ...(sec.connect.transport ? { transport: sec.connect.transport } : {}),
      onProgress: (bytes) => bars.update('raw', bytes),
    });
    bars.close();
    const rate = r.bytes / Math.max(1e-9, r.seconds);
    if (r.close === 'unanswered') {
      report.event('unanswered', { bytes: r.bytes, peer: r.peer, closeTimeoutMs: values['close-timeout'] }, undefined);
      throw new SocketkitError(
        'ERR_TIMEOUT',
        `all ${r.bytes} bytes were written to ${r.peer}, but it did not close within ${formatDuration(values['close-timeout'])} of our end: whether it read them is not known (--close-timeout waits longer)`,
      );
    }
    const fields = { bytes: r.bytes, seconds: Math.round(r.seconds * 1000) / 1000, gbps: Math.round((rate / 1e9) * 1000) / 1000, zeroCopy: r.zeroCopy, close: r.close, acknowledged: r.close === 'acknowledged', bytesReceived: r.bytesReceived, peer: r.peer };
    report.result('summary', fields, `sent ${formatBytes(r.bytes)} to ${r.peer} in ${formatDuration(r.seconds * 1000)}, ${formatRate(rate)}${r.zeroCopy ? ' (sendfile)' : ''}; ${ACK_TEXT[r.close]}`);
    return 0;
  } finally {
    bars.close();
  }
}

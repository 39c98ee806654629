/** `socketkit serve PATH... [--listen ADDR]`: send files and folders to every client that connects. */
import { defineCommand } from '../command.js';
import { parseEndpoint } from '../../net/endpoint.js';
import { DEFAULT_GRACE_MS, DEFAULT_LISTEN_HOST, DEFAULT_PORT } from '../../core/defaults.js';
import { SocketkitError } from '../../core/errors.js';
import { collectEntries, countEntries, DEFAULT_STALL_TIMEOUT_MS, startFileServer } from '../../transfer/index.js';
import { createReporter } from '../report.js';
import { formatBytes, formatCounted } from '../format.js';
import { duration, text, toggle } from '../options.js';
import { createTransferView } from '../progress.js';
import { reportStopped, runTransferServer, ServerFailures, transferServerEvents } from '../transfer-server.js';
import { MANAGED_SERVER_OPTIONS, managedServerValues } from '../server-report.js';
import { INSECURE_OPTION, SERVER_SECURITY_OPTIONS, serverSecurity } from '../security-options.js';
import { HASH_OPTION, hashOption } from '../hash-option.js';

export default defineCommand({
  name: 'serve',
  summary: 'Serve files and folders to any number of clients (framed and verified, or --raw like `nc -l < file`).',
  args: 'PATH...',
  description:
    'Every client that connects gets every PATH (folders with their structure), each file with its SHA-256 computed while it streams; ' +
    "`socketkit get ADDR` receives them, checks the paths, verifies the hashes and resumes interrupted files. With --raw, one file's bytes are " +
    'streamed and the connection closed: `nc HOST PORT > out` receives it. Folders are listed again for each client.',
  options: {
    listen: text('address to listen on: PORT, HOST:PORT, [IPV6]:PORT, unix:PATH', { value: 'ADDR', default: `${DEFAULT_LISTEN_HOST}:${DEFAULT_PORT}` }),
    raw: toggle("stream the one file's bytes to each client, then close (no protocol, no verification)"),
    once: toggle('serve one client, then exit with its outcome'),
    'stall-timeout': duration('drop a client whose transfer makes no progress this long (0: never)', { default: DEFAULT_STALL_TIMEOUT_MS }),
    grace: duration('on SIGINT/SIGTERM, let live transfers finish this long', { default: DEFAULT_GRACE_MS }),
    ...MANAGED_SERVER_OPTIONS,
    ...HASH_OPTION,
    ...SERVER_SECURITY_OPTIONS,
    ...INSECURE_OPTION,
  },
  positionals: { min: 1, max: Number.MAX_SAFE_INTEGER },
  examples: [
    'socketkit serve photos/ notes.txt --listen 0.0.0.0:9800 --cert socketkit-cert.pem --key socketkit-key.pem',
    'socketkit serve big.iso --raw --listen 9800     # then: nc HOST 9800 > big.iso',
    'socketkit serve report.pdf --once --json',
  ],
  async run({ values, positionals, io, global }) {
    const ep = parseEndpoint(values.listen, { defaultHost: DEFAULT_LISTEN_HOST, allowPortZero: true });
    const stallTimeoutMs = values['stall-timeout'];
    const graceMs = values.grace;
    const managed = managedServerValues(values);
    const raw = values.raw;
    const once = values.once;
    const report = createReporter(io, global);
    const sec = await serverSecurity(values, report, { endpoint: ep, requireSecure: true });
    const view = createTransferView(report, io.stderr);
    const failures = new ServerFailures();
    const onEvent = transferServerEvents(report, view, failures);
    const what = raw ? positionals[0]! : describe(countEntries(await collectEntries(positionals)));
    const run = await runTransferServer({
      endpoint: ep,
      io,
      global,
      report,
      view,
      graceMs,
      managed,
      start: (more) => startFileServer(ep, { paths: positionals, raw, once, stallTimeoutMs, ...hashOption(values.hash), onEvent, ...sec.listen, ...more }),
      onListening: (_server, where) =>
        report.event(
          'listening',
          { address: where, paths: positionals, raw, maxConnections: managed.maxConnections ?? null, idleTimeoutMs: managed.idleTimeoutMs ?? null },
          `serving ${what} on ${where}${raw ? ' (raw)' : ''}; fetch with: socketkit get ${where}${raw ? ' --raw -o FILE' : ''}`,
        ),
    });
    reportStopped(report, io, global, run, 'served', managed.statsIntervalMs !== undefined, failures);
    if (once && run.server.stats.connections === 0) throw new SocketkitError('ERR_ABORTED', 'stopped before a client connected');
    return 0;
  },
});

function describe(c: { files: number; dirs: number; bytes: number }): string {
  return `${formatCounted(c.files, 'file')}${c.dirs ? ` in ${formatCounted(c.dirs, 'folder')}` : ''} (${formatBytes(c.bytes)})`;
}

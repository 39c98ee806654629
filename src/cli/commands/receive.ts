/** `socketkit receive [--listen ADDR] [--dir DIR]`: accept uploads from `socketkit send`. */
import type { Command } from '../command.js';
import { parseEndpoint, formatEndpoint } from '../../net/endpoint.js';
import { DEFAULT_GRACE_MS, DEFAULT_LISTEN_HOST, DEFAULT_PORT } from '../../core/defaults.js';
import { SocketkitError } from '../../core/errors.js';
import { DEFAULT_STALL_TIMEOUT_MS, startReceiveServer, summaryError, type TransferServerEvent } from '../../transfer/index.js';
import { createReporter, formatBytes } from '../report.js';
import { INSECURE_OPTION, SERVER_SECURITY_OPTIONS, serverSecurity } from '../security-options.js';
import { flag, parseDurationMs, str } from '../values.js';
import { createTransferView, summaryFields, summaryLine } from '../progress.js';

const command: Command = {
  name: 'receive',
  summary: 'Accept files and folders from `socketkit send` clients into a folder, checked and verified.',
  args: '',
  description:
    'Every entry a client sends is checked (relative, inside DIR, no link escapes), written as NAME.part, verified by SHA-256, fsynced and ' +
    'renamed; a failed file never appears under its name. Existing files are refused unless --force. A NAME.part from an interrupted ' +
    'upload is continued when the client sends again, and the whole file verified. Runs until SIGINT/SIGTERM, or one client with --once.',
  options: {
    listen: { type: 'string', value: 'ADDR', help: 'address to listen on: PORT, HOST:PORT, [IPV6]:PORT, unix:PATH', default: `${DEFAULT_LISTEN_HOST}:${DEFAULT_PORT}` },
    dir: { type: 'string', value: 'DIR', help: 'folder to write into (created if missing)', default: '.' },
    force: { type: 'boolean', help: 'replace existing files' },
    resume: { type: 'boolean', help: 'also continue an existing shorter file with the final name (a .part is always continued)' },
    once: { type: 'boolean', help: 'receive from one client, then exit with its outcome' },
    'stall-timeout': { type: 'string', value: 'SECONDS', help: 'drop a client whose transfer makes no progress this long (0: never)', default: String(DEFAULT_STALL_TIMEOUT_MS / 1000) },
    grace: { type: 'string', value: 'SECONDS', help: 'on SIGINT/SIGTERM, let live transfers finish this long', default: String(DEFAULT_GRACE_MS / 1000) },
    ...SERVER_SECURITY_OPTIONS,
    ...INSECURE_OPTION,
  },
  positionals: { min: 0, max: 0 },
  examples: ['socketkit receive --listen 0.0.0.0:9800 --psk-file shared.psk --dir ~/inbox', 'socketkit receive --once --dir /tmp/drop --json'],
  async run({ values, io, global }) {
    const ep = parseEndpoint(str(values, 'listen') ?? String(DEFAULT_PORT), { defaultHost: DEFAULT_LISTEN_HOST, allowPortZero: true });
    const stallTimeoutMs = parseDurationMs('stall-timeout', str(values, 'stall-timeout') ?? '30');
    const graceMs = parseDurationMs('grace', str(values, 'grace') ?? '5');
    const dir = str(values, 'dir') ?? '.';
    const once = flag(values, 'once');
    const report = createReporter(io, global);
    const sec = await serverSecurity(values, report, { endpoint: ep, requireSecure: true });
    const view = createTransferView(report, io.stderr);
    const onEvent = (e: TransferServerEvent): void => {
      switch (e.event) {
        case 'connect':
          if (report.json) report.event('connect', { conn: e.conn, peer: e.peer });
          else view.line(`+ ${e.peer} connected (#${e.conn})`);
          break;
        case 'transfer':
          view.onEvent(e.detail, e.conn);
          break;
        case 'disconnect':
          if (report.json) report.event('disconnect', { conn: e.conn, peer: e.peer, ...(e.summary ? summaryFields(e.summary) : {}), ...(e.error ? { error: e.error } : {}) });
          else if (e.error) view.line(`- ${e.peer} (#${e.conn}) failed: ${e.error.message} (${e.error.code})`);
          else if (e.summary) view.line(`- ${e.peer} (#${e.conn}) done: ${summaryLine(e.summary)}`);
          break;
        case 'refused':
          if (report.json) report.event('refused', { peer: e.peer, reason: e.reason });
          else view.line(`! ${e.peer} refused: ${e.reason}`);
          break;
        case 'skipped':
          break;
      }
    };
    const server = await startReceiveServer(ep, { dir, force: flag(values, 'force'), resume: flag(values, 'resume'), once, stallTimeoutMs, onEvent, ...sec.listen });
    const where = formatEndpoint(server.endpoint);
    report.event('listening', { address: where, dir }, `receiving into ${dir} on ${where}; send with: socketkit send ${where} PATH...`);
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
    const s = server.stats;
    report.result('stopped', { ...s }, `received from ${s.connections} client(s): ${s.files} file(s), ${formatBytes(s.bytes)}${s.failed ? `; ${s.failed} failed` : ''}`);
    if (once && s.connections === 0) throw new SocketkitError('ERR_ABORTED', 'stopped before a client connected');
    return 0;
  },
};

export default command;

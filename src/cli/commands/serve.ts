/** `socketkit serve PATH... [--listen ADDR]`: send files and folders to every client that connects. */
import { defineCommand } from '../command.js';
import { DEFAULT_LISTEN_HOST, DEFAULT_PORT } from '../../core/defaults.js';
import { collectEntries, countEntries, startFileServer } from '../../transfer/index.js';
import { formatBytes, formatCounted } from '../format.js';
import { text, toggle } from '../options.js';
import { runServerCommand, serverCommandOptions } from '../transfer-server.js';

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
    ...serverCommandOptions('serve one client, then exit with its outcome'),
  },
  positionals: { min: 1, max: Number.MAX_SAFE_INTEGER },
  examples: [
    'socketkit serve photos/ notes.txt --listen 0.0.0.0:9800 --cert socketkit-cert.pem --key socketkit-key.pem',
    'socketkit serve big.iso --raw --listen 9800     # then: nc HOST 9800 > big.iso',
    'socketkit serve report.pdf --once --json',
  ],
  async run({ values, positionals, io, global }) {
    const raw = values.raw;
    let what = positionals[0]!;
    return runServerCommand(
      { values, io, global },
      {
        verb: 'served',
        start: async (ep, common) => {
          // Listed after the security options are checked, as the server lists them again.
          if (!raw) what = describe(countEntries(await collectEntries(positionals)));
          return startFileServer(ep, { paths: positionals, raw, ...common });
        },
        listening: (where) => ({
          fields: { paths: positionals, raw },
          text: `serving ${what} on ${where}${raw ? ' (raw)' : ''}; fetch with: socketkit get ${where}${raw ? ' --raw -o FILE' : ''}`,
        }),
      },
    );
  },
});

function describe(c: { files: number; dirs: number; bytes: number }): string {
  return `${formatCounted(c.files, 'file')}${c.dirs ? ` in ${formatCounted(c.dirs, 'folder')}` : ''} (${formatBytes(c.bytes)})`;
}

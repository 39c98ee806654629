/** `socketkit receive [--listen ADDR] [--dir DIR]`: accept uploads from `socketkit send`. */
import { defineCommand } from '../command.js';
import { DEFAULT_LISTEN_HOST, DEFAULT_PORT, DEFAULT_RECEIVE_DIR } from '../../core/defaults.js';
import { startReceiveServer } from '../../transfer/index.js';
import { text, toggle } from '../options.js';
import { runServerCommand, serverCommandOptions } from '../transfer-server.js';

export default defineCommand({
  name: 'receive',
  summary: 'Accept files and folders from `socketkit send` clients into a folder, checked and verified.',
  args: '',
  description:
    'Every entry a client sends is checked (relative, inside DIR, no link escapes), written as .NAME.sk-partial, verified by SHA-256, fsynced and ' +
    'renamed; a failed file never appears under its name. Existing files are refused unless --force. A .NAME.sk-partial from an interrupted ' +
    'upload is continued when the client sends again, and the whole file verified. Runs until SIGINT/SIGTERM, or one client with --once.',
  options: {
    listen: text('address to listen on: PORT, HOST:PORT, [IPV6]:PORT, unix:PATH', { value: 'ADDR', default: `${DEFAULT_LISTEN_HOST}:${DEFAULT_PORT}` }),
    dir: text('folder to write into (created if missing)', { value: 'DIR', default: DEFAULT_RECEIVE_DIR }),
    force: toggle('replace existing files'),
    resume: toggle('also continue an existing shorter file with the final name if the sender confirms it is a prefix (else ERR_EXISTS); a .NAME.sk-partial is always continued'),
    ...serverCommandOptions('receive from one client, then exit with its outcome'),
  },
  positionals: { min: 0, max: 0 },
  examples: ['socketkit receive --listen 0.0.0.0:9800 --psk-file shared.psk --dir ~/inbox', 'socketkit receive --once --dir /tmp/drop --json'],
  async run({ values, io, global }) {
    const dir = values.dir;
    return runServerCommand(
      { values, io, global },
      {
        verb: 'received from',
        start: (ep, common) => startReceiveServer(ep, { dir, force: values.force, resume: values.resume, ...common }),
        listening: (where) => ({ fields: { dir }, text: `receiving into ${dir} on ${where}; send with: socketkit send ${where} PATH...` }),
      },
    );
  },
});

/** `socketkit demo`: the tour of every system on loopback. */
import { defineCommand } from '../command.js';
import { runTour } from '../../demo/tour.js';

export default defineCommand({
  name: 'demo',
  summary: 'Run every system on loopback (free ports, a temporary folder) and report what happened.',
  args: '',
  options: {},
  positionals: { min: 0, max: 0 },
  examples: ['socketkit demo', 'npm start'],
  async run({ io }) {
    io.stdout.write('socketkit tour — every system on loopback\n');
    const r = await runTour((text) => io.stdout.write(text), undefined, io.shutdown);
    // Stopped by Ctrl-C: main() makes the status 130 (143 for SIGTERM).
    return r.failed === 0 ? 0 : 1;
  },
});

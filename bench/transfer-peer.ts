/**
 * One end of a framed transfer for `bench/transfer.ts`, through the library, with the options
 * the benchmark compares (the CLI may not have flags for them):
 *
 * - `node dist/bench/transfer-peer.js serve FILE [--hash H] [--sync]`: serves FILE to one
 *   client on 127.0.0.1, prints `{"port":N}` once it listens, then the summary as JSON.
 *   `--sync` reads synchronously (`syncReads: true`) instead of ahead on the thread pool.
 * - `node dist/bench/transfer-peer.js get PORT DIR [--hash H] [--sync]`: downloads into
 *   DIR (as `get --dir`), prints the summary as JSON. `--sync` writes synchronously from each
 *   read (`overlapWrites: false`, the path before issue 17) instead of the overlapped writer.
 */
import { once } from 'node:events';
import { connect as netConnect, createServer, type Socket } from 'node:net';
import { collectEntries } from '../src/transfer/entries.js';
import { Link } from '../src/transfer/link.js';
import { Receiver } from '../src/transfer/receiver.js';
import { runSender } from '../src/transfer/sender.js';
import { isHashName, type HashName } from '../src/transfer/digest.js';

const [mode, a, b, ...rest] = process.argv.slice(2);
const flag = (name: string): boolean => rest.includes(name) || b === name;
const hashAt = [b, ...rest].indexOf('--hash');
const hashArg = hashAt >= 0 ? [b, ...rest][hashAt + 1] : undefined;
const hash: HashName | undefined = isHashName(hashArg) ? hashArg : undefined;

if (mode === 'serve' && a !== undefined) {
  const entries = await collectEntries([a]);
  const server = createServer({ allowHalfOpen: true });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  process.stdout.write(`${JSON.stringify({ port: (server.address() as { port: number }).port })}\n`);
  const [socket] = (await once(server, 'connection')) as [Socket];
  server.close();
  const summary = await runSender(new Link(socket, { peer: 'client' }), entries, { ...(hash ? { hash } : {}), ...(flag('--sync') ? { syncReads: true } : {}) });
  process.stdout.write(`${JSON.stringify(summary)}\n`);
} else if (mode === 'get' && a !== undefined && b !== undefined) {
  const receiver = new Receiver({ dir: b, syncWrites: true, overlapWrites: !flag('--sync'), ...(hash ? { hash } : {}) });
  const port = Number(a);
  const link = await Link.open(
    (onread) =>
      new Promise((resolve, reject) => {
        const s = netConnect({ host: '127.0.0.1', port, onread, allowHalfOpen: true });
        s.once('connect', () => resolve(s));
        s.once('error', reject);
      }),
    { peer: `127.0.0.1:${port}`, ...(receiver.sink ? { data: receiver.sink } : {}) },
  );
  const summary = await receiver.run(link);
  process.stdout.write(`${JSON.stringify(summary)}\n`);
} else {
  process.stderr.write('usage: transfer-peer serve FILE [--hash H] [--sync] | get PORT DIR [--hash H] [--sync]\n');
  process.exitCode = 2;
}

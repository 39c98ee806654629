// One rule for every command stopped by a signal (issue 12, item 5): SIGINT exits 130, SIGTERM
// 143, after the command has said what it had to say (a server's `stopped` summary, ping's
// statistics, the tour's last line). Each command class runs as the real binary; the signal is
// sent once the command has shown it started (a line it prints, or a connection it made), never
// after a fixed sleep. Loopback only; every child is killed by process group when its test ends.
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Socket } from 'node:net';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { spawnCli, type Spawned } from './helpers/cli.js';
import { tempDir } from './helpers/tmp.js';

const STATUS = { SIGINT: 130, SIGTERM: 143 } as const;

/** The address in a command's JSON `listening` event. */
async function listening(proc: Spawned): Promise<string> {
  const line = await proc.stdout.waitFor(/"event":"listening"/);
  return (JSON.parse(line) as { address: string }).address;
}

/** Sends `sig`, waits (bounded) for the exit, and checks the status. */
async function stopWith(proc: Spawned, sig: keyof typeof STATUS): Promise<void> {
  proc.kill(sig);
  const exit = await proc.waitExit(10_000);
  assert.deepEqual(exit, { code: STATUS[sig], signal: null }, `stderr: ${proc.stderr.text}\nstdout: ${proc.stdout.text}`);
}

describe('a command stopped by a signal exits 128 + its number, after its summary', () => {
  const servers: ReadonlyArray<readonly [string, (dir: string) => string[] | Promise<string[]>]> = [
    ['echo-server', () => ['echo-server', '127.0.0.1:0']],
    ['echo-server --udp', () => ['echo-server', '--udp', '127.0.0.1:0']],
    ['broker', () => ['broker', '127.0.0.1:0']],
    [
      'serve',
      async (dir) => {
        await writeFile(join(dir, 'f.txt'), 'x\n');
        return ['serve', join(dir, 'f.txt'), '--listen', '127.0.0.1:0'];
      },
    ],
    [
      'receive',
      async (dir) => {
        await mkdir(join(dir, 'in'));
        return ['receive', '--dir', join(dir, 'in'), '--listen', '127.0.0.1:0'];
      },
    ],
  ];
  for (const [name, args] of servers) {
    for (const sig of ['SIGINT', 'SIGTERM'] as const) {
      it(`${name}: ${sig} prints the summary and exits ${STATUS[sig]}`, async (t: TestContext) => {
        const proc = spawnCli([...(await args(tempDir(t, 'sk-c2-sig-'))), '--json'], t);
        await listening(proc);
        await stopWith(proc, sig);
        assert.ok(proc.stdout.lines.some((l) => l.includes('"event":"stopped"')), proc.stdout.text);
      });
    }
  }

  it('ping: SIGINT prints the statistics and exits 130', async (t) => {
    const server = spawnCli(['echo-server', '--udp', '127.0.0.1:0', '--json'], t);
    const address = await listening(server);
    const ping = spawnCli(['ping', address, '-c', '0', '-i', '0.2', '--json'], t);
    await ping.stdout.waitFor(/"event":"reply"/);
    await stopWith(ping, 'SIGINT');
    assert.ok(ping.stdout.lines.some((l) => l.includes('"event":"ping"')), ping.stdout.text);
  });

  it('load: SIGTERM mid-run exits 143', async (t) => {
    const server = spawnCli(['echo-server', '127.0.0.1:0', '--json'], t);
    const address = await listening(server);
    const load = spawnCli(['load', address, '-c', '2', '--duration', '60s'], t);
    // The server's log shows the load's connections arriving: it is running.
    await server.stdout.waitFor(/"event":"connect/);
    await stopWith(load, 'SIGTERM');
  });

  it('get: SIGTERM while the server says nothing exits 143 at once', async (t) => {
    const sockets = new Set<Socket>();
    const silent = createServer((s) => sockets.add(s));
    silent.listen(0, '127.0.0.1');
    await once(silent, 'listening');
    t.after(() => {
      for (const s of sockets) s.destroy();
      silent.close();
    });
    const connected = once(silent, 'connection');
    const port = (silent.address() as { port: number }).port;
    const get = spawnCli(['get', `127.0.0.1:${port}`, '--dir', tempDir(t, 'sk-c2-sig-'), '--stall-timeout', '0'], t);
    await connected;
    await stopWith(get, 'SIGTERM');
  });

  it('demo: SIGINT stops the tour, which says so, and exits 130', async (t) => {
    const demo = spawnCli(['demo'], t);
    await demo.stdout.waitFor(/^1\. /);
    const t0 = performance.now();
    await stopWith(demo, 'SIGINT');
    assert.ok(performance.now() - t0 < 5_000, 'stopped without running the whole tour');
    assert.match(demo.stdout.text, /stopped \(SIGINT\) before the other \d+\./);
  });
});

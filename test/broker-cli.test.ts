// `socketkit broker`, the real binary: nc and ncat as its clients, usage errors, --redis errors.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ndjson, requireTool, runCli, spawnCli, spawnProcess, type Spawned } from './helpers/cli.js';
import { REFUSING_PORT, waitUntil } from './helpers/net.js';
import type { CleanupContext } from './helpers/tmp.js';

/** Starts the broker binary on a free port and returns it with its port, once it listens. */
async function startBroker(t: CleanupContext, args: readonly string[]): Promise<{ proc: Spawned; port: number }> {
  const proc = spawnCli(['broker', '127.0.0.1:0', '--json', ...args], t);
  const line = await proc.stdout.waitFor(/"event":"listening"/);
  const { address } = JSON.parse(line) as { address: string };
  return { proc, port: Number(address.split(':').at(-1)) };
}

/** An nc client with stdin kept open, so the test types into it. */
function nc(t: CleanupContext, tool: string, port: number): Spawned {
  return spawnProcess(tool, ['127.0.0.1', String(port)], t, { keepStdin: true });
}

describe('socketkit broker (the real binary)', () => {
  it('refuses options that do not go together, with ERR_USAGE', async () => {
    for (const args of [
      ['--chat', '--framed'],
      ['--max-line', '100'],
      ['--framed', '--max-line', '100'],
      ['--max-message', '1k'],
      ['--channel', 'x'],
      ['--slow', 'sometimes'],
      ['--max-queue', '0'],
    ]) {
      const r = await runCli(['broker', '127.0.0.1:0', ...args], { timeoutMs: 10_000 });
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /\(ERR_USAGE\)/, args.join(' '));
    }
  });

  it('--redis to nothing listening: one coded line, exit 2, before listening', async () => {
    const port = REFUSING_PORT;
    const r = await runCli(['broker', '127.0.0.1:0', '--redis', `redis://127.0.0.1:${port}`], { timeoutMs: 20_000 });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /^socketkit: redis: connection refused by redis:\/\/127\.0\.0\.1:\d+ \(ERR_CONN_REFUSED\)\n$/);
  });

  it('chat with nc as the clients: names, lines, /who', async (t) => {
    const tool = requireTool(t, 'nc', 'netcat-openbsd');
    if (!tool) return;
    const { proc, port } = await startBroker(t, ['--chat']);
    const one = nc(t, tool, port);
    await one.stdout.waitFor(/^\* welcome, user1:/);
    const two = nc(t, tool, port);
    await two.stdout.waitFor(/^\* welcome, user2:/);
    one.child.stdin!.write('/nick bob\n');
    await two.stdout.waitFor(/^\* user1 is now bob$/);
    two.child.stdin!.write('hello \x1b[2Jbob\n');
    await one.stdout.waitFor(/^<user2> hello \?\[2Jbob$/);
    two.child.stdin!.write('/who\n');
    await two.stdout.waitFor(/^\* lobby \(2\): bob, user2$/);
    one.kill('SIGTERM');
    await two.stdout.waitFor(/^\* bob left lobby$/);
    proc.kill('SIGTERM');
    assert.equal((await proc.waitExit()).code, 143);
    const stopped = ndjson(proc.stdout.text).find((e) => e['event'] === 'stopped')!;
    assert.equal(stopped['accepted'], 2);
  });

  it('bytes with ncat as the clients: no echo to the sender', async (t) => {
    const tool = requireTool(t, 'ncat', 'ncat');
    if (!tool) return;
    const { proc, port } = await startBroker(t, []);
    const a = nc(t, tool, port);
    const b = nc(t, tool, port);
    const c = nc(t, tool, port);
    // ncat prints nothing on connect: wait until the broker has all three (its connect events).
    await waitUntil(() => ndjson(proc.stdout.text).filter((e) => e['event'] === 'connect').length === 3, 'three clients', 10_000);
    // Then each speaks in turn, and each line must reach exactly the two others.
    for (const [who, others] of [
      [a, [b, c]],
      [b, [a, c]],
      [c, [a, b]],
    ] as const) {
      const line = `line from ${[a, b, c].indexOf(who)}`;
      who.child.stdin!.write(`${line}\n`);
      for (const o of others) await o.stdout.waitFor((l) => l === line);
    }
    for (const [i, p] of [a, b, c].entries()) assert.ok(!p.stdout.lines.includes(`line from ${i}`), `client ${i} got its own line back`);
  });
});

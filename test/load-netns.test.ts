// Three load agents, each in a network namespace of its own with its own address, load one echo
// server (in a fourth namespace, on the bridge that joins them), all starting at one --start-at;
// `socketkit report` merges their three logs and the merged count of round trips is the server's
// own count. Only inside namespaces this test creates (never a real network); skipped with the
// reason when `ip netns` cannot be used (not root, no iproute2); deleted when the suite ends.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { BIN, run, runCli, spawnProcess } from './helpers/cli.js';
import { tempDir } from './helpers/tmp.js';

const NS = `skl${process.pid}`;
const SERVER = `${NS}s`;
const AGENTS = [1, 2, 3].map((i) => ({ ns: `${NS}a${i}`, dev: `a${i}`, addr: `10.79.0.${i}` }));
const SERVER_ADDR = '10.79.0.254';

function ip(...args: string[]): { ok: boolean; err: string } {
  const r = spawnSync('ip', args, { encoding: 'utf8', timeout: 10_000 });
  return { ok: r.status === 0, err: (r.stderr ?? '') + (r.error ? r.error.message : '') };
}

let unavailable: string | undefined;

before(() => {
  const probe = ip('netns', 'add', SERVER);
  if (!probe.ok) {
    unavailable = `ip netns is not usable here (${probe.err.trim() || 'no iproute2'}); needs root and iproute2`;
    return;
  }
  const steps: string[][] = [
    ['-n', SERVER, 'link', 'add', 'br0', 'type', 'bridge'],
    ['-n', SERVER, 'addr', 'add', `${SERVER_ADDR}/24`, 'dev', 'br0'],
    ['-n', SERVER, 'link', 'set', 'br0', 'up'],
    ['-n', SERVER, 'link', 'set', 'lo', 'up'],
  ];
  for (const a of AGENTS) {
    steps.push(
      ['netns', 'add', a.ns],
      ['link', 'add', `${a.dev}0`, 'netns', a.ns, 'type', 'veth', 'peer', 'name', `${a.dev}1`, 'netns', SERVER],
      ['-n', SERVER, 'link', 'set', `${a.dev}1`, 'master', 'br0', 'up'],
      ['-n', a.ns, 'link', 'set', `${a.dev}0`, 'up'],
      ['-n', a.ns, 'link', 'set', 'lo', 'up'],
      ['-n', a.ns, 'addr', 'add', `${a.addr}/24`, 'dev', `${a.dev}0`],
    );
  }
  for (const s of steps) {
    const r = ip(...s);
    if (!r.ok) throw new Error(`ip ${s.join(' ')}: ${r.err}`);
  }
});

after(() => {
  for (const ns of [...AGENTS.map((a) => a.ns), SERVER]) ip('netns', 'del', ns);
});

describe('load from three agents in three network namespaces', { timeout: 90_000 }, () => {
  it('report merges the three logs: the merged count is the server\'s count', async (t) => {
    if (unavailable) return t.skip(unavailable);
    const dir = tempDir(t);
    const server = spawnProcess('ip', ['netns', 'exec', SERVER, process.execPath, BIN, 'echo-server', `${SERVER_ADDR}:19961`, '--json', '-q'], t);
    await server.stdout.waitFor((l) => l.includes('"listening"'), 20_000);
    const startAt = new Date(Date.now() + 4000).toISOString();
    const PER_AGENT = 400;
    const CONNS = 2;
    const agents = await Promise.all(
      AGENTS.map((a, i) =>
        run('ip', ['netns', 'exec', a.ns, process.execPath, BIN, 'load', `${SERVER_ADDR}:19961`, '-c', String(CONNS), '-n', String(PER_AGENT), '--start-at', startAt, '--tag', `agent-${i + 1}`, '--hdr-log', join(dir, `agent-${i + 1}.hlog`), '--json'], { timeoutMs: 60_000 }),
      ),
    );
    for (const a of agents) assert.equal(a.code, 0, a.stderr);
    server.kill('SIGTERM');
    const exit = await server.waitExit(15_000);
    assert.equal(exit.code, 143, 'SIGTERM: 128 + 15');
    const stopped = JSON.parse(server.stdout.lines.find((l) => l.includes('"stopped"'))!) as { roundTrips: number; accepted: number };
    assert.equal(stopped.accepted, AGENTS.length * CONNS);
    const report = await runCli(['report', ...AGENTS.map((_, i) => join(dir, `agent-${i + 1}.hlog`)), '--json']);
    assert.equal(report.code, 0, report.stderr);
    const runs = (JSON.parse(report.stdout.toString()) as { runs: { roundTrips: number; sources: string[] }[] }).runs;
    assert.equal(runs.length, 1, 'one window: the agents started together');
    assert.equal(runs[0]!.sources.length, 3);
    // The server counts each connection's one-byte warm-up too.
    assert.equal(runs[0]!.roundTrips, stopped.roundTrips - AGENTS.length * CONNS);
    assert.equal(runs[0]!.roundTrips, AGENTS.length * PER_AGENT);
  });
});

// Broadcast and multicast, only inside network namespaces this test creates: two hosts (A, B)
// on one bridge (its own namespace), joined by veth pairs; never on a real network. Skipped with
// the reason when `ip netns` cannot be used (not root, no iproute2); the namespaces are deleted
// when the suite ends, whatever happened.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { BIN, run, spawnProcess } from './helpers/cli.js';

const NS = `sk${process.pid}`;
const BR = `${NS}br`;
const A = `${NS}a`;
const B = `${NS}b`;

function ip(...args: string[]): { ok: boolean; err: string } {
  const r = spawnSync('ip', args, { encoding: 'utf8', timeout: 10_000 });
  return { ok: r.status === 0, err: (r.stderr ?? '') + (r.error ? r.error.message : '') };
}

let unavailable: string | undefined;

before(() => {
  const probe = ip('netns', 'add', BR);
  if (!probe.ok) {
    unavailable = `ip netns is not usable here (${probe.err.trim() || 'no iproute2'}); needs root and iproute2`;
    return;
  }
  const steps: string[][] = [
    ['netns', 'add', A],
    ['netns', 'add', B],
    ['-n', BR, 'link', 'add', 'br0', 'type', 'bridge'],
    ['-n', BR, 'link', 'set', 'br0', 'up'],
  ];
  for (const [m, addr] of [['a', '10.77.0.1/24'], ['b', '10.77.0.2/24']] as const) {
    const ns = m === 'a' ? A : B;
    steps.push(
      ['link', 'add', `${m}0`, 'netns', ns, 'type', 'veth', 'peer', 'name', `${m}1`, 'netns', BR],
      ['-n', BR, 'link', 'set', `${m}1`, 'master', 'br0', 'up'],
      ['-n', ns, 'link', 'set', `${m}0`, 'up'],
      ['-n', ns, 'link', 'set', 'lo', 'up'],
      ['-n', ns, 'addr', 'add', addr, 'dev', `${m}0`],
      // 255.255.255.255 needs a route out of the host.
      ['-n', ns, 'route', 'add', 'default', 'dev', `${m}0`],
    );
  }
  for (const s of steps) {
    const r = ip(...s);
    if (!r.ok) throw new Error(`ip ${s.join(' ')}: ${r.err}`);
  }
});

after(() => {
  for (const ns of [A, B, BR]) ip('netns', 'del', ns);
});

/** `socketkit ARGS` inside namespace `ns`. */
function inNs(ns: string, args: string[]): [string, string[]] {
  return ['ip', ['netns', 'exec', ns, process.execPath, BIN, ...args]];
}

async function exchange(t: Parameters<typeof spawnProcess>[2], listenArgs: string[], connectArgs: string[]): Promise<{ reply: string; heard: string }> {
  const [lc, la] = inNs(B, ['listen', '--udp', ...listenArgs, '--label', '--timeout', '5']);
  const l = spawnProcess(lc, la, t, { keepStdin: true });
  await l.stderr.waitFor(/^listening on udp /);
  l.child.stdin!.end('answer-from-b\n');
  const [cc, ca] = inNs(A, ['connect', '--udp', ...connectArgs, '--label', '--timeout', '1.5']);
  const c = await run(cc, ca, { input: 'hello-from-a\n', timeoutMs: 15_000 });
  assert.equal(c.code, 0, c.stderr);
  const heard = await l.stdout.waitFor(/hello-from-a/);
  l.kill('SIGINT');
  await l.waitExit();
  return { reply: c.stdout.toString(), heard };
}

describe('UDP broadcast and multicast in network namespaces', { timeout: 60_000 }, () => {
  it('--broadcast to the subnet broadcast address: B hears A and answers to its address', async (t) => {
    if (unavailable) return t.skip(unavailable);
    const r = await exchange(t, ['0.0.0.0:19941'], ['10.77.0.255:19941', '--broadcast']);
    assert.equal(r.heard.replace(/:\d+\]/, ':P]'), '[10.77.0.1:P] hello-from-a');
    assert.equal(r.reply, '[10.77.0.2:19941] answer-from-b\n');
  });

  it('--broadcast to 255.255.255.255', async (t) => {
    if (unavailable) return t.skip(unavailable);
    const r = await exchange(t, ['0.0.0.0:19943'], ['255.255.255.255:19943', '--broadcast']);
    assert.match(r.heard, /^\[10\.77\.0\.1:\d+\] hello-from-a$/);
    assert.equal(r.reply, '[10.77.0.2:19943] answer-from-b\n');
  });

  it('without --broadcast, sending to a broadcast address is refused by the kernel (a coded error)', async (t) => {
    if (unavailable) return t.skip(unavailable);
    const [cc, ca] = inNs(A, ['connect', '--udp', '10.77.0.255:19944', '--timeout', '0.5']);
    const c = await run(cc, ca, { input: 'x\n', timeoutMs: 10_000 });
    assert.equal(c.code, 2);
    assert.match(c.stderr, /\(ERR_PERMISSION\)/);
  });

  it('--multicast: B joins 239.77.0.1 on b0, A sends on a0 with --ttl 1', async (t) => {
    if (unavailable) return t.skip(unavailable);
    const r = await exchange(t, ['0.0.0.0:19942', '--multicast', '239.77.0.1', '--iface', 'b0'], ['239.77.0.1:19942', '--multicast', '--iface', 'a0', '--ttl', '1']);
    assert.match(r.heard, /^\[10\.77\.0\.1:\d+\] hello-from-a$/);
    assert.equal(r.reply, '[10.77.0.2:19942] answer-from-b\n');
  });
});

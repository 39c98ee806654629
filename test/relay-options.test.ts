// connect and listen typed from their specs (issue 14, item 5): durations arrive in ms, counts as
// numbers, options that do not apply are usage errors naming what they need.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseCommandArgs } from '../src/cli/command.js';
import { command, usageMessage } from './helpers/command-spec.js';
import { DEFAULT_CONNECT_TIMEOUT_MS } from '../src/core/defaults.js';

describe('connect and listen: typed options', () => {
  it('connect: --timeout and --idle-timeout in ms, the connect timeout defaulted from its constant', async () => {
    const connect = await command('connect');
    const d = parseCommandArgs(connect, ['9800']).values;
    assert.equal(d['timeout'], DEFAULT_CONNECT_TIMEOUT_MS);
    assert.equal(d['idle-timeout'], undefined);
    const g = parseCommandArgs(connect, ['9800', '--timeout', '2.5', '--idle-timeout', '250ms']).values;
    assert.deepEqual([g['timeout'], g['idle-timeout']], [2500, 250]);
    assert.match(usageMessage(() => parseCommandArgs(connect, ['9800', '--timeout', 'soon'])), /--timeout/);
  });

  it('UDP options need --udp, --ttl and --iface need --multicast; --ttl is 0..255', async () => {
    for (const name of ['connect', 'listen']) {
      const cmd = await command(name);
      assert.match(usageMessage(() => parseCommandArgs(cmd, ['9800', '--broadcast'])), /--broadcast applies only with --udp/);
      assert.match(usageMessage(() => parseCommandArgs(cmd, ['9800', '--udp', '--ttl', '2'])), /--ttl applies only with --multicast/);
      assert.match(usageMessage(() => parseCommandArgs(cmd, ['9800', '--udp', '--iface', 'lo'])), /--iface applies only with --multicast/);
      const mc = name === 'connect' ? ['--multicast'] : ['--multicast', '239.1.2.3'];
      assert.match(usageMessage(() => parseCommandArgs(cmd, ['9800', '--udp', ...mc, '--ttl', '256'])), /--ttl/);
      assert.equal(parseCommandArgs(cmd, ['9800', '--udp', ...mc, '--ttl', '0']).values['ttl'], 0);
    }
  });

  it('listen: --max-conns is a number and needs -k; --timeout needs --udp', async () => {
    const listen = await command('listen');
    assert.equal(parseCommandArgs(listen, ['-k', '--max-conns', '7']).values['max-conns'], 7);
    assert.match(usageMessage(() => parseCommandArgs(listen, ['--max-conns', '7'])), /--max-conns applies only with --keep-open/);
    assert.match(usageMessage(() => parseCommandArgs(listen, ['--timeout', '1'])), /--timeout applies only with --udp/);
    assert.equal(parseCommandArgs(listen, ['--udp', '--timeout', '1.5']).values['timeout'], 1500);
  });
});

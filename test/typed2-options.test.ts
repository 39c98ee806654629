// CLI values typed from their spec, defaults in one place (issue 11): load, serve, receive and
// broker hand `run` numbers and typed choices filled in from the DEFAULT_* constants; options that
// do not apply are usage errors; help still shows every default.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { commandHelp, parseCommandArgs } from '../src/cli/command.js';
import { command, usageMessage } from './helpers/command-spec.js';
import { DEFAULT_GRACE_MS, DEFAULT_LISTEN_HOST, DEFAULT_PORT, DEFAULT_RECEIVE_DIR } from '../src/core/defaults.js';
import { DEFAULT_CONNECT_RATE, DEFAULT_LOAD_CONNECTIONS, DEFAULT_LOAD_SIZE, DEFAULT_LOAD_TIMEOUT_MS } from '../src/load/index.js';
import { DEFAULT_MAX_FRAME_SIZE } from '../src/codec/constants.js';
import { DEFAULT_BROKER_MAX_QUEUE, DEFAULT_CHAT_MAX_LINE, DEFAULT_SLOW_CONSUMER_POLICY } from '../src/broker/index.js';
import { DEFAULT_REDIS_CHANNEL } from '../src/broker/redis.js';
import { DEFAULT_STALL_TIMEOUT_MS } from '../src/transfer/index.js';
import { MIN_STATS_INTERVAL_MS, managedServerValues } from '../src/cli/server-report.js';

describe('typed CLI values: load, serve, receive, broker', () => {
  it('load: defaults are the library constants, typed; given values arrive parsed', async () => {
    const load = await command('load');
    const d = parseCommandArgs(load, ['9800']).values;
    assert.equal(d['connections'], DEFAULT_LOAD_CONNECTIONS);
    assert.equal(d['size'], DEFAULT_LOAD_SIZE);
    assert.equal(d['timeout'], DEFAULT_LOAD_TIMEOUT_MS);
    assert.equal(d['connect-rate'], DEFAULT_CONNECT_RATE);
    assert.equal(d['max-message'], DEFAULT_MAX_FRAME_SIZE);
    assert.equal(d['duration'], undefined, 'no -d: run() decides (10 s, or no limit with -n)');
    assert.deepEqual(d['messages'], []);
    const g = parseCommandArgs(load, ['9800', '-c', '3', '-s', '4k', '-d', '250ms', '--rate', '0.5', '--framed', '--max-message', '1M']).values;
    assert.deepEqual([g['connections'], g['size'], g['duration'], g['rate'], g['max-message']], [3, 4096, 250, 0.5, 1024 * 1024]);
  });

  it('load: bad values and options that do not apply are usage errors naming the option', async () => {
    const load = await command('load');
    assert.match(usageMessage(() => parseCommandArgs(load, ['9800', '-s', '0'])), /^--size: /);
    assert.match(usageMessage(() => parseCommandArgs(load, ['9800', '-d', '0'])), /^--duration: must be more than 0/);
    assert.match(usageMessage(() => parseCommandArgs(load, ['9800', '--timeout', '0'])), /^--timeout: must be more than 0/);
    assert.match(usageMessage(() => parseCommandArgs(load, ['9800', '--rate', 'fast'])), /^--rate: 'fast' is not a positive number/);
    assert.match(usageMessage(() => parseCommandArgs(load, ['9800', '--max-message', '1M'])), /--max-message applies only with --framed/);
  });

  it('broker: typed sizes and policy from the constants; --max-message, --max-line, --channel need --framed, --chat, --redis', async () => {
    const broker = await command('broker');
    const d = parseCommandArgs(broker, []).values;
    assert.equal(d['max-message'], DEFAULT_MAX_FRAME_SIZE);
    assert.equal(d['max-line'], DEFAULT_CHAT_MAX_LINE);
    assert.equal(d['max-queue'], DEFAULT_BROKER_MAX_QUEUE);
    assert.equal(d['slow'], DEFAULT_SLOW_CONSUMER_POLICY);
    assert.equal(d['channel'], DEFAULT_REDIS_CHANNEL);
    assert.equal(d['grace'], DEFAULT_GRACE_MS);
    assert.equal(parseCommandArgs(broker, ['--slow', 'drop']).values['slow'], 'drop');
    assert.equal(parseCommandArgs(broker, ['--chat', '--max-line', '1k']).values['max-line'], 1024);
    assert.match(usageMessage(() => parseCommandArgs(broker, ['--max-message', '1k'])), /--max-message applies only with --framed/);
    assert.match(usageMessage(() => parseCommandArgs(broker, ['--framed', '--max-line', '100'])), /--max-line applies only with --chat/);
    assert.match(usageMessage(() => parseCommandArgs(broker, ['--channel', 'x'])), /--channel applies only with --redis/);
    assert.match(usageMessage(() => parseCommandArgs(broker, ['--slow', 'sometimes'])), /^--slow: 'sometimes' is not disconnect or drop/);
    assert.match(usageMessage(() => parseCommandArgs(broker, ['--max-queue', '0'])), /^--max-queue: /);
  });

  for (const name of ['serve', 'receive']) {
    it(`${name}: durations in ms, the listen address and managed options typed`, async () => {
      const cmd = await command(name);
      const args = name === 'serve' ? ['file'] : [];
      const d = parseCommandArgs(cmd, args).values;
      assert.equal(d['listen'], `${DEFAULT_LISTEN_HOST}:${DEFAULT_PORT}`);
      assert.equal(d['stall-timeout'], DEFAULT_STALL_TIMEOUT_MS);
      assert.equal(d['grace'], DEFAULT_GRACE_MS);
      if (name === 'receive') assert.equal(d['dir'], DEFAULT_RECEIVE_DIR);
      const g = parseCommandArgs(cmd, [...args, '--max-conns', '7', '--idle-timeout', '1.5', '--stats', '10ms', '--grace', '0']).values;
      const managed = managedServerValues(g as Parameters<typeof managedServerValues>[0]);
      assert.deepEqual(managed, { maxConnections: 7, idleTimeoutMs: 1500, statsIntervalMs: MIN_STATS_INTERVAL_MS });
      assert.equal(g['grace'], 0);
      assert.match(usageMessage(() => parseCommandArgs(cmd, [...args, '--max-conns', '0'])), /^--max-conns: /);
    });
  }

  it('help shows the defaults, in the unit each option is typed in', async () => {
    const expect: Record<string, RegExp[]> = {
      load: [/--connections N .*\(default 1\)/, /--size SIZE .*\(default 64\)/, /--timeout SECONDS .*\(default 10\)/, /--connect-rate R .*\(default 2000\)/, /--max-message SIZE .*\(default 16MiB\)/, /--duration SECONDS .*default 10, or no limit with -n/],
      broker: [/--max-queue SIZE .*\(default 1MiB\)/, /--slow disconnect\|drop .*\(default disconnect\)/, /--channel NAME .*\(default socketkit\)/, /--grace SECONDS .*\(default 5\)/],
      serve: [/--listen ADDR .*\(default 127\.0\.0\.1:9800\)/, /--stall-timeout SECONDS .*\(default 30\)/, /--grace SECONDS .*\(default 5\)/],
      receive: [/--dir DIR .*\(default \.\)/, /--stall-timeout SECONDS .*\(default 30\)/],
    };
    for (const [name, patterns] of Object.entries(expect)) {
      const help = commandHelp(await command(name));
      for (const p of patterns) assert.match(help, p, `${name} --help`);
    }
  });
});

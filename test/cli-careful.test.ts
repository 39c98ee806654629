// What a careful user trips over on the command line (issue 12), each checked against the real
// binary: options that do not apply are usage errors, checks come before any output, -q never
// drops data, --json failures are JSON too, and file and address mistakes are said in
// socketkit's words. Codes and exit statuses are asserted; messages only where the message is
// the point (it must name the right file or option).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { runCli } from './helpers/cli.js';
import { freePort } from './helpers/net.js';
import { tempDir } from './helpers/tmp.js';

/** The code of the first `socketkit: ... (CODE)` line on stderr. */
function codeOf(stderr: string): string | undefined {
  return /^socketkit: .* \((ERR_[A-Z_]+)\)$/m.exec(stderr)?.[1];
}

describe('options that do not apply are usage errors (real binary)', () => {
  const cases: [string[], RegExp][] = [
    [['echo', 'PORT', 'hi', '--retries', '2'], /--retries applies only with --udp/],
    [['echo', 'PORT', 'hi', '--max-message', '1k'], /--max-message applies only with --framed/],
    [['echo', 'PORT', 'hi', '--framed', '--max-message', '0'], /--max-message/],
    [['echo-server', 'PORT', '--max-message', '1k'], /--max-message applies only with --framed/],
    [['echo-server', 'PORT', '--memory-budget', '1M'], /--memory-budget applies only with --framed/],
    [['echo-server', 'PORT', '--udp', '--workers', '2'], /--workers applies to TCP/],
    [['echo-server', 'PORT', '--udp', '--idle-timeout', '5', '--max-conns', '3'], /--max-conns, --idle-timeout apply to TCP/],
    [['cert', '--identity', 'me'], /--identity applies only with --psk/],
  ];
  for (const [args, message] of cases) {
    it(args.join(' '), async (t) => {
      // A free port: had the option been ignored, a client would fail to connect (another code)
      // and a server would start listening (and the run would time out).
      const port = String(await freePort());
      // In a folder of its own: had `cert` ignored --identity, it would write its files there.
      const r = await runCli(args.map((a) => (a === 'PORT' ? port : a)), { timeoutMs: 10_000, cwd: tempDir(t) });
      assert.equal(r.timedOut, false, 'the command ran instead of refusing its options');
      assert.equal(r.code, 2);
      assert.equal(codeOf(r.stderr), 'ERR_USAGE', r.stderr);
      assert.match(r.stderr, message);
      assert.equal(r.stdout.length, 0);
    });
  }

  it('ping -s 10 prints only its usage error, not its header first', async () => {
    const port = String(await freePort());
    for (const args of [['-s', '10'], ['--tcp', '-s', '2M'], ['-s', '70000']]) {
      const r = await runCli(['ping', port, '-c', '1', ...args], { timeoutMs: 10_000 });
      assert.equal(r.code, 2, r.stderr);
      assert.doesNotMatch(r.stderr, /PING/, `header printed before the error for ${args.join(' ')}:\n${r.stderr}`);
      assert.match(codeOf(r.stderr) ?? '', /^ERR_(USAGE|DATAGRAM_TOO_LARGE)$/);
      assert.equal(r.stdout.length, 0);
    }
  });
});

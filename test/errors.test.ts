// Unit tests of the coded errors: SocketkitError, the mapping from Node's system errors
// (toSocketkitError), and the CLI's one-line error convention (`socketkit: <message> (<CODE>)`,
// non-zero exit, a stack trace only with --debug). Codes are asserted, never message text.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import { EXIT_FAILURE, EXIT_MISMATCH, SocketkitError, isSocketkitError, toSocketkitError } from '../src/core/errors.js';
import { parseDurationMs, parseCount, parseSize } from '../src/cli/values.js';
import { runMain } from './helpers/cli.js';

/** A Node-style system error, as net and dns produce them. */
function sysError(code: string, extra: Record<string, unknown> = {}): Error {
  return Object.assign(new Error(`${code} (simulated)`), { code, errno: -1, ...extra });
}

/** The one-line error convention; returns the code. */
function assertOneErrorLine(stderr: string): string {
  const lines = stderr.split('\n').filter((l) => l !== '' && !l.startsWith("Run 'socketkit"));
  assert.equal(lines.length, 1, `expected one error line, got:\n${stderr}`);
  const m = /^socketkit: .+ \((ERR_[A-Z_]+)\)$/.exec(lines[0]!);
  assert.ok(m, `not 'socketkit: <message> (<CODE>)': ${lines[0]}`);
  assert.doesNotMatch(stderr, /\n\s+at /, 'no stack trace');
  return m[1]!;
}

describe('SocketkitError', () => {
  it('carries a code, a message, exit status 2 by default, and its cause', () => {
    const cause = new Error('root');
    const e = new SocketkitError('ERR_TIMEOUT', 'timed out', { cause });
    assert.ok(e instanceof Error);
    assert.ok(isSocketkitError(e));
    assert.equal(e.name, 'SocketkitError');
    assert.equal(e.code, 'ERR_TIMEOUT');
    assert.equal(e.exitCode, EXIT_FAILURE);
    assert.equal(EXIT_FAILURE, 2);
    assert.equal(e.cause, cause);
    assert.equal(new SocketkitError('ERR_ECHO_MISMATCH', 'x', { exitCode: EXIT_MISMATCH }).exitCode, 1);
    assert.equal('cause' in new SocketkitError('ERR_IO', 'x'), false, 'no cause property unless given');
  });

  it('is told apart from other errors', () => {
    assert.equal(isSocketkitError(new Error('x')), false);
    assert.equal(isSocketkitError({ code: 'ERR_TIMEOUT' }), false);
    assert.equal(isSocketkitError(undefined), false);
  });
});

describe('toSocketkitError', () => {
  const table: ReadonlyArray<readonly [nodeCode: string, code: string]> = [
    ['ECONNREFUSED', 'ERR_CONN_REFUSED'],
    ['ECONNRESET', 'ERR_CONN_RESET'],
    ['EPIPE', 'ERR_CONN_CLOSED'],
    ['EADDRINUSE', 'ERR_ADDR_IN_USE'],
    ['EADDRNOTAVAIL', 'ERR_ADDR_NOT_AVAILABLE'],
    ['EACCES', 'ERR_PERMISSION'],
    ['EPERM', 'ERR_PERMISSION'],
    ['ENOTFOUND', 'ERR_UNKNOWN_HOST'],
    ['EAI_NONAME', 'ERR_UNKNOWN_HOST'],
    ['EAI_NODATA', 'ERR_UNKNOWN_HOST'],
    ['EAI_FAIL', 'ERR_UNKNOWN_HOST'],
    ['EAI_AGAIN', 'ERR_UNKNOWN_HOST'],
    ['ETIMEDOUT', 'ERR_TIMEOUT'],
    ['ERR_SOCKET_CONNECTION_TIMEOUT', 'ERR_TIMEOUT'],
    ['ECONNABORTED', 'ERR_CONN_RESET'],
    ['ENOTCONN', 'ERR_CONN_CLOSED'],
    ['ERR_STREAM_PREMATURE_CLOSE', 'ERR_CONN_CLOSED'],
    ['ERR_STREAM_DESTROYED', 'ERR_CONN_CLOSED'],
    ['ERR_STREAM_WRITE_AFTER_END', 'ERR_CONN_CLOSED'],
    ['ERR_SOCKET_CLOSED', 'ERR_CONN_CLOSED'],
    ['EHOSTUNREACH', 'ERR_UNREACHABLE'],
    ['ENETUNREACH', 'ERR_UNREACHABLE'],
    ['EAFNOSUPPORT', 'ERR_UNREACHABLE'],
    ['ENOENT', 'ERR_NOT_FOUND'],
    ['ENOSPC', 'ERR_DISK_FULL'],
    ['EDQUOT', 'ERR_DISK_FULL'],
    ['ABORT_ERR', 'ERR_ABORTED'],
    ['EMFILE', 'ERR_IO'],
    ['EISDIR', 'ERR_IO'],
  ];
  for (const [nodeCode, code] of table) {
    it(`maps ${nodeCode} to ${code}, keeping the cause`, () => {
      const cause = sysError(nodeCode, { address: '127.0.0.1', port: 9 });
      const e = toSocketkitError(cause, '127.0.0.1:9');
      assert.ok(e instanceof SocketkitError);
      assert.equal(e.code, code);
      assert.equal(e.exitCode, EXIT_FAILURE);
      assert.equal(e.cause, cause);
      assert.ok(!e.message.includes('\n'), 'a message is one line');
      assert.ok(e.message.includes('127.0.0.1:9'), 'the message names what was asked for');
    });
  }

  it('names the target from the error itself when not told (path, hostname, address:port)', () => {
    assert.ok(toSocketkitError(sysError('ENOENT', { path: '/tmp/x.sock' })).message.includes('/tmp/x.sock'));
    assert.ok(toSocketkitError(sysError('ENOTFOUND', { hostname: 'h.invalid' })).message.includes('h.invalid'));
    assert.ok(toSocketkitError(sysError('EADDRINUSE', { address: '::1', port: 80 })).message.includes('::1:80'));
    assert.equal(toSocketkitError(sysError('ECONNREFUSED')).code, 'ERR_CONN_REFUSED');
  });

  it('passes a SocketkitError through unchanged', () => {
    const e = new SocketkitError('ERR_ECHO_MISMATCH', 'x', { exitCode: 1 });
    assert.equal(toSocketkitError(e, 'somewhere'), e);
  });

  it('calls anything unrecognised ERR_INTERNAL (a bug), keeping its message on one line', () => {
    for (const weird of [new TypeError('boom'), 'a string', 42, undefined, null, { code: 'not-a-system-code' }]) {
      const e = toSocketkitError(weird);
      assert.equal(e.code, 'ERR_INTERNAL', inspect(weird));
      assert.equal(e.exitCode, EXIT_FAILURE);
    }
  });
});

describe('option values', () => {
  it('parses durations, sizes and counts, and rejects junk with ERR_USAGE', () => {
    assert.equal(parseDurationMs('t', '0.3'), 300);
    assert.equal(parseDurationMs('t', '250ms'), 250);
    assert.equal(parseDurationMs('t', '2s'), 2000);
    assert.equal(parseDurationMs('t', '1m'), 60_000);
    assert.equal(parseSize('s', '4k'), 4096);
    assert.equal(parseSize('s', '1MB'), 1_000_000);
    assert.equal(parseCount('n', '7'), 7);
    assert.equal(parseDurationMs('t', '0'), 0);
    assert.equal(parseDurationMs('t', '24m'), 24 * 60_000);
    // Beyond 2^31-1 ms Node's timers would fire at once: refused rather than misread.
    for (const f of [() => parseDurationMs('t', '2147484'), () => parseDurationMs('t', '1000000m')]) assert.throws(f, { code: 'ERR_USAGE' });
    for (const f of [() => parseDurationMs('t', 'soon'), () => parseDurationMs('t', '-1'), () => parseSize('s', '1x'), () => parseCount('n', '0'), () => parseCount('n', '1.5')]) {
      assert.throws(f, { code: 'ERR_USAGE' });
    }
  });
});

describe('CLI error convention (in-process)', () => {
  it('prints one line `socketkit: <message> (ERR_BAD_ADDRESS)` and exits 2 for a malformed address', async () => {
    for (const argv of [['echo', 'nohost:port', 'hi'], ['echo', '[::1', 'hi'], ['echo-server', '70000']]) {
      const r = await runMain(argv);
      assert.equal(r.code, 2, argv.join(' '));
      assert.equal(assertOneErrorLine(r.stderr), 'ERR_BAD_ADDRESS');
      assert.equal(r.stdout.length, 0);
    }
  });

  it('reports usage errors as ERR_USAGE with a pointer to --help', async () => {
    for (const argv of [['echo'], ['echo', '1', '2', '3'], ['echo', '--no-such-option', '1'], ['echo', '1', 'x', '--timeout', 'soon'], ['no-such-command']]) {
      const r = await runMain(argv);
      assert.equal(r.code, 2, argv.join(' '));
      assert.equal(assertOneErrorLine(r.stderr), 'ERR_USAGE');
      assert.match(r.stderr, /--help/);
    }
  });

  it('prints a stack trace only with --debug', async () => {
    const plain = await runMain(['echo', 'unix:', 'x']);
    assert.equal(assertOneErrorLine(plain.stderr), 'ERR_BAD_ADDRESS');
    const debug = await runMain(['echo', 'unix:', 'x', '--debug']);
    assert.equal(debug.code, 2);
    assert.match(debug.stderr, /^socketkit: .+ \(ERR_BAD_ADDRESS\)\n/);
    assert.match(debug.stderr, /\n\s+at /, 'a stack trace with --debug');
  });

  it('answers --help and --version on stdout with exit 0', async () => {
    for (const argv of [['--help'], ['-h'], ['--version'], ['echo', '--help'], ['echo-server', '-h']]) {
      const r = await runMain(argv);
      assert.equal(r.code, 0, argv.join(' '));
      assert.ok(r.stdout.length > 0);
      assert.equal(r.stderr, '');
    }
  });
});

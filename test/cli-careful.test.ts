// What a careful user trips over on the command line (issue 12), each checked against the real
// binary: options that do not apply are usage errors, checks come before any output, -q never
// drops data, --json failures are JSON too, and file and address mistakes are said in
// socketkit's words. Codes and exit statuses are asserted; messages only where the message is
// the point (it must name the right file or option).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startFileServer, startReceiveServer } from '../src/transfer/index.js';
import { BIN, run, runCli } from './helpers/cli.js';
import { formatEndpoint, ipv6PortHint, type Endpoint } from '../src/net/endpoint.js';
import { startEchoServer } from '../src/echo/server.js';
import { startManagedEchoServer } from '../src/server/index.js';
import { startUdpEchoServer } from '../src/udp/server.js';
import { freePort } from './helpers/net.js';
import { tempDir } from './helpers/tmp.js';

const V4: Endpoint = { kind: 'inet', host: '127.0.0.1', port: 0 };

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
    [['cert', '--psk', 'k.psk', '--days', '30', '--san', 'IP:192.0.2.7'], /--psk writes a pre-shared key, not a certificate: --san, --days do not apply/],
    [['cert', '--fingerprint', 'c.pem', '--force'], /--fingerprint only reads a certificate: --force does not apply/],
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

describe('-q silences messages, never the data (real binary)', () => {
  it('cat f | socketkit echo PORT -q > copy leaves a full copy', async (t) => {
    const server = await startEchoServer(V4);
    t.after(() => server.close());
    const data = randomBytes(200_000);
    const r = await runCli(['echo', formatEndpoint(server.endpoint), '-q'], { input: data });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '', 'no messages with -q');
    assert.ok(r.stdout.equals(data), `the copy has ${r.stdout.length} of ${data.length} bytes`);
  });

  it('echo --udp -q and echo --framed -q print the echo too', async (t) => {
    const udp = await startUdpEchoServer(V4);
    t.after(() => udp.close());
    const u = await runCli(['echo', '--udp', formatEndpoint(udp.endpoint), 'datagram', '-q']);
    assert.deepEqual([u.code, u.stdout.toString(), u.stderr], [0, 'datagram', '']);
    const framed = await startManagedEchoServer(V4, { framed: true });
    t.after(() => framed.close());
    const f = await runCli(['echo', '--framed', formatEndpoint(framed.endpoint), '-q'], { input: 'one\ntwo\n' });
    assert.deepEqual([f.code, f.stdout.toString(), f.stderr], [0, 'one\ntwo\n', '']);
  });

  it('ping -q prints the summary (as iputils ping -q does), and nothing else', async (t) => {
    const server = await startUdpEchoServer(V4);
    t.after(() => server.close());
    const r = await runCli(['ping', formatEndpoint(server.endpoint), '-c', '3', '-i', '10ms', '-q']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    const out = r.stdout.toString();
    assert.match(out, /^--- .* udp ping: 64-byte probes ---\n3 sent, 3 received, 0\.0% loss/);
    assert.match(out, /rtt min\/avg\/max\/stddev/);
  });
});

describe('with --json, a failure is a JSON object on stdout too (real binary)', () => {
  /** The last stdout line, parsed: it must be the error event. */
  function lastEvent(stdout: Buffer): Record<string, unknown> {
    const lines = stdout.toString().split('\n').filter((l) => l !== '');
    assert.ok(lines.length > 0, 'nothing on stdout');
    return JSON.parse(lines.at(-1)!) as Record<string, unknown>;
  }

  it('a connection failure, a usage error, an unknown option and an unknown command', async () => {
    const port = String(await freePort());
    const cases: [string[], string][] = [
      [['echo', port, 'hi', '--json'], 'ERR_CONN_REFUSED'],
      [['echo', port, 'hi', '--json', '--retries', '1'], 'ERR_USAGE'],
      [['get', port, '--json', '--bogus'], 'ERR_USAGE'],
      [['no-such-command', '--json'], 'ERR_USAGE'],
    ];
    for (const [args, code] of cases) {
      const r = await runCli(args);
      assert.equal(r.code, 2, r.stderr);
      const e = lastEvent(r.stdout);
      assert.equal(e['event'], 'error', args.join(' '));
      assert.equal(e['code'], code, args.join(' '));
      assert.equal(typeof e['message'], 'string');
      assert.equal(codeOf(r.stderr), code, 'the one-line error stays on stderr');
    }
  });
});

describe('get and send say what is wrong in socketkit words (real binary)', () => {
  it('get -o mine.txt names mine.txt when it exists (not the name the server gives), and leaves it alone', async (t) => {
    const dir = tempDir(t);
    await writeFile(join(dir, 'srv.txt'), 'from the server\n');
    await writeFile(join(dir, 'mine.txt'), 'mine\n');
    const server = await startFileServer(V4, { paths: [join(dir, 'srv.txt')] });
    t.after(() => server.close());
    const r = await runCli(['get', formatEndpoint(server.endpoint), '-o', 'mine.txt'], { cwd: dir });
    assert.equal(r.code, 2, r.stderr);
    assert.equal(codeOf(r.stderr), 'ERR_EXISTS');
    assert.match(r.stderr, /'mine\.txt' already exists/);
    assert.doesNotMatch(r.stderr, /srv\.txt/);
    assert.equal(await readFile(join(dir, 'mine.txt'), 'utf8'), 'mine\n');
  });

  it('get -o - without --raw is a usage error and creates no file named -', async (t) => {
    const dir = tempDir(t);
    await writeFile(join(dir, 'srv.txt'), 'from the server\n');
    const server = await startFileServer(V4, { paths: [join(dir, 'srv.txt')] });
    t.after(() => server.close());
    const out = tempDir(t);
    const r = await runCli(['get', formatEndpoint(server.endpoint), '-o', '-'], { cwd: out });
    assert.equal(r.code, 2, r.stderr);
    assert.equal(codeOf(r.stderr), 'ERR_USAGE');
    assert.match(r.stderr, /--raw/);
    assert.deepEqual(await readdir(out), []);
  });

  it('get --dir FILE (or FILE/sub) says FILE is a file, not a raw EEXIST/ENOTDIR', async (t) => {
    const dir = tempDir(t);
    await writeFile(join(dir, 'f.txt'), 'x');
    const port = String(await freePort());
    for (const target of ['f.txt', join('f.txt', 'sub')]) {
      const r = await runCli(['get', port, '--dir', target], { cwd: dir });
      assert.equal(r.code, 2, r.stderr);
      assert.equal(codeOf(r.stderr), 'ERR_USAGE', r.stderr);
      assert.match(r.stderr, /'f\.txt' is a file, not a folder/);
    }
  });

  it('send, refused because the file exists, says --force is the receiver\'s option', async (t) => {
    const dir = tempDir(t);
    const inbox = join(dir, 'inbox');
    await mkdir(inbox);
    await writeFile(join(inbox, 'a.txt'), 'there already\n');
    await writeFile(join(dir, 'a.txt'), 'new\n');
    const server = await startReceiveServer(V4, { dir: inbox });
    t.after(() => server.close());
    const r = await runCli(['send', formatEndpoint(server.endpoint), join(dir, 'a.txt')]);
    assert.equal(r.code, 2, r.stderr);
    assert.equal(codeOf(r.stderr), 'ERR_EXISTS');
    assert.match(r.stderr, /receive --force/);
    assert.doesNotMatch(r.stderr, /[^e] --force/, `an unqualified --force reads as send's option:\n${r.stderr}`);
  });
});

describe('echo with a folder on standard input fails at once (real binary)', () => {
  for (const mode of [[], ['--framed'], ['--udp']]) {
    it(`socketkit echo PORT${mode.map((m) => ` ${m}`).join('')} < some-folder`, async (t) => {
      const folder = tempDir(t);
      // An echo that answers: on the old code the run "succeeded" with 0 bytes echoed.
      const server = mode.includes('--udp') ? await startUdpEchoServer(V4) : await startManagedEchoServer(V4, { framed: mode.includes('--framed') });
      t.after(() => server.close());
      // The shell opens the folder as standard input, as `< some-folder` does at a prompt.
      const r = await run('sh', ['-c', 'exec "$@" < "$SK_FOLDER"', 'sh', process.execPath, BIN, 'echo', formatEndpoint(server.endpoint), ...mode], {
        env: { ...process.env, SK_FOLDER: folder },
      });
      assert.equal(r.code, 2, r.stderr);
      assert.equal(codeOf(r.stderr), 'ERR_USAGE', r.stderr);
      assert.match(r.stderr, /standard input is a folder/);
      assert.equal(r.stdout.length, 0);
    });
  }
});

describe('an IPv6 address with a port', () => {
  it('ipv6PortHint: only for a bare IPv6 literal whose last group reads as a port', () => {
    assert.match(ipv6PortHint('::1:9800') ?? '', /write \[::1\]:9800/);
    assert.match(ipv6PortHint('2001:db8::1:443') ?? '', /write \[2001:db8::1\]:443/);
    for (const text of ['::1', '[::1]:9800', '127.0.0.1:9800', '9800', 'fe80::1:abcd', 'unix:/tmp/a:1', '::1:0']) {
      assert.equal(ipv6PortHint(text), undefined, text);
    }
  });

  it('socketkit echo ::1:9800, failing, says to write [::1]:9800', async () => {
    // ::1:9800 is the address 0:0:0:0:0:0:1:9800 (nothing answers there, whatever listens on 9800).
    const r = await runCli(['echo', '::1:9800', 'hi', '--timeout', '2']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /write \[::1\]:9800/);
    assert.equal(r.stderr.split('\n').filter((l) => l !== '').length, 1, 'still one line');
  });

  it('::1:65000, not an address at all, is a bad address that shows the bracketed form', async () => {
    const r = await runCli(['echo', '::1:65000', 'hi']);
    assert.equal(codeOf(r.stderr), 'ERR_BAD_ADDRESS');
    assert.match(r.stderr, /\[::1\]:65000/);
  });
});

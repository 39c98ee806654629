// connect --dump and listen --dump (issue 14): the proxy's one renderer on stderr, both
// directions, offsets per direction, stdout only the data, nothing of the peer's raw on the
// terminal; and the dump's output holds the relay back while it is full.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect as netConnect, type Socket } from 'node:net';
import { PassThrough, Writable } from 'node:stream';
import { runCli, spawnCli } from './helpers/cli.js';
import { startTestServer, waitUntil } from './helpers/net.js';
import { formatEndpoint } from '../src/net/endpoint.js';
import { pump, type Hold } from '../src/relay/pump.js';

const ESC = '\x1b';
/** What the peer sends: a colour change, a title escape, a NUL, a CR LF, a high byte. */
const HOSTILE = Buffer.from(`red${ESC}[31mX${ESC}]0;owned\x07\x00\r\n\xff`, 'latin1');

function headers(stderr: string): string[] {
  return stderr.split('\n').filter((l) => /^[<>] \d{4}-\d\d-\d\dT/.test(l));
}

describe('--dump on connect and listen', { timeout: 60_000 }, () => {
  it('connect --dump text: both directions with offsets on stderr, escaped; stdout exactly the bytes', async (t) => {
    const srv = await startTestServer({ kind: 'inet', host: '127.0.0.1', port: 0 }, (s) => {
      let got = 0;
      s.on('data', (c: Buffer) => {
        got += c.length;
        // Answer only once both pieces of the request are in: two chunks the other way.
        if (got === 11) s.write(HOSTILE.subarray(0, 5), () => setImmediate(() => s.end(HOSTILE.subarray(5))));
      });
    }, t);
    const r = await runCli(['connect', formatEndpoint(srv.endpoint), '--dump', 'text'], { input: 'hello\nGET\r\n', timeoutMs: 15_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout, HOSTILE, 'stdout carries the data, untouched');
    assert.ok(!r.stderr.includes(ESC) && !r.stderr.includes('\x07') && !r.stderr.includes('\x00'), `no raw control byte on stderr: ${JSON.stringify(r.stderr)}`);
    const h = headers(r.stderr);
    assert.ok(h.some((l) => /^> .* #1 offset=0 length=\d+$/.test(l)), r.stderr);
    const received = h.filter((l) => l.startsWith('<'));
    assert.ok(received.length >= 1, r.stderr);
    assert.match(received[0]!, /#1 offset=0 length=/);
    // Offsets count the peer's bytes: the last chunk starts where the others ended.
    const lengths = received.map((l) => Number(/length=(\d+)/.exec(l)![1]));
    assert.equal(lengths.reduce((a, b) => a + b, 0), HOSTILE.length);
    if (received.length > 1) assert.match(received[1]!, new RegExp(`offset=${lengths[0]}`));
    // The bodies, chunk after chunk, without the headers and the line breaks the renderer adds.
    const bodies = r.stderr
      .split('\n')
      .filter((l) => !/^[<>] \d{4}-/.test(l) && !l.startsWith('connection to'))
      .join('');
    assert.ok(bodies.includes('red\\x1b[31mX\\x1b]0;owned\\x07\\x00\\r\\n\\xff'), bodies);
    assert.ok(bodies.includes('hello\\nGET\\r\\n'), bodies);
  });

  it('listen --dump hex: the client bytes as hex rows, stdin to the client dumped as sent; stdout only the data', async (t) => {
    const p = spawnCli(['listen', '127.0.0.1:0', '--dump', 'hex'], t, { keepStdin: true });
    const line = await p.stderr.waitFor(/^listening on /);
    const port = Number(/:(\d+) /.exec(line)![1]);
    const s: Socket = netConnect({ host: '127.0.0.1', port, allowHalfOpen: true });
    const back: Buffer[] = [];
    s.on('data', (c: Buffer) => back.push(c));
    await new Promise<void>((resolve, reject) => s.once('connect', resolve).once('error', reject));
    s.end(HOSTILE);
    p.child.stdin!.end('reply to you\n');
    await new Promise<void>((resolve) => s.once('end', resolve));
    s.destroy();
    const { code } = await p.waitExit();
    assert.equal(code, 0, p.stderr.text);
    assert.equal(Buffer.concat(back).toString(), 'reply to you\n');
    assert.equal(p.stdout.text, HOSTILE.toString('utf8'), 'stdout: the client bytes');
    const err = p.stderr.text;
    assert.ok(!err.includes(ESC) && !err.includes('\x07'), JSON.stringify(err));
    assert.match(err, /^< .* #1 offset=0 length=23$/m);
    assert.match(err, /^00000000 {2}72 65 64 1b 5b 33 31 6d 58 1b 5d 30 3b 6f 77 6e {2}red\.\[31mX\.\]0;own$/m);
    assert.match(err, /^00000010 {2}65 64/m);
    assert.match(err, /^> .* #1 offset=0 length=13$/m);
    assert.match(err, /72 65 70 6c 79 20 74 6f 20 79 6f 75 0a/);
  });

  it('--dump with --exec shows what passes between the peer and the program', async (t) => {
    const srv = await startTestServer({ kind: 'inet', host: '127.0.0.1', port: 0 }, (s) => {
      s.end('to the program\n');
      s.resume();
    }, t);
    const r = await runCli(['connect', formatEndpoint(srv.endpoint), '--sh-exec', 'cat >/dev/null; echo done', '--dump', 'text'], { timeoutMs: 15_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.length, 0);
    assert.match(r.stderr, /^< .* #1 offset=0 length=15\nto the program\\n$/m);
    assert.match(r.stderr, /^> .* #1 offset=0 length=5\ndone\\n$/m);
  });

  it('--dump needs text or hex; with --udp it is refused', async () => {
    const a = await runCli(['connect', '127.0.0.1:9', '--dump', 'ascii']);
    assert.equal(a.code, 2);
    assert.match(a.stderr, /--dump: 'ascii' is not text or hex/);
    const b = await runCli(['connect', '127.0.0.1:9', '--udp', '--dump', 'hex']);
    assert.equal(b.code, 2);
    assert.match(b.stderr, /--dump is for TCP and Unix sockets/);
  });
});

describe('pump: a full dump holds the source', () => {
  it('pauses while the hold is full and resumes when it drains', async () => {
    const src = new PassThrough();
    const dst = new Writable({ write: (_c, _e, cb) => cb() });
    let full = false;
    let waiter: (() => void) | undefined;
    const hold: Hold = {
      get full() {
        return full;
      },
      whenDrained: (fn) => {
        waiter = fn;
      },
    };
    let seen = 0;
    const done = pump(src, dst, { hold, onChunk: () => (full = ++seen === 1) });
    src.write('a');
    await waitUntil(() => seen === 1, 'the first chunk');
    assert.equal(src.isPaused(), true, 'paused while the dump is full');
    src.write('b');
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(seen, 1, 'nothing more is read meanwhile');
    full = false;
    waiter!();
    await waitUntil(() => seen === 2, 'the second chunk after the drain');
    src.end();
    assert.deepEqual(await done, { bytes: 2, discarded: 0 });
  });
});

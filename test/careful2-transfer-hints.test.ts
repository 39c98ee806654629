// `get` told what it is talking to (issue 12, items 8 and 13): `get --raw` against a framed
// `serve` fails at once ("drop --raw") instead of stalling; `get` against a raw sender (serve
// --raw, nc -l), even one shorter than a frame header, says "try --raw"; `get` against a TLS
// server that closes without a byte suggests TLS. The real binary, loopback only.
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { open, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generateCertificate } from '../src/security/index.js';
import { encodeHello } from '../src/transfer/protocol.js';
import { sniffSkftHello } from '../src/transfer/link.js';
import { encodeFrame } from '../src/codec/index.js';
import { requireTool, runCli, spawnCli, type RunResult } from './helpers/cli.js';
import { freePort } from './helpers/net.js';
import { tempDir } from './helpers/tmp.js';

/** Starts `serve ARGS --listen 127.0.0.1:0 --json` and returns its port once it listens. */
async function serve(t: TestContext, args: readonly string[]): Promise<string> {
  const proc = spawnCli(['serve', ...args, '--listen', '127.0.0.1:0', '--json'], t);
  const line = await proc.stdout.waitFor(/"event":"listening"/);
  const { address } = JSON.parse(line) as { address: string };
  return address.split(':').pop()!;
}

/** The error line's code. */
function code(stderr: string): string | undefined {
  return /\((ERR_[A-Z_]+)\)\s*$/m.exec(stderr)?.[1];
}

describe('get knows which protocol the server speaks', () => {
  it('sniffs an SKFT hello fed one byte at a time, and gives up on other bytes at once', () => {
    const hello = Buffer.concat(encodeFrame(encodeHello('sender', { entries: 1, files: 1, bytes: 3 })).map((p) => Buffer.from(p)));
    for (let n = 1; n < hello.length; n++) assert.equal(sniffSkftHello(hello.subarray(0, n)), 'more', `after ${n} bytes`);
    assert.equal(sniffSkftHello(hello), 'skft');
    // Text: its first byte is a length no hello has.
    assert.equal(sniffSkftHello(Buffer.from('h')), 'raw');
    // A plausible length, then something that is not the magic.
    assert.equal(sniffSkftHello(Buffer.from([0, 0, 0, 20, 0x53, 0x4b, 0x46, 0x58])), 'raw');
    // A length too short for a hello.
    assert.equal(sniffSkftHello(Buffer.from([0, 0, 0, 3])), 'raw');
  });

  it('get --raw against a framed serve fails at once: drop --raw, and no partial file', async (t) => {
    const dir = tempDir(t, 'sk-c2-');
    await writeFile(join(dir, 'f.txt'), 'hello\n');
    const port = await serve(t, [join(dir, 'f.txt')]);
    const t0 = performance.now();
    // The stall timeout is long: only recognising the hello can end this quickly.
    const r = await runCli(['get', port, '--raw', '-o', join(dir, 'out'), '--stall-timeout', '20s'], { timeoutMs: 15_000 });
    assert.ok(performance.now() - t0 < 10_000, 'answered without waiting for the stall timeout');
    assert.equal(r.code, 2, r.stderr);
    assert.equal(code(r.stderr), 'ERR_TRANSFER_PROTOCOL', r.stderr);
    assert.match(r.stderr, /drop --raw/);
    assert.doesNotMatch(r.stderr, /-N/);
    assert.deepEqual((await readdir(dir)).sort(), ['f.txt'], 'neither out nor .out.sk-partial was left');
  });

  it('get --raw still receives a stream shorter than a hello, and one that starts like a frame', async (t) => {
    const dir = tempDir(t, 'sk-c2-');
    for (const [name, bytes] of [
      ['tiny', Buffer.from('hi\n')],
      ['framed-looking', Buffer.from([0, 0, 0, 40, 0x53, 0x4b, 0x46, 0x58, 1, 2, 3])],
    ] as const) {
      await writeFile(join(dir, name), bytes);
      const port = await serve(t, [join(dir, name), '--raw', '--once']);
      const r = await runCli(['get', port, '--raw', '-o', '-']);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(r.stdout, bytes, name);
    }
  });

  it('get against serve --raw says try --raw, for a long file and for one shorter than a frame header', async (t) => {
    const dir = tempDir(t, 'sk-c2-');
    await writeFile(join(dir, 'big'), Buffer.alloc(200_000, 0x61));
    await writeFile(join(dir, 'tiny'), 'hi\n');
    for (const name of ['big', 'tiny']) {
      const port = await serve(t, [join(dir, name), '--raw']);
      const r = await runCli(['get', port, '--dir', join(dir, 'in')]);
      assert.equal(r.code, 2, r.stderr);
      assert.equal(code(r.stderr), 'ERR_TRANSFER_PROTOCOL', `${name}: ${r.stderr}`);
      assert.match(r.stderr, /try --raw/, name);
    }
  });

  it('get against nc -l < file says try --raw', async (t) => {
    if (!requireTool(t, 'nc', 'netcat-openbsd')) return;
    const dir = tempDir(t, 'sk-c2-');
    await writeFile(join(dir, 'f'), 'hi\n');
    const input = await open(join(dir, 'f'), 'r');
    t.after(() => input.close());
    const port = await freePort();
    const nc = spawn('nc', ['-N', '-l', '-p', String(port)], { stdio: [input.fd, 'ignore', 'ignore'], detached: true });
    t.after(() => {
      if (nc.exitCode === null && nc.signalCode === null) process.kill(-nc.pid!, 'SIGKILL');
    });
    // nc prints nothing when it listens: a refused connect is retried, a bounded number of times.
    let r: RunResult | undefined;
    for (let i = 0; i < 50; i++) {
      r = await runCli(['get', String(port), '--dir', join(dir, 'in')]);
      if (code(r.stderr) !== 'ERR_CONN_REFUSED') break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.equal(r!.code, 2, r!.stderr);
    assert.equal(code(r!.stderr), 'ERR_TRANSFER_PROTOCOL', r!.stderr);
    assert.match(r!.stderr, /try --raw/);
  });

  it('get (plaintext) against a TLS serve suggests --tls and --pin', async (t) => {
    const dir = tempDir(t, 'sk-c2-');
    const cert = await generateCertificate();
    await writeFile(join(dir, 'c.pem'), cert.cert);
    await writeFile(join(dir, 'k.pem'), cert.key, { mode: 0o600 });
    await writeFile(join(dir, 'f.txt'), 'secret\n');
    const port = await serve(t, [join(dir, 'f.txt'), '--cert', join(dir, 'c.pem'), '--key', join(dir, 'k.pem')]);
    const r = await runCli(['get', port, '--dir', join(dir, 'in')]);
    assert.equal(r.code, 2, r.stderr);
    assert.equal(code(r.stderr), 'ERR_CONN_CLOSED', r.stderr);
    assert.match(r.stderr, /--tls/);
    assert.match(r.stderr, /--pin/);
    assert.equal(existsSync(join(dir, 'in', 'f.txt')), false);
  });
});

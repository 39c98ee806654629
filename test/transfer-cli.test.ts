// The transfer commands as users run them: the real binary (`node bin/socketkit.js`), nc on the
// other end in raw mode (both ways), a sender killed with SIGKILL mid-stream and then resumed,
// exit codes and one-line coded errors, --json and -q. Loopback only; every child is reaped and
// every server closed when its test ends.
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer, connect as netConnect, type Socket } from 'node:net';
import { mkdir, open, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Endpoint } from '../src/net/endpoint.js';
import { startReceiveServer, startFileServer, type TransferServer } from '../src/transfer/index.js';
import { BIN, requireTool } from './helpers/cli.js';
import { freePort } from './helpers/net.js';
import { tempDir } from './helpers/tmp.js';

const LOOPBACK: Endpoint = { kind: 'inet', host: '127.0.0.1', port: 0 };

interface Run {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Starts a child, kills it when the test ends, and collects its output. */
function start(t: TestContext, cmd: string, args: readonly string[], stdoutFd?: number): { child: ChildProcess; done: Promise<Run> } {
  const child = spawn(cmd, args, { stdio: ['ignore', stdoutFd ?? 'pipe', 'pipe'] });
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr?.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const done = new Promise<Run>((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })));
  return { child, done };
}

const cli = (t: TestContext, ...args: string[]): Promise<Run> => start(t, process.execPath, [BIN, ...args]).done;

/** Waits (bounded) for the JSON `listening` event of a server command and returns its address. */
async function listening(child: ChildProcess): Promise<string> {
  let buf = '';
  return new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('server did not report listening')), 10_000);
    child.stdout!.on('data', (s: Buffer | string) => {
      buf += s.toString();
      for (const line of buf.split('\n')) {
        if (!line.startsWith('{')) continue;
        try {
          const e = JSON.parse(line) as { event?: string; address?: string };
          if (e.event === 'listening' && e.address) {
            clearTimeout(timer);
            resolve(e.address);
          }
        } catch {
          // A partial line: wait for the rest.
        }
      }
    });
  });
}

async function track<T extends TransferServer>(t: TestContext, server: Promise<T>): Promise<T> {
  const s = await server;
  t.after(() => s.close());
  return s;
}

const addr = (ep: Endpoint): string => (ep.kind === 'inet' ? `${ep.host}:${ep.port}` : `unix:${ep.path}`);

describe('raw interop with nc', () => {
  it('serve --raw → nc HOST PORT > out', async (t) => {
    if (!requireTool(t, 'nc', 'netcat-openbsd')) return;
    const dir = tempDir(t, 'sk-transfer-cli-');
    const data = randomBytes(5 * 1024 * 1024 + 11);
    await writeFile(join(dir, 'f'), data);
    const server = start(t, process.execPath, [BIN, 'serve', join(dir, 'f'), '--raw', '--once', '--listen', '127.0.0.1:0', '--json']);
    const [, port] = (await listening(server.child)).split(':');
    const out = await open(join(dir, 'out'), 'w');
    try {
      const nc = await start(t, 'nc', ['-d', '127.0.0.1', port!], out.fd).done;
      assert.equal(nc.code, 0, nc.stderr);
    } finally {
      await out.close();
    }
    assert.ok((await readFile(join(dir, 'out'))).equals(data));
    assert.equal((await server.done).code, 0);
  });

  it('nc -N -l -p PORT < file → get --raw -o out', async (t) => {
    if (!requireTool(t, 'nc', 'netcat-openbsd')) return;
    const dir = tempDir(t, 'sk-transfer-cli-');
    const data = randomBytes(5 * 1024 * 1024 + 13);
    await writeFile(join(dir, 'f'), data);
    const port = await freePort();
    const input = await open(join(dir, 'f'), 'r');
    t.after(() => input.close());
    const nc = spawn('nc', ['-N', '-l', '-p', String(port)], { stdio: [input.fd, 'ignore', 'pipe'] });
    t.after(() => {
      if (nc.exitCode === null) nc.kill('SIGKILL');
    });
    // nc may not be listening yet: retry a refused connect, a bounded number of times.
    let run: Run | undefined;
    for (let i = 0; i < 50; i++) {
      run = await cli(t, 'get', `127.0.0.1:${port}`, '--raw', '-o', join(dir, 'out'), '--json');
      if (!run.stderr.includes('ERR_CONN_REFUSED')) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(run?.code, 0, run?.stderr);
    const summary = JSON.parse(run.stdout.trim().split('\n').at(-1)!) as { bytes: number };
    assert.equal(summary.bytes, data.length);
    assert.ok((await readFile(join(dir, 'out'))).equals(data));
  });

  it('get --raw -o - writes the stream to standard output', async (t) => {
    const dir = tempDir(t, 'sk-transfer-cli-');
    const data = randomBytes(300_000);
    await writeFile(join(dir, 'f'), data);
    const server = await track(t, startFileServer(LOOPBACK, { paths: [join(dir, 'f')], raw: true }));
    const out = await open(join(dir, 'out'), 'w');
    try {
      const run = await start(t, process.execPath, [BIN, 'get', addr(server.endpoint), '--raw', '-o', '-'], out.fd).done;
      assert.equal(run.code, 0, run.stderr);
    } finally {
      await out.close();
    }
    assert.ok((await readFile(join(dir, 'out'))).equals(data));
  });
});

describe('resume after the sender is killed', () => {
  it('send killed with SIGKILL mid-stream leaves a .part; send again resumes to a verified identical file', async (t) => {
    const dir = tempDir(t, 'sk-transfer-cli-');
    const size = 32 * 1024 * 1024;
    const data = randomBytes(size);
    await writeFile(join(dir, 'big.bin'), data);
    const inbox = join(dir, 'inbox');
    const server = await track(t, startReceiveServer(LOOPBACK, { dir: inbox }));
    // A proxy that lets the first 6 MiB through and swallows the rest, so the .part stops
    // growing at a known point while the sender still believes it is sending.
    const HOLD = 6 * 1024 * 1024;
    const sockets = new Set<Socket>();
    const proxy = createServer((client) => {
      const up = netConnect({ host: '127.0.0.1', port: (server.endpoint as { port: number }).port });
      sockets.add(client).add(up);
      client.on('error', () => undefined);
      up.on('error', () => undefined);
      let seen = 0;
      client.on('data', (chunk: Buffer) => {
        const room = Math.max(0, HOLD - seen);
        seen += chunk.length;
        if (room > 0) up.write(chunk.subarray(0, room));
      });
      up.on('data', (chunk: Buffer) => client.write(chunk));
      client.on('close', () => up.destroy());
      up.on('close', () => client.destroy());
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    t.after(
      () =>
        new Promise<void>((resolve) => {
          for (const s of sockets) s.destroy();
          proxy.close(() => resolve());
        }),
    );
    const sender = start(t, process.execPath, [BIN, 'send', `127.0.0.1:${(proxy.address() as { port: number }).port}`, join(dir, 'big.bin'), '--json']);
    const part = join(inbox, '.big.bin.sk-partial');
    let kept = 0;
    for (let i = 0; i < 200 && kept < 4 * 1024 * 1024; i++) {
      await new Promise((r) => setTimeout(r, 25));
      kept = (await stat(part).catch(() => undefined))?.size ?? 0;
    }
    assert.ok(kept >= 4 * 1024 * 1024, `the .part reached ${kept} bytes`);
    sender.child.kill('SIGKILL');
    assert.equal((await sender.done).signal, 'SIGKILL');
    // The receiver sees the connection go and keeps the .part (no final file).
    for (let i = 0; i < 200 && server.stats.active > 0; i++) await new Promise((r) => setTimeout(r, 25));
    kept = (await stat(part)).size;
    assert.ok(kept > 0 && kept < size);
    await assert.rejects(stat(join(inbox, 'big.bin')), { code: 'ENOENT' });

    const again = await cli(t, 'send', addr(server.endpoint), join(dir, 'big.bin'), '--json');
    assert.equal(again.code, 0, again.stderr);
    const events = again.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { event: string; offset?: number; transferred?: number; files?: number });
    assert.equal(events.find((e) => e.event === 'file-start')?.offset, kept, 'continued from the .part');
    const summary = events.at(-1)!;
    assert.equal(summary.event, 'summary');
    assert.equal(summary.files, 1);
    assert.equal(summary.transferred, size - kept);
    assert.ok((await readFile(join(inbox, 'big.bin'))).equals(data));
    await assert.rejects(stat(part), { code: 'ENOENT' });
  });
});

describe('commands: errors, exit codes, output modes', () => {
  it('serve --once and get: files arrive, get prints one summary line, -q prints nothing', async (t) => {
    const dir = tempDir(t, 'sk-transfer-cli-');
    await mkdir(join(dir, 'src', 'sub'), { recursive: true });
    await writeFile(join(dir, 'src', 'a.txt'), 'alpha');
    await writeFile(join(dir, 'src', 'sub', 'b.bin'), randomBytes(100_000));
    const server = start(t, process.execPath, [BIN, 'serve', join(dir, 'src'), '--once', '--listen', '127.0.0.1:0', '--json']);
    const address = await listening(server.child);
    const got = await cli(t, 'get', address, '--dir', join(dir, 'out'));
    assert.equal(got.code, 0, got.stderr);
    assert.match(got.stdout, /^2 files and 2 folders, [\d.]+ (B|KiB|MiB) in [\d.]+ s, [\d.,]+ [kMG]?B\/s\n$/);
    assert.equal(await readFile(join(dir, 'out', 'src', 'a.txt'), 'utf8'), 'alpha');
    assert.equal((await server.done).code, 0);

    const quiet = await track(t, startFileServer(LOOPBACK, { paths: [join(dir, 'src', 'a.txt')] }));
    const q = await cli(t, 'get', addr(quiet.endpoint), '--dir', join(dir, 'q'), '-q');
    assert.equal(q.code, 0);
    assert.equal(q.stdout + q.stderr, '');
  });

  it('an existing file is refused: exit 2 with one coded line; the file is untouched', async (t) => {
    const dir = tempDir(t, 'sk-transfer-cli-');
    await writeFile(join(dir, 'a.txt'), 'new');
    await mkdir(join(dir, 'out'));
    await writeFile(join(dir, 'out', 'a.txt'), 'old');
    const server = await track(t, startFileServer(LOOPBACK, { paths: [join(dir, 'a.txt')] }));
    const run = await cli(t, 'get', addr(server.endpoint), '--dir', join(dir, 'out'));
    assert.equal(run.code, 2);
    assert.match(run.stderr, /^socketkit: .*\(ERR_EXISTS\)$/m);
    assert.doesNotMatch(run.stderr, /\n\s+at /, 'no stack trace');
    assert.equal(await readFile(join(dir, 'out', 'a.txt'), 'utf8'), 'old');
    const forced = await cli(t, 'get', addr(server.endpoint), '--dir', join(dir, 'out'), '--force', '-q');
    assert.equal(forced.code, 0);
    assert.equal(await readFile(join(dir, 'out', 'a.txt'), 'utf8'), 'new');
  });

  it('usage errors are coded: raw without -o, raw with --resume, a missing path', async (t) => {
    const dir = tempDir(t, 'sk-transfer-cli-');
    for (const args of [
      ['get', '127.0.0.1:9', '--raw'],
      ['get', '127.0.0.1:9', '--raw', '-o', join(dir, 'x'), '--resume'],
    ]) {
      const run = await cli(t, ...args);
      assert.equal(run.code, 2);
      assert.match(run.stderr, /\(ERR_USAGE\)/);
    }
    const missing = await cli(t, 'send', '127.0.0.1:9', join(dir, 'nope'));
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /\(ERR_NOT_FOUND\)/);
  });

  it('a full disk is one coded line: get --raw -o /dev/full exits 2 with ERR_DISK_FULL', async (t) => {
    const dir = tempDir(t, 'sk-transfer-cli-');
    await writeFile(join(dir, 'f'), randomBytes(200_000));
    const server = await track(t, startFileServer(LOOPBACK, { paths: [join(dir, 'f')], raw: true }));
    const run = await cli(t, 'get', addr(server.endpoint), '--raw', '-o', '/dev/full');
    assert.equal(run.code, 2);
    assert.match(run.stderr, /^socketkit: .*\(ERR_DISK_FULL\)\n$/);
  });

  it('receive --once with send: --json events and summary', async (t) => {
    const dir = tempDir(t, 'sk-transfer-cli-');
    const data = randomBytes(2 * 1024 * 1024);
    await writeFile(join(dir, 'f.bin'), data);
    const recv = start(t, process.execPath, [BIN, 'receive', '--once', '--listen', '127.0.0.1:0', '--dir', join(dir, 'in'), '--json']);
    const address = await listening(recv.child);
    const sent = await cli(t, 'send', address, join(dir, 'f.bin'), '--json');
    assert.equal(sent.code, 0, sent.stderr);
    const received = await recv.done;
    assert.equal(received.code, 0, received.stderr);
    const events = received.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { event: string; sha256?: string });
    assert.ok(events.some((e) => e.event === 'file-done' && typeof e.sha256 === 'string'));
    assert.ok((await readFile(join(dir, 'in', 'f.bin'))).equals(data));
  });
});

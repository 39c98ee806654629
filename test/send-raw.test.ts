// `socketkit send --raw ADDR FILE` (issue 14): a raw upload to nc -l and to socketkit listen,
// SHA-256 checked, and its ending told honestly: the peer's FIN after ours (it read everything),
// a FIN that came first (tells nothing), a reset (it did not read everything), no close at all.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BIN, requireTool, runCli, spawnCli, spawnProcess } from './helpers/cli.js';
import { freePort, startTestServer } from './helpers/net.js';
import { tempDir } from './helpers/tmp.js';
import { formatEndpoint } from '../src/net/endpoint.js';
import { uploadRaw } from '../src/relay/raw-upload.js';
import { waitForListeningOnce } from './helpers/listen.js';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const LOOP = { kind: 'inet', host: '127.0.0.1', port: 0 } as const;

describe('send --raw', { timeout: 90_000 }, () => {
  const data = randomBytes(32 * 1024 * 1024 + 3);

  it('to OpenBSD nc -l > file: every byte (SHA-256), and the close acknowledged', async (t) => {
    if (!requireTool(t, 'nc', 'netcat-openbsd')) return;
    const dir = tempDir(t);
    const src = join(dir, 'in.bin');
    await writeFile(src, data);
    const port = await freePort();
    const nc = spawnProcess('sh', ['-c', `exec nc -l 127.0.0.1 ${port} > ${join(dir, 'out.bin')}`], t, { keepStdin: true });
    await waitForListeningOnce(port);
    const r = await runCli(['send', '--raw', `127.0.0.1:${port}`, src, '--json'], { timeoutMs: 30_000 });
    assert.equal(r.code, 0, r.stderr);
    const summary = JSON.parse(r.stdout.toString().trim().split('\n').at(-1)!) as Record<string, unknown>;
    assert.equal(summary['bytes'], data.length);
    assert.equal(summary['close'], 'acknowledged');
    assert.equal(summary['acknowledged'], true);
    assert.equal((await nc.waitExit()).code, 0);
    assert.equal(sha(await readFile(join(dir, 'out.bin'))), sha(data));
  });

  it('to socketkit listen > file (its stdin closed, so it half-closes first): every byte, and said that the close proves nothing', async (t) => {
    const dir = tempDir(t);
    const src = join(dir, 'in.bin');
    await writeFile(src, data);
    const out = join(dir, 'out.bin');
    const l = spawnProcess('sh', ['-c', `exec "${process.execPath}" "${BIN}" listen 127.0.0.1:0 > ${out} < /dev/null`], t);
    const line = await l.stderr.waitFor(/^listening on /);
    const port = Number(/:(\d+) /.exec(line)![1]);
    const r = await runCli(['send', '--raw', `127.0.0.1:${port}`, src], { timeoutMs: 30_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr + r.stdout.toString(), new RegExp(`sent 32\\.0 MiB to 127\\.0\\.0\\.1:${port} .*the peer had half-closed before our end`));
    assert.equal((await l.waitExit()).code, 0);
    assert.equal(sha(await readFile(out)), sha(data));
  });

  it('to socketkit listen at a terminal-like end (stdin kept open, -q): it keeps the connection, so the close goes unanswered: ERR_TIMEOUT after --close-timeout', async (t) => {
    const dir = tempDir(t);
    const src = join(dir, 'in.bin');
    await writeFile(src, data.subarray(0, 1024 * 1024));
    const l = spawnCli(['listen', '127.0.0.1:0'], t, { keepStdin: true });
    const line = await l.stderr.waitFor(/^listening on /);
    const port = Number(/:(\d+) /.exec(line)![1]);
    const r = await runCli(['send', '--raw', `127.0.0.1:${port}`, src, '--close-timeout', '0.3'], { timeoutMs: 20_000 });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /all 1048576 bytes were written to 127\.0\.0\.1:\d+, but it did not close within .*whether it read them is not known.*\(ERR_TIMEOUT\)/);
    l.kill('SIGINT');
    await l.waitExit();
  });

  it('a peer that closes without reading everything resets: ERR_CONN_RESET, never a success', async (t) => {
    const dir = tempDir(t);
    const src = join(dir, 'in.bin');
    await writeFile(src, data);
    // Reads nothing at all, then closes once our FIN is in: unread bytes make its close a reset.
    const srv = await startTestServer(LOOP, (s) => {
      s.pause();
      setTimeout(() => s.destroy(), 200);
    }, t);
    await assert.rejects(uploadRaw(srv.endpoint, src, { closeTimeoutMs: 5_000, stallTimeoutMs: 5_000 }), (e: unknown) => (e as { code?: string }).code === 'ERR_CONN_RESET');
  });

  it('usage: one ADDR and one FILE; --close-timeout needs --raw', async () => {
    const a = await runCli(['send', '--raw', '127.0.0.1:9', 'a', 'b']);
    assert.equal(a.code, 2);
    assert.match(a.stderr, /send --raw takes one ADDR and one FILE/);
    const b = await runCli(['send', '127.0.0.1:9', 'a', '--close-timeout', '1']);
    assert.equal(b.code, 2);
    assert.match(b.stderr, /--close-timeout applies only with --raw/);
  });

  it('over a Unix socket, in the library: acknowledged by a reader that closes at its end', async (t) => {
    const dir = tempDir(t);
    const src = join(dir, 'in.bin');
    await writeFile(src, data.subarray(0, 4 * 1024 * 1024));
    const parts: Buffer[] = [];
    const srv = await startTestServer({ kind: 'unix', path: join(dir, 's.sock') }, (s) => {
      s.on('data', (c: Buffer) => parts.push(c));
      s.once('end', () => s.end());
    }, t);
    const r = await uploadRaw(srv.endpoint, src);
    assert.equal(r.close, 'acknowledged');
    assert.equal(r.bytes, 4 * 1024 * 1024);
    assert.equal(sha(Buffer.concat(parts)), sha(data.subarray(0, 4 * 1024 * 1024)));
    assert.equal(formatEndpoint(srv.endpoint), r.peer);
  });

  it('a missing file or a folder is refused before the peer is contacted (no connection, no reset)', async (t) => {
    const srv = await startTestServer(LOOP, (s) => s.resume(), t);
    const dir = tempDir(t);
    await assert.rejects(uploadRaw(srv.endpoint, join(dir, 'missing.bin')), { code: 'ERR_NOT_FOUND' });
    await assert.rejects(uploadRaw(srv.endpoint, dir), { code: 'ERR_INVALID_ARG' });
    assert.equal(srv.accepted, 0);
  });
});

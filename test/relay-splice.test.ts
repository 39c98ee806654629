// The splice(2) pump of connect and listen (native/splice.c, src/relay/splice-relay.ts) and its
// JS fallback: the same behaviour on both engines (every case runs on each), and the engine
// chosen said in the --json ending. Every case is bounded.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Socket } from 'node:net';
import { connect as netConnect } from 'node:net';
import { BIN, ndjson, runCli, spawnProcess } from './helpers/cli.js';
import { startTestServer, waitUntil } from './helpers/net.js';
import { tempDir } from './helpers/tmp.js';
import { formatEndpoint } from '../src/net/endpoint.js';
import { nativeModule } from '../src/native/helper.js';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const LOOP = { kind: 'inet', host: '127.0.0.1', port: 0 } as const;
const spliceBuilt = nativeModule<{ spliceStart: unknown; spliceStop: unknown }>(['spliceStart', 'spliceStop']) !== undefined;

function collect(s: Socket): Promise<Buffer> {
  const parts: Buffer[] = [];
  s.on('data', (c: Buffer) => parts.push(c));
  return new Promise((resolve) => s.once('end', () => resolve(Buffer.concat(parts))));
}

function closedEvent(stderr: string): Record<string, unknown> {
  const e = ndjson(stderr).find((x) => x['event'] === 'closed');
  assert.ok(e, stderr);
  return e;
}

const ENGINES = [
  { engine: 'splice', env: { ...process.env, SOCKETKIT_NATIVE: '1' } },
  { engine: 'js', env: { ...process.env, SOCKETKIT_NATIVE: '0' } },
] as const;

for (const { engine, env } of ENGINES) {
  describe(`relay engine: ${engine}`, { timeout: 90_000 }, () => {
    const skip = engine === 'splice' && !spliceBuilt ? 'the native helper with splice is not built (node scripts/build-native.js)' : undefined;

    it('connect: 24 MiB both ways at once, the reply finished after our FIN; SHA-256 equal; engine in the ending', { skip }, async (t) => {
      const input = randomBytes(24 * 1024 * 1024 + 5);
      const reply = randomBytes(24 * 1024 * 1024 + 9);
      let got: Buffer | undefined;
      const srv = await startTestServer(LOOP, (s) => {
        s.write(reply.subarray(0, reply.length - 9));
        void collect(s).then((b) => {
          got = b;
          s.end(reply.subarray(reply.length - 9));
        });
      }, t);
      const r = await runCli(['connect', formatEndpoint(srv.endpoint), '--json'], { input, env, timeoutMs: 60_000 });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(sha(r.stdout), sha(reply));
      assert.equal(got && sha(got), sha(input));
      const e = closedEvent(r.stderr);
      assert.equal(e['engine'], engine);
      assert.equal(e['bytesSent'], input.length);
      assert.equal(e['bytesReceived'], reply.length);
      assert.equal(e['firstEnd'], 'local');
    });

    it('connect: the server half-closes first and keeps reading; our upload goes on to its end', { skip }, async (t) => {
      const input = randomBytes(8 * 1024 * 1024);
      let got: Buffer | undefined;
      const srv = await startTestServer(LOOP, (s) => {
        s.end('first\n');
        void collect(s).then((b) => (got = b));
      }, t);
      const r = await runCli(['connect', formatEndpoint(srv.endpoint), '--json'], { input, env, timeoutMs: 30_000 });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.toString(), 'first\n');
      await waitUntil(() => got !== undefined, 'the server has all of it');
      assert.equal(sha(got!), sha(input));
      assert.equal(closedEvent(r.stderr)['firstEnd'], 'peer');
    });

    it('connect: stdin /dev/null (no splice from it: read and write) half-closes at once', { skip }, async (t) => {
      const srv = await startTestServer(LOOP, (s) => {
        void collect(s).then((b) => s.end(`got ${b.length}\n`));
      }, t);
      const sh = spawnProcess('sh', ['-c', `exec "${process.execPath}" "${BIN}" connect ${formatEndpoint(srv.endpoint)} --json < /dev/null`], t, { env });
      const { code } = await sh.waitExit(20_000);
      assert.equal(code, 0, sh.stderr.text);
      assert.equal(sh.stdout.text, 'got 0');
      assert.equal(closedEvent(sh.stderr.text)['engine'], engine);
    });

    it('connect: a server that resets: exit 2, ERR_CONN_RESET, with the bytes', { skip }, async (t) => {
      const srv = await startTestServer(LOOP, (s) => {
        s.write('partial');
        s.once('data', () => s.resetAndDestroy());
      }, t);
      const child = spawnProcess(process.execPath, [BIN, 'connect', formatEndpoint(srv.endpoint)], t, { keepStdin: true, env });
      await child.stdout.waitFor(() => true).catch(() => undefined);
      child.child.stdin!.write('trigger\n');
      const { code } = await child.waitExit(20_000);
      assert.equal(code, 2);
      const line = await child.stderr.waitFor(/ERR_CONN_RESET/);
      assert.match(line, /received 7 bytes/);
    });

    it('connect: SIGINT during a transfer stops both directions: exit 130', { skip }, async (t) => {
      const srv = await startTestServer(LOOP, (s) => {
        s.write('hello\n');
        s.resume();
      }, t);
      const child = spawnProcess(process.execPath, [BIN, 'connect', formatEndpoint(srv.endpoint)], t, { keepStdin: true, env });
      await child.stdout.waitFor(/hello/);
      child.kill('SIGINT');
      const { code } = await child.waitExit(20_000);
      assert.equal(code, 130, child.stderr.text);
    });

    it('listen > file: a client sends 24 MiB and half-closes; listen sends its stdin file; both SHA-256 equal', { skip }, async (t) => {
      const dir = tempDir(t);
      const up = randomBytes(24 * 1024 * 1024 + 1);
      const down = randomBytes(3 * 1024 * 1024 + 2);
      await writeFile(join(dir, 'down'), down);
      const l = spawnProcess('sh', ['-c', `exec "${process.execPath}" "${BIN}" listen 127.0.0.1:0 --json < ${join(dir, 'down')} > ${join(dir, 'up')}`], t, { env });
      const line = await l.stderr.waitFor(/"event":"listening"/);
      const port = Number(/127\.0\.0\.1:(\d+)/.exec(line)![1]);
      const s = netConnect({ host: '127.0.0.1', port, allowHalfOpen: true });
      const back = collect(s);
      // Destroyed only once all of `up` is out (destroying earlier would drop what Node still holds).
      const sent = new Promise<void>((resolve) => s.end(up, () => resolve()));
      assert.equal(sha(await back), sha(down));
      await sent;
      s.destroy();
      const { code } = await l.waitExit(30_000);
      assert.equal(code, 0, l.stderr.text);
      assert.equal(sha(await readFile(join(dir, 'up'))), sha(up));
      const e = closedEvent(l.stderr.text);
      assert.equal(e['engine'], engine);
      assert.equal(e['bytesReceived'], up.length);
      assert.equal(e['bytesSent'], down.length);
    });

    it('listen: a second client while the first is served is refused', { skip }, async (t) => {
      const l = spawnProcess(process.execPath, [BIN, 'listen', '127.0.0.1:0'], t, { keepStdin: true, env });
      const line = await l.stderr.waitFor(/^listening on /);
      const port = Number(/:(\d+) /.exec(line)![1]);
      const a = netConnect({ host: '127.0.0.1', port, allowHalfOpen: true });
      await l.stderr.waitFor(/connected/);
      const b = netConnect({ host: '127.0.0.1', port, allowHalfOpen: true });
      b.on('error', () => undefined);
      // Closed by the server (with allowHalfOpen, its FIN shows as 'end').
      await new Promise<void>((resolve) => {
        b.once('end', () => resolve());
        b.once('close', () => resolve());
      });
      b.destroy();
      a.end('only a\n');
      await l.stdout.waitFor(/only a/);
      l.child.stdin!.end();
      const { code } = await l.waitExit(20_000);
      assert.equal(code, 0, l.stderr.text);
      a.destroy();
    });
  });
}

// Resume of parallel transfers (issue 17): `get` from `serve` through a slow relay, the receiver
// (get) or the sender (serve) killed with SIGKILL in the middle, then the same get again. For each
// hash and -P 1 / -P 4: the file never appears half-written under its name, the second run does
// not send again what the first one left (per range with -P 4, from the partial file's
// record of ranges), and the file that arrives is the sender's.
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, connect, type Socket } from 'node:net';
import { once } from 'node:events';
import { lstat, readFile, writeFile } from 'node:fs/promises';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ndjson, runCli, spawnCli, type Spawned } from './helpers/cli.js';
import { waitUntil } from './helpers/net.js';
import { tempDir } from './helpers/tmp.js';

const MiB = 1024 * 1024;
const SIZE = 8 * MiB;

/**
 * A relay on 127.0.0.1 towards `port` that lets each connection's downstream through at about
 * `rate` bytes per second (a paused upstream, resumed when the budget allows), so a transfer
 * lasts long enough to be cut in the middle. `cut` drops every connection at once, with what
 * the kernel still buffers towards the client (a killed sender's data in flight would otherwise
 * keep arriving for a while, megabytes on loopback).
 */
async function slowRelay(t: TestContext, port: number, rate: number): Promise<{ port: number; cut: () => void }> {
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect({ host: '127.0.0.1', port });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
      s.on('close', () => {
        sockets.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    const t0 = performance.now();
    let sent = 0;
    upstream.on('data', (chunk: Buffer) => {
      client.write(chunk);
      sent += chunk.length;
      const ahead = (sent / rate) * 1000 - (performance.now() - t0);
      if (ahead > 0) {
        upstream.pause();
        setTimeout(() => upstream.resume(), ahead).unref();
      }
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => {
    for (const s of sockets) s.destroy();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { port: (server.address() as { port: number }).port, cut: () => sockets.forEach((s) => s.destroy()) };
}

async function startServe(t: TestContext, file: string, hash: string): Promise<{ proc: Spawned; port: number }> {
  const proc = spawnCli(['serve', file, '--listen', '127.0.0.1:0', '--hash', hash], t);
  const line = await proc.stderr.waitFor(/^serving /);
  const port = Number(/on 127\.0\.0\.1:(\d+);/.exec(line)?.[1]);
  assert.ok(port > 0, line);
  return { proc, port };
}

/** Bytes the receiver holds: the partial file's record of ranges, or (one stream) the partial file's length. */
function heldBytes(out: string, streams: number): number {
  if (streams === 1) return statSync(join(out, '.f.bin.sk-partial'), { throwIfNoEntry: false })?.size ?? 0;
  try {
    const rec = JSON.parse(readFileSync(join(out, '.f.bin.sk-ranges'), 'utf8')) as { held: Array<[number, number]> };
    return rec.held.reduce((n, [a, b]) => n + (b - a), 0);
  } catch {
    return 0;
  }
}

async function exists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    () => false,
  );
}

for (const hash of ['sha256', 'xxh128'] as const) {
  for (const streams of [1, 4]) {
    for (const killed of ['receiver', 'sender'] as const) {
      describe(`${hash}, -P ${streams}`, () => {
        it(`the ${killed} killed mid-transfer: the next get resumes and verifies the whole file`, { timeout: 60_000 }, async (t) => {
          const dir = tempDir(t, 'sk-parr-');
          const data = randomBytes(SIZE);
          const file = join(dir, 'f.bin');
          await writeFile(file, data);
          const out = join(dir, 'out');
          const getArgs = ['--dir', out, '--hash', hash, ...(streams > 1 ? ['-P', String(streams), '--range-size', '1M'] : []), '--stall-timeout', '10'];
          let serve = await startServe(t, file, hash);
          // 2 MB/s per connection: 4 s for the file on one stream, about 1 s on four.
          const relay = await slowRelay(t, serve.port, 2_000_000);
          const get = spawnCli(['get', `127.0.0.1:${relay.port}`, ...getArgs], t);
          // Cut once a quarter of the file is held (for -P 4, in completed ranges).
          await waitUntil(() => heldBytes(out, streams) >= SIZE / 4, 'a quarter of the file is held', 30_000, 5);
          if (killed === 'receiver') {
            get.kill('SIGKILL');
            await get.waitExit();
          } else {
            serve.proc.kill('SIGKILL');
            await serve.proc.waitExit();
            relay.cut();
            const r = await get.waitExit(20_000);
            assert.equal(r.code, 2, 'the receiver fails when its sender goes');
            serve = await startServe(t, file, hash);
          }
          assert.equal(await exists(join(out, 'f.bin')), false, 'nothing under the final name');
          const held = heldBytes(out, streams);
          assert.ok(held >= SIZE / 4 && held < SIZE, `held ${held} of ${SIZE}`);

          const again = await runCli(['get', `127.0.0.1:${serve.port}`, ...getArgs, '--json'], { timeoutMs: 30_000 });
          assert.equal(again.code, 0, again.stderr);
          assert.ok((await readFile(join(out, 'f.bin'))).equals(data), 'the sender\'s file, whole');
          const events = ndjson(again.stdout.toString());
          const summary = events.find((e) => e['event'] === 'summary' || e['transferred'] !== undefined)!;
          const transferred = Number(summary['transferred']);
          assert.ok(transferred <= SIZE - held + 4 * MiB && transferred < SIZE, `resumed: sent ${transferred} of ${SIZE} again (held ${held})`);
          const done = events.find((e) => e['event'] === 'file-done')!;
          if (hash === 'sha256') assert.equal(done['sha256'], createHash('sha256').update(data).digest('hex'), 'the whole file\'s SHA-256');
          assert.equal(await exists(join(out, '.f.bin.sk-partial')), false);
          assert.equal(await exists(join(out, '.f.bin.sk-ranges')), false);
          serve.proc.kill('SIGTERM');
          await serve.proc.waitExit();
        });
      });
    }
  }
}

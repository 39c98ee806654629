// serve and receive on the managed server (issue 11, "One server framework"): the real binary
// with --max-conns, --idle-timeout, --stats and --deny, reporting and counting as echo-server does.
// Idle, for a transfer, is a peer that says nothing: a trickling upload and an upload that waits
// for another connection's claim on its name are not idle, however long they take.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { connect as netConnect, type Socket } from 'node:net';
import { open, readFile, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { parseEndpoint, type Endpoint } from '../src/net/endpoint.js';
import { startReceiveServer, upload, summaryError, type TransferServerEvent } from '../src/transfer/index.js';
import { BIN, jsonEvents, runCli, spawnCli, spawnProcess, startJsonServer, type JsonServer, type Spawned } from './helpers/cli.js';
import { SkftPeer } from './helpers/skft-peer.js';
import { tempDir } from './helpers/tmp.js';

const CASE_MS = 30_000;
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** Waits for a JSON event of this name that matches `test`. */
async function waitEvent(proc: Spawned, name: string, test: (e: Record<string, unknown>) => boolean = () => true): Promise<Record<string, unknown>> {
  const line = await proc.stdout.waitFor((l) => l.startsWith('{') && l.includes(`"event":"${name}"`) && test(JSON.parse(l) as Record<string, unknown>));
  return JSON.parse(line) as Record<string, unknown>;
}

/** Stops the server with SIGTERM and returns its `stopped` result. */
async function stop(server: JsonServer): Promise<Record<string, unknown>> {
  server.proc.kill('SIGTERM');
  const exit = await server.proc.waitExit();
  assert.equal(exit.code, 143, server.proc.stderr.text);
  const stopped = jsonEvents(server.proc, 'stopped')[0];
  assert.ok(stopped, `a stopped result; got:\n${server.proc.stdout.text}`);
  return stopped;
}

async function connectTo(ep: Endpoint): Promise<Socket> {
  assert.equal(ep.kind, 'inet');
  const socket = netConnect({ host: ep.kind === 'inet' ? ep.host : '', port: ep.kind === 'inet' ? ep.port : 0 });
  socket.on('error', () => undefined);
  await once(socket, 'connect');
  return socket;
}

/**
 * Sends one file as a scripted SKFT sender, `chunks` DATA frames `everyMs` apart (a slow but
 * moving upload); resolves with the RESULT's outcome. `afterReply` runs once the receiver has
 * accepted the offer.
 */
async function trickleUpload(peer: SkftPeer, path: string, data: Buffer, chunks: number, everyMs: number, afterReply?: () => void): Promise<true | string> {
  peer.hello('sender', { entries: 1, files: 1, bytes: data.length });
  await peer.readHello();
  peer.send({ type: 'offer', id: 0, kind: 'file', path, size: data.length, mode: 0o644, mtimeMs: 0 });
  const reply = await peer.next();
  assert.ok(reply?.type === 'reply' && reply.action === 'receive', `the offer accepted (got ${JSON.stringify(reply)})`);
  afterReply?.();
  peer.send({ type: 'begin', id: 0, offset: 0 });
  const step = Math.ceil(data.length / chunks);
  for (let at = 0; at < data.length; at += step) {
    peer.data(data.subarray(at, at + step));
    if (at + step < data.length) await delay(everyMs);
  }
  peer.send({ type: 'end', id: 0, sha256: sha(data) });
  const result = await peer.next();
  assert.equal(result?.type, 'result');
  peer.send({ type: 'done' });
  peer.end();
  await peer.closed();
  return result?.type === 'result' ? (result.ok ? true : result.code) : 'no result';
}

describe('serve and receive: --max-conns', () => {
  for (const kind of ['serve', 'receive'] as const) {
    it(`${kind} --max-conns 1 refuses a second client with ERR_CONN_LIMIT, counts it, and serves once the slot is free`, { timeout: CASE_MS }, async (t) => {
      const dir = tempDir(t, 'sk-managed-');
      const file = join(dir, 'a.txt');
      await writeFile(file, 'hello, limits\n');
      const args = kind === 'serve' ? ['serve', file] : ['receive', '--dir', join(dir, 'inbox')];
      const server = await startJsonServer(t, [...args, '--listen', '127.0.0.1:0', '--max-conns', '1', '--stats', '0.1']);
      const client = (): Promise<{ code: number | null; stderr: string }> =>
        runCli(kind === 'serve' ? ['get', server.address, '--dir', join(dir, 'out'), '--force'] : ['send', server.address, file], { timeoutMs: 15_000 }).then((r) => ({
          code: r.code,
          stderr: r.stderr.toString(),
        }));
      // The one slot: a client that connects and says nothing yet.
      const holder = await connectTo(server.endpoint);
      await waitEvent(server.proc, 'connect');
      const second = await client();
      assert.notEqual(second.code, 0, 'the second client is not served');
      const refused = await waitEvent(server.proc, 'refused');
      assert.equal(refused['code'], 'ERR_CONN_LIMIT');
      await waitEvent(server.proc, 'stats', (e) => e['refused'] === 1 && e['connections'] === 1);
      holder.destroy();
      await waitEvent(server.proc, 'disconnect');
      const third = await client();
      assert.equal(third.code, 0, third.stderr);
      const stopped = await stop(server);
      assert.deepEqual([stopped['accepted'], stopped['refused'], stopped['files'], stopped['active']], [2, 1, 1, 0]);
    });
  }
});

describe('serve and receive: --idle-timeout', () => {
  it('receive closes a silent client after the idle timeout, but not a slow upload that keeps moving', { timeout: CASE_MS }, async (t) => {
    const dir = tempDir(t, 'sk-managed-');
    const inbox = join(dir, 'inbox');
    // Margins a loaded machine keeps: a frame every 100 ms against a 1.5 s timeout.
    const server = await startJsonServer(t, ['receive', '--listen', '127.0.0.1:0', '--dir', inbox, '--idle-timeout', '1.5']);
    const silent = await connectTo(server.endpoint);
    // It reads (and so sees the server close it), but never sends a byte.
    silent.resume();
    const silentClosed = once(silent, 'close');
    // An upload that outlasts the idle timeout, a frame every 100 ms.
    const data = randomBytes(64 * 1024);
    const uploader = new SkftPeer(await connectTo(server.endpoint));
    const started = performance.now();
    const outcome = await trickleUpload(uploader, 'slow.bin', data, 24, 100).catch((err: unknown) => {
      throw new Error(`upload failed; server said:\n${server.proc.stdout.text}`, { cause: err });
    });
    assert.ok(performance.now() - started > 1_500, 'the upload outlasted the idle timeout');
    assert.equal(outcome, true);
    assert.deepEqual(await readFile(join(inbox, 'slow.bin')), data);
    await silentClosed;
    const idle = jsonEvents(server.proc, 'idle');
    assert.equal(idle.length, 1, `only the silent client was idle: ${JSON.stringify(idle)}`);
    const stopped = await stop(server);
    assert.deepEqual([stopped['accepted'], stopped['idleClosed'], stopped['files']], [2, 1, 1]);
  });

  it('receive does not close an upload that waits, silent, for another connection to finish the same file', { timeout: CASE_MS }, async (t) => {
    const dir = tempDir(t, 'sk-managed-');
    const inbox = join(dir, 'inbox');
    const server = await startJsonServer(t, ['receive', '--listen', '127.0.0.1:0', '--dir', inbox, '--force', '--idle-timeout', '1']);
    const first = randomBytes(32 * 1024);
    const second = randomBytes(16 * 1024);
    const a = new SkftPeer(await connectTo(server.endpoint));
    const b = new SkftPeer(await connectTo(server.endpoint));
    let bOffered: Promise<true | string> | undefined;
    // A holds x.bin for about 1.5 s; B offers x.bin meanwhile and waits for A's claim, saying nothing.
    const aDone = trickleUpload(a, 'x.bin', first, 15, 100, () => {
      bOffered = trickleUpload(b, 'x.bin', second, 1, 0);
    });
    assert.equal(await aDone, true);
    assert.ok(bOffered);
    assert.equal(await bOffered, true, 'the waiting upload was served, not idle-closed');
    assert.deepEqual(await readFile(join(inbox, 'x.bin')), second);
    assert.deepEqual(jsonEvents(server.proc, 'idle'), []);
    const stopped = await stop(server);
    assert.deepEqual([stopped['idleClosed'], stopped['files'], stopped['failed']], [0, 2, 0]);
  });

  it('serve --raw: a slow reader of a large file, reading for longer than the idle timeout, is served and not idle-closed', { timeout: CASE_MS }, async (t) => {
    const dir = tempDir(t, 'sk-managed-');
    const file = join(dir, 'big.bin');
    const data = randomBytes(8 * 1024 * 1024);
    await writeFile(file, data);
    // Reads a chunk, rests 30 ms, reads on: a 60th of the timeout each time (so a loaded machine's
    // pauses do not add up to it), and for longer than the timeout in all (128 chunks or more).
    const server = await startJsonServer(t, ['serve', file, '--raw', '--listen', '127.0.0.1:0', '--idle-timeout', '2']);
    const socket = await connectTo(server.endpoint);
    const parts: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => {
      parts.push(chunk);
      socket.pause();
      setTimeout(() => socket.resume(), 30);
    });
    const started = performance.now();
    await once(socket, 'close');
    if (Buffer.concat(parts).length !== data.length) assert.fail(`cut after ${Buffer.concat(parts).length} bytes: ${JSON.stringify(await stop(server))}`);
    assert.ok(Buffer.concat(parts).equals(data), 'the whole file, intact');
    const ms = performance.now() - started;
    const stopped = await stop(server);
    assert.equal(stopped['idleClosed'], 0, `served in ${Math.round(ms)} ms without an idle close`);
    assert.equal(stopped['bytesOut'], data.length, 'bytes sent by sendfile are counted too');
  });
});

describe('serve and receive: --stats and --deny', () => {
  it('serve --stats prints the managed statistics while it runs and the managed summary at exit', { timeout: CASE_MS }, async (t) => {
    const dir = tempDir(t, 'sk-managed-');
    const file = join(dir, 'a.txt');
    await writeFile(file, 'statistics\n');
    const proc = spawnCli(['serve', file, '--listen', '127.0.0.1:0', '--stats', '0.1'], t);
    const listening = await proc.stderr.waitFor(/^serving /);
    const address = /on (127\.0\.0\.1:\d+);/.exec(listening)?.[1];
    assert.ok(address, listening);
    await proc.stderr.waitFor(/^stats: 0 open, 0 accepted, 0 refused, 0 idle-closed; 0 round trips\/s, in 0 B\/s, out 0 B\/s$/);
    const got = await runCli(['get', address, '--dir', join(dir, 'out')], { timeoutMs: 15_000 });
    assert.equal(got.code, 0, got.stderr.toString());
    proc.kill('SIGTERM');
    assert.equal((await proc.waitExit()).code, 143, proc.stderr.text);
    assert.match(proc.stdout.text, /^served 1 client\(s\): 1 file\(s\), 11 B; 0 refused, 0 idle-closed$/m);
    assert.match(proc.stdout.text, /^stats: 0 open, 1 accepted, 0 refused, 0 idle-closed; \d+ round trips\/s, in [\d.,]+ [kMGT]?B\/s, out [\d.,]+ [kMGT]?B\/s \(average over [\d.]+ s\)$/m);
  });

  it('receive --deny refuses the peer with ERR_ACCESS_DENIED and counts it', { timeout: CASE_MS }, async (t) => {
    const dir = tempDir(t, 'sk-managed-');
    const file = join(dir, 'a.txt');
    await writeFile(file, 'denied\n');
    const server = await startJsonServer(t, ['receive', '--listen', '127.0.0.1:0', '--dir', join(dir, 'inbox'), '--deny', '127.0.0.0/8']);
    const sent = await runCli(['send', server.address, file], { timeoutMs: 15_000 });
    assert.notEqual(sent.code, 0);
    const refused = await waitEvent(server.proc, 'refused');
    assert.equal(refused['code'], 'ERR_ACCESS_DENIED');
    const stopped = await stop(server);
    assert.deepEqual([stopped['accepted'], stopped['refused'], stopped['files']], [0, 1, 0]);
  });
});

describe('serve and receive: out of descriptors', () => {
  it('receive under ulimit -n 64: connections it cannot serve are counted and reported as ERR_NO_DESCRIPTORS, and it serves again after', { timeout: CASE_MS }, async (t) => {
    const dir = tempDir(t, 'sk-managed-');
    const file = join(dir, 'a.txt');
    await writeFile(file, 'descriptors\n');
    const proc = spawnProcess('sh', ['-c', `ulimit -n 64; exec "${process.execPath}" "${BIN}" receive --listen 127.0.0.1:0 --dir "${join(dir, 'inbox')}" --json --stats 0.2`], t);
    const address = String((JSON.parse(await proc.stdout.waitFor((l) => l.includes('"listening"'))) as { address: string }).address);
    const endpoint = parseEndpoint(address, { defaultHost: '127.0.0.1' });
    const clients = await Promise.all(
      Array.from({ length: 150 }, async () => {
        const socket = await connectTo(endpoint);
        socket.resume();
        return socket;
      }),
    );
    await proc.stdout.waitFor((l) => l.includes('"accept-error"') && l.includes('ERR_NO_DESCRIPTORS'));
    const stats = JSON.parse(await proc.stdout.waitFor((l) => l.includes('"event":"stats"') && Number((JSON.parse(l) as { acceptErrors: number }).acceptErrors) > 50)) as Record<string, number>;
    assert.ok(stats['refused']! >= stats['acceptErrors']!, JSON.stringify(stats));
    for (const c of clients) c.destroy();
    await proc.stdout.waitFor((l) => l.includes('"event":"stats"') && (JSON.parse(l) as { connections: number }).connections === 0);
    const sent = await runCli(['send', address, file], { timeoutMs: 15_000 });
    assert.equal(sent.code, 0, sent.stderr.toString());
    proc.kill('SIGTERM');
    assert.equal((await proc.waitExit()).code, 143, proc.stderr.text);
  });
});

describe('startReceiveServer: idleTimeoutMs and a disk that is behind', () => {
  it('an upload whose receiver waits on a slow disk write (nothing moving on the wire) is not idle-closed', { timeout: CASE_MS }, async (t) => {
    const dir = tempDir(t, 'sk-managed-');
    const src = join(dir, 'big.bin');
    // More than the receiver's write buffer (8 MiB): while the disk stalls, the link stops reading.
    const data = randomBytes(12 * 1024 * 1024);
    await writeFile(src, data);
    const inbox = join(dir, 'inbox');
    // A slow disk: the receiver's first write into the inbox takes 1.2 s, four idle timeouts.
    const probe = await open(join(dir, 'probe'), 'w');
    const proto = Object.getPrototypeOf(probe) as { writev: FileHandle['writev'] };
    await probe.close();
    const original = proto.writev;
    let stalled = 0;
    t.mock.method(proto, 'writev', async function (this: FileHandle, ...args: Parameters<FileHandle['writev']>) {
      if (stalled === 0) {
        stalled++;
        await delay(1_200);
      }
      return original.apply(this, args);
    });
    const events: TransferServerEvent[] = [];
    const server = await startReceiveServer({ kind: 'inet', host: '127.0.0.1', port: 0 }, { dir: inbox, idleTimeoutMs: 300, onEvent: (e) => events.push(e) });
    t.after(() => server.close());
    const summary = await upload(server.endpoint, [src]);
    assert.equal(summaryError(summary), undefined);
    assert.equal(stalled, 1, 'the write was stalled');
    assert.ok((await readFile(join(inbox, 'big.bin'))).equals(data));
    assert.deepEqual(events.filter((e) => e.event === 'idle'), []);
    assert.equal(server.managed.stats().idleClosed, 0);
  });
});

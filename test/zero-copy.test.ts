// Zero-copy raw sending (sendfile(2) through the native helper) against the plain read/write
// path: the same bytes arrive either way, over TCP and a Unix socket, to a reader slow enough
// that the socket fills and the drain wait runs many times; a file that shrinks and a peer that
// resets are coded errors, and no descriptor is left behind.
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { open, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Socket } from 'node:net';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Endpoint } from '../src/net/endpoint.js';
import { nativeHelper, nativeStatus } from '../src/native/helper.js';
import { receiveRawStream, sendRawFile, sendfileRange, type RawResult, type RawSink } from '../src/transfer/index.js';
import { endedByReset, socketFd } from '../src/net/socket-state.js';
import { runCli } from './helpers/cli.js';
import { rawConnect, startTestServer, waitUntil } from './helpers/net.js';
import { tempDir } from './helpers/tmp.js';

const status = nativeStatus();
const MODES = [
  { name: 'sendfile', zeroCopy: true, skip: status.available ? false : `native helper unavailable: ${status.reason ?? '?'}` },
  { name: 'read/write', zeroCopy: false, skip: false },
] as const;

/** Serves `path` raw to every connection; the sender's outcome of the first is returned. */
async function rawServer(t: TestContext, ep: Endpoint, path: string, zeroCopy: boolean): Promise<{ endpoint: Endpoint; result: Promise<RawResult> }> {
  let settle!: (sending: Promise<RawResult>) => void;
  const result = new Promise<RawResult>((resolve, reject) => (settle = (sending) => void sending.then(resolve, reject)));
  result.catch(() => undefined); // awaited by the test, maybe only after the failure
  const server = await startTestServer(ep, (socket) => settle(sendRawFile(socket, path, { zeroCopy, stallTimeoutMs: 20_000 })), t);
  return { endpoint: server.endpoint, result };
}

interface Received {
  bytes: number;
  sha256: string;
  /** 'end' for a clean end of stream, else the error code. */
  how: string;
}

/** Reads everything, pausing `pauseMs` after every `every` bytes; `onBytes` may stop it. */
function readSlowly(socket: Socket, every: number, pauseMs: number, onBytes?: (n: number) => Promise<'go' | 'reset'>): Promise<Received> {
  return new Promise((resolve) => {
    const hash = createHash('sha256');
    let bytes = 0;
    let mark = every;
    socket.on('data', (chunk: Buffer) => {
      hash.update(chunk);
      bytes += chunk.length;
      if (bytes >= mark) {
        mark += every;
        socket.pause();
        void sleep(pauseMs)
          .then(() => onBytes?.(bytes) ?? 'go')
          .then((next) => (next === 'reset' ? socket.resetAndDestroy() : socket.resume()));
      }
    });
    socket.on('end', () => resolve({ bytes, sha256: hash.digest('hex'), how: 'end' }));
    socket.on('error', (err: NodeJS.ErrnoException) => resolve({ bytes, sha256: '', how: err.code ?? 'error' }));
    socket.on('close', () => resolve({ bytes, sha256: '', how: 'close' }));
  });
}

/** Linux's TCP_CLOSE (include/net/tcp_states.h). */
const TCP_CLOSE = 7;

const openFds = (): number => readdirSync('/proc/self/fd').length;

describe('sendfileRange and the reset check', { skip: status.available ? false : `native helper unavailable: ${status.reason ?? '?'}` }, () => {
  it('waits through Node when the socket stays full, and the bytes stay in order', async (t) => {
    const dir = tempDir(t);
    const data = randomBytes(16 * 1024 * 1024 + 5);
    await writeFile(join(dir, 'f'), data);
    let sending: Promise<{ handoffs: number }> | undefined;
    const server = await startTestServer(
      { kind: 'inet', host: '127.0.0.1', port: 0 },
      (socket) => {
        sending = (async () => {
          const fh = await open(join(dir, 'f'), 'r');
          try {
            // No waiting on the thread pool: every full socket goes through Node's write.
            const r = await sendfileRange(socket, fh, 0, data.length, { path: 'f', waitMs: 0 });
            socket.end();
            return r;
          } finally {
            await fh.close();
          }
        })();
        sending.catch(() => undefined);
      },
      t,
    );
    const got = await readSlowly(await rawConnect(server.endpoint), 512 * 1024, 3);
    const r = await sending!;
    assert.equal(got.how, 'end');
    assert.equal(got.sha256, createHash('sha256').update(data).digest('hex'));
    assert.ok(r.handoffs > 0, `handoffs: ${r.handoffs}`);
  });

  it('the helper refuses bad arguments with a coded error, never a crash', () => {
    const helper = nativeHelper()!;
    assert.throws(() => helper.dup(-1), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => helper.tcpState(-1), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.ok(helper.tcpState(0) < 0, 'stdin is not a TCP socket: a negative errno');
    const cb = (): void => assert.fail('no call may be queued');
    assert.throws(() => (helper.sendfile as unknown as (...a: unknown[]) => void)(1, 2, 3, 4, 5, 6), { code: 'ERR_INVALID_ARG_TYPE' });
    for (const bad of [NaN, -1, 2 ** 53, 1.5]) assert.throws(() => helper.sendfile(1, 2, bad, 4, 5, 6, cb), { code: 'ERR_OUT_OF_RANGE' }, String(bad));
    assert.throws(() => helper.sendfile(1, 2, 0, 4, 5, 60_001, cb), { code: 'ERR_OUT_OF_RANGE' });
  });

  it('a clean end after our own is not a reset; a reset behind data is', async (t) => {
    const helper = nativeHelper()!;
    // endedByReset is asked in the 'end' listener, as its callers do: right after it the socket
    // may be destroyed (both sides done), and a destroyed socket has no descriptor to ask about.
    const onEnd = (s: Socket): Promise<{ state: number; reset: boolean }> =>
      new Promise((resolve) => s.once('end', () => resolve({ state: helper.tcpState(socketFd(s)!), reset: endedByReset(s) })));
    // Our side closes first, then the peer: the socket ends up CLOSED, as after a reset, but with no error.
    const clean = await startTestServer({ kind: 'inet', host: '127.0.0.1', port: 0 }, (s) => s.on('end', () => s.end()), t);
    const a = await rawConnect(clean.endpoint);
    const aEnd = onEnd(a);
    a.resume();
    a.end();
    assert.deepEqual(await aEnd, { state: TCP_CLOSE, reset: false });
    a.destroy();
    // The peer writes, then resets while we are paused: libuv says 'end' (or ECONNRESET); the kernel says reset.
    // 1 MiB fits in loopback's socket buffers with the reader paused (about 3.7 MiB do with Linux's
    // defaults), so the write completes and the reset goes out before the reader reads again.
    // It starts when told that we are paused.
    let rudePeer: Socket | undefined;
    const rude = await startTestServer({ kind: 'inet', host: '127.0.0.1', port: 0 }, (s) => {
      rudePeer = s;
      s.once('data', () => s.write(randomBytes(1024 * 1024), () => s.resetAndDestroy()));
    }, t);
    const b = await rawConnect(rude.endpoint);
    b.pause();
    b.write('go');
    await waitUntil(() => rudePeer !== undefined, 'the server to accept');
    if (!rudePeer!.destroyed) await once(rudePeer!, 'close', { signal: AbortSignal.timeout(10_000) });
    const bEnd = onEnd(b);
    const how = await new Promise<string>((resolve) => {
      bEnd.then(({ reset }) => resolve(reset ? 'end, reset' : 'end, no reset'), () => undefined);
      b.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
      b.resume();
    });
    assert.ok(how === 'end, reset' || how === 'ECONNRESET', how);
    b.destroy();
  });
});

describe('zero-copy raw sending', () => {
  it('reports whether the native helper is there (CI requires it), also in --version', async () => {
    if (process.env['SOCKETKIT_REQUIRE_NATIVE'] === '1') assert.equal(status.available, true, status.reason);
    if (status.available) assert.equal(status.reason, undefined);
    else assert.match(status.reason ?? '', /\w/);
    const r = await runCli(['--version']);
    assert.equal(r.code, 0);
    assert.match(r.stdout.toString(), status.available ? /^native helper: yes/m : /^native helper: no, /m);
    const off = await runCli(['--version'], { env: { ...process.env, SOCKETKIT_NATIVE: '0' } });
    assert.match(off.stdout.toString(), /^native helper: no, turned off by SOCKETKIT_NATIVE=0$/m);
  });

  for (const mode of MODES) {
    for (const kind of ['tcp', 'unix'] as const) {
      it(`${mode.name} over ${kind}: every byte arrives, in order, to a slow reader`, { skip: mode.skip }, async (t) => {
        const dir = tempDir(t);
        const data = randomBytes(24 * 1024 * 1024 + 13);
        await writeFile(join(dir, 'f'), data);
        const ep: Endpoint = kind === 'tcp' ? { kind: 'inet', host: '127.0.0.1', port: 0 } : { kind: 'unix', path: join(dir, 's.sock') };
        const server = await rawServer(t, ep, join(dir, 'f'), mode.zeroCopy);
        const socket = await rawConnect(server.endpoint);
        const got = await readSlowly(socket, 1024 * 1024, 2);
        const sent = await server.result;
        assert.equal(got.how, 'end');
        assert.equal(got.bytes, data.length);
        assert.equal(got.sha256, createHash('sha256').update(data).digest('hex'));
        assert.deepEqual({ bytes: sent.bytes, zeroCopy: sent.zeroCopy }, { bytes: data.length, zeroCopy: mode.zeroCopy });
      });
    }

    it(`${mode.name}: an empty file ends the stream at once`, { skip: mode.skip }, async (t) => {
      const dir = tempDir(t);
      await writeFile(join(dir, 'empty'), '');
      const server = await rawServer(t, { kind: 'inet', host: '127.0.0.1', port: 0 }, join(dir, 'empty'), mode.zeroCopy);
      const got = await readSlowly(await rawConnect(server.endpoint), 1, 0);
      assert.deepEqual({ how: got.how, bytes: got.bytes }, { how: 'end', bytes: 0 });
      assert.equal((await server.result).bytes, 0);
    });

    for (const kind of ['tcp', 'unix'] as const) {
    it(`${mode.name} over ${kind}: a file that shrinks mid-send is ERR_SOURCE_CHANGED${kind === 'tcp' ? ', and a paused raw receiver sees the reset, not an end' : ' (a Unix socket has no reset: it closes)'}`, { skip: mode.skip }, async (t) => {
      const dir = tempDir(t);
      const path = join(dir, 'f');
      await writeFile(path, randomBytes(48 * 1024 * 1024));
      const ep: Endpoint = kind === 'tcp' ? { kind: 'inet', host: '127.0.0.1', port: 0 } : { kind: 'unix', path: join(dir, 's.sock') };
      const server = await rawServer(t, ep, path, mode.zeroCopy);
      // A sink that falls behind every 2 MiB (so the socket pauses), and the file shrinks at the first pause.
      let bytes = 0;
      let mark = 2 * 1024 * 1024;
      let truncated = false;
      const sink: RawSink = {
        write: (chunk) => {
          bytes += chunk.length;
          if (bytes < mark) return true;
          mark += 2 * 1024 * 1024;
          return false;
        },
        drained: async () => {
          await sleep(5);
          if (!truncated) {
            truncated = true;
            await truncate(path, 4 * 1024 * 1024);
          }
        },
        flush: () => Promise.resolve(),
      };
      const received = receiveRawStream(await rawConnect(server.endpoint), sink, { peer: 'sender' });
      received.catch(() => undefined);
      await assert.rejects(server.result, { code: 'ERR_SOURCE_CHANGED' });
      // libuv reports a reset that arrives behind data as an end; the native helper tells them apart.
      if (status.available && kind === 'tcp') await assert.rejects(received, { code: 'ERR_CONN_RESET' });
      else await received.catch(() => undefined);
      assert.ok(bytes < 48 * 1024 * 1024);
    });
    }

    it(`${mode.name}: a reader that resets mid-stream fails the send with a connection error and leaks no descriptor`, { skip: mode.skip }, async (t) => {
      const dir = tempDir(t);
      await writeFile(join(dir, 'f'), randomBytes(32 * 1024 * 1024));
      const before = openFds();
      const server = await rawServer(t, { kind: 'inet', host: '127.0.0.1', port: 0 }, join(dir, 'f'), mode.zeroCopy);
      const got = await readSlowly(await rawConnect(server.endpoint), 1024 * 1024, 5, () => Promise.resolve('reset'));
      const err = await server.result.then(
        () => undefined,
        (e: unknown) => e as { code?: string },
      );
      assert.ok(err && ['ERR_CONN_RESET', 'ERR_CONN_CLOSED'].includes(err.code ?? ''), `send failed with ${err?.code ?? 'no error'}`);
      assert.ok(got.bytes < 32 * 1024 * 1024);
      // The listener is still open (closed after the test); the connection and any duplicate go
      // (their closes finish on the event loop): wait for that, and fail if they stay.
      await waitUntil(() => openFds() <= before + 1, `descriptors back to at most ${before} + 1`);
    });
  }
});

// The idle sweep must not blame a peer for the server's own stall: while the server's event loop
// is blocked, a talking client's bytes wait unread in the kernel, and after the stall libuv runs
// the sweep timer before it polls for them. On wall-clock time such a connection looked silent
// for the whole stall and was closed.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { IdleSweeper, startManagedEchoServer, type ServerEvent } from '../src/server/index.js';
import { spawnProcess } from './helpers/cli.js';
import { waitUntil } from './helpers/net.js';

/** Blocks this process's event loop for `ms` (the stall under test, not a wait for an event). */
function stall(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    // busy on purpose
  }
}

describe('idle sweep and the server\'s own stalls', () => {
  it('a sweep that runs late counts at most two intervals of idle time', () => {
    const socket = { bytesRead: 0, bytesWritten: 0, destroyed: false, destroy(): void {} };
    const found: number[] = [];
    const sweeper = new IdleSweeper(new Set([socket]) as unknown as Set<Socket>, { timeoutMs: 400, intervalMs: 100, onIdle: (_s, ms) => found.push(ms) });
    try {
      assert.equal(sweeper.sweep(0), 0);
      assert.equal(sweeper.sweep(5_000), 0, 'a 5 s stall counted as 5 s of silence');
      assert.equal(sweeper.sweep(5_100), 0);
      assert.equal(sweeper.sweep(5_200), 1, 'on time again, the silence still counts');
      assert.deepEqual(found, [400]);
    } finally {
      sweeper.stop();
    }
  });

  it('a client that keeps talking through a 1.2 s stall of the server is not closed as idle (timeout 0.3 s)', async (t) => {
    const events: ServerEvent[] = [];
    const server = await startManagedEchoServer({ kind: 'inet', host: '127.0.0.1', port: 0 }, { idleTimeoutMs: 300, onEvent: (e) => events.push(e) });
    t.after(() => server.close());
    const port = server.endpoint.kind === 'inet' ? server.endpoint.port : 0;
    // The client sends a byte every 20 ms for 2 s and counts the echoes; it says when it is going.
    const script = `
      const s = require('node:net').connect(${port}, '127.0.0.1');
      let sent = 0, got = 0, ended = false;
      s.on('data', (c) => { got += c.length; if (got === 1) console.log('talking'); });
      s.on('close', () => { console.log('closed sent=' + sent + ' got=' + got + ' ended=' + ended); });
      s.on('error', (e) => console.log('error ' + e.code));
      const timer = setInterval(() => { s.write('x'); sent++; }, 20);
      setTimeout(() => { clearInterval(timer); ended = true; s.end(); }, 2000);
    `;
    const client = spawnProcess(process.execPath, ['-e', script], t);
    await client.stdout.waitFor(/^talking$/);
    // From a timer, as a real stall would come: the sweep's own timer falls due during it and runs
    // next in the same timers phase, before libuv polls the socket for the bytes that wait.
    await new Promise<void>((resolve) => {
      setTimeout(() => {
        stall(1_200);
        resolve();
      }, 30);
    });
    const line = await client.stdout.waitFor(/^closed /, 10_000);
    await client.waitExit();
    const m = /sent=(\d+) got=(\d+) ended=(\w+)/.exec(line);
    assert.ok(m, line);
    assert.equal(m[3], 'true', `the server closed the connection during its own stall: ${line}`);
    assert.equal(m[2], m[1], `echoes missing: ${line}`);
    await waitUntil(() => events.some((e) => e.event === 'disconnect'), 'the server\'s disconnect event', 5_000);
    assert.deepEqual(events.filter((e) => e.event === 'idle'), []);
  });
});

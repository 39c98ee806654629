// Misbehaving clients cannot grow the echo server's memory, on either engine: a client that
// sends and never reads (bytes or frames), one that half-closes without reading its replies,
// and clients that reset mid-stream. Measured with the servers' own counters: what a server
// holds for a connection is what it has read and not yet sent back (bytes in - bytes out), and
// for the framed echo the memory budget's count; both must stay bounded however much the
// client pushes, and return to 0 once the clients are gone.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { once } from 'node:events';
import type { Endpoint } from '../src/net/endpoint.js';
import { MemoryBudget } from '../src/server/budget.js';
import { startManagedEchoServer } from '../src/server/echo.js';
import type { ServerStats } from '../src/server/stats.js';
import { nativeEchoStatus, startNativeEchoServer } from '../src/native/echo-engine.js';
import { REQUIRE_TOOLS } from './helpers/cli.js';
import { waitForStall, waitUntil } from './helpers/net.js';

const v4: Endpoint = { kind: 'inet', host: '127.0.0.1', port: 0 };
/** What a server may hold for one connection that does not read: one read (64 KiB) and Node's high-water mark, with room. */
const HELD_BOUND = 256 * 1024;

interface Served {
  readonly endpoint: Endpoint;
  stats(): ServerStats;
  /** Bytes held by the framed echo's connections (the memory budget's count). */
  held(): number;
  close(graceMs?: number): Promise<void>;
}

async function start(engine: 'native' | 'js', framed: boolean): Promise<Served> {
  if (engine === 'native') {
    const s = await startNativeEchoServer(v4, { framed, threads: 2 });
    return { endpoint: s.endpoint, stats: () => s.stats(), held: () => s.memoryHeld, close: (g) => s.close(g) };
  }
  const budget = new MemoryBudget(256 * 1024 * 1024);
  const s = await startManagedEchoServer(v4, { framed, memoryBudget: budget });
  return { endpoint: s.endpoint, stats: () => s.stats(), held: () => budget.used, close: (g) => s.close(g) };
}

function client(ep: Endpoint): Promise<Socket> {
  if (ep.kind !== 'inet') throw new Error('inet only');
  const s = connect({ host: ep.host, port: ep.port });
  s.on('error', () => undefined);
  return once(s, 'connect').then(() => s);
}

/** Writes 64 KiB chunks as long as the socket takes them, never reading, until `stop()` or 64 MiB. */
function flood(s: Socket, chunk: Buffer): { sent: () => number; stop: () => void } {
  let sent = 0;
  let stopped = false;
  const pump = (): void => {
    while (!stopped && sent < 64 * 1024 * 1024) {
      sent += chunk.length;
      if (!s.write(chunk)) return;
    }
  };
  s.on('drain', pump);
  pump();
  return { sent: () => sent, stop: () => void (stopped = true) };
}

function frames(n: number, size: number): Buffer {
  const one = Buffer.alloc(4 + size, 7);
  one.writeUInt32BE(size);
  return Buffer.concat(Array.from({ length: n }, () => one));
}

const engines = nativeEchoStatus().available ? (['native', 'js'] as const) : (['js'] as const);

describe('misbehaving clients cannot grow the echo server', { timeout: 120_000 }, () => {
  it('the native engine is here to be tested', (t) => {
    const st = nativeEchoStatus();
    if (st.available) return;
    if (REQUIRE_TOOLS) throw new Error(`the native engine is required (SOCKETKIT_REQUIRE_TOOLS=1) but ${st.reason ?? 'unavailable'}`);
    t.skip(`native engine not available: ${st.reason ?? 'unknown'} (only the js engine is tested)`);
  });

  for (const engine of engines) {
    for (const framed of [false, true]) {
      it(`${engine}${framed ? ', framed' : ''}: a client that sends and never reads is held to a bounded amount`, { timeout: 60_000 }, async () => {
        const server = await start(engine, framed);
        try {
          const s = await client(server.endpoint);
          const f = flood(s, framed ? frames(1000, 60) : Buffer.alloc(64 * 1024, 1));
          // The server stops reading, the kernel's buffers fill, and the client's writes stall.
          const bytesIn = await waitForStall(() => server.stats().bytesIn, 'bytes the server read', { samples: 10, intervalMs: 30, timeoutMs: 30_000 });
          const st = server.stats();
          assert.ok(f.sent() > bytesIn, `the client pushed more (${f.sent()}) than the server read (${bytesIn})`);
          assert.ok(bytesIn < 48 * 1024 * 1024, `the server stopped reading (${bytesIn} read)`);
          assert.ok(st.bytesIn - st.bytesOut <= HELD_BOUND, `held ${st.bytesIn - st.bytesOut} bytes for one client`);
          if (framed) assert.ok(server.held() <= HELD_BOUND, `budget counts ${server.held()} bytes`);
          f.stop();
          s.destroy();
          await waitUntil(() => server.stats().connections === 0 && server.held() === 0, 'the connection to end and its memory to be given back', 10_000);
        } finally {
          await server.close(0);
        }
      });
    }

    it(`${engine}: a client that half-closes without reading, and clients that reset, leave nothing behind`, { timeout: 60_000 }, async () => {
      const server = await start(engine, true);
      try {
        const half = await client(server.endpoint);
        // More than the kernel's buffers hold (they take a few MB on loopback), then the half-close.
        const f = flood(half, frames(1000, 60));
        await waitForStall(() => server.stats().bytesIn, 'bytes the server read', { samples: 10, intervalMs: 30, timeoutMs: 30_000 });
        f.stop();
        half.end();
        assert.ok(server.held() <= HELD_BOUND, `held ${server.held()} bytes for the half-closed client`);
        const resets = await Promise.all(Array.from({ length: 50 }, () => client(server.endpoint)));
        for (const r of resets) r.write(frames(100, 500).subarray(0, 30_001)); // ends mid-message
        await waitUntil(() => server.stats().connections === 51, 'all 51 connections in', 10_000);
        for (const r of resets) r.resetAndDestroy();
        await waitUntil(() => server.stats().connections === 1, 'the reset connections to end', 10_000);
        half.destroy();
        await waitUntil(() => server.stats().connections === 0 && server.held() === 0, 'every connection gone, nothing held', 10_000);
      } finally {
        await server.close(0);
      }
    });
  }
});

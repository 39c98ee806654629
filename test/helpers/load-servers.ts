// The misbehaving servers and the accounting rule that the load tests share: the TypeScript
// engine's own tests (test/load.test.ts, test/load-accounting.test.ts) and the two-engine
// differential (test/load-engines.test.ts) run the same scenarios against the same servers.
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import type { LoadResult } from '../../src/load/index.js';
import type { Endpoint } from '../../src/net/endpoint.js';
import { startTestServer, type TestServer } from './net.js';
import type { CleanupContext } from './tmp.js';

export const v4: Endpoint = { kind: 'inet', host: '127.0.0.1', port: 0 };

/** The load generator's one-byte connection check, echoed at once by every test server. */
export const WARM_UP = '!';

/** Asserts that every request is counted exactly once, and that the parts add up. */
export function assertAccounts(r: LoadResult): void {
  const f = r.failures;
  assert.equal(r.failed, f.timeout + f.connection + f.mismatch + f.unanswered, 'failed = sum of its reasons');
  assert.equal(r.unsent, r.unsentBy.connectionDown + r.unsentBy.queued, 'unsent = sum of its reasons');
  assert.equal(r.scheduled, r.completed + r.failed + r.unsent, 'scheduled = completed + failed + unsent');
  assert.equal(r.sent, r.completed + r.failed, 'sent = completed + failed');
  assert.equal(r.completed, r.roundTrips);
  assert.equal(r.requests, r.sent);
  assert.equal(r.errors, r.failed + r.connectionErrors);
  assert.equal(Object.values(r.errorCodes).reduce((a, b) => a + b, 0), r.errors, 'errorCodes add up to errors');
  assert.equal(r.latency.count, r.completed);
  if (r.mode === 'closed') assert.equal(r.unsent, 0);
  if (r.latency.count > 0) {
    const l = r.latency;
    assert.ok(l.min <= l.p50 && l.p50 <= l.p90 && l.p90 <= l.p99 && l.p99 <= l.p999 && l.p999 <= l.max, JSON.stringify(l));
  }
}

/** An echo server that sends every chunk back `delayMs` later (the warm-up byte at once). */
export function delayServer(delayMs: number, t: CleanupContext): Promise<TestServer> {
  return startTestServer(
    v4,
    (socket: Socket) => {
      socket.on('data', (chunk: Buffer) => {
        if (chunk.toString() === WARM_UP) socket.write(chunk);
        else setTimeout(() => socket.write(chunk), delayMs);
      });
      socket.on('end', () => socket.end());
    },
    t,
  );
}

/**
 * A server that accepts, reads, and never writes a byte of any request: only the load
 * generator's one-byte connection check is echoed (with `warmUp`), so the run starts and stalls.
 */
export function stalledServer(t: CleanupContext, warmUp = true): Promise<TestServer> {
  return startTestServer(
    v4,
    (socket: Socket) => {
      let first = true;
      socket.on('data', (chunk: Buffer) => {
        if (first && warmUp) socket.write(chunk.subarray(0, 1));
        first = false;
      });
    },
    t,
  );
}

/**
 * Echoes the warm-up and the first `served[i]` requests of `size` bytes on the i-th connection
 * it accepts, then ends that connection (so one can die while the others still run).
 */
export function cutShortServer(t: CleanupContext, size: number, served: readonly number[]): Promise<TestServer> {
  let accepted = 0;
  return startTestServer(
    v4,
    (socket: Socket) => {
      let warm = true;
      let left = (served[accepted++] ?? 0) * size;
      socket.on('data', (chunk: Buffer) => {
        if (warm) {
          warm = false;
          socket.write(chunk.subarray(0, 1));
          chunk = chunk.subarray(1);
        }
        if (left <= 0 || chunk.length === 0) return;
        const part = chunk.subarray(0, left);
        left -= part.length;
        socket.write(part);
        if (left === 0) socket.end();
      });
    },
    t,
  );
}

/**
 * A UDP echo that drops every 3rd request (not the one-byte warm-up) and echoes it `lateMs`
 * later instead. Its timers and socket are cleaned up after the test.
 */
export async function lateUdpEcho(t: CleanupContext, lateMs = 1500): Promise<Endpoint> {
  const udp = createSocket('udp4');
  const late = new Set<NodeJS.Timeout>();
  t.after(() => {
    for (const timer of late) clearTimeout(timer);
    udp.close();
  });
  udp.bind(0, '127.0.0.1');
  await once(udp, 'listening', { signal: AbortSignal.timeout(5000) });
  let n = 0;
  udp.on('message', (m, rinfo) => {
    if (m.length > 1 && ++n % 3 === 0) {
      const timer = setTimeout(() => {
        late.delete(timer);
        udp.send(m, rinfo.port, rinfo.address);
      }, lateMs);
      late.add(timer);
    } else udp.send(m, rinfo.port, rinfo.address);
  });
  return { kind: 'inet', host: '127.0.0.1', port: udp.address().port };
}

/**
 * Framing over loopback: messages/s through a message connection to a framed echo server and
 * back, for 64 B and 64 KiB payloads, over TCP and a Unix socket. The client keeps a window of
 * messages in flight (sending and reading concurrently), as a real pipelined client would.
 *
 * Run: `node dist/bench/message.js` (or as part of `npm run bench`).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { connectMessages, echoMessages, listenMessages } from '../src/message/index.js';
import type { Endpoint } from '../src/net/endpoint.js';

export interface MessageBenchRow {
  readonly transport: 'tcp' | 'unix';
  readonly payloadBytes: number;
  readonly messages: number;
  readonly seconds: number;
  readonly messagesPerSecond: number;
  readonly mibPerSecond: number;
}

export interface MessageBenchOptions {
  /** Milliseconds per row. Default 1500. */
  readonly durationMs?: number;
  readonly log?: (line: string) => void;
}

async function one(ep: Endpoint, transport: 'tcp' | 'unix', size: number, durationMs: number): Promise<MessageBenchRow> {
  const listener = await listenMessages(ep, { onConnection: (c) => void echoMessages(c) });
  try {
    const conn = await connectMessages(listener.endpoint);
    const payload = Buffer.alloc(size, 0x61);
    let received = 0;
    let sent = 0;
    const t0 = performance.now();
    const deadline = t0 + durationMs;
    const reader = (async () => {
      for await (const _ of conn) received++;
    })();
    // Send until the deadline, checking the clock every 256 messages; send() applies backpressure.
    while (true) {
      await conn.send(payload);
      sent++;
      if ((sent & 255) === 0 && performance.now() >= deadline) break;
    }
    await conn.end();
    await reader;
    const seconds = (performance.now() - t0) / 1000;
    conn.close();
    if (received !== sent) throw new Error(`sent ${sent}, got ${received} back`);
    return {
      transport,
      payloadBytes: size,
      messages: received,
      seconds,
      messagesPerSecond: received / seconds,
      mibPerSecond: (received * size) / seconds / 1024 / 1024,
    };
  } finally {
    await listener.close();
  }
}

/** Runs the loopback framing benchmark and prints a table. */
export async function benchMessage(options: MessageBenchOptions = {}): Promise<{ name: 'message'; rows: MessageBenchRow[] }> {
  const durationMs = options.durationMs ?? 1500;
  const log = options.log ?? ((line: string) => console.log(line));
  const dir = await mkdtemp(join(tmpdir(), 'socketkit-bench-'));
  const rows: MessageBenchRow[] = [];
  try {
    for (const size of [64, 64 * 1024]) {
      rows.push(await one({ kind: 'inet', host: '127.0.0.1', port: 0 }, 'tcp', size, durationMs));
      rows.push(await one({ kind: 'unix', path: join(dir, 'b.sock') }, 'unix', size, durationMs));
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  log('framed echo round trips over loopback (one connection, pipelined)');
  log(`${'transport'.padEnd(10)}${'payload'.padStart(9)}${'messages/s'.padStart(14)}${'MiB/s each way'.padStart(16)}`);
  for (const r of rows) {
    log(`${r.transport.padEnd(10)}${(r.payloadBytes >= 1024 ? `${r.payloadBytes / 1024} KiB` : `${r.payloadBytes} B`).padStart(9)}${Math.round(r.messagesPerSecond).toLocaleString('en-US').padStart(14)}${r.mibPerSecond.toFixed(0).padStart(16)}`);
  }
  return { name: 'message', rows };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await benchMessage();
}

// Trust test of the framed echo's memory (issue 11, item 7): scripted clients that send frames
// and never read their replies. The server's buffered-byte count (its memory budget) stays
// within the budget, a client that would overspend it is closed with ERR_MEMORY_BUDGET, and
// the count returns to 0 once the clients have left.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { EventEmitter, once } from 'node:events';
import { startManagedEchoServer, type ServerEvent } from '../src/server/index.js';
import { MemoryBudget } from '../src/server/budget.js';

const MIB = 1024 * 1024;

describe('framed echo memory budget (7)', () => {
  it('clients that send and never read stay within the budget, and give it back when they leave', { timeout: 60_000 }, async (t) => {
    const budget = new MemoryBudget(4 * MIB);
    const events: ServerEvent[] = [];
    const changed = new EventEmitter();
    const server = await startManagedEchoServer(
      { kind: 'inet', host: '127.0.0.1', port: 0 },
      { framed: true, maxMessageSize: MIB, memoryBudget: budget, onEvent: (e) => (events.push(e), changed.emit('event')) },
    );
    t.after(() => server.close());
    // One timeout for the whole wait, and `once` with its signal for each event (no listener
    // piles up on the signal).
    const waitFor = async (ok: () => boolean): Promise<void> => {
      const signal = AbortSignal.timeout(30_000);
      try {
        while (!ok()) await once(changed, 'event', { signal });
      } catch (error) {
        if (signal.aborted) throw new Error(`timed out; budget ${budget.used}, events ${events.length}`);
        throw error;
      }
    };
    const port = (server.endpoint as { port: number }).port;
    const frame = Buffer.alloc(MIB);
    frame.writeUInt32BE(MIB - 4, 0);
    const CLIENTS = 20;
    const clients: net.Socket[] = [];
    for (let i = 0; i < CLIENTS; i++) {
      const c = net.connect(port, '127.0.0.1');
      c.pause(); // never reads its replies
      c.on('error', () => undefined);
      clients.push(c);
      let sent = 0;
      const pump = (): void => {
        while (sent < 32 && !c.destroyed && c.write(frame)) sent++;
        if (sent < 32 && !c.destroyed) c.once('drain', pump);
      };
      c.once('connect', pump);
    }
    t.after(() => clients.forEach((c) => c.destroy()));
    let maxUsed = 0;
    const sampler = setInterval(() => (maxUsed = Math.max(maxUsed, budget.used)), 5);
    t.after(() => clearInterval(sampler));
    await waitFor(() => events.some((e) => e.event === 'disconnect' && e.error === 'ERR_MEMORY_BUDGET'));
    // Within the budget (a reply's 4-byte headers are counted after the fact).
    assert.ok(budget.peak <= budget.limit + 64 * 1024, `peak ${budget.peak} of ${budget.limit}`);
    assert.ok(maxUsed <= budget.limit + 64 * 1024);
    assert.ok(budget.refusals > 0);
    for (const c of clients) c.destroy();
    await waitFor(() => events.filter((e) => e.event === 'disconnect').length === events.filter((e) => e.event === 'connect').length && events.filter((e) => e.event === 'connect').length === CLIENTS);
    assert.equal(budget.used, 0, 'every byte is given back when the clients leave');
  });
});

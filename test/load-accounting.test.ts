// Tests of the load generator's accounting (issue 11 item 13, issue 12 items 5 and 19): every
// request counted once (scheduled = completed + failed + unsent; closed loop sent = completed +
// failed) against servers that stall, close mid-run or corrupt; no latency figures without
// replies; Ctrl-C/SIGTERM while connecting or running stops at once with 130/143 and the partial
// result; and `--print`.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { MAX_OUTSTANDING_PER_CONNECTION, runLoad } from '../src/load/index.js';
import { startManagedEchoServer } from '../src/server/index.js';
import { formatEndpoint } from '../src/net/endpoint.js';
import { ndjson, runCli, runMain, spawnCli } from './helpers/cli.js';
import { startTestServer, waitUntil } from './helpers/net.js';
import { assertAccounts, cutShortServer, stalledServer, v4 } from './helpers/load-servers.js';

describe('load accounting: every request counted once', () => {
  it('open loop against a stalled server: all scheduled requests fail as unanswered, no latency', async (t) => {
    const server = await stalledServer(t);
    const r = await runLoad(server.endpoint, { connections: 4, size: 16, rate: 200, durationMs: 500, timeoutMs: 5_000, drainMs: 100 });
    assertAccounts(r);
    // 500 ms at 200/s: about 100 due (timers are late, never early: at least 60), and never more
    // than the schedule allows in the time the run lasted.
    assert.ok(r.scheduled >= 60 && r.scheduled <= Math.floor(r.seconds * 200) + 1, `scheduled ${r.scheduled} in ${r.seconds} s`);
    assert.equal(r.completed, 0);
    assert.equal(r.unsent, 0, 'far below the in-flight limit: every request was sent');
    assert.equal(r.failures.unanswered, r.scheduled);
    assert.equal(r.inFlightAtStop, r.scheduled);
    assert.equal(r.errorCodes['ERR_TIMEOUT'], r.scheduled, 'each unanswered request is one error, not one per connection');
    assert.equal(r.latency.count, 0);
  });

  it('open loop past the in-flight limit: requests that waited unsent are counted as queued', async (t) => {
    const server = await stalledServer(t);
    const r = await runLoad(server.endpoint, { connections: 1, size: 8, rate: 4_000, durationMs: 500, timeoutMs: 5_000, drainMs: 100 });
    assertAccounts(r);
    assert.equal(r.sent, MAX_OUTSTANDING_PER_CONNECTION, 'one connection holds at most the in-flight limit');
    assert.ok(r.unsentBy.queued > 0, `scheduled ${r.scheduled}, sent ${r.sent}`);
    assert.equal(r.unsentBy.queued, r.scheduled - r.sent);
    assert.equal(r.failures.unanswered, r.sent);
  });

  it('closed loop against a stalled server: sent = completed + failed, what was in flight is noted', async (t) => {
    const server = await stalledServer(t);
    const r = await runLoad(server.endpoint, { connections: 3, size: 16, durationMs: 200, timeoutMs: 5_000, drainMs: 100 });
    assertAccounts(r);
    assert.deepEqual([r.sent, r.completed, r.failed, r.failures.unanswered, r.inFlightAtStop], [3, 0, 3, 3, 3]);
  });

  it('a connection timeout fails its whole backlog, and requests due on it afterwards are unsent', async (t) => {
    const server = await stalledServer(t);
    const r = await runLoad(server.endpoint, { connections: 2, size: 16, rate: 100, durationMs: 1_500, timeoutMs: 300 });
    assertAccounts(r);
    assert.equal(r.completed, 0);
    assert.ok(r.failures.timeout > 2, `${r.failures.timeout} timed out: more than one per connection`);
    assert.equal(r.failures.timeout, r.sent);
  });

  it('a server that closes each connection mid-run: the backlog fails as connection, the rest is unsent', async (t) => {
    const size = 16;
    // The first connection accepted dies after 3 requests, while the others (20 each) still run.
    const server = await cutShortServer(t, size, [3, 20, 20]);
    const r = await runLoad(server.endpoint, { connections: 3, size, rate: 300, durationMs: 600, timeoutMs: 5_000 });
    assertAccounts(r);
    assert.equal(r.completed, 3 + 20 + 20);
    assert.equal(r.failed, r.failures.connection, 'every failure is the connection closing');
    assert.ok(r.unsentBy.connectionDown > 0, 'requests due on a closed connection are unsent, not dropped');
    assert.ok(r.scheduled > r.sent);
    assert.equal((r.errorCodes['ERR_CONN_CLOSED'] ?? 0) + (r.errorCodes['ERR_CONN_RESET'] ?? 0), r.errors);
  });

  it('a corrupted echo with requests outstanding: each of them fails as mismatch', async (t) => {
    // Echoes the warm-up, then holds requests until 5 have arrived and returns them corrupted.
    const size = 8;
    const server = await startTestServer(
      v4,
      (socket: Socket) => {
        let warm = true;
        let held = Buffer.alloc(0);
        socket.on('data', (chunk: Buffer) => {
          if (warm) {
            warm = false;
            socket.write(chunk.subarray(0, 1));
            chunk = chunk.subarray(1);
          }
          held = Buffer.concat([held, chunk]);
          if (held.length >= 5 * size) {
            socket.write(Buffer.alloc(held.length, 0x58));
            held = Buffer.alloc(0);
          }
        });
      },
      t,
    );
    const r = await runLoad(server.endpoint, { connections: 1, size, rate: 200, durationMs: 300, timeoutMs: 5_000 });
    assertAccounts(r);
    assert.equal(r.completed, 0);
    assert.ok(r.failures.mismatch >= 5, `${r.failures.mismatch} mismatched`);
    assert.equal(r.errorCodes['ERR_ECHO_MISMATCH'], r.failures.mismatch);
  });

  it('a healthy server: everything completes, nothing failed or unsent', async (t) => {
    const server = await startManagedEchoServer(v4);
    t.after(() => server.close());
    const r = await runLoad(server.endpoint, { connections: 4, size: 64, rate: 400, durationMs: 300 });
    assertAccounts(r);
    assert.ok(r.completed > 0);
    assert.deepEqual([r.failed, r.unsent, r.errors], [0, 0, 0]);
  });
});

describe('socketkit load (the real binary): accounting in --json and text', () => {
  it('--json against a stalled server: the breakdown adds up, percentiles are null, exit 1', async (t) => {
    const server = await stalledServer(t);
    const addr = formatEndpoint(server.endpoint);
    const r = await runCli(['load', addr, '--rate', '200', '-c', '4', '-d', '0.5', '--json'], { timeoutMs: 15_000 });
    assert.equal(r.code, 1, r.stderr);
    const lines = ndjson(r.stdout.toString());
    assert.equal(lines.length, 1);
    const j = lines[0] as Record<string, unknown> & { failures: Record<string, number>; unsentBy: Record<string, number>; latencyMs: Record<string, number | null> };
    const n = (k: string): number => j[k] as number;
    assert.equal(j['event'], 'load');
    assert.ok(n('scheduled') >= 60, `scheduled ${n('scheduled')}`);
    assert.equal(n('scheduled'), n('completed') + n('failed') + n('unsent'));
    assert.equal(n('failed'), j.failures['timeout']! + j.failures['connection']! + j.failures['mismatch']! + j.failures['unanswered']!);
    assert.equal(n('unsent'), j.unsentBy['connectionDown']! + j.unsentBy['queued']!);
    assert.equal(n('completed'), 0);
    assert.equal(n('errors'), n('failed'));
    for (const k of ['p50', 'p90', 'p99', 'p999', 'max', 'min', 'mean']) assert.equal(j.latencyMs[k], null, `latencyMs.${k}`);
    assert.equal(j.latencyMs['count'], 0);
  });

  it('text against a stalled server: the breakdown, and "no replies" instead of 0.000 ms', async (t) => {
    const server = await stalledServer(t);
    const r = await runCli(['load', formatEndpoint(server.endpoint), '-c', '2', '-d', '0.3'], { timeoutMs: 15_000 });
    assert.equal(r.code, 1, r.stderr);
    const out = r.stdout.toString();
    assert.match(out, /requests {5}2 sent = 0 completed \+ 2 failed {2}\(2 in flight when sending stopped\)/);
    assert.match(out, /failed {7}2 {2}\(unanswered 2\)/);
    assert.match(out, /latency {6}no replies/);
    assert.doesNotMatch(out, /0\.000 ms/);
  });
});

describe('socketkit load (the real binary): SIGINT and SIGTERM stop at once', () => {
  it('SIGINT while connections are opening (a server that never answers): exit 130 at once, partial result', async (t) => {
    const server = await stalledServer(t, false);
    const p = spawnCli(['load', formatEndpoint(server.endpoint), '-c', '10'], t);
    await p.stderr.waitFor(/connecting 10 connection/);
    const at = performance.now();
    p.kill('SIGINT');
    const { code } = await p.waitExit(8_000);
    const took = performance.now() - at;
    assert.equal(code, 130, p.stderr.text);
    // The connect check waits up to its 10 s timeout; an abort must not.
    assert.ok(took < 3_000, `exit took ${Math.round(took)} ms`);
    assert.match(p.stdout.text, /0 of 10 connection\(s\).*interrupted/);
    assert.match(p.stderr.text, /\(ERR_ABORTED\)/);
  });

  it('SIGTERM while connections are opening: exit 143', async (t) => {
    const server = await stalledServer(t, false);
    const p = spawnCli(['load', formatEndpoint(server.endpoint), '-c', '3', '--json'], t);
    // In --json mode stderr stays quiet; wait for the server to see the connect checks instead.
    await waitUntil(() => server.accepted >= 3, 'the three connections to be accepted');
    const at = performance.now();
    p.kill('SIGTERM');
    const { code } = await p.waitExit(8_000);
    assert.equal(code, 143, p.stderr.text);
    assert.ok(performance.now() - at < 3_000);
    const j = ndjson(p.stdout.text)[0]!;
    assert.deepEqual([j['event'], j['interrupted'], j['scheduled']], ['load', true, 0]);
  });

  it('SIGINT during the measured run against a stalled server: no drain wait, exit 130, the requests accounted', async (t) => {
    // Resolves when the first request bytes (after the one-byte connect check) reach the server.
    let requestArrived: () => void = () => undefined;
    const arrived = new Promise<void>((resolve) => (requestArrived = resolve));
    const server = await startTestServer(
      v4,
      (socket: Socket) => {
        let first = true;
        socket.on('data', (chunk: Buffer) => {
          if (first) socket.write(chunk.subarray(0, 1));
          if (!first || chunk.length > 1) requestArrived();
          first = false;
        });
      },
      t,
    );
    const p = spawnCli(['load', formatEndpoint(server.endpoint), '-c', '2', '--rate', '100', '-d', '30', '--json'], t);
    await arrived;
    const at = performance.now();
    p.kill('SIGINT');
    const { code } = await p.waitExit(8_000);
    assert.equal(code, 130, p.stderr.text);
    assert.ok(performance.now() - at < 1_500, 'no 2 s drain after an interrupt');
    const j = ndjson(p.stdout.text)[0]! as Record<string, number | boolean>;
    assert.equal(j['interrupted'], true);
    assert.ok((j['scheduled'] as number) >= 1);
    assert.equal(j['scheduled'], (j['completed'] as number) + (j['failed'] as number) + (j['unsent'] as number));
    assert.equal(j['errorCodes'] !== undefined, true);
  });
});

describe('socketkit load --print', () => {
  it('shows each reply with its connection number, like the course client', async (t) => {
    const server = await startManagedEchoServer(v4);
    t.after(() => server.close());
    const r = await runMain(['load', formatEndpoint(server.endpoint), '-c', '2', '--messages', 'Message 1 from client.,Message 2 from client.', '-n', '4', '--print']);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.toString().split('\n').filter((l) => l.startsWith('conn '));
    assert.deepEqual([...lines].sort(), ['conn 1: Message 1 from client.', 'conn 1: Message 2 from client.', 'conn 2: Message 1 from client.', 'conn 2: Message 2 from client.']);
    // -v is the short form.
    const short = await runMain(['load', formatEndpoint(server.endpoint), '-c', '1', '--messages', 'hi', '-n', '1', '-v']);
    assert.match(short.stdout.toString(), /^conn 1: hi$/m);
  });

  it('neutralises control characters, cuts long replies, and stops after the cap with a count', async (t) => {
    const server = await startManagedEchoServer(v4);
    t.after(() => server.close());
    const addr = formatEndpoint(server.endpoint);
    const esc = await runMain(['load', addr, '--messages', '\x1b]0;owned\x07\x1b[2Jx', '-n', '1', '--print']);
    assert.equal(esc.code, 0, esc.stderr);
    const out = esc.stdout.toString();
    assert.ok(!out.includes('\x1b') && !out.includes('\x07'), 'no raw control character reaches the terminal');
    assert.match(out, /^conn 1: \?\]0;owned\?\?\[2Jx$/m);

    const long = await runMain(['load', addr, '--messages', 'y'.repeat(300), '-n', '1', '--print']);
    const line = long.stdout.toString().split('\n').find((l) => l.startsWith('conn 1: '))!;
    assert.equal(line, `conn 1: ${'y'.repeat(199)}…`);

    const many = await runMain(['load', addr, '--messages', 'm', '-n', '1005', '--print']);
    assert.equal(many.code, 0, many.stderr);
    const text = many.stdout.toString();
    assert.equal(text.split('\n').filter((l) => l.startsWith('conn 1: m')).length, 1000);
    assert.match(text, /\(5 more replies not printed: --print shows the first 1,000\)/);
  });

  it('--json --print: one reply event per reply, then the result', async (t) => {
    const server = await startManagedEchoServer(v4);
    t.after(() => server.close());
    const r = await runMain(['load', formatEndpoint(server.endpoint), '-c', '2', '--messages', 'a,b', '-n', '4', '--print', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const events = ndjson(r.stdout.toString());
    const replies = events.filter((e) => e['event'] === 'reply');
    assert.equal(replies.length, 4);
    assert.deepEqual(replies.map((e) => `${String(e['conn'])}:${String(e['text'])}`).sort(), ['1:a', '1:b', '2:a', '2:b']);
    assert.equal(events.at(-1)!['event'], 'load');
  });
});

/**
 * The clients of the broker fan-out benchmark (bench/broker.ts), each role its own process so
 * that the receivers never share an event loop with the sender (in one process they fell
 * behind the sender and were cut off as slow consumers, which measured the benchmark, not the
 * broker).
 *
 *   node dist/bench/broker-peer.js recv PORT[,PORT...] COUNT
 *     Opens COUNT receivers on 127.0.0.1, round-robin over the ports (receiver i on
 *     ports[(i + first) % n], FIRST from SOCKETKIT_BENCH_PEER_FIRST, default 0), and counts the
 *     bytes each is sent. Prints `{"ready":COUNT}` once all are connected; then, for every line
 *     read on stdin, one JSON line `{"at":EPOCH_MS,"bytes":[...],"closed":[...],"reads":N}` (per
 *     receiver: bytes received so far, whether the broker closed it; N: reads so far over all of
 *     them). Exits when stdin ends.
 *
 *   node dist/bench/broker-peer.js send PORT SIZE
 *     Opens one sender. Prints `{"ready":1}`; then reads commands on stdin, one a line:
 *     `probe` writes one SIZE-byte message and answers `{"sent":N}` (messages sent so far);
 *     `go MS` writes messages back to back for MS ms, as fast as the socket's backpressure lets
 *     it (64 KiB writes of whole messages), and answers `{"sent":N,"ms":ELAPSED}`. Exits when
 *     stdin ends.
 *
 * Messages are SIZE bytes of 'a': the byte broker relays chunks, so only the byte counts matter.
 */
import { connect, type Socket } from 'node:net';
import { createInterface } from 'node:readline';

function open(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: '127.0.0.1' }, () => {
      s.off('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}

function say(v: unknown): void {
  process.stdout.write(`${JSON.stringify(v)}\n`);
}

async function receivers(ports: readonly number[], count: number): Promise<void> {
  const first = Number(process.env['SOCKETKIT_BENCH_PEER_FIRST'] ?? 0);
  const bytes = new Array<number>(count).fill(0);
  const closed = new Array<boolean>(count).fill(false);
  let reads = 0;
  const sockets: Socket[] = [];
  for (let i = 0; i < count; i++) {
    const s = await open(ports[(i + first) % ports.length]!);
    s.on('data', (c: Buffer) => {
      bytes[i] = bytes[i]! + c.length;
      reads++;
    });
    s.on('error', () => undefined);
    s.once('close', () => (closed[i] = true));
    sockets.push(s);
  }
  say({ ready: count });
  const lines = createInterface({ input: process.stdin });
  lines.on('line', () => say({ at: performance.timeOrigin + performance.now(), bytes, closed, reads }));
  lines.once('close', () => {
    for (const s of sockets) s.destroy();
  });
}

async function sender(port: number, size: number): Promise<void> {
  const s = await open(port);
  s.on('error', () => undefined);
  const perWrite = Math.max(1, Math.floor(65536 / size));
  const batch = Buffer.alloc(perWrite * size, 0x61);
  const one = batch.subarray(0, size);
  let sent = 0;
  say({ ready: 1 });
  const go = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      const end = performance.now() + ms;
      const pump = (): void => {
        while (performance.now() < end) {
          sent += perWrite;
          if (!s.write(batch)) {
            s.once('drain', pump);
            return;
          }
        }
        resolve();
      };
      pump();
    });
  const lines = createInterface({ input: process.stdin });
  // One command at a time, in order.
  let queue = Promise.resolve();
  lines.on('line', (line) => {
    queue = queue.then(async () => {
      const [cmd, arg] = line.trim().split(/\s+/);
      if (cmd === 'probe') {
        s.write(one);
        sent++;
        say({ sent });
      } else if (cmd === 'go') {
        const t0 = performance.now();
        await go(Number(arg));
        say({ sent, ms: performance.now() - t0 });
      }
    });
  });
  lines.once('close', () => void queue.then(() => s.destroy()));
}

const [role, where = '', n = ''] = process.argv.slice(2);
const ports = where.split(',').map(Number);
if (role === 'recv') await receivers(ports, Number(n));
else if (role === 'send') await sender(ports[0]!, Number(n));
else {
  process.stderr.write('usage: broker-peer.js recv PORT[,PORT...] COUNT | send PORT SIZE\n');
  process.exitCode = 2;
}

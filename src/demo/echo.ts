/** Tour step: TCP echo over IPv4, IPv6 and a Unix socket, with many clients at once. */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { TourStep } from './tour.js';
import { startEchoServer } from '../echo/server.js';
import { echoMessage, echoStream } from '../echo/client.js';
import { formatEndpoint, type Endpoint } from '../net/endpoint.js';
import { formatBytes, formatMs } from '../cli/report.js';

export const echoStep: TourStep = {
  title: 'TCP echo: server and client over IPv4, IPv6 and a Unix socket',
  async run({ row, tmp, ipv6 }) {
    const endpoints: Endpoint[] = [{ kind: 'inet', host: '127.0.0.1', port: 0 }];
    if (ipv6) endpoints.push({ kind: 'inet', host: '::1', port: 0 });
    endpoints.push({ kind: 'unix', path: join(tmp, 'echo.sock') });
    for (const ep of endpoints) {
      const server = await startEchoServer(ep);
      try {
        const where = formatEndpoint(server.endpoint);
        const r = await echoMessage(server.endpoint, Buffer.from('Hola mundo'));
        row(where, `sent "Hola mundo", got "${r.reply.toString()}" back in ${formatMs(r.firstByteMs)}`);
        if (ep.kind === 'inet' && ep.host === '127.0.0.1') {
          const payload = randomBytes(4 * 1024 * 1024);
          const big = await echoStream(server.endpoint, chunks(payload, 64 * 1024));
          row('', `${formatBytes(big.bytesSent)} of random bytes echoed intact in ${formatMs(big.totalMs)}`);
          const t0 = performance.now();
          const many = await Promise.all(Array.from({ length: 50 }, (_, i) => echoMessage(server.endpoint, Buffer.from(`client ${i}`))));
          const ok = many.every((m, i) => m.reply.toString() === `client ${i}`);
          row('', `50 clients at once, ${ok ? 'all' : 'NOT all'} echoed correctly in ${formatMs(performance.now() - t0)}`);
          if (!ok) throw new Error('a concurrent client got a wrong echo');
        }
      } finally {
        await server.close();
      }
    }
  },
};

function* chunks(buf: Buffer, size: number): Generator<Buffer> {
  for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, i + size);
}

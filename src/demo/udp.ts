/**
 * Tour step: UDP echo over IPv4 and IPv6, the datagram maximum refused rather than cut, ping
 * with RTT percentiles, and loss made visible by an echo that drops every other datagram.
 */
import { createSocket, type RemoteInfo } from 'node:dgram';
import type { TourStep } from './tour.js';
import { formatEndpoint, type InetEndpoint } from '../net/endpoint.js';
import { formatMs } from '../cli/report.js';
import { startUdpEchoServer } from '../udp/server.js';
import { udpEcho } from '../udp/client.js';
import { ping } from '../udp/ping.js';
import { isSocketkitError } from '../core/errors.js';

/** A deliberately lossy echo: answers datagrams 0, 2, 4, ... and drops the rest. */
async function startLossyEcho(): Promise<{ ep: InetEndpoint; close: () => Promise<void> }> {
  const s = createSocket('udp4');
  let n = 0;
  s.on('message', (msg: Buffer, r: RemoteInfo) => {
    if (n++ % 2 === 0) s.send(msg, r.port, r.address);
  });
  await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', () => resolve()));
  return { ep: { kind: 'inet', host: '127.0.0.1', port: s.address().port }, close: () => new Promise<void>((r) => s.close(() => r())) };
}

export const udpStep: TourStep = {
  title: 'UDP: datagram echo over IPv4 and IPv6, the size limit, ping, and loss made visible',
  async run({ row, ipv6 }) {
    const endpoints: InetEndpoint[] = [{ kind: 'inet', host: '127.0.0.1', port: 0 }];
    if (ipv6) endpoints.push({ kind: 'inet', host: '::1', port: 0 });
    for (const ep of endpoints) {
      const server = await startUdpEchoServer(ep);
      try {
        const where = formatEndpoint(server.endpoint);
        const r = await udpEcho(server.endpoint, Buffer.from('Hola mundo'), { timeoutMs: 1000, retries: 2 });
        row(where, `sent "Hola mundo", got "${r.reply.toString()}" back in ${formatMs(r.rttMs)}`);
        const max = await udpEcho(server.endpoint, Buffer.alloc(server.maxPayload, 0x2a), { timeoutMs: 1000, retries: 2 });
        row('', `the largest datagram, ${max.bytesSent.toLocaleString('en-US')} bytes, came back whole`);
        try {
          await udpEcho(server.endpoint, Buffer.alloc(server.maxPayload + 1));
          throw new Error('an oversize datagram was not refused');
        } catch (err) {
          if (!isSocketkitError(err) || err.code !== 'ERR_DATAGRAM_TOO_LARGE') throw err;
          row('', `one byte more is refused before sending, never cut (${err.code})`);
        }
        if (ep.host === '127.0.0.1') {
          const s = await ping(server.endpoint, { count: 1000, intervalMs: 0, size: 64, timeoutMs: 1000 });
          row(
            '',
            `ping: ${s.sent.toLocaleString('en-US')} probes back to back, ${s.lossPercent.toFixed(1)}% loss, ` +
              `p50 ${formatMs(s.rtt.p50)}, p99 ${formatMs(s.rtt.p99)}, p99.9 ${formatMs(s.rtt.p999)}`,
          );
          if (s.received === 0) throw new Error('ping got no reply from our own server');
        }
      } finally {
        await server.close();
      }
    }
    const lossy = await startLossyEcho();
    try {
      const s = await ping(lossy.ep, { count: 20, intervalMs: 5, timeoutMs: 200 });
      row('lossy echo (drops 1 in 2)', `ping: ${s.sent} sent, ${s.received} received, ${s.lossPercent.toFixed(0)}% loss reported`);
    } finally {
      await lossy.close();
    }
  },
};

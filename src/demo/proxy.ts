/**
 * Tour step: the socket tutorials' own bug, shown. A client that calls recv(1024) once and
 * takes what it got for the message works on loopback, where the message arrives whole; through
 * `socketkit proxy --toxic slicer:average_size=1` it gets one byte of it. socketkit's echo
 * client, which reads until every byte it sent is back, gets all of it through the same proxy.
 */
import { connect as netConnect } from 'node:net';
import type { TourStep } from './tour.js';
import { startEchoServer } from '../echo/server.js';
import { echoMessage } from '../echo/client.js';
import { formatEndpoint, type Endpoint } from '../net/endpoint.js';
import { startProxy } from '../proxy/proxy.js';
import { neutralise } from '../core/terminal-text.js';

const MESSAGE = 'Hola mundo!';
/** µs between the slicer's one-byte pieces: long enough that each is its own read, even on a busy machine. */
const SLICE_DELAY_US = 50_000;

/** Sends `text` and reads once, as `s.sendall(text); s.recv(1024)` does: whatever the first read returns. */
function sendAndReadOnce(ep: Endpoint, text: string, signal: AbortSignal): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    if (ep.kind !== 'inet') {
      reject(new Error('inet endpoints only'));
      return;
    }
    const s = netConnect({ host: ep.host, port: ep.port, signal }, () => s.write(text));
    const timer = setTimeout(() => s.destroy(new Error('no reply within 5 s')), 5_000);
    s.once('data', (chunk: Buffer) => {
      clearTimeout(timer);
      s.destroy();
      resolve(chunk);
    });
    s.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    s.once('close', () => clearTimeout(timer));
  });
}

const shown = (b: Buffer): string => `"${neutralise(b.toString('utf8'))}"`;

export const proxyStep: TourStep = {
  title: 'Proxy: recv(1024) once, through a network that delivers one byte at a time',
  async run({ row, signal }) {
    const server = await startEchoServer({ kind: 'inet', host: '127.0.0.1', port: 0 });
    try {
      const proxy = await startProxy({ kind: 'inet', host: '127.0.0.1', port: 0 }, server.endpoint, {
        toxics: [{ type: 'slicer', attributes: { average_size: 1, delay: SLICE_DELAY_US } }],
      });
      try {
        const direct = await sendAndReadOnce(server.endpoint, MESSAGE, signal);
        row(formatEndpoint(server.endpoint), `echo server; one read gets ${shown(direct)} (loopback: the message arrives whole)`);
        const once = await sendAndReadOnce(proxy.endpoint, MESSAGE, signal);
        row(formatEndpoint(proxy.endpoint), `proxy --toxic slicer:average_size=1,delay=${SLICE_DELAY_US} in front of it`);
        row('', `one read (recv(1024) once) gets ${shown(once)}: ${once.length} of ${MESSAGE.length} bytes`);
        if (once.length >= MESSAGE.length) throw new Error('the slicer did not cut the reply');
        const all = await echoMessage(proxy.endpoint, Buffer.from(MESSAGE), { signal });
        row('', `socketkit echo reads until all is back: ${shown(all.reply)}, ${all.reply.length} of ${MESSAGE.length} bytes`);
        if (all.reply.toString() !== MESSAGE) throw new Error(`the echo client got ${shown(all.reply)}`);
      } finally {
        await proxy.close();
      }
    } finally {
      await server.close();
    }
  },
};

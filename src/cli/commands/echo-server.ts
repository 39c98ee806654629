/** `socketkit echo-server [ADDR]`: the echo server, with logging and graceful stop. */
import type { Command } from '../command.js';
import { parseEndpoint, formatEndpoint } from '../../net/endpoint.js';
import { DEFAULT_GRACE_MS, DEFAULT_LISTEN_HOST, DEFAULT_PORT } from '../../core/defaults.js';
import { startEchoServer, type EchoServerEvent } from '../../echo/server.js';
import { createReporter, formatBytes } from '../report.js';
import { flag, parseDurationMs, parseSize, str } from '../values.js';
import { MessageConnection, echoMessages } from '../../message/index.js';
import { runUdpEchoServer } from './udp-echo.js';

function describe(e: EchoServerEvent): string {
  switch (e.event) {
    case 'connect':
      return `+ ${e.peer} connected (#${e.id}, ${e.active} active)`;
    case 'disconnect':
      return `- ${e.peer} closed (#${e.id}, in ${formatBytes(e.bytesIn)}, out ${formatBytes(e.bytesOut)}, ${e.ms} ms${e.error ? `, ${e.error}` : ''})`;
    case 'refused':
      return `! ${e.peer} refused: ${e.reason}`;
  }
}

const command: Command = {
  name: 'echo-server',
  summary: 'Serve echo to any number of clients: every byte that arrives is sent back.',
  args: '[ADDR]',
  description: 'ADDR is PORT, HOST:PORT, [IPV6]:PORT or unix:PATH (default 127.0.0.1:9800). Listening on every interface must be asked for: 0.0.0.0:PORT or [::]:PORT.',
  options: {
    grace: { type: 'string', value: 'SECONDS', help: 'on SIGINT/SIGTERM, let live connections finish this long', default: String(DEFAULT_GRACE_MS / 1000) },
    framed: { type: 'boolean', help: 'echo whole length-prefixed messages (4-byte big-endian length, then the payload)' },
    'max-message': { type: 'string', value: 'SIZE', help: 'with --framed: the largest message accepted', default: '16MiB' },
    udp: { type: 'boolean', help: 'echo UDP datagrams (up to 65,507 bytes over IPv4, 65,527 over IPv6) to their senders' },
  },
  positionals: { min: 0, max: 1 },
  examples: ['socketkit echo-server 9800', 'socketkit echo-server [::1]:9800 --json', 'socketkit echo-server unix:/tmp/echo.sock'],
  async run({ values, positionals, io, global }) {
    if (flag(values, 'udp')) return runUdpEchoServer({ values, positionals, io, global });
    const ep = parseEndpoint(positionals[0] ?? String(DEFAULT_PORT), { defaultHost: DEFAULT_LISTEN_HOST, allowPortZero: true });
    const graceMs = parseDurationMs('grace', str(values, 'grace') ?? '5');
    const report = createReporter(io, global);
    const framed = flag(values, 'framed');
    const maxMessageSize = parseSize('max-message', str(values, 'max-message') ?? '16MiB');
    const server = await startEchoServer(ep, {
      ...(framed ? { handler: (socket) => void echoMessages(new MessageConnection(socket, { maxMessageSize })) } : {}),
      onEvent: (e) => {
        const { event, ...fields } = e;
        report.event(event, fields, describe(e));
      },
    });
    const where = formatEndpoint(server.endpoint);
    report.event('listening', { address: where, framed }, `${framed ? 'framed ' : ''}echo server listening on ${where}`);
    await new Promise<void>((resolve) => {
      if (io.shutdown.aborted) resolve();
      else io.shutdown.addEventListener('abort', () => resolve(), { once: true });
    });
    const active = server.listener.connections.size;
    report.log(`stopping: ${active} connection(s) open, waiting up to ${graceMs / 1000} s`);
    await server.close(graceMs);
    const s = server.stats;
    report.result('stopped', { ...s }, `echo server stopped: ${s.accepted} connection(s), ${s.refused} refused, in ${formatBytes(s.bytesIn)}, out ${formatBytes(s.bytesOut)}`);
    return 0;
  },
};

export default command;

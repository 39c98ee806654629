/** `socketkit perf-server [ADDR]`: the throughput test server, any number of tests at once. */
import { defineCommand } from '../command.js';
import { parseEndpoint } from '../../net/endpoint.js';
import { DEFAULT_GRACE_MS, DEFAULT_LISTEN_HOST } from '../../core/defaults.js';
import { createReporter } from '../report.js';
import { count, duration } from '../options.js';
import { serve } from '../../server/index.js';
import { startPerfServer, type PerfServer, type PerfServerEvent } from '../../perf/server.js';
import { DEFAULT_PERF_PORT } from '../../perf/defaults.js';
import { SERVER_SECURITY_OPTIONS, serverSecurity } from '../security-options.js';
import { acceptErrorLine } from '../server-report.js';
import { rate } from './perf.js';

function describe(e: PerfServerEvent): string {
  switch (e.event) {
    case 'test-start':
      return `+ test ${e.test.slice(0, 8)} from ${e.peer}: ${e.proto}, ${e.streams} stream(s)${e.bidir ? ', both ways' : e.reverse ? ', reverse' : ''}`;
    case 'test-end':
      return `- test ${e.test.slice(0, 8)} from ${e.peer} done: ${[e.received.length > 0 ? `received ${rate(e.bitsPerSecond)}` : '', e.sent.length > 0 ? `sent ${rate(e.sentBitsPerSecond)}` : ''].filter(Boolean).join(', ')}`;
    case 'test-interval':
      return '';
    case 'test-failed':
      return `! test ${e.test.slice(0, 8)} from ${e.peer} failed: ${e.message} (${e.code})`;
  }
}

export default defineCommand({
  name: 'perf-server',
  summary: 'Serve throughput tests (socketkit perf) to any number of clients at once, each test independent.',
  args: '[ADDR]',
  description: `ADDR is PORT, HOST:PORT, [IPV6]:PORT or unix:PATH (default 127.0.0.1:${DEFAULT_PERF_PORT}). UDP tests use a UDP socket on the same port.`,
  options: {
    grace: duration('on SIGINT/SIGTERM, let running tests finish this long', { default: DEFAULT_GRACE_MS }),
    'max-conns': count('serve at most N connections at once (a test takes one, plus one per TCP stream); more are refused'),
    ...SERVER_SECURITY_OPTIONS,
  },
  positionals: { min: 0, max: 1 },
  examples: ['socketkit perf-server', 'socketkit perf-server [::]:9801 --max-conns 64 --json', 'socketkit perf-server 9801 --cert cert.pem --key key.pem'],
  async run(ctx) {
    const { values, positionals, io, global } = ctx;
    const ep = parseEndpoint(positionals[0] ?? String(DEFAULT_PERF_PORT), { defaultHost: DEFAULT_LISTEN_HOST, defaultPort: DEFAULT_PERF_PORT, allowPortZero: true });
    const report = createReporter(io, global);
    const maxConnections = values['max-conns'];
    const sec = await serverSecurity(values, report);
    let server: PerfServer | undefined;
    try {
      await serve({
        endpoint: ep,
        workers: 1,
        graceMs: values.grace,
        shutdown: io.shutdown,
        ...(maxConnections !== undefined ? { maxConnections } : {}),
        start: async (one) => {
          server = await startPerfServer(ep, {
            clearStaleUnixSocket: one.clearStaleUnixSocket,
            ...(one.maxConnections !== undefined ? { maxConnections: one.maxConnections } : {}),
            onTest: (e) => {
              const { event, ...fields } = e;
              // The server's intervals of each test are --json events only: with many tests at once, lines of them would drown the rest.
              report.event(event, fields, global.quiet || event === 'test-interval' ? undefined : describe(e));
            },
            onAcceptError: (e) => acceptErrorLine(report, io, global, e),
            ...sec.listen,
          });
          return server.managed;
        },
        onListening: (where) =>
          report.event('listening', { address: where, udpPort: server?.udp?.address().port ?? null, maxConnections: maxConnections ?? null }, `perf server listening on ${where}${server?.udp ? ' (TCP and UDP)' : ''}`),
        onStopping: (open, ms) => report.log(`stopping: ${open} connection(s) open, waiting up to ${ms / 1000} s`),
      });
    } finally {
      await server?.close(0);
    }
    report.event('stopped', {}, 'perf server stopped');
    return 0;
  },
});

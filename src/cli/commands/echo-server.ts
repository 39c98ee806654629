/** `socketkit echo-server [ADDR]`: the echo server, with logging and graceful stop. */
import { defineCommand } from '../command.js';
import { parseEndpoint } from '../../net/endpoint.js';
import { DEFAULT_GRACE_MS, DEFAULT_LISTEN_HOST, DEFAULT_PORT } from '../../core/defaults.js';
import { fileURLToPath } from 'node:url';
import { createReporter } from '../report.js';
import { formatBytes, formatCount } from '../format.js';
import { count, custom, duration, size, toggle } from '../options.js';
import { DEFAULT_MAX_FRAME_SIZE } from '../../codec/constants.js';
import { resolveWorkerCount, serve, startManagedEchoServer, workerLink, type ServerEvent } from '../../server/index.js';
import { runUdpEchoServer } from './udp-echo.js';
import { MemoryBudget } from '../../server/budget.js';
import { DEFAULT_MEMORY_BUDGET } from '../../server/defaults.js';
import { SERVER_SECURITY_OPTIONS, securityArgs, serverSecurity } from '../security-options.js';
import { parseEngineName } from '../values.js';
import { chooseEngine, describeEngine } from '../../native/engine-choice.js';
import { nativeEchoStatus, startNativeEchoServer } from '../../native/echo-engine.js';
import { acceptErrorLine, averagedOver, managedServerValues, serverEventText, serverStatsText as statsText, statsLine, stoppingText } from '../server-report.js';

/** What a cluster worker runs: this CLI (in-process callers such as tests have another argv[1]). */
const CLI_SCRIPT = fileURLToPath(new URL('../../../../bin/socketkit.js', import.meta.url));


/** Default number of server processes. */
const DEFAULT_WORKERS = 1;

export default defineCommand({
  name: 'echo-server',
  summary: 'Serve echo to any number of clients: every byte that arrives is sent back.',
  args: '[ADDR]',
  description: 'ADDR is PORT, HOST:PORT, [IPV6]:PORT or unix:PATH (default 127.0.0.1:9800). Listening on every interface must be asked for: 0.0.0.0:PORT or [::]:PORT.',
  options: {
    grace: duration('on SIGINT/SIGTERM, let live connections finish this long', { default: DEFAULT_GRACE_MS }),
    framed: toggle('echo whole length-prefixed messages (4-byte big-endian length, then the payload)'),
    'max-message': size('with --framed: the largest message accepted', { value: 'SIZE', default: DEFAULT_MAX_FRAME_SIZE, min: 1, needs: 'framed' }),
    'memory-budget': size('with --framed: the most bytes all clients together may have buffered (per worker); a client whose message would overspend it is closed (ERR_MEMORY_BUDGET)', {
      value: 'SIZE',
      default: DEFAULT_MEMORY_BUDGET,
      min: 1,
      needs: 'framed',
    }),
    'max-conns': count('serve at most N connections at once (split evenly between workers); more are refused: closed, counted, logged'),
    'idle-timeout': duration('close connections with no byte in or out for this long (slowloris)'),
    engine: custom(
      'the data plane: native (native threads, each with its own epoll loop) or js (Node sockets); default native when the native helper is built and nothing asks for js (TLS, a PSK)',
      parseEngineName,
      { value: 'native|js' },
    ),
    workers: custom('serve from N processes (auto: one per core), behind one address', (_option: string, text: string) => resolveWorkerCount(text), {
      value: 'N|auto',
      default: DEFAULT_WORKERS,
    }),
    stats: duration('print statistics this often (they are always printed at exit)'),
    udp: toggle('echo UDP datagrams (up to 65,507 bytes over IPv4, 65,527 over IPv6) to their senders'),
    ...SERVER_SECURITY_OPTIONS,
  },
  positionals: { min: 0, max: 1 },
  examples: [
    'socketkit echo-server 9800',
    'socketkit echo-server [::1]:9800 --json',
    'socketkit echo-server unix:/tmp/echo.sock',
    'socketkit echo-server 9800 --max-conns 10000 --idle-timeout 60 --workers auto --stats 5 -q',
    'socketkit echo-server 9800 --engine js',
  ],
  async run(ctx) {
    const { values, positionals, io, global } = ctx;
    if (values.udp) return runUdpEchoServer(ctx);
    const ep = parseEndpoint(positionals[0] ?? String(DEFAULT_PORT), { defaultHost: DEFAULT_LISTEN_HOST, allowPortZero: true });
    const graceMs = values.grace;
    const report = createReporter(io, global);
    const framed = values.framed;
    const maxMessageSize = values['max-message'];
    const memoryBudget = values['memory-budget'];
    const { maxConnections, idleTimeoutMs, statsIntervalMs } = managedServerValues(values);
    const workers = values.workers;
    const sec = await serverSecurity(values, report, { announce: workerLink() === undefined });
    const choice = chooseEngine(values.engine, nativeEchoStatus(), sec.mode === 'tls' ? ['TLS'] : sec.mode === 'psk' ? ['TLS-PSK'] : []);
    const native = choice.engine === 'native';
    // Per-connection events only when someone reads them: without them the server keeps no per-connection state.
    const onEvent = global.quiet
      ? undefined
      : (e: ServerEvent): void => {
          const { event, ...fields } = e;
          report.event(event, fields, serverEventText(e));
        };
    const workerArgs = [
      'echo-server',
      positionals[0] ?? String(DEFAULT_PORT),
      '--engine', choice.engine,
      '--grace', String(graceMs / 1000),
      ...(framed ? ['--framed', '--max-message', String(maxMessageSize), '--memory-budget', String(memoryBudget)] : []),
      ...(maxConnections !== undefined ? ['--max-conns', String(maxConnections)] : []),
      ...(idleTimeoutMs !== undefined ? ['--idle-timeout', `${idleTimeoutMs}ms`] : []),
      ...(global.json ? ['--json'] : []),
      ...(global.quiet ? ['-q'] : []),
      ...securityArgs(values),
    ];
    const result = await serve({
      endpoint: ep,
      workers,
      worker: { exec: CLI_SCRIPT, args: workerArgs },
      graceMs,
      shutdown: io.shutdown,
      ...(maxConnections !== undefined ? { maxConnections } : {}),
      ...(statsIntervalMs !== undefined ? { statsIntervalMs } : {}),
      start: (one) =>
        native
          ? startNativeEchoServer(ep, {
              framed,
              maxMessageSize,
              memoryBudget,
              clearStaleUnixSocket: one.clearStaleUnixSocket,
              ...(one.maxConnections !== undefined ? { maxConnections: one.maxConnections } : {}),
              ...(idleTimeoutMs !== undefined && idleTimeoutMs > 0 ? { idleTimeoutMs } : {}),
              ...(onEvent ? { onEvent } : {}),
              onAcceptError: (e) => acceptErrorLine(report, io, global, e),
              ...(sec.listen.admit ? { admit: sec.listen.admit } : {}),
            })
          : startManagedEchoServer(ep, {
          framed,
          maxMessageSize,
          memoryBudget: new MemoryBudget(memoryBudget),
          clearStaleUnixSocket: one.clearStaleUnixSocket,
          ...(one.maxConnections !== undefined ? { maxConnections: one.maxConnections } : {}),
          ...(idleTimeoutMs !== undefined && idleTimeoutMs > 0 ? { idleTimeoutMs } : {}),
          ...(onEvent ? { onEvent } : {}),
          onAcceptError: (e) => acceptErrorLine(report, io, global, e),
          ...sec.listen,
        }),
      onListening: (where, n) => {
        report.log(`engine: ${describeEngine(choice)}`);
        report.event(
          'listening',
          {
            address: where,
            framed,
            workers: n,
            maxConnections: maxConnections ?? null,
            idleTimeoutMs: idleTimeoutMs ?? null,
            engine: choice.engine,
            ...(choice.reason !== undefined ? { engineReason: choice.reason } : {}),
          },
          `${framed ? 'framed ' : ''}echo server listening on ${where}${n > 1 ? ` (${n} workers)` : ''}`,
        );
      },
      // Asked for explicitly, so printed even with -q (which only silences the per-connection lines).
      onStats: (st, r) => statsLine(report, io, global, st, r),
      onStopping: (open, ms) => report.log(stoppingText(open, ms)),
      onClusterEvent: (e) => {
        const { event, ...fields } = e;
        const text =
          e.event === 'worker-exit'
            ? `! worker ${e.worker} (pid ${e.pid}) exited (${e.code ?? e.signal}); replacing it`
            : e.event === 'worker-restart'
              ? `+ worker ${e.worker} restarted (pid ${e.pid})`
              : `! worker ${e.worker} failed: ${e.message} (${e.code})`;
        report.event(event, fields, text);
      },
    });
    // A worker's totals go to its primary, which prints the cluster's.
    if (result.role === 'worker') return 0;
    const s = result.stats;
    const r = result.rates;
    report.result(
      'stopped',
      { ...s, active: s.connections, workers, seconds: Math.round(r.seconds * 1000) / 1000, roundTripsPerSecond: Math.round(r.roundTripsPerSecond) },
      `echo server stopped: ${formatCount(s.accepted)} connection(s), ${formatCount(s.refused)} refused, ${formatCount(s.idleClosed)} idle-closed, ` +
        `${formatCount(s.roundTrips)} round trips, in ${formatBytes(s.bytesIn)}, out ${formatBytes(s.bytesOut)}\n${statsText(s, r)} ${averagedOver(r)}`,
    );
    // -q silences the result, but statistics asked for with --stats are printed at exit too.
    if (global.quiet && !global.json && statsIntervalMs !== undefined) io.stderr.write(`${statsText(s, r)} ${averagedOver(r, 'stopped')}\n`);
    return 0;
  },
});

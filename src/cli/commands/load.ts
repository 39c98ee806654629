/** `socketkit load ADDR`: many connections to an echo server, round trips measured. */
import { defineCommand } from '../command.js';
import { parseEndpoint } from '../../net/endpoint.js';
import { DEFAULT_CONNECT_HOST } from '../../core/defaults.js';
import { SocketkitError } from '../../core/errors.js';
import { createReporter, type Reporter } from '../report.js';
import { formatBytes, formatCount, formatDuration, formatMs, formatPerSecond, formatRate } from '../format.js';
import { formatEndpoint } from '../../net/endpoint.js';
import { neutralise } from '../../core/terminal-text.js';
import { CLIENT_SECURITY_OPTIONS, clientSecurity, refuseTlsWithUdp } from '../security-options.js';
import { count, custom, duration, list, size, toggle } from '../options.js';
import { DEFAULT_MAX_FRAME_SIZE } from '../../codec/constants.js';
import {
  parseMessages,
  DEFAULT_CONNECT_RATE,
  DEFAULT_LOAD_CONNECTIONS,
  DEFAULT_LOAD_DURATION_MS,
  DEFAULT_LOAD_SIZE,
  DEFAULT_LOAD_TIMEOUT_MS,
  MAX_LOAD_CONNECTIONS,
  type LatencySummary,
  type LoadProgress,
  type LoadResult,
  type LoadProtocol,
} from '../../load/index.js';
import { usageError } from '../usage.js';
import { parseEngineName } from '../values.js';
import { chooseEngine, describeEngine } from '../../native/engine-choice.js';
import { loadEngineStatus } from '../../load/native.js';
import { runLoad, type LoadOptions } from '../../load/run.js';
import { MEASURE_OPTIONS, START_AT_OPTION, THREADS_OPTION, announceFiles, openMeasurement, runLoadWith } from '../measure-options.js';

/** `--print` shows this many replies at most, then only counts the rest (the output stays bounded). */
export const PRINT_MAX_REPLIES = 1_000;
/** `--print` cuts each reply to this many characters. */
export const PRINT_MAX_CHARS = 200;

/** A positive number (rates may be fractional: 0.5 per second). */
function parseRate(option: string, text: string): number {
  const n = Number(text);
  if (!/^\d+(\.\d+)?$/.test(text.trim()) || !(n > 0)) throw new SocketkitError('ERR_USAGE', `--${option}: '${text}' is not a positive number`);
  return n;
}

function progressLine(p: LoadProgress): string {
  const of = Number.isFinite(p.durationMs) ? `/${+(p.durationMs / 1000).toFixed(1)}` : '';
  const latency = p.latency.count === 0 ? 'no replies yet' : `p50 ${formatMs(p.latency.p50)}  p99 ${formatMs(p.latency.p99)}`;
  return `  ${(p.elapsedMs / 1000).toFixed(1)}${of} s  ${formatCount(p.roundTripsPerSecond)} round trips/s  ${latency}  errors ${formatCount(p.errors)}  connections ${formatCount(p.connections)}`;
}

/** "timeout 3, unanswered 10": the non-zero counts of `parts`, labelled. */
function breakdown(parts: ReadonlyArray<readonly [string, number]>): string {
  return parts
    .filter(([, n]) => n > 0)
    .map(([label, n]) => `${label} ${formatCount(n)}`)
    .join(', ');
}

function summary(r: LoadResult, sizeText: string): string {
  const l = r.latency;
  const loop = r.mode === 'open' ? `open loop at ${formatPerSecond(r.rate ?? 0)}` : 'closed loop';
  const codes = Object.entries(r.errorCodes).map(([c, n]) => `${c} ${formatCount(n)}`).join(', ');
  const f = r.failures;
  const failedWhy = breakdown([['timeout', f.timeout], ['connection', f.connection], ['mismatch', f.mismatch], ['unanswered', f.unanswered]]);
  const unsentWhy = breakdown([['connection down', r.unsentBy.connectionDown], ['queued', r.unsentBy.queued]]);
  // Open loop: scheduled = completed + failed + unsent. Closed loop: sent = completed + failed.
  const accounts =
    r.mode === 'open'
      ? `${formatCount(r.scheduled)} scheduled = ${formatCount(r.completed)} completed + ${formatCount(r.failed)} failed + ${formatCount(r.unsent)} unsent`
      : `${formatCount(r.sent)} sent = ${formatCount(r.completed)} completed + ${formatCount(r.failed)} failed`;
  return [
    `load on ${r.target} (${r.protocol === 'stream' ? 'bytes' : r.protocol}): ${formatCount(r.connected)} of ${formatCount(r.connections)} connection(s), ${sizeText}, ${loop}, ${formatDuration(r.seconds * 1000)}${r.interrupted ? ', interrupted' : ''}`,
    `  requests     ${accounts}${r.inFlightAtStop ? `  (${formatCount(r.inFlightAtStop)} in flight when sending stopped)` : ''}`,
    ...(r.failed ? [`  failed       ${formatCount(r.failed)}  (${failedWhy})`] : []),
    ...(r.unsent ? [`  unsent       ${formatCount(r.unsent)}  (${unsentWhy})`] : []),
    `  round trips  ${formatCount(r.roundTrips)}  (${formatPerSecond(r.roundTripsPerSecond)})`,
    `  bytes        ${formatBytes(r.bytesReceived)} echoed  (${formatRate(r.bytesPerSecond)})`,
    `  errors       ${formatCount(r.errors)}${codes ? `  (${codes})` : ''}${r.stray ? `  stray echoes ${formatCount(r.stray)}` : ''}`,
    l.count === 0
      ? '  latency      no replies'
      : `  latency      p50 ${formatMs(l.p50)}  p90 ${formatMs(l.p90)}  p99 ${formatMs(l.p99)}  p99.9 ${formatMs(l.p999)}  max ${formatMs(l.max)}`,
  ].join('\n');
}

/** Latency for --json: every figure null when there was no reply (not 0: nothing was measured). */
function latencyJson(l: LatencySummary): Record<string, number | null> {
  if (l.count === 0) return { p50: null, p90: null, p99: null, p999: null, max: null, min: null, mean: null, count: 0 };
  return { p50: l.p50, p90: l.p90, p99: l.p99, p999: l.p999, max: l.max, min: l.min, mean: round3(l.mean), count: l.count };
}

/**
 * `--print`: each reply as "conn N: TEXT" (N from 1), neutralised and cut to PRINT_MAX_CHARS
 * characters, for the first PRINT_MAX_REPLIES replies; `finish()` says how many more there were.
 * Text mode writes to stdout (before the summary); --json emits `reply` events.
 */
function replyPrinter(report: Reporter, write: (line: string) => void): { onReply: (connection: number, reply: Buffer) => void; finish: () => void } {
  let shown = 0;
  let more = 0;
  return {
    onReply(connection, reply) {
      if (report.quiet) return;
      if (shown >= PRINT_MAX_REPLIES) {
        more++;
        return;
      }
      shown++;
      const text = reply.toString('utf8');
      if (report.json) report.event('reply', { conn: connection + 1, bytes: reply.length, text: text.length > PRINT_MAX_CHARS ? text.slice(0, PRINT_MAX_CHARS) : text, truncated: text.length > PRINT_MAX_CHARS });
      else write(`conn ${connection + 1}: ${neutralise(text, PRINT_MAX_CHARS)}\n`);
    },
    finish() {
      if (more === 0) return;
      if (report.json) report.event('replies-not-printed', { count: more, shown });
      else write(`(${formatCount(more)} more replies not printed: --print shows the first ${formatCount(PRINT_MAX_REPLIES)})\n`);
    },
  };
}

const round3 = (x: number): number => Math.round(x * 1000) / 1000;

export default defineCommand({
  name: 'load',
  summary: 'Load an echo server with many connections: round trips/s, bytes/s, errors, latency percentiles.',
  args: 'ADDR',
  description:
    'Closed loop by default: each connection sends SIZE bytes, waits until they are back, and repeats. ' +
    'With --rate, open loop: requests are sent at a fixed total rate and each latency counts from its scheduled send time, ' +
    'so a server that stalls is not excused (no coordinated omission). Connections open at a bounded rate, each confirmed ' +
    'by a one-byte echo, before the measured run starts. Every request is counted once: open loop, scheduled = completed + failed + unsent; ' +
    'closed loop, sent = completed + failed; failures by reason (timeout, connection, mismatch, unanswered). ' +
    'Exit 0 when every request completed, 1 when any failed or went unsent (or a connection failed), 2 when the run could not start, ' +
    '130 (SIGINT) or 143 (SIGTERM) when interrupted, after printing what was measured.',
  options: {
    connections: count('connections (UDP: sockets)', { short: 'c', default: DEFAULT_LOAD_CONNECTIONS, max: MAX_LOAD_CONNECTIONS }),
    size: size('bytes per request', { short: 's', value: 'SIZE', default: DEFAULT_LOAD_SIZE, min: 1 }),
    duration: duration(`length of the measured run (default ${DEFAULT_LOAD_DURATION_MS / 1000}, or no limit with -n)`, { short: 'd', positive: true }),
    requests: count('stop after N round trips in all (without -d: no time limit)', { short: 'n' }),
    rate: custom('open loop: R requests per second in all', parseRate, { value: 'R' }),
    messages: list('send these messages in turn instead of SIZE bytes: comma-separated, or @FILE (one per line)', { value: 'LIST' }),
    framed: toggle('length-prefixed messages (for echo-server --framed)'),
    udp: toggle('UDP datagrams (for echo-server --udp); a lost datagram counts as an error'),
    'connect-rate': custom('open at most R connections per second', parseRate, { value: 'R', default: DEFAULT_CONNECT_RATE }),
    timeout: duration('connect timeout, and how long an echo may take before it is an error', { default: DEFAULT_LOAD_TIMEOUT_MS, positive: true }),
    'max-message': size('with --framed: the largest message accepted', { value: 'SIZE', default: DEFAULT_MAX_FRAME_SIZE, min: 1, needs: 'framed' }),
    engine: custom('the engine that drives the connections: native (native threads, each with its own epoll loop) or js (Node sockets); default native when it is built and nothing needs js (TLS, --print)', parseEngineName, { value: 'native|js' }),
    print: toggle(`show each reply as "conn N: TEXT" (the first ${formatCount(PRINT_MAX_REPLIES)}, each cut to ${PRINT_MAX_CHARS} characters)`, { short: 'v' }),
    ...CLIENT_SECURITY_OPTIONS,
    ...MEASURE_OPTIONS,
    ...START_AT_OPTION,
    ...THREADS_OPTION,
  },
  positionals: { min: 1, max: 1 },
  examples: [
    'socketkit load 9800 -c 100 -s 4k -d 10',
    'socketkit load 9800 -c 10 --rate 5000 -d 30 --json',
    'socketkit load 9800 -c 2 --messages "Message 1 from client.,Message 2 from client." -n 4 --print',
    'socketkit load unix:/tmp/echo.sock -c 1000 -d 5',
    'socketkit load 9800 --udp -c 8 -s 512',
  ],
  async run({ values, positionals, io, global }) {
    const ep = parseEndpoint(positionals[0]!, { defaultHost: DEFAULT_CONNECT_HOST });
    const { framed, udp } = values;
    if (framed && udp) throw new SocketkitError('ERR_USAGE', '--framed and --udp cannot be combined (a datagram is already a message)');
    const protocol: LoadProtocol = udp ? 'udp' : framed ? 'framed' : 'stream';
    const { connections, size, requests, rate, timeout: timeoutMs } = values;
    const connectRate = values['connect-rate'];
    const maxMessageSize = values['max-message'];
    // -n alone means "until N round trips"; otherwise the run lasts -d (DEFAULT_LOAD_DURATION_MS unless given).
    const durationMs = values.duration ?? (requests === undefined ? DEFAULT_LOAD_DURATION_MS : undefined);
    const specs = values.messages;
    const messages =
      specs.length > 0
        ? await parseMessages(specs).catch((err: unknown) => {
            throw usageError(err, 'messages');
          })
        : undefined;
    const report = createReporter(io, global);
    if (udp) refuseTlsWithUdp(values);
    const sec = await clientSecurity(values);
    const printer = values.print ? replyPrinter(report, (line) => io.stdout.write(line)) : undefined;

    let live = false;
    const clearLine = (): void => {
      if (live) io.stderr.write('\r\x1b[K');
      live = false;
    };
    const draw = (text: string): void => {
      io.stderr.write(`\r\x1b[K${text}`);
      live = true;
    };
    const startAtMs = values['start-at'];
    const measure = await openMeasurement(values, { command: 'load', target: formatEndpoint(ep), protocol, connections, size: messages ? null : size, messages: messages?.length ?? null, rate: rate ?? null }, startAtMs, io.stdout);
    const needsJs = [...(sec.mode === 'tls' ? ['TLS'] : sec.mode === 'psk' ? ['TLS-PSK'] : []), ...(values.print ? ['--print'] : [])];
    const engine = chooseEngine(values.engine, loadEngineStatus(), needsJs);
    // A line people (and tests) can wait for: opening thousands of connections can take a while.
    report.log(`load: connecting ${formatCount(connections)} connection(s) to ${formatEndpoint(ep)} (engine ${describeEngine(engine)})`);
    const loadOptions: LoadOptions = {
      connections,
      protocol,
      ...(messages ? { messages } : { size }),
      ...(durationMs !== undefined ? { durationMs } : {}),
      ...(requests !== undefined ? { requests } : {}),
      ...(rate !== undefined ? { rate } : {}),
      connectRate,
      timeoutMs,
      maxMessageSize,
      signal: io.shutdown,
      ...measure.hooks,
      ...(startAtMs !== undefined ? { startAtMs } : {}),
      ...(printer ? { onReply: printer.onReply } : {}),
      ...sec.connect,
      ...(report.tty
        ? {
            onProgress: (p: LoadProgress) => draw(progressLine(p)),
            onConnecting: (opened: number, failed: number, total: number) => {
              if (total >= 100 && (opened + failed) % 100 === 0) draw(`  connecting ${formatCount(opened)}/${formatCount(total)}${failed ? ` (${formatCount(failed)} failed)` : ''}`);
            },
          }
        : {}),
    };
    let running: Promise<LoadResult>;
    if (engine.engine === 'native') {
      // The native engine hands over latencies in batches (onHistogram), not one by one; its threads are native threads.
      // eslint-disable-next-line @typescript-eslint/no-unused-vars
      const { onLatency, ...rest } = loadOptions;
      const { onHistogram } = measure.hooks;
      running = runLoad(ep, { ...rest, engine: 'native', threads: values.threads, ...(onHistogram ? { onHistogram } : {}) });
    } else {
      running = runLoadWith(values, ep, loadOptions, measure, sec.tls);
    }
    // The live line goes whatever happens, so an error message starts on a clean line.
    const result = await running.finally(clearLine).catch(async (e: unknown) => {
      await measure.close().catch(() => undefined);
      throw e;
    });
    const written = await measure.close();
    printer?.finish();
    const sizeText = messages ? `${formatCount(messages.length)} message(s)` : `${formatBytes(size)} requests`;
    report.result(
      'load',
      {
        target: result.target,
        engine: engine.engine,
        protocol: result.protocol,
        mode: result.mode,
        rate: result.rate,
        connections: result.connections,
        connected: result.connected,
        size: messages ? null : size,
        messages: messages ? messages.length : null,
        connectMs: round3(result.connectMs),
        seconds: round3(result.seconds),
        interrupted: result.interrupted,
        // Every request once: scheduled = completed + failed + unsent (closed loop: unsent is 0).
        scheduled: result.scheduled,
        sent: result.sent,
        completed: result.completed,
        failed: result.failed,
        failures: result.failures,
        unsent: result.unsent,
        unsentBy: result.unsentBy,
        inFlightAtStop: result.inFlightAtStop,
        connectionErrors: result.connectionErrors,
        requests: result.requests,
        roundTrips: result.roundTrips,
        roundTripsPerSecond: round3(result.roundTripsPerSecond),
        bytesSent: result.bytesSent,
        bytesReceived: result.bytesReceived,
        bytesPerSecond: round3(result.bytesPerSecond),
        errors: result.errors,
        errorCodes: result.errorCodes,
        stray: result.stray,
        latencyMs: latencyJson(result.latency),
      },
      summary(result, sizeText),
    );
    announceFiles(report, written);
    // Interrupted: the result is printed; main() turns ERR_ABORTED after a signal into 130/143.
    if (result.interrupted && io.shutdown.aborted) throw new SocketkitError('ERR_ABORTED', `load on ${result.target} interrupted`);
    return result.errors > 0 || result.unsent > 0 ? 1 : 0;
  },
});

/** `socketkit load ADDR`: many connections to an echo server, round trips measured. */
import type { Command } from '../command.js';
import { parseEndpoint } from '../../net/endpoint.js';
import { DEFAULT_CONNECT_HOST } from '../../core/defaults.js';
import { SocketkitError } from '../../core/errors.js';
import { createReporter, formatBytes, formatMs, type Reporter } from '../report.js';
import { formatEndpoint } from '../../net/endpoint.js';
import { neutralise } from '../../core/terminal-text.js';
import { CLIENT_SECURITY_OPTIONS, clientSecurity, refuseTlsWithUdp } from '../security-options.js';
import { flag, parseCount, parseDurationMs, parseSize, str } from '../values.js';
import { parseMessages, DEFAULT_CONNECT_RATE, MAX_LOAD_CONNECTIONS, type LatencySummary, type LoadProgress, type LoadResult, type LoadProtocol } from '../../load/index.js';
import { usageError } from '../usage.js';
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

function grouped(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

function progressLine(p: LoadProgress): string {
  const of = Number.isFinite(p.durationMs) ? `/${+(p.durationMs / 1000).toFixed(1)}` : '';
  const latency = p.latency.count === 0 ? 'no replies yet' : `p50 ${formatMs(p.latency.p50)}  p99 ${formatMs(p.latency.p99)}`;
  return `  ${(p.elapsedMs / 1000).toFixed(1)}${of} s  ${grouped(p.roundTripsPerSecond)} round trips/s  ${latency}  errors ${p.errors}  connections ${p.connections}`;
}

/** "timeout 3, unanswered 10": the non-zero counts of `parts`, labelled. */
function breakdown(parts: ReadonlyArray<readonly [string, number]>): string {
  return parts
    .filter(([, n]) => n > 0)
    .map(([label, n]) => `${label} ${grouped(n)}`)
    .join(', ');
}

function summary(r: LoadResult, sizeText: string): string {
  const l = r.latency;
  const loop = r.mode === 'open' ? `open loop at ${grouped(r.rate ?? 0)}/s` : 'closed loop';
  const codes = Object.entries(r.errorCodes).map(([c, n]) => `${c} ${grouped(n)}`).join(', ');
  const f = r.failures;
  const failedWhy = breakdown([['timeout', f.timeout], ['connection', f.connection], ['mismatch', f.mismatch], ['unanswered', f.unanswered]]);
  const unsentWhy = breakdown([['connection down', r.unsentBy.connectionDown], ['queued', r.unsentBy.queued]]);
  // Open loop: scheduled = completed + failed + unsent. Closed loop: sent = completed + failed.
  const accounts =
    r.mode === 'open'
      ? `${grouped(r.scheduled)} scheduled = ${grouped(r.completed)} completed + ${grouped(r.failed)} failed + ${grouped(r.unsent)} unsent`
      : `${grouped(r.sent)} sent = ${grouped(r.completed)} completed + ${grouped(r.failed)} failed`;
  return [
    `load on ${r.target} (${r.protocol === 'stream' ? 'bytes' : r.protocol}): ${r.connected} of ${r.connections} connection(s), ${sizeText}, ${loop}, ${r.seconds.toFixed(2)} s${r.interrupted ? ', interrupted' : ''}`,
    `  requests     ${accounts}${r.inFlightAtStop ? `  (${grouped(r.inFlightAtStop)} in flight when sending stopped)` : ''}`,
    ...(r.failed ? [`  failed       ${grouped(r.failed)}  (${failedWhy})`] : []),
    ...(r.unsent ? [`  unsent       ${grouped(r.unsent)}  (${unsentWhy})`] : []),
    `  round trips  ${grouped(r.roundTrips)}  (${grouped(r.roundTripsPerSecond)}/s)`,
    `  bytes        ${formatBytes(r.bytesReceived)} echoed  (${formatBytes(Math.round(r.bytesPerSecond))}/s)`,
    `  errors       ${grouped(r.errors)}${codes ? `  (${codes})` : ''}${r.stray ? `  stray echoes ${r.stray}` : ''}`,
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
      else write(`(${grouped(more)} more replies not printed: --print shows the first ${grouped(PRINT_MAX_REPLIES)})\n`);
    },
  };
}

const round3 = (x: number): number => Math.round(x * 1000) / 1000;

const command: Command = {
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
    connections: { type: 'string', short: 'c', value: 'N', help: 'connections (UDP: sockets)', default: '1' },
    size: { type: 'string', short: 's', value: 'SIZE', help: 'bytes per request', default: '64' },
    duration: { type: 'string', short: 'd', value: 'SECONDS', help: 'length of the measured run (default 10, or no limit with -n)' },
    requests: { type: 'string', short: 'n', value: 'N', help: 'stop after N round trips in all (without -d: no time limit)' },
    rate: { type: 'string', value: 'R', help: 'open loop: R requests per second in all' },
    messages: { type: 'string', multiple: true, value: 'LIST', help: 'send these messages in turn instead of SIZE bytes: comma-separated, or @FILE (one per line)' },
    framed: { type: 'boolean', help: 'length-prefixed messages (for echo-server --framed)' },
    udp: { type: 'boolean', help: 'UDP datagrams (for echo-server --udp); a lost datagram counts as an error' },
    'connect-rate': { type: 'string', value: 'R', help: 'open at most R connections per second', default: String(DEFAULT_CONNECT_RATE) },
    timeout: { type: 'string', value: 'SECONDS', help: 'connect timeout, and how long an echo may take before it is an error', default: '10' },
    'max-message': { type: 'string', value: 'SIZE', help: 'with --framed: the largest message accepted', default: '16MiB' },
    print: { type: 'boolean', short: 'v', help: `show each reply as "conn N: TEXT" (the first ${PRINT_MAX_REPLIES.toLocaleString('en-US')}, each cut to ${PRINT_MAX_CHARS} characters)` },
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
    const framed = flag(values, 'framed');
    const udp = flag(values, 'udp');
    if (framed && udp) throw new SocketkitError('ERR_USAGE', '--framed and --udp cannot be combined (a datagram is already a message)');
    const protocol: LoadProtocol = udp ? 'udp' : framed ? 'framed' : 'stream';
    const connections = parseCount('connections', str(values, 'connections') ?? '1', 1, MAX_LOAD_CONNECTIONS);
    const size = parseSize('size', str(values, 'size') ?? '64');
    if (size < 1) throw new SocketkitError('ERR_USAGE', '--size: must be at least 1 byte');
    const requestsText = str(values, 'requests');
    const requests = requestsText !== undefined ? parseCount('requests', requestsText) : undefined;
    // -n alone means "until N round trips"; otherwise the run lasts -d (10 s by default).
    const durationText = str(values, 'duration') ?? (requests === undefined ? '10' : undefined);
    const durationMs = durationText !== undefined ? parseDurationMs('duration', durationText) : undefined;
    if (durationMs !== undefined && durationMs <= 0) throw new SocketkitError('ERR_USAGE', '--duration: must be more than 0');
    const rateText = str(values, 'rate');
    const rate = rateText !== undefined ? parseRate('rate', rateText) : undefined;
    const connectRate = parseRate('connect-rate', str(values, 'connect-rate') ?? String(DEFAULT_CONNECT_RATE));
    const timeoutMs = parseDurationMs('timeout', str(values, 'timeout') ?? '10');
    if (timeoutMs <= 0) throw new SocketkitError('ERR_USAGE', '--timeout: must be more than 0');
    const maxMessageSize = parseSize('max-message', str(values, 'max-message') ?? '16MiB');
    const specs = values['messages'];
    const messages = Array.isArray(specs) && specs.length > 0 ? await parseMessages(specs).catch((err: unknown) => {
            throw usageError(err, 'messages');
          }) : undefined;
    const report = createReporter(io, global);
    if (udp) refuseTlsWithUdp(values);
    const sec = await clientSecurity(values);
    const printer = flag(values, 'print') ? replyPrinter(report, (line) => io.stdout.write(line)) : undefined;

    let live = false;
    const clearLine = (): void => {
      if (live) io.stderr.write('\r\x1b[K');
      live = false;
    };
    const draw = (text: string): void => {
      io.stderr.write(`\r\x1b[K${text}`);
      live = true;
    };
    const startAtMs = values['start-at'] as unknown as number | undefined;
    const measure = await openMeasurement(values, { command: 'load', target: formatEndpoint(ep), protocol, connections, size: messages ? null : size, messages: messages?.length ?? null, rate: rate ?? null }, startAtMs, io.stdout);
    // A line people (and tests) can wait for: opening thousands of connections can take a while.
    report.log(`load: connecting ${grouped(connections)} connection(s) to ${formatEndpoint(ep)}`);
    const running = runLoadWith(values, ep, {
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
              if (total >= 100 && (opened + failed) % 100 === 0) draw(`  connecting ${grouped(opened)}/${grouped(total)}${failed ? ` (${failed} failed)` : ''}`);
            },
          }
        : {}),
    }, measure, sec.tls);
    // The live line goes whatever happens, so an error message starts on a clean line.
    const result = await running.finally(clearLine).catch(async (e: unknown) => {
      await measure.close().catch(() => undefined);
      throw e;
    });
    const written = await measure.close();
    printer?.finish();
    const sizeText = messages ? `${messages.length} message(s)` : `${formatBytes(size)} requests`;
    report.result(
      'load',
      {
        target: result.target,
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
};

export default command;

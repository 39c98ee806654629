/** `socketkit ping ADDR`: round-trip times, loss, duplicates and reordering, to any echo. */
import { defineCommand } from '../command.js';
import { EXIT_MISMATCH, SocketkitError } from '../../core/errors.js';
import { DEFAULT_CONNECT_HOST } from '../../core/defaults.js';
import { formatEndpoint, parseEndpoint } from '../../net/endpoint.js';
import { DEFAULT_PING_COUNT, DEFAULT_PING_INTERVAL_MS, DEFAULT_PING_SIZE, DEFAULT_PING_TIMEOUT_MS, MAX_PING_COUNT, MAX_TCP_PROBE_SIZE, MAX_UDP_PAYLOAD_IPV6 } from '../../udp/constants.js';
import { PROBE_HEADER_SIZE } from '../../udp/probe.js';
import { ping, type PingEvent, type PingSummary } from '../../udp/ping.js';
import { createReporter, terminalLines } from '../report.js';
import { formatCount, formatDuration, formatMs, formatPercent } from '../format.js';
import { count, duration, size, toggle } from '../options.js';
import { MEASURE_OPTIONS, announceFiles, openMeasurement } from '../measure-options.js';

function describe(e: PingEvent, target: string, timeoutMs: number): string {
  switch (e.event) {
    case 'reply': {
      const note =
        e.status === 'ok' ? '' : e.status === 'duplicate' ? ' (DUP!)' : e.status === 'truncated' ? ' (truncated)' : ` (${e.status})`;
      return `${e.bytes} bytes from ${target}: seq=${e.seq} time=${formatMs(e.rttMs)}${note}`;
    }
    case 'timeout':
      return `no reply for seq=${e.seq} within ${formatDuration(timeoutMs)}`;
    case 'foreign':
      return `ignored a ${e.bytes}-byte reply that is not one of this run's probes`;
    case 'unreachable':
      return e.message;
  }
}

const f3 = (n: number): string => (Number.isFinite(n) ? n.toFixed(3) : '-');

function summaryText(s: PingSummary): string {
  const n = formatCount;
  const lines = [
    `--- ${s.target} ${s.transport} ping: ${s.size}-byte probes ---`,
    `${n(s.sent)} sent, ${n(s.received)} received, ${formatPercent(s.lossPercent / 100)} loss, ${n(s.duplicates)} duplicates, ${n(s.reordered)} reordered, ${n(s.late)} late, time ${formatDuration(s.elapsedMs)}`,
  ];
  const odd = [
    s.truncated ? `${n(s.truncated)} truncated` : '',
    s.corrupt ? `${n(s.corrupt)} corrupt` : '',
    s.foreign ? `${n(s.foreign)} foreign ignored` : '',
    s.unreachable ? `${n(s.unreachable)} port unreachable` : '',
  ].filter(Boolean);
  if (odd.length) lines.push(odd.join(', '));
  if (s.rtt.count > 0) {
    const r = s.rtt;
    lines.push(`rtt min/avg/max/stddev = ${f3(r.min)}/${f3(r.avg)}/${f3(r.max)}/${f3(r.stddev)} ms`);
    lines.push(`rtt p50/p90/p99/p99.9 = ${f3(r.p50)}/${f3(r.p90)}/${f3(r.p99)}/${f3(r.p999)} ms`);
  }
  return lines.join('\n');
}

export default defineCommand({
  name: 'ping',
  summary: 'Measure round trips to an echo server: loss, duplicates, reordering, RTT percentiles.',
  args: 'ADDR',
  description:
    'Probes carry a sequence number and a send time, so any plain echo works (socketkit echo-server --udp, ' +
    '`socat UDP-RECVFROM:PORT,fork EXEC:cat`, a recvfrom/sendto loop). --udp (the default) sends datagrams; --tcp ' +
    'makes round trips over one connection to a byte echo. Without --count it runs until Ctrl-C on a terminal and ' +
    `sends ${DEFAULT_PING_COUNT} probes otherwise. --interval 0 is ping-pong: each probe leaves when the previous is ` +
    'answered or lost. Per-reply lines are shown on a terminal; the summary always. Exit 0 when any reply came back, ' +
    '1 when none did, 2 on errors (ICMP port unreachable with no reply at all is ERR_CONN_REFUSED); stopped by Ctrl-C, 130 after the summary (SIGTERM: 143).',
  options: {
    udp: toggle('probe with UDP datagrams (the default)'),
    tcp: toggle('probe with round trips over one TCP (or unix:) connection'),
    count: count(`probes to send, 0 for until Ctrl-C (at most ${formatCount(MAX_PING_COUNT)})`, { short: 'c', min: 0, max: MAX_PING_COUNT }),
    interval: duration('time between probes (0: ping-pong)', { short: 'i', default: DEFAULT_PING_INTERVAL_MS }),
    size: size(`probe size, ${PROBE_HEADER_SIZE}-byte header included`, { short: 's', default: DEFAULT_PING_SIZE, min: PROBE_HEADER_SIZE, max: MAX_TCP_PROBE_SIZE }),
    timeout: duration('a probe unanswered this long is lost; a later reply is "late"', { short: 'W', default: DEFAULT_PING_TIMEOUT_MS, positive: true }),
    ...MEASURE_OPTIONS,
  },
  positionals: { min: 1, max: 1 },
  examples: [
    'socketkit ping 9800',
    'socketkit ping [::1]:9800 -c 100 -i 10ms -s 1400 --json',
    'socketkit ping --tcp 127.0.0.1:9800 -c 1000 -i 0',
  ],
  async run({ values, positionals, io, global }) {
    if (values.udp && values.tcp) throw new SocketkitError('ERR_USAGE', 'choose one of --udp and --tcp');
    const transport = values.tcp ? 'tcp' : 'udp';
    const ep = parseEndpoint(positionals[0]!, { defaultHost: DEFAULT_CONNECT_HOST });
    const report = createReporter(io, global);
    // Without -c: until Ctrl-C on a terminal, a few probes otherwise (so the default is not a constant for help to show).
    const count = values.count ?? (report.tty ? 0 : DEFAULT_PING_COUNT);
    const intervalMs = values.interval;
    const size = values.size;
    const timeoutMs = values.timeout;
    // Every usage error before the first line of output, so a refused run prints nothing else.
    // (The IPv4 limit, 20 bytes lower, is known once the address is resolved: the library checks it.)
    if (transport === 'udp' && size > MAX_UDP_PAYLOAD_IPV6) {
      throw new SocketkitError('ERR_DATAGRAM_TOO_LARGE', `--size ${size} is over the largest UDP datagram (${MAX_UDP_PAYLOAD_IPV6} bytes); --tcp probes go up to ${MAX_TCP_PROBE_SIZE}`);
    }
    const target = formatEndpoint(ep);
    report.log(`PING ${target} over ${transport}: ${size}-byte probes${intervalMs === 0 ? ', ping-pong' : ` every ${formatDuration(intervalMs)}`}${count ? `, ${formatCount(count)} of them` : ', until Ctrl-C'}`);
    const measure = await openMeasurement(values, { command: 'ping', target, transport, size, intervalMs }, undefined, io.stdout);
    measure.start();
    const summary = await ping(ep, {
      ...measure.hooks,
      transport,
      count,
      intervalMs,
      size,
      timeoutMs,
      signal: io.shutdown,
      onEvent: (e) => {
        const { event, ...fields } = e;
        report.event(event, fields, report.tty ? describe(e, target, timeoutMs) : undefined);
      },
    }).catch(async (e: unknown) => {
      await measure.close().catch(() => undefined);
      throw e;
    });
    const written = await measure.close();
    const { rtt, ...rest } = summary;
    // -q leaves out the header and per-reply lines but, as iputils' ping -q, prints the summary.
    if (global.quiet && !global.json) io.stdout.write(`${terminalLines(summaryText(summary))}\n`);
    else report.result('ping', { ...rest, rtt: { ...rtt } }, summaryText(summary));
    announceFiles(report, written);
    if (summary.error) throw new SocketkitError(summary.error.code, summary.error.message);
    if (summary.sent > 0 && summary.received === 0) {
      if (summary.unreachable > 0) throw new SocketkitError('ERR_CONN_REFUSED', `nothing is listening on UDP ${summary.target} (ICMP port unreachable)`);
      throw new SocketkitError('ERR_NO_REPLY', `no reply from ${summary.target} to ${summary.sent} probe(s)`, { exitCode: EXIT_MISMATCH });
    }
    return 0;
  },
});

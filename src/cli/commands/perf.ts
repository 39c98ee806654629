/** `socketkit perf ADDR`: a throughput test against a perf-server (iperf3's client). */
import { defineCommand } from '../command.js';
import { parseEndpoint } from '../../net/endpoint.js';
import { DEFAULT_CONNECT_HOST } from '../../core/defaults.js';
import { SocketkitError } from '../../core/errors.js';
import { createReporter, formatBytes } from '../report.js';
import { count, custom, duration, size, toggle } from '../options.js';
import { runPerf, type PerfResult } from '../../perf/client.js';
import type { PerfInterval } from '../../perf/intervals.js';
import type { StreamFigures } from '../../perf/protocol.js';
import { DEFAULT_PERF_DURATION_MS, DEFAULT_PERF_PORT, DEFAULT_PERF_UDP_RATE } from '../../perf/defaults.js';
import { CLIENT_SECURITY_OPTIONS, clientSecurity, refuseTlsWithUdp } from '../security-options.js';
import { MEASURE_OPTIONS, announceFiles, openMeasurement } from '../measure-options.js';
import type { TransferLog, TransferSlot } from '../../report/transfer-log.js';
import type { UdpSeries } from '../../report/html.js';

/** Bits per second as people read them: 9.41 Gbit/s, 812 Mbit/s. */
export function rate(bps: number): string {
  if (bps >= 1e9) return `${(bps / 1e9).toFixed(2)} Gbit/s`;
  if (bps >= 1e6) return `${(bps / 1e6).toFixed(1)} Mbit/s`;
  if (bps >= 1e3) return `${(bps / 1e3).toFixed(1)} kbit/s`;
  return `${bps.toFixed(0)} bit/s`;
}

/** `100M`, `1G`, `2.5g`, `64k`, `1000000`: bits per second, powers of 1000. */
export function parseRate(option: string, text: string): number {
  const m = /^(\d+(?:\.\d+)?)([kKmMgG]?)(?:bit\/s|bps)?$/.exec(text.trim());
  if (!m) throw new SocketkitError('ERR_USAGE', `--${option}: '${text}' is not a rate (e.g. 100M, 1G, 500k: bits per second)`);
  const mult = { '': 1, k: 1e3, m: 1e6, g: 1e9 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g'];
  const v = Math.round(Number(m[1]) * mult);
  if (v <= 0) throw new SocketkitError('ERR_USAGE', `--${option}: must be more than 0`);
  return v;
}

const pad = (s: string, n: number): string => s.padStart(n);

function streamName(n: number | 'SUM'): string {
  return n === 'SUM' ? '[SUM]' : `[${String(n).padStart(3)}]`;
}

function intervalLines(i: PerfInterval): string {
  const span = `${i.start.toFixed(2)}-${i.end.toFixed(2)} s`;
  const lines = i.streams.map((s) => {
    const odd = `${s.outOfOrder ? `, ${s.outOfOrder} out of order` : ''}${s.duplicates ? `, ${s.duplicates} duplicate` : ''}`;
    const udp = s.packets !== undefined ? `  ${s.packets} dgrams, ${s.lost ?? 0} lost${odd}, jitter ${(s.jitterMs ?? 0).toFixed(3)} ms` : s.rttUs !== undefined ? `  retr ${s.retransmits ?? 0}, rtt ${(s.rttUs / 1000).toFixed(3)} ms, cwnd ${s.cwnd ?? 0}` : '';
    return `${streamName(s.stream)} ${pad(span, 14)}  ${s.dir === 'up' ? 'up  ' : 'down'} ${s.role.padEnd(8)} ${pad(formatBytes(s.bytes), 10)} ${pad(rate(s.bitsPerSecond), 14)}${udp}`;
  });
  // A sum per role that has more than one stream (a stream's sent and received lines are one stream).
  for (const role of ['sent', 'received'] as const) {
    const sum = i.sum[role];
    if (i.streams.filter((s) => s.role === role).length > 1) lines.push(`${streamName('SUM')} ${pad(span, 14)}  ${'    '} ${role.padEnd(8)} ${pad(formatBytes(sum.bytes), 10)} ${pad(rate(sum.bitsPerSecond), 14)}`);
  }
  return `${lines.join('\n')}${i.omitted ? '  (omitted)' : ''}`;
}

function figureLine(f: StreamFigures, role: string): string {
  const udp = f.udp && role === 'received' ? `  ${f.udp.lost}/${f.udp.sent ?? f.udp.packets + f.udp.lost} lost (${(((f.udp.lost) / Math.max(1, f.udp.sent ?? f.udp.packets + f.udp.lost)) * 100).toFixed(2)} %), ${f.udp.outOfOrder} out of order, ${f.udp.duplicates} duplicate, jitter ${f.udp.jitterMs.toFixed(3)} ms` : '';
  const tcp = f.tcp && role === 'sent' ? `  ${f.tcp.retransmits} retransmits, rtt ${(f.tcp.rttUs / 1000).toFixed(3)} ms` : '';
  return `${streamName(f.stream)} ${pad(`${f.seconds.toFixed(2)} s`, 14)}  ${f.dir === 'up' ? 'up  ' : 'down'} ${role.padEnd(8)} ${pad(formatBytes(f.bytes), 10)} ${pad(rate(f.seconds > 0 ? (f.bytes * 8) / f.seconds : 0), 14)}${udp}${tcp}`;
}

/**
 * The HTML page's throughput over time: one series per stream and role, from the interval
 * reports (absolute times, so they line up with the log's intervals); and for UDP, each
 * receiving stream's jitter and loss per interval, this side's and the server's alike.
 */
class StreamSeries {
  readonly #slots = new Map<string, TransferSlot[]>();
  readonly #udp = new Map<string, { t: number[]; jitterMs: number[]; lost: number[]; packets: number[] }>();
  #startMs = Date.now();

  start(): void {
    this.#startMs = Date.now();
  }

  add(i: PerfInterval): void {
    for (const s of i.streams) {
      const key = `stream ${s.stream} ${s.dir} ${s.role}`;
      const list = this.#slots.get(key) ?? [];
      list.push({ startMs: this.#startMs + i.start * 1000, endMs: this.#startMs + i.end * 1000, bytes: s.bytes });
      this.#slots.set(key, list);
      if (s.role === 'received' && s.jitterMs !== undefined) {
        const u = this.#udp.get(key) ?? { t: [], jitterMs: [], lost: [], packets: [] };
        u.t.push(Math.round(i.start * 1000) / 1000);
        u.jitterMs.push(s.jitterMs);
        u.lost.push(s.lost ?? 0);
        u.packets.push(s.packets ?? 0);
        this.#udp.set(key, u);
      }
    }
  }

  udp(): UdpSeries[] {
    return [...this.#udp].map(([label, u]) => ({ label, ...u }));
  }

  logs(): TransferLog[] {
    return [...this.#slots].map(([name, slots]) => ({
      name,
      startMs: this.#startMs,
      endMs: slots.at(-1)?.endMs ?? this.#startMs,
      bytes: slots.reduce((a, x) => a + x.bytes, 0),
      files: 0,
      failed: 0,
      slots,
      stepMs: slots.length > 0 ? slots[0]!.endMs - slots[0]!.startMs : 0,
      warnings: [],
    }));
  }
}

function summaryText(r: PerfResult): string {
  const lines = ['- - - - - - - - - - - - - - - - - - - - - - - - -'];
  for (const f of r.sent) lines.push(figureLine(f, 'sent'));
  for (const f of r.received) lines.push(figureLine(f, 'received'));
  const dirs = [r.up ? `up ${rate(r.up.bitsPerSecond)}` : '', r.down ? `down ${rate(r.down.bitsPerSecond)}` : ''].filter(Boolean).join(', ');
  lines.push(`received ${formatBytes(r.bytes)} in ${r.seconds.toFixed(2)} s: ${rate(r.bitsPerSecond)}${r.up && r.down ? ` (${dirs})` : ''}${r.zeroCopy ? ', sent with sendfile' : ''}`);
  for (const p of r.pacing ?? []) {
    lines.push(
      `pacing (${p.pacer}): ${p.packets} datagrams every ${p.gapUs.toFixed(1)} µs; gaps ${p.gapP1Us}/${p.gapP50Us}/${p.gapP99Us} µs (1st/median/99th); late by ${p.lateP50Us} µs (median), ${p.lateP99Us} µs (99th), ${p.lateMaxUs.toFixed(0)} µs (max); longest burst ${p.maxBurst}; ${p.slips} slip(s)`,
    );
  }
  return lines.join('\n');
}

export default defineCommand({
  name: 'perf',
  summary: 'Measure throughput to a perf-server: TCP streams (parallel, reverse, both ways) or paced UDP with loss and jitter.',
  args: 'ADDR',
  description: `ADDR is PORT, HOST:PORT, [IPV6]:PORT or unix:PATH (port default ${DEFAULT_PERF_PORT}). The summary's rate is what the receiving side counted.`,
  options: {
    time: duration('send for this long', { short: 't', default: DEFAULT_PERF_DURATION_MS, positive: true }),
    bytes: size('send this many bytes in all (per direction) instead of for a time', { short: 'n', min: 1 }),
    parallel: count('parallel streams (each way with --bidir)', { short: 'P', default: 1, min: 1, max: 128 }),
    reverse: toggle('the server sends, this side receives', { short: 'R' }),
    bidir: toggle('both sides send at once'),
    interval: duration('report every this long (0: no interval reports)', { short: 'i', default: 1000 }),
    length: size('bytes per write (TCP, default 128KiB) or per datagram (UDP, default 1400)', { short: 'l', min: 1, max: 16 * 1024 * 1024 }),
    omit: duration('leave out the first SECONDS (warm-up) from the results', { short: 'O', default: 0 }),
    udp: toggle('UDP: paced datagrams at --bitrate, with loss, reordering and jitter', { short: 'u' }),
    bitrate: custom('UDP target rate per stream, bits/s (k, M, G: powers of 1000)', parseRate, { short: 'b', value: 'RATE', default: DEFAULT_PERF_UDP_RATE, show: '1M', needs: 'udp' }),
    zerocopy: toggle('TCP: send with sendfile(2) from a file of zeros (needs the native helper; plain TCP or Unix)', { short: 'Z' }),
    'connect-timeout': duration('give up connecting after this long', { default: 10_000 }),
    ...MEASURE_OPTIONS,
    ...CLIENT_SECURITY_OPTIONS,
  },
  positionals: { min: 1, max: 1 },
  examples: ['socketkit perf 127.0.0.1', 'socketkit perf 10.0.0.2:9801 -P 4 -t 30 -O 2', 'socketkit perf host -R --json', 'socketkit perf host --udp -b 1G -l 1400', 'socketkit perf host -R --udp -b 100M -t 30 --html perf.html'],
  async run(ctx) {
    const { values, positionals, io, global } = ctx;
    const ep = parseEndpoint(positionals[0]!, { defaultHost: DEFAULT_CONNECT_HOST, defaultPort: DEFAULT_PERF_PORT });
    const report = createReporter(io, global);
    if (values.udp) refuseTlsWithUdp(values);
    if (values.reverse && values.bidir) throw new SocketkitError('ERR_USAGE', '--reverse and --bidir cannot be combined (--bidir sends both ways)');
    if (values.udp && values.zerocopy) throw new SocketkitError('ERR_USAGE', '--zerocopy is for TCP, not --udp');
    const sec = await clientSecurity(values);
    // --hdr-log/--html: the log's values are, per interval, the RTT of each TCP stream this side
    // sends (TCP_INFO) or the transit-time differences of the UDP datagrams it receives (µs), its
    // errors the datagrams lost; the page adds throughput over time per stream.
    const series = new StreamSeries();
    const measure = await openMeasurement(
      values,
      { command: 'perf', target: positionals[0]!, proto: values.udp ? 'udp' : 'tcp', streams: values.parallel, reverse: values.reverse, bidir: values.bidir, ...(values.udp ? { rate: values.bitrate } : {}) },
      undefined,
      io.stdout,
      () => ({
        transfers: series.logs(),
        udp: series.udp(),
        values: values.udp ? { name: 'Transit-time difference', rate: 'datagrams/s' } : { name: 'Round-trip time (TCP_INFO)', rate: null },
      }),
    );
    const logging = values['hdr-log'] !== undefined || values.html !== undefined;
    const intervalMs = values.interval > 0 ? values.interval : logging ? values['log-interval'] : 0;
    const result = await runPerf(ep, {
      proto: values.udp ? 'udp' : 'tcp',
      streams: values.parallel,
      reverse: values.reverse,
      bidir: values.bidir,
      durationMs: values.time,
      ...(values.bytes !== undefined ? { bytes: values.bytes } : {}),
      ...(values.length !== undefined ? { length: values.length } : {}),
      omitMs: values.omit,
      ...(values.udp ? { rate: values.bitrate } : {}),
      zeroCopy: values.zerocopy,
      intervalMs,
      onStart: () => {
        series.start();
        measure.start();
      },
      onInterval: (i) => {
        series.add(i);
        for (const st of i.streams) {
          if (st.rttUs !== undefined) measure.hooks.onLatency?.(st.rttUs);
          if (st.lost !== undefined && st.lost > 0) measure.hooks.onError?.('datagram-lost', st.lost);
        }
        if (values.interval > 0) report.event('interval', { ...i }, intervalLines(i));
      },
      ...(logging && values.udp ? { onUdpDifference: (_stream: number, us: number) => measure.hooks.onLatency?.(us) } : {}),
      signal: io.shutdown,
      connectTimeoutMs: values['connect-timeout'],
      ...sec.connect,
    }).catch(async (err: unknown) => {
      await measure.close().catch(() => undefined);
      throw err;
    });
    if (values.zerocopy && !result.zeroCopy && result.sent.some((f) => f.dir === 'up')) report.log('note: sendfile was not available here (native helper not built, or TLS): sent with plain writes');
    announceFiles(report, await measure.close());
    report.result('summary', { ...result }, summaryText(result));
    return 0;
  },
});

/**
 * The `--udp` halves of `socketkit echo-server` and `socketkit echo`. The two commands dispatch
 * here at the top of `run()` when `--udp` is given, so the TCP code paths stay untouched.
 */
import type { CommandContext } from '../command.js';
import { SocketkitError } from '../../core/errors.js';
import { DEFAULT_CONNECT_HOST, DEFAULT_LISTEN_HOST, DEFAULT_PORT } from '../../core/defaults.js';
import { formatEndpoint, parseEndpoint, type Endpoint } from '../../net/endpoint.js';
import { writeWithBackpressure } from '../../net/write.js';
import { MAX_UDP_PAYLOAD_IPV6 } from '../../udp/constants.js';
import { startUdpEchoServer, type UdpEchoServerEvent } from '../../udp/server.js';
import { udpEcho } from '../../udp/client.js';
import { createReporter, type Reporter } from '../report.js';
import { formatBytes, formatCount, formatDuration, formatMs } from '../format.js';
import { chooseEngine, describeEngine, type EngineName } from '../../native/engine-choice.js';
import { nativeUdpEchoStatus, startNativeUdpEchoServer } from '../../native/echo-engine.js';
import { refuseTlsWithUdp, serverSecurity, type ServerSecurityValues } from '../security-options.js';

/** The options `echo-server --udp` reads (typed by echo-server's specs), and any others it refuses. */
type ServerValues = Readonly<Record<string, unknown>> &
  ServerSecurityValues & { readonly grace: number; readonly framed: boolean; readonly engine?: EngineName | undefined };
/** The options `echo --udp` reads (typed by echo's specs). */
type ClientValues = Readonly<Record<string, unknown>> & { readonly timeout: number; readonly retries: number; readonly framed: boolean };

/** Most retries `echo --udp` accepts: enough for any lossy path, not a way to flood. */
export const MAX_UDP_RETRIES = 100;

/** What --udp cannot be combined with: framing (a datagram is a message) and TLS (see `refuseTlsWithUdp`). */
function refuseTcpOnly(values: Readonly<Record<string, unknown>> & { readonly framed: boolean }): void {
  if (values.framed) {
    throw new SocketkitError('ERR_USAGE', '--framed and --udp cannot be combined: each datagram is already one whole message');
  }
  refuseTlsWithUdp(values);
}

function describe(e: UdpEchoServerEvent): string {
  switch (e.event) {
    case 'peer':
      return `+ ${e.peer} first datagram (${formatCount(e.peers)} peer(s) known)`;
    case 'peer-end':
      return (
        `- ${e.peer} ${e.reason === 'idle' ? 'went quiet' : e.reason === 'evicted' ? 'forgotten (peer table full)' : 'at stop'}: ` +
        `in ${formatCount(e.datagramsIn)} datagram(s) / ${formatBytes(e.bytesIn)}, out ${formatCount(e.datagramsOut)} / ${formatBytes(e.bytesOut)}, over ${formatDuration(e.ms)}`
      );
    case 'denied':
      return `! ${e.peer} denied: ${e.reason} (no reply)`;
    case 'peer-summary':
      return (
        `~ last ${formatDuration(e.ms)}: ${formatCount(e.peersNew)} new peer(s), ${formatCount(e.peersEvicted)} forgotten (peer table full), ` +
        `${formatCount(e.peersEnded)} went quiet or stopped, ${formatCount(e.denied)} datagram(s) denied; ${formatCount(e.suppressed)} line(s) not shown (${formatCount(e.peers)} peer(s) known)`
      );
    case 'error':
      return `! ${e.peer ?? 'socket'}: ${e.message} (${e.code})`;
  }
}

/** echo-server options that concern connections, which UDP does not have. */
const CONNECTION_OPTIONS = ['max-conns', 'idle-timeout', 'workers', 'stats'] as const;

/** `socketkit echo-server --udp [ADDR]`: echo every datagram to its sender until SIGINT/SIGTERM. */
export async function runUdpEchoServer({ values, given, positionals, io, global }: CommandContext<ServerValues>): Promise<number> {
  refuseTcpOnly(values);
  const tcpOnly = CONNECTION_OPTIONS.filter((n) => given.has(n));
  if (tcpOnly.length > 0) {
    throw new SocketkitError('ERR_USAGE', `${tcpOnly.map((n) => `--${n}`).join(', ')} ${tcpOnly.length === 1 ? 'applies' : 'apply'} to TCP and Unix sockets, not --udp`);
  }
  const ep = parseEndpoint(positionals[0] ?? String(DEFAULT_PORT), { defaultHost: DEFAULT_LISTEN_HOST, allowPortZero: true });
  const graceMs = values.grace;
  const report = createReporter(io, global);
  const { access } = await serverSecurity(values, report);
  // The native engine echoes in batches and keeps no peers: per-peer lines and allow/deny lists need js.
  const needsJs = [...(access.empty ? [] : ['allow/deny lists']), ...(global.quiet ? [] : ['per-peer reports (without -q)'])];
  const choice = chooseEngine(values.engine, nativeUdpEchoStatus(), needsJs);
  if (choice.engine === 'native') return runNativeUdpEcho(ep, report, io.shutdown);
  const server = await startUdpEchoServer(ep, {
    ...(access.empty
      ? {}
      : {
          admit: (address: string) => {
            const d = access.check(address);
            return d.allowed ? undefined : d.reason;
          },
        }),
    onEvent: (e) => {
      const { event, ...fields } = e;
      report.event(event, fields, describe(e));
    },
  });
  const where = formatEndpoint(server.endpoint);
  report.log(`engine: ${describeEngine(choice)}`);
  report.event(
    'listening',
    { address: where, transport: 'udp', maxPayload: server.maxPayload, engine: 'js', ...(choice.reason !== undefined ? { engineReason: choice.reason } : {}) },
    `udp echo server listening on ${where} (datagrams up to ${server.maxPayload} bytes)`,
  );
  await new Promise<void>((resolve) => {
    if (io.shutdown.aborted) resolve();
    else io.shutdown.addEventListener('abort', () => resolve(), { once: true });
  });
  report.log(`stopping: ${formatCount(server.stats.peers)} peer(s) known, letting queued echoes leave for up to ${formatDuration(graceMs)}`);
  await server.close(graceMs);
  const s = server.stats;
  report.result(
    'stopped',
    { transport: 'udp', ...s },
    `udp echo server stopped: ${formatCount(s.peersSeen)} peer(s), in ${formatCount(s.datagramsIn)} datagram(s) / ${formatBytes(s.bytesIn)}, ` +
      `out ${formatCount(s.datagramsOut)} / ${formatBytes(s.bytesOut)}${s.dropped ? `, ${formatCount(s.dropped)} dropped (send queue full)` : ''}` +
      `${s.sendErrors ? `, ${formatCount(s.sendErrors)} send error(s)` : ''}${s.denied ? `, ${formatCount(s.denied)} datagram(s) denied` : ''}` +
      `${s.peersEvicted ? `, ${formatCount(s.peersEvicted)} peer(s) forgotten` : ''}`,
  );
  return 0;
}

/** `echo-server --udp` on the native engine: the same start line and totals, without peers. */
async function runNativeUdpEcho(ep: Endpoint, report: Reporter, shutdown: AbortSignal): Promise<number> {
  const server = await startNativeUdpEchoServer(ep);
  const where = formatEndpoint(server.endpoint);
  report.log('engine: native');
  report.event(
    'listening',
    { address: where, transport: 'udp', maxPayload: server.maxPayload, engine: 'native' },
    `udp echo server listening on ${where} (datagrams up to ${server.maxPayload} bytes)`,
  );
  await new Promise<void>((resolve) => {
    if (shutdown.aborted) resolve();
    else shutdown.addEventListener('abort', () => resolve(), { once: true });
  });
  await server.close();
  const s = server.stats;
  report.result(
    'stopped',
    { transport: 'udp', engine: 'native', ...s },
    `udp echo server stopped: in ${formatCount(s.datagramsIn)} datagram(s) / ${formatBytes(s.bytesIn)}, out ${formatCount(s.datagramsOut)} / ${formatBytes(s.bytesOut)}` +
      `${s.dropped ? `, ${formatCount(s.dropped)} dropped (socket full)` : ''}${s.sendErrors ? `, ${formatCount(s.sendErrors)} send error(s)` : ''} (native engine: peers not tracked)`,
  );
  return 0;
}

/** Reads standard input as one datagram, refusing (not cutting) more than any UDP maximum. */
async function readDatagram(stdin: NodeJS.ReadableStream): Promise<Buffer> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const chunk of stdin as AsyncIterable<Buffer | string>) {
    const b = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    n += b.length;
    if (n > MAX_UDP_PAYLOAD_IPV6) {
      throw new SocketkitError(
        'ERR_DATAGRAM_TOO_LARGE',
        `standard input is more than ${MAX_UDP_PAYLOAD_IPV6} bytes, over the largest UDP datagram; nothing was sent (use TCP for streams)`,
      );
    }
    parts.push(b);
  }
  return Buffer.concat(parts, n);
}

/** `socketkit echo --udp ADDR [MESSAGE]`: one datagram out, one back, checked. */
export async function runUdpEcho({ values, positionals, io, global }: CommandContext<ClientValues>): Promise<number> {
  refuseTcpOnly(values);
  const ep = parseEndpoint(positionals[0]!, { defaultHost: DEFAULT_CONNECT_HOST });
  const timeoutMs = values.timeout;
  const retries = values.retries;
  const report = createReporter(io, global);
  const message = positionals[1];
  const payload = message !== undefined ? Buffer.from(message, 'utf8') : await readDatagram(io.stdin);
  const r = await udpEcho(ep, payload, { timeoutMs, retries, signal: io.shutdown });
  // -q silences messages, never the data.
  if (!global.json) {
    await writeWithBackpressure(io.stdout, r.reply);
    if (message !== undefined && io.stdout.isTTY) io.stdout.write('\n');
  }
  const fields = {
    match: true,
    transport: 'udp',
    peer: r.peer,
    bytesSent: r.bytesSent,
    bytesReceived: r.bytesReceived,
    attempts: r.attempts,
    rttMs: Math.round(r.rttMs * 1000) / 1000,
  };
  if (global.json) report.result('echo', fields, '');
  else report.log(`echoed ${formatBytes(r.bytesSent)} intact in one datagram from ${r.peer} (round trip ${formatMs(r.rttMs)}, ${formatCount(r.attempts)} attempt(s))`);
  return 0;
}

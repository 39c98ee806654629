/**
 * The `--udp` halves of `connect` and `listen`: datagrams from stdin, datagrams to stdout
 * (with their sender under --label), broadcast and multicast.
 */
import type { RemoteInfo } from 'node:dgram';
import type { Readable } from 'node:stream';
import type { CommandContext, OptionSpec } from '../command.js';
import { DEFAULT_CONNECT_HOST, DEFAULT_LISTEN_HOST, DEFAULT_PORT } from '../../core/defaults.js';
import { SocketkitError } from '../../core/errors.js';
import { neutralise } from '../../core/terminal-text.js';
import { formatEndpoint, formatPeer, parseEndpoint } from '../../net/endpoint.js';
import { udpClient, udpListen, type MulticastOptions, type UdpCounts } from '../../relay/udp.js';
import { DEFAULT_UDP_REPLY_WAIT_MS } from '../../relay/constants.js';
import { looseServerSecurityValues, refuseTlsWithUdp, serverSecurity } from '../security-options.js';
import { flag, parseCount, parseDurationMs, str } from '../values.js';
import { relayReporter } from './relay-shared.js';

type Ctx = CommandContext<Record<string, string | boolean | string[] | undefined>>;

const COMMON: Readonly<Record<string, OptionSpec>> = {
  udp: { type: 'boolean', help: 'UDP: each stdin read (a line, at a terminal) is one datagram; datagrams that arrive go to stdout' },
  broadcast: { type: 'boolean', help: 'with --udp: allow broadcast addresses (SO_BROADCAST), e.g. 255.255.255.255 or a subnet\'s' },
  ttl: { type: 'string', value: 'N', help: 'with --udp --multicast: hops a multicast datagram may take (default 1: this link)' },
  iface: { type: 'string', value: 'ADDR|NAME', help: 'with --udp --multicast: the interface to send on or join on (its IPv4 address or name)' },
};

/** connect's UDP options (its --timeout is shared with TCP). */
export const UDP_CLIENT_OPTIONS: Readonly<Record<string, OptionSpec>> = {
  ...COMMON,
  multicast: { type: 'boolean', help: 'with --udp: ADDR is a multicast group (send with --ttl, on --iface)' },
};

/** listen's UDP options. */
export const UDP_LISTEN_OPTIONS: Readonly<Record<string, OptionSpec>> = {
  ...COMMON,
  multicast: { type: 'string', value: 'GROUP', help: 'with --udp: join this multicast group on the port of ADDR (on --iface)' },
  timeout: { type: 'string', value: 'SECONDS', help: 'with --udp: exit after this long without a datagram, once one has come' },
};

/** Datagram as an output line: `[SENDER] bytes` (a newline added if it has none). */
function labelled(data: Buffer, from: RemoteInfo): Buffer {
  const head = Buffer.from(`[${neutralise(formatPeer(from.address, from.port))}] `);
  return Buffer.concat(data.at(-1) === 0x0a ? [head, data] : [head, data, Buffer.from('\n')]);
}

function multicastOptions(values: Ctx['values']): MulticastOptions {
  const ttlText = str(values, 'ttl');
  const iface = str(values, 'iface');
  return { ...(ttlText !== undefined ? { ttl: parseCount('ttl', ttlText, 0, 255) } : {}), ...(iface !== undefined ? { iface } : {}) };
}

function countsText(c: UdpCounts): string {
  const dropped = c.datagramsDropped > 0 ? `, ${c.datagramsDropped} dropped` : '';
  return `sent ${c.datagramsSent} datagram(s) / ${c.bytesSent} bytes, received ${c.datagramsReceived} / ${c.bytesReceived} bytes${dropped}`;
}

function refuseTcpOnly(values: Ctx['values']): void {
  refuseTlsWithUdp(values);
  for (const name of ['exec', 'sh-exec', 'no-half-close', 'keep-open', 'max-conns', 'idle-timeout']) {
    if (values[name] !== undefined && values[name] !== false) throw new SocketkitError('ERR_USAGE', `--${name} is for TCP and Unix sockets, not --udp`);
  }
}

/** `connect --udp ADDR` */
export async function runUdpConnect({ values, positionals, io, global }: Ctx): Promise<number> {
  refuseTcpOnly(values);
  const ep = parseEndpoint(positionals[0]!, { defaultHost: DEFAULT_CONNECT_HOST });
  const waitText = str(values, 'timeout');
  const replyWaitMs = waitText !== undefined ? parseDurationMs('timeout', waitText) : DEFAULT_UDP_REPLY_WAIT_MS;
  const report = relayReporter(io, global);
  const multicast = flag(values, 'multicast');
  const mc = multicastOptions(values);
  if (!multicast && (mc.ttl !== undefined || mc.iface !== undefined)) throw new SocketkitError('ERR_USAGE', '--ttl and --iface apply only with --multicast');
  const label = flag(values, 'label');
  const where = formatEndpoint(ep);
  try {
    const c = await udpClient(ep, {
      input: io.stdin as Readable,
      output: io.stdout,
      replyWaitMs,
      signal: io.shutdown,
      broadcast: flag(values, 'broadcast'),
      ...(multicast ? { multicast: mc } : {}),
      ...(label ? { format: labelled } : {}),
    });
    report.event('closed', { peer: where, transport: 'udp', ...c }, `udp to ${where}: ${countsText(c)}`);
    return 0;
  } catch (err) {
    const counts = (err as { counts?: UdpCounts }).counts;
    if (err instanceof SocketkitError && counts) throw new SocketkitError(err.code, `${err.message}; ${countsText(counts)}`, { cause: err });
    throw err;
  }
}

/** `listen --udp [ADDR]` */
export async function runUdpListen({ values, positionals, io, global }: Ctx): Promise<number> {
  refuseTcpOnly(values);
  const ep = parseEndpoint(positionals[0] ?? String(DEFAULT_PORT), { defaultHost: DEFAULT_LISTEN_HOST, allowPortZero: true });
  const quietText = str(values, 'timeout');
  const quietMs = quietText !== undefined ? parseDurationMs('timeout', quietText) : 0;
  const report = relayReporter(io, global);
  const { access } = await serverSecurity(looseServerSecurityValues(values), report);
  const group = str(values, 'multicast');
  const mc = multicastOptions(values);
  if (group === undefined && (mc.ttl !== undefined || mc.iface !== undefined)) throw new SocketkitError('ERR_USAGE', '--ttl and --iface apply only with --multicast');
  const label = flag(values, 'label');
  let where = formatEndpoint(ep);
  const c = await udpListen(ep, {
    output: io.stdout,
    input: io.stdin as Readable,
    ...(access.empty ? {} : { access }),
    ...(group !== undefined ? { group, multicast: mc } : {}),
    broadcast: flag(values, 'broadcast'),
    quietMs,
    signal: io.shutdown,
    ...(label ? { format: labelled } : {}),
    onListening: (w) => {
      where = w;
      report.event('listening', { address: w, transport: 'udp', group: group ?? null }, `listening on udp ${w}${group !== undefined ? ` (group ${group})` : ''}`);
    },
    onPeer: (from) => report.event('peer', { peer: from }, `+ ${from} first datagram`),
  });
  report.event('closed', { address: where, transport: 'udp', ...c }, `udp listener on ${where} stopped: ${countsText(c)}`);
  return 0;
}

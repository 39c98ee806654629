/**
 * The `--udp` halves of `connect` and `listen`: datagrams from stdin, datagrams to stdout
 * (with their sender under --label), broadcast and multicast.
 */
import type { RemoteInfo } from 'node:dgram';
import type { Readable } from 'node:stream';
import type { CommandContext, OptionSpec, OptionValues } from '../command.js';
import { DEFAULT_CONNECT_HOST, DEFAULT_LISTEN_HOST, DEFAULT_PORT } from '../../core/defaults.js';
import { SocketkitError } from '../../core/errors.js';
import { neutralise } from '../../core/terminal-text.js';
import { formatEndpoint, formatPeer, parseEndpoint } from '../../net/endpoint.js';
import { udpClient, udpListen, type MulticastOptions, type UdpCounts } from '../../relay/udp.js';
import { DEFAULT_UDP_REPLY_WAIT_MS } from '../../relay/constants.js';
import { count, duration, text, toggle } from '../options.js';
import { refuseTlsWithUdp, serverSecurity, type ServerSecurityValues } from '../security-options.js';
import { relayReporter } from './relay-shared.js';

const COMMON = {
  udp: toggle('UDP: each stdin read (a line, at a terminal) is one datagram; datagrams that arrive go to stdout'),
  broadcast: toggle("with --udp: allow broadcast addresses (SO_BROADCAST), e.g. 255.255.255.255 or a subnet's", { needs: 'udp' }),
  ttl: count('with --udp --multicast: hops a multicast datagram may take (default 1: this link)', { min: 0, max: 255, needs: 'multicast' }),
  iface: text('with --udp --multicast: the interface to send on or join on (its IPv4 address or name)', { value: 'ADDR|NAME', needs: 'multicast' }),
} as const satisfies Readonly<Record<string, OptionSpec>>;

/** connect's UDP options (its --timeout is shared with TCP). */
export const UDP_CLIENT_OPTIONS = {
  ...COMMON,
  multicast: toggle('with --udp: ADDR is a multicast group (send with --ttl, on --iface)', { needs: 'udp' }),
} as const satisfies Readonly<Record<string, OptionSpec>>;

/** listen's UDP options. */
export const UDP_LISTEN_OPTIONS = {
  ...COMMON,
  multicast: text('with --udp: join this multicast group on the port of ADDR (on --iface)', { value: 'GROUP', needs: 'udp' }),
  timeout: duration('with --udp: exit after this long without a datagram, once one has come', { needs: 'udp' }),
} as const satisfies Readonly<Record<string, OptionSpec>>;

/** What `connect --udp` reads of connect's values. */
type UdpClientValues = OptionValues<typeof UDP_CLIENT_OPTIONS> & { readonly timeout: number; readonly label: boolean };
/** What `listen --udp` reads of listen's values. */
type UdpListenValues = OptionValues<typeof UDP_LISTEN_OPTIONS> & ServerSecurityValues & { readonly label: boolean };

/** Datagram as an output line: `[SENDER] bytes` (a newline added if it has none). */
function labelled(data: Buffer, from: RemoteInfo): Buffer {
  const head = Buffer.from(`[${neutralise(formatPeer(from.address, from.port))}] `);
  return Buffer.concat(data.at(-1) === 0x0a ? [head, data] : [head, data, Buffer.from('\n')]);
}

function multicastOptions(values: { readonly ttl: number | undefined; readonly iface: string | undefined }): MulticastOptions {
  const { ttl, iface } = values;
  return { ...(ttl !== undefined ? { ttl } : {}), ...(iface !== undefined ? { iface } : {}) };
}

function countsText(c: UdpCounts): string {
  const dropped = c.datagramsDropped > 0 ? `, ${c.datagramsDropped} dropped` : '';
  return `sent ${c.datagramsSent} datagram(s) / ${c.bytesSent} bytes, received ${c.datagramsReceived} / ${c.bytesReceived} bytes${dropped}`;
}

function refuseTcpOnly(values: Readonly<Record<string, unknown>>): void {
  refuseTlsWithUdp(values);
  for (const name of ['exec', 'sh-exec', 'no-half-close', 'keep-open', 'max-conns', 'idle-timeout', 'dump', 'each']) {
    if (values[name] !== undefined && values[name] !== false) throw new SocketkitError('ERR_USAGE', `--${name} is for TCP and Unix sockets, not --udp`);
  }
}

/** `connect --udp ADDR` */
export async function runUdpConnect({ values, given, positionals, io, global }: CommandContext<UdpClientValues>): Promise<number> {
  refuseTcpOnly(values);
  const ep = parseEndpoint(positionals[0]!, { defaultHost: DEFAULT_CONNECT_HOST });
  // connect's --timeout is the connect timeout for TCP; for UDP, the wait for replies (its own default).
  const replyWaitMs = given.has('timeout') ? values.timeout : DEFAULT_UDP_REPLY_WAIT_MS;
  const report = relayReporter(io, global);
  const multicast = values.multicast;
  const mc = multicastOptions(values);
  const label = values.label;
  const where = formatEndpoint(ep);
  try {
    const c = await udpClient(ep, {
      input: io.stdin as Readable,
      output: io.stdout,
      replyWaitMs,
      signal: io.shutdown,
      broadcast: values.broadcast,
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
export async function runUdpListen({ values, positionals, io, global }: CommandContext<UdpListenValues>): Promise<number> {
  refuseTcpOnly(values);
  const ep = parseEndpoint(positionals[0] ?? String(DEFAULT_PORT), { defaultHost: DEFAULT_LISTEN_HOST, allowPortZero: true });
  const quietMs = values.timeout ?? 0;
  const report = relayReporter(io, global);
  const { access } = await serverSecurity(values, report);
  const group = values.multicast;
  const mc = multicastOptions(values);
  const label = values.label;
  let where = formatEndpoint(ep);
  const c = await udpListen(ep, {
    output: io.stdout,
    input: io.stdin as Readable,
    ...(access.empty ? {} : { access }),
    ...(group !== undefined ? { group, multicast: mc } : {}),
    broadcast: values.broadcast,
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

/**
 * `socketkit proxy LISTEN UPSTREAM`: a relay that shows what crosses it (--dump) and makes the
 * network misbehave on purpose (--toxic). The work is in src/proxy; this is the glue.
 */
import { createWriteStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { once } from 'node:events';
import { defineCommand, type CommandContext, type CommandIO, type GlobalFlags, type OptionSpec, type OptionValues } from '../command.js';
import { formatEndpoint, parseEndpoint, type Endpoint } from '../../net/endpoint.js';
import { DEFAULT_GRACE_MS, DEFAULT_LISTEN_HOST } from '../../core/defaults.js';
import { SocketkitError, toSocketkitError } from '../../core/errors.js';
import { createReporter, type Reporter } from '../report.js';
import { formatBytes, formatCount, formatDuration, formatRate } from '../format.js';
import { count, custom, duration, list, text, toggle } from '../options.js';
import { parseEngineName } from '../values.js';
import { chooseEngine, describeEngine } from '../../native/engine-choice.js';
import { nativeRelayStatus } from '../../native/proxy-engine.js';
import { serve, type ServerEvent, type ServerStats, type StatsRates } from '../../server/index.js';
import { SERVER_SECURITY_OPTIONS, clientSecurity, refuseTlsWithUdp, serverSecurity } from '../security-options.js';
import { acceptErrorLine, stoppingText } from '../server-report.js';
import { ApiError, StreamDump, startApiServer, parseToxic, seededRandom, startProxy, type DumpFormat, type ProxyEvent, type ToxicConfig } from '../../proxy/index.js';
import { TOXIC_TYPES } from '../../proxy/toxics/index.js';
import { DEFAULT_UPSTREAM_CONNECT_TIMEOUT_MS } from '../../proxy/relay.js';
import { DEFAULT_UDP_PROXY_IDLE_MS, DEFAULT_UDP_PROXY_MAX_SESSIONS, startUdpProxy, type UdpProxyEvent } from '../../proxy/udp.js';

/** toxiproxy's API port. */
const DEFAULT_API_PORT = 8474;

const END_TEXT: Record<string, string> = {
  closed: 'closed',
  'client-reset': 'reset by the client',
  'upstream-reset': 'reset by the upstream',
  'upstream-failed': 'upstream failed, client reset',
  'toxic-closed': 'closed by a toxic',
  'toxic-reset': 'reset by a toxic',
  stopped: 'closed by the proxy',
};

function describe(e: ProxyEvent): string {
  if (e.event === 'open') return `+ ${e.peer} connected (#${e.id})`;
  const why = e.end === 'upstream-failed' ? `${e.message ?? ''} (${e.code ?? 'ERR_IO'})` : e.code !== undefined ? ` (${e.code})` : '';
  if (e.end === 'upstream-failed') return `! ${e.peer} (#${e.id}): upstream failed: ${why}; client reset`;
  return `- ${e.peer} (#${e.id}): ${END_TEXT[e.end] ?? e.end}${why}, > ${formatBytes(e.bytesUp)}, < ${formatBytes(e.bytesDown)}, ${e.ms} ms`;
}

/** `--toxic` values, checked: a bad type or attribute is a usage error. */
function toxicsFrom(texts: readonly string[], udp: boolean): ToxicConfig[] {
  const names = new Set<string>();
  return texts.map((t) => {
    let c: ToxicConfig;
    try {
      c = parseToxic(t, udp);
    } catch (err) {
      throw new SocketkitError('ERR_USAGE', `--toxic '${t}': ${toSocketkitError(err).message}`);
    }
    if (names.has(c.name)) throw new SocketkitError('ERR_USAGE', `--toxic '${t}': a second toxic named '${c.name}' (give it name=...)`);
    names.add(c.name);
    return c;
  });
}

const toxicNames = (transport: 'tcp' | 'udp'): string =>
  [...TOXIC_TYPES.values()]
    .filter((t) => t.transport !== (transport === 'tcp' ? 'udp' : 'tcp'))
    .map((t) => `${t.type}(${Object.keys(t.attributes).join(',')})`)
    .join(' ');

const TOXIC_HELP = `add a toxic: TYPE[:ATTR=VALUE,...], with stream=upstream|downstream (default downstream) and toxicity=0..1 among the attributes. TCP: ${toxicNames('tcp')}. UDP: ${toxicNames('udp')}`;

function dumpFormat(option: string, t: string): DumpFormat {
  if (t !== 'text' && t !== 'hex') throw new SocketkitError('ERR_USAGE', `--${option}: '${t}' is not text or hex`);
  return t;
}

/** `--api [HOST:]PORT`: a bare number is a port on 127.0.0.1; a host alone gets toxiproxy's port. */
function apiEndpoint(_option: string, t: string): Endpoint {
  return parseEndpoint(/^\d+$/.test(t) ? `127.0.0.1:${t}` : t, { defaultHost: '127.0.0.1', defaultPort: DEFAULT_API_PORT, allowPortZero: true });
}

const OPTIONS = {
  toxic: list(TOXIC_HELP, { value: 'SPEC' }),
  dump: custom('print every chunk as read: time, connection, direction (> to upstream, < back), offset, length, then the bytes (text with escapes, or hex rows of 16)', dumpFormat, {
    value: 'text|hex',
  }),
  'dump-file': text('write the dump to FILE instead of stderr (implies --dump text)', { value: 'FILE' }),
  seed: count('seed the toxics\u2019 randomness (jitter, toxicity, loss) for repeatable runs', { min: 0, max: 2 ** 32 - 1 }),
  'connect-timeout': duration('give up connecting to the upstream after this long', { default: DEFAULT_UPSTREAM_CONNECT_TIMEOUT_MS }),
  grace: duration('on SIGINT/SIGTERM, let live connections finish this long', { default: DEFAULT_GRACE_MS }),
  'max-conns': count('relay at most N connections at once; more are refused: closed, counted, logged'),
  'idle-timeout': duration(
    `close connections with no byte from the client or to it for this long; with --udp, expire a client address quiet this long (default ${DEFAULT_UDP_PROXY_IDLE_MS / 1000} s)`,
  ),
  stats: duration('print statistics this often (they are always printed at exit)'),
  'upstream-tls': toggle('connect to the upstream with TLS (verified against the system CAs unless --upstream-ca or --upstream-pin)'),
  'upstream-ca': text('verify the upstream against this CA certificate, PEM; implies --upstream-tls', { value: 'FILE' }),
  'upstream-pin': text('accept only the upstream certificate with this fingerprint; implies --upstream-tls', { value: 'SHA256' }),
  api: custom("serve toxiproxy's HTTP API here (toxiproxy's port is 8474); LISTEN UPSTREAM become optional (given, they are the proxy named 'proxy')", apiEndpoint, {
    value: '[HOST:]PORT',
  }),
  config: text("with --api: toxiproxy's JSON config (an array of proxies) to create at start", { value: 'FILE', needs: 'api' }),
  udp: toggle('relay UDP datagrams: one upstream socket per client address (--max-peers of them; --idle-timeout expires them)'),
  engine: custom(
    'the data plane of plain TCP and Unix connections: native (splice(2) on a native thread: the bytes never enter user space) or js (Node sockets); default native when the native helper is built and nothing asks for js (--toxic, --dump, TLS either side)',
    parseEngineName,
    { value: 'native|js' },
  ),
  'max-peers': count('with --udp: most client addresses relayed at once; a new one evicts the least recently heard from', { default: DEFAULT_UDP_PROXY_MAX_SESSIONS, needs: 'udp' }),
  ...SERVER_SECURITY_OPTIONS,
} as const satisfies Readonly<Record<string, OptionSpec>>;

type Values = OptionValues<typeof OPTIONS>;
type Context = CommandContext<Values>;

/** Opens the dump's output: stderr, or `--dump-file` (resolves once the file is open). */
async function openDump(values: Values, io: CommandIO): Promise<{ dump?: StreamDump; close: () => Promise<void> }> {
  const dumpFile = values['dump-file'];
  const format: DumpFormat | undefined = values.dump ?? (dumpFile !== undefined ? 'text' : undefined);
  if (format === undefined) return { close: () => Promise.resolve() };
  if (dumpFile === undefined) return { dump: new StreamDump(io.stderr, format), close: () => Promise.resolve() };
  const file = createWriteStream(dumpFile);
  await new Promise<void>((resolve, reject) => {
    const done = (err?: Error): void => {
      file.removeListener('ready', onReady);
      file.removeListener('error', done);
      if (err) reject(toSocketkitError(err, dumpFile));
      else resolve();
    };
    const onReady = (): void => done();
    file.once('ready', onReady);
    file.once('error', done);
  });
  return {
    dump: new StreamDump(file, format),
    close: async () => {
      file.end();
      await once(file, 'close');
    },
  };
}

/**
 * The proxy's statistics line. A relay cannot tell a request from a reply (it sees bytes, not
 * messages), so unlike the echo server's it has no round trips: connections and bytes each way.
 */
export function proxyStatsText(s: ServerStats, r: StatsRates): string {
  const n = formatCount;
  return `stats: ${n(s.connections)} open, ${n(s.accepted)} accepted, ${n(s.refused)} refused${s.acceptErrors ? ` (${n(s.acceptErrors)} out of descriptors)` : ''}, ${n(s.idleClosed)} idle-closed; from clients ${formatRate(r.bytesInPerSecond)}, to clients ${formatRate(r.bytesOutPerSecond)}`;
}

/** What the statistics say as JSON: no round trips (see proxyStatsText). */
function proxyStatsFields(s: ServerStats, r: StatsRates): Record<string, number> {
  const { roundTrips: _rt, ...stats } = s;
  const { roundTripsPerSecond: _rtps, ...rates } = r;
  return { ...stats, ...rates };
}

function proxyStatsLine(report: Reporter, io: CommandIO, global: GlobalFlags, s: ServerStats, r: StatsRates): void {
  if (global.quiet && !global.json) io.stderr.write(`${proxyStatsText(s, r)}\n`);
  else report.event('stats', proxyStatsFields(s, r), proxyStatsText(s, r));
}

function describeUdp(e: UdpProxyEvent): string {
  if (e.event === 'session') return `+ ${e.peer} (#${e.id}): new UDP session`;
  if (e.event === 'refused') return `! ${e.peer} refused: ${e.reason}`;
  const why = e.reason === 'idle' ? 'went quiet' : e.reason === 'evicted' ? 'evicted (peer table full)' : e.reason === 'failed' ? `upstream socket failed (${e.code ?? 'ERR_IO'})` : 'at stop';
  return `- ${e.peer} (#${e.id}): ${why}, > ${e.datagramsUp} datagram(s) ${formatBytes(e.bytesUp)}, < ${e.datagramsDown} datagram(s) ${formatBytes(e.bytesDown)}, ${e.dropped} dropped, ${e.ms} ms`;
}

function untilShutdown(io: CommandIO): Promise<void> {
  return new Promise<void>((resolve) => {
    if (io.shutdown.aborted) resolve();
    else io.shutdown.addEventListener('abort', () => resolve(), { once: true });
  });
}

/** Options of TCP proxies only. */
const TCP_ONLY = ['max-conns', 'upstream-tls', 'upstream-ca', 'upstream-pin', 'connect-timeout', 'engine'] as const;

/** `socketkit proxy --udp LISTEN UPSTREAM`. */
async function runUdpProxy({ values, given, positionals, io, global }: Context): Promise<number> {
  refuseTlsWithUdp(values);
  for (const o of TCP_ONLY) if (given.has(o)) throw new SocketkitError('ERR_USAGE', `--${o} is for TCP, not --udp`);
  const listen = parseEndpoint(positionals[0]!, { defaultHost: DEFAULT_LISTEN_HOST, allowPortZero: true });
  const upstream = parseEndpoint(positionals[1]!, { defaultHost: DEFAULT_LISTEN_HOST });
  const toxics = toxicsFrom(values.toxic, true);
  const random = values.seed !== undefined ? seededRandom(values.seed) : Math.random;
  const idleMs = values['idle-timeout'] ?? DEFAULT_UDP_PROXY_IDLE_MS;
  const report = createReporter(io, global);
  const { access } = await serverSecurity(values, report);
  const out = await openDump(values, io);
  const proxy = await startUdpProxy(listen, upstream, {
    toxics,
    random,
    maxSessions: values['max-peers'],
    idleMs: Math.max(1, idleMs),
    ...(out.dump ? { dump: out.dump } : {}),
    ...(access.empty
      ? {}
      : {
          admit: (a: string) => {
            const d = access.check(a);
            return d.allowed ? undefined : d.reason;
          },
        }),
    ...(global.quiet
      ? {}
      : {
          onEvent: (e: UdpProxyEvent) => {
            const { event, ...fields } = e;
            report.event(event, fields, describeUdp(e));
          },
        }),
  });
  const where = formatEndpoint(proxy.endpoint);
  report.event(
    'listening',
    { address: where, transport: 'udp', upstream: formatEndpoint(upstream), toxics },
    `udp proxy listening on ${where}, relaying to ${formatEndpoint(upstream)}${toxics.length > 0 ? ` with ${toxics.map((t) => `${t.type} (${t.stream})`).join(', ')}` : ''}`,
  );
  await untilShutdown(io);
  await proxy.close();
  await out.close();
  const s = proxy.stats();
  report.result(
    'stopped',
    { ...s },
    `udp proxy stopped: ${formatCount(s.opened)} session(s), ${formatCount(s.evicted)} evicted, ${formatCount(s.expired)} expired; > ${formatCount(s.datagramsUp)} datagram(s), < ${formatCount(s.datagramsDown)}, ${formatCount(s.dropped)} dropped`,
  );
  return 0;
}

/** `socketkit proxy --api [HOST:]PORT [LISTEN UPSTREAM] [--udp] [--config FILE]`. */
async function runApi({ values, positionals, io, global }: Context, ep: Endpoint): Promise<number> {
  const report = createReporter(io, global);
  const configPath = values.config;
  let config: unknown;
  if (configPath !== undefined) {
    try {
      config = JSON.parse(await readFile(configPath, 'utf8'));
    } catch (err) {
      throw new SocketkitError(err instanceof SyntaxError ? 'ERR_BAD_CONFIG' : toSocketkitError(err, configPath).code, `--config ${configPath}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  const server = await startApiServer(ep, config);
  try {
    if (positionals.length === 2) {
      const toxics = toxicsFrom(values.toxic, values.udp);
      await server.api.create({ name: 'proxy', listen: positionals[0], upstream: positionals[1], toxics, ...(values.udp ? { protocol: 'udp' } : {}) });
    }
  } catch (err) {
    await server.close();
    const code = err instanceof ApiError && err.status >= 500 ? err.code : 'ERR_USAGE';
    throw new SocketkitError(code, err instanceof Error ? err.message : String(err));
  }
  const where = formatEndpoint(server.endpoint);
  report.event('listening', { api: where, proxies: server.api.list() }, `toxiproxy-compatible API on http://${where}/ (${Object.keys(server.api.list()).length} proxies)`);
  await untilShutdown(io);
  await server.close();
  report.result('stopped', {}, 'proxy API stopped');
  return 0;
}

/** `socketkit proxy LISTEN UPSTREAM` over TCP or Unix sockets. */
async function runTcpProxy({ values, positionals, io, global }: Context): Promise<number> {
  const listen = parseEndpoint(positionals[0]!, { defaultHost: DEFAULT_LISTEN_HOST, allowPortZero: true });
  const upstream = parseEndpoint(positionals[1]!, { defaultHost: DEFAULT_LISTEN_HOST });
  const toxics = toxicsFrom(values.toxic, false);
  const random = values.seed !== undefined ? seededRandom(values.seed) : Math.random;
  const connectTimeoutMs = values['connect-timeout'];
  const graceMs = values.grace;
  const maxConnections = values['max-conns'];
  const idleTimeoutMs = values['idle-timeout'];
  const statsIntervalMs = values.stats !== undefined ? Math.max(100, values.stats) : undefined;
  const report = createReporter(io, global);
  const sec = await serverSecurity(values, report);
  const wantsUpstreamTls = values['upstream-tls'] || values['upstream-ca'] !== undefined || values['upstream-pin'] !== undefined;
  const up = wantsUpstreamTls ? await clientSecurity({ tls: true, ca: values['upstream-ca'], pin: values['upstream-pin'], 'psk-file': undefined }) : undefined;
  const needsJs = [
    ...(toxics.length > 0 ? ['toxics'] : []),
    ...(values.dump !== undefined || values['dump-file'] !== undefined ? ['the dump'] : []),
    ...(sec.mode !== 'plain' ? ['TLS'] : []),
    ...(up !== undefined ? ['upstream TLS'] : []),
  ];
  const choice = chooseEngine(values.engine, nativeRelayStatus(), needsJs);
  const out = await openDump(values, io);
  const dump = out.dump;
  const onProxyEvent = (e: ProxyEvent): void => {
    const { event, ...fields } = e;
    // An upstream that fails is the proxy failing at its job: said even with -q.
    if (e.event === 'close' && e.end === 'upstream-failed' && global.quiet && !global.json) io.stderr.write(`${describe(e)}\n`);
    else if (!global.quiet) report.event(event === 'open' ? 'connect' : 'disconnect', fields, describe(e));
  };
  const onEvent = (e: ServerEvent): void => {
    if (e.event === 'refused') report.event('refused', { peer: e.peer, reason: e.reason }, `! ${e.peer} refused: ${e.reason}`);
    else if (e.event === 'idle') report.event('idle', { peer: e.peer, idleMs: e.idleMs }, `~ ${e.peer} closed: idle for ${formatDuration(e.idleMs)}`);
  };
  const result = await serve({
    endpoint: listen,
    workers: 1,
    graceMs,
    shutdown: io.shutdown,
    ...(maxConnections !== undefined ? { maxConnections } : {}),
    ...(statsIntervalMs !== undefined ? { statsIntervalMs } : {}),
    start: async (one) =>
        await startProxy(listen, upstream, {
          toxics,
          random,
          connectTimeoutMs,
          onProxyEvent,
          clearStaleUnixSocket: one.clearStaleUnixSocket,
          engine: choice.engine,
          ...(global.quiet ? {} : { onEvent }),
          ...(up?.connect.transport ? { upstreamTransport: up.connect.transport } : {}),
          ...(dump ? { dump } : {}),
          ...(one.maxConnections !== undefined ? { maxConnections: one.maxConnections } : {}),
          ...(idleTimeoutMs !== undefined && idleTimeoutMs > 0 ? { idleTimeoutMs } : {}),
          onAcceptError: (e) => acceptErrorLine(report, io, global, e),
          ...sec.listen,
        }),
    onListening: (where) =>
      report.event(
        'listening',
        { address: where, upstream: formatEndpoint(upstream), toxics, engine: choice.engine, ...(choice.reason !== undefined ? { engineReason: choice.reason } : {}) },
        `proxy listening on ${where}, relaying to ${formatEndpoint(upstream)}${toxics.length > 0 ? ` with ${toxics.map((t) => `${t.type} (${t.stream})`).join(', ')}` : ''} (engine: ${describeEngine(choice)})`,
      ),
    onStats: (st, r) => proxyStatsLine(report, io, global, st, r),
    onStopping: (open, ms) => report.log(stoppingText(open, ms)),
  });
  await out.close();
  const s = result.stats;
  const r = result.rates;
  report.result(
    'stopped',
    { ...proxyStatsFields(s, r), seconds: Math.round(r.seconds * 1000) / 1000 },
    `proxy stopped: ${formatCount(s.accepted)} connection(s), ${formatCount(s.refused)} refused, ${formatCount(s.idleClosed)} idle-closed, from clients ${formatBytes(s.bytesIn)}, to clients ${formatBytes(s.bytesOut)}\n${proxyStatsText(s, r)} (average over ${formatDuration(r.seconds * 1000)})`,
  );
  return 0;
}

export default defineCommand({
  name: 'proxy',
  summary: 'Relay connections to an upstream, show the traffic (--dump) and make the network misbehave (--toxic).',
  args: 'LISTEN UPSTREAM',
  description:
    'LISTEN and UPSTREAM are PORT, HOST:PORT, [IPV6]:PORT or unix:PATH. Every connection to LISTEN gets its own connection to UPSTREAM; half-close and resets travel through, and a side that does not read slows the other down (memory stays bounded).',
  options: OPTIONS,
  positionals: { min: 0, max: 2 },
  examples: [
    'socketkit proxy 9000 9800 --dump text',
    'socketkit proxy 9000 9800 --toxic latency:latency=200,jitter=20',
    'socketkit proxy 9000 9800 --toxic slicer:average_size=1,delay=500,stream=upstream',
    'socketkit proxy unix:/tmp/p.sock [::1]:9800 --toxic cut_after:timeout=2000,reset=false',
    'socketkit proxy --udp 9001 9800 --toxic packet_loss:loss_rate=0.1,correlation=0.5',
    'socketkit proxy --api 8474 --config toxiproxy.json',
  ],
  async run(ctx) {
    const { values, positionals } = ctx;
    const api = values.api;
    if (positionals.length === 1 || (positionals.length === 0 && api === undefined)) {
      throw new SocketkitError('ERR_USAGE', 'proxy: missing argument (expected LISTEN UPSTREAM)');
    }
    if (api !== undefined) {
      // toxiproxy's toxics change while a proxy runs and reach its open connections: js only.
      if (values.engine === 'native') throw new SocketkitError('ERR_USAGE', "--engine native: the API's proxies run on the js engine (their toxics change while connections are open)");
      return runApi(ctx, api);
    }
    if (values.udp) return runUdpProxy(ctx);
    return runTcpProxy(ctx);
  },
});

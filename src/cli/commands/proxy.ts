/**
 * `socketkit proxy LISTEN UPSTREAM`: a relay that shows what crosses it (--dump) and makes the
 * network misbehave on purpose (--toxic). The work is in src/proxy; this is the glue.
 */
import { createWriteStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { once } from 'node:events';
import type { Command } from '../command.js';
import { parseEndpoint } from '../../net/endpoint.js';
import { formatEndpoint } from '../../net/endpoint.js';
import { DEFAULT_LISTEN_HOST } from '../../core/defaults.js';
import { SocketkitError, toSocketkitError } from '../../core/errors.js';
import { createReporter, formatBytes } from '../report.js';
import { flag, parseCount, parseDurationMs, str } from '../values.js';
import { serve, type ServerEvent } from '../../server/index.js';
import { SERVER_SECURITY_OPTIONS, clientSecurity, looseServerSecurityValues, serverSecurity } from '../security-options.js';
import { acceptErrorLine, serverStatsText as statsText, statsLine } from '../server-report.js';
import { ApiError, StreamDump, startApiServer, parseToxic, seededRandom, startProxy, type DumpFormat, type ProxyEvent, type ToxicConfig } from '../../proxy/index.js';
import { TOXIC_TYPES } from '../../proxy/toxics/index.js';
import { DEFAULT_UDP_PROXY_IDLE_MS, DEFAULT_UDP_PROXY_MAX_SESSIONS, startUdpProxy, type UdpProxyEvent } from '../../proxy/udp.js';
import type { CommandIO, GlobalFlags } from '../command.js';
import { refuseTlsWithUdp } from '../security-options.js';

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
function toxicsFrom(list: readonly string[], udp: boolean): ToxicConfig[] {
  const names = new Set<string>();
  return list.map((text) => {
    let c: ToxicConfig;
    try {
      c = parseToxic(text, udp);
    } catch (err) {
      throw new SocketkitError('ERR_USAGE', `--toxic '${text}': ${toSocketkitError(err).message}`);
    }
    if (names.has(c.name)) throw new SocketkitError('ERR_USAGE', `--toxic '${text}': a second toxic named '${c.name}' (give it name=...)`);
    names.add(c.name);
    return c;
  });
}

const TOXIC_HELP = `add a toxic: TYPE[:ATTR=VALUE,...], with stream=upstream|downstream (default downstream) and toxicity=0..1 among the attributes. TCP: ${[...TOXIC_TYPES.values()]
  .filter((t) => t.transport !== 'udp')
  .map((t) => `${t.type}(${Object.keys(t.attributes).join(',')})`)
  .join(' ')}. UDP: ${[...TOXIC_TYPES.values()]
  .filter((t) => t.transport !== 'tcp')
  .map((t) => `${t.type}(${Object.keys(t.attributes).join(',')})`)
  .join(' ')}`;

/** Opens the dump's output: stderr, or `--dump-file` (resolves once the file is open). */
async function openDump(values: Values, io: CommandIO): Promise<{ dump?: StreamDump; close: () => Promise<void> }> {
  const dumpText = str(values, 'dump');
  const dumpFile = str(values, 'dump-file');
  if (dumpText !== undefined && dumpText !== 'text' && dumpText !== 'hex') throw new SocketkitError('ERR_USAGE', `--dump: '${dumpText}' is not text or hex`);
  const format: DumpFormat | undefined = dumpText === 'hex' ? 'hex' : dumpText !== undefined || dumpFile !== undefined ? 'text' : undefined;
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

type Values = Record<string, string | boolean | string[] | undefined>;

function describeUdp(e: UdpProxyEvent): string {
  if (e.event === 'session') return `+ ${e.peer} (#${e.id}): new UDP session`;
  if (e.event === 'refused') return `! ${e.peer} refused: ${e.reason}`;
  const why = e.reason === 'idle' ? 'went quiet' : e.reason === 'evicted' ? 'evicted (peer table full)' : e.reason === 'failed' ? `upstream socket failed (${e.code ?? 'ERR_IO'})` : 'at stop';
  return `- ${e.peer} (#${e.id}): ${why}, > ${e.datagramsUp} datagram(s) ${formatBytes(e.bytesUp)}, < ${e.datagramsDown} datagram(s) ${formatBytes(e.bytesDown)}, ${e.dropped} dropped, ${e.ms} ms`;
}

/** `socketkit proxy --udp LISTEN UPSTREAM`. */
async function runUdpProxy(values: Values, positionals: readonly string[], io: CommandIO, global: GlobalFlags): Promise<number> {
  refuseTlsWithUdp(values);
  for (const o of ['max-conns', 'upstream-tls', 'upstream-ca', 'upstream-pin'] as const) {
    if (values[o] !== undefined && values[o] !== false) throw new SocketkitError('ERR_USAGE', `--${o} is for TCP, not --udp`);
  }
  const listen = parseEndpoint(positionals[0]!, { defaultHost: DEFAULT_LISTEN_HOST, allowPortZero: true });
  const upstream = parseEndpoint(positionals[1]!, { defaultHost: DEFAULT_LISTEN_HOST });
  const toxics = toxicsFrom(Array.isArray(values['toxic']) ? values['toxic'] : [], true);
  const seedText = str(values, 'seed');
  const random = seedText !== undefined ? seededRandom(parseCount('seed', seedText, 0, 2 ** 32 - 1)) : Math.random;
  const maxSessions = parseCount('max-peers', str(values, 'max-peers') ?? String(DEFAULT_UDP_PROXY_MAX_SESSIONS));
  const idleText = str(values, 'idle-timeout');
  const idleMs = idleText !== undefined ? parseDurationMs('idle-timeout', idleText) : DEFAULT_UDP_PROXY_IDLE_MS;
  const report = createReporter(io, global);
  const { access } = await serverSecurity(looseServerSecurityValues(values), report);
  const out = await openDump(values, io);
  const proxy = await startUdpProxy(listen, upstream, {
    toxics,
    random,
    maxSessions,
    idleMs: Math.max(1, idleMs),
    ...(out.dump ? { dump: out.dump } : {}),
    ...(access.empty ? {} : { admit: (a: string) => { const d = access.check(a); return d.allowed ? undefined : d.reason; } }),
    ...(global.quiet ? {} : { onEvent: (e: UdpProxyEvent) => { const { event, ...fields } = e; report.event(event, fields, describeUdp(e)); } }),
  });
  const where = formatEndpoint(proxy.endpoint);
  report.event('listening', { address: where, transport: 'udp', upstream: formatEndpoint(upstream), toxics }, `udp proxy listening on ${where}, relaying to ${formatEndpoint(upstream)}${toxics.length > 0 ? ` with ${toxics.map((t) => `${t.type} (${t.stream})`).join(', ')}` : ''}`);
  await new Promise<void>((resolve) => {
    if (io.shutdown.aborted) resolve();
    else io.shutdown.addEventListener('abort', () => resolve(), { once: true });
  });
  await proxy.close();
  await out.close();
  const s = proxy.stats();
  report.result('stopped', { ...s }, `udp proxy stopped: ${s.opened} session(s), ${s.evicted} evicted, ${s.expired} expired; > ${s.datagramsUp} datagram(s), < ${s.datagramsDown}, ${s.dropped} dropped`);
  return 0;
}

/** `socketkit proxy --api [HOST:]PORT [LISTEN UPSTREAM] [--config FILE]`. */
async function runApi(values: Values, positionals: readonly string[], io: CommandIO, global: GlobalFlags): Promise<number> {
  if (flag(values, 'udp')) throw new SocketkitError('ERR_USAGE', '--api drives TCP proxies (toxiproxy has no UDP); remove --udp');
  const text = str(values, 'api')!;
  const ep = parseEndpoint(/^\d+$/.test(text) ? `127.0.0.1:${text}` : text, { defaultHost: '127.0.0.1', defaultPort: 8474, allowPortZero: true });
  const report = createReporter(io, global);
  const configPath = str(values, 'config');
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
      const toxics = toxicsFrom(Array.isArray(values['toxic']) ? values['toxic'] : [], false);
      await server.api.create({ name: 'proxy', listen: positionals[0], upstream: positionals[1], toxics });
    }
  } catch (err) {
    await server.close();
    const code = err instanceof ApiError && err.status >= 500 ? err.code : 'ERR_USAGE';
    throw new SocketkitError(code, err instanceof Error ? err.message : String(err));
  }
  const where = formatEndpoint(server.endpoint);
  report.event('listening', { api: where, proxies: server.api.list() }, `toxiproxy-compatible API on http://${where}/ (${Object.keys(server.api.list()).length} proxies)`);
  await new Promise<void>((resolve) => {
    if (io.shutdown.aborted) resolve();
    else io.shutdown.addEventListener('abort', () => resolve(), { once: true });
  });
  await server.close();
  report.result('stopped', {}, 'proxy API stopped');
  return 0;
}

const command: Command = {
  name: 'proxy',
  summary: 'Relay connections to an upstream, show the traffic (--dump) and make the network misbehave (--toxic).',
  args: 'LISTEN UPSTREAM',
  description:
    'LISTEN and UPSTREAM are PORT, HOST:PORT, [IPV6]:PORT or unix:PATH. Every connection to LISTEN gets its own connection to UPSTREAM; half-close and resets travel through, and a side that does not read slows the other down (memory stays bounded).',
  options: {
    toxic: { type: 'string', value: 'SPEC', multiple: true, help: TOXIC_HELP },
    dump: { type: 'string', value: 'text|hex', help: 'print every chunk as read: time, connection, direction (> to upstream, < back), offset, length, then the bytes (text with escapes, or hex rows of 16)' },
    'dump-file': { type: 'string', value: 'FILE', help: 'write the dump to FILE instead of stderr (implies --dump text)' },
    seed: { type: 'string', value: 'N', help: 'seed the toxics\u2019 randomness (jitter, toxicity, loss) for repeatable runs' },
    'connect-timeout': { type: 'string', value: 'SECONDS', help: 'give up connecting to the upstream after this long', default: '10' },
    grace: { type: 'string', value: 'SECONDS', help: 'on SIGINT/SIGTERM, let live connections finish this long', default: '5' },
    'max-conns': { type: 'string', value: 'N', help: 'relay at most N connections at once; more are refused: closed, counted, logged' },
    'idle-timeout': { type: 'string', value: 'SECONDS', help: 'close connections with no byte from the client or to it for this long' },
    stats: { type: 'string', value: 'SECONDS', help: 'print statistics this often (they are always printed at exit)' },
    'upstream-tls': { type: 'boolean', help: 'connect to the upstream with TLS (verified against the system CAs unless --upstream-ca or --upstream-pin)' },
    'upstream-ca': { type: 'string', value: 'FILE', help: 'verify the upstream against this CA certificate, PEM; implies --upstream-tls' },
    'upstream-pin': { type: 'string', value: 'SHA256', help: 'accept only the upstream certificate with this fingerprint; implies --upstream-tls' },
    api: { type: 'string', value: '[HOST:]PORT', help: "serve toxiproxy's HTTP API here (toxiproxy's port is 8474); LISTEN UPSTREAM become optional (given, they are the proxy named 'proxy')" },
    config: { type: 'string', value: 'FILE', help: "with --api: toxiproxy's JSON config (an array of proxies) to create at start", needs: 'api' },
    udp: { type: 'boolean', help: 'relay UDP datagrams: one upstream socket per client address (--max-peers of them; --idle-timeout expires them, default 60 s)' },
    'max-peers': { type: 'string', value: 'N', help: 'with --udp: most client addresses relayed at once; a new one evicts the least recently heard from', default: String(DEFAULT_UDP_PROXY_MAX_SESSIONS) },
    ...SERVER_SECURITY_OPTIONS,
  },
  positionals: { min: 0, max: 2 },
  examples: [
    'socketkit proxy 9000 9800 --dump text',
    'socketkit proxy 9000 9800 --toxic latency:latency=200,jitter=20',
    'socketkit proxy 9000 9800 --toxic slicer:average_size=1,delay=500,stream=upstream',
    'socketkit proxy unix:/tmp/p.sock [::1]:9800 --toxic cut_after:timeout=2000,reset=false',
    'socketkit proxy --udp 9001 9800 --toxic packet_loss:loss_rate=0.1,correlation=0.5',
  ],
  async run({ values, positionals, io, global }) {
    if (positionals.length === 1 || (positionals.length === 0 && values['api'] === undefined)) {
      throw new SocketkitError('ERR_USAGE', 'proxy: missing argument (expected LISTEN UPSTREAM)');
    }
    if (values['api'] !== undefined) return runApi(values, positionals, io, global);
    if (flag(values, 'udp')) return runUdpProxy(values, positionals, io, global);
    const listen = parseEndpoint(positionals[0]!, { defaultHost: DEFAULT_LISTEN_HOST, allowPortZero: true });
    const upstream = parseEndpoint(positionals[1]!, { defaultHost: DEFAULT_LISTEN_HOST });
    const toxicList = Array.isArray(values['toxic']) ? values['toxic'] : [];
    const toxics = toxicsFrom(toxicList, false);
    const seedText = str(values, 'seed');
    const random = seedText !== undefined ? seededRandom(parseCount('seed', seedText, 0, 2 ** 32 - 1)) : Math.random;
    const connectTimeoutMs = parseDurationMs('connect-timeout', str(values, 'connect-timeout') ?? '10');
    const graceMs = parseDurationMs('grace', str(values, 'grace') ?? '5');
    const maxText = str(values, 'max-conns');
    const maxConnections = maxText !== undefined ? parseCount('max-conns', maxText) : undefined;
    const idleText = str(values, 'idle-timeout');
    const idleTimeoutMs = idleText !== undefined ? parseDurationMs('idle-timeout', idleText) : undefined;
    const statsSpec = str(values, 'stats');
    const statsIntervalMs = statsSpec !== undefined ? Math.max(100, parseDurationMs('stats', statsSpec)) : undefined;
    const report = createReporter(io, global);
    const sec = await serverSecurity(looseServerSecurityValues(values), report);
    const wantsUpstreamTls = flag(values, 'upstream-tls') || values['upstream-ca'] !== undefined || values['upstream-pin'] !== undefined;
    const up = wantsUpstreamTls
      ? await clientSecurity({ tls: true, ca: str(values, 'upstream-ca'), pin: str(values, 'upstream-pin'), 'psk-file': undefined })
      : undefined;
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
      else if (e.event === 'idle') report.event('idle', { peer: e.peer, idleMs: e.idleMs }, `~ ${e.peer} closed: idle for ${(e.idleMs / 1000).toFixed(1)} s`);
    };
    const result = await serve({
      endpoint: listen,
      workers: 1,
      graceMs,
      shutdown: io.shutdown,
      ...(maxConnections !== undefined ? { maxConnections } : {}),
      ...(statsIntervalMs !== undefined ? { statsIntervalMs } : {}),
      start: async (one) =>
        (
          await startProxy(listen, upstream, {
            toxics,
            random,
            connectTimeoutMs,
            onProxyEvent,
            clearStaleUnixSocket: one.clearStaleUnixSocket,
            ...(global.quiet ? {} : { onEvent }),
            ...(up?.connect.transport ? { upstreamTransport: up.connect.transport } : {}),
            ...(dump ? { dump } : {}),
            ...(one.maxConnections !== undefined ? { maxConnections: one.maxConnections } : {}),
            ...(idleTimeoutMs !== undefined && idleTimeoutMs > 0 ? { idleTimeoutMs } : {}),
            onAcceptError: (e) => acceptErrorLine(report, io, global, e),
            ...sec.listen,
          })
        ).server,
      onListening: (where) =>
        report.event(
          'listening',
          { address: where, upstream: formatEndpoint(upstream), toxics },
          `proxy listening on ${where}, relaying to ${formatEndpoint(upstream)}${toxics.length > 0 ? ` with ${toxics.map((t) => `${t.type} (${t.stream})`).join(', ')}` : ''}`,
        ),
      onStats: (st, r) => statsLine(report, io, global, st, r),
      onStopping: (open, ms) => report.log(`stopping: ${open} connection(s) open, waiting up to ${ms / 1000} s`),
    });
    await out.close();
    const s = result.stats;
    const r = result.rates;
    report.result(
      'stopped',
      { ...s, seconds: Math.round(r.seconds * 1000) / 1000 },
      `proxy stopped: ${s.accepted} connection(s), ${s.refused} refused, ${s.idleClosed} idle-closed, from clients ${formatBytes(s.bytesIn)}, to clients ${formatBytes(s.bytesOut)}\n${statsText(s, r)} (average over ${r.seconds.toFixed(1)} s)`,
    );
    return 0;
  },
};

export default command;

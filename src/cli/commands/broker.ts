/** `socketkit broker [ADDR]`: relays what each client sends to all the others (ncat --broker, --chat). */
import type { Command } from '../command.js';
import { parseEndpoint } from '../../net/endpoint.js';
import { DEFAULT_GRACE_MS, DEFAULT_LISTEN_HOST, DEFAULT_PORT } from '../../core/defaults.js';
import { SocketkitError } from '../../core/errors.js';
import { DEFAULT_MAX_FRAME_SIZE } from '../../codec/constants.js';
import { createReporter, formatBytes } from '../report.js';
import { flag, parseCount, parseDurationMs, parseSize, str } from '../values.js';
import { serve, type ServerEvent } from '../../server/index.js';
import { DEFAULT_BROKER_MAX_QUEUE, DEFAULT_CHAT_MAX_LINE, startBroker, type Broker, type BrokerMode, type ChatEvent } from '../../broker/index.js';
import { connectRedisBridge, DEFAULT_REDIS_CHANNEL } from '../../broker/redis.js';
import { SERVER_SECURITY_OPTIONS, serverSecurity } from '../security-options.js';
import { acceptErrorLine, serverStatsText as statsText, statsLine } from '../server-report.js';
import { neutralise } from '../../core/terminal-text.js';

function describe(e: ServerEvent): string {
  switch (e.event) {
    case 'connect':
      return `+ ${e.peer} connected (#${e.id}, ${e.active} active)`;
    case 'disconnect':
      return `- ${e.peer} closed (#${e.id}, in ${formatBytes(e.bytesIn)}, out ${formatBytes(e.bytesOut)}, ${e.ms} ms${e.error ? `, ${e.error}` : ''})`;
    case 'refused':
      return `! ${e.peer} refused: ${e.reason}`;
    case 'idle':
      return `~ ${e.peer} closed: idle for ${(e.idleMs / 1000).toFixed(1)} s`;
  }
}

function describeChat(e: ChatEvent): string {
  switch (e.event) {
    case 'chat-join':
      return `  ${neutralise(e.name)} joined ${neutralise(e.room)}`;
    case 'chat-leave':
      return `  ${neutralise(e.name)} left ${neutralise(e.room)}`;
    case 'chat-nick':
      return `  ${neutralise(e.from)} is now ${neutralise(e.to)}`;
  }
}

const command: Command = {
  name: 'broker',
  summary: 'Relay what each client sends to every other client (ncat --broker); --chat for a line chat with names and rooms.',
  args: '[ADDR]',
  description:
    'ADDR is PORT, HOST:PORT, [IPV6]:PORT or unix:PATH (default 127.0.0.1:9800). Nothing goes back to its sender. ' +
    'Each client has a bounded outgoing queue (--max-queue): a client that does not read is closed (ERR_SLOW_CONSUMER) ' +
    'or, with --slow drop, misses what does not fit; the others never wait for it. A client that half-closes is served ' +
    'what is queued for it and closed. --redis joins every broker started with the same URL and --channel.',
  options: {
    chat: { type: 'boolean', help: 'line chat: names (user1, user2, ...), /nick NAME, /who, /join ROOM, /quit, /help' },
    framed: { type: 'boolean', help: 'relay whole length-prefixed messages (4-byte big-endian length, then the payload)' },
    'max-message': { type: 'string', value: 'SIZE', help: 'with --framed: the largest message relayed', default: '16MiB' },
    'max-line': { type: 'string', value: 'SIZE', help: 'with --chat: the longest line relayed; longer ones are cut with a notice', default: String(DEFAULT_CHAT_MAX_LINE) },
    'max-queue': { type: 'string', value: 'SIZE', help: 'bytes a client may have waiting for it', default: '1MiB' },
    slow: { type: 'string', value: 'disconnect|drop', help: 'a client whose queue is full: close it (ERR_SLOW_CONSUMER) or drop what does not fit', default: 'disconnect' },
    redis: { type: 'string', value: 'URL', help: 'join every broker on this Redis server (redis://HOST:PORT) through pub/sub' },
    channel: { type: 'string', value: 'NAME', help: 'with --redis: the Redis channel the brokers share', default: DEFAULT_REDIS_CHANNEL },
    grace: { type: 'string', value: 'SECONDS', help: 'on SIGINT/SIGTERM, let live connections finish this long', default: String(DEFAULT_GRACE_MS / 1000) },
    'max-conns': { type: 'string', value: 'N', help: 'serve at most N connections at once; more are refused: closed, counted, logged' },
    'idle-timeout': { type: 'string', value: 'SECONDS', help: 'close connections with no byte in or out for this long' },
    stats: { type: 'string', value: 'SECONDS', help: 'print statistics this often (they are always printed at exit)' },
    ...SERVER_SECURITY_OPTIONS,
  },
  positionals: { min: 0, max: 1 },
  examples: [
    'socketkit broker 9800',
    'socketkit broker 9800 --chat          # then: nc 127.0.0.1 9800, from several terminals',
    'socketkit broker 9800 --framed --max-queue 4MiB --slow drop',
    'socketkit broker [::]:9800 --chat --redis redis://10.0.0.5:6379 --tls --cert c.pem --key k.pem',
  ],
  async run({ values, given, positionals, io, global }) {
    const ep = parseEndpoint(positionals[0] ?? String(DEFAULT_PORT), { defaultHost: DEFAULT_LISTEN_HOST, allowPortZero: true });
    const chat = flag(values, 'chat');
    const framed = flag(values, 'framed');
    if (chat && framed) throw new SocketkitError('ERR_USAGE', 'choose one: --chat (lines) or --framed (messages)');
    if (!framed && given?.has('max-message')) throw new SocketkitError('ERR_USAGE', '--max-message applies to --framed only');
    if (!chat && given?.has('max-line')) throw new SocketkitError('ERR_USAGE', '--max-line applies to --chat only');
    if (str(values, 'redis') === undefined && given?.has('channel')) throw new SocketkitError('ERR_USAGE', '--channel applies to --redis only');
    const mode: BrokerMode = chat ? 'chat' : framed ? 'framed' : 'bytes';
    const slow = str(values, 'slow') ?? 'disconnect';
    if (slow !== 'disconnect' && slow !== 'drop') throw new SocketkitError('ERR_USAGE', `--slow: '${slow}' is not disconnect or drop`);
    const maxMessageSize = parseSize('max-message', str(values, 'max-message') ?? String(DEFAULT_MAX_FRAME_SIZE));
    const maxLine = parseCount('max-line', String(parseSize('max-line', str(values, 'max-line') ?? String(DEFAULT_CHAT_MAX_LINE))));
    const maxQueue = parseCount('max-queue', String(parseSize('max-queue', str(values, 'max-queue') ?? String(DEFAULT_BROKER_MAX_QUEUE))));
    const graceMs = parseDurationMs('grace', str(values, 'grace') ?? String(DEFAULT_GRACE_MS / 1000));
    const maxText = str(values, 'max-conns');
    const maxConnections = maxText !== undefined ? parseCount('max-conns', maxText) : undefined;
    const idleText = str(values, 'idle-timeout');
    const idleTimeoutMs = idleText !== undefined ? parseDurationMs('idle-timeout', idleText) : undefined;
    const statsSpec = str(values, 'stats');
    const statsIntervalMs = statsSpec !== undefined ? Math.max(100, parseDurationMs('stats', statsSpec)) : undefined;
    const redisUrl = str(values, 'redis');
    const report = createReporter(io, global);
    const sec = await serverSecurity(values, report);
    const onEvent = global.quiet
      ? undefined
      : (e: ServerEvent): void => {
          const { event, ...fields } = e;
          report.event(event, fields, describe(e));
        };
    const joined = redisUrl
      ? await connectRedisBridge(redisUrl, {
          channel: str(values, 'channel') ?? DEFAULT_REDIS_CHANNEL,
          signal: io.shutdown,
          onStatus: (s) => report.event('redis', { ...s }, s.up ? `redis: connected to ${s.where}` : `! redis: ${s.message}; serving this instance's clients, reconnecting (${s.code})`),
        })
      : undefined;
    let broker: Broker | undefined;
    const result = await serve({
      endpoint: ep,
      workers: 1,
      graceMs,
      shutdown: io.shutdown,
      ...(maxConnections !== undefined ? { maxConnections } : {}),
      ...(statsIntervalMs !== undefined ? { statsIntervalMs } : {}),
      start: async (one) => {
        broker = await startBroker(ep, {
          mode,
          maxMessageSize,
          maxQueue,
          maxLine,
          slow,
          ...(joined ? { bridge: joined.bridge, ...(mode === 'chat' ? { directory: joined.directory } : {}) } : {}),
          clearStaleUnixSocket: one.clearStaleUnixSocket,
          ...(one.maxConnections !== undefined ? { maxConnections: one.maxConnections } : {}),
          ...(idleTimeoutMs !== undefined && idleTimeoutMs > 0 ? { idleTimeoutMs } : {}),
          ...(onEvent ? { onEvent } : {}),
          ...(onEvent && mode === 'chat'
            ? {
                onChatEvent: (e: ChatEvent) => {
                  const { event, ...fields } = e;
                  report.event(event, fields, describeChat(e));
                },
              }
            : {}),
          onAcceptError: (e) => acceptErrorLine(report, io, global, e),
          ...sec.listen,
        });
        return broker.server;
      },
      onListening: (where) =>
        report.event(
          'listening',
          { address: where, mode, maxQueue, slow, redis: redisUrl ?? null },
          `${mode === 'chat' ? 'chat' : mode === 'framed' ? 'framed broker' : 'broker'} listening on ${where}${redisUrl ? `, joined through ${redisUrl}` : ''}`,
        ),
      onStats: (st, r) => statsLine(report, io, global, st, r),
      onStopping: (open, ms) => report.log(`stopping: ${open} connection(s) open, waiting up to ${ms / 1000} s`),
    });
    await joined?.bridge.close();
    if (result.role === 'worker') return 0;
    const s = result.stats;
    const r = result.rates;
    const relay = broker?.relay ?? { delivered: 0, dropped: 0, droppedBytes: 0, slowDisconnects: 0 };
    const n = (x: number): string => x.toLocaleString('en-US');
    report.result(
      'stopped',
      { ...s, ...relay, active: s.connections, seconds: Math.round(r.seconds * 1000) / 1000 },
      `broker stopped: ${n(s.accepted)} connection(s), ${n(s.refused)} refused, ${n(s.roundTrips)} message(s) in, ${n(relay.delivered)} delivered, ` +
        `${n(relay.dropped)} dropped, ${n(relay.slowDisconnects)} slow consumer(s) closed\n${statsText(s, r)} (average over ${r.seconds.toFixed(1)} s)`,
    );
    return 0;
  },
};

export default command;

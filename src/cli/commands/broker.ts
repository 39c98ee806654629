/** `socketkit broker [ADDR]`: relays what each client sends to all the others (ncat --broker, --chat). */
import { defineCommand } from '../command.js';
import { parseEndpoint } from '../../net/endpoint.js';
import { DEFAULT_GRACE_MS, DEFAULT_LISTEN_HOST, DEFAULT_PORT } from '../../core/defaults.js';
import { SocketkitError } from '../../core/errors.js';
import { DEFAULT_MAX_FRAME_SIZE } from '../../codec/constants.js';
import { createReporter } from '../report.js';
import { formatCount } from '../format.js';
import { count, custom, duration, size, text, toggle } from '../options.js';
import { serve, type ServerEvent } from '../../server/index.js';
import {
  DEFAULT_BROKER_HOLD_MS,
  DEFAULT_BROKER_MAX_QUEUE,
  DEFAULT_CHAT_MAX_LINE,
  DEFAULT_SLOW_CONSUMER_POLICY,
  startBroker,
  type Broker,
  type BrokerMode,
  type ChatEvent,
  type SlowConsumerPolicy,
} from '../../broker/index.js';
import { connectRedisBridge, DEFAULT_REDIS_CHANNEL } from '../../broker/redis.js';
import { SERVER_SECURITY_OPTIONS, serverSecurity } from '../security-options.js';
import { acceptErrorLine, averagedOver, managedServerValues, serverEventText, serverStatsText as statsText, statsLine, stoppingText } from '../server-report.js';
import { neutralise } from '../../core/terminal-text.js';

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

/** --slow: what to do with a client whose queue is full. */
function parseSlow(option: string, text: string): SlowConsumerPolicy {
  if (text !== 'disconnect' && text !== 'drop') throw new SocketkitError('ERR_USAGE', `--${option}: '${text}' is not disconnect or drop`);
  return text;
}

export default defineCommand({
  name: 'broker',
  summary: 'Relay what each client sends to every other client (ncat --broker); --chat for a line chat with names and rooms.',
  args: '[ADDR]',
  description:
    'ADDR is PORT, HOST:PORT, [IPV6]:PORT or unix:PATH (default 127.0.0.1:9800). Nothing goes back to its sender. ' +
    'Each client has a bounded outgoing queue (--max-queue). A client past half its queue holds the senders back until it ' +
    'catches up, for --hold at most; then it no longer holds them, and when its queue is full it is closed (ERR_SLOW_CONSUMER) ' +
    'or, with --slow drop, misses what does not fit. A client that half-closes is served ' +
    'what is queued for it and closed. --redis joins every broker started with the same URL and --channel.',
  options: {
    chat: toggle('line chat: names (user1, user2, ...), /nick NAME, /who, /join ROOM, /quit, /help'),
    framed: toggle('relay whole length-prefixed messages (4-byte big-endian length, then the payload)'),
    'max-message': size('with --framed: the largest message relayed', { value: 'SIZE', default: DEFAULT_MAX_FRAME_SIZE, min: 1, needs: 'framed' }),
    'max-line': size('with --chat: the longest line relayed; longer ones are cut with a notice', { value: 'SIZE', default: DEFAULT_CHAT_MAX_LINE, min: 1, needs: 'chat' }),
    'max-queue': size('bytes a client may have waiting for it', { value: 'SIZE', default: DEFAULT_BROKER_MAX_QUEUE, min: 1 }),
    slow: custom('a client whose queue is full: close it (ERR_SLOW_CONSUMER) or drop what does not fit', parseSlow, { value: 'disconnect|drop', default: DEFAULT_SLOW_CONSUMER_POLICY }),
    hold: duration('a client past half its queue holds the senders back this long at most while it catches up (0: never)', { default: DEFAULT_BROKER_HOLD_MS }),
    redis: text('join every broker on this Redis server (redis://HOST:PORT) through pub/sub', { value: 'URL' }),
    channel: text('with --redis: the Redis channel the brokers share', { value: 'NAME', default: DEFAULT_REDIS_CHANNEL, needs: 'redis' }),
    grace: duration('on SIGINT/SIGTERM, let live connections finish this long', { default: DEFAULT_GRACE_MS }),
    'max-conns': count('serve at most N connections at once; more are refused: closed, counted, logged'),
    'idle-timeout': duration('close connections with no byte in or out for this long'),
    stats: duration('print statistics this often (they are always printed at exit)'),
    ...SERVER_SECURITY_OPTIONS,
  },
  positionals: { min: 0, max: 1 },
  examples: [
    'socketkit broker 9800',
    'socketkit broker 9800 --chat          # then: nc 127.0.0.1 9800, from several terminals',
    'socketkit broker 9800 --framed --max-queue 4MiB --slow drop',
    'socketkit broker [::]:9800 --chat --redis redis://10.0.0.5:6379 --tls --cert c.pem --key k.pem',
  ],
  async run({ values, positionals, io, global }) {
    const ep = parseEndpoint(positionals[0] ?? String(DEFAULT_PORT), { defaultHost: DEFAULT_LISTEN_HOST, allowPortZero: true });
    const { chat, framed, slow } = values;
    if (chat && framed) throw new SocketkitError('ERR_USAGE', 'choose one: --chat (lines) or --framed (messages)');
    const mode: BrokerMode = chat ? 'chat' : framed ? 'framed' : 'bytes';
    const maxMessageSize = values['max-message'];
    const maxLine = values['max-line'];
    const maxQueue = values['max-queue'];
    const graceMs = values.grace;
    const { maxConnections, idleTimeoutMs, statsIntervalMs } = managedServerValues(values);
    const redisUrl = values.redis;
    const report = createReporter(io, global);
    const sec = await serverSecurity(values, report);
    const onEvent = global.quiet
      ? undefined
      : (e: ServerEvent): void => {
          const { event, ...fields } = e;
          report.event(event, fields, serverEventText(e));
        };
    const joined = redisUrl
      ? await connectRedisBridge(redisUrl, {
          channel: values.channel,
          signal: io.shutdown,
          onStatus: (s) =>
            report.event(
              'redis',
              { ...s },
              s.up
                ? `redis: connected to ${s.where}${s.message !== undefined ? `; ${s.message}, and what was published meanwhile did not reach this instance` : ''}`
                : `! redis: ${s.message}; serving this instance's clients, reconnecting (${s.code})`,
            ),
          onLoss: (l) =>
            report.event(
              'redis-loss',
              { ...l },
              [
                l.notPublished > 0 ? `${formatCount(l.notPublished)} message(s) of this instance's clients not published (Redis away or not keeping up)` : '',
                l.lost > 0 ? `${formatCount(l.lost)} message(s) of other instances did not arrive (pub/sub delivers at most once)` : '',
              ]
                .filter(Boolean)
                .map((x) => `! redis: ${x}`)
                .join('\n'),
            ),
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
          holdMs: values.hold,
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
      onStopping: (open, ms) => report.log(stoppingText(open, ms)),
    });
    await joined?.bridge.close();
    if (result.role === 'worker') return 0;
    const s = result.stats;
    const r = result.rates;
    const relay = broker?.relay ?? { delivered: 0, dropped: 0, droppedBytes: 0, slowDisconnects: 0, held: 0, released: 0 };
    const n = formatCount;
    report.result(
      'stopped',
      {
        ...s,
        ...relay,
        ...(joined ? { redisPublished: joined.bridge.published, redisNotPublished: joined.bridge.dropped, redisReceived: joined.bridge.received, redisLost: joined.bridge.lost } : {}),
        active: s.connections,
        seconds: Math.round(r.seconds * 1000) / 1000,
      },
      `broker stopped: ${n(s.accepted)} connection(s), ${n(s.refused)} refused, ${n(s.roundTrips)} message(s) in, ${n(relay.delivered)} delivered, ` +
        `${n(relay.dropped)} dropped, ${n(relay.slowDisconnects)} slow consumer(s) closed, senders held back ${n(relay.held)} time(s)` +
        (joined
          ? `\nredis: ${n(joined.bridge.published)} published, ${n(joined.bridge.dropped)} not published, ${n(joined.bridge.received)} received from other instances, ${n(joined.bridge.lost)} of theirs lost`
          : '') +
        `\n${statsText(s, r)} ${averagedOver(r)}`,
    );
    return 0;
  },
});

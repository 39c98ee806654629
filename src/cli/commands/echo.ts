/** `socketkit echo ADDR [MESSAGE]`: send, half-close, verify the echo, print it. */
import { fstatSync } from 'node:fs';
import { defineCommand, type CommandIO } from '../command.js';
import { SocketkitError } from '../../core/errors.js';
import { parseEndpoint } from '../../net/endpoint.js';
import { DEFAULT_CONNECT_HOST, DEFAULT_CONNECT_TIMEOUT_MS } from '../../core/defaults.js';
import { DEFAULT_MAX_FRAME_SIZE } from '../../codec/constants.js';
import { echoStream } from '../../echo/client.js';
import { writeWithBackpressure } from '../../net/write.js';
import { createReporter } from '../report.js';
import { formatBytes, formatCount, formatMs } from '../format.js';
import { count, duration, size, toggle } from '../options.js';
import { echoFramed } from '../../echo/framed.js';
import { MAX_UDP_RETRIES, runUdpEcho } from './udp-echo.js';
import { CLIENT_SECURITY_OPTIONS, clientSecurity } from '../security-options.js';

export default defineCommand({
  name: 'echo',
  summary: 'Send MESSAGE (or standard input) to an echo server, check every byte comes back, print the echo.',
  args: 'ADDR [MESSAGE]',
  description:
    'Without MESSAGE, standard input is sent (binary-safe, any size: `cat file | socketkit echo ADDR`). ' +
    'Exit 0 when the echo is identical, 1 on a mismatch, 2 on a connection error.',
  options: {
    timeout: duration('connect timeout, and how long to wait for an outstanding echo', { default: DEFAULT_CONNECT_TIMEOUT_MS }),
    framed: toggle('send whole length-prefixed messages: MESSAGE as one, or each line of stdin as one; print each reply on a line'),
    'max-message': size('with --framed: the largest message sent or accepted', { value: 'SIZE', default: DEFAULT_MAX_FRAME_SIZE, min: 1, needs: 'framed' }),
    udp: toggle('send MESSAGE (or stdin) as one UDP datagram and check the reply; a datagram over the UDP maximum is refused'),
    retries: count('with --udp: send the datagram again up to N times when no reply comes within --timeout', { default: 0, min: 0, max: MAX_UDP_RETRIES, needs: 'udp' }),
    ...CLIENT_SECURITY_OPTIONS,
  },
  positionals: { min: 1, max: 2 },
  examples: ['socketkit echo 9800 "Hola mundo"', 'cat photo.jpg | socketkit echo [::1]:9800 > copy.jpg', 'socketkit echo unix:/tmp/echo.sock hello --json'],
  async run(ctx) {
    const { values, positionals, io, global } = ctx;
    if (positionals[1] === undefined) refuseFolderInput(io);
    if (values.udp) return runUdpEcho(ctx);
    const ep = parseEndpoint(positionals[0]!, { defaultHost: DEFAULT_CONNECT_HOST });
    const timeoutMs = values.timeout;
    const report = createReporter(io, global);
    const message = positionals[1];
    const sec = await clientSecurity(values);
    if (values.framed) {
      const maxMessageSize = values['max-message'];
      const messages = message !== undefined ? [Buffer.from(message, 'utf8')] : lines(io.stdin as AsyncIterable<Buffer>, maxMessageSize);
      // -q silences messages, never the data: only --json (stdout is NDJSON then) keeps the echo off stdout.
      const print = !global.json;
      const r = await echoFramed(ep, messages, {
        signal: io.shutdown,
        timeoutMs,
        idleTimeoutMs: timeoutMs,
        maxMessageSize,
        ...sec.connect,
        ...(print ? { onReply: async (m: Uint8Array) => writeWithBackpressure(io.stdout, Buffer.concat([m, NEWLINE])) } : {}),
      });
      const fields = { match: true, messages: r.messages, bytes: r.bytes, connectMs: round(r.connectMs), firstReplyMs: Number.isNaN(r.firstReplyMs) ? null : round(r.firstReplyMs), totalMs: round(r.totalMs) };
      if (global.json) report.result('echo', fields, '');
      else report.log(`${formatCount(r.messages)} message(s), ${formatBytes(r.bytes)}, echoed intact (connect ${formatMs(r.connectMs)}, first reply ${formatMs(r.firstReplyMs)}, total ${formatMs(r.totalMs)})`);
      return 0;
    }
    const input: AsyncIterable<Uint8Array> | Iterable<Uint8Array> =
      message !== undefined ? [Buffer.from(message, 'utf8')] : (io.stdin as AsyncIterable<Uint8Array>);
    const print = !global.json;
    const result = await echoStream(ep, input, {
      timeoutMs,
      idleTimeoutMs: timeoutMs,
      signal: io.shutdown,
      ...sec.connect,
      ...(print ? { onEcho: (chunk: Buffer) => writeWithBackpressure(io.stdout, chunk) } : {}),
    });
    if (print && message !== undefined && io.stdout.isTTY) io.stdout.write('\n');
    const fields = {
      match: true,
      bytesSent: result.bytesSent,
      bytesReceived: result.bytesReceived,
      connectMs: round(result.connectMs),
      firstByteMs: Number.isNaN(result.firstByteMs) ? null : round(result.firstByteMs),
      totalMs: round(result.totalMs),
    };
    if (global.json) report.result('echo', fields, '');
    else report.log(`echoed ${formatBytes(result.bytesSent)} intact (connect ${formatMs(result.connectMs)}, first byte ${formatMs(result.firstByteMs)}, total ${formatMs(result.totalMs)})`);
    return 0;
  },
});

const NEWLINE = Buffer.from('\n');

/**
 * `socketkit echo 9800 < some-folder`: reading a folder gives no bytes (Node's stdin ends at
 * once), which would be "echoed 0 B intact". Refused before connecting.
 */
function refuseFolderInput(io: CommandIO): void {
  if (io.stdin !== process.stdin) return;
  let folder = false;
  try {
    folder = fstatSync(0).isDirectory();
  } catch {
    return; // no standard input at all: reading it says so
  }
  if (folder) throw new SocketkitError('ERR_USAGE', 'standard input is a folder, not data to send (give a file, a pipe, or MESSAGE)');
}

/**
 * Splits a byte stream into lines (without their '\n'); a last line without one counts too.
 * A line longer than `max` bytes is refused (ERR_FRAME_TOO_LARGE) rather than buffered.
 */
async function* lines(input: AsyncIterable<Buffer>, max: number): AsyncGenerator<Uint8Array> {
  const parts: Buffer[] = [];
  let held = 0;
  for await (const chunk of input) {
    let buf = chunk;
    let nl: number;
    while ((nl = buf.indexOf(10)) >= 0) {
      if (held + nl > max) throw tooLong(max);
      parts.push(buf.subarray(0, nl));
      yield parts.length === 1 ? parts[0]! : Buffer.concat(parts);
      parts.length = 0;
      held = 0;
      buf = buf.subarray(nl + 1);
    }
    if (buf.length > 0) {
      held += buf.length;
      if (held > max) throw tooLong(max);
      parts.push(buf);
    }
  }
  if (held > 0) yield Buffer.concat(parts);
}

function tooLong(max: number): SocketkitError {
  return new SocketkitError('ERR_FRAME_TOO_LARGE', `a line of standard input is longer than --max-message (${max} bytes)`);
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

/** `socketkit echo ADDR [MESSAGE]`: send, half-close, verify the echo, print it. */
import type { Command } from '../command.js';
import { parseEndpoint } from '../../net/endpoint.js';
import { DEFAULT_CONNECT_HOST } from '../../core/defaults.js';
import { echoStream } from '../../echo/client.js';
import { writeWithBackpressure } from '../../net/write.js';
import { createReporter, formatBytes, formatMs } from '../report.js';
import { parseDurationMs, str } from '../values.js';

const command: Command = {
  name: 'echo',
  summary: 'Send MESSAGE (or standard input) to an echo server, check every byte comes back, print the echo.',
  args: 'ADDR [MESSAGE]',
  description:
    'Without MESSAGE, standard input is sent (binary-safe, any size: `cat file | socketkit echo ADDR`). ' +
    'Exit 0 when the echo is identical, 1 on a mismatch, 2 on a connection error.',
  options: {
    timeout: { type: 'string', value: 'SECONDS', help: 'connect timeout, and how long to wait for an outstanding echo', default: '10' },
  },
  positionals: { min: 1, max: 2 },
  examples: ['socketkit echo 9800 "Hola mundo"', 'cat photo.jpg | socketkit echo [::1]:9800 > copy.jpg', 'socketkit echo unix:/tmp/echo.sock hello --json'],
  async run({ values, positionals, io, global }) {
    const ep = parseEndpoint(positionals[0]!, { defaultHost: DEFAULT_CONNECT_HOST });
    const timeoutMs = parseDurationMs('timeout', str(values, 'timeout') ?? '10');
    const report = createReporter(io, global);
    const message = positionals[1];
    const input: AsyncIterable<Uint8Array> | Iterable<Uint8Array> =
      message !== undefined ? [Buffer.from(message, 'utf8')] : (io.stdin as AsyncIterable<Uint8Array>);
    const print = !global.json && !global.quiet;
    const result = await echoStream(ep, input, {
      timeoutMs,
      idleTimeoutMs: timeoutMs,
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
};

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

export default command;

/**
 * `socketkit connect ADDR`: nc's client. stdin goes to the server, the server's bytes to stdout,
 * unchanged; one line on stderr says how the connection ended and the bytes each way.
 */
import type { Readable } from 'node:stream';
import { defineCommand } from '../command.js';
import { DEFAULT_CONNECT_HOST, DEFAULT_CONNECT_TIMEOUT_MS } from '../../core/defaults.js';
import { SocketkitError } from '../../core/errors.js';
import { connect } from '../../net/connect.js';
import { formatEndpoint, parseEndpoint } from '../../net/endpoint.js';
import { RelayError, type RelayResult } from '../../relay/relay.js';
import { socketFd } from '../../net/socket-state.js';
import { CLIENT_SECURITY_OPTIONS, clientSecurity } from '../security-options.js';
import { duration, toggle } from '../options.js';
import { runUdpConnect, UDP_CLIENT_OPTIONS } from './udp-relay.js';
import { endingText, relayReporter, RELAY_OPTIONS, execSpec, runExecRelay, endingFields, relayDump, relayStdio, spliceRefusal, type RelayEngine } from './relay-shared.js';

export default defineCommand({
  name: 'connect',
  summary: 'Talk to any TCP, TLS or Unix server: stdin to it, its bytes to stdout (nc).',
  args: 'ADDR',
  description:
    'ADDR is PORT, HOST:PORT, [IPV6]:PORT or unix:PATH. When stdin ends the connection is half-closed and the server\'s bytes are read until it closes; ' +
    'on a terminal input goes a line at a time, Ctrl-D half-closes, Ctrl-C leaves. Exit 0 on a clean close; a refused, reset or timed-out connection ' +
    'exits 2 with its code. Reports (the ending line, --json events) go to stderr: stdout is the data.',
  options: {
    timeout: duration('connect timeout; with --udp, how long to wait for replies after the last datagram (default there 1)', { default: DEFAULT_CONNECT_TIMEOUT_MS }),
    ...RELAY_OPTIONS,
    ...UDP_CLIENT_OPTIONS,
    label: toggle('with --udp: prefix each reply with [SENDER] (broadcast and multicast answers come from many)', { needs: 'udp' }),
    ...CLIENT_SECURITY_OPTIONS,
  },
  positionals: { min: 1, max: 1 },
  examples: [
    "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | socketkit connect example.com:80",
    'socketkit connect [::1]:9800 < file.bin > reply.bin',
    'socketkit connect unix:/tmp/app.sock',
    'socketkit connect example.com:443 --tls',
    'socketkit connect 127.0.0.1:9800 --exec "/bin/cat"',
    'socketkit connect 127.0.0.1:5353 --udp --timeout 2',
    "printf 'PING\\r\\n' | socketkit connect 127.0.0.1:6379 --dump hex",
  ],
  async run(ctx) {
    const { values, positionals, io, global } = ctx;
    if (values.udp) return runUdpConnect(ctx);
    const ep = parseEndpoint(positionals[0]!, { defaultHost: DEFAULT_CONNECT_HOST });
    const timeoutMs = values.timeout;
    const idleTimeoutMs = values['idle-timeout'] ?? 0;
    const halfClose = !values['no-half-close'];
    const exec = execSpec(values);
    const sec = await clientSecurity(values);
    const report = relayReporter(io, global);
    const dump = relayDump(values.dump, io)?.hooks(1);
    const peer = formatEndpoint(ep);
    const socket = await connect(ep, { signal: io.shutdown, timeoutMs }, sec.connect.transport);
    report.event('connected', { peer, tls: sec.mode !== 'plain' }, undefined);
    if (exec) return runExecRelay(socket, exec, { peer, halfClose, idleTimeoutMs, signal: io.shutdown, report, direction: 'to', dump });
    const engine: RelayEngine = socketFd(socket) !== undefined && spliceRefusal(io, { halfClose, idleTimeoutMs, needsJs: dump !== undefined }) === undefined ? 'splice' : 'js';
    let r: RelayResult;
    try {
      r = await relayStdio(socket, engine, {
        input: io.stdin as Readable,
        output: io.stdout,
        halfClose,
        // At a terminal the server's close ends the session (no Ctrl-D needed to leave).
        stopOnPeerEnd: !halfClose || io.stdin.isTTY === true,
        idleTimeoutMs,
        signal: io.shutdown,
        peer,
        ...dump,
      });
    } catch (err) {
      if (err instanceof RelayError) {
        report.event('closed', { peer, ...endingFields(err.result), engine, code: err.code }, undefined);
        throw new SocketkitError(err.code, `${err.message}, ${endingText(err.result)}`, { cause: err });
      }
      throw err;
    }
    report.event('closed', { peer, ...endingFields(r), engine }, `connection to ${peer} closed: ${endingText(r)}`);
    return 0;
  },
});

/**
 * `socketkit listen [ADDR]`: nc -l. Prints what a client sends to stdout, sends stdin to it; with
 * -k any number of clients, one after another or at once. On the managed server, so limits,
 * idle timeout, allow/deny lists and TLS work as in echo-server.
 */
import { EventEmitter, once } from 'node:events';
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { defineCommand } from '../command.js';
import { DEFAULT_LISTEN_HOST, DEFAULT_PORT } from '../../core/defaults.js';
import { SocketkitError, toSocketkitError } from '../../core/errors.js';
import { neutralise } from '../../core/terminal-text.js';
import { formatEndpoint, parseEndpoint } from '../../net/endpoint.js';
import { peerOf, startServer, type ServerEvent } from '../../server/server.js';
import { Fanout } from '../../relay/fanout.js';
import { LabelledLines } from '../../relay/labels.js';
import { RelayError } from '../../relay/relay.js';
import { SERVER_SECURITY_OPTIONS, serverSecurity } from '../security-options.js';
import { acceptErrorLine } from '../server-report.js';
import { count, text, toggle } from '../options.js';
import { parseExecLine } from '../../relay/exec.js';
import { endingFields, endingText, execSpec, relayDump, relayReporter, RELAY_OPTIONS, relayStdio, runExecRelay, spliceRefusal, type RelayEngine } from './relay-shared.js';
import { socketFd } from '../../net/socket-state.js';
import { runUdpListen, UDP_LISTEN_OPTIONS } from './udp-relay.js';

export default defineCommand({
  name: 'listen',
  summary: 'Accept a client and relay it (nc -l): what it sends to stdout, stdin to it; -k for many.',
  args: '[ADDR]',
  description:
    'ADDR is PORT, HOST:PORT, [IPV6]:PORT or unix:PATH (default 127.0.0.1:9800). Without -k, serves the first client and exits with its ending (others are refused meanwhile). ' +
    "With -k, any number: stdin goes to every client connected, each client's bytes to stdout (--label prefixes each line with the client). Reports go to stderr: stdout is the data.",
  options: {
    once: toggle('serve one client, then exit (the default without -k)'),
    'keep-open': toggle('serve any number of clients, one after another or at once, until SIGINT/SIGTERM', { short: 'k' }),
    label: toggle("prefix each line of a client's bytes (or of its --each program's output) on stdout with [CLIENT] (several clients at once stay apart)"),
    each: text(
      "run CMD (through /bin/sh -c) for each client, the client's bytes as its stdin and its stdout on ours (stdin still goes to the clients); SOCKETKIT_PEER and SOCKETKIT_CLIENT (1, 2, ...) name the client",
      { value: 'CMD' },
    ),
    'max-conns': count('with -k: serve at most N clients at once; more are refused', { needs: 'keep-open' }),
    ...RELAY_OPTIONS,
    ...UDP_LISTEN_OPTIONS,
    ...SERVER_SECURITY_OPTIONS,
  },
  positionals: { min: 0, max: 1 },
  examples: [
    'socketkit listen 9800 > upload.bin',
    'socketkit listen [::1]:9800 < reply.txt',
    'socketkit listen -k --label 0.0.0.0:9800 --allow 10.0.0.0/8',
    'socketkit listen -k 9800 --exec "/bin/cat"',
    "socketkit listen -k 9800 --label --each 'sha256sum'",
    "socketkit listen -k 9800 --each 'cat > upload-$SOCKETKIT_CLIENT.bin'",
    'socketkit listen 9800 --tls --cert cert.pem --key key.pem',
    'socketkit listen --udp 9800 --label',
  ],
  async run(ctx) {
    const { values, positionals, io, global } = ctx;
    if (values.udp) return runUdpListen(ctx);
    const keepOpen = values['keep-open'];
    if (keepOpen && values.once) throw new SocketkitError('ERR_USAGE', 'choose one: --once or -k/--keep-open');
    const ep = parseEndpoint(positionals[0] ?? String(DEFAULT_PORT), { defaultHost: DEFAULT_LISTEN_HOST, allowPortZero: true });
    const maxConnections = keepOpen ? values['max-conns'] : 1;
    const idleTimeoutMs = values['idle-timeout'] ?? 0;
    const halfClose = !values['no-half-close'];
    const label = values.label;
    const exec = execSpec(values);
    if (values.each !== undefined && exec) throw new SocketkitError('ERR_USAGE', 'choose one: --each (the program\'s output is printed) or --exec/--sh-exec (it goes to the client)');
    if (values.each?.trim() === '') throw new SocketkitError('ERR_USAGE', '--each: the command is empty');
    const each = values.each !== undefined ? parseExecLine(values.each, true) : undefined;
    const report = relayReporter(io, global);
    const sec = await serverSecurity(values, report);
    const stdin = io.stdin as Readable;
    const dump = relayDump(values.dump, io);
    // One plain client between stdin and stdout: the kernel can move the bytes (splice-relay.ts).
    // Then stdin is never touched by Node (a fan-out would start reading it).
    const spliceable =
      sec.mode === 'plain' &&
      spliceRefusal(io, { halfClose, idleTimeoutMs, needsJs: keepOpen || label || dump !== undefined || exec !== undefined || each !== undefined }) === undefined;
    const fanout = exec || spliceable ? undefined : new Fanout(stdin, { halfClose, ...(dump ? { hold: dump.hold } : {}) });
    let splicing = false;
    const interactive = io.stdin.isTTY === true;
    const finished = new EventEmitter<{ done: [status: number, error: SocketkitError | undefined] }>();
    let nextId = 1;

    const serveOne = async (socket: Socket): Promise<number> => {
      const id = nextId++;
      const peer = peerOf(socket, ep, id);
      report.event('connect', { id, peer }, `+ ${peer} connected`);
      const hooks = dump?.hooks(id);
      const engine: RelayEngine = spliceable && socketFd(socket) !== undefined ? 'splice' : 'js';
      splicing = true;
      if (exec) return runExecRelay(socket, exec, { peer, halfClose, idleTimeoutMs, signal: io.shutdown, report, direction: 'from', dump: hooks });
      const output = label ? new LabelledLines(io.stdout, `[${neutralise(peer)}] `) : io.stdout;
      fanout?.add(socket, hooks?.onSent);
      if (each) {
        try {
          return await runExecRelay(socket, each, {
            peer,
            halfClose,
            idleTimeoutMs,
            signal: io.shutdown,
            report,
            direction: 'from',
            dump: hooks,
            programOutput: output,
            env: { SOCKETKIT_PEER: peer, SOCKETKIT_CLIENT: String(id) },
          });
        } finally {
          fanout!.remove(socket);
          if (label && !output.writableEnded) output.end();
        }
      }
      try {
        const r = await relayStdio(socket, engine, {
          output,
          halfClose,
          stopOnPeerEnd: !halfClose || interactive,
          idleTimeoutMs,
          signal: io.shutdown,
          peer,
          ...(hooks ? { onReceived: hooks.onReceived, hold: hooks.hold } : {}),
          // A labelled client's last line without a newline is printed when it ends.
          ...(label ? { onPeerEnd: () => output.end() } : {}),
        });
        const sent = engine === 'splice' ? r : { ...r, bytesSent: socket.bytesWritten };
        report.event('closed', { id, peer, ...endingFields(sent), engine }, `- connection from ${peer} closed: ${endingText(sent)}`);
        return 0;
      } catch (err) {
        if (err instanceof RelayError) {
          const r = engine === 'splice' ? err.result : { ...err.result, bytesSent: socket.bytesWritten };
          report.event('closed', { id, peer, ...endingFields(r), engine, code: err.code }, undefined);
          throw new SocketkitError(err.code, `${err.message}, ${endingText(r)}`, { cause: err });
        }
        throw err;
      } finally {
        fanout?.remove(socket);
        // A client that failed mid-line: its last partial line is still printed, labelled.
        if (label && !output.writableEnded) output.end();
      }
    };

    const onEvent = (e: ServerEvent): void => {
      if (e.event === 'refused') report.event('refused', { peer: e.peer, reason: e.reason }, `! ${e.peer} refused: ${e.reason}`);
      else if (e.event === 'idle') report.event('idle', { peer: e.peer, idleMs: e.idleMs }, `~ ${e.peer} closed: idle for ${(e.idleMs / 1000).toFixed(1)} s`);
    };
    const server = await startServer(ep, {
      protocol: () => (socket) => {
        if (spliceable && splicing) {
          // A spliced client's socket is no longer Node's, so the server counts it gone: one client still means one.
          report.event('refused', { peer: peerOf(socket, ep, 0), reason: 'one client is being served (-k serves more)' }, `! ${peerOf(socket, ep, 0)} refused: one client is being served (-k serves more)`);
          socket.destroy();
          return;
        }
        serveOne(socket).then(
          (status) => finished.emit('done', status, undefined),
          (err: unknown) => {
            const e = toSocketkitError(err);
            // With -k one client's failure is its own line; the server goes on.
            if (keepOpen) report.event('client-error', { code: e.code, message: e.message }, `! ${e.message} (${e.code})`);
            finished.emit('done', e.exitCode, e);
          },
        );
      },
      ...(maxConnections !== undefined ? { maxConnections } : {}),
      onEvent,
      onAcceptError: (e) => acceptErrorLine(report, io, global, e),
      ...sec.listen,
    });
    const where = formatEndpoint(server.endpoint);
    report.event('listening', { address: where, keepOpen }, `listening on ${where}${keepOpen ? ' (-k: any number of clients)' : ' (one client)'}`);
    try {
      if (!keepOpen) {
        const [status, error] = (await once(finished, 'done', { signal: io.shutdown })) as [number, SocketkitError | undefined];
        if (error) throw error;
        return status;
      }
      await once(io.shutdown, 'abort');
      return 0;
    } catch (err) {
      if ((err as { name?: string }).name === 'AbortError') throw new SocketkitError('ERR_ABORTED', `listen on ${where} stopped`);
      throw err;
    } finally {
      await server.close(0);
    }
  },
});

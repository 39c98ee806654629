/**
 * What `connect` and `listen` share: the relay options, the ending line, and --exec.
 *
 * Reports go to stderr, in text and in --json mode alike: stdout carries the peer's bytes.
 */
import type { Socket } from 'node:net';
import type { Writable } from 'node:stream';
import type { CommandIO, GlobalFlags, OptionSpec } from '../command.js';
import { SocketkitError } from '../../core/errors.js';
import { createReporter, type Reporter } from '../report.js';
import { custom, duration, text, toggle } from '../options.js';
import { parseExecLine, relayExec, type ExecSpec, type ExecStatus } from '../../relay/exec.js';
import { relay, type RelayOptions, type RelayResult } from '../../relay/relay.js';
import { spliceRelay, spliceUnavailable } from '../../relay/splice-relay.js';
import { StreamDump, type DumpFormat } from '../../proxy/dump.js';
import type { Hold } from '../../relay/pump.js';

/** `--dump text|hex`: the proxy's renderer, the same two forms. */
export function parseDumpFormat(option: string, given: string): DumpFormat {
  if (given === 'text' || given === 'hex') return given;
  throw new SocketkitError('ERR_USAGE', `--${option}: '${given}' is not text or hex`);
}

/** Options of both commands. */
export const RELAY_OPTIONS = {
  'no-half-close': toggle('when stdin ends, send nothing (no FIN): for servers that take a half-close as the end; the connection ends when the peer closes'),
  'idle-timeout': duration('close with ERR_TIMEOUT after this long without a byte either way'),
  exec: text('run CMD (split on blanks) with the connection as its stdin and stdout', { value: 'CMD' }),
  'sh-exec': text('as --exec, through /bin/sh -c CMD', { value: 'CMD' }),
  dump: custom(
    'show every chunk on stderr as it is sent (>) or received (<): time, connection, offset, length, then the bytes as text with escapes or hex rows (as proxy --dump); stdout keeps only the data',
    parseDumpFormat,
    { value: 'text|hex' },
  ),
} as const satisfies Readonly<Record<string, OptionSpec>>;

/** relay()'s hooks that show one connection's chunks in the dump. */
export interface DumpHooks {
  readonly onSent: (chunk: Buffer) => void;
  readonly onReceived: (chunk: Buffer) => void;
  readonly hold: Hold;
}

/**
 * `--dump`: the proxy's renderer (src/proxy/dump.ts) on stderr, so stdout keeps only the data.
 * `>` is what we send to the peer, `<` what it sends us; offsets count each direction's bytes.
 * Every byte of the peer's passes the renderer's escapes and `neutralise()` before the terminal.
 */
export class RelayDump {
  readonly #sink: StreamDump;

  constructor(out: Writable, format: DumpFormat) {
    this.#sink = new StreamDump(out, format);
  }

  /** The dump's output, which the relay waits for while it is full. */
  get hold(): Hold {
    return this.#sink;
  }

  /** The hooks for connection number `connection` (1 for connect; the client's number in listen). */
  hooks(connection: number): DumpHooks {
    let sent = 0;
    let received = 0;
    const sink = this.#sink;
    return {
      onSent: (chunk) => {
        sink.chunk(connection, '>', sent, chunk);
        sent += chunk.length;
      },
      onReceived: (chunk) => {
        sink.chunk(connection, '<', received, chunk);
        received += chunk.length;
      },
      hold: sink,
    };
  }
}

/** The dump `--dump` asks for, on stderr, or undefined. */
export function relayDump(format: DumpFormat | undefined, io: CommandIO): RelayDump | undefined {
  return format === undefined ? undefined : new RelayDump(io.stderr, format);
}

/** How a connection's bytes are moved: 'splice' (native/splice.c, the kernel) or 'js' (Node streams). */
export type RelayEngine = 'splice' | 'js';

/** What, besides the stdio fds, decides whether the splice pump may run. */
export interface SpliceWish {
  readonly halfClose: boolean;
  readonly idleTimeoutMs: number;
  /** --dump, --exec, --each, --label, -k, TLS: whatever needs the bytes in JS, or several peers. */
  readonly needsJs: boolean;
}

/**
 * Whether the relay can be spliced: the process's own stdin and stdout (not a test's streams),
 * neither a terminal, stdin a pipe or a file, stdout a pipe, a file or /dev/null, nothing that
 * needs the bytes in JS, the half-close on, no idle timeout, and the native helper built.
 * `SOCKETKIT_NATIVE=0` turns it off. Returns undefined when it can, else why not.
 */
export function spliceRefusal(io: CommandIO, wish: SpliceWish): string | undefined {
  if (wish.needsJs) return 'an option needs the bytes in JS';
  if (!wish.halfClose || wish.idleTimeoutMs > 0) return '--no-half-close and --idle-timeout run in JS';
  if (io.stdin !== process.stdin || io.stdout !== process.stdout) return 'not the process\'s own stdin and stdout';
  if (io.stdin.isTTY === true || io.stdout.isTTY === true) return 'a terminal';
  return spliceUnavailable(0, 1);
}

/** Relays one plain connection to stdin/stdout with the engine chosen (`splice` only when spliceRefusal said yes). */
export async function relayStdio(socket: Socket, engine: RelayEngine, options: RelayOptions): Promise<RelayResult> {
  if (engine === 'splice') return spliceRelay(socket, { inFd: 0, outFd: 1, peer: options.peer, ...(options.signal ? { signal: options.signal } : {}) });
  return relay(socket, options);
}

/** The reporter of connect and listen: everything on stderr (stdout is the data). */
export function relayReporter(io: CommandIO, global: GlobalFlags): Reporter {
  return createReporter({ ...io, stdout: io.stderr }, global);
}

/** `sent N bytes, received M bytes, the peer closed first` */
export function endingText(r: RelayResult): string {
  const first = r.firstEnd === 'peer' ? ', the peer closed first' : r.firstEnd === 'local' ? ', we closed first' : '';
  const dropped = r.bytesDiscarded > 0 ? `, ${r.bytesDiscarded} bytes discarded after the command stopped reading` : '';
  return `sent ${r.bytesSent} bytes, received ${r.bytesReceived} bytes${first}${dropped}`;
}

/** The ending as JSON fields. */
export function endingFields(r: RelayResult): Record<string, unknown> {
  return { bytesSent: r.bytesSent, bytesReceived: r.bytesReceived, bytesDiscarded: r.bytesDiscarded, firstEnd: r.firstEnd };
}

/** The --exec or --sh-exec program, if one was asked for (ERR_USAGE for both). */
export function execSpec(values: { readonly exec: string | undefined; readonly 'sh-exec': string | undefined }): ExecSpec | undefined {
  const exec = values.exec;
  const sh = values['sh-exec'];
  if (exec !== undefined && sh !== undefined) throw new SocketkitError('ERR_USAGE', 'choose one: --exec or --sh-exec');
  if (exec === undefined && sh === undefined) return undefined;
  if ((exec ?? sh)!.trim() === '') throw new SocketkitError('ERR_USAGE', `--${exec !== undefined ? 'exec' : 'sh-exec'}: the command is empty`);
  return parseExecLine((exec ?? sh)!, sh !== undefined);
}

/** `exited 0`, `killed by SIGTERM after the connection ended` */
export function statusText(s: ExecStatus): string {
  if (s.killed) return `killed (${s.signal ?? 'SIGTERM'}) after the connection ended`;
  return s.code !== null ? `exited ${s.code}` : `killed by ${s.signal ?? 'a signal'}`;
}

export interface ExecRunOptions {
  readonly peer: string;
  readonly dump?: DumpHooks | undefined;
  /** listen --each: the program's stdout goes here, not to the peer. */
  readonly programOutput?: Writable;
  readonly env?: Readonly<Record<string, string>>;
  readonly halfClose: boolean;
  readonly idleTimeoutMs: number;
  readonly signal: AbortSignal;
  readonly report: Reporter;
  /** "to" (connect) or "from" (listen), for the ending line. */
  readonly direction: 'to' | 'from';
}

/**
 * Relays one connection through --exec's program and reports how both ended. Returns the exit
 * status: the connection's failure, else the program's own non-zero status, else 0.
 */
export async function runExecRelay(socket: Socket, spec: ExecSpec, o: ExecRunOptions): Promise<number> {
  const r = await relayExec(socket, spec, { peer: o.peer, halfClose: o.halfClose, idleTimeoutMs: o.idleTimeoutMs, signal: o.signal, ...o.dump, ...(o.programOutput ? { programOutput: o.programOutput } : {}), ...(o.env ? { env: o.env } : {}) });
  const fields = { peer: o.peer, ...endingFields(r.relay), exitCode: r.status.code, signal: r.status.signal, killed: r.status.killed };
  const what = spec.shell ? `sh -c '${spec.command}'` : spec.command;
  if (r.error) {
    o.report.event('closed', { ...fields, code: r.error.code }, undefined);
    throw new SocketkitError(r.error.code, `${r.error.message}, ${endingText(r.relay)}; ${what} ${statusText(r.status)}`, { cause: r.error });
  }
  o.report.event('closed', fields, `connection ${o.direction} ${o.peer} closed: ${endingText(r.relay)}; ${what} ${statusText(r.status)}`);
  return !r.status.killed && r.status.code !== null && r.status.code !== 0 ? r.status.code : r.status.code === null && !r.status.killed ? 1 : 0;
}

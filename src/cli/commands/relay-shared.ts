/**
 * What `connect` and `listen` share: the relay options, the ending line, and --exec.
 *
 * Reports go to stderr, in text and in --json mode alike: stdout carries the peer's bytes.
 */
import type { Socket } from 'node:net';
import type { CommandIO, GlobalFlags, OptionSpec } from '../command.js';
import { SocketkitError } from '../../core/errors.js';
import { createReporter, type Reporter } from '../report.js';
import { duration, text, toggle } from '../options.js';
import { parseExecLine, relayExec, type ExecSpec, type ExecStatus } from '../../relay/exec.js';
import type { RelayResult } from '../../relay/relay.js';

/** Options of both commands. */
export const RELAY_OPTIONS = {
  'no-half-close': toggle('when stdin ends, send nothing (no FIN): for servers that take a half-close as the end; the connection ends when the peer closes'),
  'idle-timeout': duration('close with ERR_TIMEOUT after this long without a byte either way'),
  exec: text('run CMD (split on blanks) with the connection as its stdin and stdout', { value: 'CMD' }),
  'sh-exec': text('as --exec, through /bin/sh -c CMD', { value: 'CMD' }),
} as const satisfies Readonly<Record<string, OptionSpec>>;

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
  const r = await relayExec(socket, spec, { peer: o.peer, halfClose: o.halfClose, idleTimeoutMs: o.idleTimeoutMs, signal: o.signal });
  const fields = { peer: o.peer, ...endingFields(r.relay), exitCode: r.status.code, signal: r.status.signal, killed: r.status.killed };
  const what = spec.shell ? `sh -c '${spec.command}'` : spec.command;
  if (r.error) {
    o.report.event('closed', { ...fields, code: r.error.code }, undefined);
    throw new SocketkitError(r.error.code, `${r.error.message}, ${endingText(r.relay)}; ${what} ${statusText(r.status)}`, { cause: r.error });
  }
  o.report.event('closed', fields, `connection ${o.direction} ${o.peer} closed: ${endingText(r.relay)}; ${what} ${statusText(r.status)}`);
  return !r.status.killed && r.status.code !== null && r.status.code !== 0 ? r.status.code : r.status.code === null && !r.status.killed ? 1 : 0;
}

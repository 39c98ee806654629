/**
 * A connection bridged to a program (ncat's --exec, socat's EXEC:): the peer's bytes are the
 * program's stdin, its stdout goes to the peer, its stderr stays ours.
 *
 * Both directions are pumped at once with backpressure (relay.ts), so 100 MB through `cat`
 * cannot deadlock on full pipes. The half-close is passed on: the peer's FIN closes the
 * program's stdin; the end of its stdout half-closes the connection. A program that exits
 * without reading everything (`head -c 10`) makes the rest of the peer's bytes be discarded
 * until the peer closes, for at most `lingerMs`. When the connection ends the program is
 * given `exitGraceMs` to exit by itself, then killed (SIGTERM).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import type { Socket } from 'node:net';
import type { Writable } from 'node:stream';
import { SocketkitError } from '../core/errors.js';
import { relay, RelayError, type RelayResult } from './relay.js';
import { pump, type Hold } from './pump.js';
import { DEFAULT_EXEC_EXIT_GRACE_MS, DEFAULT_EXEC_KILL_AFTER_MS, DEFAULT_EXEC_LINGER_MS } from './constants.js';

/** What to run. */
export interface ExecSpec {
  /** The program, or with `shell` the whole command line given to `/bin/sh -c`. */
  readonly command: string;
  readonly args: readonly string[];
  readonly shell: boolean;
}

/** How the program ended. */
export interface ExecStatus {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** True when we killed it because the connection had ended. */
  readonly killed: boolean;
}

export interface ExecRelayOptions {
  readonly peer: string;
  readonly halfClose?: boolean;
  readonly idleTimeoutMs?: number;
  readonly signal?: AbortSignal;
  /** After the program is done, how long the peer's further bytes are discarded before closing, ms. */
  readonly lingerMs?: number;
  /** After the connection ends, how long the program may take to exit before SIGTERM, ms. */
  readonly exitGraceMs?: number;
  /** As relay()'s: every chunk sent to, received from the peer, and what those write to. */
  readonly onSent?: (chunk: Buffer) => void;
  readonly onReceived?: (chunk: Buffer) => void;
  readonly hold?: Hold;
  /**
   * listen's --each: the program's stdout goes here (our stdout, labelled or not), not to the
   * peer, and the relay sends nothing (the caller does, listen's stdin fan-out); never ended.
   * Once the peer has ended and the program is done, the connection is half-closed from our side.
   */
  readonly programOutput?: Writable;
  /** Added to the program's environment (e.g. SOCKETKIT_PEER). */
  readonly env?: Readonly<Record<string, string>>;
}

/** The relay's result and the program's exit. */
export interface ExecRelayResult {
  readonly relay: RelayResult;
  readonly status: ExecStatus;
  /** Set when the relay failed (the program's status is still known). */
  readonly error?: RelayError;
}

/** Splits an --exec command line on blanks (no quoting: use a shell for that). */
export function parseExecLine(line: string, shell: boolean): ExecSpec {
  if (shell) return { command: line, args: [], shell: true };
  const words = line.trim().split(/\s+/).filter(Boolean);
  if (words.length === 0) throw new SocketkitError('ERR_INVALID_ARG', 'the command to run is empty');
  return { command: words[0]!, args: words.slice(1), shell: false };
}

function running(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

/** Starts the program; rejects (ERR_NOT_FOUND, ERR_PERMISSION) when it cannot be run. */
async function start(spec: ExecSpec, env: Readonly<Record<string, string>> | undefined): Promise<ChildProcess> {
  const options = { stdio: ['pipe', 'pipe', 'inherit'] as ['pipe', 'pipe', 'inherit'], ...(env ? { env: { ...process.env, ...env } } : {}) };
  const child = spec.shell ? spawn('/bin/sh', ['-c', spec.command], options) : spawn(spec.command, [...spec.args], options);
  try {
    await once(child, 'spawn');
  } catch (err) {
    const code = (err as { code?: string }).code;
    throw new SocketkitError(code === 'ENOENT' ? 'ERR_NOT_FOUND' : code === 'EACCES' ? 'ERR_PERMISSION' : 'ERR_IO', `cannot run '${spec.command}': ${(err as Error).message}`, { cause: err });
  }
  // A program that exits early makes writes to its stdin fail (EPIPE): the relay handles that.
  child.stdin.on('error', () => undefined);
  child.stdout.on('error', () => undefined);
  return child;
}

/** Relays `socket` through the program `spec` until both are done. See the module comment. */
export async function relayExec(socket: Socket, spec: ExecSpec, options: ExecRelayOptions): Promise<ExecRelayResult> {
  let child: ChildProcess;
  try {
    child = await start(spec, options.env);
  } catch (err) {
    // Nothing will serve the connection: close it rather than leave the peer waiting.
    socket.destroy();
    throw err;
  }
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  const linger = new AbortController();
  let lingerTimer: NodeJS.Timeout | undefined;
  let relayDone = false;
  const toPeer = options.programOutput === undefined;
  // --each: the program's stdout is printed, with backpressure, never ended (others share it).
  const printed = toPeer ? Promise.resolve() : pump(child.stdout!, options.programOutput).then(() => undefined, () => undefined);
  let peerEnded = false;
  let programDone = false;
  // --each: nothing more will come from either side of this connection's program.
  const finishEach = (): void => {
    if (!toPeer && peerEnded && programDone && !socket.writableEnded && !socket.destroyed) socket.end();
  };
  // The program is done (exited, its stdout relayed): the peer gets lingerMs to close too.
  const stdoutEnded = once(child.stdout!, 'end').catch(() => undefined);
  void Promise.all([exited.catch(() => undefined), stdoutEnded, printed]).then(() => {
    if (relayDone) return;
    programDone = true;
    finishEach();
    lingerTimer = setTimeout(() => linger.abort(), options.lingerMs ?? DEFAULT_EXEC_LINGER_MS);
  });
  let result: RelayResult;
  let error: RelayError | undefined;
  try {
    result = await relay(socket, {
      ...(toPeer ? { input: child.stdout! } : {}),
      output: child.stdin!,
      endOutput: true,
      halfClose: options.halfClose ?? true,
      stopOnPeerEnd: false,
      discardWhenOutputFails: true,
      idleTimeoutMs: options.idleTimeoutMs ?? 0,
      signal: options.signal ? AbortSignal.any([options.signal, linger.signal]) : linger.signal,
      peer: options.peer,
      ...(options.onSent ? { onSent: options.onSent } : {}),
      ...(options.onReceived ? { onReceived: options.onReceived } : {}),
      ...(options.hold ? { hold: options.hold } : {}),
      onPeerEnd: () => {
        peerEnded = true;
        finishEach();
      },
    });
  } catch (err) {
    if (!(err instanceof RelayError)) throw err;
    // Closed by us after the program was done and the peer kept the connection open: a clean end.
    if (linger.signal.aborted && !options.signal?.aborted) result = err.result;
    else {
      error = err;
      result = err.result;
    }
  } finally {
    relayDone = true;
    if (lingerTimer !== undefined) clearTimeout(lingerTimer);
  }
  let killed = false;
  if (running(child)) {
    // A failed connection ends the program at once; a clean one lets it finish its work first.
    const grace = error ? 0 : (options.exitGraceMs ?? DEFAULT_EXEC_EXIT_GRACE_MS);
    const timer = setTimeout(() => {
      if (running(child)) {
        killed = true;
        child.kill('SIGTERM');
        // One that ignores SIGTERM is not allowed to keep us waiting.
        setTimeout(() => {
          if (running(child)) child.kill('SIGKILL');
        }, DEFAULT_EXEC_KILL_AFTER_MS).unref();
      }
    }, grace);
    try {
      await exited;
    } finally {
      clearTimeout(timer);
    }
  }
  const [code, signal] = await exited;
  await printed;
  return { relay: result, status: { code, signal, killed }, ...(error ? { error } : {}) };
}

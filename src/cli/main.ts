/**
 * The `socketkit` command line: dispatch, help, and the one-line error convention
 * (`socketkit: <message> (<CODE>)`, non-zero exit, no stack trace unless --debug).
 */
import { chooseEngine, describeEngine } from '../native/engine-choice.js';
import { readFileSync } from 'node:fs';
import { constants } from 'node:os';
import { COMMANDS } from './registry.js';
import { commandHelp, parseCommandArgs, type CommandIO } from './command.js';
import { EXIT_FAILURE, SocketkitError, isSocketkitError, toSocketkitError } from '../core/errors.js';
import { nativeStatus } from '../native/helper.js';
import { neutralise } from '../core/terminal-text.js';
import { adviceFor, usageError } from './usage.js';
import { jsonLine } from './report.js';
import { ipv6PortHint } from '../net/endpoint.js';

function version(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

function mainHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    'socketkit — TCP, UDP and Unix socket toolkit',
    '',
    'Usage: socketkit <command> [options]',
    '',
    'Commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'Addresses: PORT, HOST:PORT, [IPV6]:PORT, unix:PATH (default port 9800, default host 127.0.0.1)',
    "Run 'socketkit <command> --help' for a command's options.",
    '',
  ].join('\n');
}

/** IOs made by `processIO()`: main() installs process-wide safety nets only for these. */
const processIOs = new WeakSet<CommandIO>();

/** Exit status of a process killed by `sig`, as shells report it (SIGINT 130, SIGTERM 143, SIGPIPE 141). */
function signalStatus(sig: NodeJS.Signals): number {
  return 128 + (constants.signals[sig] ?? 1);
}

/**
 * The one rule for every command: a command stopped by SIGINT or SIGTERM exits 128 + the
 * signal's number (130, 143), as nc, ping and iperf3 users expect of an interrupted program,
 * after printing what it has to say (a server's summary, a client's partial results). A signal
 * shows as the shutdown's reason, its name (see `processIO`); any other stop request (tests
 * abort in-process without one) leaves the command's own status.
 *
 * @returns the status for a command stopped by a signal, or undefined when none stopped it.
 */
function stoppedBySignal(io: CommandIO): number | undefined {
  if (!io.shutdown.aborted) return undefined;
  const reason: unknown = io.shutdown.reason;
  return typeof reason === 'string' && reason in constants.signals ? signalStatus(reason as NodeJS.Signals) : undefined;
}

/**
 * Creates process-backed IO whose shutdown signal fires on SIGINT/SIGTERM (its `reason` is the
 * signal's name). The first signal is a stop request the command answers (a server closes
 * gracefully, a client aborts); a second one exits at once.
 */
export function processIO(): CommandIO {
  const ac = new AbortController();
  const onSignal = (sig: NodeJS.Signals): void => {
    if (ac.signal.aborted) {
      process.stderr.write(`socketkit: ${sig} again, exiting now\n`);
      process.exit(signalStatus(sig));
    }
    ac.abort(sig);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // Output to a closed pipe (`socketkit echo-server --json | head -1`) ends the program quietly,
  // as SIGPIPE ends other programs; without a listener Node would crash with a stack trace.
  const onOutputError = (err: NodeJS.ErrnoException): void => {
    if (err.code !== 'EPIPE') {
      process.stderr.write(`socketkit: cannot write output: ${err.message} (ERR_IO)\n`);
      process.exit(EXIT_FAILURE);
    }
    process.exit(signalStatus('SIGPIPE'));
  };
  process.stdout.on('error', onOutputError);
  process.stderr.on('error', (err: NodeJS.ErrnoException) => process.exit(err.code === 'EPIPE' ? signalStatus('SIGPIPE') : EXIT_FAILURE));
  const io: CommandIO = { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, shutdown: ac.signal };
  processIOs.add(io);
  return io;
}

/**
 * Prints an error the CLI way: one line, the stack only with --debug; with --json also an
 * `{"event":"error","code":...,"message":...}` line on stdout, so a program reading the JSON sees
 * the failure there too. Returns its exit status.
 */
function printError(io: CommandIO, err: unknown, debug: boolean, json = false): number {
  const e = toSocketkitError(usageError(err));
  const advice = adviceFor(e);
  if (json) jsonLine(io, 'error', { code: e.code, message: e.message, ...(advice === undefined ? {} : { advice }), exitCode: e.exitCode });
  // One line, whatever the message holds (some system and aggregate errors span several).
  io.stderr.write(`socketkit: ${neutralise(e.message.replace(/\s*\n\s*/g, ' '))}${advice === undefined ? '' : `; ${advice}`} (${e.code})\n`);
  if (debug && err instanceof Error) io.stderr.write(`${err.stack ?? ''}\n`);
  else if (!(err instanceof SocketkitError) && e.code === 'ERR_INTERNAL') {
    io.stderr.write('(this looks like a bug in socketkit; run again with --debug for details)\n');
  }
  return e.exitCode;
}

/**
 * For a real process: an error nothing caught (an 'error' event without a listener, a rejected
 * promise nobody awaited) is still reported in one line, not as a Node stack trace.
 */
function installSafetyNet(io: CommandIO, debug: boolean, json: boolean): void {
  const onFatal = (err: unknown): void => {
    printError(io, err, debug, json);
    process.exit(70); // EX_SOFTWARE, as bin/socketkit.js uses for internal errors
  };
  process.on('uncaughtException', onFatal);
  process.on('unhandledRejection', onFatal);
}

/** Failures that a mistyped address explains. */
const ADDRESS_FAILURES: ReadonlySet<string> = new Set(['ERR_UNREACHABLE', 'ERR_ADDR_NOT_AVAILABLE', 'ERR_CONN_REFUSED', 'ERR_TIMEOUT', 'ERR_NO_REPLY']);

/** `::1:9800` is one IPv6 address: when reaching it fails, say how to write an address with a port. */
function withAddressHint(err: unknown, addresses: readonly string[]): unknown {
  if (!isSocketkitError(err) || !ADDRESS_FAILURES.has(err.code)) return err;
  const hint = addresses.map(ipv6PortHint).find((h) => h !== undefined);
  return hint === undefined ? err : new SocketkitError(err.code, `${err.message} (${hint})`, { cause: err, exitCode: err.exitCode, ...(err.hint ? { hint: err.hint } : {}) });
}

/** Runs the CLI with `argv` (without node and script); resolves with the exit code. */
export async function main(argv: readonly string[], io: CommandIO = processIO()): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.stdout.write(mainHelp());
    return name === undefined ? EXIT_FAILURE : 0;
  }
  if (name === '--version' || name === '-V') {
    // Loaded here only: every other command starts without the engines' modules (and the histogram library the load engine brings).
    const [{ nativeEchoStatus }, { nativeRelayStatus }, { loadEngineStatus }] = await Promise.all([
      import('../native/echo-engine.js'),
      import('../native/proxy-engine.js'),
      import('../load/native.js'),
    ]);
    const native = nativeStatus();
    io.stdout.write(`socketkit ${version()}\nnative helper: ${native.available ? 'yes (sendfile for raw sends, reset detection for raw receives)' : `no, ${native.reason ?? 'unavailable'}`}\n`);
    io.stdout.write(`echo-server engine: ${describeEngine(chooseEngine(undefined, nativeEchoStatus(), []))} (TLS and PSK servers run on js)\n`);
    io.stdout.write(`load engine: ${describeEngine(chooseEngine(undefined, loadEngineStatus(), []))} (TLS, PSK and --print run on js)\n`);
    io.stdout.write(`proxy engine: ${describeEngine(chooseEngine(undefined, nativeRelayStatus(), []))} (toxics, --dump, TLS and --api run on js)\n`);
    return 0;
  }
  // Known before the arguments are parsed, so that a usage error is JSON too.
  let json = rest.includes('--json');
  const entry = COMMANDS.find((c) => c.name === name);
  if (!entry) {
    if (json) jsonLine(io, 'error', { code: 'ERR_USAGE', message: `unknown command '${name}'`, exitCode: EXIT_FAILURE });
    io.stderr.write(`socketkit: unknown command '${name}' (ERR_USAGE)\nRun 'socketkit --help' for the list of commands.\n`);
    return EXIT_FAILURE;
  }
  const debug = rest.includes('--debug');
  const real = processIOs.has(io);
  if (real) installSafetyNet(io, debug, json);
  let addresses: string[] = [];
  try {
    const cmd = await entry.load();
    let parsed;
    try {
      parsed = parseCommandArgs(cmd, rest);
    } catch (err) {
      const status = printError(io, err, debug, json);
      io.stderr.write(`Run 'socketkit ${cmd.name} --help' for usage.\n`);
      return status;
    }
    json = parsed.global.json;
    const listen = parsed.values['listen'];
    addresses = [...parsed.positionals, ...(typeof listen === 'string' ? [listen] : [])];
    if (parsed.help) {
      io.stdout.write(commandHelp(cmd));
      return 0;
    }
    const status = await cmd.run({ values: parsed.values as Record<string, string | boolean | string[] | undefined>, given: parsed.given, positionals: parsed.positionals, io, global: parsed.global });
    return stoppedBySignal(io) ?? status;
  } catch (caught) {
    const err = withAddressHint(caught, addresses);
    const status = printError(io, err, debug, json);
    if (isSocketkitError(err) && err.code === 'ERR_USAGE') io.stderr.write(`Run 'socketkit ${name} --help' for usage.\n`);
    // Stopped by Ctrl-C or SIGTERM, whatever the stop made fail: exit as shells expect of an
    // interrupted program (130, 143). An abort without a signal's name counts as Ctrl-C.
    const bySignal = stoppedBySignal(io);
    if (bySignal !== undefined) return bySignal;
    if (isSocketkitError(err) && err.code === 'ERR_ABORTED' && io.shutdown.aborted) return signalStatus('SIGINT');
    return status;
  } finally {
    // The command is over and nothing reads stdin any more: a read still pending (a failed echo
    // abandoned its input) must not keep the process alive.
    if (real) process.stdin.destroy();
  }
}

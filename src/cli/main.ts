/**
 * The `socketkit` command line: dispatch, help, and the one-line error convention
 * (`socketkit: <message> (<CODE>)`, non-zero exit, no stack trace unless --debug).
 */
import { readFileSync } from 'node:fs';
import { COMMANDS } from './registry.js';
import { commandHelp, parseCommandArgs, type CommandIO } from './command.js';
import { EXIT_FAILURE, SocketkitError, toSocketkitError } from '../core/errors.js';

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

/** Creates process-backed IO whose shutdown signal fires on SIGINT/SIGTERM. */
export function processIO(): CommandIO {
  const ac = new AbortController();
  const onSignal = (sig: NodeJS.Signals): void => {
    if (ac.signal.aborted) {
      // A second Ctrl-C means now.
      process.stderr.write(`socketkit: ${sig} again, exiting now\n`);
      process.exit(130);
    }
    ac.abort(sig);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, shutdown: ac.signal };
}

/** Runs the CLI with `argv` (without node and script); resolves with the exit code. */
export async function main(argv: readonly string[], io: CommandIO = processIO()): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.stdout.write(mainHelp());
    return name === undefined ? EXIT_FAILURE : 0;
  }
  if (name === '--version' || name === '-V') {
    io.stdout.write(`socketkit ${version()}\n`);
    return 0;
  }
  const entry = COMMANDS.find((c) => c.name === name);
  if (!entry) {
    io.stderr.write(`socketkit: unknown command '${name}' (ERR_USAGE)\nRun 'socketkit --help' for the list of commands.\n`);
    return EXIT_FAILURE;
  }
  const cmd = await entry.load();
  const debug = rest.includes('--debug');
  try {
    const parsed = parseCommandArgs(cmd, rest);
    if (parsed.help) {
      io.stdout.write(commandHelp(cmd));
      return 0;
    }
    return await cmd.run({ values: parsed.values, positionals: parsed.positionals, io, global: parsed.global });
  } catch (err) {
    const e = toSocketkitError(err);
    io.stderr.write(`socketkit: ${e.message} (${e.code})\n`);
    if (e.code === 'ERR_USAGE') io.stderr.write(`Run 'socketkit ${cmd.name} --help' for usage.\n`);
    if (debug && err instanceof Error) io.stderr.write(`${err.stack ?? ''}\n`);
    else if (!(err instanceof SocketkitError) && e.code === 'ERR_INTERNAL') {
      io.stderr.write('(this looks like a bug in socketkit; run again with --debug for details)\n');
    }
    return e.exitCode;
  }
}

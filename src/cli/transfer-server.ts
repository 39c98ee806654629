/**
 * What the transfer commands share: how a transfer server's events are shown, running the
 * server on the managed server's loop (`serve()`: statistics, graceful stop) until it is done
 * (`--once`) or stopped (SIGINT/SIGTERM, with a grace period), and how a client's summary ends a
 * command.
 */
import type { CommandIO, GlobalFlags, OptionValues } from './command.js';
import { createReporter, type Reporter } from './report.js';
import { MANAGED_SERVER_OPTIONS, managedServerValues } from './server-report.js';
import { INSECURE_OPTION, SERVER_SECURITY_OPTIONS, serverSecurity, type ServerSecurityValues } from './security-options.js';
import { HASH_OPTION, hashOption } from './hash-option.js';
import { duration, toggle } from './options.js';
import { DEFAULT_STALL_TIMEOUT_MS } from '../transfer/constants.js';
import { parseEndpoint } from '../net/endpoint.js';
import { DEFAULT_GRACE_MS, DEFAULT_LISTEN_HOST } from '../core/defaults.js';
import { SocketkitError } from '../core/errors.js';
import type { HashName } from '../transfer/digest.js';
import { formatBytes, formatCount, formatDuration, formatThroughput } from './format.js';
import { createTransferView, summaryFields, summaryLine } from './progress.js';
import { acceptErrorText, averagedOver, serverStatsText, stoppingText, type ManagedServerValues } from './server-report.js';
import type { ErrorCode } from '../core/errors.js';
import type { Endpoint } from '../net/endpoint.js';
import { serve, type AcceptErrorReport, type ServerStats, type StatsRates } from '../server/index.js';
import { summaryError, type TransferServer, type TransferServerEvent, type TransferServerOptions, type TransferSummary } from '../transfer/index.js';

type TransferView = ReturnType<typeof createTransferView>;

/** A refusal's code, when its reason ends with one (`... (ERR_ACCESS_DENIED)`). */
function refusalCode(reason: string): string | undefined {
  return /\((ERR_[A-Z0-9_]+)\)$/.exec(reason)?.[1];
}

/** One thing that failed on a transfer server: a file of a client, or a client's connection. */
export interface ServerFailure {
  readonly conn: number;
  readonly peer: string;
  /** The entry that failed; absent when the connection failed with no file in flight. */
  readonly path?: string;
  readonly code: ErrorCode;
  readonly message: string;
}

/** Failures kept for the summary at most (the rest are counted). */
export const MAX_LISTED_FAILURES = 10;

/**
 * What failed on a transfer server, for its summary: every file a client's transfer reported
 * failed, and the files in flight when a connection broke (or the connection, when none was).
 * Keeps the first {@link MAX_LISTED_FAILURES}, counts them all.
 */
export class ServerFailures {
  readonly #listed: ServerFailure[] = [];
  #count = 0;
  /** Per open connection: the files in flight, and the failures its transfer reported so far. */
  readonly #open = new Map<number, { readonly inFlight: Set<string>; readonly failed: Omit<ServerFailure, 'conn' | 'peer'>[] }>();

  /** Everything that failed so far. */
  get count(): number {
    return this.#count;
  }

  /** The first {@link MAX_LISTED_FAILURES} failures, in the order they ended. */
  get listed(): readonly ServerFailure[] {
    return this.#listed;
  }

  #add(f: ServerFailure): void {
    this.#count++;
    if (this.#listed.length < MAX_LISTED_FAILURES) this.#listed.push(f);
  }

  #conn(conn: number): { readonly inFlight: Set<string>; readonly failed: Omit<ServerFailure, 'conn' | 'peer'>[] } {
    let c = this.#open.get(conn);
    if (c === undefined) this.#open.set(conn, (c = { inFlight: new Set(), failed: [] }));
    return c;
  }

  /** Feeds one server event. */
  onEvent(e: TransferServerEvent): void {
    if (e.event === 'transfer') {
      const d = e.detail;
      if (d.event === 'file-start') this.#conn(e.conn).inFlight.add(d.path);
      else if (d.event === 'file-done') this.#conn(e.conn).inFlight.delete(d.path);
      else if (d.event === 'file-failed') {
        const c = this.#conn(e.conn);
        c.inFlight.delete(d.path);
        // Bounded like the list: past it, a failure is only counted (at the connection's end).
        if (c.failed.length <= MAX_LISTED_FAILURES) c.failed.push({ path: d.path, code: d.code, message: d.message });
      }
      return;
    }
    if (e.event !== 'disconnect') return;
    const c = this.#open.get(e.conn);
    this.#open.delete(e.conn);
    const { conn, peer } = e;
    if (e.summary) {
      // The transfer's own account of what failed is the whole story.
      for (const f of e.summary.failures) this.#add({ conn, peer, path: f.path, code: f.code, message: f.message });
    } else if (e.error) {
      for (const f of c?.failed ?? []) this.#add({ conn, peer, ...f });
      const inFlight = [...(c?.inFlight ?? [])];
      for (const path of inFlight) this.#add({ conn, peer, path, code: e.error.code, message: e.error.message });
      if (inFlight.length === 0 && (c?.failed.length ?? 0) === 0) this.#add({ conn, peer, code: e.error.code, message: e.error.message });
    }
  }
}

/** `#2 127.0.0.1:40312 photos/a.jpg: hash mismatch (ERR_HASH_MISMATCH)`. */
export function serverFailureText(f: ServerFailure): string {
  return `#${f.conn} ${f.peer}${f.path !== undefined ? ` ${f.path}` : ''}: ${f.message} (${f.code})`;
}

/**
 * Renders a transfer server's events: NDJSON with --json, else lines above the progress bars.
 * `failures`, when given, is fed every event, for the summary.
 */
export function transferServerEvents(report: Reporter, view: TransferView, failures?: ServerFailures): (e: TransferServerEvent) => void {
  return (e) => {
    failures?.onEvent(e);
    switch (e.event) {
      case 'connect':
        if (report.json) report.event('connect', { conn: e.conn, peer: e.peer });
        else view.line(`+ ${e.peer} connected (#${e.conn})`);
        break;
      case 'transfer':
        view.onEvent(e.detail, e.conn);
        break;
      case 'disconnect':
        // A client that was killed or reset mid-file sends no failure of its own: its files fail with it.
        view.connectionEnded(e.conn, e.error?.code ?? 'ERR_CONN_CLOSED', e.error?.message ?? 'the connection ended before the file was complete');
        if (report.json) {
          report.event('disconnect', {
            conn: e.conn,
            peer: e.peer,
            ...(e.summary ? summaryFields(e.summary) : {}),
            ...(e.raw ? { bytes: e.raw.bytes, seconds: e.raw.seconds, zeroCopy: e.raw.zeroCopy === true } : {}),
            ...(e.error ? { error: e.error } : {}),
          });
        } else if (e.error) view.line(`- ${e.peer} (#${e.conn}) failed: ${e.error.message} (${e.error.code})`);
        else if (e.summary) view.line(`- ${e.peer} (#${e.conn}) done: ${summaryLine(e.summary)}`);
        else if (e.raw) {
          const { bytes, seconds, zeroCopy } = e.raw;
          view.line(`- ${e.peer} (#${e.conn}) done: ${formatBytes(bytes)} in ${formatDuration(seconds * 1000)}, ${formatThroughput(bytes, seconds)}${zeroCopy ? ' (sendfile)' : ''}`);
        }
        break;
      case 'refused': {
        const code = refusalCode(e.reason);
        if (report.json) report.event('refused', { peer: e.peer, reason: e.reason, ...(code !== undefined ? { code } : {}) });
        else view.line(`! ${e.peer} refused: ${e.reason}`);
        break;
      }
      case 'idle':
        if (report.json) report.event('idle', { peer: e.peer, idleMs: e.idleMs });
        else view.line(`~ ${e.peer} closed: idle for ${formatDuration(e.idleMs)}`);
        break;
      case 'skipped':
        if (report.json) report.event('skipped', { source: e.source, reason: e.reason });
        else view.line(`! not serving ${e.source}: ${e.reason}`);
        break;
    }
  };
}

/** What {@link runTransferServer} needs. */
export interface TransferServerRun {
  readonly endpoint: Endpoint;
  readonly io: CommandIO;
  readonly global: GlobalFlags;
  readonly report: Reporter;
  readonly view: TransferView;
  readonly graceMs: number;
  /** --max-conns, --idle-timeout, --stats. */
  readonly managed: ManagedServerValues;
  /** Starts the server with the managed server's options added to the command's own. */
  readonly start: (options: Pick<TransferServerOptions, 'maxConnections' | 'idleTimeoutMs' | 'onAcceptError' | 'clearStaleUnixSocket'>) => Promise<TransferServer>;
  /** Called once the server listens, with its address. */
  readonly onListening: (server: TransferServer, address: string) => void;
}

/** How a transfer server's run ended: the server, and the managed server's totals and average rates. */
export interface TransferServerRunResult {
  readonly server: TransferServer;
  readonly stats: ServerStats;
  readonly rates: StatsRates;
}

/**
 * Runs a transfer server until it is done (its one client with --once: a failed outcome is
 * thrown) or a stop is requested, then closes it gracefully; the progress view is closed either
 * way. Statistics (--stats) and accept failures are reported as echo-server reports them.
 */
export async function runTransferServer(run: TransferServerRun): Promise<TransferServerRunResult> {
  const { io, global, report, view } = run;
  // Lines above the progress bars; with -q, what was asked for (--stats) or says the server fails still prints.
  const serverLine = (name: string, fields: Record<string, unknown>, text: string): void => {
    if (report.json) report.event(name, fields);
    else if (global.quiet) io.stderr.write(`${text}\n`);
    else view.line(text);
  };
  const onAcceptError = (e: AcceptErrorReport): void =>
    serverLine('accept-error', { code: e.code, message: e.message, count: e.count }, acceptErrorText(e));
  // With --once, the server is done after its one client: serve() then stops as it does on a signal.
  const finished = new AbortController();
  let server: TransferServer | undefined;
  try {
    const { maxConnections, idleTimeoutMs, statsIntervalMs } = run.managed;
    const result = await serve({
      endpoint: run.endpoint,
      workers: 1,
      graceMs: run.graceMs,
      shutdown: AbortSignal.any([io.shutdown, finished.signal]),
      ...(maxConnections !== undefined ? { maxConnections } : {}),
      ...(statsIntervalMs !== undefined ? { statsIntervalMs } : {}),
      start: async (one) => {
        const s = await run.start({
          ...(one.maxConnections !== undefined ? { maxConnections: one.maxConnections } : {}),
          ...(idleTimeoutMs !== undefined && idleTimeoutMs > 0 ? { idleTimeoutMs } : {}),
          onAcceptError,
          clearStaleUnixSocket: one.clearStaleUnixSocket,
        });
        server = s;
        s.done.then(
          () => finished.abort(),
          () => finished.abort(),
        );
        return s.managed;
      },
      onListening: (address) => {
        if (server) run.onListening(server, address);
      },
      onStats: (st, r) => serverLine('stats', { ...st, ...r }, serverStatsText(st, r)),
      onStopping: (open, ms) => {
        if (open > 0) view.line(stoppingText(open, ms, 'transfer(s) running'));
      },
    });
    const s = server!;
    // serve() closed the managed server; this settles `done` (close is idempotent).
    await s.close(0);
    // Done by --once (not stopped by a signal): its one client's outcome is the command's.
    if (!io.shutdown.aborted && s.stats.connections > 0) {
      const outcome = await s.done;
      const err = outcome.summary ? summaryError(outcome.summary) : undefined;
      if (err) throw err;
    }
    return { server: s, stats: result.stats, rates: result.rates };
  } finally {
    view.close();
  }
}

/**
 * The `stopped` result of serve and receive: the managed server's totals (as echo-server
 * reports them), what was transferred, and what failed (which file of which client, and why).
 */
export function reportStopped(
  report: Reporter,
  io: CommandIO,
  global: GlobalFlags,
  run: TransferServerRunResult,
  what: string,
  statsAsked: boolean,
  failures?: ServerFailures,
): void {
  const { stats: st, rates: r } = run;
  const t = run.server.stats;
  const n = formatCount;
  const failed = failures?.count ?? t.failed;
  const listed = failures?.listed ?? [];
  const lines = [
    `${what} ${n(st.accepted)} client(s): ${n(t.files)} file(s), ${formatBytes(t.bytes)}${failed ? `; ${n(failed)} failed` : ''}; ${n(st.refused)} refused, ${n(st.idleClosed)} idle-closed`,
    ...listed.map((f) => `  failed: ${serverFailureText(f)}`),
    ...(failed > listed.length && listed.length > 0 ? [`  … and ${n(failed - listed.length)} more failed`] : []),
    `${serverStatsText(st, r)} ${averagedOver(r)}`,
  ];
  report.result(
    'stopped',
    {
      ...st,
      active: st.connections,
      seconds: Math.round(r.seconds * 1000) / 1000,
      files: t.files,
      bytes: t.bytes,
      failed: t.failed,
      ...(failures ? { failures: listed, failuresNotListed: failures.count - listed.length } : {}),
    },
    lines.join('\n'),
  );
  // -q silences the result, but statistics asked for with --stats are printed at exit too.
  if (global.quiet && !global.json && statsAsked) io.stderr.write(`${serverStatsText(st, r)} ${averagedOver(r, 'stopped')}\n`);
}

/** Closes the progress view, reports a client's summary, and throws if any entry failed. */
export function finishTransfer(report: Reporter, view: TransferView, summary: TransferSummary): void {
  view.close();
  report.result('summary', summaryFields(summary), summaryLine(summary));
  const err = summaryError(summary);
  if (err) throw err;
}

/** The options of `serve` and `receive` after their own: `--once` (said as `onceHelp`), the timeouts, the managed server's, `--hash`, security. */
export function serverCommandOptions(onceHelp: string) {
  return {
    once: toggle(onceHelp),
    'stall-timeout': duration('drop a client whose transfer makes no progress this long (0: never)', { default: DEFAULT_STALL_TIMEOUT_MS }),
    grace: duration('on SIGINT/SIGTERM, let live transfers finish this long', { default: DEFAULT_GRACE_MS }),
    ...MANAGED_SERVER_OPTIONS,
    ...HASH_OPTION,
    ...SERVER_SECURITY_OPTIONS,
    ...INSECURE_OPTION,
  } as const;
}

/** The values both server commands parse (their own options aside). */
export type TransferServerValues = OptionValues<typeof MANAGED_SERVER_OPTIONS> &
  ServerSecurityValues & {
    readonly listen: string;
    readonly 'stall-timeout': number;
    readonly grace: number;
    readonly once: boolean;
    readonly hash: HashName | undefined;
  };

/** What one server command (serve, receive) adds to {@link runServerCommand}. */
export interface ServerCommandSpec {
  /** Starts its server with the options both commands share (and the managed server's). */
  readonly start: (endpoint: Endpoint, common: TransferServerOptions) => Promise<TransferServer>;
  /** The `listening` event's own fields and text, for the address it listens on. */
  readonly listening: (address: string, managed: ManagedServerValues) => { readonly fields: Record<string, unknown>; readonly text: string };
  /** How the summary names the clients: `served`, `received from`. */
  readonly verb: string;
}

/**
 * The body of `serve` and `receive`: the listen address, security, the progress view, the
 * managed server's options, the server run until SIGINT/SIGTERM or its one client (`--once`),
 * and the `stopped` report.
 */
export async function runServerCommand(ctx: { readonly values: TransferServerValues; readonly io: CommandIO; readonly global: GlobalFlags }, spec: ServerCommandSpec): Promise<number> {
  const { values, io, global } = ctx;
  const ep = parseEndpoint(values.listen, { defaultHost: DEFAULT_LISTEN_HOST, allowPortZero: true });
  const managed = managedServerValues(values);
  const report = createReporter(io, global);
  const sec = await serverSecurity(values, report, { endpoint: ep, requireSecure: true });
  const view = createTransferView(report, io.stderr);
  const failures = new ServerFailures();
  const onEvent = transferServerEvents(report, view, failures);
  const common = { once: values.once, stallTimeoutMs: values['stall-timeout'], ...hashOption(values.hash), onEvent, ...sec.listen };
  const run = await runTransferServer({
    endpoint: ep,
    io,
    global,
    report,
    view,
    graceMs: values.grace,
    managed,
    start: (more) => spec.start(ep, { ...common, ...more }),
    onListening: (_server, where) => {
      const { fields, text } = spec.listening(where, managed);
      report.event('listening', { address: where, ...fields, maxConnections: managed.maxConnections ?? null, idleTimeoutMs: managed.idleTimeoutMs ?? null }, text);
    },
  });
  reportStopped(report, io, global, run, spec.verb, managed.statsIntervalMs !== undefined, failures);
  if (values.once && run.server.stats.connections === 0) throw new SocketkitError('ERR_ABORTED', 'stopped before a client connected');
  return 0;
}

/**
 * Security options shared by every TCP command, and the one call that turns them into what the
 * library takes, so a command adds TLS, TLS-PSK and allow/deny lists in two or three lines:
 *
 * ```ts
 * options: { ...myOptions, ...SERVER_SECURITY_OPTIONS },
 * const sec = await serverSecurity(values, report);
 * await startEchoServer(ep, { ...sec.listen, onEvent });
 * ```
 * and on the client side `...CLIENT_SECURITY_OPTIONS`, `const sec = await clientSecurity(values)`,
 * `{ ...sec.connect }` (which holds `transport` when TLS is on).
 */
import { readFile, stat } from 'node:fs/promises';
import type { OptionSpec, OptionValues } from './command.js';
import { list as listOption, text, toggle } from './options.js';
import type { Reporter } from './report.js';
import { asUsage } from './usage.js';
import { SocketkitError, toSocketkitError } from '../core/errors.js';
import type { Endpoint } from '../net/endpoint.js';
import type { ConnectTransport } from '../net/connect.js';
import type { ListenOptions, ListenTransport } from '../net/listen.js';
import {
  AccessList,
  certificateFingerprint,
  loadPskFile,
  parseCidr,
  parsePin,
  requireSecureListener,
  tlsConnectTransport,
  tlsListenTransport,
  type TlsClientOptions,
  type SecurityMode,
} from '../security/index.js';

const PSK_HELP = "TLS with a pre-shared key instead of certificates: a file with IDENTITY:HEXKEY, mode 600 (make one with 'socketkit cert --psk FILE')";

/** Options of commands that listen: TLS with a certificate or a PSK, and allow/deny lists. */
export const SERVER_SECURITY_OPTIONS = {
  tls: toggle('encrypt with TLS, using --cert and --key'),
  cert: text("TLS certificate, PEM (make one with 'socketkit cert'); implies --tls", { value: 'FILE' }),
  key: text('the private key of --cert, PEM', { value: 'FILE' }),
  'psk-file': text(PSK_HELP, { value: 'FILE' }),
  allow: listOption('admit only peers in this address block (e.g. 10.0.0.0/8, ::1)', { value: 'CIDR' }),
  deny: listOption('refuse peers in this address block (wins over --allow)', { value: 'CIDR' }),
} as const satisfies Readonly<Record<string, OptionSpec>>;

/** For servers of files (serve, receive): plaintext on a non-loopback address must be asked for. */
export const INSECURE_OPTION = {
  insecure: toggle('allow serving without TLS or a PSK on a non-loopback address'),
} as const satisfies Readonly<Record<string, OptionSpec>>;

/** Options of commands that connect: TLS verified by system CAs, a CA file or a pin; or a PSK. */
export const CLIENT_SECURITY_OPTIONS = {
  tls: toggle('encrypt with TLS; the server is verified against the system CAs unless --ca or --pin is given'),
  ca: text('verify the server against this CA (or self-signed) certificate, PEM, and its name; implies --tls', { value: 'FILE' }),
  pin: text("accept only the server certificate with this SHA-256 fingerprint (as 'socketkit cert' prints it); implies --tls", { value: 'SHA256' }),
  'psk-file': text(PSK_HELP, { value: 'FILE' }),
} as const satisfies Readonly<Record<string, OptionSpec>>;

/** The server security values of a command whose options are not typed yet. */
export function looseServerSecurityValues(values: Readonly<Record<string, unknown>>): ServerSecurityValues {
  const s = (n: string): string | undefined => (typeof values[n] === 'string' ? (values[n]) : undefined);
  const l = (n: string): string[] => (Array.isArray(values[n]) ? (values[n] as string[]) : typeof values[n] === 'string' ? [values[n]] : []);
  return { tls: values['tls'] === true, cert: s('cert'), key: s('key'), 'psk-file': s('psk-file'), allow: l('allow'), deny: l('deny'), insecure: values['insecure'] === true };
}

/** The client security values of a command whose options are not typed yet. */
export function looseClientSecurityValues(values: Readonly<Record<string, unknown>>): ClientSecurityValues {
  const s = (n: string): string | undefined => (typeof values[n] === 'string' ? (values[n]) : undefined);
  return { tls: values['tls'] === true, ca: s('ca'), pin: s('pin'), 'psk-file': s('psk-file') };
}

/** Parsed option values, typed (from `defineCommand`) or not. */
type Values = Readonly<Record<string, unknown>>;

/** The options that ask for TLS or a PSK, on either side. */
const TLS_OPTION_NAMES = ['tls', 'cert', 'key', 'psk-file', 'ca', 'pin'] as const;

/**
 * UDP has no TLS here: refuses any TLS or PSK option given with --udp (ERR_USAGE), rather than
 * sending or echoing plaintext the user asked to be encrypted. The one check for every --udp command.
 */
export function refuseTlsWithUdp(values: Values): void {
  const given = TLS_OPTION_NAMES.filter((n) => values[n] !== undefined && values[n] !== false);
  if (given.length > 0) {
    throw new SocketkitError('ERR_USAGE', `TLS and PSK are for TCP and Unix sockets, not --udp (remove ${given.map((n) => `--${n}`).join(', ')})`);
  }
}

function list(values: Values, name: string): string[] {
  const v = values[name];
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : typeof v === 'string' ? [v] : [];
}

async function readPem(option: string, path: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    const e = toSocketkitError(err, path);
    throw new SocketkitError(e.code, `--${option}: ${e.message}`, { cause: err });
  }
}

/** The typed values of {@link SERVER_SECURITY_OPTIONS}, and --insecure where the command has it. */
export type ServerSecurityValues = OptionValues<typeof SERVER_SECURITY_OPTIONS> & { readonly insecure?: boolean };
/** The typed values of {@link CLIENT_SECURITY_OPTIONS}. */
export type ClientSecurityValues = OptionValues<typeof CLIENT_SECURITY_OPTIONS>;

/** What a listening command needs: spread `listen` into the server's options. */
export interface ServerSecurity {
  readonly mode: SecurityMode;
  readonly listen: { readonly transport?: ListenTransport; readonly admit?: ListenOptions['admit'] };
  /** The certificate's SHA-256 fingerprint (certificate mode), for clients' --pin. */
  readonly fingerprint?: string;
  /** The allow/deny list (empty when none was given), for servers without sockets (UDP). */
  readonly access: AccessList;
}

export interface ServerSecurityOptions {
  /** With `requireSecure`: refuse plaintext on a non-loopback `endpoint` unless --insecure. */
  readonly endpoint?: Endpoint;
  readonly requireSecure?: boolean;
  /** Log how the server is protected. Default true; cluster workers pass false (the primary says it). */
  readonly announce?: boolean;
}

/**
 * Reads the server security options: loads and checks certificate, key or PSK file, builds the
 * TLS transport and the allow/deny hook, logs one line saying how the server is protected, and
 * reports every refused handshake as a `refused` event (`! PEER refused: why (CODE)`).
 * Throws ERR_USAGE for contradictory options, ERR_TLS_CONFIG for unusable files, and
 * ERR_INSECURE_LISTENER (with `requireSecure`) for plaintext on a non-loopback address.
 */
export async function serverSecurity(values: ServerSecurityValues, report: Reporter, options: ServerSecurityOptions = {}): Promise<ServerSecurity> {
  const { cert: certPath, key: keyPath, 'psk-file': pskPath } = values;
  const access = new AccessList({
    allow: values.allow.map((t) => asUsage('allow', () => parseCidr(t).text)),
    deny: values.deny.map((t) => asUsage('deny', () => parseCidr(t).text)),
  });
  const wantsCert = values.tls || certPath !== undefined || keyPath !== undefined;
  if (pskPath !== undefined && wantsCert) throw new SocketkitError('ERR_USAGE', 'choose one: --tls with --cert/--key, or --psk-file');
  if (wantsCert && (certPath === undefined || keyPath === undefined)) {
    throw new SocketkitError('ERR_USAGE', "--tls needs --cert FILE and --key FILE (make them with 'socketkit cert')");
  }
  const mode: SecurityMode = pskPath !== undefined ? 'psk' : wantsCert ? 'tls' : 'plain';
  const announce = options.announce ?? true;
  if (options.requireSecure && options.endpoint) {
    const warning = requireSecureListener(options.endpoint, mode, values.insecure === true);
    if (warning && announce) report.log(`${warning} (as --insecure asked)`);
  }
  const onHandshakeError = (peer: string, err: SocketkitError): void =>
    report.event('refused', { peer, reason: err.message, code: err.code }, `! ${peer} refused: ${err.message} (${err.code})`);
  let transport: ListenTransport | undefined;
  let fingerprint: string | undefined;
  if (mode === 'psk') {
    const psk = await loadPskFile(pskPath!);
    transport = tlsListenTransport({ psk, onHandshakeError });
    if (announce) report.event('security', { mode, identity: psk.identity }, `TLS-PSK: only clients with the key in ${pskPath} (identity '${psk.identity}') get in`);
  } else if (mode === 'tls') {
    const [cert, key] = await Promise.all([readPem('cert', certPath!), readPem('key', keyPath!)]);
    const st = await stat(keyPath!);
    if ((st.mode & 0o077) !== 0 && announce) report.log(`warning: --key ${keyPath} can be read by others (mode ${(st.mode & 0o777).toString(8)}); run 'chmod 600 ${keyPath}'`);
    transport = tlsListenTransport({ cert, key, onHandshakeError });
    fingerprint = certificateFingerprint(cert);
    if (announce) report.event('security', { mode, fingerprint }, `TLS: certificate SHA-256 ${fingerprint} (clients: --pin ${fingerprint}, or --ca ${certPath})`);
  }
  if (!access.empty && announce) {
    const rules = [...access.allow.map((r) => `allow ${r.text}`), ...access.deny.map((r) => `deny ${r.text}`)];
    report.event('access', { allow: access.allow.map((r) => r.text), deny: access.deny.map((r) => r.text) }, `access: ${rules.join(', ')}; everyone else ${access.allow.length > 0 ? 'refused' : 'admitted'}`);
  }
  return {
    mode,
    listen: { ...(transport ? { transport } : {}), ...(access.empty ? {} : { admit: access.admit }) },
    ...(fingerprint !== undefined ? { fingerprint } : {}),
    access,
  };
}

/** What a connecting command needs: spread `connect` into the client's options. */
export interface ClientSecurity {
  readonly mode: SecurityMode;
  readonly connect: { readonly transport?: ConnectTransport };
  /** What `transport` was made from: a load thread makes its own from it (a transport cannot be sent to a thread). */
  readonly tls?: TlsClientOptions;
}

/**
 * Reads the client security options. `--ca` and `--pin` imply `--tls`; `--tls` alone verifies
 * against the system CAs. Throws ERR_USAGE for contradictory options, ERR_TLS_CONFIG for
 * unusable files.
 */
export async function clientSecurity(values: ClientSecurityValues): Promise<ClientSecurity> {
  const { ca: caPath, pin, 'psk-file': pskPath } = values;
  const wantsTls = values.tls || caPath !== undefined || pin !== undefined;
  if (pskPath !== undefined && wantsTls) throw new SocketkitError('ERR_USAGE', 'a pre-shared key replaces certificates: --psk-file cannot be combined with --tls, --ca or --pin');
  if (pskPath !== undefined) {
    const tls = { psk: await loadPskFile(pskPath) };
    return { mode: 'psk', connect: { transport: tlsConnectTransport(tls) }, tls };
  }
  if (!wantsTls) return { mode: 'plain', connect: {} };
  const ca = caPath === undefined ? undefined : await readPem('ca', caPath);
  const pinned = pin === undefined ? undefined : asUsage('pin', () => parsePin(pin));
  const tls = { ...(ca ? { ca } : {}), ...(pinned !== undefined ? { pin: pinned } : {}) };
  return { mode: 'tls', connect: { transport: tlsConnectTransport(tls) }, tls };
}

/**
 * The security options in `values` as command-line arguments again, for a command that starts
 * copies of itself (cluster workers) which must be set up the same way.
 */
export function securityArgs(values: Values): string[] {
  const out: string[] = [];
  for (const [name, spec] of Object.entries({ ...SERVER_SECURITY_OPTIONS, ...CLIENT_SECURITY_OPTIONS, ...INSECURE_OPTION })) {
    const v = values[name];
    if (spec.type === 'boolean') {
      if (v === true) out.push(`--${name}`);
    } else {
      for (const item of list(values, name)) out.push(`--${name}`, item);
    }
  }
  return out;
}

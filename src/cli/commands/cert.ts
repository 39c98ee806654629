/**
 * `socketkit cert`: a self-signed certificate and key for `--tls` servers (no OpenSSL binary
 * needed), the fingerprint clients pin, and pre-shared key files for `--psk-file`.
 */
import { chmod, readFile, writeFile } from 'node:fs/promises';
import type { Command } from '../command.js';
import { SocketkitError, toSocketkitError } from '../../core/errors.js';
import { createReporter } from '../report.js';
import { flag, parseCount, str } from '../values.js';
import { asUsage } from '../usage.js';
import {
  DEFAULT_CERT_DAYS,
  DEFAULT_CERT_FILE,
  DEFAULT_CERT_NAME,
  DEFAULT_KEY_FILE,
  DEFAULT_PSK_IDENTITY,
  MAX_CERT_DAYS,
  certificateFingerprint,
  formatPsk,
  generateCertificate,
  parseAltName,
  generatePsk,
} from '../../security/index.js';

/** Writes `data` to `path` with `mode`; refuses to replace a file unless `force`. */
async function writeNew(path: string, data: string, mode: number, force: boolean): Promise<void> {
  try {
    await writeFile(path, data, { mode, flag: force ? 'w' : 'wx' });
    // An existing file keeps its old mode through writeFile: set it.
    await chmod(path, mode);
  } catch (err) {
    if ((err as { code?: string }).code === 'EEXIST') throw new SocketkitError('ERR_EXISTS', `${path} exists; use --force to replace it`);
    throw toSocketkitError(err, path);
  }
}

const command: Command = {
  name: 'cert',
  summary: 'Make a self-signed TLS certificate and key (and print the fingerprint clients pin), or a pre-shared key file.',
  args: '',
  description:
    'Writes an ECDSA P-256 certificate and its key (mode 600). The certificate names NAME and every --san, plus localhost, ' +
    '127.0.0.1 and ::1. Its SHA-256 fingerprint goes to stdout: give it to clients as --pin, or give them the certificate ' +
    'as --ca. --fingerprint FILE prints the fingerprint of an existing certificate; --psk FILE writes a new random ' +
    '32-byte pre-shared key (IDENTITY:HEXKEY, mode 600) for --psk-file on both machines.',
  options: {
    cert: { type: 'string', value: 'FILE', help: 'where to write the certificate', default: DEFAULT_CERT_FILE },
    key: { type: 'string', value: 'FILE', help: 'where to write the private key (mode 600)', default: DEFAULT_KEY_FILE },
    name: { type: 'string', value: 'NAME', help: 'the host name (or IP address) the certificate is for', default: DEFAULT_CERT_NAME },
    san: { type: 'string', value: 'NAME', multiple: true, help: 'another name: DNS:host.example, IP:192.0.2.7, or a bare name or address' },
    days: { type: 'string', value: 'N', help: 'days of validity', default: String(DEFAULT_CERT_DAYS) },
    force: { type: 'boolean', help: 'replace existing files' },
    fingerprint: { type: 'string', value: 'FILE', help: 'print the SHA-256 fingerprint of this certificate instead' },
    psk: { type: 'string', value: 'FILE', help: 'write a new pre-shared key file instead of a certificate' },
    identity: { type: 'string', value: 'NAME', help: 'with --psk: the identity the key goes by', default: DEFAULT_PSK_IDENTITY },
  },
  positionals: { min: 0, max: 0 },
  examples: [
    'socketkit cert --name files.example.org --san IP:192.0.2.7',
    'socketkit echo-server 0.0.0.0:9800 --cert socketkit-cert.pem --key socketkit-key.pem',
    'socketkit echo files.example.org:9800 hello --pin <fingerprint>',
    'socketkit cert --fingerprint socketkit-cert.pem',
    'socketkit cert --psk shared.psk',
  ],
  async run({ values, io, global }) {
    const report = createReporter(io, global);
    const force = flag(values, 'force');
    const show = str(values, 'fingerprint');
    if (show !== undefined) {
      let pem: Buffer;
      try {
        pem = await readFile(show);
      } catch (err) {
        throw toSocketkitError(err, show);
      }
      const fingerprint = certificateFingerprint(pem);
      report.result('fingerprint', { file: show, fingerprint }, fingerprint);
      return 0;
    }
    const pskPath = str(values, 'psk');
    if (pskPath !== undefined) {
      const psk = generatePsk(str(values, 'identity') ?? DEFAULT_PSK_IDENTITY);
      await writeNew(pskPath, formatPsk(psk), 0o600, force);
      report.log(`wrote ${pskPath}: a ${psk.key.length}-byte pre-shared key, identity '${psk.identity}', mode 600`);
      report.log(`copy it to the other machine (keeping mode 600) and use --psk-file ${pskPath} on both ends`);
      report.result('psk', { file: pskPath, identity: psk.identity, bytes: psk.key.length }, pskPath);
      return 0;
    }
    const certPath = str(values, 'cert') ?? DEFAULT_CERT_FILE;
    const keyPath = str(values, 'key') ?? DEFAULT_KEY_FILE;
    if (certPath === keyPath) throw new SocketkitError('ERR_USAGE', '--cert and --key must be different files');
    const days = parseCount('days', str(values, 'days') ?? String(DEFAULT_CERT_DAYS), 1, MAX_CERT_DAYS);
    const sans = values['san'];
    for (const s of Array.isArray(sans) ? sans : []) asUsage('san', () => parseAltName(s));
    const generated = await generateCertificate({
      commonName: str(values, 'name') ?? DEFAULT_CERT_NAME,
      altNames: Array.isArray(sans) ? sans : [],
      days,
    });
    // The key first: a certificate without its key is useless, a key alone is harmless to redo.
    await writeNew(keyPath, generated.key, 0o600, force);
    await writeNew(certPath, generated.cert, 0o644, force);
    const names = generated.altNames.map((n) => n.value).join(', ');
    const until = generated.notAfter.toISOString().slice(0, 10);
    report.log(`wrote ${certPath}: self-signed certificate for ${names}, valid until ${until}`);
    report.log(`wrote ${keyPath}: its private key (mode 600, keep it secret)`);
    report.log(`server: --cert ${certPath} --key ${keyPath}    clients: --pin ${generated.fingerprint}  (or --ca ${certPath})`);
    report.result(
      'cert',
      { cert: certPath, key: keyPath, fingerprint: generated.fingerprint, names: generated.altNames, notAfter: generated.notAfter.toISOString() },
      generated.fingerprint,
    );
    return 0;
  },
};

export default command;

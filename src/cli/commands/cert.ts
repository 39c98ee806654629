/**
 * `socketkit cert`: a self-signed certificate and key for `--tls` servers (no OpenSSL binary
 * needed), the fingerprint clients pin, and pre-shared key files for `--psk-file`.
 */
import { chmod, readFile, writeFile } from 'node:fs/promises';
import { defineCommand } from '../command.js';
import { SocketkitError, toSocketkitError } from '../../core/errors.js';
import { createReporter } from '../report.js';
import { count, list, text, toggle } from '../options.js';
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

function refuseOthers(given: ReadonlySet<string>, mode: string, what: string, others: readonly string[]): void {
  const wrong = others.filter((n) => given.has(n));
  if (wrong.length > 0) {
    throw new SocketkitError('ERR_USAGE', `--${mode} ${what}: ${wrong.map((n) => `--${n}`).join(', ')} ${wrong.length === 1 ? 'does' : 'do'} not apply`);
  }
}

export default defineCommand({
  name: 'cert',
  summary: 'Make a self-signed TLS certificate and key (and print the fingerprint clients pin), or a pre-shared key file.',
  args: '',
  description:
    'Writes an ECDSA P-256 certificate and its key (mode 600). The certificate names NAME and every --san, plus localhost, ' +
    '127.0.0.1 and ::1. Its SHA-256 fingerprint goes to stdout: give it to clients as --pin, or give them the certificate ' +
    'as --ca. --fingerprint FILE prints the fingerprint of an existing certificate; --psk FILE writes a new random ' +
    '32-byte pre-shared key (IDENTITY:HEXKEY, mode 600) for --psk-file on both machines.',
  options: {
    cert: text('where to write the certificate', { value: 'FILE', default: DEFAULT_CERT_FILE }),
    key: text('where to write the private key (mode 600)', { value: 'FILE', default: DEFAULT_KEY_FILE }),
    name: text('the host name (or IP address) the certificate is for', { value: 'NAME', default: DEFAULT_CERT_NAME }),
    san: list('another name: DNS:host.example, IP:192.0.2.7, or a bare name or address', { value: 'NAME' }),
    days: count('days of validity', { default: DEFAULT_CERT_DAYS, min: 1, max: MAX_CERT_DAYS }),
    force: toggle('replace existing files'),
    fingerprint: text('print the SHA-256 fingerprint of this certificate instead', { value: 'FILE' }),
    psk: text('write a new pre-shared key file instead of a certificate', { value: 'FILE' }),
    identity: text('with --psk: the identity the key goes by', { value: 'NAME', default: DEFAULT_PSK_IDENTITY, needs: 'psk' }),
  },
  positionals: { min: 0, max: 0 },
  examples: [
    'socketkit cert --name files.example.org --san IP:192.0.2.7',
    'socketkit echo-server 0.0.0.0:9800 --cert socketkit-cert.pem --key socketkit-key.pem',
    'socketkit echo files.example.org:9800 hello --pin <fingerprint>',
    'socketkit cert --fingerprint socketkit-cert.pem',
    'socketkit cert --psk shared.psk',
  ],
  async run({ values, given, io, global }) {
    // Each mode reads its own options; one given to another mode is a usage error, not ignored.
    if (values.fingerprint !== undefined) refuseOthers(given, 'fingerprint', 'only reads a certificate', ['cert', 'key', 'name', 'san', 'days', 'force', 'psk', 'identity']);
    else if (values.psk !== undefined) refuseOthers(given, 'psk', 'writes a pre-shared key, not a certificate', ['cert', 'key', 'name', 'san', 'days']);
    const report = createReporter(io, global);
    const force = values.force;
    const show = values.fingerprint;
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
    const pskPath = values.psk;
    if (pskPath !== undefined) {
      const psk = generatePsk(values.identity);
      await writeNew(pskPath, formatPsk(psk), 0o600, force);
      report.log(`wrote ${pskPath}: a ${psk.key.length}-byte pre-shared key, identity '${psk.identity}', mode 600`);
      report.log(`copy it to the other machine (keeping mode 600) and use --psk-file ${pskPath} on both ends`);
      report.result('psk', { file: pskPath, identity: psk.identity, bytes: psk.key.length }, pskPath);
      return 0;
    }
    const certPath = values.cert;
    const keyPath = values.key;
    if (certPath === keyPath) throw new SocketkitError('ERR_USAGE', '--cert and --key must be different files');
    for (const s of values.san) asUsage('san', () => parseAltName(s));
    asUsage('name', () => parseAltName(values.name));
    const generated = await generateCertificate({ commonName: values.name, altNames: values.san, days: values.days });
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
});

/**
 * Self-signed certificates with node:crypto alone: no OpenSSL binary and no dependency.
 *
 * node:crypto makes keys and signatures but has no certificate builder, so the X.509 v3
 * structure is written with a small DER encoder (der.ts). The key is ECDSA P-256 (every TLS
 * stack accepts it, and handshakes are cheaper than RSA). Before a certificate is returned it
 * is parsed back by OpenSSL (X509Certificate), its signature verified with its own key, and
 * every subject alternative name checked — so a bug in the encoder cannot hand out a broken
 * certificate.
 */
import { X509Certificate, createHash, generateKeyPair, randomBytes, sign, type KeyObject } from 'node:crypto';
import { isIP } from 'node:net';
import { promisify } from 'node:util';
import { SocketkitError } from '../core/errors.js';
import * as der from './der.js';
import { DEFAULT_CERT_DAYS, DEFAULT_CERT_NAME, LOOPBACK_ALT_NAMES, MAX_CERT_DAYS } from './constants.js';

/** A subject alternative name: a DNS name or an IP address. */
export interface AltName {
  readonly type: 'dns' | 'ip';
  readonly value: string;
}

export interface CertificateOptions {
  /** The subject's common name, also added as a DNS or IP alternative name. Default `localhost`. */
  readonly commonName?: string;
  /** More alternative names: `DNS:example.org`, `IP:192.0.2.7`, or bare (an IP literal or a name). */
  readonly altNames?: readonly (string | AltName)[];
  /** Also name localhost, 127.0.0.1 and ::1, so the certificate verifies on loopback. Default true. */
  readonly includeLoopback?: boolean;
  /** Days of validity from now. Default 365. */
  readonly days?: number;
  /** The clock (tests). */
  readonly now?: Date;
}

export interface GeneratedCertificate {
  /** The certificate, PEM. */
  readonly cert: string;
  /** The private key, PKCS#8 PEM. Keep it secret (write it with mode 0600). */
  readonly key: string;
  /** SHA-256 fingerprint of the certificate, as `AB:CD:...`: what a client passes to `--pin`. */
  readonly fingerprint: string;
  readonly commonName: string;
  readonly altNames: readonly AltName[];
  readonly notBefore: Date;
  readonly notAfter: Date;
}

const OID = {
  commonName: '2.5.4.3',
  organization: '2.5.4.10',
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  extKeyUsage: '2.5.29.37',
  subjectAltName: '2.5.29.17',
  subjectKeyIdentifier: '2.5.29.14',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
} as const;

const DNS_NAME = /^(?=.{1,253}$)(\*\.)?[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62})(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62}))*$/;

/** Parses `DNS:name`, `IP:addr`, or a bare name or IP literal; throws ERR_INVALID_ARG when malformed. */
export function parseAltName(text: string): AltName {
  const t = text.trim();
  const m = /^(dns|ip):(.*)$/i.exec(t);
  const kind = m ? m[1]!.toLowerCase() : isIP(t.replace(/^\[|\]$/g, '')) ? 'ip' : 'dns';
  const value = (m ? m[2]! : t).trim().replace(/^\[|\]$/g, '');
  if (kind === 'ip') {
    if (isIP(value) === 0) throw new SocketkitError('ERR_INVALID_ARG', `'${text}' is not an IP address`);
    return { type: 'ip', value };
  }
  if (!DNS_NAME.test(value)) throw new SocketkitError('ERR_INVALID_ARG', `'${text}' is not a DNS name (or write IP:ADDRESS)`);
  return { type: 'dns', value: value.toLowerCase() };
}

function sameName(a: AltName, b: AltName): boolean {
  if (a.type !== b.type) return false;
  return a.type === 'ip' ? der.ipBytes(a.value).equals(der.ipBytes(b.value)) : a.value === b.value;
}

/** The SHA-256 fingerprint of a PEM or DER certificate, as `AB:CD:...`. */
export function certificateFingerprint(cert: string | Buffer): string {
  try {
    return new X509Certificate(cert).fingerprint256;
  } catch (err) {
    throw new SocketkitError('ERR_TLS_CONFIG', 'not a PEM or DER certificate', { cause: err });
  }
}

function name(commonName: string): Buffer {
  return der.sequence(
    der.set(der.sequence(der.oid(OID.organization), der.utf8String('socketkit'))),
    der.set(der.sequence(der.oid(OID.commonName), der.utf8String(commonName))),
  );
}

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return der.sequence(der.oid(id), ...(critical ? [der.boolean(true)] : []), der.octetString(value));
}

/** Builds and signs the certificate (DER) for `publicKey`, self-signed with `privateKey`. */
function buildCertificate(
  publicKey: KeyObject,
  privateKey: KeyObject,
  commonName: string,
  altNames: readonly AltName[],
  notBefore: Date,
  notAfter: Date,
): Buffer {
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  // A positive 127-bit serial (RFC 5280: at most 20 octets, unpredictable is best practice).
  const serial = randomBytes(16);
  serial[0] = (serial[0]! & 0x7f) | 0x01;
  const algorithm = der.sequence(der.oid(OID.ecdsaWithSha256));
  const subject = name(commonName);
  const extensions = der.sequence(
    // An end-entity certificate: not a CA, so it cannot sign others even if trusted with --ca.
    extension(OID.basicConstraints, true, der.sequence()),
    // digitalSignature (bit 0): all an ECDSA TLS server key does.
    extension(OID.keyUsage, true, der.tlv(0x03, Buffer.from([0x07, 0x80]))),
    extension(OID.extKeyUsage, false, der.sequence(der.oid(OID.serverAuth), der.oid(OID.clientAuth))),
    extension(OID.subjectAltName, false, der.sequence(...altNames.map(der.generalName))),
    extension(OID.subjectKeyIdentifier, false, der.octetString(Buffer.from(publicKeyId(spki)))),
  );
  const tbs = der.sequence(
    der.explicit(0, der.integer(2)), // version 3
    der.integer(serial),
    algorithm,
    subject, // issuer: self-signed
    der.sequence(der.time(notBefore), der.time(notAfter)),
    subject,
    spki,
    der.explicit(3, extensions),
  );
  const signature = sign('sha256', tbs, privateKey); // ECDSA-Sig-Value, DER
  return der.sequence(tbs, algorithm, der.bitString(signature));
}

/** A 20-byte key identifier (after RFC 7093 method 1: the leftmost 160 bits of a SHA-256). */
function publicKeyId(spki: Buffer): Uint8Array {
  // Hashing the whole SubjectPublicKeyInfo is as unique as hashing its key bits, and simpler.
  return createHash('sha256').update(spki).digest().subarray(0, 20);
}

/**
 * Generates a new ECDSA P-256 key and a self-signed certificate for it.
 *
 * @example
 * ```ts
 * const { cert, key, fingerprint } = await generateCertificate({ commonName: 'files.example.org' });
 * // server: tlsListenTransport({ cert, key }); client: tlsConnectTransport({ pin: fingerprint })
 * ```
 */
export async function generateCertificate(options: CertificateOptions = {}): Promise<GeneratedCertificate> {
  const days = options.days ?? DEFAULT_CERT_DAYS;
  if (!Number.isInteger(days) || days < 1 || days > MAX_CERT_DAYS) {
    throw new SocketkitError('ERR_INVALID_ARG', `certificate validity must be 1 to ${MAX_CERT_DAYS} days, not ${days}`);
  }
  const commonName = (options.commonName ?? DEFAULT_CERT_NAME).trim();
  const cnName = parseAltName(commonName);
  const names: AltName[] = [];
  const add = (n: AltName): void => {
    if (!names.some((m) => sameName(m, n))) names.push(n);
  };
  add(cnName);
  for (const a of options.altNames ?? []) add(typeof a === 'string' ? parseAltName(a) : a);
  if (options.includeLoopback ?? true) for (const a of LOOPBACK_ALT_NAMES) add(a);

  const now = options.now ?? new Date();
  // Backdated an hour so a peer whose clock is a little behind still accepts it.
  const notBefore = new Date(Math.floor(now.getTime() / 1000) * 1000 - 3600_000);
  const notAfter = new Date(notBefore.getTime() + 3600_000 + days * 86400_000);
  const { publicKey, privateKey } = await promisify(generateKeyPair)('ec', { namedCurve: 'P-256' });
  const certDer = buildCertificate(publicKey, privateKey, commonName, names, notBefore, notAfter);

  // Self-check through OpenSSL: parses, is signed by its own key, names what we asked for.
  const x = new X509Certificate(certDer);
  const ok =
    x.verify(publicKey) &&
    x.checkPrivateKey(privateKey) &&
    names.every((n) => (n.type === 'ip' ? x.checkIP(n.value) !== undefined : x.checkHost(n.value) !== undefined));
  if (!ok) throw new SocketkitError('ERR_INTERNAL', 'generated certificate failed its own check (a bug in socketkit)');
  return {
    cert: x.toString(),
    key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    fingerprint: x.fingerprint256,
    commonName,
    altNames: names,
    notBefore,
    notAfter,
  };
}

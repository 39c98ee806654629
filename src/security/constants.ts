/** Defaults and limits for TLS, PSK and access lists, in one place. */
import type { AltName } from './cert.js';

/** Name (CN and first alternative name) of a certificate made by `socketkit cert`. */
export const DEFAULT_CERT_NAME = 'localhost';
/** Validity of a generated certificate, days. */
export const DEFAULT_CERT_DAYS = 365;
/** The longest validity `socketkit cert` will write, days (about 100 years). */
export const MAX_CERT_DAYS = 36_500;
/** Names that make a certificate verify on loopback, added by default. */
export const LOOPBACK_ALT_NAMES: readonly AltName[] = [
  { type: 'dns', value: 'localhost' },
  { type: 'ip', value: '127.0.0.1' },
  { type: 'ip', value: '::1' },
];
/** Files `socketkit cert` writes when not told where. */
export const DEFAULT_CERT_FILE = 'socketkit-cert.pem';
export const DEFAULT_KEY_FILE = 'socketkit-key.pem';

/** The shortest pre-shared key accepted, bytes: 256 bits of secret. */
export const MIN_PSK_BYTES = 32;
/** The longest pre-shared key OpenSSL takes through Node's pskCallback, bytes. */
export const MAX_PSK_BYTES = 256;
/** Identity used when a PSK file holds only a key. */
export const DEFAULT_PSK_IDENTITY = 'socketkit';
/** The longest PSK identity, bytes (OpenSSL's PSK_MAX_IDENTITY_LEN is 128 in older releases). */
export const MAX_PSK_IDENTITY_BYTES = 128;
/** Bytes of key `socketkit cert --psk` writes. */
export const GENERATED_PSK_BYTES = 32;

/**
 * Cipher suites for PSK mode. TLS 1.3 first: with Node 20's (TLS 1.2-style) PSK callbacks,
 * OpenSSL can use a TLS 1.3 PSK only with SHA-256 suites, and does an (EC)DHE exchange with it,
 * so sessions have forward secrecy. TLS 1.2 fallback: ECDHE-PSK suites only, for the same reason.
 */
export const PSK_CIPHERS = 'TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256:ECDHE-PSK-CHACHA20-POLY1305:ECDHE-PSK-AES256-CBC-SHA384';

/** A server gives a client this long to finish its TLS handshake, ms (Node's default is 120 s). */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;

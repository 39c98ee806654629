/**
 * Certificate pins: the SHA-256 fingerprint of a server's certificate, as `socketkit cert`
 * prints it. Accepted as colon-separated or plain hex, any case; kept as `AB:CD:...`, the form
 * node:crypto reports (`X509Certificate.fingerprint256`, `getPeerCertificate().fingerprint256`).
 */
import { SocketkitError } from '../core/errors.js';

/** Normalises a SHA-256 fingerprint to upper-case colon-separated hex; throws ERR_INVALID_ARG when malformed. */
export function parsePin(text: string): string {
  const hex = text.trim().replace(/^sha-?256[:=/]/i, '').replace(/[:\s]/g, '');
  if (!/^[0-9a-f]{64}$/i.test(hex)) {
    throw new SocketkitError('ERR_INVALID_ARG', `pin '${text}' is not a SHA-256 fingerprint (64 hex digits, colons optional)`);
  }
  return formatFingerprint(hex);
}

/** Formats hex digits (with or without colons) as `AB:CD:...`. */
export function formatFingerprint(hex: string): string {
  const h = hex.replace(/:/g, '').toUpperCase();
  return h.match(/../g)?.join(':') ?? '';
}

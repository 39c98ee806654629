/**
 * Security for every TCP command: TLS and TLS-PSK transports, self-signed certificates,
 * fingerprint pins, PSK files, allow/deny lists, and the plaintext-listener policy.
 */
export * from './constants.js';
export { generateCertificate, certificateFingerprint, parseAltName, type AltName, type CertificateOptions, type GeneratedCertificate } from './cert.js';
export * from './pin.js';
export * from './psk.js';
export * from './access.js';
export * from './policy.js';
export * from './tls.js';

/**
 * Pre-shared keys (TLS-PSK): two machines that share a secret and nothing else.
 *
 * A PSK file holds one key and the identity it goes by, in one of two forms:
 * - text: `IDENTITY:HEXKEY` on one line (the identity optional: `HEXKEY` alone uses the identity
 *   `socketkit`). Lines starting with `#` and blank lines are ignored. The hex key is what
 *   `openssl s_client -psk` takes, so the same file serves OpenSSL tools.
 * - raw: the key's bytes themselves (`head -c 32 /dev/urandom > key`), identity `socketkit`.
 *   A file is raw when it is not printable text.
 * The key must be at least 32 bytes (256 bits): a PSK is only as strong as its entropy, and a
 * short or guessable one can be attacked offline from one recorded handshake. The file must not
 * be readable or writable by group or others (like ssh's private keys): `chmod 600 FILE`.
 */
import { randomBytes } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { SocketkitError, toSocketkitError } from '../core/errors.js';
import { DEFAULT_PSK_IDENTITY, GENERATED_PSK_BYTES, MAX_PSK_BYTES, MAX_PSK_IDENTITY_BYTES, MIN_PSK_BYTES } from './constants.js';

/** A pre-shared key and the identity the client sends to name it. */
export interface PreSharedKey {
  readonly identity: string;
  readonly key: Buffer;
}

function bad(source: string, why: string): SocketkitError {
  return new SocketkitError('ERR_TLS_CONFIG', `PSK file ${source}: ${why}`, { hint: 'make-psk' });
}

function checkKey(source: string, key: Buffer): Buffer {
  if (key.length < MIN_PSK_BYTES) {
    throw bad(source, `key is ${key.length} bytes; at least ${MIN_PSK_BYTES} random bytes are needed`);
  }
  if (key.length > MAX_PSK_BYTES) throw bad(source, `key is ${key.length} bytes; at most ${MAX_PSK_BYTES} are supported`);
  return key;
}

function checkIdentity(source: string, identity: string): string {
  if (identity.length === 0) throw bad(source, 'empty identity before the colon');
  if (Buffer.byteLength(identity) > MAX_PSK_IDENTITY_BYTES || !/^[\x21-\x7e]+$/.test(identity)) {
    throw bad(source, `identity must be 1 to ${MAX_PSK_IDENTITY_BYTES} printable ASCII characters without spaces`);
  }
  return identity;
}

/** True when `buf` is text a person wrote (printable ASCII and whitespace only). */
function isText(buf: Buffer): boolean {
  for (const b of buf) if (b !== 0x09 && b !== 0x0a && b !== 0x0d && (b < 0x20 || b > 0x7e)) return false;
  return true;
}

/** Parses the contents of a PSK file (see the module comment for the format). */
export function parsePsk(content: Buffer, source = 'PSK'): PreSharedKey {
  if (!isText(content)) return { identity: DEFAULT_PSK_IDENTITY, key: checkKey(source, Buffer.from(content)) };
  const lines = content
    .toString('ascii')
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  if (lines.length !== 1) throw bad(source, `expected one 'IDENTITY:HEXKEY' line, found ${lines.length}`);
  const line = lines[0]!;
  const colon = line.lastIndexOf(':');
  const identity = colon < 0 ? DEFAULT_PSK_IDENTITY : checkIdentity(source, line.slice(0, colon));
  const hex = line.slice(colon + 1).trim();
  if (!/^([0-9a-f]{2})+$/i.test(hex)) throw bad(source, 'the key must be hex digits (an even number of them)');
  return { identity, key: checkKey(source, Buffer.from(hex, 'hex')) };
}

/**
 * Reads a PSK file. Refuses (ERR_TLS_CONFIG) a file that group or others may read or write:
 * anyone who can read it can impersonate either end.
 */
export async function loadPskFile(path: string): Promise<PreSharedKey> {
  let content: Buffer;
  try {
    const st = await stat(path);
    if (!st.isFile()) throw bad(path, 'not a regular file');
    if ((st.mode & 0o077) !== 0) {
      throw bad(path, `permissions ${(st.mode & 0o777).toString(8)} let others read or change the key; run 'chmod 600 ${path}'`);
    }
    content = await readFile(path);
  } catch (err) {
    if (err instanceof SocketkitError) throw err;
    throw toSocketkitError(err, path);
  }
  return parsePsk(content, path);
}

/** A new random key of 32 bytes with the given identity. */
export function generatePsk(identity = DEFAULT_PSK_IDENTITY): PreSharedKey {
  return { identity: checkIdentity('(new)', identity), key: randomBytes(GENERATED_PSK_BYTES) };
}

/** The text form of a PSK file: a comment and `IDENTITY:HEXKEY`. */
export function formatPsk(psk: PreSharedKey): string {
  return `# socketkit pre-shared key (TLS-PSK): keep secret, mode 600; same file on both machines\n${psk.identity}:${psk.key.toString('hex')}\n`;
}

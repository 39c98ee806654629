/**
 * `--hash` for the four transfer commands: which digest verifies every file. The two sides agree
 * in the hello (SKFT version 2): either side asking for SHA-256 gets SHA-256, else one asking for
 * XXH3-128 gets it, else SHA-256. Left out, this side asks for nothing and follows its peer.
 */
import { SocketkitError } from '../core/errors.js';
import { HASH_NAMES, type HashName } from '../transfer/digest.js';
import type { OptionSpec } from './command.js';
import { custom } from './options.js';

function parseHash(option: string, text: string): HashName {
  const name = HASH_NAMES.find((h) => h === text.toLowerCase());
  if (name === undefined) throw new SocketkitError('ERR_USAGE', `--${option}: '${text}' is not ${HASH_NAMES.join(' or ')}`);
  return name;
}

export const HASH_OPTION = {
  hash: custom(
    'the digest every file is verified with: sha256 (what sha256sum prints; the default) or xxh128 (XXH3-128: several times faster, for accidents, not attackers); the sides agree, and sha256 wins',
    parseHash,
    { value: 'sha256|xxh128' },
  ),
} as const satisfies Readonly<Record<string, OptionSpec>>;

/** The library option for the parsed `--hash` (nothing when it was not given: follow the peer). */
export function hashOption(hash: HashName | undefined): { readonly hash?: HashName } {
  return hash === undefined ? {} : { hash };
}

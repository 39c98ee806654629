/**
 * The hashes a framed transfer verifies files with, behind one small interface.
 *
 * - `sha256` (the default): Node's SHA-256, whose digest is what `sha256sum` prints, so it can
 *   be compared with published checksums.
 * - `xxh128`: XXH3-128 from `hash-wasm` (WebAssembly, no native build). Not cryptographic: it
 *   catches accidents (a bad disk, a bug, a truncated copy) several times faster than SHA-256,
 *   as rsync and croc use xxHash. It is used only when one side asks for it and both speak
 *   SKFT version 2 (see `agreeHash` in protocol.ts).
 */
import { createHash, type Hash } from 'node:crypto';
import { createXXHash128, type IHasher } from 'hash-wasm';

/** A hash a transfer can verify files with. */
export type HashName = 'sha256' | 'xxh128';

/** Every hash this build can verify with, in the order it prefers them when nobody asks. */
export const HASH_NAMES: readonly HashName[] = ['sha256', 'xxh128'];

/** How each hash is called in messages. */
export const HASH_LABELS: Readonly<Record<HashName, string>> = { sha256: 'SHA-256', xxh128: 'XXH3-128' };

/** Hex digits of each hash's digest. */
export const DIGEST_HEX_LENGTH: Readonly<Record<HashName, number>> = { sha256: 64, xxh128: 32 };

/** Whether `v` names a hash this build knows. */
export function isHashName(v: unknown): v is HashName {
  return v === 'sha256' || v === 'xxh128';
}

/** The running hash of one file's bytes. */
export interface FileDigest {
  readonly name: HashName;
  update(bytes: Uint8Array): void;
  /** The hex digest of the bytes so far; hashing can go on after it. */
  peek(): string;
  /** The hex digest of all the bytes; the digest is finished. */
  digest(): string;
}

class Sha256Digest implements FileDigest {
  readonly name = 'sha256';
  readonly #hash: Hash = createHash('sha256');

  update(bytes: Uint8Array): void {
    this.#hash.update(bytes);
  }

  peek(): string {
    return this.#hash.copy().digest('hex');
  }

  digest(): string {
    return this.#hash.digest('hex');
  }
}

class Xxh128Digest implements FileDigest {
  readonly name = 'xxh128';
  readonly #hasher: IHasher;

  constructor(hasher: IHasher) {
    this.#hasher = hasher;
    hasher.init();
  }

  update(bytes: Uint8Array): void {
    this.#hasher.update(bytes);
  }

  peek(): string {
    // The state is saved, finished for the digest, and put back.
    const state = this.#hasher.save();
    const hex = this.#hasher.digest('hex');
    this.#hasher.load(state);
    return hex;
  }

  digest(): string {
    return this.#hasher.digest('hex');
  }
}

/** A fresh digest of the named hash. (Asynchronous: XXH3-128's WebAssembly is instantiated.) */
export async function createDigest(name: HashName): Promise<FileDigest> {
  return name === 'sha256' ? new Sha256Digest() : new Xxh128Digest(await createXXHash128());
}

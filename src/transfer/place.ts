/**
 * Putting a verified file in place: durable, and without replacing anything unless asked.
 *
 * Partial files: data is written to `.NAME.sk-partial` beside `NAME` (hidden, with a suffix no
 * other program uses), so a user's own `NAME.part` or `NAME.tmp` is never taken for an unfinished
 * socketkit transfer. Only a file with that name is ever truncated or resumed into; a user's
 * file with the final name is continued only with `--resume` and only once the sender has
 * confirmed it is a prefix of the offered file (see {@link adoptForResume}).
 */
import { constants as fsc, readFileSync, type Stats } from 'node:fs';
import { link as hardLink, lstat, open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { SocketkitError, toSocketkitError } from '../core/errors.js';
import { PART_SUFFIX } from './constants.js';

/** Where the data of `target` is written until it is verified: `DIR/.NAME.sk-partial`. */
export function partialPath(target: string): string {
  return join(dirname(target), `.${basename(target)}${PART_SUFFIX}`);
}

/** True when `path`'s name is one {@link partialPath} makes. */
export function isPartialName(path: string): boolean {
  const name = basename(path);
  return name.startsWith('.') && name.endsWith(PART_SUFFIX) && name.length > 1 + PART_SUFFIX.length;
}

let cachedUmask: number | undefined;

/**
 * The process's umask. Read from `/proc/self/status` (Linux 4.7+), which only reads it;
 * elsewhere from `process.umask()` without arguments (documented as deprecated because, in a
 * multithreaded program, the usual way to read it is to set and restore it; Node's call without
 * arguments does just that, which is harmless in a CLI's main thread). Read once: socketkit
 * never changes it.
 */
export function processUmask(): number {
  if (cachedUmask !== undefined) return cachedUmask;
  let mask: number | undefined;
  try {
    const m = /^Umask:\s*([0-7]+)$/m.exec(readFileSync('/proc/self/status', 'latin1'));
    if (m) mask = parseInt(m[1]!, 8);
  } catch {
    // Not Linux, or /proc is not mounted.
  }
  if (mask === undefined) {
    try {
      mask = process.umask();
    } catch {
      // Worker threads cannot read it: be as strict as the common default.
      mask = 0o022;
    }
  }
  cachedUmask = mask & 0o777;
  return cachedUmask;
}

/**
 * The permission bits a received file or folder gets: the offered bits, without setuid, setgid
 * or sticky, less the umask, as `cp`, `tar` and `rsync` do. A peer cannot make a received file
 * world-writable where the user's umask says otherwise.
 */
export function receivedMode(offered: number): number {
  return offered & 0o777 & ~processUmask();
}

/**
 * `--resume` with a user's file under the final name: the file is continued only once the sender
 * has confirmed that it is a prefix of the offered file (it begins at the offset the receiver
 * offered, which it does only when its hash of that prefix matched). Then, and only then, the
 * file is moved to its partial name to be continued. Otherwise it is left exactly as it was.
 *
 * @param existing - The user's file (the final name).
 * @param part - Its partial name ({@link partialPath}).
 * @param offered - Bytes of it the receiver offered as the prefix.
 * @param begin - The offset the sender begins at.
 * @throws SocketkitError `ERR_EXISTS` when the sender did not confirm the prefix (the file stays).
 */
export async function adoptForResume(existing: string, part: string, offered: number, begin: number, shown: string): Promise<void> {
  if (offered > 0 && begin !== offered) {
    throw new SocketkitError('ERR_EXISTS', `'${shown}' already exists and is not the beginning of the offered file (its SHA-256 differs); it was left as it was`, { hint: 'exists-replace' });
  }
  await rename(existing, part).catch((err: unknown) => {
    throw toSocketkitError(err, existing);
  });
}

/**
 * Removes a partial file that holds no bytes (nothing to resume from), e.g. after a protocol
 * error before any data was written. Only partial names are touched; errors are ignored.
 */
export async function removeIfEmpty(part: string): Promise<void> {
  if (!isPartialName(part)) return;
  const st = await lstat(part).catch(() => undefined);
  if (st?.isFile() === true && st.size === 0) await unlink(part).catch(() => undefined);
}

/** lstat, or undefined when nothing is there; other failures are coded errors. */
export async function lstatOrUndefined(path: string): Promise<Stats | undefined> {
  try {
    return await lstat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw toSocketkitError(err, path);
  }
}

/**
 * Moves the verified partial file to its final name. Without `force` the move must not replace
 * anything, even a file created since the offer was checked: a hard link fails if the name is
 * taken, atomically; where hard links are unsupported, a check then a rename.
 */
export async function place(part: string, target: string, force: boolean): Promise<void> {
  if (force) {
    await rename(part, target).catch((err: unknown) => {
      throw toSocketkitError(err, target);
    });
    return;
  }
  try {
    await hardLink(part, target);
    await unlink(part);
    return;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw new SocketkitError('ERR_EXISTS', `${target} appeared during the transfer; the verified data is kept in ${basename(part)}`);
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'EXDEV' && code !== 'EMLINK') throw toSocketkitError(err, target);
  }
  if ((await lstatOrUndefined(target)) !== undefined) throw new SocketkitError('ERR_EXISTS', `${target} appeared during the transfer; the verified data is kept in ${basename(part)}`);
  await rename(part, target).catch((err: unknown) => {
    throw toSocketkitError(err, target);
  });
}

/** Makes a rename durable: fsync of the folder that holds the new name (best effort where unsupported). */
export async function syncDir(dir: string): Promise<void> {
  let fh: FileHandle | undefined;
  try {
    fh = await open(dir, fsc.O_RDONLY);
    await fh.sync();
  } catch {
    // Some file systems refuse fsync on a folder; the file itself is already synced.
  } finally {
    await fh?.close().catch(() => undefined);
  }
}

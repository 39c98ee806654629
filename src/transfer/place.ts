/**
 * Putting a verified file in place: durable, and without replacing anything unless asked.
 */
import { constants as fsc, type Stats } from 'node:fs';
import { link as hardLink, lstat, open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { basename } from 'node:path';
import { SocketkitError, toSocketkitError } from '../core/errors.js';

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
 * Moves the verified `.part` to its final name. Without `force` the move must not replace
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

/**
 * Paths from the wire, and where they may land.
 *
 * A receiver never trusts a peer's path: it must be relative, `/`-separated, free of `.`, `..`
 * and empty components, of backslashes and of every code point a terminal acts on (C0, DEL,
 * C1, line/paragraph separators, bidirectional controls: see `core/terminal-text.ts`), so a
 * name that could rewrite a screen never becomes a file name either; once joined to the target
 * folder it must stay inside it even through symbolic links that already exist there. What
 * fails is refused with `ERR_PATH_UNSAFE`; nothing is created outside the target folder.
 *
 * The checks guard against the remote peer. A local user racing the receiver (swapping a
 * folder for a link between the check and the write) is out of scope, though partial files
 * are opened with O_NOFOLLOW, so even then the final component is never a followed link.
 */
import { lstat, mkdir, realpath } from 'node:fs/promises';
import { join, sep } from 'node:path';
import { SocketkitError, toSocketkitError } from '../core/errors.js';
import { MAX_NAME_BYTES, MAX_PATH_BYTES } from './constants.js';
import { hasTerminalUnsafe } from '../core/terminal-text.js';
import { clean } from './protocol.js';

/** The coded error for a path that would leave the target folder or is not a plain relative path. */
export function unsafePath(path: string, why: string): SocketkitError {
  return new SocketkitError('ERR_PATH_UNSAFE', `refused unsafe path '${clean(path, 200)}': ${why}`);
}

/**
 * Checks a relative path received from a peer.
 *
 * @returns Why it is refused, or undefined if it is a plain relative path.
 */
export function checkWirePath(path: string): string | undefined {
  if (path.length === 0) return 'empty path';
  if (Buffer.byteLength(path, 'utf8') > MAX_PATH_BYTES) return `longer than ${MAX_PATH_BYTES} bytes`;
  if (hasTerminalUnsafe(path)) return 'contains control characters (C0, C1, separators or bidirectional controls)';
  if (path.includes('\\')) return 'contains a backslash';
  if (path.startsWith('/')) return 'absolute path';
  if (/^[A-Za-z]:/.test(path)) return 'drive-letter path';
  for (const part of path.split('/')) {
    if (part === '') return 'empty path component';
    if (part === '.' || part === '..') return `'${part}' component`;
    if (Buffer.byteLength(part, 'utf8') > MAX_NAME_BYTES) return `a component is longer than ${MAX_NAME_BYTES} bytes`;
  }
  return undefined;
}

/** True when `inner` (a real path) is `root` or lies inside it. */
function isInside(root: string, inner: string): boolean {
  return inner === root || inner.startsWith(root.endsWith(sep) ? root : root + sep);
}

/**
 * Resolves a checked wire path under `root` (a real path: no links in it) and, if asked,
 * creates its missing parent folders. Links that already exist under `root` are followed only
 * when they lead to a place inside `root`.
 *
 * @param root - The target folder, as returned by `realpath`.
 * @param wirePath - A path that passed {@link checkWirePath}.
 * @param createParents - Whether to create missing parent folders (mode 0755 before umask).
 * @returns The absolute path of the entry (its last component unchecked: the caller lstat()s it).
 * @throws SocketkitError `ERR_PATH_UNSAFE` for an escape, `ERR_EXISTS` when a file stands where
 *   a folder is needed, or the coded error of the failing file system call.
 */
export async function resolveUnder(root: string, wirePath: string, createParents: boolean): Promise<string> {
  const why = checkWirePath(wirePath);
  if (why !== undefined) throw unsafePath(wirePath, why);
  const parts = wirePath.split('/');
  let dir = root;
  for (let i = 0; i < parts.length - 1; i++) {
    dir = join(dir, parts[i]!);
    let st;
    try {
      st = await lstat(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw toSocketkitError(err, dir);
      if (!createParents) continue;
      try {
        await mkdir(dir, { mode: 0o755 });
      } catch (mkErr) {
        // Another connection may have created it meanwhile; anything else is real.
        if ((mkErr as NodeJS.ErrnoException).code !== 'EEXIST') throw toSocketkitError(mkErr, dir);
      }
      st = await lstat(dir);
    }
    if (st.isSymbolicLink()) {
      let real: string;
      try {
        real = await realpath(dir);
      } catch {
        throw unsafePath(wirePath, `'${parts.slice(0, i + 1).join('/')}' is a dangling symbolic link`);
      }
      if (!isInside(root, real)) throw unsafePath(wirePath, `'${parts.slice(0, i + 1).join('/')}' is a symbolic link leading outside the target folder`);
      st = await lstat(real);
    }
    if (!st.isDirectory()) {
      throw new SocketkitError('ERR_EXISTS', `cannot create '${clean(wirePath, 200)}': '${parts.slice(0, i + 1).join('/')}' exists and is not a folder`);
    }
  }
  const target = join(root, ...parts);
  // Defence in depth: whatever the walk above concluded, the parent must really be inside.
  if (createParents || parts.length === 1) {
    const parentReal = await realpath(parts.length === 1 ? root : join(root, ...parts.slice(0, -1))).catch(() => undefined);
    if (parentReal !== undefined && !isInside(root, parentReal)) throw unsafePath(wirePath, 'leads outside the target folder');
  }
  return target;
}

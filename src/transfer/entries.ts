/**
 * What a sender offers: the files and folders named on the command line, folders walked
 * recursively, each with the relative path it will have at the receiver.
 */
import { lstat, open, readdir, stat } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { SocketkitError, toSocketkitError } from '../core/errors.js';

/** One file or folder to send. */
export interface TransferEntry {
  readonly kind: 'file' | 'dir';
  /** The path at the receiver: relative, `/`-separated, starting with the name given on the command line. */
  readonly path: string;
  /** Where it is here (absolute). */
  readonly source: string;
  /** Bytes (0 for a folder). */
  readonly size: number;
  /** Permission bits. */
  readonly mode: number;
  /** Modification time, milliseconds since the epoch. */
  readonly mtimeMs: number;
}

/** Something found in a walk that is not sent, and why. */
export interface SkippedEntry {
  readonly source: string;
  readonly reason: string;
}

/** Options of {@link collectEntries}. */
export interface CollectOptions {
  /** Told about each symbolic link, socket or device found inside a folder (none is sent). */
  readonly onSkip?: (skipped: SkippedEntry) => void;
}

/**
 * Lists what sending `paths` means: each path is one top-level entry named after its last
 * component (`~/photos` arrives as `photos/...`), folders are walked depth-first in name order.
 *
 * Links named on the command line are followed (the user asked for them); links found inside a
 * folder are skipped and reported, so a served folder can never leak what lies outside it.
 *
 * @throws SocketkitError `ERR_NOT_FOUND` / `ERR_PERMISSION` for a path that cannot be read,
 *   `ERR_USAGE` for two paths with the same name or a path that names no entry (`/`).
 */
export async function collectEntries(paths: readonly string[], options: CollectOptions = {}): Promise<TransferEntry[]> {
  const entries: TransferEntry[] = [];
  const names = new Set<string>();
  for (const given of paths) {
    const source = resolve(given);
    const name = basename(source);
    if (name === '' || name === '.' || name === '..') {
      throw new SocketkitError('ERR_INVALID_ARG', `cannot send '${given}': name a file or folder, not the file system root`);
    }
    if (names.has(name)) throw new SocketkitError('ERR_INVALID_ARG', `two paths are named '${name}'; each top-level name must be unique`);
    names.add(name);
    let st;
    try {
      st = await stat(source);
    } catch (err) {
      throw toSocketkitError(err, given);
    }
    if (st.isFile()) {
      // A file named on the command line that cannot be read is refused now, not at each client.
      try {
        await (await open(source, 'r')).close();
      } catch (err) {
        throw toSocketkitError(err, given);
      }
      entries.push({ kind: 'file', path: name, source, size: st.size, mode: st.mode & 0o777, mtimeMs: st.mtimeMs });
    } else if (st.isDirectory()) {
      entries.push({ kind: 'dir', path: name, source, size: 0, mode: st.mode & 0o777, mtimeMs: st.mtimeMs });
      await walk(source, name, entries, options);
    } else {
      throw new SocketkitError('ERR_INVALID_ARG', `cannot send '${given}': not a regular file or folder`);
    }
  }
  return entries;
}

/** Appends the contents of `dir` (wire path `prefix`), depth-first, without recursion limits. */
async function walk(dir: string, prefix: string, out: TransferEntry[], options: CollectOptions): Promise<void> {
  // An explicit stack of folders still to list; each is listed and its children pushed in
  // reverse so that they come off in name order.
  const stack: Array<{ dir: string; prefix: string }> = [{ dir, prefix }];
  while (stack.length > 0) {
    const next = stack.pop()!;
    let names: string[];
    try {
      names = (await readdir(next.dir)).sort();
    } catch (err) {
      throw toSocketkitError(err, next.dir);
    }
    const subdirs: Array<{ dir: string; prefix: string }> = [];
    for (const name of names) {
      const source = join(next.dir, name);
      const path = `${next.prefix}/${name}`;
      let st;
      try {
        st = await lstat(source);
      } catch (err) {
        // Deleted between readdir and lstat: not an error, just gone.
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw toSocketkitError(err, source);
      }
      if (st.isFile()) {
        out.push({ kind: 'file', path, source, size: st.size, mode: st.mode & 0o777, mtimeMs: st.mtimeMs });
      } else if (st.isDirectory()) {
        out.push({ kind: 'dir', path, source, size: 0, mode: st.mode & 0o777, mtimeMs: st.mtimeMs });
        subdirs.push({ dir: source, prefix: path });
      } else {
        options.onSkip?.({ source, reason: st.isSymbolicLink() ? 'symbolic link (not followed inside folders)' : 'not a regular file or folder' });
      }
    }
    // Files of a folder come before its subfolders' contents: depth-first, folder by folder.
    for (let i = subdirs.length - 1; i >= 0; i--) stack.push(subdirs[i]!);
  }
}

/** Files, folders and bytes of a list of entries. */
export function countEntries(entries: readonly TransferEntry[]): { files: number; dirs: number; bytes: number } {
  let files = 0;
  let dirs = 0;
  let bytes = 0;
  for (const e of entries) {
    if (e.kind === 'file') {
      files++;
      bytes += e.size;
    } else dirs++;
  }
  return { files, dirs, bytes };
}

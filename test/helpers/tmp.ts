/**
 * Temporary directories for tests (Unix socket paths, files to send).
 *
 * Directories are created under the system temp dir with a short prefix, because a Unix socket
 * path must fit in 107 bytes.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The part of node:test's TestContext the helpers need to register cleanup. */
export interface CleanupContext {
  after(fn: () => unknown): void;
}

/**
 * Creates a fresh, empty temporary directory and returns its path. With `t`, the directory and
 * everything in it are removed when the test (or suite) ends.
 *
 * @example
 * ```ts
 * it('listens on a Unix socket', async (t) => {
 *   const sock = join(tempDir(t), 'echo.sock');
 * });
 * ```
 */
export function tempDir(t?: CleanupContext, prefix = 'sk-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t?.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

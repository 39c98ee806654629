/**
 * The optional native helper (`native/socketkit_native.c`, built by `npm install` when a C
 * compiler is there), Linux only:
 * - sendfile(2) from a file to a socket, so a raw transfer makes no copy in user space;
 * - a socket's TCP state, so a raw receiver can tell a sender's reset from its clean end (libuv
 *   reports a reset that arrives behind data as an end of stream).
 * Everything that uses it works without it: plain reads and writes, and no reset check.
 *
 * Loaded lazily, once. `SOCKETKIT_NATIVE=0` in the environment turns it off.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/** The addon's functions (see `native/socketkit_native.c`). */
export interface NativeHelper {
  /** A private duplicate of `fd` (close-on-exec), or a negative errno. */
  dup(fd: number): number;
  close(fd: number): void;
  /**
   * On the thread pool: sends up to `min(length, maxBytes)` bytes of `inFd` from `offset` to the
   * non-blocking socket `out`, stopping early when the file ends, or when the socket is full and
   * `waitMs` have passed since the call began. The callback gets an errno (0 for none) and the
   * bytes sent.
   */
  sendfile(out: number, inFd: number, offset: number, length: number, maxBytes: number, waitMs: number, callback: (errno: number, bytes: number) => void): void;
  /** The kernel's TCP state of socket `fd` (7 = CLOSE, 8 = CLOSE_WAIT), or a negative errno. */
  tcpState(fd: number): number;
  /** The socket's pending error (SO_ERROR; reading clears it), 0 for none, or a negative errno. */
  socketError(fd: number): number;
}

/** Whether the helper is there, and why not. */
export interface NativeStatus {
  readonly available: boolean;
  /** Why it is not available (disabled, not built, not Linux, failed to load). */
  readonly reason?: string;
}

/**
 * The built addon, relative to this file in `dist/src/native/`; SOCKETKIT_NATIVE_ADDON names
 * another build instead (the sanitizer test's, scripts/build-native-sanitized.js).
 */
const ADDON = process.env['SOCKETKIT_NATIVE_ADDON'] || fileURLToPath(new URL('../../../build/Release/socketkit_native.node', import.meta.url));

let loaded: { readonly addon: NativeHelper | undefined; readonly status: NativeStatus } | undefined;

function load(): { readonly addon: NativeHelper | undefined; readonly status: NativeStatus } {
  if (process.env['SOCKETKIT_NATIVE'] === '0') return { addon: undefined, status: { available: false, reason: 'turned off by SOCKETKIT_NATIVE=0' } };
  if (process.platform !== 'linux') return { addon: undefined, status: { available: false, reason: `sendfile to sockets is used on Linux only (this is ${process.platform})` } };
  if (!existsSync(ADDON)) return { addon: undefined, status: { available: false, reason: 'the native helper was not built (npm install builds it when a C compiler is there)' } };
  try {
    const addon = createRequire(import.meta.url)(ADDON) as NativeHelper;
    if (['sendfile', 'dup', 'close', 'tcpState', 'socketError'].some((f) => typeof (addon as unknown as Record<string, unknown>)[f] !== 'function')) {
      return { addon: undefined, status: { available: false, reason: 'the native helper is from another version' } };
    }
    return { addon, status: { available: true } };
  } catch (err) {
    return { addon: undefined, status: { available: false, reason: `the native helper did not load: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}` } };
  }
}

/** The native helper, or undefined when it is not available (see {@link nativeStatus}). */
export function nativeHelper(): NativeHelper | undefined {
  loaded ??= load();
  return loaded.addon;
}

/** Whether the native helper is available, and if not, why. */
export function nativeStatus(): NativeStatus {
  loaded ??= load();
  return loaded.status;
}

/**
 * The addon as the interface `T` of one native module beyond the core functions above (each
 * module's TypeScript side declares its own interface and asks for it here), or undefined when
 * the helper is not available or was built without one of `names` (an older build).
 */
export function nativeModule<T extends object>(names: readonly (keyof T & string)[]): T | undefined {
  const addon = nativeHelper() as unknown as Record<string, unknown> | undefined;
  if (addon === undefined) return undefined;
  return names.every((n) => typeof addon[n] === 'function') ? (addon as unknown as T) : undefined;
}

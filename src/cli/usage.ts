/**
 * The CLI's side of library validation. The library refuses a bad value with ERR_INVALID_ARG and
 * a message about the value, never about a flag; the CLI knows which flag the value came from, so
 * it says so, as the usage error it is for a user. It also knows the flags that fix a failure, so
 * `adviceFor` gives them for the error line (the library's message says what, this says how).
 */
import { SocketkitError, type ErrorCode, type ErrorHint } from '../core/errors.js';

/** Runs `parse`; a library ERR_INVALID_ARG becomes ERR_USAGE naming `--flag`. */
export function asUsage<T>(flag: string, parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    throw usageError(err, flag);
  }
}

/**
 * A failure as the CLI reports it: ERR_INVALID_ARG from the library is a value the user gave, so
 * it is ERR_USAGE (naming `--flag` when known); anything else passes through.
 */
export function usageError(err: unknown, flag?: string): unknown {
  if (!(err instanceof SocketkitError) || err.code !== 'ERR_INVALID_ARG') return err;
  return new SocketkitError('ERR_USAGE', flag === undefined ? err.message : `--${flag}: ${err.message}`, { cause: err, exitCode: err.exitCode });
}

/** What to type to get past a failure, by code: the flags the library's messages do not name. */
const ADVICE: Partial<Record<ErrorCode, string>> = {
  ERR_TLS_CERT: 'to trust it, give --pin FINGERPRINT or --ca CERT',
  ERR_TLS_PLAINTEXT_PEER: 'TLS needs --tls (or --pin, --ca, --psk-file) on the client and --cert/--key or --psk-file on the server',
  ERR_INSECURE_LISTENER: 'give --tls --cert FILE --key FILE, or --psk-file FILE, or --insecure to accept the risk',
};

/** What to type when the library has a good guess at the cause. */
const HINTS: Record<ErrorHint, string> = {
  'maybe-tls-server': 'for a TLS server, add --tls with --pin FINGERPRINT or --ca CERT (or --psk-file FILE)',
  'peer-speaks-skft': "the server speaks socketkit's transfer protocol: drop --raw",
  'peer-is-raw': 'the server sends raw bytes (serve --raw, nc -l): try --raw',
  'exists-replace': '--force replaces it',
  'exists-replace-or-resume': '--force replaces it, --resume continues it',
  'output-is-one-file': 'receive into a folder with --dir DIR instead',
  'make-psk': "make one with 'socketkit cert --psk FILE'",
  'partial-kept': "run the same 'socketkit get' again to continue it",
};

/** The advice for an error: from its hint when it has one, else from its code; or undefined. */
export function adviceFor(err: { readonly code: ErrorCode; readonly hint?: ErrorHint | undefined }): string | undefined {
  return err.hint !== undefined ? HINTS[err.hint] : ADVICE[err.code];
}

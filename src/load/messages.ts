/** The messages a load run sends: one payload of a given size, or a list (like the reference client's). */
import { readFile } from 'node:fs/promises';
import { SocketkitError, toSocketkitError } from '../core/errors.js';

/** A payload of `size` bytes (a repeating a..z pattern, so an echo that shifts bytes is caught). */
export function payloadOfSize(size: number): Buffer {
  const b = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) b[i] = 97 + (i % 26);
  return b;
}

/**
 * Parses `--messages` values: each is a comma-separated list of messages, or `@PATH` for a file
 * with one message per line (empty lines skipped). Empty messages are refused: an echo of
 * nothing never comes back, so it could never complete a round trip.
 */
export async function parseMessages(specs: readonly string[]): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for (const spec of specs) {
    if (spec.startsWith('@')) {
      const path = spec.slice(1);
      let text: string;
      try {
        text = await readFile(path, 'utf8');
      } catch (err) {
        if ((err as { code?: string }).code === 'EISDIR') throw new SocketkitError('ERR_INVALID_ARG', `'${path}' is a folder, not a file of messages (one per line)`, { cause: err });
        throw toSocketkitError(err, path);
      }
      for (const line of text.split(/\r?\n/)) if (line.length > 0) out.push(Buffer.from(line, 'utf8'));
    } else {
      for (const part of spec.split(',')) {
        if (part.length === 0) throw new SocketkitError('ERR_INVALID_ARG', `empty message in '${spec}'`);
        out.push(Buffer.from(part, 'utf8'));
      }
    }
  }
  if (out.length === 0) throw new SocketkitError('ERR_INVALID_ARG', 'no messages given');
  return out;
}

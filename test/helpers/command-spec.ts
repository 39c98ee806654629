// For tests of the CLI's typed options: a command's spec by name, and the message of the usage
// error a parse must give.
import assert from 'node:assert/strict';
import type { Command } from '../../src/cli/command.js';
import { COMMANDS } from '../../src/cli/registry.js';
import { SocketkitError } from '../../src/core/errors.js';

/** The registered command `name`, loaded. */
export async function command(name: string): Promise<Command> {
  const entry = COMMANDS.find((c) => c.name === name);
  assert.ok(entry, name);
  return entry.load();
}

/** Runs `fn`, which must throw ERR_USAGE, and returns the error's message. */
export function usageMessage(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof SocketkitError, String(err));
    assert.equal(err.code, 'ERR_USAGE');
    return err.message;
  }
  assert.fail('expected a usage error');
}

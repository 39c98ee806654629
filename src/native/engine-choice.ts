/**
 * Which data-plane engine runs a server or a load run: the native engine (native threads with
 * their own epoll loops, in the native helper) or the TypeScript engine (Node's sockets, the
 * readable reference). One rule for every command that has both:
 * - asked for `js`: js;
 * - asked for `native`: native, or an ERR_INVALID_ARG naming why it cannot run;
 * - not asked: native when the helper has the engine and nothing in the options needs js,
 *   otherwise js, with the reason kept so the start line and `--version` can say it.
 */
import { SocketkitError } from '../core/errors.js';
import type { NativeStatus } from './helper.js';

export const ENGINE_NAMES = ['native', 'js'] as const;
export type EngineName = (typeof ENGINE_NAMES)[number];

/** The engine chosen, and when it is js, why (absent when js was asked for). */
export interface EngineChoice {
  readonly engine: EngineName;
  readonly reason?: string;
}

/**
 * @param requested what the caller asked for; undefined lets the rule choose.
 * @param native whether the native engine is built and loads (`available`), and if not, why.
 * @param needsJs what in the options only the js engine does (for example "TLS"), empty if none.
 */
export function chooseEngine(requested: EngineName | undefined, native: NativeStatus, needsJs: readonly string[]): EngineChoice {
  if (requested === 'js') return { engine: 'js' };
  const blocker = needsJs.length > 0 ? `${needsJs.join(', ')} ${needsJs.length === 1 ? 'runs' : 'run'} on the js engine only` : undefined;
  const missing = native.available ? undefined : (native.reason ?? 'the native engine is not available');
  if (requested === 'native') {
    const why = missing ?? blocker;
    if (why !== undefined) throw new SocketkitError('ERR_INVALID_ARG', `the native engine cannot run: ${why}`);
    return { engine: 'native' };
  }
  const why = missing ?? blocker;
  return why === undefined ? { engine: 'native' } : { engine: 'js', reason: why };
}

/** How a start line names the engine: "native", or "js (why)". */
export function describeEngine(choice: EngineChoice): string {
  return choice.reason === undefined ? choice.engine : `${choice.engine} (${choice.reason})`;
}

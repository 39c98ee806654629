/**
 * A memory budget: one count of the bytes a server holds for its peers (partial messages being
 * received, replies waiting for a slow reader), with a ceiling shared by every connection.
 *
 * Each connection reserves before it buffers and gives back what it no longer holds (all of it
 * when it closes), so `used` is what is held now and returns to 0 when every client has left.
 */
import { SocketkitError } from '../core/errors.js';

export class MemoryBudget {
  /** The most bytes that may be held at once. */
  readonly limit: number;
  #used = 0;
  #peak = 0;
  /** Reservations refused because the budget was spent. */
  refusals = 0;

  /** @param limit - Bytes, a whole number from 1. */
  constructor(limit: number) {
    if (!Number.isSafeInteger(limit) || limit < 1) throw new SocketkitError('ERR_INVALID_ARG', `memory budget must be a whole number of bytes from 1, not ${limit}`);
    this.limit = limit;
  }

  /** Bytes held now, over every connection. */
  get used(): number {
    return this.#used;
  }

  /** The most bytes held at once so far. */
  get peak(): number {
    return this.#peak;
  }

  /** Takes `n` bytes if they fit; false (and counted) if they do not. */
  tryReserve(n: number): boolean {
    if (this.#used + n > this.limit) {
      this.refusals++;
      return false;
    }
    this.#used += n;
    if (this.#used > this.#peak) this.#peak = this.#used;
    return true;
  }

  /**
   * Records a change of `n` bytes (either sign) in what is held, without refusing: for what a
   * reservation could not foresee (frame headers of replies) and what drains away.
   */
  adjust(n: number): void {
    this.#used = Math.max(0, this.#used + n);
    if (this.#used > this.#peak) this.#peak = this.#used;
  }

  /** Gives back `n` bytes reserved earlier. */
  release(n: number): void {
    this.#used = Math.max(0, this.#used - n);
  }
}

/** The error a connection is closed with when the budget cannot hold what it sent. */
export function budgetSpent(budget: MemoryBudget, wanted: number): SocketkitError {
  return new SocketkitError('ERR_MEMORY_BUDGET', `server memory budget spent (${budget.used} of ${budget.limit} bytes held, ${wanted} more wanted): connection closed`);
}

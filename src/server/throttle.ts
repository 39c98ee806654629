/**
 * Reporting something that can happen thousands of times a second (a connection refused for
 * lack of descriptors) as a few lines: the first occurrence at once, then at most one line per
 * interval saying how many happened since the last line.
 */

/** Counts occurrences and reports them at most once per interval. */
export class Throttle<T> {
  readonly #intervalMs: number;
  readonly #report: (last: T, count: number) => void;
  #timer: NodeJS.Timeout | undefined;
  #count = 0;
  #last: T | undefined;

  /** `report(last, count)`: `count` occurrences since the previous report, `last` the latest. */
  constructor(intervalMs: number, report: (last: T, count: number) => void) {
    this.#intervalMs = intervalMs;
    this.#report = report;
  }

  /** One occurrence. */
  hit(item: T): void {
    if (this.#timer === undefined) {
      this.#report(item, 1);
      this.#arm();
      return;
    }
    this.#count++;
    this.#last = item;
  }

  #arm(): void {
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (this.#count === 0) return;
      const count = this.#count;
      const last = this.#last as T;
      this.#count = 0;
      this.#last = undefined;
      this.#report(last, count);
      this.#arm(); // still happening: keep the next line an interval away
    }, this.#intervalMs);
    this.#timer.unref();
  }

  /** Reports what is still counted and stops (idempotent). */
  flush(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#count > 0) this.#report(this.#last as T, this.#count);
    this.#count = 0;
    this.#last = undefined;
  }
}

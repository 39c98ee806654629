// A stream's meter while a native loop moves its bytes: the loop's count grows between any two
// reads of it, so every use reads it once. Here the followed count grows on every read, as a
// busy thread's does; each case fails if anything reads it twice and keeps the difference.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { StreamMeter } from '../src/perf/meter.js';
import { IntervalReporter, type PerfInterval } from '../src/perf/intervals.js';

/** A live count that moves `step` bytes every time it is read. */
function busyCounter(step: number): { read: () => number; readonly value: number } {
  let value = 0;
  return {
    read: () => (value += step),
    get value() {
      return value;
    },
  };
}

describe('perf meters that follow a live count', { timeout: 10_000 }, () => {
  it('the intervals hold every byte the loop moved, however often its count moves between reads', async () => {
    const m = new StreamMeter(0, 'up', 'received');
    const live = busyCounter(1000);
    m.follow(live.read);
    const intervals: PerfInterval[] = [];
    let enough: () => void = () => undefined;
    const three = new Promise<void>((resolve) => (enough = resolve));
    const reporter = new IntervalReporter([m], performance.now(), 20, 0, (i) => {
      intervals.push(i);
      if (intervals.length === 3) enough();
    });
    await three;
    m.unfollow(live.value + 1000);
    m.end(performance.now());
    reporter.stop(0);
    const sum = intervals.reduce((a, i) => a + i.sum.received.bytes, 0);
    assert.ok(intervals.length >= 4, `${intervals.length} intervals`);
    assert.equal(sum, m.bytes, 'the intervals add up to the final count');
    assert.equal(m.bytes, live.value + 1000);
  });

  it('bytes added while a loop is followed are counted once, and none of the loop\'s are lost', () => {
    const m = new StreamMeter(0, 'up', 'sent');
    m.add(7);
    const live = busyCounter(1000);
    m.follow(live.read);
    m.add(5);
    m.unfollow(live.value);
    assert.equal(m.bytes, 7 + 5 + live.value);
  });

  it('the results count from the mark: what a loop moved before it is left out once, not twice', () => {
    const m = new StreamMeter(0, 'up', 'received');
    m.follow(busyCounter(1000).read);
    m.mark(performance.now());
    m.end(performance.now() + 1000);
    // Marked at one read (1000), results read again: every read moves the count, so results see a later one.
    const f = m.figures(performance.now());
    assert.equal(f.bytes, 1000);
  });
});

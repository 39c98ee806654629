// HdrHistogram interval logs (src/report): the writer against the bytes HdrHistogram's Java
// writer prints, round trips through the reader (values, counts, interval times, tags, errors),
// real logs of other tools (jHiccup, a tagged log, a V1 log), a log cut mid-line, an empty log.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  IntervalRecorder,
  encodeHistogram,
  formatIntervalLine,
  formatLogHeader,
  newLatencyHistogram,
  openIntervalLog,
  parseIntervalLog,
  summarizeHistogram,
  type IntervalLog,
} from '../src/report/index.js';
import { SocketkitError } from '../src/core/errors.js';
import { tempDir } from './helpers/tmp.js';

const fixtures = join(import.meta.dirname, '..', '..', 'test', 'fixtures', 'hdr');
const fixture = (name: string): Promise<string> => readFile(join(fixtures, name), 'utf8');

/** A recorder on a clock the test moves, writing into a string. */
function recorderOnClock(options: { tag?: string; intervalMs?: number } = {}): { rec: IntervalRecorder; text: () => string; tick: (ms: number) => void; start: number } {
  const start = 1_764_681_156_123;
  let now = start;
  let out = '';
  const rec = new IntervalRecorder((s) => (out += s), { ...options, now: () => now, parameters: { target: '127.0.0.1:9800', connections: 4 } });
  return { rec, text: () => out, tick: (ms) => (now += ms), start };
}

/** The top of the bucket holding `v` (what Java's getMaxValue reports). */
function highest(h: ReturnType<typeof newLatencyHistogram>, v: number): number {
  return (h as typeof h & { highestEquivalentValue(v: number): number }).highestEquivalentValue(v);
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return e instanceof SocketkitError ? e.code : `not coded: ${String(e)}`;
  }
  return undefined;
}

describe('interval log writer', () => {
  it("writes the header byte for byte as HdrHistogram's Java HistogramLogWriter (TZ=UTC)", async () => {
    assert.equal(formatLogHeader({ startTimeMs: 1_764_681_156_123, loggedWith: 'socketkit' }), await fixture('java-writer-header.hlog'));
  });

  it("encodes interval lines byte for byte as the Java writer (same histogram, same tag, Interval_Max in ms)", async () => {
    // The values of fixtures/hdr/Ref.java: 10,000 spread values and one past the initial range (auto-resize).
    const h = newLatencyHistogram();
    for (let i = 0; i < 10000; i++) h.recordValue(((i * 7919) % 250000) + 1);
    h.recordValue(5_000_000_000);
    const ours = formatIntervalLine(0, 1, h, 'A') + formatIntervalLine(1, 1, newLatencyHistogram());
    assert.equal(ours, await fixture('java-writer-intervals.hlog'));
  });

  it("re-encodes every histogram of HdrHistogram's own jHiccup and tagged logs to the same characters Java wrote", async () => {
    for (const name of ['jHiccup-2.0.7S.logV2.hlog', 'tagged-Log.logV2.hlog']) {
      const text = await fixture(name);
      const written = text.split('\n').filter((l) => /^(Tag=[^,]*,)?\d/.test(l)).map((l) => l.split(',').pop()!);
      const log = parseIntervalLog(text, name);
      assert.equal(log.intervals.length, written.length);
      assert.deepEqual(log.intervals.map((iv) => encodeHistogram(iv.histogram)), written, name);
    }
  });

  it('refuses a tag that would break the line format', () => {
    assert.equal(codeOf(() => formatIntervalLine(0, 1, newLatencyHistogram(), 'a,b')), 'ERR_INVALID_ARG');
    assert.equal(codeOf(() => new IntervalRecorder(() => {}, { tag: 'two words' })), 'ERR_INVALID_ARG');
    assert.equal(codeOf(() => new IntervalRecorder(() => {}, { intervalMs: 0 })), 'ERR_INVALID_ARG');
  });
});

describe('interval log round trip', () => {
  it('gives back every interval: times, tag, counts, values, errors and parameters', () => {
    const { rec, text, tick, start } = recorderOnClock({ tag: 'agent-1' });
    const expected: ReturnType<typeof newLatencyHistogram>[] = [];
    for (let i = 0; i < 4; i++) {
      const h = newLatencyHistogram();
      for (let k = 0; k < 500 * (i + 1); k++) {
        const us = 50 + ((k * 37 + i * 1000) % 20000);
        rec.record(us);
        h.recordValue(us);
      }
      if (i === 2) {
        rec.recordError('ERR_TIMEOUT', 2);
        rec.recordError('ERR_CONN_RESET');
      }
      expected.push(h);
      tick(i === 3 ? 250 : 1000);
      if (i < 3) rec.flush();
    }
    void rec.close();
    const log = parseIntervalLog(text(), 'a.hlog');
    assert.deepEqual(log.warnings, []);
    assert.equal(log.version, '1.3');
    assert.equal(log.startTimeMs, start);
    assert.deepEqual(log.parameters, { target: '127.0.0.1:9800', connections: 4 });
    assert.deepEqual(log.comments, ['[Logged with socketkit]']);
    assert.equal(log.intervals.length, 4);
    log.intervals.forEach((iv, i) => {
      assert.equal(iv.tag, 'agent-1');
      assert.equal(iv.startMs, start + i * 1000);
      assert.equal(iv.endMs, start + i * 1000 + (i === 3 ? 250 : 1000));
      assert.equal(iv.histogram.totalCount, 500 * (i + 1));
      // Every bucket comes back: the same percentiles. The encoding keeps buckets, not the exact
      // largest sample, so the max read back is the top of its bucket (as HdrHistogram's tools report it).
      const got = summarizeHistogram(iv.histogram);
      const want = summarizeHistogram(expected[i]!);
      assert.deepEqual({ ...got, max: 0, p999: 0 }, { ...want, max: 0, p999: 0 });
      assert.equal(got.max, highest(expected[i]!, expected[i]!.maxValue) / 1000);
      assert.equal(iv.histogram.getValueAtPercentile(99.9), expected[i]!.getValueAtPercentile(99.9));
      assert.deepEqual(iv.errors, i === 2 ? { count: 3, codes: { ERR_TIMEOUT: 2, ERR_CONN_RESET: 1 } } : { count: 0, codes: {} });
    });
  });

  it('keeps the compressed text of an interval and decodes it on each read (not 94 KiB of counts per interval)', () => {
    const { rec, text, tick } = recorderOnClock();
    rec.record(7);
    tick(1000);
    rec.flush();
    const iv = parseIntervalLog(text()).intervals[0]!;
    assert.equal(typeof Object.getOwnPropertyDescriptor(iv, 'histogram')?.get, 'function');
    assert.notEqual(iv.histogram, iv.histogram);
    assert.equal(iv.histogram.totalCount, 1);
    assert.match(iv.encoded, /^HISTFAAAA/);
  });

  it('writes an interval on the timer, and the last one at close (mocked timers)', async (t) => {
    t.mock.timers.enable({ apis: ['setInterval'] });
    const { rec, text, tick } = recorderOnClock({ intervalMs: 1000 });
    rec.start();
    rec.record(100);
    tick(1000);
    t.mock.timers.tick(1000);
    rec.record(200);
    tick(1000);
    t.mock.timers.tick(1000);
    rec.record(300);
    tick(400);
    await rec.close();
    await rec.close();
    const log = parseIntervalLog(text());
    assert.deepEqual(log.intervals.map((i) => [i.endMs - i.startMs, i.histogram.totalCount, i.histogram.maxValue]), [
      [1000, 1, 100],
      [1000, 1, 200],
      [400, 1, 300],
    ]);
    assert.equal(log.intervals[0]!.tag, undefined);
  });

  it('writes a file with openIntervalLog, and reading it back gives the same values', async (t) => {
    const path = join(tempDir(t), 'run.hlog');
    const rec = await openIntervalLog(path, { tag: 'x' });
    for (let i = 1; i <= 1000; i++) rec.record(i);
    rec.flush();
    rec.recordError('ERR_NO_REPLY');
    await rec.close();
    const log = parseIntervalLog(await readFile(path, 'utf8'), 'run.hlog');
    assert.equal(log.intervals.length, 2);
    assert.equal(log.intervals[0]!.histogram.totalCount, 1000);
    assert.equal(log.intervals[1]!.histogram.totalCount, 0);
    assert.deepEqual(log.intervals[1]!.errors, { count: 1, codes: { ERR_NO_REPLY: 1 } });
  });

  it('fails opening a log in a folder that does not exist with a coded error', async (t) => {
    await assert.rejects(openIntervalLog(join(tempDir(t), 'no', 'such.hlog')), (e: unknown) => e instanceof SocketkitError && e.code === 'ERR_NOT_FOUND');
  });
});

describe('interval log reader, real and damaged logs', () => {
  function totals(log: IntervalLog, tag?: string): { n: number; count: number; p999: number; max: number } {
    const h = newLatencyHistogram();
    const mine = log.intervals.filter((i) => i.tag === tag);
    for (const iv of mine) h.add(iv.histogram);
    return { n: mine.length, count: h.totalCount, p999: h.getValueAtPercentile(99.9), max: h.maxValue };
  }

  it("reads jHiccup's log to the totals HdrHistogram's own test asserts (comment line kept, timestamps relative to StartTime)", async () => {
    const log = parseIntervalLog(await fixture('jHiccup-2.0.7S.logV2.hlog'), 'jhiccup.hlog');
    assert.deepEqual(log.warnings, []);
    assert.equal(log.version, '1.2');
    assert.deepEqual(log.comments, ['[Logged with jHiccup version 2.0.7-SNAPSHOT]']);
    assert.equal(log.startTimeMs, 1441812279474);
    // HistogramLogReaderWriterTest.jHiccupV2Log: 62 histograms, 48761 values, p99.9 1745879039, max 1796210687.
    const t = totals(log);
    assert.equal(t.n, 62);
    assert.equal(t.count, 48761);
    // Java adds into a 3-digit histogram and reports bucket tops; so does this, for the percentile.
    assert.equal(highest(newLatencyHistogram(), t.p999), 1745879039);
    // The max: hdr-histogram-js keeps the top of the log's own (2-significant-digit) bucket, Java
    // the top of the 3-digit bucket of that bucket's bottom: the same log bucket, within its 1 %.
    assert.ok(t.max >= 1796210687 && t.max - 1796210687 <= 1796210687 / 100, String(t.max));
    assert.equal(log.intervals[0]!.startMs, Math.round((1441812279.474 + 0.127) * 1000));
  });

  it('reads a tagged log: the tagged and untagged lines hold the same values, as Java asserts', async () => {
    const log = parseIntervalLog(await fixture('tagged-Log.logV2.hlog'), 'tagged.hlog');
    const none = totals(log);
    const a = totals(log, 'A');
    assert.equal(none.count + a.count, 32290);
    assert.deepEqual(none, a);
  });

  it('reads a log cut mid-line (a killed agent) up to the cut, with a warning', () => {
    const { rec, text, tick } = recorderOnClock({ tag: 'b' });
    for (let i = 0; i < 3; i++) {
      rec.record(100 + i);
      tick(1000);
      rec.flush();
    }
    const full = text();
    const cut = full.slice(0, full.length - 40);
    const log = parseIntervalLog(cut, 'b.hlog');
    assert.equal(log.intervals.length, 2);
    assert.equal(log.warnings.length, 1);
    assert.match(log.warnings[0]!, /b\.hlog: the last line \(\d+\) is cut/);
    // Cut anywhere inside the header or the first line: never an error.
    for (let at = 0; at < full.length; at += 7) {
      const l = parseIntervalLog(full.slice(0, at), 'b.hlog');
      assert.ok(l.intervals.length <= 3);
    }
  });

  it('reads an empty log, and one with only its header, as no intervals with a warning', () => {
    for (const text of ['', formatLogHeader({ startTimeMs: 1e12 })]) {
      const log = parseIntervalLog(text, 'empty.hlog');
      assert.equal(log.intervals.length, 0);
      assert.deepEqual(log.warnings, ['empty.hlog: no intervals in the log']);
    }
  });

  it('refuses a corrupt line in the middle of a log, naming it (ERR_BAD_LOG)', () => {
    const { rec, text, tick } = recorderOnClock();
    rec.record(1);
    tick(1000);
    rec.flush();
    rec.record(2);
    tick(1000);
    rec.flush();
    const lines = text().split('\n');
    lines[lines.length - 3] = lines[lines.length - 3]!.slice(0, 30);
    assert.equal(codeOf(() => parseIntervalLog(lines.join('\n'))), 'ERR_BAD_LOG');
  });

  it('refuses a V1-encoded log (YCSB, HdrHistogram before 2.1) with a coded error saying so', async () => {
    const text = await fixture('ycsb-head.logV1.hlog');
    assert.throws(() => parseIntervalLog(text, 'ycsb.hlog'), (e: unknown) => e instanceof SocketkitError && e.code === 'ERR_BAD_LOG' && /ycsb\.hlog:5: .*older than V2/.test(e.message));
  });

  it('keeps a cut file readable after a round trip through the disk', async (t) => {
    const path = join(tempDir(t), 'cut.hlog');
    const { rec, text, tick } = recorderOnClock();
    rec.record(5);
    tick(1000);
    rec.flush();
    await writeFile(path, `${text()}Tag=x,1.000,1.0`);
    const log = parseIntervalLog(await readFile(path, 'utf8'), 'cut.hlog');
    assert.equal(log.intervals.length, 1);
    assert.equal(log.warnings.length, 1);
  });
});

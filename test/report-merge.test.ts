// Merging interval logs (src/report/merge.ts) and `socketkit report`: N agents' logs give exactly
// the report of one log holding all their values; overlapping logs are one run, others separate
// runs; intervals of agents are added slot by slot.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import { IntervalRecorder, mergeLogs, newLatencyHistogram, parseIntervalLog, summarizeHistogram, summarizeRun, type IntervalLog } from '../src/report/index.js';
import { ndjson, runMain } from './helpers/cli.js';
import { tempDir } from './helpers/tmp.js';

const T0 = 1_764_681_156_000;

/** A log written by a recorder on a test clock: `intervals` lists each interval's samples (µs) and errors. */
function logText(intervals: readonly { us: readonly number[]; errors?: number; lengthMs?: number }[], init: { tag?: string; startMs?: number } = {}): string {
  let now = init.startMs ?? T0;
  let out = '';
  const rec = new IntervalRecorder((s) => (out += s), { ...(init.tag !== undefined ? { tag: init.tag } : {}), startTimeMs: now, now: () => now });
  for (const iv of intervals) {
    for (const us of iv.us) rec.record(us);
    if (iv.errors) rec.recordError('ERR_TIMEOUT', iv.errors);
    now += iv.lengthMs ?? 1000;
    rec.flush();
  }
  return out;
}

/** The report of one run as the CLI's JSON gives it, from a histogram and counts. */
function expectedFields(h: ReturnType<typeof newLatencyHistogram>) {
  const l = summarizeHistogram(h);
  return { p50: l.p50, p90: l.p90, p99: l.p99, p999: l.p999, max: l.max, min: l.min, count: l.count };
}

describe('merging logs', () => {
  it('the merged report of N agents equals the report of one log holding all their values (property)', () => {
    const samples = fc.array(fc.integer({ min: 1, max: 5_000_000 }), { maxLength: 300 });
    fc.assert(
      fc.property(fc.array(fc.array(samples, { minLength: 1, maxLength: 4 }), { minLength: 1, maxLength: 4 }), fc.integer({ min: 0, max: 900 }), (agents, skew) => {
        // Agent i starts i*skew/4 ms late: their intervals overlap, so they are one run.
        const logs: IntervalLog[] = agents.map((ivs, i) => parseIntervalLog(logText(ivs.map((us) => ({ us })), { tag: `agent-${i}`, startMs: T0 + Math.round((i * skew) / 4) }), `a${i}.hlog`));
        const all = agents.flat(2);
        const one = parseIntervalLog(logText([{ us: all }]), 'one.hlog');
        const runs = mergeLogs(logs);
        assert.equal(runs.length, 1);
        const merged = summarizeRun(runs[0]!).latency;
        const single = summarizeRun(mergeLogs([one])[0]!).latency;
        assert.deepEqual(merged, single);
        assert.equal(merged.count, all.length);
      }),
      { numRuns: 200 },
    );
  });

  it('three agents through the CLI: `report --json` gives the totals of one histogram of every value, errors added', async (t) => {
    const dir = tempDir(t);
    const h = newLatencyHistogram();
    const files: string[] = [];
    for (let a = 0; a < 3; a++) {
      const ivs = Array.from({ length: 5 }, (_, i) => ({ us: Array.from({ length: 200 + a * 50 }, (_, k) => 100 + ((k * 7919 + i * 131 + a * 17) % 40_000)), errors: i === a ? a + 1 : 0 }));
      for (const iv of ivs) for (const us of iv.us) h.recordValue(us);
      const path = join(dir, `agent-${a}.hlog`);
      await writeFile(path, logText(ivs, { tag: `agent-${a}`, startMs: T0 + a * 130 }));
      files.push(path);
    }
    const r = await runMain(['report', ...files, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const out = ndjson(r.stdout.toString()).find((e) => e['event'] === 'report')!;
    const runs = out['runs'] as { roundTrips: number; errors: number; errorCodes: Record<string, number>; sources: string[]; latencyMs: Record<string, number>; seconds: number }[];
    assert.equal(runs.length, 1);
    const run = runs[0]!;
    assert.deepEqual(run.sources, ['agent-0.hlog [agent-0]', 'agent-1.hlog [agent-1]', 'agent-2.hlog [agent-2]']);
    assert.equal(run.roundTrips, h.totalCount);
    assert.equal(run.errors, 6);
    assert.deepEqual(run.errorCodes, { ERR_TIMEOUT: 6 });
    assert.equal(run.seconds, 5.26);
    const want = expectedFields(h);
    // Percentiles are those of the one histogram; the max is the top of its bucket (the log keeps buckets).
    assert.deepEqual({ p50: run.latencyMs['p50'], p90: run.latencyMs['p90'], p99: run.latencyMs['p99'], min: run.latencyMs['min'], count: run.latencyMs['count'] }, { p50: want.p50, p90: want.p90, p99: want.p99, min: want.min, count: want.count });
    const top = (h as typeof h & { highestEquivalentValue(v: number): number }).highestEquivalentValue(h.maxValue) / 1000;
    assert.equal(run.latencyMs['max'], top);
  });

  it('logs that overlap in time are one run; logs that do not are separate runs', () => {
    const a = parseIntervalLog(logText([{ us: [100] }, { us: [200] }], { startMs: T0 }), 'a.hlog');
    const b = parseIntervalLog(logText([{ us: [300] }, { us: [400] }], { startMs: T0 + 1000 }), 'b.hlog');
    const c = parseIntervalLog(logText([{ us: [500] }], { startMs: T0 + 60_000 }), 'c.hlog');
    const runs = mergeLogs([c, a, b]);
    assert.deepEqual(runs.map((r) => r.sources.map((s) => s.label)), [['a.hlog', 'b.hlog'], ['c.hlog']]);
    const first = runs[0]!;
    assert.equal(first.startMs, T0);
    assert.equal(first.endMs, T0 + 3000);
    // A grid of 1 s slots from the run's start; each interval lands in the slot holding its middle,
    // so a's second interval and b's first are added.
    assert.deepEqual(first.intervals.map((i) => [i.startMs - T0, i.count, i.max]), [
      [0, 1, 100],
      [1000, 2, 300],
      [2000, 1, 400],
    ]);
    assert.equal(summarizeRun(first).roundTrips, 4);
    assert.equal(summarizeRun(runs[1]!).roundTrips, 1);
  });

  it('two tags in one log are two sources of one run (agents writing one file)', () => {
    const text = logText([{ us: [10, 20] }], { tag: 'x' }) + logText([{ us: [30] }], { tag: 'y' }).split('\n').filter((l) => l.startsWith('Tag=')).join('\n') + '\n';
    const runs = mergeLogs([parseIntervalLog(text, 'both.hlog')]);
    assert.deepEqual(runs.map((r) => r.sources.map((s) => s.label)), [['both.hlog [x]', 'both.hlog [y]']]);
    assert.equal(summarizeRun(runs[0]!).roundTrips, 3);
  });
});

describe('socketkit report', () => {
  it('prints the summary load prints, and warns about a cut log on stderr', async (t) => {
    const dir = tempDir(t);
    const text = logText([{ us: [1000, 2000, 3000] }, { us: [4000], errors: 2 }, { us: [5000] }]);
    await writeFile(join(dir, 'cut.hlog'), text.slice(0, text.length - 30));
    const r = await runMain(['report', join(dir, 'cut.hlog')]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /warning: cut\.hlog: the last line \(\d+\) is cut/);
    const out = r.stdout.toString();
    assert.match(out, /^report of cut\.hlog: 2\.00 s from 2025-12-02T13:12:36\.000Z$/m);
    assert.match(out, /^ {2}round trips {2}4 {2}\(2\/s\)$/m);
    assert.match(out, /^ {2}errors {7}2 {2}\(ERR_TIMEOUT 2\)$/m);
    assert.match(out, /^ {2}latency {6}p50 2\.0 ms {2}p90 4\.0 ms {2}p99 4\.0 ms {2}p99\.9 4\.0 ms {2}max 4\.0 ms$/m);
  });

  it('gives one summary per run for logs made at different times, and a warning event for an empty log in --json', async (t) => {
    const dir = tempDir(t);
    await writeFile(join(dir, 'before.hlog'), logText([{ us: [100] }], { startMs: T0 }));
    await writeFile(join(dir, 'after.hlog'), logText([{ us: [200, 300] }], { startMs: T0 + 3_600_000 }));
    await writeFile(join(dir, 'empty.hlog'), '');
    const text = await runMain(['report', join(dir, 'before.hlog'), join(dir, 'after.hlog')]);
    assert.match(text.stdout.toString(), /^run 1 of 2: before\.hlog: /m);
    assert.match(text.stdout.toString(), /^run 2 of 2: after\.hlog: /m);
    const r = await runMain(['report', join(dir, 'before.hlog'), join(dir, 'after.hlog'), join(dir, 'empty.hlog'), '--json']);
    assert.equal(r.code, 0);
    const events = ndjson(r.stdout.toString());
    assert.deepEqual(events.filter((e) => e['event'] === 'warning').map((e) => e['message']), ['empty.hlog: no intervals in the log']);
    const report = events.find((e) => e['event'] === 'report')!;
    assert.deepEqual((report['runs'] as { roundTrips: number }[]).map((x) => x.roundTrips), [1, 2]);
  });

  it("reads another tool's log in its unit: jHiccup's nanoseconds with --unit ns", async () => {
    const log = join(import.meta.dirname, '..', '..', 'test', 'fixtures', 'hdr', 'jHiccup-2.0.7S.logV2.hlog');
    const r = await runMain(['report', log, '--unit', 'ns', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const run = (ndjson(r.stdout.toString()).find((e) => e['event'] === 'report')!['runs'] as { roundTrips: number; latencyMs: { p999: number } }[])[0]!;
    assert.equal(run.roundTrips, 48761);
    // HdrHistogram's own test: p99.9 is 1745879039 ns (the bucket's top; hdr-histogram-js gives a value in that bucket).
    assert.ok(Math.abs(run.latencyMs.p999 - 1745.879039) < 1745.879039 / 1000, String(run.latencyMs.p999));
    const bad = await runMain(['report', log, '--unit', 's']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--unit: 's' is not one of ns, us, ms \(ERR_USAGE\)/);
  });

  it('fails with a coded one-line error for a missing file and for a corrupt log', async (t) => {
    const dir = tempDir(t);
    const missing = await runMain(['report', join(dir, 'nope.hlog')]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /\(ERR_NOT_FOUND\)/);
    await writeFile(join(dir, 'bad.hlog'), 'not,a,log\n0.000,1.000,0.001,HIST\n');
    const bad = await runMain(['report', join(dir, 'bad.hlog')]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /bad\.hlog:1: .*\(ERR_BAD_LOG\)/);
  });
});

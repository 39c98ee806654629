// Runs test files under AddressSanitizer and UndefinedBehaviorSanitizer: every native/*.c is
// built with -fsanitize=address,undefined into a separate addon (scripts/build-native-sanitized.js),
// and the given compiled test files run in a child node with the ASan runtime preloaded and that
// build in place of the normal one. Any report (a use after free, an overflow, undefined
// behaviour: UBSan halts on the first) fails the calling test with the report.
//
// The suites are split across test files (test/native-sanitized*.test.ts) so that each stays
// well inside the runner's per-file time limit: under ASan the scenarios run 2-3 times slower.
//
// Needs gcc and libasan: missing, the test is skipped with the reason, or fails under
// SOCKETKIT_REQUIRE_TOOLS=1 (CI). Leak detection is off: node itself is not built for it.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { REQUIRE_TOOLS, requireTool, run } from './cli.js';
import { tempDir } from './tmp.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/**
 * Builds the sanitized addon and runs `scenarios` (compiled test files, from the package root)
 * under it; at least `minPassed` of their tests must pass, none fail, and no sanitizer may report.
 */
export async function runUnderSanitizers(t: TestContext, scenarios: readonly string[], minPassed: number): Promise<void> {
  if (process.platform !== 'linux') {
    t.skip('the native helper is Linux only');
    return;
  }
  if (requireTool(t, 'gcc', 'gcc') === undefined) return;
  const dir = tempDir(t, 'sk-asan-');
  const built = spawnSync(process.execPath, [join(ROOT, 'scripts/build-native-sanitized.js'), join(dir, 'build')], { encoding: 'utf8', timeout: 100_000 });
  assert.equal(built.status, 0, `the sanitized build failed:\n${built.stderr}`);
  const out = JSON.parse(built.stdout.trim().split('\n').pop()!) as { addon?: string; asan?: string; skip?: string; sources?: number };
  if (out.skip !== undefined) {
    if (REQUIRE_TOOLS) throw new Error(`the sanitizer test is required (SOCKETKIT_REQUIRE_TOOLS=1) but ${out.skip}`);
    t.skip(out.skip);
    return;
  }
  const sources = readdirSync(join(ROOT, 'native')).filter((f) => f.endsWith('.c')).length;
  assert.equal(out.sources, sources, 'every native/*.c is in the sanitized build');
  const logs = join(dir, 'reports');
  // Without the test runner's own context (a child `node --test` would otherwise report to us, not run).
  const { NODE_TEST_CONTEXT: _ctx, ...parentEnv } = process.env;
  const env = {
    ...parentEnv,
    LD_PRELOAD: out.asan!,
    ASAN_OPTIONS: `detect_leaks=0:abort_on_error=1:log_path=${logs}/asan`,
    UBSAN_OPTIONS: `halt_on_error=1:print_stacktrace=1:log_path=${logs}/ubsan`,
    SOCKETKIT_NATIVE_ADDON: out.addon!,
    // The scenarios must not skip the native engine here.
    SOCKETKIT_REQUIRE_TOOLS: '1',
  };
  // The sanitized build is the one loaded, ASan's runtime is in, and the engine is there.
  const probeScript = join(dir, 'probe.mjs');
  writeFileSync(
    probeScript,
    [
      `const m = await import(${JSON.stringify(pathToFileURL(join(ROOT, 'dist/src/native/echo-engine.js')).href)});`,
      `const available = m.nativeEchoStatus().available;`,
      `const maps = (await import('node:fs')).readFileSync('/proc/self/maps', 'utf8');`,
      `console.log(JSON.stringify({ available, sanitized: maps.includes(process.env.SOCKETKIT_NATIVE_ADDON), asan: maps.includes('libasan') }));`,
    ].join('\n'),
  );
  const probe = await run(process.execPath, [probeScript], { env, cwd: ROOT, timeoutMs: 30_000 });
  assert.deepEqual(JSON.parse(probe.stdout.toString().trim()), { available: true, sanitized: true, asan: true }, probe.stderr);
  const files = scenarios.filter((f) => existsSync(join(ROOT, f)));
  assert.equal(files.length, scenarios.length, `every scenario file is built: ${scenarios.join(', ')}`);
  const r = await run(process.execPath, ['--test', '--test-reporter=tap', '--test-concurrency=1', ...files], { env, cwd: ROOT, timeoutMs: 105_000 });
  const reports = existsSync(logs) ? readdirSync(logs).map((f) => readFileSync(join(logs, f), 'utf8')) : [];
  assert.deepEqual(reports, [], `sanitizer reports:\n${reports.join('\n')}`);
  const tap = r.stdout.toString();
  const passed = Number(/^# pass (\d+)$/m.exec(tap)?.[1] ?? 0);
  const failing = tap
    .split('\n')
    .filter((l) => /^\s*not ok /.test(l))
    .join('\n');
  assert.ok(passed >= minPassed, `the scenarios ran (${passed} passed):\n${tap.slice(-2000)}`);
  assert.equal(r.code, 0, `the scenarios failed under the sanitizers (exit ${r.code ?? r.signal}):\n${failing}\n${tap.slice(-4000)}\n${r.stderr.slice(-4000)}`);
}

#!/usr/bin/env node
// Runs every compiled test file under dist/test with Node's own test runner.
// Node 20's `--test` does not expand globs, so the files are listed here.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

function find(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...find(p));
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

const filter = process.argv.slice(2);
let files = find('dist/test').sort();
if (filter.length > 0) files = files.filter((f) => filter.some((x) => f.includes(x)));
if (files.length === 0) {
  console.error('run-tests: no test files found under dist/test (did the build run?)');
  process.exit(1);
}
// On a terminal, the spec reporter; otherwise (CI, a pipe, a file) a short summary: a line per
// file, failures in full, skipped tests with their reasons, and TAP's closing `# tests N` lines
// (scripts/test-summary.js). SOCKETKIT_TEST_REPORTER=tap|spec|dot|summary chooses instead.
const choice = process.env.SOCKETKIT_TEST_REPORTER || (process.stdout.isTTY ? 'spec' : 'summary');
const reporter = choice === 'summary' ? fileURLToPath(new URL('./test-summary.js', import.meta.url)) : choice;
// A hung test fails after two minutes instead of hanging CI; the whole run is bounded too.
const res = spawnSync(process.execPath, ['--test', `--test-reporter=${reporter}`, '--test-reporter-destination=stdout', '--test-concurrency=2', '--test-timeout=120000', ...files], {
  stdio: 'inherit',
  timeout: 30 * 60 * 1000,
  killSignal: 'SIGKILL',
});
if (res.error) console.error(`run-tests: ${res.error.message}`);
process.exit(res.status ?? 1);

// The README's node:test example for startProxy ("From a test suite, in-process") is run as
// written: the block is compiled as TypeScript, its `from 'socketkit'` pointed at this build, and
// run with `node --test`; both its tests must pass.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import ts from 'typescript';
import { run } from './helpers/cli.js';
import { tempDir } from './helpers/tmp.js';

const root = join(import.meta.dirname, '..', '..');

describe("the README's startProxy example", () => {
  it('runs, and both of its tests pass', async (t) => {
    const readme = await readFile(join(root, 'README.md'), 'utf8');
    const at = readme.indexOf('From a test suite, in-process');
    assert.ok(at >= 0, 'the README has the example');
    const block = /```ts\n([\s\S]*?)```/.exec(readme.slice(at))?.[1] ?? '';
    assert.ok(block.includes('startProxy'), 'the block uses startProxy');
    const js = ts.transpileModule(block, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } }).outputText;
    const index = pathToFileURL(join(root, 'dist', 'src', 'index.js')).href;
    assert.match(js, /from 'socketkit'/);
    const file = join(tempDir(t), 'example.test.mjs');
    await writeFile(file, js.replaceAll("from 'socketkit'", `from '${index}'`));
    // Not as a subtest of this run: without NODE_TEST_CONTEXT the child reports in TAP of its own.
    const { NODE_TEST_CONTEXT: _, ...env } = process.env;
    const r = await run(process.execPath, ['--test', '--test-reporter=tap', file], { timeoutMs: 60_000, env });
    const out = r.stdout.toString();
    assert.equal(r.code, 0, `${out}\n${r.stderr}`);
    assert.match(out, /^# pass 2$/m);
    assert.match(out, /^# fail 0$/m);
  });
});

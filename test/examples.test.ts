// examples/ (README "Load from many machines"): the Kubernetes Indexed Job manifest parses and
// runs exactly the README's agent command; the ssh recipe runs exactly the README's commands, and,
// run with an `ssh` that runs each command in a folder of its own (one per "host"), three agents
// load one server and the merged report counts what the server counted. kubectl is not installed
// here, so `kubectl apply --dry-run=client` is not run.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { startManagedEchoServer } from '../src/server/index.js';
import { formatEndpoint } from '../src/net/endpoint.js';
import { BIN, run, runCli } from './helpers/cli.js';
import { tempDir } from './helpers/tmp.js';

const root = join(import.meta.dirname, '..', '..');

/** The `socketkit …` lines of the README's "Load from many machines" section. */
async function readmeCommands(): Promise<string[]> {
  const readme = await readFile(join(root, 'README.md'), 'utf8');
  const start = readme.indexOf('### Load from many machines');
  assert.ok(start >= 0, 'README has the section');
  const section = readme.slice(start, readme.indexOf('\n### ', start + 1));
  const blocks = [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);
  return blocks.flatMap((b) => b.split('\n')).map((l) => l.trim()).filter((l) => l.startsWith('socketkit '));
}

interface Container {
  readonly command: string[];
  readonly args: string[];
  readonly env: { name: string; value: string }[];
}

describe('examples/', () => {
  it('k8s/load-job.yaml: an Indexed Job of 3 agents whose command is the README\'s', async () => {
    const docs = parseAllDocuments(await readFile(join(root, 'examples', 'k8s', 'load-job.yaml'), 'utf8'));
    assert.equal(docs.length, 1);
    assert.deepEqual(docs[0]!.errors, []);
    const job = docs[0]!.toJS() as { apiVersion: string; kind: string; spec: { completionMode: string; completions: number; parallelism: number; template: { spec: { restartPolicy: string; containers: Container[] } } } };
    assert.deepEqual([job.apiVersion, job.kind, job.spec.completionMode], ['batch/v1', 'Job', 'Indexed']);
    assert.equal(job.spec.completions, 3);
    assert.equal(job.spec.parallelism, job.spec.completions);
    assert.equal(job.spec.template.spec.restartPolicy, 'Never');
    const [c] = job.spec.template.spec.containers;
    assert.ok(c);
    // Kubernetes expands $(NAME) from the container's env (and JOB_COMPLETION_INDEX, which it sets).
    const line = [...c.command, ...c.args].join(' ').replace(/\$\(([A-Z_]+)\)/g, '$$$1');
    const names = new Set([...line.matchAll(/\$([A-Z_]+)/g)].map((m) => m[1]!));
    for (const n of names) assert.ok(n === 'JOB_COMPLETION_INDEX' || c.env.some((e) => e.name === n), `${n} is set in env`);
    assert.ok((await readmeCommands()).includes(line), `README gives: ${line}`);
    // The README's collection loop asks for the same number of agents.
    const readme = await readFile(join(root, 'README.md'), 'utf8');
    assert.match(readme, new RegExp(`for i in ${Array.from({ length: job.spec.completions }, (_, i) => i).join(' ')}; do kubectl logs`));
  });

  it('the Kubernetes agent command, run here: its stdout is only the interval log', async (t) => {
    const server = await startManagedEchoServer({ kind: 'inet', host: '127.0.0.1', port: 0 });
    t.after(() => server.close());
    const r = await runCli(['load', formatEndpoint(server.endpoint), '-c', '2', '-d', '0.5', '--start-at', '+0.5', '--tag', 'agent-0', '--hdr-log', '-', '-q']);
    assert.equal(r.code, 0, r.stderr);
    const out = r.stdout.toString();
    assert.match(out, /^#\[Logged with socketkit\]\n/);
    assert.ok(out.split('\n').filter((l) => l !== '').every((l) => l.startsWith('#') || l.startsWith('"StartTimestamp"') || l.startsWith('Tag=agent-0,')));
  });

  it('ssh/run-agents.sh: runs the README\'s commands; 3 "hosts" load one server and the merged count is the server\'s', async (t) => {
    const script = await readFile(join(root, 'examples', 'ssh', 'run-agents.sh'), 'utf8');
    const scriptCommands = [...script.matchAll(/^\s*(?:ssh "\$host" ")?(socketkit [^"\n]*)/gm)].map((m) => m[1]!.trim());
    const readme = await readmeCommands();
    assert.equal(scriptCommands.length, 2);
    for (const c of scriptCommands) assert.ok(readme.includes(c), `README gives: ${c}`);
    for (const c of readme.filter((l) => !l.includes('JOB_COMPLETION_INDEX'))) assert.ok(scriptCommands.includes(c), `the script runs: ${c}`);

    const server = await startManagedEchoServer({ kind: 'inet', host: '127.0.0.1', port: 0 });
    t.after(() => server.close());
    const dir = tempDir(t);
    const bin = join(dir, 'bin');
    await run('mkdir', ['-p', bin, join(dir, 'hosts')]);
    // `ssh HOST CMD`: CMD run by sh in hosts/HOST, as if on that machine.
    await writeFile(join(bin, 'ssh'), '#!/bin/sh\nhost=$1; shift\nmkdir -p "hosts/$host" && cd "hosts/$host" && exec sh -c "$*"\n');
    await writeFile(join(bin, 'socketkit'), `#!/bin/sh\nexec "${process.execPath}" "${BIN}" "$@"\n`);
    await chmod(join(bin, 'ssh'), 0o755);
    await chmod(join(bin, 'socketkit'), 0o755);
    const before = server.stats().roundTrips;
    const r = await run('sh', [join(root, 'examples', 'ssh', 'run-agents.sh'), 'a', 'b', 'c'], {
      cwd: dir,
      timeoutMs: 30_000,
      env: { ...process.env, PATH: `${bin}:${process.env['PATH'] ?? ''}`, TARGET: formatEndpoint(server.endpoint), DURATION: '1', CONNECTIONS: '2', LEAD: '3' },
    });
    assert.equal(r.code, 0, r.stderr);
    const served = server.stats().roundTrips - before - 3 * 2; // less each connection's warm-up byte
    const report = await runCli(['report', join(dir, 'agent-1.hlog'), join(dir, 'agent-2.hlog'), join(dir, 'agent-3.hlog'), '--json']);
    assert.equal(report.code, 0, report.stderr);
    const runs = (JSON.parse(report.stdout.toString()) as { runs: { roundTrips: number; sources: string[] }[] }).runs;
    assert.equal(runs.length, 1, 'the agents measured one window');
    assert.equal(runs[0]!.sources.length, 3);
    assert.ok(served > 0);
    assert.equal(runs[0]!.roundTrips, served);
    assert.match(await readFile(join(dir, 'run.html'), 'utf8'), /^<!doctype html>/i);
  });
});

// A node:test reporter for logs (CI, a pipe): a line per test file, every failure in full, every
// skipped test with its reason, and the runner's closing `# tests N`, `# pass N`, ... lines, as
// TAP ends. scripts/run-tests.js uses it when stdout is not a terminal (the spec reporter when
// it is). Passing tests print nothing of their own, so a green run is about 40 lines, not 3,000.
//
// A reporter is an async generator over the runner's events (Node 20, `--test-reporter`). The
// runner emits test:start, test:pass and test:fail of one file in the order the tests are
// declared, so a stack per file names each test with its suites.
import { relative } from 'node:path';
import { inspect } from 'node:util';

/** A file path relative to the working directory, as people typed it. */
function short(file) {
  return file === undefined ? '?' : relative(process.cwd(), file) || file;
}

/** file:line:column of a test. */
function where(data) {
  return data.line === undefined ? short(data.file) : `${short(data.file)}:${data.line}:${data.column ?? 1}`;
}

/** The error the test threw, with its stack, assertion details and cause (the runner wraps it). */
function describeError(error) {
  if (error === undefined || error === null) return 'failed (no error given)';
  const inner = error.code === 'ERR_TEST_FAILURE' && error.cause !== undefined ? error.cause : error;
  // A test file that exited badly (a crash, process.exit) carries its exit status, not a stack.
  if (typeof error.exitCode === 'number' || typeof error.signal === 'string') {
    return `the test file exited with ${error.signal ? `signal ${error.signal}` : `code ${error.exitCode}`}`;
  }
  const text = inspect(inner, { depth: 6 });
  const kind = error.failureType !== undefined && error.failureType !== 'testCodeFailure' ? `[${error.failureType}] ` : '';
  return kind + text;
}

function indent(text, by = '    ') {
  return text
    .split('\n')
    .map((l) => (l === '' ? l : by + l))
    .join('\n');
}

/** Root diagnostics that make up the closing summary, in TAP's order. */
const SUMMARY = /^(tests|suites|pass|fail|cancelled|skipped|todo|duration_ms) /;

export default async function* summaryReporter(source) {
  /** file -> names of the tests now reporting, by nesting level */
  const stacks = new Map();
  /** file -> counts, its own completion event, and whether its report is over */
  const files = new Map();
  /** The file whose tests are being reported now (one file at a time, see below). */
  let current;
  const skipped = [];
  const summary = [];
  const fileOf = (file) => {
    let f = files.get(file);
    if (f === undefined) files.set(file, (f = { tests: 0, failed: 0, skipped: 0, todo: 0, complete: undefined, reported: false, printed: false }));
    return f;
  };
  const fullName = (data) => {
    const stack = stacks.get(data.file) ?? [];
    return [...stack.slice(0, data.nesting), data.name].join(' > ');
  };
  const isFile = (data) => data.file !== undefined && data.name === data.file;
  const isSuite = (data) => data.details?.type === 'suite';
  /** A failure in full: the test's name with its suites, where it is, and its error. */
  const failure = (name, data, error) => `\nFAIL ${name}\n  at ${where(data)}\n${indent(describeError(error))}\n\n`;

  /**
   * One line for a file, once it has completed and its tests have all been reported: ok or
   * FAIL, its counts and time, after its own failure if it has one (a crash, an exit code).
   * With files run in parallel, the runner emits a file's completion when it ends but reports
   * its tests only when the files before it are reported, so both are waited for.
   */
  function* fileLine(file) {
    const f = files.get(file);
    if (f === undefined || f.printed || f.complete === undefined || !f.reported) return;
    f.printed = true;
    stacks.delete(file);
    const { details } = f.complete;
    const ok = details?.passed === true;
    if (!ok && details?.error?.failureType !== 'subtestsFailed') yield failure(short(file), f.complete, details?.error);
    const extra = [f.failed && `${f.failed} failed`, f.skipped && `${f.skipped} skipped`, f.todo && `${f.todo} todo`].filter(Boolean);
    const secs = ((details?.duration_ms ?? 0) / 1000).toFixed(1);
    yield `${ok ? 'ok  ' : 'FAIL'} ${short(file)} (${[`${f.tests} test${f.tests === 1 ? '' : 's'}`, ...extra].join(', ')}, ${secs} s)\n`;
  }
  /** An event in report order from `file`: when the runner moves on to another file, the last one is fully reported. */
  function* reporting(file) {
    if (file === undefined || file === current) return;
    if (current !== undefined) {
      fileOf(current).reported = true;
      yield* fileLine(current);
    }
    current = file;
  }

  for await (const { type, data } of source) {
    switch (type) {
      case 'test:start': {
        yield* reporting(data.file);
        if (isFile(data)) break;
        const stack = stacks.get(data.file) ?? [];
        stack.length = data.nesting;
        stack[data.nesting] = data.name;
        stacks.set(data.file, stack);
        break;
      }
      case 'test:pass': {
        yield* reporting(data.file);
        if (isFile(data)) break;
        const f = fileOf(data.file);
        if (data.skip !== undefined || data.todo !== undefined) {
          // A skipped suite is reported once, its tests not at all: keep its reason too.
          if (data.skip !== undefined) f.skipped++;
          else f.todo++;
          const reason = data.skip ?? data.todo;
          const what = `${data.skip !== undefined ? 'SKIP' : 'TODO'}${isSuite(data) ? ' suite' : ''}`;
          skipped.push(`  ${what} ${fullName(data)} (${where(data)})${typeof reason === 'string' && reason !== '' ? `: ${reason}` : ''}`);
        }
        if (!isSuite(data)) f.tests++;
        break;
      }
      case 'test:fail': {
        yield* reporting(data.file);
        // A file's own failure is printed with its line; a suite whose tests failed adds nothing.
        const error = data.details?.error;
        if (isFile(data) || (isSuite(data) && error?.failureType === 'subtestsFailed')) break;
        if (!isSuite(data)) {
          const f = fileOf(data.file);
          f.tests++;
          f.failed++;
        }
        yield failure(fullName(data), data, error);
        break;
      }
      case 'test:complete': {
        // The runner reports each file as a test named by its path, which always completes
        // (and only sometimes starts or fails).
        if (!isFile(data)) break;
        fileOf(data.file).complete = data;
        yield* fileLine(data.file);
        break;
      }
      case 'test:diagnostic': {
        if (data.file === undefined && data.nesting === 0 && SUMMARY.test(data.message)) {
          summary.push(`# ${data.message}\n`);
          break;
        }
        yield* reporting(data.file);
        yield `# ${data.file === undefined ? '' : `${short(data.file)}: `}${data.message}\n`;
        break;
      }
      case 'test:stderr':
      case 'test:stdout': {
        // What a test file printed itself (warnings, a crash): kept, marked with its file.
        const text = String(data.message ?? '').replace(/\n$/, '');
        if (text !== '') yield `${indent(text, `# ${short(data.file)}: `)}\n`;
        break;
      }
      default:
        break;
    }
  }
  // The stream is over: every file is reported.
  for (const [file, f] of files) {
    f.reported = true;
    yield* fileLine(file);
  }
  if (skipped.length > 0) yield `\nnot run, with the reasons given (${skipped.length}):\n${skipped.join('\n')}\n`;
  yield '\n';
  yield* summary;
}

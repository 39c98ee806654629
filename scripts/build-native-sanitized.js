#!/usr/bin/env node
// Builds the native helper (every native/*.c, as binding.gyp does) with AddressSanitizer and
// UndefinedBehaviorSanitizer into a separate file, for the sanitizer test
// (test/native-sanitized.test.ts): `node scripts/build-native-sanitized.js OUT_DIR`.
//
// gcc against the headers of the Node.js that runs this script; nothing is downloaded. Prints
// one JSON line: {"addon": PATH, "asan": PATH-OF-LIBASAN} on success, or {"skip": REASON} (exit 0)
// when gcc, Node's headers or libasan are not there. A compile error is a failure (exit 1): the
// code does not build with the sanitizers.
//
// Load the result in a node started with the ASan runtime preloaded (node itself is not built
// with ASan): LD_PRELOAD=<asan> SOCKETKIT_NATIVE_ADDON=<addon> node ...
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const out = resolve(process.argv[2] ?? join(root, 'build', 'sanitized'));
const say = (o) => console.log(JSON.stringify(o));
const skip = (reason) => {
  say({ skip: reason });
  process.exit(0);
};

if (process.platform !== 'linux') skip(`the native helper is built on Linux only, this is ${process.platform}`);
const gcc = spawnSync('gcc', ['--version'], { encoding: 'utf8' });
if (gcc.status !== 0) skip('gcc is not installed (Debian package gcc)');
const asan = spawnSync('gcc', ['-print-file-name=libasan.so'], { encoding: 'utf8' }).stdout.trim();
if (!asan.startsWith('/') || !existsSync(asan)) skip("gcc has no libasan.so (Debian package libasan8, or gcc's own)");
const headers = [join(dirname(process.execPath), '..', 'include', 'node'), process.env.npm_config_nodedir ? join(process.env.npm_config_nodedir, 'include', 'node') : ''].find(
  (d) => d !== '' && existsSync(join(d, 'node_api.h')),
);
if (headers === undefined) skip(`no node_api.h next to this Node.js (${process.execPath})`);

const sources = readdirSync(join(root, 'native'))
  .filter((f) => f.endsWith('.c'))
  .sort()
  .map((f) => join(root, 'native', f));
mkdirSync(out, { recursive: true });
const addon = join(out, 'socketkit_native.node');
const args = [
  '-shared',
  '-fPIC',
  '-std=gnu11',
  '-O1',
  '-g',
  '-pthread',
  '-Wall',
  '-Wextra',
  '-Wno-comment',
  '-fno-omit-frame-pointer',
  '-fsanitize=address,undefined',
  '-fno-sanitize-recover=undefined',
  '-DNAPI_VERSION=8',
  '-DNODE_GYP_MODULE_NAME=socketkit_native',
  `-I${headers}`,
  ...sources,
  '-o',
  addon,
];
const r = spawnSync('gcc', args, { encoding: 'utf8', timeout: 180_000 });
if (r.status !== 0) {
  console.error(`${r.stderr ?? ''}${r.error ? String(r.error.message) : ''}`);
  console.error(`build-native-sanitized: gcc failed (${r.status ?? r.signal})`);
  process.exit(1);
}
say({ addon, asan, sources: sources.length });

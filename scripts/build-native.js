#!/usr/bin/env node
// Builds socketkit's optional native helper (native/socketkit_native.c: sendfile(2) for raw transfers)
// with node-gyp, against the headers of the Node.js that runs this script. It never fails the
// install: without a C compiler (or off Linux) socketkit uses plain reads and writes instead,
// and says so here in one line.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const skip = (why) => {
  console.log(`socketkit: native sendfile helper not built (${why}); raw transfers use reads and writes instead`);
  process.exit(0);
};

if (process.platform !== 'linux') skip(`it is used on Linux only, this is ${process.platform}`);
if (process.env.SOCKETKIT_NATIVE === '0') skip('SOCKETKIT_NATIVE=0');

// npm tells its scripts where its node-gyp is; otherwise look next to this Node.js.
const prefix = resolve(dirname(process.execPath), '..');
const gyp = [process.env.npm_config_node_gyp, join(prefix, 'lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js')].find(
  (p) => p !== undefined && p !== '' && existsSync(p),
);
if (gyp === undefined) skip('node-gyp not found');

const args = [gyp, 'rebuild', '--loglevel=error'];
// This Node.js's own headers, when it has them, so nothing is downloaded.
if (!process.env.npm_config_nodedir && existsSync(join(prefix, 'include/node/node_api.h'))) args.push(`--nodedir=${prefix}`);
const r = spawnSync(process.execPath, args, { cwd: root, encoding: 'utf8', timeout: 180_000, maxBuffer: 64 * 1024 * 1024 });
if (r.status !== 0) {
  const lines = `${r.stderr ?? ''}\n${r.stdout ?? ''}`.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('gyp info'));
  const reason = lines.find((l) => /error/i.test(l)) ?? lines[0] ?? (r.error ? String(r.error.message) : `node-gyp exited with ${r.status ?? r.signal}`);
  skip(reason.slice(0, 200));
}
console.log('socketkit: built the native sendfile helper (build/Release/socketkit_native.node)');

#!/usr/bin/env node
// The installed command: runs the compiled CLI (built by `npm install` through `prepare`).
import { main } from '../dist/src/cli/main.js';

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`socketkit: internal error: ${err?.stack ?? err}\n`);
    process.exitCode = 70;
  },
);

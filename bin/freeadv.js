#!/usr/bin/env node
// The freeadv command line (compiled TypeScript in dist/; `npm run build` makes it).
// CommonJS on purpose (bin/package.json): it runs before Node's ES module loader has started libuv's thread
// pool, which is sized once per process from UV_THREADPOOL_SIZE. sharp decodes images on that pool, so the
// pool gets a thread for each image folder loader worker (--workers, default cores − 1 per process) and two
// more for file I/O. An UV_THREADPOOL_SIZE already set is left alone.
'use strict';
const { existsSync } = require('node:fs');
const { availableParallelism } = require('node:os');
const { join } = require('node:path');
const { pathToFileURL } = require('node:url');

function loaderWorkers(argv) {
  for (let i = 0; i < argv.length; i++) {
    const m = /^--workers(?:=(.*))?$/.exec(argv[i]);
    if (m) {
      const n = Number(m[1] ?? argv[i + 1]);
      if (Number.isInteger(n) && n >= 1) return n;
    }
  }
  const local = Math.max(1, Math.floor(Number(process.env.LOCAL_WORLD_SIZE)) || 1);
  return Math.max(1, Math.floor(availableParallelism() / local) - 1);
}
if (process.env.UV_THREADPOOL_SIZE === undefined) process.env.UV_THREADPOOL_SIZE = String(Math.min(1024, Math.max(4, loaderWorkers(process.argv) + 2)));

const main = join(__dirname, '..', 'dist', 'src', 'cli', 'main.js');
if (!existsSync(main)) {
  process.stderr.write('freeadv: not built yet; run `npm run build` (scripts/setup.sh does everything)\n');
  process.exit(1);
}
import(pathToFileURL(main).href).then(async ({ run }) => {
  process.exitCode = await run(process.argv.slice(2));
});

// Builds the native addon with node-gyp against the libtorch found by scripts/libtorch.cjs.
// Skips the build when build/Release/freeadv.node is newer than its sources (pass --force to rebuild).
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'build', 'Release', 'freeadv.node');
// Everything the addon is built from: every .cc and .h under native/ (compat/ included), binding.gyp, and the
// script that picks libtorch's flags. The folders count too: adding or removing a file changes their mtime.
function nativeFiles(dir) {
  return [dir, ...readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? nativeFiles(join(dir, e.name)) : /\.(cc|h)$/.test(e.name) ? [join(dir, e.name)] : [],
  )];
}
const sources = [...nativeFiles(join(root, 'native')), join(root, 'binding.gyp'), join(root, 'scripts', 'libtorch.cjs')];
const force = process.argv.includes('--force') || process.env.LIBTORCH !== undefined;
if (!force && existsSync(out) && sources.every((s) => statSync(s).mtimeMs < statSync(out).mtimeMs)) {
  console.log('freeadv: native addon is up to date');
  process.exit(0);
}

function nodeGyp() {
  if (process.env.npm_config_node_gyp && existsSync(process.env.npm_config_node_gyp)) return process.env.npm_config_node_gyp;
  const require = createRequire(import.meta.url);
  for (const base of [join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm'), '/usr/lib/node_modules/npm', '/usr/local/lib/node_modules/npm']) {
    const p = join(base, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
    if (existsSync(p)) return p;
  }
  return require.resolve('node-gyp/bin/node-gyp.js');
}

// Use the headers of the running Node (no download: our machines have no internet).
const nodedir = join(dirname(process.execPath), '..');
const args = [nodeGyp(), 'rebuild', '--release', `--jobs=${Math.max(1, Math.min(4, (await import('node:os')).cpus().length))}`];
if (existsSync(join(nodedir, 'include', 'node', 'node_api.h'))) args.push(`--nodedir=${nodedir}`);
console.log('freeadv: building the native addon (about a minute)...');
execFileSync(process.execPath, args, { cwd: root, stdio: 'inherit' });


// Builds the native addon with node-gyp against the libtorch found by scripts/libtorch.cjs.
// Skips the build when build/Release/freeadv.node is newer than its sources (pass --force to rebuild).
// --out DIR builds in DIR instead (a copy of the sources, DIR/build/Release/freeadv.node), leaving build/ alone:
// an addon for another libtorch beside the default one, loaded with FREEADV_ADDON=DIR/build/Release/freeadv.node.
// --check-tools only says whether this Node.js can build here (exit 0) or what it lacks (exit 1).
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const pkg = join(dirname(fileURLToPath(import.meta.url)), '..');
// Use the headers of the running Node (no download: our machines have no internet).
const nodedir = join(dirname(process.execPath), '..');
const nodeHeaders = existsSync(join(nodedir, 'include', 'node', 'node_api.h'));

// --check-tools: exits 0 where this Node.js can build the addon (node-gyp found, and its own headers, so that
// node-gyp need not download them), else names what is missing and exits 1; builds nothing.
if (process.argv.includes('--check-tools')) {
  const missing = [];
  try {
    nodeGyp();
  } catch {
    missing.push('node-gyp (it comes with npm)');
  }
  if (!nodeHeaders) missing.push(`Node.js's headers (${join(nodedir, 'include', 'node')})`);
  for (const m of missing) console.error(`freeadv: cannot build the addon: no ${m}`);
  process.exit(missing.length ? 1 : 0);
}
const outArg = process.argv.indexOf('--out');
if (outArg >= 0 && !process.argv[outArg + 1]) {
  console.error('freeadv: --out needs a folder');
  process.exit(2);
}
const root = outArg >= 0 ? resolve(process.argv[outArg + 1]) : pkg;
if (root !== pkg) {
  // the sources node-gyp reads, and node_modules for node-addon-api's headers
  mkdirSync(join(root, 'scripts'), { recursive: true });
  rmSync(join(root, 'native'), { recursive: true, force: true });
  cpSync(join(pkg, 'native'), join(root, 'native'), { recursive: true });
  cpSync(join(pkg, 'binding.gyp'), join(root, 'binding.gyp'));
  cpSync(join(pkg, 'scripts', 'libtorch.cjs'), join(root, 'scripts', 'libtorch.cjs'));
  if (!existsSync(join(root, 'node_modules'))) symlinkSync(join(pkg, 'node_modules'), join(root, 'node_modules'));
}
const out = join(root, 'build', 'Release', 'freeadv.node');
// Everything the addon is built from: every .cc and .h under native/ (compat/ included), binding.gyp, and the
// script that picks libtorch's flags. The folders count too: adding or removing a file changes their mtime.
function nativeFiles(dir) {
  return [dir, ...readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? nativeFiles(join(dir, e.name)) : /\.(cc|h)$/.test(e.name) ? [join(dir, e.name)] : [],
  )];
}
const sources = [...nativeFiles(join(root, 'native')), join(root, 'binding.gyp'), join(root, 'scripts', 'libtorch.cjs')];
const force = process.argv.includes('--force') || process.env.LIBTORCH !== undefined || root !== pkg;
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

// One compiler per core, up to one per source file (each holds libtorch's headers: about 1 GB).
const jobs = Math.max(1, Math.min((await import('node:os')).availableParallelism(), readdirSync(join(root, 'native')).filter((f) => f.endsWith('.cc')).length));
const args = [nodeGyp(), 'rebuild', '--release', `--jobs=${jobs}`];
if (nodeHeaders) args.push(`--nodedir=${nodedir}`);
console.log('freeadv: building the native addon (about a minute)...');
execFileSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
if (root !== pkg) console.log(`freeadv: built ${out}; use it with FREEADV_ADDON=${out}`);


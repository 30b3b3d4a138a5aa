// Locates the libtorch the addon builds against and prints gyp flags for it.
// Default: Debian's libtorch-dev (system include and lib dirs). LIBTORCH=<dir> (with include/ and lib/) selects
// any other libtorch, e.g. the one inside a pip-installed torch or an official CUDA libtorch.
'use strict';
const fs = require('fs');
const path = require('path');

function locate() {
  const root = process.env.LIBTORCH;
  if (root) {
    const inc = path.join(root, 'include');
    const lib = path.join(root, 'lib');
    if (!fs.existsSync(path.join(inc, 'ATen', 'ATen.h')))
      throw new Error(`LIBTORCH=${root}: ${inc}/ATen/ATen.h not found (expected a libtorch with include/ and lib/)`);
    return { inc: [inc, path.join(inc, 'torch', 'csrc', 'api', 'include')], lib };
  }
  const inc = '/usr/include';
  const lib = ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib'].find((d) =>
    fs.existsSync(path.join(d, 'libtorch_cpu.so')),
  );
  if (!fs.existsSync(path.join(inc, 'ATen', 'ATen.h')) || !lib)
    throw new Error('libtorch not found: install Debian\'s libtorch-dev (scripts/setup.sh does) or set LIBTORCH=<dir>');
  return { inc: [inc, path.join(inc, 'torch', 'csrc', 'api', 'include')], lib, system: true };
}

// The C++ ABI must match the libtorch in use (a mismatch segfaults on the first thrown c10::Error).
function cxx11abi(lib) {
  const so = path.join(lib, 'libc10.so');
  const buf = fs.readFileSync(fs.realpathSync(so));
  return buf.includes('__cxx11') ? 1 : 0;
}

// c10d's ProcessGroupGloo header needs gloo's headers (Debian: libgloo-dev); without them the addon is built
// without process groups and `--nproc` explains what to install.
function gloo(t) {
  return ['/usr/include', ...t.inc].some((d) => fs.existsSync(path.join(d, 'gloo', 'context.h'))) &&
    fs.existsSync(path.join(t.inc[0], 'torch', 'csrc', 'distributed', 'c10d', 'ProcessGroupGloo.hpp'));
}

function flags(what) {
  const t = locate();
  const cuda = fs.existsSync(path.join(t.lib, 'libtorch_cuda.so'));
  switch (what) {
    case 'include':
      return t.inc;
    case 'defines':
      return [`_GLIBCXX_USE_CXX11_ABI=${cxx11abi(t.lib)}`, `FREEADV_CUDA=${cuda ? 1 : 0}`, `FREEADV_GLOO=${gloo(t) ? 1 : 0}`];
    case 'libs':
      return [`-L${t.lib}`, '-ltorch', '-ltorch_cpu', '-lc10'];
    case 'ldflags':
      // --no-as-needed keeps libtorch_cuda linked although no symbol of it is referenced: its static
      // initialisers register the CUDA kernels and hooks.
      return [
        ...(t.system ? [] : [`-Wl,-rpath,${t.lib}`]),
        ...(cuda ? ['-Wl,--no-as-needed', `-L${t.lib}`, '-ltorch_cuda', '-lc10_cuda', '-Wl,--as-needed'] : []),
      ];
    case 'info':
      return [JSON.stringify({ ...t, cuda, gloo: gloo(t), cxx11abi: cxx11abi(t.lib) })];
    default:
      throw new Error(`unknown query ${what}`);
  }
}

if (require.main === module) {
  try {
    process.stdout.write(flags(process.argv[2]).join(' ') + '\n');
  } catch (e) {
    process.stderr.write(`freeadv: ${e.message}\n`);
    process.exit(1);
  }
}
module.exports = { locate, flags };

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

// c10d's ProcessGroupGloo header needs gloo's headers, which the pip wheels do not ship (Debian: libgloo-dev;
// elsewhere FREEADV_GLOO_INCLUDE=<a folder holding gloo/>); without them the addon is built without process
// groups (Gloo and NCCL alike) and `--nproc` explains what to install.
function glooInclude(t) {
  const extra = process.env.FREEADV_GLOO_INCLUDE;
  if (extra && !fs.existsSync(path.join(extra, 'gloo', 'context.h')))
    throw new Error(`FREEADV_GLOO_INCLUDE=${extra}: no gloo/context.h there`);
  return [...(extra ? [extra] : []), '/usr/include', ...t.inc].find((d) => fs.existsSync(path.join(d, 'gloo', 'context.h')));
}
function gloo(t) {
  return glooInclude(t) !== undefined &&
    fs.existsSync(path.join(t.inc[0], 'torch', 'csrc', 'distributed', 'c10d', 'ProcessGroupGloo.hpp'));
}

// native/jpeg.cc decodes JPEGs with libjpeg(-turbo) where its headers are found (Debian: libjpeg62-turbo-dev);
// without them the addon is built without the decoder and sharp decodes JPEGs.
function jpeg() {
  return ['/usr/include', '/usr/local/include'].some((d) => fs.existsSync(path.join(d, 'jpeglib.h')));
}

// libtorch's version, from torch/version.h (TORCH_VERSION_MAJOR/MINOR); null where it cannot be read.
function version(t) {
  // (2.14 moved the numbers from torch/version.h to torch/headeronly/version.h, which the former includes)
  for (const f of t.inc.flatMap((d) => [path.join(d, 'torch', 'version.h'), path.join(d, 'torch', 'headeronly', 'version.h')])) {
    if (!fs.existsSync(f)) continue;
    const s = fs.readFileSync(f, 'utf8');
    const major = /#define\s+TORCH_VERSION_MAJOR\s+(\d+)/.exec(s);
    const minor = /#define\s+TORCH_VERSION_MINOR\s+(\d+)/.exec(s);
    if (major && minor) return { major: Number(major[1]), minor: Number(minor[1]) };
  }
  return null;
}

// The C++ standard to compile with. libtorch's headers refuse older ones with an #error such as "C++20 or later
// compatible compiler is required to use ATen" (ATen/ATen.h, torch/all.h): C++20 from libtorch 2.14 on, C++17
// before (Debian's 1.13; the 2.x pip wheels up to 2.13). What the headers say decides; the version is the
// fallback for headers that moved the check elsewhere.
function cxxstd(t) {
  const headers = [
    ...[path.join(t.inc[0], 'ATen'), path.join(t.inc[0], 'c10', 'macros')].flatMap((d) =>
      fs.existsSync(d) ? fs.readdirSync(d).filter((f) => f.endsWith('.h')).map((f) => path.join(d, f)) : [],
    ),
    ...t.inc.map((d) => path.join(d, 'torch', 'all.h')),
  ];
  const needs20 = headers.some((f) => fs.existsSync(f) && /C\+\+20 or later/.test(fs.readFileSync(f, 'latin1')));
  const v = version(t);
  return needs20 || (v && (v.major > 2 || (v.major === 2 && v.minor >= 14))) ? '-std=c++20' : '-std=c++17';
}

// CUDA's and NCCL's headers, which libtorch's CUDA headers include (cuda_runtime_api.h, nccl.h): a pip wheel's
// come in the nvidia-* wheels beside torch (site-packages/nvidia/*/include, found through the same relative
// paths as libtorch_cuda.so's RPATH), an official libtorch's from the CUDA toolkit (CUDA_HOME, /usr/local/cuda).
function cudaIncludes(t) {
  const dirs = [];
  const nv = path.join(t.lib, '..', '..', 'nvidia');
  if (fs.existsSync(nv))
    for (const e of fs.readdirSync(nv).sort()) {
      const d = path.join(nv, e, 'include');
      if (fs.existsSync(d)) dirs.push(path.resolve(d));
    }
  for (const home of [process.env.CUDA_HOME, process.env.CUDA_PATH, '/usr/local/cuda'])
    if (home && fs.existsSync(path.join(home, 'include', 'cuda_runtime_api.h'))) dirs.push(path.join(home, 'include'));
  return dirs;
}

// What the addon can use of CUDA: cuda when libtorch_cuda is there and CUDA's runtime header can be found;
// nccl when, in addition, c10d's ProcessGroupNCCL header and nccl.h are there (the CUDA pip wheels and official
// CUDA libtorch downloads since 2.x; never Debian's 1.13).
function cudaSupport(t) {
  const inc = cudaIncludes(t);
  const has = (f) => [...t.inc, ...inc].some((d) => fs.existsSync(path.join(d, f)));
  const cuda = fs.existsSync(path.join(t.lib, 'libtorch_cuda.so')) && has('cuda_runtime_api.h');
  const nccl = cuda && !t.system && has('nccl.h') && has(path.join('torch', 'csrc', 'distributed', 'c10d', 'ProcessGroupNCCL.hpp'));
  return { cuda, nccl, inc };
}

function flags(what) {
  const t = locate();
  const { cuda, nccl, inc: cudaInc } = cudaSupport(t);
  switch (what) {
    case 'include': {
      const g = glooInclude(t);
      return [...t.inc, ...(cuda ? cudaInc : []), ...(g && g !== '/usr/include' && !t.inc.includes(g) ? [g] : [])];
    }
    case 'defines':
      return [
        `_GLIBCXX_USE_CXX11_ABI=${cxx11abi(t.lib)}`, `FREEADV_CUDA=${cuda ? 1 : 0}`, `FREEADV_GLOO=${gloo(t) ? 1 : 0}`,
        `FREEADV_NCCL=${nccl && gloo(t) ? 1 : 0}`, `FREEADV_JPEG=${jpeg() ? 1 : 0}`,
      ];
    case 'libs':
      return [`-L${t.lib}`, '-ltorch', '-ltorch_cpu', '-lc10', ...(jpeg() ? ['-ljpeg'] : [])];
    case 'ldflags':
      // --no-as-needed keeps libtorch_cuda linked although no symbol of it is referenced: its static
      // initialisers register the CUDA kernels and hooks.
      return [
        ...(t.system ? [] : [`-Wl,-rpath,${t.lib}`]),
        ...(cuda ? ['-Wl,--no-as-needed', `-L${t.lib}`, '-ltorch_cuda', '-lc10_cuda', '-Wl,--as-needed'] : []),
      ];
    case 'cxxstd':
      return [cxxstd(t)];
    case 'info':
      return [JSON.stringify({ ...t, cuda, nccl: nccl && gloo(t), gloo: gloo(t), glooInclude: glooInclude(t) ?? null, cxx11abi: cxx11abi(t.lib), jpeg: jpeg(), version: version(t), cxxstd: cxxstd(t) })];
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

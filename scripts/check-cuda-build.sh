#!/usr/bin/env bash
# Before landing a change to native code: builds the addon against the CUDA 13 pip wheel of torch 2.14.1 on a
# machine without a GPU, and runs tests against that build. Not in CI: it downloads 2.7 GB (torch 555 MB and the
# nvidia-* wheels whose headers and libraries it needs to compile and load) and unpacks 4.3 GB (BENCHMARKS.md, "GPUs").
#
#   bash scripts/check-cuda-build.sh                  # download once into .cache/, build, run the device tests
#   bash scripts/check-cuda-build.sh all              # … and the whole suite against the CUDA build
#
# CACHE (default .cache/cuda-wheels) keeps the wheels and the unpacked site-packages between runs.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${CACHE:-$PWD/.cache/cuda-wheels}
SITE=$CACHE/site-packages
PIP=${PIP:-pip}
mkdir -p "$CACHE/wheels" "$SITE"
if [ ! -f "$SITE/torch/lib/libtorch_cuda.so" ]; then
  # torch without its Python dependencies; the nvidia-* wheels (headers to compile, libraries to load) with theirs
  $PIP download --no-deps -d "$CACHE/wheels" torch==2.14.1
  $PIP download -d "$CACHE/wheels" "cuda-toolkit[cublas,cudart,cufft,cufile,cupti,curand,cusolver,cusparse,nvjitlink,nvrtc,nvtx]==13.0.3" \
    nvidia-cudnn-cu13==9.24.0.43 nvidia-cusparselt-cu13==0.8.1 nvidia-nccl-cu13==2.30.7 nvidia-nvshmem-cu13==3.4.5
  # the same layout as site-packages: torch/ beside nvidia/, which libtorch_cuda.so's rpath expects
  for w in "$CACHE"/wheels/torch-2.14.1-*.whl "$CACHE"/wheels/nvidia_*.whl; do unzip -q -o "$w" -d "$SITE" -x '*.dist-info/*'; done
fi
LIBTORCH=$SITE/torch node scripts/libtorch.cjs info
LIBTORCH=$SITE/torch node scripts/build-native.js --out build-cuda
npx tsc -p tsconfig.json
export FREEADV_ADDON=$PWD/build-cuda/build/Release/freeadv.node
node -e 'import("./dist/src/index.js").then(({ torch }) => { const ok = torch.cuda.built() && torch.dist.ncclAvailable(); console.log(`libtorch ${torch.version().torch}: CUDA ${torch.cuda.built()}, NCCL ${torch.dist.ncclAvailable()}`); process.exit(ok ? 0 : 1); })'
if [ "${1:-}" = all ]; then
  node --test --test-concurrency=1 dist/test/*.test.js
else
  node --test --test-concurrency=1 dist/test/device.test.js dist/test/dist.test.js dist/test/torch-basic.test.js dist/test/train-free.test.js
fi

#!/usr/bin/env bash
# Builds the native addon against the libtorch inside a pip-installed torch (CPU or CUDA wheel), beside the
# default build/ (which scripts/setup.sh builds against Debian's libtorch), and prints how to use it.
#
#   bash scripts/build-pip-torch.sh                 # the torch of python3; addon in build-torch-<version>/
#   bash scripts/build-pip-torch.sh --python /opt/venv/bin/python --out build-gpu
#   FREEADV_ADDON=$PWD/build-torch-<version>/build/Release/freeadv.node node bin/freeadv.js train --device cuda …
#
# A CUDA wheel gives an addon with CUDA (--device cuda) and, where gloo's headers are installed (Debian:
# libgloo-dev; elsewhere FREEADV_GLOO_INCLUDE=<a folder holding gloo/>), process groups with NCCL for --device cuda --nproc N. The addon finds libtorch and the nvidia-*
# libraries through an rpath to the wheel's torch/lib (whose own rpath reaches site-packages/nvidia/*/lib): no
# LD_LIBRARY_PATH. To make it the default addon instead: LIBTORCH=<that torch dir> npm run build:native.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=python3
OUT=""
while [ $# -gt 0 ]; do
  case $1 in
    --python) PY=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "build-pip-torch: unknown argument '$1' (--python PY, --out DIR)" >&2; exit 2 ;;
  esac
done
command -v "$PY" >/dev/null || { echo "build-pip-torch: '$PY' not found (--python PY)" >&2; exit 2; }
read -r TORCH_DIR VERSION CUDA < <("$PY" -c 'import os, torch; print(os.path.dirname(torch.__file__), torch.__version__.split("+")[0], torch.version.cuda or "none")' 2>/dev/null) \
  || { echo "build-pip-torch: $PY cannot import torch (pip install torch)" >&2; exit 2; }
OUT=${OUT:-build-torch-$VERSION}
echo "build-pip-torch: torch $VERSION (CUDA $CUDA) at $TORCH_DIR"
LIBTORCH=$TORCH_DIR node scripts/libtorch.cjs info
LIBTORCH=$TORCH_DIR node scripts/build-native.js --out "$OUT"
ADDON=$(cd "$OUT" && pwd)/build/Release/freeadv.node
FREEADV_ADDON=$ADDON node -e 'import("./dist/src/index.js").then(({ torch }) => console.log(`build-pip-torch: loads: libtorch ${torch.version().torch}, CUDA built ${torch.cuda.built()}, GPUs ${torch.cuda.deviceCount()}, NCCL ${torch.dist.ncclAvailable()}`))' 2>/dev/null \
  || echo "build-pip-torch: (run npx tsc -p tsconfig.json to check that it loads)"
echo "build-pip-torch: use it with  export FREEADV_ADDON=$ADDON"

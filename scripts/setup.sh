#!/usr/bin/env bash
# Idempotent set-up on Debian 12: system packages, npm dependencies, the native addon, the TypeScript build.
#   scripts/setup.sh          what training needs
#   scripts/setup.sh --tests  also what the tests need (PyTorch, torchvision and PIL for Python, for the cross-checks;
#                             Chromium, in which the report and demo tests render their pages through playwright-core —
#                             no browser download; strace, which counts the image loader's opens)
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs=(libtorch-dev libgloo-dev libjpeg62-turbo-dev libopenblas0-pthread dataset-fashion-mnist g++ make python3)
[ "${1:-}" = "--tests" ] && pkgs+=(python3-torch python3-torchvision python3-pil python3-onnx python3-protobuf chromium strace)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "freeadv setup: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# libtorch does its matrix products through libblas.so.3: make sure that is OpenBLAS, not the reference BLAS
if command -v update-alternatives >/dev/null; then
  blas=$(update-alternatives --query libblas.so.3-x86_64-linux-gnu 2>/dev/null | awk '/^Value:/{print $2}')
  case "$blas" in *openblas*) ;; "") ;; *) echo "freeadv setup: warning: libblas.so.3 is $blas (slow); expected OpenBLAS" >&2 ;; esac
fi

# npm ci also builds the addon through the package's install script; skip it when the lock file is unchanged
stamp=node_modules/.freeadv-lock
if [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp"; then
  ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund  # onnxruntime-node (tests): its bundled CPU build, no CUDA download
  cp package-lock.json "$stamp"
fi
node scripts/build-native.js
npx tsc -p tsconfig.json

#!/usr/bin/env bash
# One short GPU figure for CIFAR-10: builds the addon against the CUDA libtorch inside the machine's PyTorch,
# trains preact-resnet18 with free-8 (ε = 8/255) on the JPEG CIFAR-10 archive for as many natural-epoch budgets as
# fit in MINUTES (default 8), evaluates clean and PGD-20 accuracy on the 10,000 test images, and prints one table.
#
#   bash scripts/gpu-cifar.sh                     # MINUTES=8, archive from shared/data or ../shared/data
#   MINUTES=4 ARCHIVE=/data/cifar10-jpg.tar.gz bash scripts/gpu-cifar.sh
#   SMOKE=1 DEVICE=cpu MODEL=resnet-cifar-small bash scripts/gpu-cifar.sh   # the script's flow on a CPU machine
#
# Needs: Node.js >= 20, a C++ compiler, python3 with a CUDA build of torch (its include/ and lib/ are the
# libtorch used), and node_modules (`npm ci`, or copied along when the machine has no registry access).
set -euo pipefail
cd "$(dirname "$0")/.."
die() { echo "gpu-cifar: $*" >&2; exit 2; }

MINUTES=${MINUTES:-8}
DEVICE=${DEVICE:-cuda}
MODEL=${MODEL:-preact-resnet18}
SMOKE=${SMOKE:-}
PY=${PYTHON:-python3}
ARCHIVE=${ARCHIVE:-}
for c in shared/data/cifar10-jpg.tar.gz ../shared/data/cifar10-jpg.tar.gz; do
  if [ -z "$ARCHIVE" ] && [ -f "$c" ]; then ARCHIVE=$c; fi
done
[ -n "$ARCHIVE" ] && [ -f "$ARCHIVE" ] || die "CIFAR-10 archive not found; set ARCHIVE=<cifar10-jpg.tar.gz>"
command -v node >/dev/null || die "Node.js >= 20 is not installed on this machine"
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' || die "Node.js >= 20 needed, found $(node --version)"
if [ "$DEVICE" = cpu ]; then
  bash scripts/setup.sh
else
  TORCH_DIR=$($PY -c 'import os, torch; print(os.path.dirname(torch.__file__))' 2>/dev/null) || die "$PY cannot import torch"
  $PY -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' || die "torch.cuda.is_available() is false"
  echo "gpu-cifar: torch $($PY -c 'import torch; print(torch.__version__)') at $TORCH_DIR; $($PY -c 'import torch; print(torch.cuda.get_device_name(0))')"
  [ -d node_modules ] || npm ci --no-audit --no-fund --ignore-scripts
  LIBTORCH=$TORCH_DIR node scripts/build-native.js --force
  npx tsc -p tsconfig.json
  node -e 'import("./dist/src/index.js").then((f) => process.exit(f.torch.cuda.isAvailable() ? 0 : 1))' \
    || die "the addon was built but sees no CUDA device (was libtorch_cuda linked? see scripts/libtorch.cjs)"
fi
node bin/freeadv.js info

DATA=${DATA:-/tmp/freeadv-cifar10}
if [ ! -d "$DATA/train" ]; then
  mkdir -p "$DATA"
  tar xzf "$ARCHIVE" -C "$DATA"
fi
OUT=${OUT:-/tmp/freeadv-gpu-runs}
rm -rf "$OUT"
mkdir -p "$OUT"
common=(--dataset cifar10 --data-dir "$DATA" --model "$MODEL" --device "$DEVICE" --method free --replays 8
  --eps 8/255 --batch-size 128 --threads "$(nproc)")
calib_steps=48
final=()
if [ -n "$SMOKE" ]; then calib_steps=8; final=(--max-steps 8 --eval-limit 200); fi

# Calibration: 48 SGD steps give the training speed (the first run also builds the decoded-image cache).
node bin/freeadv.js train "${common[@]}" --epochs 8 --max-steps "$calib_steps" --eval-limit 200 --out "$OUT/calibrate"
EPOCHS=$(node -e '
  const s = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const perEpoch = 50000 / s.images_per_second;               // seconds per natural-epoch budget
  const e = Math.floor((Number(process.argv[2]) * 60) / perEpoch / 8) * 8;
  console.log(Math.max(8, e));' "$OUT/calibrate/summary.json" "$MINUTES")
echo "gpu-cifar: training free-8 for a budget of $EPOCHS natural epochs ($((EPOCHS / 8)) passes)"

node bin/freeadv.js train "${common[@]}" --epochs "$EPOCHS" --eval-attacks pgd-20 ${final[@]+"${final[@]}"} --out "$OUT/free8"
node -e '
  const fs = require("fs");
  const s = JSON.parse(fs.readFileSync(process.argv[1], "utf8"));
  const pct = (v) => (100 * v).toFixed(2) + "%";
  console.log("| model | method | epochs (budget) | images/s | train min | clean | PGD-20 |");
  console.log("|---|---|---|---|---|---|---|");
  console.log(`| ${s.model} | free-8, ε=8/255 | ${s.epochs} | ${s.images_per_second.toFixed(0)} | ${(s.train_seconds / 60).toFixed(1)} | ${pct(s.clean_accuracy)} | ${pct(s.robust_accuracy["pgd-20"])} |`);
' "$OUT/free8/summary.json"

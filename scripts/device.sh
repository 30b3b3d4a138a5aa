#!/usr/bin/env bash
# One command for a lent GPU machine (about 8 minutes): builds the addon against that machine's CUDA PyTorch,
# runs the device tests on the GPU, measures the free-training step of preact-resnet18 and wrn-34-10 (batch 128)
# against the same step in PyTorch CUDA eager in the same run, trains preact-resnet18 free-8 (ε = 8/255) on the
# CIFAR-10 JPEGs for the time left, evaluates it (clean, PGD-20, APGD-CE) and writes everything to one JSON file.
# Every stage has its own time limit, so one that fails or overruns does not lose the others.
#
#   bash scripts/device.sh                       # on the GPU machine; writes $OUT_JSON (default device-result.json)
#   SMOKE=1 bash scripts/device.sh               # the same flow on a CPU machine, tiny (minutes): run it first
#   bash scripts/device.sh --pack                # here: dist/ and the runtime node_modules into device-pack/
#
# The GPU machine gets a copy of the working tree and at most 64 MiB of ignored paths: run `--pack` first and
# carry device-pack/ (dist/ plus the few runtime packages: sharp for JPEGs, node-addon-api for the build, …).
# It needs Node.js >= 20, a C++ compiler and make, python3 with a CUDA build of torch (its libtorch is what the
# addon is built against: include/, lib/, and the nvidia-* wheels' headers), and gloo's headers for process
# groups (Debian: libgloo-dev; without them the addon is built without them and the NCCL test is skipped), and
# libjpeg's headers for the addon's JPEG decoder (Debian: libjpeg62-turbo-dev; without them sharp decodes JPEGs).
# What is missing is named before any work (exit 2). Environment: BUDGET_S (480), OUT_JSON, PYTHON (python3),
# ARCHIVE (the CIFAR-10 JPEG archive; default shared/data or ../shared/data), ADDON (an addon already built:
# skips the build), DEVICE (cuda; SMOKE: cpu).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
say() { echo "device: $*" >&2; }
die() { say "$*"; exit 2; }

if [ "${1:-}" = --pack ]; then
  command -v npx >/dev/null || die "--pack needs npx (Node.js) here"
  npx tsc -p tsconfig.json || die "TypeScript build failed"
  rm -rf device-pack && mkdir -p device-pack/node_modules
  cp -r dist device-pack/dist
  for p in node-addon-api sharp @img detect-libc semver yaml protobufjs long chart.js chartjs-chart-matrix @kurkle; do
    [ -e "node_modules/$p" ] && cp -rL "node_modules/$p" "device-pack/node_modules/$p"
  done
  du -sh device-pack >&2
  say "packed device-pack/ (carry it: run(carry=[\"device-pack\"]))"
  exit 0
fi

SMOKE=${SMOKE:-}
BUDGET_S=${BUDGET_S:-$([ -n "$SMOKE" ] && echo 900 || echo 480)}
DEVICE=${DEVICE:-$([ -n "$SMOKE" ] && echo cpu || echo cuda)}
PY=${PYTHON:-python3}
OUT_JSON=${OUT_JSON:-$ROOT/device-result.json}
WORK=${WORK:-$(mktemp -d /tmp/freeadv-device.XXXXXX)}
mkdir -p "$WORK"
T0=$(date +%s)
elapsed() { echo $(($(date +%s) - T0)); }
left() { echo $((BUDGET_S - $(elapsed))); }

# ---- what the machine has (checked before any work) ----
missing=()
command -v node >/dev/null || missing+=("Node.js >= 20 (node)")
command -v node >/dev/null && ! node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)' && missing+=("Node.js >= 20 (found $(node --version))")
[ -d node_modules ] || [ -d device-pack/node_modules ] || missing+=("node_modules (run 'bash scripts/device.sh --pack' on a machine with them and carry device-pack/)")
[ -d dist ] || [ -d device-pack/dist ] || command -v npx >/dev/null || missing+=("dist/ (the TypeScript build; carry device-pack/)")
ARCHIVE=${ARCHIVE:-}
for c in shared/data/cifar10-jpg.tar.gz ../shared/data/cifar10-jpg.tar.gz; do
  [ -z "$ARCHIVE" ] && [ -f "$c" ] && ARCHIVE=$c
done
[ -n "$ARCHIVE" ] && [ -f "$ARCHIVE" ] || missing+=("the CIFAR-10 JPEG archive (ARCHIVE=…/cifar10-jpg.tar.gz)")
TORCH_DIR=""
if command -v "$PY" >/dev/null && TORCH_DIR=$("$PY" -c 'import os, torch; print(os.path.dirname(torch.__file__))' 2>/dev/null); then
  :
else
  missing+=("python3 with torch (PYTHON=…; the PyTorch twin of the bench, and the CUDA libtorch to build against)")
fi
if [ -z "${ADDON:-}" ] && [ "$DEVICE" != cpu ]; then
  command -v g++ >/dev/null || command -v c++ >/dev/null || missing+=("a C++ compiler (g++)")
  command -v make >/dev/null || missing+=("make")
  # node-gyp compiles against the running Node's headers; without them it would try to download them
  command -v node >/dev/null && [ ! -f "$(dirname "$(command -v node)")/../include/node/node_api.h" ] && missing+=("Node.js's headers (include/node/node_api.h beside node; a Node.js install from a tarball or a distribution package has them)")
  command -v node >/dev/null && ! node -e 'for (const p of [require("path").join(require("path").dirname(process.execPath), "..", "lib", "node_modules", "npm", "node_modules", "node-gyp"), "/usr/lib/node_modules/npm/node_modules/node-gyp", "/usr/local/lib/node_modules/npm/node_modules/node-gyp"]) if (require("fs").existsSync(p)) process.exit(0); process.exit(1)' && missing+=("node-gyp (comes with npm)")
fi
if [ "$DEVICE" != cpu ] && [ -n "$TORCH_DIR" ]; then
  "$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null || missing+=("a GPU that torch sees (torch.cuda.is_available() is false)")
fi
if [ ${#missing[@]} -gt 0 ]; then
  for m in "${missing[@]}"; do say "missing: $m"; done
  exit 2
fi
[ -d node_modules ] || ln -s device-pack/node_modules node_modules
[ -d dist ] || { [ -d device-pack/dist ] && ln -s device-pack/dist dist; } || npx tsc -p tsconfig.json
say "torch $("$PY" -c 'import torch; print(torch.__version__, "cuda", torch.version.cuda)') at $TORCH_DIR; device $DEVICE; budget ${BUDGET_S}s; work $WORK"

# stage NAME LIMIT_S CMD…: runs CMD with a time limit, its output in $WORK/NAME.log; records rc and seconds.
STAGES=$WORK/stages.jsonl
: > "$STAGES"
stage() {
  local name=$1 limit=$2; shift 2
  local s0; s0=$(date +%s)
  say "[$name] (limit ${limit}s, $(left)s of the budget left)"
  timeout --kill-after=10 "$limit" "$@" > "$WORK/$name.log" 2>&1
  local rc=$?
  tail -n 5 "$WORK/$name.log" >&2
  printf '{"stage":"%s","rc":%d,"seconds":%d,"timed_out":%s,"log":"%s"}\n' "$name" "$rc" "$(($(date +%s) - s0))" \
    "$([ $rc = 124 ] || [ $rc = 137 ] && echo true || echo false)" "$WORK/$name.log" >> "$STAGES"
  return $rc
}

# ---- 1. build against this machine's CUDA torch ----
if [ -n "${ADDON:-}" ]; then
  export FREEADV_ADDON=$ADDON
elif [ "$DEVICE" = cpu ]; then
  export FREEADV_ADDON=$ROOT/build/Release/freeadv.node # SMOKE: the addon of scripts/setup.sh
else
  stage build 240 env LIBTORCH="$TORCH_DIR" node scripts/build-native.js --out "$WORK/addon" || true
  export FREEADV_ADDON=$WORK/addon/build/Release/freeadv.node
fi
stage info 60 node bin/freeadv.js info || true

# ---- 2. the device tests ----
stage tests $([ -n "$SMOKE" ] && echo 300 || echo 150) env FREEADV_TEST_DEVICE="$DEVICE" \
  node --test --test-concurrency=1 dist/test/device.test.js dist/test/train-free.test.js dist/test/torch-basic.test.js dist/test/optim-schedule.test.js || true

# ---- 3. the step: freeadv vs PyTorch eager on the same device, in this run ----
BENCH=$WORK/bench.jsonl
: > "$BENCH"
if [ -n "$SMOKE" ]; then rows=("resnet-cifar-small 16"); steps=2; else rows=("preact-resnet18 128" "wrn-34-10 128"); steps=20; fi
# Mixed precision: each row again with the forward pass and loss under bf16 autocast on the device (--amp bf16)
AMP_ROWS=(--amp bf16)
bench_row() { # MODEL BATCH [extra…]: one JSON line {freeadv, pytorch} for the interleaved natural,free step
  local m=$1 b=$2; shift 2
  local args=(--model "$m" --batch "$b" --steps "$steps" --warmup 3 --kind natural,free --device "$DEVICE" --threads "$(nproc)" "$@")
  local ours theirs
  ours=$(node dist/bench/step-worker.js "${args[@]}" | tail -n 1) || return 1
  theirs=$(cd bench/reference && "$PY" step_bench.py "${args[@]}" | tail -n 1) || return 1
  echo "{\"freeadv\":$ours,\"pytorch\":$theirs}" >> "$BENCH"
}
export -f bench_row
export steps DEVICE PY BENCH
for row in "${rows[@]}"; do
  set -- $row
  stage "bench-$1" $([ -n "$SMOKE" ] && echo 300 || echo 90) bash -c 'bench_row "$@"' _ "$1" "$2" || true
  if [ ${#AMP_ROWS[@]} -gt 0 ]; then stage "bench-$1-amp" 90 bash -c 'bench_row "$@"' _ "$1" "$2" "${AMP_ROWS[@]}" || true; fi
done

# ---- 4. train free-8 on CIFAR-10 for the time left, then evaluate ----
DATA=$WORK/cifar10
mkdir -p "$DATA"
if [ -n "$SMOKE" ]; then
  # a small slice of the archive (the first 20 training and 10 test images of each class, by name)
  stage data 300 bash -c "tar xzf '$ARCHIVE' -C '$DATA' --wildcards 'train/*/00[0-1]?.jpg' 'test/*/000?.jpg'" || true
else
  stage data 120 tar xzf "$ARCHIVE" -C "$DATA" || true
fi
MODEL=$([ -n "$SMOKE" ] && echo resnet-cifar-small || echo preact-resnet18)
EVAL_LIMIT=$([ -n "$SMOKE" ] && echo 50 || echo 1000)
EVAL_S=$([ -n "$SMOKE" ] && echo 240 || echo 100) # kept for the evaluation
# steps that fit: the measured free images/s of this model (bench), at 70% for data and validation
IPS=$(node -e '
  const rows = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").filter(Boolean).map(JSON.parse);
  const r = rows.find((r) => r.freeadv.model === process.argv[2]);
  console.log(r ? Math.round(r.freeadv.batch * 1000 / r.freeadv.ms_median.free) : 0);' "$BENCH" "$MODEL" 2>/dev/null || echo 0)
TRAIN_S=$(( $(left) - EVAL_S - 20 ))
[ "$TRAIN_S" -lt 30 ] && TRAIN_S=30
STEPS=$(( IPS > 0 ? TRAIN_S * IPS * 7 / 10 / 128 : 200 ))
[ -n "$SMOKE" ] && STEPS=8
[ "$STEPS" -lt 8 ] && STEPS=8
say "training: ${STEPS} SGD steps in about ${TRAIN_S}s (measured ${IPS} images/s)"
RUN=$WORK/free8
stage train "$TRAIN_S" node bin/freeadv.js train --dataset cifar10 --data-dir "$DATA" --model "$MODEL" --device "$DEVICE" \
  --method free --replays 8 --eps 8/255 --batch-size 128 --epochs 200 --max-steps "$STEPS" --val-size "$([ -n "$SMOKE" ] && echo 20 || echo 500)" \
  --eval-limit 10 --eval-attacks pgd-2 --checkpoint-every 50 --out "$RUN" || true
stage eval $(( $(left) > 30 ? $(left) - 10 : 30 )) node bin/freeadv.js eval --run "$RUN" --checkpoint latest --device "$DEVICE" \
  --attacks pgd-20,apgd-ce --limit "$EVAL_LIMIT" --json || true

# ---- 5. one JSON file ----
node -e '
  const fs = require("fs");
  const [stagesF, benchF, work, runDir, out, device, smoke, budget] = process.argv.slice(1);
  const lines = (f) => (fs.existsSync(f) ? fs.readFileSync(f, "utf8").trim().split("\n").filter(Boolean) : []);
  const json = (s) => { try { return JSON.parse(s); } catch { return undefined; } };
  const stages = lines(stagesF).map(json).filter(Boolean);
  for (const s of stages) s.tail = lines(s.log).slice(-8);
  const bench = lines(benchF).map(json).filter(Boolean).map(({ freeadv: f, pytorch: p }) => ({
    model: f.model, batch: f.batch, device: f.device, amp: f.amp ?? null,
    freeadv_free_images_per_second: Math.round(f.batch * 1000 / f.ms_median.free),
    pytorch_free_images_per_second: Math.round(p.batch * 1000 / p.ms_median.free),
    ratio_freeadv_over_pytorch: +(p.ms_median.free / f.ms_median.free).toFixed(3),
    freeadv_replay_over_natural: +(f.ms_median.free / f.ms_median.natural).toFixed(3),
    pytorch_replay_over_natural: +(p.ms_median.free / p.ms_median.natural).toFixed(3),
    raw: { freeadv: f, pytorch: p },
  }));
  const rd = (f) => json(fs.existsSync(`${runDir}/${f}`) ? fs.readFileSync(`${runDir}/${f}`, "utf8") : "");
  const evalLine = lines(`${work}/eval.log`).map(json).filter(Boolean).pop();
  const tests = lines(`${work}/tests.log`);
  const count = (k) => +((tests.find((l) => l.startsWith(`# ${k} `)) ?? "").split(" ")[2] ?? NaN);
  const info = json(lines(`${work}/info.log`).join("\n"));
  const result = {
    date: new Date().toISOString(), smoke: !!smoke, device, budget_s: +budget, info,
    tests: { pass: count("pass"), fail: count("fail"), skipped: count("skipped"), not_ok: tests.filter((l) => l.startsWith("not ok")) },
    bench, train: rd("summary.json") ?? null, eval: evalLine ?? null, stages,
  };
  fs.writeFileSync(out, JSON.stringify(result, null, 2) + "\n");
  console.log(JSON.stringify({ tests: result.tests, bench: bench.map(({ raw, ...r }) => r), eval: evalLine && { clean: evalLine.clean_accuracy, robust: evalLine.robust_accuracy } }, null, 1));
' "$STAGES" "$BENCH" "$WORK" "$RUN" "$OUT_JSON" "$DEVICE" "$SMOKE" "$BUDGET_S"
say "wrote $OUT_JSON in $(elapsed)s"

#!/usr/bin/env bash
# One command for a lent GPU machine (about 9 minutes): builds the addon against that machine's CUDA PyTorch,
# runs the device tests on the GPU, measures the free-training step of preact-resnet18 and wrn-34-10 (batch 128)
# against the same step in PyTorch CUDA eager in the same run (fp32 and bf16; preact-resnet18 channels-last too),
# trains preact-resnet18 free-8 (ε = 8/255) on the
# CIFAR-10 JPEGs for the time left, evaluates it (clean, PGD-20, APGD-CE) and writes everything to one JSON file.
# Every stage has its own time limit, so one that fails or overruns does not lose the others.
#
#   bash scripts/device.sh                       # on the GPU machine; writes $OUT_JSON (default device-result.json)
#   SMOKE=1 bash scripts/device.sh               # the same flow on a CPU machine, tiny (minutes): run it first
#   STRETCH=1 bash scripts/device.sh             # on the GPU machine: the paper's budget instead (below)
#   bash scripts/device.sh --pack                # here: everything the GPU machine may lack, into device-pack/
#
# STRETCH=1 (also about 9 minutes) skips the tests and the fp32 rows, measures the bf16 step of preact-resnet18 only
# (NCHW and channels-last), and trains free-8 with --amp bf16 in the faster memory format at the paper's CIFAR-10
# budget, --epochs 200 (25 passes of 8 replays), or at the largest multiple of 8 epochs that the measured speed fits
# in the time left; then it evaluates as the default run does.
#
# A GPU machine may have PyTorch and a compiler but no Node.js, no npm packages and no network. `--pack` (on a
# machine with them) puts into device-pack/ what the run needs beside the checkout, about 55 MB: app.tar.xz (dist/
# and the runtime packages: sharp for JPEGs, node-addon-api for the build, …), node.tar.xz (this Node.js: its
# binary, its headers and npm's node-gyp, for a machine without Node.js >= 20 or without them), the CIFAR-10
# JPEG archive, a slice of Fashion-MNIST for the device tests, gloo's headers and GNU make. Copy device-pack/ into the checkout on the GPU machine; the run unpacks what it needs into its
# work folder. It needs a C++ compiler, python3 with a CUDA build of torch (its libtorch is what the addon
# is built against: include/, lib/, and the nvidia-* wheels' headers), xz, and libjpeg's headers for the addon's
# JPEG decoder (Debian: libjpeg62-turbo-dev; without them sharp decodes JPEGs).
# What is missing is named before any work (exit 2). Environment: BUDGET_S (540), OUT_JSON, PYTHON (python3),
# ARCHIVE (the CIFAR-10 JPEG archive; default device-pack/, shared/data or ../shared/data), ADDON (an addon already
# built: skips the build), BUILD=1 (SMOKE: build the addon as on a GPU machine, against python's torch where it has
# headers, else the system libtorch), DEVICE (cuda; SMOKE: cpu), WORK (the work folder; default a new one in /tmp).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
say() { echo "device: $*" >&2; }
die() { say "$*"; exit 2; }

PACK=$ROOT/device-pack
# the runtime packages of the commands the run uses (train, eval, info, the tests' report): no dev dependencies
RUNTIME_PACKAGES="node-addon-api sharp @img detect-libc semver yaml protobufjs long chart.js chartjs-chart-matrix @kurkle"
if [ "${1:-}" = --pack ]; then
  command -v npx >/dev/null || die "--pack needs npx (Node.js) here"
  command -v xz >/dev/null || die "--pack needs xz"
  npx tsc -p tsconfig.json || die "TypeScript build failed"
  src=""
  for c in "${ARCHIVE:-}" shared/data/cifar10-jpg.tar.gz ../shared/data/cifar10-jpg.tar.gz; do
    [ -z "$src" ] && [ -n "$c" ] && [ -f "$c" ] && src=$c
  done
  [ -n "$src" ] || die "--pack: the CIFAR-10 JPEG archive not found (ARCHIVE=…/cifar10-jpg.tar.gz)"
  rm -rf "$PACK" && mkdir -p "$PACK"
  pkgs=()
  for p in $RUNTIME_PACKAGES; do [ -e "node_modules/$p" ] && pkgs+=("node_modules/$p"); done
  # -h: node_modules entries may be links
  tar -chf - dist "${pkgs[@]}" | xz -T0 -6 > "$PACK/app.tar.xz" || die "packing dist/ and node_modules failed"
  # Node.js's install prefix: bin/node, include/node (node-gyp's headers; OpenSSL's are not needed), npm's node-gyp
  prefix=$(node -p 'require("path").resolve(process.execPath, "..", "..")')
  parts=(bin/node include/node)
  [ -d "$prefix/lib/node_modules/npm/node_modules/node-gyp" ] && parts+=(lib/node_modules/npm)
  [ -f "$prefix/include/node/node_api.h" ] || die "--pack: this Node.js has no headers at $prefix/include/node"
  tar -chf - --exclude=include/node/openssl -C "$prefix" "${parts[@]}" | xz -T0 -6 > "$PACK/node.tar.xz" \
    || die "packing Node.js failed"
  cp "$src" "$PACK/cifar10-jpg.tar.gz"
  # gloo's headers (0.4 MB): the pip wheels of torch lack them, and without them the addon has no process groups,
  # NCCL's included (libtorch.cjs); the gloo inside libtorch is what runs, these only declare it
  g=$(node -p 'JSON.parse(require("child_process").execFileSync(process.execPath, ["scripts/libtorch.cjs", "info"], { encoding: "utf8" })).glooInclude ?? ""' 2>/dev/null)
  [ -n "$g" ] && mkdir -p "$PACK/include" && cp -r "$g/gloo" "$PACK/include/gloo"
  # GNU make (node-gyp's builds run it; 240 kB, libc only), for a machine whose image lacks it
  command -v make >/dev/null && mkdir -p "$PACK/tools" && cp "$(command -v make)" "$PACK/tools/make"
  # the first 1,024 training and 512 test images of Fashion-MNIST, for the device tests (the GPU machine has no
  # Debian package; the run points FREEADV_FASHION_MNIST at them where no Fashion-MNIST is found)
  node --input-type=module -e '
    import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
    import { gunzipSync, gzipSync } from "node:zlib";
    import { defaultFashionMnistDir } from "./dist/src/data/index.js";
    const from = defaultFashionMnistDir(), to = process.argv[1];
    mkdirSync(to, { recursive: true });
    for (const [prefix, n] of [["train", 1024], ["t10k", 512]])
      for (const [kind, head, per] of [["images-idx3-ubyte", 16, 784], ["labels-idx1-ubyte", 8, 1]]) {
        const f = `${prefix}-${kind}`, raw = readFileSync(`${from}/${f}.gz`);
        const b = Buffer.from(gunzipSync(raw).subarray(0, head + n * per));
        b.writeUInt32BE(n, 4); // the item count of the IDX header
        writeFileSync(`${to}/${f}.gz`, gzipSync(b, { level: 9 }));
      }' "$PACK/fashion-mnist" || die "--pack: Fashion-MNIST (for the device tests) not found: bash scripts/setup.sh installs it"
  ls -l "$PACK" >&2
  du -sh "$PACK" >&2
  say "packed device-pack/ (Node.js $(node --version)): copy it into the checkout on the GPU machine"
  exit 0
fi

SMOKE=${SMOKE:-}
STRETCH=${STRETCH:-}
BUDGET_S=${BUDGET_S:-$([ -n "$SMOKE" ] && echo 1800 || echo 540)}
DEVICE=${DEVICE:-$([ -n "$SMOKE" ] && echo cpu || echo cuda)}
PY=${PYTHON:-python3}
OUT_JSON=${OUT_JSON:-$ROOT/device-result.json}
WORK=${WORK:-$(mktemp -d /tmp/freeadv-device.XXXXXX)}
mkdir -p "$WORK"
T0=$(date +%s)
elapsed() { echo $(($(date +%s) - T0)); }
left() { echo $((BUDGET_S - $(elapsed))); }

# ---- the addon: the one given (ADDON), the checkout's (SMOKE), or built here against python's torch ----
NEED_BUILD=""
if [ -z "${ADDON:-}" ] && { [ "$DEVICE" != cpu ] || [ -n "${BUILD:-}" ] || [ ! -f build/Release/freeadv.node ]; }; then NEED_BUILD=1; fi

# ---- Node.js: this machine's where it is >= 20 (with its headers and node-gyp where the addon is built), else
# device-pack's; dist/ and node_modules: the checkout's, else device-pack's, unpacked into the checkout (the code
# finds package.json and assets/ beside dist/) ----
node_usable() {
  command -v node >/dev/null && node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)' \
    && { [ -z "$NEED_BUILD" ] || node scripts/build-native.js --check-tools 2>/dev/null; }
}
unpack() { xz -dc "$1" | tar -xf - -C "$2"; }
if ! node_usable && [ -f "$PACK/node.tar.xz" ] && command -v xz >/dev/null; then
  mkdir -p "$WORK/node" && unpack "$PACK/node.tar.xz" "$WORK/node" && export PATH="$WORK/node/bin:$PATH" \
    && say "Node.js $(node --version) from device-pack/"
fi
if { [ ! -d node_modules ] || [ ! -d dist ]; } && [ -f "$PACK/app.tar.xz" ] && command -v xz >/dev/null; then
  [ -d node_modules ] && mv node_modules "$WORK/node_modules.checkout" # one set of packages: device-pack's
  unpack "$PACK/app.tar.xz" "$ROOT" && say "dist/ and node_modules from device-pack/"
fi

# Fashion-MNIST for the device tests: this machine's (Debian's package), else the slice in device-pack/
if [ -z "${FREEADV_FASHION_MNIST:-}" ] && [ -d "$PACK/fashion-mnist" ] && [ -d dist ] && command -v node >/dev/null \
  && ! node --input-type=module -e 'import("./dist/src/data/index.js").then((m) => m.defaultFashionMnistDir())' 2>/dev/null; then
  export FREEADV_FASHION_MNIST=$PACK/fashion-mnist
  say "Fashion-MNIST: the slice in device-pack/ (no dataset-fashion-mnist here)"
fi

# gloo's headers, for process groups (Gloo and NCCL): this machine's (the pip wheels have none), else device-pack's
if [ -n "$NEED_BUILD" ] && [ -z "${FREEADV_GLOO_INCLUDE:-}" ] && [ -f "$PACK/include/gloo/context.h" ] && [ ! -f /usr/include/gloo/context.h ]; then
  export FREEADV_GLOO_INCLUDE=$PACK/include && say "gloo's headers from device-pack/"
fi

# make: this machine's, else device-pack's (at the end of PATH: any of the machine's own tools come first)
if [ -n "$NEED_BUILD" ] && ! command -v make >/dev/null && [ -x "$PACK/tools/make" ] && "$PACK/tools/make" --version >/dev/null 2>&1; then
  export PATH="$PATH:$PACK/tools" && say "make from device-pack/"
fi

# ---- what the machine has (checked before any work) ----
missing=()
{ [ -f "$PACK/node.tar.xz" ] || [ -f "$PACK/app.tar.xz" ]; } && ! command -v xz >/dev/null && missing+=("xz (to unpack device-pack/)")
if ! node_usable; then
  if [ -n "$NEED_BUILD" ]; then
    missing+=("Node.js >= 20 with its headers (include/node) and npm's node-gyp, to build the addon (device-pack/node.tar.xz has them: run 'bash scripts/device.sh --pack' on a machine with Node.js and copy device-pack/ here)")
  else
    missing+=("Node.js >= 20 (device-pack/node.tar.xz has it: 'bash scripts/device.sh --pack')")
  fi
fi
[ -d node_modules ] || missing+=("node_modules (device-pack/app.tar.xz has the runtime packages: 'bash scripts/device.sh --pack')")
[ -d dist ] || missing+=("dist/, the TypeScript build (device-pack/app.tar.xz has it: 'bash scripts/device.sh --pack')")
ARCHIVE=${ARCHIVE:-}
for c in "$PACK/cifar10-jpg.tar.gz" shared/data/cifar10-jpg.tar.gz ../shared/data/cifar10-jpg.tar.gz; do
  [ -z "$ARCHIVE" ] && [ -f "$c" ] && ARCHIVE=$c
done
[ -n "$ARCHIVE" ] && [ -f "$ARCHIVE" ] || missing+=("the CIFAR-10 JPEG archive (ARCHIVE=…/cifar10-jpg.tar.gz; 'bash scripts/device.sh --pack' copies it into device-pack/)")
TORCH_DIR=""
if command -v "$PY" >/dev/null && TORCH_DIR=$("$PY" -c 'import os, torch; print(os.path.dirname(torch.__file__))' 2>/dev/null); then
  :
else
  missing+=("python3 with torch (PYTHON=…; the PyTorch twin of the bench, and the CUDA libtorch to build against)")
fi
LIBTORCH_ENV=()
[ -n "$TORCH_DIR" ] && [ -f "$TORCH_DIR/include/ATen/ATen.h" ] && LIBTORCH_ENV=(LIBTORCH="$TORCH_DIR")
if [ -n "$NEED_BUILD" ]; then
  command -v g++ >/dev/null || command -v c++ >/dev/null || missing+=("a C++ compiler (g++)")
  command -v make >/dev/null || missing+=("make")
  [ "$DEVICE" != cpu ] && [ -n "$TORCH_DIR" ] && [ ${#LIBTORCH_ENV[@]} -eq 0 ] && missing+=("the C++ headers of the torch at $TORCH_DIR (include/ATen/ATen.h)")
fi
if [ "$DEVICE" != cpu ] && [ -n "$TORCH_DIR" ]; then
  "$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null || missing+=("a GPU that torch sees (torch.cuda.is_available() is false)")
fi
if [ ${#missing[@]} -gt 0 ]; then
  for m in "${missing[@]}"; do say "missing: $m"; done
  exit 2
fi
say "torch $("$PY" -c 'import torch; print(torch.__version__, "cuda", torch.version.cuda)') at $TORCH_DIR; node $(node --version); device $DEVICE; budget ${BUDGET_S}s; work $WORK"

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

# ---- 1. the addon ----
if [ -n "${ADDON:-}" ]; then
  export FREEADV_ADDON=$ADDON
elif [ -z "$NEED_BUILD" ]; then
  export FREEADV_ADDON=$ROOT/build/Release/freeadv.node # SMOKE: the addon of scripts/setup.sh
else
  stage build "$([ -n "$SMOKE" ] && echo 900 || echo 240)" env "${LIBTORCH_ENV[@]}" node scripts/build-native.js --out "$WORK/addon" || true
  export FREEADV_ADDON=$WORK/addon/build/Release/freeadv.node
fi
stage info 60 node bin/freeadv.js info || true

# ---- 2. the device tests (not with STRETCH) ----
[ -z "$STRETCH" ] && stage tests $([ -n "$SMOKE" ] && echo 300 || echo 240) env FREEADV_TEST_DEVICE="$DEVICE" \
  node --test --test-concurrency=1 dist/test/device.test.js dist/test/train-free.test.js dist/test/torch-basic.test.js dist/test/optim-schedule.test.js || true

# ---- 3. the step: freeadv vs PyTorch eager on the same device, in this run ----
BENCH=$WORK/bench.jsonl
: > "$BENCH"
# Rows: MODEL BATCH, then the variants measured for it, each a stage: fp32 NCHW ("-"), bf16 autocast of the
# forward pass and loss ("amp": --amp bf16), and for the model trained below channels-last too ("cl": NHWC weights,
# inputs and δ; freeadv's default on CUDA is NCHW until measured). STRETCH: the bf16 variants of that model only.
if [ -n "$SMOKE" ]; then rows=("resnet-cifar-small 16 - amp cl cl-amp"); steps=2
else rows=("preact-resnet18 128 - amp cl cl-amp" "wrn-34-10 128 - amp"); steps=20; fi
if [ -n "$STRETCH" ]; then
  rows=("$([ -n "$SMOKE" ] && echo resnet-cifar-small 16 || echo preact-resnet18 128) amp cl-amp")
  [ -n "$SMOKE" ] || steps=10
fi
variant_args() { case $1 in -) ;; amp) echo --amp bf16 ;; cl) echo --channels-last ;; cl-amp) echo --channels-last --amp bf16 ;; esac; }
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
  m=$1 b=$2; shift 2
  for v in "$@"; do
    # shellcheck disable=SC2046 # the variant's flags split on purpose
    stage "bench-$m$([ "$v" = - ] || echo "-$v")" $([ -n "$SMOKE" ] && echo 300 || echo 90) bash -c 'bench_row "$@"' _ "$m" "$b" $(variant_args "$v") || true
  done
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
TRAIN_AMP=$([ -n "$STRETCH" ] && echo bf16 || echo none)
# steps that fit: the measured free images/s of this model (bench) with the training's precision, at 70% for data
# and validation; STRETCH trains in the memory format that measured faster (the default run: freeadv's default)
read -r IPS TRAIN_CL < <(node -e '
  const rows = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").filter(Boolean).map(JSON.parse);
  const [, , model, amp, pick] = process.argv;
  const ips = (r) => Math.round(r.freeadv.batch * 1000 / r.freeadv.ms_median.free);
  const mine = rows.filter((r) => r.freeadv.model === model && (r.freeadv.amp ?? "none") === amp && (pick || !r.freeadv.channels_last));
  const best = mine.sort((a, b) => ips(b) - ips(a))[0];
  console.log(best ? `${ips(best)} ${best.freeadv.channels_last ? "--channels-last" : "--no-channels-last"}` : "0 -");' \
  "$BENCH" "$MODEL" "$TRAIN_AMP" "$STRETCH" 2>/dev/null || echo "0 -")
[ -z "$STRETCH" ] || [ "$TRAIN_CL" = - ] && TRAIN_CL=""
TRAIN_S=$(( $(left) - EVAL_S - 20 ))
[ "$TRAIN_S" -lt 30 ] && TRAIN_S=30
VAL=$([ -n "$SMOKE" ] && echo 20 || echo 500)
NTRAIN=$(find "$DATA/train" -type f 2>/dev/null | wc -l)
PER_EPOCH=$(( (NTRAIN - VAL + 127) / 128 ))
[ "$PER_EPOCH" -lt 1 ] && PER_EPOCH=1
STEPS=$(( IPS > 0 ? TRAIN_S * IPS * 7 / 10 / 128 : 200 ))
[ -n "$SMOKE" ] && STEPS=$(( 16 * PER_EPOCH )) # two passes of 8 replays over the slice
[ "$STEPS" -lt 8 ] && STEPS=8
# The budget in natural epochs (free-8 makes one pass of 8 replays per 8): the largest multiple of 8 that the steps
# cover, so that the learning-rate schedule runs to its end, and at most the paper's 200 (25 passes); below one
# pass, one pass cut short at the steps that fit.
EPOCHS=$(( STEPS / PER_EPOCH / 8 * 8 ))
[ "$EPOCHS" -gt 200 ] && EPOCHS=200
if [ "$EPOCHS" -ge 8 ]; then BUDGET=(--epochs "$EPOCHS"); else BUDGET=(--epochs 8 --max-steps "$STEPS"); fi
say "training: ${BUDGET[*]} (${PER_EPOCH} SGD steps per epoch, ${STEPS} fit in about ${TRAIN_S}s at the measured ${IPS} images/s; amp ${TRAIN_AMP} ${TRAIN_CL})"
printf '{"stretch":%s,"amp":"%s","memory_format":"%s","measured_images_per_second":%d,"train_s":%d,"steps_that_fit":%d,"steps_per_epoch":%d,"budget":"%s"}\n' \
  "$([ -n "$STRETCH" ] && echo true || echo false)" "$TRAIN_AMP" "${TRAIN_CL:-default}" "$IPS" "$TRAIN_S" "$STEPS" "$PER_EPOCH" "${BUDGET[*]}" > "$WORK/plan.json"
RUN=$WORK/free8
stage train "$TRAIN_S" node bin/freeadv.js train --dataset cifar10 --data-dir "$DATA" --model "$MODEL" --device "$DEVICE" \
  --method free --replays 8 --eps 8/255 --batch-size 128 "${BUDGET[@]}" --amp "$TRAIN_AMP" $TRAIN_CL --val-size "$VAL" \
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
  for (const s of stages) s.tail = lines(s.log).slice(s.rc ? -40 : -8); // a failed stage: enough to act on
  const bench = lines(benchF).map(json).filter(Boolean).map(({ freeadv: f, pytorch: p }) => ({
    model: f.model, batch: f.batch, device: f.device, amp: f.amp ?? null, channels_last: !!f.channels_last,
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
    bench, plan: json(lines(`${work}/plan.json`).join("")) ?? null, train: rd("summary.json") ?? null, eval: evalLine ?? null, stages,
  };
  fs.writeFileSync(out, JSON.stringify(result, null, 2) + "\n");
  console.log(JSON.stringify({ tests: result.tests, bench: bench.map(({ raw, ...r }) => r), eval: evalLine && { clean: evalLine.clean_accuracy, robust: evalLine.robust_accuracy } }, null, 1));
' "$STAGES" "$BENCH" "$WORK" "$RUN" "$OUT_JSON" "$DEVICE" "$SMOKE" "$BUDGET_S"
say "wrote $OUT_JSON in $(elapsed)s"

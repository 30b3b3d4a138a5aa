#!/usr/bin/env bash
# Runs the numerically sensitive tests once per CPU-kernel level, as on other processors. Three libraries pick
# their kernels at run time from the CPU they find, and each can be held to a lower level:
#   native    whatever this CPU gets (AVX-512 and AMX on recent Xeons, AVX2 or AVX-512 on EPYC)
#   avx2      ATEN_CPU_CAPABILITY=avx2     DNNL_MAX_CPU_ISA=AVX2   OPENBLAS_CORETYPE=Haswell
#   baseline  ATEN_CPU_CAPABILITY=default  DNNL_MAX_CPU_ISA=SSE41  OPENBLAS_CORETYPE=Nehalem
# Each level must pass: a tolerance that holds on one machine only is a bug in the test.
#
#   bash scripts/test-cpus.sh                     # the sensitive tests at every level (about 20 minutes)
#   bash scripts/test-cpus.sh all                 # the whole suite at every level
#   LEVELS="avx2" bash scripts/test-cpus.sh dist  # chosen levels and test files (names under test/, no suffix)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --tests >/dev/null

sensitive=(dist torch-pytorch torch-gradcheck attacks attacks-autoattack eval-autoattack train-free train train-limits amp nn-models report bench-reference io-python export-onnx demo data-tensor data-images)
if [ "${1:-}" = all ]; then files=(dist/test/*.test.js)
elif [ $# -gt 0 ]; then files=(); for n in "$@"; do files+=("dist/test/$n.test.js"); done
else files=(); for n in "${sensitive[@]}"; do files+=("dist/test/$n.test.js"); done
fi

summary=()
status=0
for level in ${LEVELS:-native avx2 baseline}; do
  case $level in
    native) vars=() ;;
    # FREEADV_TEST_NO_ONEDNN: ATen still sees this CPU's AVX-512 and would give oneDNN bfloat16 kernels it cannot
    # build below AVX-512; a real CPU without it sends them to ATen's own kernels (the bf16 tests then do so too)
    avx2) vars=(ATEN_CPU_CAPABILITY=avx2 DNNL_MAX_CPU_ISA=AVX2 OPENBLAS_CORETYPE=Haswell FREEADV_TEST_NO_ONEDNN=1) ;;
    baseline) vars=(ATEN_CPU_CAPABILITY=default DNNL_MAX_CPU_ISA=SSE41 OPENBLAS_CORETYPE=Nehalem FREEADV_TEST_NO_ONEDNN=1) ;;
    *) echo "test-cpus: unknown level '$level' (native, avx2, baseline)" >&2; exit 2 ;;
  esac
  echo "== $level: ${vars[*]:-nothing forced}"
  log=$(mktemp)
  t0=$(date +%s)
  if env ${vars[@]+"${vars[@]}"} node --test --test-concurrency=1 "${files[@]}" >"$log" 2>&1; then rc=0; else rc=$?; status=1; fi
  pass=$(awk '/^# pass /{print $3}' "$log"); fail=$(awk '/^# fail /{print $3}' "$log")
  grep -E '^not ok|error: ' "$log" | head -20 || true
  summary+=("$level: ${pass:-?} passed, ${fail:-?} failed ($(( $(date +%s) - t0 )) s, exit $rc)")
  rm -f "$log"
done
echo
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
printf '%s\n' "${summary[@]}"
exit $status

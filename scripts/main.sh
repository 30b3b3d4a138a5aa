#!/usr/bin/env bash
# The main job: free adversarial training (m = 4, ε = 0.1) of the default CNN on Fashion-MNIST, then clean and
# PGD-20 accuracy on the full test set. δ step ε/2, batch 64, lr 0.02: the best settings of the sweep in
# BENCHMARKS.md. Extra arguments go to `freeadv train` (e.g. --epochs 4).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node bin/freeadv.js train --method free --replays 4 --eps 0.1 --step-size 0.05 --batch-size 64 --lr 0.02 --epochs 8 --eval-attacks pgd-20 "$@"

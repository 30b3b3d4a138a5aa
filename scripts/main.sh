#!/usr/bin/env bash
# The main job: free adversarial training (m = 4, ε = 0.1) of the default CNN on Fashion-MNIST with the paper's
# settings (δ step ε, batch 128, SGD momentum 0.9, cosine lr 0.05, a budget of 8 natural epochs = 2 passes; 1,000
# training images held out for validation), then AutoAttack's standard ensemble and PGD-20 on the first 1,000 test
# images. Extra arguments go to `freeadv train` (e.g. --epochs 4).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node bin/freeadv.js train --method free --replays 4 --eps 0.1 --epochs 8 --eval-attacks autoattack,pgd-20 --eval-limit 1000 "$@"

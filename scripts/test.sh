#!/usr/bin/env bash
# Installs what the tests need, then runs the whole suite (node's test runner).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --tests
npm test

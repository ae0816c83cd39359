#!/usr/bin/env bash
# The benchmarks (npm run bench [-- GROUP]): with Docker's daemon up, as for the demo and
# the tests, so the rows whose peer is docker build or docker run are measured too.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/dockerd.sh
node --import tsx bench/main.ts "$@"

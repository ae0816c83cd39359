#!/usr/bin/env bash
# Run the whole test suite (node:test), with dockerd up for the Docker tests.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/dockerd.sh
mapfile -t files < <(find test -name '*.test.ts' | sort)
node --import tsx --test --test-concurrency=2 "$@" "${files[@]}"

#!/usr/bin/env bash
# Run the whole test suite (node:test). Starts dockerd for the Docker tests when it is
# installed and not running (we are root, no systemd), and stops it afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

started_dockerd=
if [ "$(id -u)" = 0 ] && command -v dockerd >/dev/null && ! docker info >/dev/null 2>&1; then
  dockerd >/tmp/crecipe-dockerd.log 2>&1 &
  started_dockerd=$!
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || { echo "test: dockerd did not start; see /tmp/crecipe-dockerd.log" >&2; tail -5 /tmp/crecipe-dockerd.log >&2; }
fi
stop_dockerd() {
  if [ -n "$started_dockerd" ]; then
    kill "$started_dockerd" 2>/dev/null || true
    wait "$started_dockerd" 2>/dev/null || true
  fi
}
trap stop_dockerd EXIT

mapfile -t files < <(find test -name '*.test.ts' | sort)
node --import tsx --test --test-concurrency=2 "$@" "${files[@]}"

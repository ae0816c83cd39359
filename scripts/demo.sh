#!/usr/bin/env bash
# The demo: build recipes/simple.ts and show what /init printed in each place it ran.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/dockerd.sh
node bin/crecipe.js recipes/simple.ts
for run in out/libs.runlocal out/libs.runkvm out/simple.rundocker out/simple.runrunc; do
  [ -f "$run" ] && printf '%-22s %s\n' "$run:" "$(cat "$run")"
done

#!/usr/bin/env bash
# README command 1: installs what is missing, builds barge, runs examples/quickstart and prints
# its report. State and outputs go to ./.barge (try `./build/barge status last` afterwards).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build.sh barge >/dev/null
./build/barge run examples/quickstart/pipeline.yaml "$@"
echo "--- report (barge logs last merge 0):"
./build/barge logs last merge 0

#!/usr/bin/env bash
# README command 2: installs what is missing, builds everything, runs every test with ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build.sh
cd build
exec ctest --output-on-failure -j "$(nproc)" "$@"

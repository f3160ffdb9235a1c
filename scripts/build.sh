#!/usr/bin/env bash
# Configures (once) and builds barge into ./build. Extra arguments are ninja targets.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
if [ ! -f build/build.ninja ]; then
  launcher=()
  # ccache, when installed, makes a rebuild in a second checkout (or after a clean) quick.
  command -v ccache >/dev/null 2>&1 && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "${launcher[@]}" >/dev/null
fi
ninja -C build "$@"

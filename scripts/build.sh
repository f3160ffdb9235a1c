#!/usr/bin/env bash
# Configures (once) and builds barge into ./build. Extra arguments are ninja targets.
#   scripts/build.sh --check [TARGETS]  builds the checking build into ./build-check instead:
#   AddressSanitizer and UndefinedBehaviorSanitizer, with link-time optimisation for -Wodr.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
dir=build
options=(-DCMAKE_BUILD_TYPE=RelWithDebInfo)
if [ "${1:-}" = "--check" ]; then
  shift
  dir=build-check
  options=(-DCMAKE_BUILD_TYPE=Check "-DCMAKE_CXX_FLAGS_CHECK=-O1 -g1"
           -DBARGE_SANITIZE=address,undefined -DBARGE_ODR_CHECK=ON)
fi
if [ ! -f $dir/build.ninja ]; then
  # ccache, when installed, makes a rebuild in a second checkout (or after a clean) quick.
  command -v ccache >/dev/null 2>&1 && options+=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  cmake -S . -B $dir -G Ninja "${options[@]}" >/dev/null
fi
ninja -C $dir "$@"

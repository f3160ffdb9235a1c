#!/usr/bin/env bash
# README command 2: installs what is missing, builds everything, starts a throwaway PostgreSQL
# server on loopback, and runs every test with ctest; then builds the checking build (build-check/:
# AddressSanitizer, UndefinedBehaviorSanitizer, link-time -Wodr; see CMakeLists.txt) and runs the
# unit and contract tests in it, after clang's thread-safety analysis of the locking code
# (scripts/thread_safety.py). BARGE_CHECK_BUILD=0 skips the second part (a quicker local loop);
# arguments are passed to the first ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh --test
./scripts/build.sh
root=$PWD
pg_dir=$(mktemp -d /tmp/barge-test-pg.XXXXXX)
trap '"$root/scripts/postgres.sh" stop "$pg_dir"' EXIT
BARGE_TEST_POSTGRES=$(./scripts/postgres.sh start "$pg_dir")
export BARGE_TEST_POSTGRES
export BARGE_REQUIRE_POSTGRES=1  # the PostgreSQL tests fail rather than skip
export BARGE_REQUIRE_S3=1        # so do the S3 tests, when s3rver is missing
export BARGE_REQUIRE_BROWSER=1   # and the web UI test, when chromium or playwright-core is
export BARGE_REQUIRE_PODMAN=1    # and the container tests, when podman cannot run containers
(cd build && ctest --output-on-failure -j "$(nproc)" "$@")
[ "${BARGE_CHECK_BUILD:-1}" = 0 ] && exit 0
# Clang's thread-safety analysis of every member marked ABSL_GUARDED_BY (g++ ignores the marks).
./scripts/thread_safety.py build
./scripts/build.sh --check barge barge_unit_tests
cd build-check
# halt_on_error: the first report fails its test; detect_leaks stays on (LeakSanitizer).
export ASAN_OPTIONS=halt_on_error=1:detect_stack_use_after_return=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
ctest --output-on-failure -j "$(nproc)" -L unit

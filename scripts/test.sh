#!/usr/bin/env bash
# README command 2: installs what is missing, builds everything, starts a throwaway PostgreSQL
# server on loopback, and runs every test with ctest.
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
cd build
ctest --output-on-failure -j "$(nproc)" "$@"

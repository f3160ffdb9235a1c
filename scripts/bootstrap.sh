#!/usr/bin/env bash
# Installs the Debian packages barge builds with, and DuckDB from the npm registry; with --test,
# also what the tests run against: PostgreSQL, the AWS CLI and botocore, Chromium, podman with
# runc and busybox-static (container steps, on images the tests import), and (npm) s3rver and
# playwright-core.
# Idempotent: when everything is in place it only asks dpkg and returns in a fraction of a second.
set -euo pipefail

packages=(
  cmake ninja-build g++ pkg-config
  libyaml-cpp-dev nlohmann-json3-dev libcli11-dev libabsl-dev libfmt-dev
  libsqlite3-dev libssl-dev libpq-dev libcurl4-openssl-dev libpugixml-dev
  libcpp-httplib-dev libarchive-dev tzdata
  libgtest-dev libgmock-dev
  nodejs npm
)
tests=0
[ "${1:-}" = "--test" ] && tests=1
[ $tests -eq 1 ] && packages+=(postgresql awscli python3-botocore chromium clang-14 podman runc busybox-static)

missing=()
# Node.js and npm may come from elsewhere than Debian (a newer release); either will do.
command -v npm >/dev/null 2>&1 && packages=("${packages[@]/nodejs/}") && packages=("${packages[@]/npm/}")
for p in "${packages[@]}"; do
  [ -n "$p" ] || continue
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "bootstrap: installing ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi

"$(dirname "$0")/fetch_duckdb.sh"
if [ $tests -eq 1 ]; then
  "$(dirname "$0")/fetch_s3rver.sh"
  "$(dirname "$0")/fetch_playwright.sh"
fi

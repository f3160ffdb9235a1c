#!/usr/bin/env bash
# Installs the Debian packages barge builds and tests with, and DuckDB from the npm registry.
# Idempotent: when everything is in place it only asks dpkg and returns in a fraction of a second.
set -euo pipefail

packages=(
  cmake ninja-build g++ pkg-config
  libyaml-cpp-dev nlohmann-json3-dev libcli11-dev libabsl-dev libfmt-dev
  libsqlite3-dev libssl-dev libpq-dev postgresql libcurl4-openssl-dev libpugixml-dev
  libcpp-httplib-dev tzdata chromium
  awscli python3-botocore
  libgtest-dev libgmock-dev
  nodejs npm
)

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
"$(dirname "$0")/fetch_s3rver.sh"
"$(dirname "$0")/fetch_playwright.sh"

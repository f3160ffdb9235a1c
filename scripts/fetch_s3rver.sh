#!/usr/bin/env bash
# Installs the S3 protocol server the tests run against (npm package s3rver, pinned) into
# .deps/s3rver (ignored by git). npm checks each tarball against the registry's integrity hash.
# Idempotent: does nothing when the pinned version is in place.
set -euo pipefail
cd "$(dirname "$0")/.."
version=3.7.1
dest=.deps/s3rver
if [ -f "$dest/node_modules/s3rver/package.json" ] &&
   grep -q "\"version\": \"$version\"" "$dest/node_modules/s3rver/package.json"; then
  exit 0
fi
echo "fetch_s3rver: installing s3rver $version from the npm registry" >&2
mkdir -p "$dest"
(cd "$dest" && [ -f package.json ] || echo '{"name":"barge-test-deps","private":true}' > package.json)
npm install --prefix "$dest" --no-audit --no-fund --silent "s3rver@$version" >/dev/null 2>&1 ||
  npm install --prefix "$dest" --no-audit --no-fund "s3rver@$version"

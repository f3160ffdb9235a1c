#!/usr/bin/env bash
# Installs one npm package at a pinned version into its own folder under .deps (ignored by git).
# npm checks each tarball against the registry's integrity hash. Idempotent: does nothing when the
# pinned version is in place.
#   scripts/npm_pin.sh PACKAGE VERSION DEST
set -euo pipefail
cd "$(dirname "$0")/.."
package=$1 version=$2 dest=$3
if [ -f "$dest/node_modules/$package/package.json" ] &&
   grep -q "\"version\": \"$version\"" "$dest/node_modules/$package/package.json"; then
  exit 0
fi
echo "npm_pin: installing $package $version from the npm registry into $dest" >&2
mkdir -p "$dest"
(cd "$dest" && [ -f package.json ] || echo '{"name":"barge-deps","private":true}' > package.json)
npm install --prefix "$dest" --no-audit --no-fund --silent "$package@$version" >/dev/null 2>&1 ||
  npm install --prefix "$dest" --no-audit --no-fund "$package@$version"

#!/usr/bin/env bash
# Installs playwright-core (npm, pinned) into .deps/playwright (ignored by git) for the browser
# tests of the web UI, which drive Debian's chromium. npm checks the tarball's integrity hash.
# Idempotent: does nothing when the pinned version is in place.
set -euo pipefail
cd "$(dirname "$0")/.."
version=1.65.1
dest=.deps/playwright
if [ -f "$dest/node_modules/playwright-core/package.json" ] &&
   grep -q "\"version\": \"$version\"" "$dest/node_modules/playwright-core/package.json"; then
  exit 0
fi
echo "fetch_playwright: installing playwright-core $version from the npm registry" >&2
mkdir -p "$dest"
(cd "$dest" && [ -f package.json ] || echo '{"name":"barge-ui-test-deps","private":true}' > package.json)
npm install --prefix "$dest" --no-audit --no-fund --silent "playwright-core@$version" >/dev/null 2>&1 ||
  npm install --prefix "$dest" --no-audit --no-fund "playwright-core@$version"

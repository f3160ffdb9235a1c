#!/usr/bin/env bash
# Fetches DuckDB's release library and C header from the npm registry into .deps/duckdb
# (ignored by git), verifying checksums. Debian does not package DuckDB; its release library
# ships in @duckdb/node-bindings-linux-<arch> and the matching duckdb.h in the duckdb package.
# Idempotent: does nothing when the pinned version is already in place.
set -euo pipefail
cd "$(dirname "$0")/.."

version=1.4.4
bindings_revision=r.3
declare -A sha256=(
  [duckdb-$version.tgz]=5bb967dcbcd517670ba5f169f238fb9d6787e53752c60ebe24386169d76941ed
  [duckdb-node-bindings-linux-x64-$version-$bindings_revision.tgz]=59d0f150d84bbc413aa80b9b7ae45916e710c27d18d66722d4875a7b840415a5
  [duckdb-node-bindings-linux-arm64-$version-$bindings_revision.tgz]=7a3b62c524849af848b2d4e278bad56324e20f5e8b1d3fe3acd324ead28e1e0c
)
case "$(uname -m)" in
  x86_64) arch=x64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) echo "fetch_duckdb: no DuckDB build for $(uname -m); set DUCKDB_ROOT" >&2; exit 1 ;;
esac

dest=.deps/duckdb
stamp="$dest/.version"
want="$version-$bindings_revision-$arch"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -f "$dest/lib/libduckdb.so" ] &&
   [ -f "$dest/include/duckdb.h" ]; then
  exit 0
fi

echo "fetch_duckdb: fetching DuckDB $version ($arch) from the npm registry" >&2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "@duckdb/node-bindings-linux-$arch@$version-$bindings_revision" \
  "duckdb@$version" >/dev/null)
for tgz in "$tmp"/*.tgz; do
  name=$(basename "$tgz")
  expected=${sha256[$name]:-}
  actual=$(sha256sum "$tgz" | cut -d' ' -f1)
  if [ -z "$expected" ] || [ "$expected" != "$actual" ]; then
    echo "fetch_duckdb: checksum mismatch for $name: got $actual, want ${expected:-nothing}" >&2
    exit 1
  fi
done
rm -rf "$dest"
mkdir -p "$dest/lib" "$dest/include"
tar xzf "$tmp/duckdb-node-bindings-linux-$arch-$version-$bindings_revision.tgz" -C "$tmp" \
  package/libduckdb.so
mv "$tmp/package/libduckdb.so" "$dest/lib/"
tar xzf "$tmp/duckdb-$version.tgz" -C "$tmp" package/src/duckdb/src/include/duckdb.h
mv "$tmp/package/src/duckdb/src/include/duckdb.h" "$dest/include/"
echo "$want" > "$stamp"

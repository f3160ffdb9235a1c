# Helpers the bench scripts share. Sourced from the repository root: . bench/lib.sh

# Seconds (with sub-millisecond digits) a command takes; its output is discarded.
seconds() {
  local start end
  start=$(date +%s.%N)
  "$@" >/dev/null 2>&1
  end=$(date +%s.%N)
  echo "$end - $start" | bc -l
}

# A throwaway PostgreSQL server on loopback ($url) and a work directory ($work, named after $1)
# holding the peer queues barge is measured against, both removed when the script exits.
postgres_and_peers() {
  work=$(mktemp -d "/tmp/$1.XXXXXX")
  pg_dir=$(mktemp -d "/tmp/$1-pg.XXXXXX")
  trap '"$PWD/scripts/postgres.sh" stop "$pg_dir"; rm -rf "$work"' EXIT
  url=$(./scripts/postgres.sh start "$pg_dir")
  (cd "$work" && npm init -y >/dev/null 2>&1 &&
    npm install --silent graphile-worker@0.17.3 pg-boss@10.4.2 pg >/dev/null 2>&1)
}

#!/usr/bin/env bash
# A throwaway PostgreSQL server on loopback for the tests (Debian's postgresql package).
#   scripts/postgres.sh start DIR [ADDR [CIDR]] -> starts a fresh cluster in DIR listening on ADDR
#                                                (default 127.0.0.1), trusting clients in CIDR
#                                                (default ADDR only), prints its URL
#   scripts/postgres.sh stop DIR                -> stops it and removes DIR
# PostgreSQL refuses to run as root, so as root the server runs as the postgres user.
set -euo pipefail
cmd=$1 dir=$2 addr=${3:-127.0.0.1} cidr=${4:-}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -n "$bin" ] || { echo "postgres.sh: no PostgreSQL server installed" >&2; exit 1; }
as_owner() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

case "$cmd" in
  start)
    mkdir -p "$dir"
    [ "$(id -u)" -eq 0 ] && chown postgres "$dir"
    as_owner "$bin/initdb" -D "$dir/data" -A trust -U barge -E UTF8 --no-sync >/dev/null
    if [ -n "$cidr" ]; then
      echo "host all all $cidr trust" | as_owner tee -a "$dir/data/pg_hba.conf" >/dev/null
    fi
    for attempt in 1 2 3 4 5; do
      port=$((20000 + RANDOM % 30000))
      if as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t 30 start -o \
          "-p $port -k $dir -c listen_addresses=$addr -c fsync=off -c max_connections=200" \
          >/dev/null 2>&1; then
        echo "postgresql://barge@$addr:$port/postgres"
        exit 0
      fi
    done
    echo "postgres.sh: could not start PostgreSQL; see $dir/log" >&2
    exit 1
    ;;
  stop)
    as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$dir"
    ;;
  *)
    echo "usage: $0 start|stop DIR" >&2
    exit 2
    ;;
esac

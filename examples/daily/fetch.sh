#!/bin/sh
# Stands in for a download: writes one shard of a day's events as CSV.
#   ./fetch.sh --day 2026-01-01 --shard 3 --out DIR
set -eu
while [ $# -gt 0 ]; do
  case "$1" in
    --day) day=$2; shift 2 ;;
    --shard) shard=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "fetch.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
i=0
while [ $i -lt 5 ]; do
  echo "$day,shard-$shard,user-$(( (shard * 7 + i * 3) % 11 )),$(( shard * 10 + i ))" >> "$out/events-$shard.csv"
  i=$((i + 1))
done

#!/usr/bin/env bash
# The events pipeline (examples/events) against single-node baselines, in one run:
#   barge: the pipeline's map and reduce steps (clean + aggregate: parse, filter, shuffle by
#          user into 8 buckets, aggregate each bucket), --workers 2, one DuckDB thread per task;
#   DuckDB: one query computing the same aggregates from the same CSV files, 2 threads;
#   Dask:  distributed, 2 worker processes x 1 thread, pandas backend, same CSV files.
# The CSV files are the pipeline's own generate step's outputs (8 files). Rows: $BENCH_ROWS
# (default 20,000,000). Needs python3-dask (scripts/bootstrap does not install it; this does).
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${BENCH_ROWS:-20000000}
files=8
./scripts/build.sh barge barge_duckdb_query >/dev/null
if ! /usr/bin/python3 -c "import dask.distributed, pandas" 2>/dev/null; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3-dask python3-distributed \
    python3-pandas python3-numpy >/dev/null
fi
barge="$PWD/build/barge"
work=$(mktemp -d /tmp/barge-shuffle.XXXXXX)
trap 'rm -rf "$work"' EXIT
state="$work/state.db"

echo "== events pipeline, $rows rows in $files CSV files, 8 buckets, 2 workers"
"$barge" run examples/events/pipeline.yaml --workers 2 --state "$state" \
  -p files=$files -p rows_per_file=$((rows / files)) -p buckets=8 >/dev/null 2>&1
status=$("$barge" status last --state "$state" --json)
step_ms() { echo "$status" | /usr/bin/python3 -c \
  'import json, sys; print(next(s["elapsed_ms"] for s in json.load(sys.stdin)["steps"] if s["name"] == sys.argv[1]))' "$1"; }
gen_ms=$(step_ms generate); clean_ms=$(step_ms clean); agg_ms=$(step_ms aggregate)
barge_s=$(echo "($clean_ms + $agg_ms) / 1000" | bc -l)
mkdir -p "$work/csv"
i=0
for f in $("$barge" tasks last --store "$state" --step generate --json | grep '"path"' |
           sed -E 's/.*"path": "([^"]*)".*/\1/'); do
  ln -s "$f" "$work/csv/part-$i.csv"; i=$((i + 1))
done
du -shL "$work/csv" | awk '{print "raw CSV: " $1}'
printf "barge clean+aggregate   %7.2fs   (generate took %.2fs, not counted)\n" "$barge_s" \
  "$(echo "$gen_ms / 1000" | bc -l)"

query="COPY (SELECT user_id, sum(amount::DECIMAL(12, 2)) AS total, count(*) AS events,
  count(DISTINCT lower(trim(category))) AS categories
  FROM read_csv('$work/csv/*.csv') WHERE amount > 0 GROUP BY user_id)
  TO '$work/duckdb.parquet' (FORMAT parquet)"
duck_s=$(./build/barge_duckdb_query 2 "$query")
printf "DuckDB one query        %7.2fs\n" "$duck_s"

read -r dask_s dask_users < <(/usr/bin/python3 bench/shuffle/dask_events.py "$work/csv" 2)
printf "Dask distributed        %7.2fs   (%s users)\n" "$dask_s" "$dask_users"

printf "ratio barge / DuckDB:  %.2f (target <= 1.2)\n" "$(echo "$barge_s / $duck_s" | bc -l)"
printf "ratio Dask / barge:    %.2f (target >= 2)\n" "$(echo "$dask_s / $barge_s" | bc -l)"

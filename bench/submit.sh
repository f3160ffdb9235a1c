#!/usr/bin/env bash
# Submitting a big fan-out, in one run: `barge run --detach` of a foreach: range(N) step (the
# whole CLI: start, connect, plan, insert N tasks, take statistics) on PostgreSQL and on SQLite,
# against graphile-worker's addJobs and pg-boss's insert enqueueing N no-op jobs in batches of
# 10,000 on the same PostgreSQL server. Prints seconds, tasks/s and the ratios.
#   bench/submit.sh            (N = $BENCH_N, default 1000000; about two minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${BENCH_N:-1000000}
./scripts/bootstrap.sh --test  # PostgreSQL
./scripts/build.sh barge >/dev/null
barge="$PWD/build/barge"
. bench/lib.sh
postgres_and_peers barge-submit
cp bench/submit/peers.js "$work/"
cat > "$work/fanout.yaml" <<'YAML'
name: fanout
params: {n: 1000}
steps:
  - name: noop
    foreach: range({params.n})
    run: "true"
YAML
# Migrations first, so no side's clock includes creating its tables.
"$barge" workers --state "$url" >/dev/null

# "seconds tasks_per_second" for a barge submission to the store at $1.
barge_submit() {
  seconds "$barge" run "$work/fanout.yaml" -p "n=$n" --detach --state "$1" --root "$work/data" |
    awk -v n="$n" '{printf "%.3f %.0f", $1, n / $1}'
}
row() { printf "%-52s %8ss %9s tasks/s\n" "$1" "$(echo "$2" | cut -d' ' -f1)" "$(echo "$2" | cut -d' ' -f2)"; }
echo "== submitting $n no-op tasks"
b=$(barge_submit "$url"); row "barge run --detach, PostgreSQL (COPY)" "$b"
s=$(barge_submit "$work/state.db"); row "barge run --detach, SQLite" "$s"
g=$(cd "$work" && node peers.js graphile "$url" "$n"); row "graphile-worker 0.17.3 addJobs, batches of 10,000" "$g"
p=$(cd "$work" && node peers.js pgboss "$url" "$n"); row "pg-boss 10.4.2 insert, batches of 10,000" "$p"
secs() { echo "$1" | cut -d' ' -f1; }
best_peer=$(printf "%s\n%s\n" "$(secs "$g")" "$(secs "$p")" | sort -g | head -1)
printf "ratio faster peer's time / barge PostgreSQL's: %.2f\n" "$(echo "$best_peer / $(secs "$b")" | bc -l)"

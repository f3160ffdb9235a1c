#!/usr/bin/env bash
# The queue alone, in one run: claims + completions per second for N no-op tasks drained by 8
# workers (no processes spawned), barge on SQLite and on PostgreSQL, against graphile-worker
# and pg-boss (npm) draining the same number of no-op jobs on the same PostgreSQL server.
# Every clock starts with the workers connected and the queue's statistics taken. Last, pgbench
# runs barge's two statements per batch with no client at all (bench/queue/floor.sql): the
# ceiling of this design on this machine.
#   bench/queue.sh            (N = $BENCH_N, default 10000)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${BENCH_N:-10000}
./scripts/bootstrap.sh --test  # PostgreSQL
./scripts/build.sh barge_queue_bench >/dev/null
. bench/lib.sh
postgres_and_peers barge-queue
cp bench/queue/*.js "$work/"

row() { printf "%-62s %8s tasks/s\n" "$1" "$(echo "$2" | cut -d' ' -f2)"; }
echo "== $n no-op tasks, 8 workers"
r=$(./build/barge_queue_bench "$work/state.db" 8 "$n" 1); row "barge SQLite, one at a time" "$r"
rm -f "$work"/state.db*
r=$(./build/barge_queue_bench "$work/state.db" 8 "$n" 32); row "barge SQLite, batches of 32" "$r"
b1=$(./build/barge_queue_bench "$url" 8 "$n" 1); row "barge PostgreSQL, one at a time" "$b1"
b32=$(./build/barge_queue_bench "$url" 8 "$n" 32); row "barge PostgreSQL, batches of 32" "$b32"
g1=$(cd "$work" && node graphile.js "$url" "$n" 8); row "graphile-worker 0.17.3, concurrency 8" "$g1"
g=$(cd "$work" && node graphile.js "$url" "$n" 8 32)
row "graphile-worker 0.17.3, + local queue 32, batched completions" "$g"
p=$(cd "$work" && node pgboss.js "$url" "$n" 8 100); row "pg-boss 10.4.2, 8 workers, batches of 100" "$p"
# The ceiling: PostgreSQL executing barge's claim and completion statements, driven by pgbench;
# then the same with no attempt records at all.
alone() {  # RUN_ID SQL_FILE -> tasks/s
  psql -qX "$url" -c "INSERT INTO tasks (run_id, step, idx, position, state, item_json,
    inputs_json, cpu, memory) SELECT '$1', 'noop', g, 0, 'pending', '{}', '[]', 1, 0
    FROM generate_series(0, $n - 1) g" -c "ANALYZE tasks" >/dev/null
  pgbench -n -c 8 -j 2 -t $((n / 32 / 8)) -f "$2" "$url" 2>/dev/null |
    awk '/^tps/ {printf "%.0f", $3 * 32}'
}
f=$(alone floor bench/queue/floor.sql)
row "PostgreSQL alone: barge's statements via pgbench, 8 clients" "x $f"
m=$(alone minimal bench/queue/minimal.sql)
row "PostgreSQL alone: no attempt records (lock + 2 updates per task)" "x $m"
best_barge=$(printf "%s\n%s\n" "$(echo "$b1" | cut -d' ' -f2)" "$(echo "$b32" | cut -d' ' -f2)" | sort -n | tail -1)
best_peer=$(printf "%s\n%s\n%s\n" "$(echo "$g1" | cut -d' ' -f2)" "$(echo "$g" | cut -d' ' -f2)" \
  "$(echo "$p" | cut -d' ' -f2)" | sort -n | tail -1)
printf "ratio barge PostgreSQL / faster peer: %.2f (target >= 2)\n" "$(echo "$best_barge / $best_peer" | bc -l)"
printf "ratio ceiling (pgbench) / faster peer: %.2f; with no attempt records: %.2f\n" \
  "$(echo "$f / $best_peer" | bc -l)" "$(echo "$m / $best_peer" | bc -l)"

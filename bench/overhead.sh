#!/usr/bin/env bash
# Per-task overhead of barge against the physical limit, in one run:
#   1. N no-op shell tasks through `barge run --workers 2` vs the same N commands via xargs -P2
#      (N = $BENCH_N, default 10000): time ratio and tasks/s;
#   2. per-task cost at $BENCH_SIZES tasks (default "1000 10000 100000"): should stay flat;
#   3. submitting (planning) a foreach: range(1000000) run with --detach: seconds and peak RSS;
#   4. the quickstart's wall time beyond its tasks' own work (the same commands via xargs).
# Usage: bench/overhead.sh            (builds barge first; takes ~10 minutes with the defaults)
#        BENCH_SIZES="1000 10000" BENCH_N=2000 bench/overhead.sh   (quick)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
./scripts/build.sh barge >/dev/null
barge="$PWD/build/barge"
n=${BENCH_N:-10000}
sizes=${BENCH_SIZES:-"1000 10000 100000"}
work=$(mktemp -d /tmp/barge-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$work"

cat > noop.yaml <<'YAML'
name: noop
params: {n: 1000}
steps:
  - name: noop
    foreach: range({params.n})
    run: "true"
YAML

fmt() { printf "%.2f" "$1"; }

echo "== 1. $n no-op tasks, 2 at a time"
t_xargs=$(seconds sh -c "seq $n | xargs -P2 -I{} sh -c true")
rm -rf .barge
t_barge=$(seconds "$barge" run noop.yaml -p "n=$n" --workers 2)
ratio=$(echo "$t_barge / $t_xargs" | bc -l)
printf "xargs -P2         %8ss  %7.0f tasks/s\n" "$(fmt "$t_xargs")" "$(echo "$n / $t_xargs" | bc -l)"
printf "barge --workers 2 %8ss  %7.0f tasks/s\n" "$(fmt "$t_barge")" "$(echo "$n / $t_barge" | bc -l)"
printf "ratio barge/xargs: %.2f (target <= 1.3)\n" "$ratio"

echo
echo "== 2. per-task cost by run size (barge --workers 2)"
for size in $sizes; do
  rm -rf .barge
  t=$(seconds "$barge" run noop.yaml -p "n=$size" --workers 2)
  printf "%8d tasks  %8ss  %6.2f ms/task  %7.0f tasks/s\n" "$size" "$(fmt "$t")" \
    "$(echo "$t * 1000 / $size" | bc -l)" "$(echo "$size / $t" | bc -l)"
done

echo
echo "== 3. submitting foreach: range(1000000) with --detach"
rm -rf .barge
/usr/bin/time -f "%e %M" -o submit.txt "$barge" run noop.yaml -p n=1000000 --detach >/dev/null
read -r secs rss_kb < submit.txt
printf "%ss, peak RSS %d MB (targets: <= 10 s, <= 500 MB)\n" "$secs" "$((rss_kb / 1024))"

echo
echo "== 4. quickstart: barge's wall time against the same 16 shell commands run level by level"
echo "   (9, then 6, then 1) through xargs -P2 -- the tasks' own work on 2 slots"
cd "$OLDPWD"
for i in 1 2 3; do
  start=$(date +%s%N)
  "$barge" run examples/quickstart/pipeline.yaml --workers 2 --state "$work/qs/state.db" >/dev/null 2>&1
  mid=$(date +%s%N)
  for level in 9 6 1; do seq "$level" | xargs -P2 -I{} sh -c 'echo x > /dev/null'; done
  end=$(date +%s%N)
  barge_ms=$(( (mid - start) / 1000000 )); shell_ms=$(( (end - mid) / 1000000 ))
  printf "run %d: barge %4d ms, shell %4d ms, overhead %4d ms (target < 100)\n" \
    "$i" "$barge_ms" "$shell_ms" "$((barge_ms - shell_ms))"
done

#!/usr/bin/env bash
# Memory of the long-lived processes over many short runs: a `barge worker` and a `barge serve`
# on one SQLite state, fed 1-task runs through the API in batches, with both processes' resident
# memory printed after each batch. Flat figures mean nothing per run is kept once a run ends
# (issue 14.3: parsed pipelines in the engine, run contexts in the worker).
#   bench/long_lived_memory.sh [RUNS (default 10000)] [BATCH (default 1000)]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10000} batch=${2:-1000}
./scripts/build.sh barge >/dev/null
barge=$PWD/build/barge
work=$(mktemp -d /tmp/barge-memory.XXXXXX)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
state="$work/state.db" root="$work/data"
port=$((20000 + RANDOM % 30000))
export BARGE_TOKEN=bench-token-not-secret
"$barge" serve --state "$state" --root "$root" --listen "127.0.0.1:$port" 2>"$work/serve.log" &
pids+=($!)
serve=$!
until curl -fs "http://127.0.0.1:$port/api/health" >/dev/null; do sleep 0.1; done
"$barge" worker --state "$state" --root "$root" --scratch "$work/scratch" 2>"$work/worker.log" &
pids+=($!)
worker=$!
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
body='{"spec": "name: tiny\nsteps:\n  - name: a\n    run: \"true\"\n"}'
for ((i = 0; i < batch; i++)); do
  printf 'url = "http://127.0.0.1:%s/api/runs"\noutput = /dev/null\n' "$port"
done > "$work/batch.curl"
printf '%8s %14s %14s %8s\n' runs worker_rss_kb serve_rss_kb seconds
start=$(date +%s)
for ((done = 0; done < runs; done += batch)); do
  curl -s --fail-early -X POST -H "Authorization: Bearer $BARGE_TOKEN" \
    -H 'Content-Type: application/json' -d "$body" --config "$work/batch.curl"
  # Wait for the batch to finish: no run left running.
  while [ "$("$barge" runs --state "$state" --only running -n 1 --json)" != "[]" ]; do
    sleep 0.2
  done
  printf '%8d %14d %14d %8d\n' $((done + batch)) "$(rss $worker)" "$(rss $serve)" \
    $(($(date +%s) - start))
done
succeeded=$("$barge" runs --state "$state" --only succeeded -n $((runs + 1)) --json |
  grep -o '"id"' | wc -l)
echo "succeeded runs: $succeeded of $runs"

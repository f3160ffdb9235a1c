#!/usr/bin/env bash
# What starting a task in a container costs: N tasks of `true` run one at a time (--workers 1),
# as plain tasks and with `image:`, side by side: wall time, and CPU time of barge and what it
# spawned (`times`: barge, its tasks, the runtime's client) plus, where barge's container cgroups
# are readable (cgroup v1, cgroupfs, root), the CPU of the runtime's monitor and the containers.
# Prints the figures and the ratios; never fails on timing.
#   bench/container_overhead.sh [N]   (default 20; BARGE=path/to/barge, IMAGE=an image with true)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-20}
barge=${BARGE:-$PWD/build/barge}
image=${IMAGE:-localhost/barge-test:1}
work=$(mktemp -d /tmp/barge-container-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
if ! podman run --rm "$image" true >/dev/null 2>&1; then
  if ! podman image exists "$image" 2>/dev/null; then
    mkdir -p "$work/rootfs/bin" && cp /bin/busybox "$work/rootfs/bin/"
    for t in sh true; do ln -s busybox "$work/rootfs/bin/$t"; done
    tar -C "$work/rootfs" -c . | podman import - "$image" >/dev/null
  fi
  if ! podman run --rm "$image" true >/dev/null 2>&1; then
    # A sandbox without crun or ulimits (as the tests' containers.conf says).
    printf '[containers]\ndefault_ulimits = []\n[engine]\nruntime = "runc"\n' >"$work/containers.conf"
    export CONTAINERS_CONF=$work/containers.conf
  fi
fi
for kind in plain container; do
  {
    echo "name: bench_$kind"
    echo "steps:"
    echo "  - name: t"
    echo "    foreach: range($n)"
    [ $kind = container ] && echo "    image: $image"
    echo "    run: [\"true\"]"
  } >"$work/$kind.yaml"
done
cg=/sys/fs/cgroup/cpuacct/barge/cpuacct.usage
measure() {  # kind -> "wall_s cpu_s cgroup_cpu_s"
  local before_cg=0 after_cg=0
  [ -r $cg ] && before_cg=$(cat $cg)
  local t0 t1 c0 c1 me=$BASHPID
  t0=$(date +%s.%N)
  c0=$(awk '{print $14+$15+$16+$17}' /proc/$me/stat)
  (cd "$work" && "$barge" run "$1.yaml" --workers 1 --state "$work/$1.db" --root "$work/$1-data" \
    >/dev/null 2>"$work/$1.err") || { echo "barge run $1 failed:"; cat "$work/$1.err"; exit 1; }
  c1=$(awk '{print $14+$15+$16+$17}' /proc/$me/stat)
  t1=$(date +%s.%N)
  [ -r $cg ] && after_cg=$(cat $cg)
  local hz
  hz=$(getconf CLK_TCK)
  echo "$(echo "$t1 - $t0" | bc -l) $(echo "($c1 - $c0) / $hz" | bc -l) $(echo "($after_cg - $before_cg) / 1000000000" | bc -l)"
}
read -r pw pc _ < <(measure plain)
read -r cw cc ccg < <(measure container)
printf '%-10s %6s %10s %12s %14s\n' kind tasks wall_s cpu_s "+cgroup_cpu_s"
printf '%-10s %6d %10.2f %12.2f %14s\n' plain "$n" "$pw" "$pc" "-"
printf '%-10s %6d %10.2f %12.2f %14.2f\n' container "$n" "$cw" "$cc" "$ccg"
printf 'per task: plain %.0f ms wall, container %.0f ms wall (+%.0f ms); wall ratio %.1fx, cpu ratio %.1fx\n' \
  "$(echo "$pw * 1000 / $n" | bc -l)" "$(echo "$cw * 1000 / $n" | bc -l)" \
  "$(echo "($cw - $pw) * 1000 / $n" | bc -l)" "$(echo "$cw / $pw" | bc -l)" \
  "$(echo "($cc + $ccg) / ($pc + 0.001)" | bc -l)"

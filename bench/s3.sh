#!/usr/bin/env bash
# barge's S3 client against the AWS CLI (`aws s3 cp --recursive`), in one run, on the same local
# S3 server (s3rver): 1 GiB uploaded and downloaded as 64 files of 16 MiB and as one file.
# Prints throughput, the ratios, and checks every byte that came back.
#   bench/s3.sh            (BENCH_MIB=1024 total size)
set -euo pipefail
cd "$(dirname "$0")/.."
mib=${BENCH_MIB:-1024}
./scripts/bootstrap.sh --test  # s3rver and the AWS CLI
./scripts/build.sh barge_s3_bench >/dev/null
. bench/lib.sh
work=$(mktemp -d /tmp/barge-s3bench.XXXXXX)
trap 'kill $s3pid 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/s3" "$work/many" "$work/one"
node --openssl-legacy-provider .deps/s3rver/node_modules/s3rver/bin/s3rver.js -d "$work/s3" \
  -a 127.0.0.1 -p 0 --configure-bucket bench >"$work/s3.log" 2>&1 &
s3pid=$!
for _ in $(seq 100); do grep -q "listening on" "$work/s3.log" && break; sleep 0.1; done
port=$(grep -oE "127.0.0.1:[0-9]+" "$work/s3.log" | head -1 | cut -d: -f2)
export AWS_ENDPOINT_URL=http://127.0.0.1:$port AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
aws() { /usr/bin/aws --endpoint-url "$AWS_ENDPOINT_URL" "$@"; }

files=64
each=$((mib / files))
for i in $(seq -w 1 $files); do head -c "$((each << 20))" /dev/urandom >"$work/many/part-$i.bin"; done
head -c "$((mib << 20))" /dev/urandom >"$work/one/whole.bin"
sums() { (cd "$1" && find . -type f -exec md5sum {} + | sort -k2); }

rate() { python3 -c "import sys; print(f'{$mib*1048576/1e6/float(sys.argv[1]):.1f}')" "$1"; }
printf "%-34s %10s %10s\n" "" "barge" "aws cli"
for layout in many one; do
  src="$work/$layout"
  bu=$(./build/barge_s3_bench up "$src" "s3://bench/barge-$layout" | cut -d' ' -f1)
  au=$(seconds aws s3 cp --recursive "$src" "s3://bench/aws-$layout")
  rm -rf "$work/down-b" "$work/down-a"
  bd=$(./build/barge_s3_bench down "s3://bench/barge-$layout" "$work/down-b" | cut -d' ' -f1)
  ad=$(seconds aws s3 cp --recursive "s3://bench/aws-$layout" "$work/down-a")
  [ "$(sums "$src")" = "$(sums "$work/down-b")" ] || { echo "barge download differs" >&2; exit 1; }
  [ "$(sums "$src")" = "$(sums "$work/down-a")" ] || { echo "aws download differs" >&2; exit 1; }
  label="$mib MiB as $( [ $layout = many ] && echo "$files files" || echo "one file")"
  printf "%-34s %7s MB/s %7s MB/s   ratio %.2f\n" "$label, upload" "$(rate "$bu")" "$(rate "$au")" \
    "$(echo "$au / $bu" | bc -l)"
  printf "%-34s %7s MB/s %7s MB/s   ratio %.2f\n" "$label, download" "$(rate "$bd")" \
    "$(rate "$ad")" "$(echo "$ad / $bd" | bc -l)"
  rm -rf "$work/down-b" "$work/down-a"
done
echo "(ratio = barge throughput / AWS CLI throughput; target >= 1; every byte checked by MD5)"

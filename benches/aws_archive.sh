#!/usr/bin/env bash
# Bench (not a test) of the aws archiver (issue 12) against the fake Glacier
# + SimpleDB server (tests/support/aws/fake_aws.py): `strata archive unit`
# packing (compression none) and uploading one unit of incompressible data
# in 64 MiB parts, tree hash computed while reading the spool; then
# `strata archive retrieve` of it through one retrieval job (the rate is
# high enough for the whole archive), its output streamed, tree-hashed and
# written at its offset, then checked against the catalogue's sha256. The
# `local` archiver packs the same unit as the baseline of packing alone.
# Each size runs in turn, so that peak RSS can be seen to stay flat.
#
# usage: benches/aws_archive.sh [MIB...]           (default: 256 2048)
# env:   STRATA_BENCH_DIR  work directory [target/bench-aws]; needs ~4x the largest size
#        STRATA_BIN        strata binary to time (skips building it)
#        BENCH_PROFILE     cargo profile [release]
#        BENCH_KEEP=1      keep the generated files
#
# Prints wall seconds, MiB/s and peak RSS (of strata and the children it
# waits for, from /usr/bin/time -v) for each step and size. The fake runs on
# the same machine (a Python process), so its own hashing and disk writes
# share the CPUs: the throughputs are a floor, not Glacier's.
set -euo pipefail

sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(256 2048)
cd "$(dirname "$0")/.."
repo=$PWD
profile=${BENCH_PROFILE:-release}
case $profile in dev) profile_dir=debug ;; *) profile_dir=$profile ;; esac
target=${CARGO_TARGET_DIR:-target}
dir=$(realpath -m "${STRATA_BENCH_DIR:-$target/bench-aws}")
if [ -z "${STRATA_BIN:-}" ]; then
    cargo build --profile "$profile" --bin strata >&2
    STRATA_BIN=$target/$profile_dir/strata
fi
STRATA_BIN=$(realpath "$STRATA_BIN")
rm -rf "$dir"; mkdir -p "$dir"/{root/dump,spool,store,fake}

python3 "$repo/tests/support/aws/fake_aws.py" --data "$dir/fake" > "$dir/fake.port" 2> "$dir/fake.err" &
fake_pid=$!
cleanup() { kill "$fake_pid" 2>/dev/null || true; [ -n "${BENCH_KEEP:-}" ] || rm -rf "$dir"; }
trap cleanup EXIT
for _ in $(seq 50); do grep -q listening "$dir/fake.port" 2>/dev/null && break; sleep 0.1; done
endpoint="http://127.0.0.1:$(awk '{print $2}' "$dir/fake.port")"
curl -sf -X POST "$endpoint/_control/config" -d '{"job_delay": 0}' > /dev/null

cat > "$dir/config.yaml" <<YAML
settings:
  root: $dir/root
  snapshot-store: dir
  archive-spool: $dir/spool
  archivers:
    aws:
      archiver: aws
      aws-access-key-id: AKIDSTRATATEST
      aws-secret-access-key: strata-test-secret
      aws-region: us-east-1
      aws-namespace: bench
      aws-glacier-endpoint: $endpoint
      aws-sdb-endpoint: $endpoint
      compression: none
    local:
      archiver: local
      local-path: $dir/store
      compression: none
YAML
export STRATA_AWS_POLL_SECS=0.2 STRATA_AWS_SLOT_SECS=60

measure() { # label, MiB, command...
    local label=$1 mib=$2; shift 2
    local t0 t1 rss secs
    t0=$(date +%s.%N)
    /usr/bin/time -v -o "$dir/time.txt" "$@" >/dev/null 2>"$dir/err.txt" || { cat "$dir/err.txt" >&2; exit 1; }
    t1=$(date +%s.%N)
    rss=$(awk -F': ' '/Maximum resident/{print $2}' "$dir/time.txt")
    secs=$(echo "$t1 - $t0" | bc -l)
    printf '%-28s %6d MiB %7.2f s  %7.1f MiB/s  peak RSS %7d KiB\n' "$label" "$mib" "$secs" "$(echo "$mib / $secs" | bc -l)" "$rss"
}

n=0
for mib in "${sizes[@]}"; do
    n=$((n + 1))
    set_name=2000010$n-1
    rm -rf "$dir/root/dump"/* "$dir/store"/* "$dir/ret"
    mkdir -p "$dir/root/dump/big"
    head -c "${mib}M" /dev/urandom > "$dir/root/dump/big/data"
    sync
    measure "local: pack + store" "$mib" "$STRATA_BIN" -c "$dir/config.yaml" --allow-root archive -p local unit "$set_name" "$dir/root" dump/big
    sync
    measure "aws: pack + upload" "$mib" "$STRATA_BIN" -c "$dir/config.yaml" --allow-root archive -p aws unit "$set_name" "$dir/root" dump/big
    sync
    measure "aws: retrieve (one job)" "$mib" "$STRATA_BIN" -c "$dir/config.yaml" --allow-root archive -p aws retrieve -r 1024 "$set_name" "$dir/ret" dump/big
    cmp <(tar -xOf "$dir/ret/$set_name:dump-big" dump/big/data) "$dir/root/dump/big/data"
    rm -rf "$dir/fake"/* "$dir/ret"
done

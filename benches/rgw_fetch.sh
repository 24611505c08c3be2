#!/usr/bin/env bash
# Bench (not a test) of the rgw source's fetch of many small objects
# (DESIGN §9, issue 7): a bucket of N (default 10,000) small objects on a
# throwaway single-node Ceph (tests/support/ceph), fetched by
#   strata    `strata rgw backup BUCKET` into an empty backup root, rgw-threads T
#   rclone    `rclone copy` (Debian's rclone) into an empty directory, --transfers T
# both against the same radosgw, with the same credentials (the bucket owner's).
# Prints both wall times and the ratio strata/rclone (below 1: strata faster).
#
# usage: benches/rgw_fetch.sh [N]                   (default 10000)
# env:   BENCH_THREADS    transfers for both [8]
#        STRATA_BIN       strata binary to time (skips building it)
#        BENCH_PROFILE    cargo profile [release]
#        BENCH_KEEP=1     keep the cluster and files (prints where)
set -euo pipefail

n=${1:-10000}
threads=${BENCH_THREADS:-8}
cd "$(dirname "$0")/.."
here=$PWD
profile=${BENCH_PROFILE:-release}
case $profile in
    dev) profile_dir=debug ;;
    *) profile_dir=$profile ;;
esac
target=${CARGO_TARGET_DIR:-target}
command -v rclone >/dev/null || { echo "rgw_fetch: needs rclone (apt-get install rclone)" >&2; exit 2; }
command -v jq >/dev/null || { echo "rgw_fetch: needs jq" >&2; exit 2; }
if [[ -n ${STRATA_BIN:-} ]]; then
    strata=$STRATA_BIN
else
    cargo build --profile "$profile" --bin strata
    strata=$target/$profile_dir/strata
fi

work=$(mktemp -d /tmp/strata-rgw-bench.XXXXXX)
cluster=$work/cluster
cleanup() {
    if [[ ${BENCH_KEEP:-0} == 1 ]]; then
        echo "kept: $work (stop with tests/support/ceph/stop-ceph.sh $cluster)"
    else
        CEPH_STOP_KILL=1 timeout 120 "$here/tests/support/ceph/stop-ceph.sh" "$cluster" >/dev/null 2>&1 || true
        rm -rf -- "$work"
    fi
}
trap cleanup EXIT

eval "$(timeout 300 tests/support/ceph/start-ceph.sh "$cluster" 2>"$work/start.log")"
endpoint=$RGW_ENDPOINT
radosgw-admin user create --uid=bench --display-name=bench > "$work/user.json"
ak=$(jq -r '.keys[0].access_key' "$work/user.json")
sk=$(jq -r '.keys[0].secret_key' "$work/user.json")
export RCLONE_CONFIG_RGW_TYPE=s3 RCLONE_CONFIG_RGW_PROVIDER=Ceph \
    RCLONE_CONFIG_RGW_ACCESS_KEY_ID=$ak RCLONE_CONFIG_RGW_SECRET_ACCESS_KEY=$sk \
    RCLONE_CONFIG_RGW_ENDPOINT=$endpoint RCLONE_CONFIG_RGW_FORCE_PATH_STYLE=true

# why: rclone's AWS SDK fails on an AWS_CA_BUNDLE set for other tools ("unable
# to load custom CA bundle"); the endpoint is plain http anyway
rc() { env -u AWS_CA_BUNDLE rclone "$@"; }

# The bucket: N objects of 1-4 KiB in 100 prefixes, uploaded with rclone.
mkdir -p "$work/src"
for ((d = 0; d < 100; d++)); do mkdir -p "$work/src/d$d"; done
for ((i = 0; i < n; i++)); do
    head -c $((1024 + (i * 37) % 3072)) /dev/urandom > "$work/src/d$((i % 100))/obj$i"
done
rc mkdir rgw:bench
t0=$(date +%s.%N)
rc copy --transfers 32 --checkers 32 "$work/src" rgw:bench
t1=$(date +%s.%N)
echo "uploaded $n objects in $(echo "$t1 - $t0" | bc)s"

root=$work/root
mkdir -p "$root"
cat > "$work/strata.yaml" <<YAML
settings:
  root: $root
  snapshot-store: dir
  rgw-server: ${endpoint#http://}
  rgw-threads: $threads
rgw:
  - bench
YAML

t0=$(date +%s.%N)
STRATA_ALLOW_ROOT=1 "$strata" -c "$work/strata.yaml" rgw backup bench > "$work/strata.out"
t1=$(date +%s.%N)
strata_s=$(echo "$t1 - $t0" | bc)
tail -1 "$work/strata.out"

t0=$(date +%s.%N)
rc copy --transfers "$threads" --checkers "$threads" rgw:bench "$work/rclone"
t1=$(date +%s.%N)
rclone_s=$(echo "$t1 - $t0" | bc)

got_strata=$(find "$root/rgw/bench" -name '*_k' | wc -l)
got_rclone=$(find "$work/rclone" -type f | wc -l)
[[ $got_strata == "$n" && $got_rclone == "$n" ]] || { echo "rgw_fetch: fetched $got_strata / $got_rclone of $n" >&2; exit 1; }
printf 'objects %d, transfers %d\n' "$n" "$threads"
printf 'strata rgw backup: %6.1f s  (stores data + metadata + ACL per object)\n' "$strata_s"
printf 'rclone copy:       %6.1f s  (data only)\n' "$rclone_s"
printf 'ratio strata/rclone: %.2f\n' "$(echo "$strata_s / $rclone_s" | bc -l)"

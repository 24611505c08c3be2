#!/usr/bin/env bash
# Bench (not a test) of the rgw source's fetch of many small objects
# (DESIGN §9, issues 7 and 18): a bucket of N (default 4,000) objects of
# 1-4 KiB on a throwaway single-node Ceph (tests/support/ceph, radosgw as
# the tests start it), fetched by
#   strata    `strata rgw backup BUCKET` into an empty backup root, rgw-threads T
#             (stores data, metadata and ACL per object)
#   rclone    `rclone copy` (Debian's rclone) into an empty directory,
#             --transfers T --checkers T (data only)
# both against the same radosgw with the same credentials (the bucket
# owner's), then each again with nothing changed (a no-change run).
# Each measured RUNS times (default 3), alternating; wall time, peak RSS,
# and where the CPU time went (client, radosgw, OSD), with the load average.
#
# usage: benches/rgw_fetch.sh [N]
# env:   BENCH_THREADS    transfers for both [8]
#        STRATA_BIN       strata binary to time (skips building it)
#        BENCH_PROFILE    cargo profile [release]
#        RUNS             runs of each side [3]
#        BENCH_RESULTS    append result lines for benches/compare.sh
#        BENCH_KEEP=1     keep the cluster and files (prints where)
# rclone is installed from Debian (apt-get) when missing; the tests never
# need it.
set -euo pipefail

n=${1:-4000}
threads=${BENCH_THREADS:-8}
runs=${RUNS:-3}
cd "$(dirname "$0")/.."
here=$PWD
profile=${BENCH_PROFILE:-release}
case $profile in dev) profile_dir=debug ;; *) profile_dir=$profile ;; esac
target=${CARGO_TARGET_DIR:-target}
if ! command -v rclone >/dev/null; then
    echo "rgw_fetch: installing rclone (apt-get install rclone) ..." >&2
    { apt-get update -qq && apt-get install -y -qq rclone; } >&2 ||
        { echo "rgw_fetch: needs rclone (apt-get install rclone)" >&2; exit 2; }
fi
command -v jq >/dev/null || { echo "rgw_fetch: needs jq" >&2; exit 2; }
if [[ -n ${STRATA_BIN:-} ]]; then
    strata=$(realpath "$STRATA_BIN")
else
    cargo build --quiet --profile "$profile" --bin strata
    strata=$(realpath "$target/$profile_dir/strata")
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
BENCH_TMP=$work
. benches/lib.sh

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
unset AWS_CA_BUNDLE

# The bucket: N objects of 1-4 KiB in 100 prefixes, uploaded with rclone.
mkdir -p "$work/src"
for ((d = 0; d < 100; d++)); do mkdir -p "$work/src/d$d"; done
for ((i = 0; i < n; i++)); do
    head -c $((1024 + (i * 37) % 3072)) /dev/urandom > "$work/src/d$((i % 100))/obj$i"
done
rclone mkdir rgw:bench 2>/dev/null
rclone copy -q --transfers 32 --checkers 32 "$work/src" rgw:bench 2>/dev/null
echo "uploaded $n objects" >&2

# One backup root and one rclone directory per run, all removed at the end:
# creating thousands of files right after deleting thousands makes ext4 skip
# the recently freed inodes one by one (recently_deleted()), which would
# charge the previous run's deletion to whoever creates files next.
for ((r = 1; r <= runs; r++)); do
    mkdir -p "$work/root.$r"
    cat > "$work/strata.$r.yaml" <<YAML
settings:
  root: $work/root.$r
  snapshot-store: dir
  rgw-server: ${endpoint#http://}
  rgw-threads: $threads
rgw:
  - bench
YAML
done
export STRATA_ALLOW_ROOT=1

cpu() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
rgw_pid=$(cat "$cluster/pids/rgw.a.pid") osd_pid=$(cat "$cluster/pids/osd.0.pid")
tck=$(getconf CLK_TCK)
# timed ROW SIDE CMD...: measure, print, record; CPU of radosgw and the OSD
# read from /proc around it.
timed() {
    local row=$1 side=$2; shift 2
    local r0 o0 r1 o1
    r0=$(cpu "$rgw_pid"); o0=$(cpu "$osd_pid")
    measure m "$@"
    r1=$(cpu "$rgw_pid"); o1=$(cpu "$osd_pid")
    printf '%-16s %-9s wall %7.2f s  radosgw cpu %5.2f s  osd cpu %5.2f s  peak RSS %6d KiB  load %s\n' \
        "$row" "$side" "$m_wall" "$(echo "($r1 - $r0) / $tck" | bc -l)" "$(echo "($o1 - $o0) / $tck" | bc -l)" "$m_rss" "$m_load"
    echo "$m_wall" >> "$work/$row.$side.vals"
    result "$row" "$side" "$m_wall" "$m_rss" "$m_load"
}
for ((r = 1; r <= runs; r++)); do
    sync
    timed rgw-first strata "$strata" -c "$work/strata.$r.yaml" rgw backup bench
    sync
    timed rgw-first reference rclone copy -q --transfers "$threads" --checkers "$threads" rgw:bench "$work/rclone.$r"
    timed rgw-nochange strata "$strata" -c "$work/strata.$r.yaml" rgw backup bench
    timed rgw-nochange reference rclone copy -q --transfers "$threads" --checkers "$threads" rgw:bench "$work/rclone.$r"
done
got_strata=$(find "$work/root.$runs/rgw/bench" -name '*_k' | wc -l)
got_acls=$(find "$work/root.$runs/rgw/bench" -name '*_a' | wc -l)
got_rclone=$(find "$work/rclone.$runs" -type f | wc -l)
[[ $got_strata == "$n" && $got_acls == "$n" && $got_rclone == "$n" ]] ||
    { echo "rgw_fetch: fetched $got_strata (ACLs $got_acls) / $got_rclone of $n" >&2; exit 1; }
echo
printf 'objects %d, transfers %d, runs %d\n' "$n" "$threads" "$runs"
for row in rgw-first rgw-nochange; do
    read -r s_lo s_med s_hi < <(stats "$work/$row.strata.vals")
    read -r c_lo c_med c_hi < <(stats "$work/$row.reference.vals")
    printf '%-13s strata %s s, rclone %s s: rclone/strata %.2f (medians)\n' "$row" \
        "$s_lo/$s_med/$s_hi" "$c_lo/$c_med/$c_hi" "$(echo "$c_med / $s_med" | bc -l)"
done

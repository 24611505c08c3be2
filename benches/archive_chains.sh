#!/usr/bin/env bash
# Bench (not a test) of incremental archive chains (issue 15): 30 daily
# snapshots of a tree of incompressible 1 MiB files (2 GiB by default) of
# which 1% changes every day (rewritten, plus one file added and one
# deleted), archived by two local profiles, `diffs: 0` and `diffs: 6`, both
# lz4, unencrypted, keep-count 1 (pruned after every set, as cron would).
# Reports the bytes each profile uploaded over the 30 days (archives and
# chain states), the time spent packing, then the time to restore the
# newest snapshot's unit from each (retrieve + unpack, page cache warm), and
# from diffs: 6 also its longest chain (the last day before a full: a full
# and six diffs), measured on that day. Every restore is compared with the
# tree it restores.
#
# The "snapshot" of each day is the tree itself, changed in place and
# archived with `strata archive unit`, as the origin of an lvm-thin or btrfs
# snapshot keeps its inodes and change times (a dir-store copy would not,
# and every diff would hold the whole unit); the script marks each set
# complete as `archive run` does after its last unit.
#
# usage: benches/archive_chains.sh [TREE-MIB]      (default 2048)
# env:   CHAIN_MB          the tree's size, as the argument
#        CHAIN_DAYS        days [30]
#        STRATA_BENCH_DIR  work directory [target/bench-chains]; needs ~4x TREE
#        STRATA_BIN        strata binary to time (skips building it)
#        BENCH_PROFILE     cargo profile [release]
#        BENCH_KEEP=1      keep the generated files
set -euo pipefail

mib=${1:-${CHAIN_MB:-2048}}
days=${CHAIN_DAYS:-30}
cd "$(dirname "$0")/.."
profile=${BENCH_PROFILE:-release}
case $profile in dev) profile_dir=debug ;; *) profile_dir=$profile ;; esac
target=${CARGO_TARGET_DIR:-target}
dir=$(realpath -m "${STRATA_BENCH_DIR:-$target/bench-chains}")
if [ -z "${STRATA_BIN:-}" ]; then
    cargo build --profile "$profile" --bin strata >&2
    STRATA_BIN=$target/$profile_dir/strata
fi
STRATA_BIN=$(realpath "$STRATA_BIN")
rm -rf "$dir"; mkdir -p "$dir"/{root,live/dump/u,spool,store,ret}
cfg=$dir/config.yaml
cat > "$cfg" <<EOF
settings:
  root: $dir/root
  snapshot-store: dir
  archive-spool: $dir/spool
  archivers:
    d0:
      archiver: local
      local-path: $dir/store/d0
      compression: lz4
      diffs: 0
      keep-count: 1
    d6:
      archiver: local
      local-path: $dir/store/d6
      compression: lz4
      diffs: 6
      keep-count: 1
EOF
strata() { "$STRATA_BIN" -q -c "$cfg" --allow-root "$@"; }

u=$dir/live/dump/u
for i in $(seq 0 $(( mib - 1 ))); do
    mkdir -p "$u/d$(( i / 100 ))"
    head -c 1M /dev/urandom > "$u/d$(( i / 100 ))/f$i"
done
change=$(( mib / 100 )); [ $change -ge 1 ] || change=1
echo "tree: $mib files of 1 MiB; each day $change rewritten, 1 added, 1 deleted; $days days" >&2

restore() { # profile set -> "seconds archives"; compared with the live tree
    local p=$1 set=$2 t0 t1 files
    rm -rf "$dir/ret" "$dir/out"; mkdir -p "$dir/ret"
    t0=$(date +%s.%N)
    mapfile -t files < <(strata archive -p "$p" retrieve -r 100000 "$set" "$dir/ret" dump/u)
    strata archive -p "$p" unpack "$dir/out" "${files[@]}" >/dev/null
    t1=$(date +%s.%N)
    diff -r "$dir/live/dump/u" "$dir/out/dump/u" >/dev/null || { echo "restore of $p $set differs" >&2; exit 1; }
    rm -rf "$dir/ret" "$dir/out"
    echo "$(echo "$t1 - $t0" | bc) ${#files[@]}"
}

declare -A uploaded=([d0]=0 [d6]=0) packing=([d0]=0 [d6]=0)
# the last day whose d6 archive is diff 6 (fulls fall on days 1, 8, 15, ...)
long=$(( days / 7 * 7 )); long_result=""
next=$mib
set_of() { date -d "2030-01-01 + $(( $1 - 1 )) days" +%Y%m%d-1; }
for day in $(seq 1 "$days"); do
    set=$(set_of "$day")
    if [ "$day" -gt 1 ]; then
        for k in $(seq 1 $change); do
            i=$(( (day * 7919 + k * 104729) % mib ))
            f=$(find "$u" -name "f$i" -print -quit)
            [ -n "$f" ] && head -c 1M /dev/urandom > "$f"
        done
        mkdir -p "$u/new"; head -c 1M /dev/urandom > "$u/new/f$next"; next=$(( next + 1 ))
        victim=$(find "$u" -type f -name 'f*' -print -quit); rm -f "$victim"
        sleep 0.05
    fi
    for p in d0 d6; do
        t0=$(date +%s.%N)
        strata archive -p "$p" unit "$set" "$dir/live" dump/u >/dev/null
        t1=$(date +%s.%N)
        packing[$p]=$(echo "${packing[$p]} + $t1 - $t0" | bc)
        sd=$dir/store/$p/$set
        bytes=$(( $(stat -c %s "$sd/dump%2Fu.archive") + $(stat -c %s "$sd/dump%2Fu.state" 2>/dev/null || echo 0) ))
        uploaded[$p]=$(( ${uploaded[$p]} + bytes ))
        echo x > "$sd/COMPLETE"
        strata archive -p "$p" prune >/dev/null
    done
    if [ "$day" -eq "$long" ]; then
        long_result=$(restore d6 "$set")
    fi
    if [ $(( day % 5 )) -eq 0 ] || [ "$day" -eq "$days" ]; then
        echo "day $day: uploaded d0 $(( ${uploaded[d0]} >> 20 )) MiB, d6 $(( ${uploaded[d6]} >> 20 )) MiB" >&2
    fi
done


newest=$(set_of "$days")
read -r t0s n0 < <(restore d0 "$newest")
read -r t6s n6 < <(restore d6 "$newest")
printf '%-36s %12s %12s\n' "" "diffs: 0" "diffs: 6"
printf '%-36s %8d MiB %8d MiB\n' "uploaded over $days days" $(( ${uploaded[d0]} >> 20 )) $(( ${uploaded[d6]} >> 20 ))
printf '%-36s %10.1f s %10.1f s\n' "time spent packing" "${packing[d0]}" "${packing[d6]}"
printf '%-36s %10.1f s %10.1f s\n' "restore the newest ($newest)" "$t0s" "$t6s"
printf '%-36s %12s %12s\n' "  archives restored" "$n0" "$n6"
if [ -n "$long_result" ]; then
    read -r tl nl <<< "$long_result"
    printf '%-36s %12s %10.1f s\n' "restore day $long (diff 6)" "-" "$tl"
    printf '%-36s %12s %12s\n' "  archives restored" "-" "$nl"
fi
[ "${BENCH_KEEP:-}" = 1 ] || rm -rf "$dir"

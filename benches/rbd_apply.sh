#!/usr/bin/env bash
# Bench (not a test) of the rbd diff applier, `strata rbd apply-diff`,
# against Deltaic's own `unpack_diff` (deltaic.sources.rbd, imported from
# the checkout named by DELTAIC_SRC and called as Deltaic's backup calls it:
# the diff file in, a `LazyWriteFile` out). Two pairs, on generated diffs
# (examples/gen_rbd_diff.rs):
#   full         a full export of an image of SIZE (4 MiB objects: random
#                data, mostly-zero objects, `z` records, holes) onto a new
#                file: what a first backup does
#   incremental  the diff to the next snapshot (30% of the data objects sent
#                again with a few blocks changed, some zeroed, some holes
#                filled) onto a copy of the full image: the compare-then-write
#                path over regions that hold data
# Each run RUNS times (default 3), alternating; wall time and peak RSS from
# GNU time, the load average beside each. The page cache is warm (dropping
# it needs root).
#
# strata writes only non-zero data (zero blocks stay holes) and fdatasyncs
# the image at the end; Deltaic writes every byte of every `w` record and
# does not sync. Both are printed with the image's allocated size. Beside
# them, the disk's floor: dd writing as many bytes as strata's image holds,
# from the page cache in 4 MiB blocks, then fdatasync: no applier that
# keeps the image durable can take less.
#
# usage: benches/rbd_apply.sh [SIZE]          (default 1G: a ~740 MiB diff)
# env:   DELTAIC_SRC       a Deltaic checkout (its src/deltaic); without it the
#                          Deltaic side is skipped
#        DELTAIC_PYTHON    a python3 that can import Deltaic (click, xattr,
#                          pybloom_live, pkg_resources); default: a venv made
#                          once under the target dir with pip
#        STRATA_BENCH_DIR  work directory [target/bench-rbd]; needs ~(2 + 3 x RUNS) x SIZE
#        STRATA_BIN        strata binary to time (skips building it)
#        BENCH_PROFILE     cargo profile [release]
#        RUNS              runs of each side [3]
#        BENCH_RESULTS     append result lines for benches/compare.sh
set -euo pipefail

size=${1:-1G}
cd "$(dirname "$0")/.."
here=$PWD
profile=${BENCH_PROFILE:-release}
case $profile in dev) profile_dir=debug ;; *) profile_dir=$profile ;; esac
target=$(realpath -m "${CARGO_TARGET_DIR:-target}")
dir=$(realpath -m "${STRATA_BENCH_DIR:-$target/bench-rbd}")
runs=${RUNS:-3}
mkdir -p "$dir"
BENCH_TMP=$dir
. benches/lib.sh

cargo build --quiet --profile "$profile" --example gen_rbd_diff
if [[ -n ${STRATA_BIN:-} ]]; then
    strata=$(realpath "$STRATA_BIN")
else
    cargo build --quiet --profile "$profile" --bin strata
    strata=$target/$profile_dir/strata
fi
gen=$target/$profile_dir/examples/gen_rbd_diff

# Deltaic's python: one that imports deltaic.sources.rbd as it is.
python=
if [[ -n ${DELTAIC_SRC:-} ]]; then
    DELTAIC_SRC=$(realpath "$DELTAIC_SRC")
    [[ -f $DELTAIC_SRC/src/deltaic/sources/rbd.py ]] || { echo "rbd_apply: $DELTAIC_SRC is not a Deltaic checkout" >&2; exit 2; }
    python=${DELTAIC_PYTHON:-}
    if [[ -z $python ]]; then
        venv=$target/deltaic-venv
        if ! PYTHONPATH=$DELTAIC_SRC/src "$venv/bin/python" -c 'import deltaic.sources.rbd' 2>/dev/null; then
            echo "rbd_apply: making a venv for Deltaic's imports in $venv ..." >&2
            rm -rf "$venv"
            python3 -m venv "$venv"
            "$venv/bin/pip" install --quiet click xattr pybloom-live 'setuptools<81' >&2
        fi
        python=$venv/bin/python
    fi
    PYTHONPATH=$DELTAIC_SRC/src "$python" -c 'import deltaic.sources.rbd' || { echo "rbd_apply: $python cannot import deltaic.sources.rbd" >&2; exit 2; }
fi
# Deltaic's own function, called as its apply_patch_and_rebase calls it
# (a script, so that GNU time can run it).
deltaic_apply=$dir/deltaic-apply
if [[ -n $python ]]; then
    cat > "$deltaic_apply" <<EOF
#!/bin/sh
PYTHONPATH='$DELTAIC_SRC/src' exec '$python' -c '
import sys
from deltaic.sources.rbd import LazyWriteFile, unpack_diff
with open(sys.argv[1], "rb") as ifh, LazyWriteFile(sys.argv[2], create=True) as ofh:
    unpack_diff(ifh, ofh, verbose=False)
' "\$@"
EOF
    chmod +x "$deltaic_apply"
fi

full=$dir/full.diff incr=$dir/incr.diff
cleanup() {
    if [[ ${BENCH_KEEP:-0} != 1 ]]; then rm -f "$dir"/*.diff "$dir"/img.* "$dir"/*.time "$dir"/*.out "$dir"/*.err "$dir"/*.vals "$dir"/*.gen "$dir/deltaic-apply"; fi
}
trap cleanup EXIT
echo "generating the diffs of a $size image in $dir ..." >&2
"$gen" "$size" "$full" 2> "$dir/full.gen"
"$gen" --incremental "$size" "$incr" 2> "$dir/incr.gen"
sync

# The full image the incremental applies to, made by strata once (with the
# snapshot xattr the incremental needs), copied before each incremental run.
"$strata" rbd apply-diff "$full" "$dir/img.base" > /dev/null 2>&1

mib() { awk -v b="$1" 'BEGIN { printf "%.0f", b / 1048576 }'; }
allocated() { echo $(( $(stat -c %b "$1") * $(stat -c %B "$1") )); }
fresh_copy() { rm -f "$2"; cp --sparse=always --reflink=never --preserve=xattr "$1" "$2"; }

rm -f "$dir"/*.vals
# why: each run starts with no dirty pages left by the one before (Deltaic
# leaves its whole image dirty; the next writer would pay for its writeback),
# and every run writes new files, all removed at the end: deleting a large
# file just before (on a root mounted with `discard`) makes the next fsync
# wait for the discards.
settle() { sync; }
for ((r = 1; r <= runs; r++)); do
    settle
    measure s_full "$strata" rbd apply-diff "$full" "$dir/img.strata.$r"
    echo "$s_full_wall" >> "$dir/s_full.vals"; result rbd-full strata "$s_full_wall" "$s_full_rss" "$s_full_load"
    # The disk's floor: the bytes strata's image holds, written in 4 MiB
    # blocks from the page cache and fdatasynced by dd, nothing compared.
    settle
    measure floor dd if="$full" of="$dir/img.floor.$r" bs=4M iflag=fullblock,count_bytes \
        count="$(allocated "$dir/img.strata.$r")" conv=fdatasync status=none
    echo "$floor_wall" >> "$dir/floor.vals"; result rbd-full floor "$floor_wall" "$floor_rss" "$floor_load"
    fresh_copy "$dir/img.base" "$dir/img.strata.i.$r"; settle
    measure s_incr "$strata" rbd apply-diff "$incr" "$dir/img.strata.i.$r"
    echo "$s_incr_wall" >> "$dir/s_incr.vals"; result rbd-incremental strata "$s_incr_wall" "$s_incr_rss" "$s_incr_load"
    if [[ -n $python ]]; then
        settle
        measure d_full "$deltaic_apply" "$full" "$dir/img.deltaic.$r"
        echo "$d_full_wall" >> "$dir/d_full.vals"; result rbd-full reference "$d_full_wall" "$d_full_rss" "$d_full_load"
        # For comparison only: the same, plus syncing the image as strata does.
        settle
        measure d_sync sh -c '"$1" "$2" "$3" && sync --data "$3"' sh "$deltaic_apply" "$full" "$dir/img.deltaic.s.$r"
        echo "$d_sync_wall" >> "$dir/d_sync.vals"; result rbd-full-synced reference "$d_sync_wall" "$d_sync_rss" "$d_sync_load"
        result rbd-full-synced strata "$s_full_wall" "$s_full_rss" "$s_full_load"
        fresh_copy "$dir/img.base" "$dir/img.deltaic.i.$r"; settle
        measure d_incr "$deltaic_apply" "$incr" "$dir/img.deltaic.i.$r"
        echo "$d_incr_wall" >> "$dir/d_incr.vals"; result rbd-incremental reference "$d_incr_wall" "$d_incr_rss" "$d_incr_load"
    fi
    printf 'run %d: strata full %ss incr %ss, disk floor %ss, deltaic full %ss incr %ss (load %s)\n' "$r" \
        "$s_full_wall" "$s_incr_wall" "$floor_wall" "${d_full_wall:--}" "${d_incr_wall:--}" "$s_full_load" >&2
done
for name in img.strata img.strata.i img.deltaic img.deltaic.i; do
    [[ -e $dir/$name.$runs ]] && mv "$dir/$name.$runs" "$dir/$name"
done
if [[ -n $python ]]; then
    cmp "$dir/img.strata" "$dir/img.deltaic" || { echo "rbd_apply: the full images differ" >&2; exit 1; }
    cmp "$dir/img.strata.i" "$dir/img.deltaic.i" || { echo "rbd_apply: the incremental images differ" >&2; exit 1; }
fi

echo
echo "full diff: $(mib "$(stat -c %s "$full")") MiB ($(cat "$dir/full.gen"))"
echo "incremental diff: $(mib "$(stat -c %s "$incr")") MiB ($(cat "$dir/incr.gen"))"
printf '%-24s %-22s %10s\n' run 'wall s min/med/max' 'alloc MiB'
printf '%-24s %-22s %10s\n' "strata full" "$(stats "$dir/s_full.vals" | tr ' ' /)" "$(mib "$(allocated "$dir/img.strata")")"
printf '%-24s %-22s %10s\n' "disk floor (dd, fdatasync)" "$(stats "$dir/floor.vals" | tr ' ' /)" "$(mib "$(allocated "$dir/img.strata")")"
printf '%-24s %-22s %10s\n' "strata incremental" "$(stats "$dir/s_incr.vals" | tr ' ' /)" "$(mib "$(allocated "$dir/img.strata.i")")"
if [[ -n $python ]]; then
    printf '%-24s %-22s %10s\n' "deltaic full" "$(stats "$dir/d_full.vals" | tr ' ' /)" "$(mib "$(allocated "$dir/img.deltaic")")"
    printf '%-24s %-22s %10s\n' "deltaic full + sync" "$(stats "$dir/d_sync.vals" | tr ' ' /)" "$(mib "$(allocated "$dir/img.deltaic")")"
    printf '%-24s %-22s %10s\n' "deltaic incremental" "$(stats "$dir/d_incr.vals" | tr ' ' /)" "$(mib "$(allocated "$dir/img.deltaic.i")")"
    read -r _ sf _ < <(stats "$dir/s_full.vals"); read -r _ df _ < <(stats "$dir/d_full.vals")
    read -r _ si _ < <(stats "$dir/s_incr.vals"); read -r _ di _ < <(stats "$dir/d_incr.vals")
    awk -v sf="$sf" -v df="$df" -v si="$si" -v di="$di" 'BEGIN {
        printf "ratio deltaic/strata (medians): full %.2f, incremental %.2f\n", df / sf, di / si }'
fi
echo "strata fdatasyncs the image and writes only non-zero blocks; Deltaic's unpack_diff writes every byte and does not sync"

#!/usr/bin/env bash
# Bench (not a test) of the rbd diff applier through `strata rbd apply-diff`
# (DESIGN §9, issue 6): a generated diff of ~4 GiB (4 MiB writes, objects
# that are mostly zero runs, `z` records) applied to a sparse image file,
# against `cp --sparse=always` of the resulting image on the same filesystem.
#
# usage: benches/rbd_apply.sh [IMAGE-SIZE]        (default 6G: a ~4.2 GiB diff)
# env:   STRATA_BENCH_DIR  work directory [target/bench-rbd]; needs ~2.5x the diff
#        STRATA_BIN        strata binary to time (skips building it)
#        BENCH_PROFILE     cargo profile [release]
#        BENCH_KEEP=1      keep the generated files
#
# Three timings, each with wall time and peak RSS from /usr/bin/time -v:
#   apply     the diff onto a new file (a first, full fetch)
#   reapply   the same diff again (nothing differs: the compare-only path,
#             what an incremental costs per byte it carries)
#   cp        cp --sparse=always --reflink=never of the image, then sync of
#             the copy (strata fsyncs its image, so the copy is synced too)
# The page cache is warm for all three (dropping it needs root).
set -euo pipefail

size=${1:-6G}
cd "$(dirname "$0")/.."
profile=${BENCH_PROFILE:-release}
case $profile in
    dev) profile_dir=debug ;;
    *) profile_dir=$profile ;;
esac
target=${CARGO_TARGET_DIR:-target}
dir=${STRATA_BENCH_DIR:-$target/bench-rbd}

if [[ ! -x /usr/bin/time ]]; then
    echo "rbd_apply: /usr/bin/time (GNU time) is needed for peak RSS" >&2
    exit 2
fi

cargo build --profile "$profile" --example gen_rbd_diff
if [[ -n ${STRATA_BIN:-} ]]; then
    strata=$STRATA_BIN
else
    cargo build --profile "$profile" --bin strata
    strata=$target/$profile_dir/strata
fi
gen=$target/$profile_dir/examples/gen_rbd_diff

mkdir -p "$dir"
diff=$dir/diff
image=$dir/image
copy=$dir/image.copy
cleanup() {
    if [[ ${BENCH_KEEP:-0} != 1 ]]; then rm -f "$diff" "$image" "$copy" "$dir"/time.*; fi
}
trap cleanup EXIT
rm -f "$diff" "$image" "$copy"

echo "generating a diff for a $size image in $dir ..."
"$gen" "$size" "$diff"
sync
diff_bytes=$(stat -c %s "$diff")

# measure NAME CMD...: runs CMD under GNU time; sets wall_NAME (seconds) and
# rss_NAME (KiB).
measure() {
    local name=$1
    shift
    /usr/bin/time -v -o "$dir/time.$name" "$@" >"$dir/time.$name.out"
    local wall rss
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {
        n = split($2, p, ":"); s = 0
        for (i = 1; i <= n; i++) s = s * 60 + p[i]
        print s }' "$dir/time.$name")
    rss=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$dir/time.$name")
    printf -v "wall_$name" '%s' "$wall"
    printf -v "rss_$name" '%s' "$rss"
}

measure apply "$strata" rbd apply-diff "$diff" "$image"
measure reapply "$strata" rbd apply-diff "$diff" "$image"
measure cp sh -c 'cp --sparse=always --reflink=never "$1" "$2" && sync --data "$2"' sh "$image" "$copy"
cmp -s "$image" "$copy" || { echo "rbd_apply: the copy differs from the image" >&2; exit 1; }

image_bytes=$(stat -c %s "$image")
allocated=$(( $(stat -c %b "$image") * $(stat -c %B "$image") ))
mib() { awk -v b="$1" 'BEGIN { printf "%.0f", b / 1048576 }'; }
rate() { awk -v b="$1" -v s="$2" 'BEGIN { if (s > 0) printf "%.0f", b / 1048576 / s; else print "inf" }'; }

echo
echo "diff:  $(mib "$diff_bytes") MiB; image: $(mib "$image_bytes") MiB apparent, $(mib "$allocated") MiB allocated"
printf '%-8s %10s %14s %14s %12s\n' run wall_s diff_MiB/s image_MiB/s peak_RSS_MiB
for run in apply reapply cp; do
    wall_var=wall_$run rss_var=rss_$run
    printf '%-8s %10s %14s %14s %12s\n' "$run" "${!wall_var}" \
        "$(rate "$diff_bytes" "${!wall_var}")" "$(rate "$image_bytes" "${!wall_var}")" \
        "$(awk -v k="${!rss_var}" 'BEGIN { printf "%.1f", k / 1024 }')"
done
awk -v a="$wall_apply" -v r="$wall_reapply" -v c="$wall_cp" 'BEGIN {
    if (c > 0) printf "ratio apply/cp: %.2f   reapply/cp: %.2f\n", a / c, r / c
    else print "ratio: cp took no measurable time" }'

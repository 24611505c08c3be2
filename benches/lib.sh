# Shared by the bench scripts (sourced, not run): timing with peak RSS, the
# machine's load next to every time, min/median/max of repeated runs, and
# result lines for benches/compare.sh.
#
#   measure VAR CMD...   run CMD (stdout, stderr to $BENCH_TMP/VAR.out, .err;
#                        the latter shown if CMD fails) under GNU
#                        time; sets VAR_wall (seconds), VAR_rss (peak RSS of
#                        the process tree's largest member, KiB), VAR_load
#                        (1-minute load average when it started)
#   result ROW SIDE WALL RSS LOAD
#                        one line for compare.sh, appended to $BENCH_RESULTS
#                        when set (ROW names the table row, SIDE is strata,
#                        reference or floor)
#   stats FILE           "min median max" of the numbers in FILE, one a line
#   load                 the 1-minute load average now
#
# Needs BENCH_TMP (a scratch directory) set by the caller.

if [[ ! -x /usr/bin/time ]]; then
    echo "benches: /usr/bin/time (GNU time) is needed for peak RSS (apt-get install time)" >&2
    exit 2
fi

load() { cut -d' ' -f1 /proc/loadavg; }

measure() {
    local var=$1
    shift
    local l
    l=$(load)
    if ! /usr/bin/time -f '%e %M' -o "$BENCH_TMP/$var.time" "$@" > "$BENCH_TMP/$var.out" 2> "$BENCH_TMP/$var.err"; then
        echo "benches: failed: $*" >&2
        cat "$BENCH_TMP/$var.err" >&2
        return 1
    fi
    local wall rss
    read -r wall rss < <(tail -1 "$BENCH_TMP/$var.time")
    printf -v "${var}_wall" '%s' "$wall"
    printf -v "${var}_rss" '%s' "$rss"
    printf -v "${var}_load" '%s' "$l"
}

result() {
    if [[ -n ${BENCH_RESULTS:-} ]]; then
        echo "$*" >> "$BENCH_RESULTS"
    fi
}

stats() {
    sort -g "$1" | awk '{ v[NR] = $1 } END {
        if (NR == 0) { print "- - -"; exit }
        printf "%s %s %s\n", v[1], v[int((NR + 1) / 2)], v[NR] }'
}

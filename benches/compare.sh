#!/usr/bin/env bash
# The standing of issue 18's table in one command: runs every pair (strata
# against its reference) RUNS times (default 3), prints one table of
# min/median/max wall times, the ratio (reference median / strata median;
# above 1: strata faster), the goal, peak RSS and the load average range,
# and exits 1 if any result misses its goal.
#
#   DELTAIC_SRC=/path/to/deltaic benches/compare.sh [PAIR...]
#
# PAIR: rbd rgw run config pack (default: all). Each is its own bench script
# (benches/*.sh, which say what they measure), run with BENCH_RESULTS set;
# their own output goes to $BENCH_LOG (default target/bench-compare.log).
# env: DELTAIC_SRC (needed by rbd: Deltaic's own unpack_diff is the
#      reference), STRATA_BIN (a built strata; otherwise cargo builds the
#      release one once), RUNS, RBD_SIZE [1G], RGW_OBJECTS [4000],
#      PACK_MIB [1024].
set -euo pipefail
cd "$(dirname "$0")/.."
pairs=("$@"); [ ${#pairs[@]} -gt 0 ] || pairs=(rbd rgw run config pack)
export RUNS=${RUNS:-3}
target=${CARGO_TARGET_DIR:-target}
if [ -z "${STRATA_BIN:-}" ]; then
    cargo build --release --quiet --bin strata --example gen_rbd_diff
    STRATA_BIN=$target/release/strata
fi
export STRATA_BIN=$(realpath "$STRATA_BIN")
log=${BENCH_LOG:-$target/bench-compare.log}
mkdir -p "$(dirname "$log")"; : > "$log"
export BENCH_RESULTS=$(mktemp /tmp/strata-compare.XXXXXX)
trap 'rm -f "$BENCH_RESULTS"' EXIT

failed_runs=()
for p in "${pairs[@]}"; do
    echo "== $p ($(date +%T), load $(cut -d' ' -f1 /proc/loadavg))" | tee -a "$log" >&2
    case $p in
        rbd)
            if [ -z "${DELTAIC_SRC:-}" ]; then
                echo "compare: DELTAIC_SRC is not set: the rbd pair needs a Deltaic checkout" >&2
                failed_runs+=(rbd); continue
            fi
            bash benches/rbd_apply.sh "${RBD_SIZE:-1G}" >> "$log" 2>&1 || failed_runs+=(rbd) ;;
        rgw) bash benches/rgw_fetch.sh "${RGW_OBJECTS:-4000}" >> "$log" 2>&1 || failed_runs+=(rgw) ;;
        run) bash benches/run_overhead.sh 100 1000 4000 >> "$log" 2>&1 || failed_runs+=(run) ;;
        config) RUNS=$(( RUNS > 5 ? RUNS : 5 )) bash benches/config_scale.sh 4000 >> "$log" 2>&1 || failed_runs+=(config) ;;
        pack) bash benches/archive_pack.sh "${PACK_MIB:-1024}" >> "$log" 2>&1 || failed_runs+=(pack) ;;
        *) echo "compare: unknown pair $p (rbd rgw run config pack)" >&2; exit 2 ;;
    esac
done

# row | what | kind of goal | goal. Kinds: ratio (reference/strata >= goal),
# per-unit (strata median / units, ms, <= goal), max-s (strata median <= goal),
# report (no goal). Floors (reported under their row): rbd-full, dd writing
# as many bytes as strata's image holds, fdatasynced; pack-one, gpg alone.
rows='rbd-full|apply a full rbd diff to a new image (vs Deltaic unpack_diff)|ratio|1.5
rbd-full-synced|  the same, Deltaic followed by sync --data of its image|report|-
rbd-incremental|apply an incremental diff onto the full image (vs Deltaic)|report|-
rgw-first|rgw first fetch, 8 transfers (vs rclone copy)|ratio|1.0
rgw-nochange|rgw run with nothing changed (vs rclone copy, nothing changed)|ratio|5.0
run-100|run of 100 trivial dump units, 4 workers|per-unit|-
run-1000|run of 1,000 trivial dump units, 4 workers|per-unit|-
run-4000|run of 4,000 trivial dump units, 4 workers|per-unit|10
config-4400|config check of 4,400 units|max-s|0.05
pack-one|pack 1 GiB in two units, lz4 + gpg, 1 worker (vs shell pipeline)|ratio|1.0
pack-two|pack 1 GiB in two units, lz4 + gpg, 2 workers (vs shell pipeline)|ratio|1.0
pack-two-synced|  the same, the shell pipeline archives then synced (sync --data)|report|-'

vals() { awk -v r="$1" -v s="$2" '$1 == r && $2 == s { print $3 }' "$BENCH_RESULTS"; }
mmm() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "- - -"; else printf "%.3f %.3f %.3f\n", v[1], v[int((NR + 1) / 2)], v[NR] }'; }
maxrss() { awk -v r="$1" -v s="$2" '$1 == r && $2 == s && $4 != "-" { if ($4 > m) m = $4 } END { if (m) printf "%.0f", m / 1024; else print "-" }' "$BENCH_RESULTS"; }
loads() { awk -v r="$1" '$1 == r { if (lo == "" || $5 < lo) lo = $5; if ($5 > hi) hi = $5 } END { if (lo == "") print "-"; else printf "%s-%s", lo, hi }' "$BENCH_RESULTS"; }

missed=0
printf '\n%-62s %-20s %-20s %9s %8s %-14s %-6s %s\n' work 'strata s (min/med/max)' 'reference s' result goal 'RSS MiB s/ref' ok load
while IFS='|' read -r row what kind goal; do
    read -r s_lo s_med s_hi < <(vals "$row" strata | mmm)
    [ "$s_med" = - ] && continue
    read -r r_lo r_med r_hi < <(vals "$row" reference | mmm)
    units=${row##*-}
    case $kind in
        ratio) res=$(awk -v a="$r_med" -v b="$s_med" 'BEGIN { printf "%.2fx", a / b }')
               ok=$(awk -v a="$r_med" -v b="$s_med" -v g="$goal" 'BEGIN { print (a / b >= g) ? "yes" : "NO" }'); goal=">=${goal}x" ;;
        report) res=$(awk -v a="$r_med" -v b="$s_med" 'BEGIN { if (a == "-") print "-"; else printf "%.2fx", a / b }'); ok=-; goal=- ;;
        per-unit) res=$(awk -v m="$s_med" -v n="$units" 'BEGIN { printf "%.2fms/u", 1000 * m / n }')
                  if [ "$goal" = - ]; then ok=-; else
                  ok=$(awk -v m="$s_med" -v n="$units" -v g="$goal" 'BEGIN { print (1000 * m / n <= g) ? "yes" : "NO" }'); goal="<=${goal}ms"; fi ;;
        max-s) res=$(awk -v m="$s_med" 'BEGIN { printf "%.0fms", 1000 * m }')
               ok=$(awk -v m="$s_med" -v g="$goal" 'BEGIN { print (m <= g) ? "yes" : "NO" }'); goal="<=$(awk -v g="$goal" 'BEGIN { print 1000 * g }')ms" ;;
    esac
    [ "$ok" = NO ] && missed=1
    printf '%-62s %-20s %-20s %9s %8s %-14s %-6s %s\n' "$what" "$s_lo/$s_med/$s_hi" "$r_lo/$r_med/$r_hi" \
        "$res" "$goal" "$(maxrss "$row" strata)/$(maxrss "$row" reference)" "$ok" "$(loads "$row")"
    if [ "$row" = rbd-full ]; then
        read -r f_lo f_med f_hi < <(vals rbd-full floor | mmm)
        if [ "$f_med" != - ]; then
            printf '%-62s %-20s %-20s %9s\n' "  the disk's floor: dd of as many bytes, fdatasync" "$f_lo/$f_med/$f_hi" "" \
                "$(awk -v s="$s_med" -v f="$f_med" 'BEGIN { printf "%.2fx", s / f }')"
            # why: a goal below what the disk takes to store the bytes cannot be met by any durable applier
            reach=$(awk -v r="$r_med" -v f="$f_med" -v g="${goal#>=}" 'BEGIN { g += 0; printf "%.3f s %s the floor, %.3f s", r / g, (r / g < f) ? "is below" : "is above", f }')
            printf '%-62s %s\n' "  the goal's time (reference / goal) against the floor" "$reach"
        fi
    fi
    if [ "$row" = pack-one ]; then
        read -r f_lo f_med f_hi < <(vals pack-one floor | mmm)
        [ "$f_med" = - ] || printf '%-62s %-20s %-20s %9s\n' "  gpg -se alone, strata's options, same lz4 streams (floor)" "$f_lo/$f_med/$f_hi" "" \
            "$(awk -v s="$s_med" -v f="$f_med" 'BEGIN { printf "%.2fx", s / f }')"
    fi
done <<< "$rows"
echo
echo "ratio: reference median / strata median (above 1: strata faster). rbd: strata fdatasyncs the image and"
echo "writes only non-zero blocks; Deltaic's unpack_diff writes every byte and does not sync. floors: strata / floor."
echo "pack: strata's archives are fsynced in the store; the shell pipeline's are not (the synced row makes them so)."
echo "pack: strata signs with SHA-256, the shell pipeline's gpg -se with SHA-512; the gpg floor runs gpg with strata's options."
echo "the benches' own output: $log"
if [ ${#failed_runs[@]} -gt 0 ]; then
    echo "compare: these benches failed to run: ${failed_runs[*]}" >&2
    exit 1
fi
exit "$missed"

#!/usr/bin/env bash
# Per-unit cost of `strata run`: N trivial dump units (`echo`), 4 workers,
# `--no-snapshot`, for N = 100, 1,000 and 4,000 (or the sizes given), each
# run RUNS times (default 3) after one warm-up run that makes the first
# copies; against running the same N commands directly into files. Prints
# min / median / max wall time, the cost per unit (median / N) and peak RSS,
# with the load average. Not a test: a bench.
#   benches/run_overhead.sh [N...]
#   STRATA_BIN=/path/to/strata benches/run_overhead.sh   (another build, no cargo)
#   BENCH_RESULTS=FILE    append result lines for benches/compare.sh
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@"); [ ${#sizes[@]} -gt 0 ] || sizes=(100 1000 4000)
runs=${RUNS:-3}
workers=${BENCH_WORKERS:-4}
if [ -n "${STRATA_BIN:-}" ]; then
  bin=$(realpath "$STRATA_BIN")
else
  cargo build --release --quiet --bin strata
  bin=$(realpath "${CARGO_TARGET_DIR:-target}/release/strata")
fi
work=$(mktemp -d /tmp/strata-bench-run.XXXXXX)
trap 'rm -rf "$work"' EXIT
BENCH_TMP=$work
. benches/lib.sh
allow=(); [ "$(id -u)" = 0 ] && allow=(--allow-root)
printf '%7s %9s %22s %12s %10s %6s\n' units workers 'wall s min/med/max' 'ms/unit' 'RSS KiB' load
for n in "${sizes[@]}"; do
  rm -rf "$work/root" "$work/direct"; mkdir "$work/root" "$work/direct"
  { printf 'settings:\n  root: %s\n  snapshot-store: dir\n  dump-workers: %s\n  dump-scrub-probability: 0\ndump:\n' "$work/root" "$workers"
    for i in $(seq 1 "$n"); do printf '  u%s:\n    command: [echo, unit %s]\n' "$i" "$i"; done; } > "$work/c.yaml"
  "$bin" -c "$work/c.yaml" "${allow[@]}" -q run --no-snapshot   # warm-up: the first copies
  rm -f "$work/vals"
  for _ in $(seq 1 "$runs"); do
    measure r "$bin" -c "$work/c.yaml" "${allow[@]}" -q run --no-snapshot
    echo "$r_wall" >> "$work/vals"
    result "run-$n" strata "$r_wall" "$r_rss" "$r_load"
  done
  read -r lo med hi < <(stats "$work/vals")
  printf '%7d %9d %22s %12.2f %10d %6s\n' "$n" "$workers" "$lo/$med/$hi" \
    "$(awk -v m="$med" -v n="$n" 'BEGIN { print 1000 * m / n }')" "$r_rss" "$r_load"
done
# The floor: the same commands, one after the other, straight into files.
n=${sizes[-1]}
t0=$(date +%s.%N)
for i in $(seq 1 "$n"); do /bin/echo "unit $i" > "$work/direct/u$i"; done
t1=$(date +%s.%N)
awk -v n="$n" -v a="$t0" -v b="$t1" 'BEGIN {
  printf "direct /bin/echo > file, %d units, one at a time: %.3f s (%.2f ms per unit)\n", n, b - a, 1000 * (b - a) / n }'

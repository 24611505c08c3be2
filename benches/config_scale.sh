#!/usr/bin/env bash
# How `strata config check` scales with the number of units: configs of
# N dump units plus N/10 rsync hosts (N = 100, 1,000, 4,000 by default), each
# checked RUNS times with a release build. Prints min / median / max wall
# time, the cost per unit (median / units) and the growth from one size to
# the next (linear reading keeps time / units flat). Not a test: a bench.
#   benches/config_scale.sh [N...]      (RUNS=5 by default)
#   STRATA_BIN=/path/to/strata benches/config_scale.sh   (another build, no cargo)
#   BENCH_RESULTS=FILE    append result lines for benches/compare.sh
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@"); [ ${#sizes[@]} -gt 0 ] || sizes=(100 1000 4000)
runs=${RUNS:-5}
if [ -n "${STRATA_BIN:-}" ]; then
  bin=$STRATA_BIN
else
  cargo build --release --quiet --bin strata
  bin=${CARGO_TARGET_DIR:-target}/release/strata
fi
work=$(mktemp -d /tmp/strata-bench-config.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir "$work/root"
config() {  # $1 = dump units; rsync hosts are a tenth of that
  local n=$1 hosts=$(( $1 / 10 ))
  { printf 'settings:\n  root: %s\n  snapshot-store: dir\n  dump-scrub-probability: 0\n' "$work/root"
    printf 'rsync:\n'
    for i in $(seq 1 "$hosts"); do
      printf '  host%s.example.org:\n    mounts: [/, /home]\n    exclude: [/tmp]\n' "$i"
    done
    printf 'dump:\n'
    for i in $(seq 1 "$n"); do
      printf '  db%s:\n    command: [pg_dump, -Fc, db%s]\n    file: db%s.dump\n' "$i" "$i" "$i"
    done; } > "$work/c$n.yaml"
}
now() { date +%s.%N; }
printf '%8s %8s %10s %10s %10s %14s\n' units file-KiB 'min s' 'median s' 'max s' 'ms/unit'
for n in "${sizes[@]}"; do
  config "$n"
  units=$(( n + n / 10 ))
  "$bin" -c "$work/c$n.yaml" config check > "$work/out" 2> "$work/err" || {
    echo "config check failed on $n units:" >&2; cat "$work/err" >&2; exit 1; }
  grep -q "valid, $units units" "$work/out" || { echo "unexpected output: $(head -1 "$work/out")" >&2; exit 1; }
  times=()
  for _ in $(seq 1 "$runs"); do
    t0=$(now); "$bin" -c "$work/c$n.yaml" config check > /dev/null 2>&1; t1=$(now)
    times+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }')")
    if [ -n "${BENCH_RESULTS:-}" ]; then
      echo "config-$units strata ${times[-1]} - $(cut -d' ' -f1 /proc/loadavg)" >> "$BENCH_RESULTS"
    fi
  done
  kib=$(( $(stat -c %s "$work/c$n.yaml") / 1024 ))
  printf '%s\n' "${times[@]}" | sort -n | awk -v u="$units" -v k="$kib" '
    { t[NR] = $1 }
    END { med = t[int((NR + 1) / 2)];
          printf "%8d %8d %10.4f %10.4f %10.4f %14.4f\n", u, k, t[1], med, t[NR], 1000 * med / u }'
done

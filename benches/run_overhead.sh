#!/usr/bin/env bash
# Per-unit overhead of `strata run`: N trivial dump units (`echo`), run with one
# worker and with four, against running the same N commands directly into
# files. Prints wall times and the overhead per unit. Not a test: a bench.
#   benches/run_overhead.sh [N]      (default 100)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-100}
cargo build --release --quiet --bin strata
bin=${CARGO_TARGET_DIR:-target}/release/strata
work=$(mktemp -d /tmp/strata-bench-run.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir "$work/root" "$work/direct"
allow=(); [ "$(id -u)" = 0 ] && allow=(--allow-root)
config() {  # $1 = workers
  { printf 'settings:\n  root: %s\n  snapshot-store: dir\n  dump-workers: %s\n  dump-scrub-probability: 0\ndump:\n' "$work/root" "$1"
    for i in $(seq 1 "$n"); do printf '  u%s:\n    command: [echo, unit %s]\n' "$i" "$i"; done; } > "$work/c$1.yaml"
}
now() { date +%s.%N; }
config 1; config 4
"$bin" -c "$work/c1.yaml" "${allow[@]}" -q run --no-snapshot   # warm-up: first copies
t0=$(now); "$bin" -c "$work/c1.yaml" "${allow[@]}" -q run --no-snapshot; t1=$(now)
"$bin" -c "$work/c4.yaml" "${allow[@]}" -q run --no-snapshot; t2=$(now)
for i in $(seq 1 "$n"); do echo "unit $i" > "$work/direct/u$i"; done; t3=$(now)
for i in $(seq 1 "$n"); do /bin/echo "unit $i" > "$work/direct/u$i"; done; t4=$(now)
awk -v n="$n" -v a="$t0" -v b="$t1" -v c="$t2" -v e="$t3" -v f="$t4" 'BEGIN {
  one = b - a; four = c - b; direct = f - e;
  printf "units: %d\n", n;
  printf "strata run, 1 worker:  %.3f s  (%.2f ms per unit)\n", one, 1000 * one / n;
  printf "strata run, 4 workers: %.3f s  (%.2f ms per unit)\n", four, 1000 * four / n;
  printf "direct /bin/echo > file: %.3f s  (%.2f ms per unit)\n", direct, 1000 * direct / n;
  printf "overhead per unit, 1 worker: %.2f ms\n", 1000 * (one - direct) / n;
}'

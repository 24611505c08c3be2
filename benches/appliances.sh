#!/usr/bin/env bash
# Several appliances on one CephFS (issue 19): 2N dump units of mixed size
# backed up (`strata run`, one snapshot) and then archived (`archive run`,
# local archiver, zstd) by one appliance, then by two appliances sharing the
# root (`appliances:`), on the same test cluster (the project's own
# tests/support scripts: one mon, one memstore OSD, one MDS, ceph-fuse).
# Prints the wall time of each, the ratio (one / two; goal >= 1.6) and the
# peak RSS of each appliance's process tree. Not a test: a bench.
#
# Each unit models a source that is slow on its own side (an rsync host, a
# database dump): its command waits SOURCE_SECS (default 2) and then writes
# its data (1, 4, 16 or 32 MiB, by turns, from /dev/urandom). Both
# appliances run on this one machine, so they share its cores: work that is
# bound by this machine's CPU cannot scale here the way it does on two.
#
#   benches/appliances.sh [N]         N units per appliance (default 8)
#   STRATA_BIN=/path/to/strata ...    another build, no cargo
#   WORKERS=2 SOURCE_SECS=2           dump-workers and archive workers per
#                                     appliance, the sources' wait
#   SIZES="1M 4M 16M 32M"             the units' sizes, by turns
# Needs root (ceph-fuse mounts) and the Ceph packages of
# scripts/install-test-deps.sh --ceph.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-8}
workers=${WORKERS:-2}
source_secs=${SOURCE_SECS:-2}
if [ "$(id -u)" != 0 ]; then
  echo "benches/appliances.sh: needs root (ceph-fuse mounts)" >&2
  exit 2
fi
if [ -n "${STRATA_BIN:-}" ]; then
  bin=$(realpath "$STRATA_BIN")
else
  cargo build --release --quiet --bin strata
  bin=$(realpath "${CARGO_TARGET_DIR:-target}/release/strata")
fi
work=$(mktemp -d /tmp/strata-bench-appl.XXXXXX)
BENCH_TMP=$work
. benches/lib.sh
support=tests/support
cluster=$work/ceph
mounts=()
cleanup() {
  for m in "${mounts[@]}"; do "$support/cephfs/umount-cephfs.sh" "$cluster" "$m" >/dev/null 2>&1 || true; done
  [ -d "$cluster" ] && "$support/ceph/stop-ceph.sh" "$cluster" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "starting a test Ceph with CephFS in $cluster ..." >&2
CEPH_WITH_RGW=0 "$support/ceph/start-ceph.sh" "$cluster" > "$work/ceph.env"
. "$work/ceph.env"
"$support/cephfs/add-cephfs.sh" "$cluster" > "$work/cephfs.env"
mount_as() { # mount_as ID FS_PATH MOUNTPOINT
  ceph fs authorize cephfs "client.$1" "$2" rws > "$work/$1.keyring"
  CEPHFS_CLIENT_ID=$1 CEPHFS_KEYRING=$work/$1.keyring "$support/cephfs/mount-cephfs.sh" "$cluster" "$3" "$2" > /dev/null
  mounts+=("$3")
}
"$support/cephfs/mount-cephfs.sh" "$cluster" "$work/admin" > /dev/null
mounts+=("$work/admin")
mkdir "$work/admin/one" "$work/admin/two"
mount_as one /one "$work/m-one"
mount_as alpha /two "$work/m-alpha"
mount_as beta /two "$work/m-beta"

read -r -a sizes <<< "${SIZES:-1M 4M 16M 32M}"
units() { # the 2N units, owned alternately by alpha and beta
  printf 'dump:\n'
  for i in $(seq 0 $((2 * n - 1))); do
    printf "  u%02d:\n    command: [sh, -c, 'sleep %s; head -c %s /dev/urandom']\n" \
      "$i" "$source_secs" "${sizes[$((i % ${#sizes[@]}))]}"
  done
}
config() { # config ROOT SPOOL ARCHIVES [appliances]
  printf 'settings:\n  root: %s\n  snapshot-store: cephfs\n  gc-policy: hanoi\n' "$1"
  printf '  dump-workers: %s\n  dump-scrub-probability: 0\n  archive-spool: %s\n' "$workers" "$2"
  printf '  archivers:\n    bench:\n      archiver: local\n      local-path: %s\n      compression: zstd\n      workers: %s\n' "$3" "$workers"
  units
  if [ -n "${4:-}" ]; then
    printf 'appliances:\n  alpha: ['
    for i in $(seq 0 2 $((2 * n - 1))); do printf "'dump/u%02d', " "$i"; done
    printf ']\n  beta: ['
    for i in $(seq 1 2 $((2 * n - 1))); do printf "'dump/u%02d', " "$i"; done
    printf ']\n'
  fi
}
mkdir -p "$work/spool-one" "$work/spool-alpha" "$work/spool-beta" "$work/arch-one" "$work/arch-two"
config "$work/m-one" "$work/spool-one" "$work/arch-one" > "$work/one.yaml"
config "$work/m-alpha" "$work/spool-alpha" "$work/arch-two" yes > "$work/alpha.yaml"
config "$work/m-beta" "$work/spool-beta" "$work/arch-two" yes > "$work/beta.yaml"

# Two appliances at once: wall time from the start of both to the end of the
# later; each one's peak RSS.
both() { # both VAR ARGS... (alpha and beta each get `-c <its config>` then ARGS, with --appliance after the verb)
  local var=$1; shift
  local l t0 t1
  l=$(load)
  t0=$(date +%s.%N)
  /usr/bin/time -f '%e %M' -o "$work/$var-a.time" "$bin" -c "$work/alpha.yaml" --allow-root -q "$@" --appliance alpha > "$work/$var-a.out" 2>&1 &
  local pa=$!
  /usr/bin/time -f '%e %M' -o "$work/$var-b.time" "$bin" -c "$work/beta.yaml" --allow-root -q "$@" --appliance beta > "$work/$var-b.out" 2>&1 &
  local pb=$!
  local rc=0
  wait "$pa" || rc=1
  wait "$pb" || rc=1
  t1=$(date +%s.%N)
  if [ "$rc" != 0 ]; then cat "$work/$var-a.out" "$work/$var-b.out" >&2; return 1; fi
  printf -v "${var}_wall" '%s' "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')"
  printf -v "${var}_rss" '%s/%s' "$(tail -1 "$work/$var-a.time" | cut -d' ' -f2)" "$(tail -1 "$work/$var-b.time" | cut -d' ' -f2)"
  printf -v "${var}_load" '%s' "$l"
}

echo "backing up and archiving $((2 * n)) units ($workers workers per appliance, sources wait ${source_secs}s) ..." >&2
measure r1 "$bin" -c "$work/one.yaml" --allow-root -q run
both r2 run
measure a1 "$bin" -c "$work/one.yaml" --allow-root -q archive -p bench run
both a2 archive -p bench run

# Check what was made: one snapshot each, every unit archived once.
snaps_one=$(ls "$work/m-one/.snap" | grep -vc '^_' || true)
snaps_two=$(ls "$work/m-alpha/.snap" | grep -vc '^_' || true)
arch_one=$(find "$work/arch-one" -type f -name '*.archive' | wc -l)
arch_two=$(find "$work/arch-two" -type f -name '*.archive' | wc -l)

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
printf '\n%-26s %12s %14s %8s %8s %22s %6s\n' work 'one appl. s' 'two appl. s' ratio goal 'peak RSS KiB 1 | 2a/2b' load
printf '%-26s %12s %14s %8s %8s %22s %6s\n' "run, $((2 * n)) units" "$r1_wall" "$r2_wall" "$(ratio "$r1_wall" "$r2_wall")" '>= 1.6' "$r1_rss | $r2_rss" "$r1_load"
printf '%-26s %12s %14s %8s %8s %22s %6s\n' "archive run, $((2 * n)) units" "$a1_wall" "$a2_wall" "$(ratio "$a1_wall" "$a2_wall")" '>= 1.6' "$a1_rss | $a2_rss" "$a1_load"
total1=$(awk -v a="$r1_wall" -v b="$a1_wall" 'BEGIN { print a + b }')
total2=$(awk -v a="$r2_wall" -v b="$a2_wall" 'BEGIN { print a + b }')
printf '%-26s %12s %14s %8s %8s\n' "both" "$total1" "$total2" "$(ratio "$total1" "$total2")" '>= 1.6'
echo "snapshots: one appliance $snaps_one, two appliances $snaps_two; archives: $arch_one and $arch_two (of $((2 * n)) units each)"
result "appliances-run" strata "$r2_wall" "${r2_rss%%/*}" "$r2_load"
result "appliances-run" reference "$r1_wall" "$r1_rss" "$r1_load"
if [ "$snaps_one" != 1 ] || [ "$snaps_two" != 1 ] || [ "$arch_one" != $((2 * n)) ] || [ "$arch_two" != $((2 * n)) ]; then
  echo "benches/appliances.sh: unexpected result (see above)" >&2
  exit 1
fi

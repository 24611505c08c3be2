#!/usr/bin/env bash
# Bench (not a test) of the coda source (issue 14): one Coda volume of
# SIZE-MIB (default 1024) backed up through `strata coda backup` over a
# throwaway sshd on 127.0.0.1, whose root runs the fake volutil and
# codadump2tar of tests/support/coda (what the real tools emit). Three cases:
#
#   full            the first dump, into an empty unit
#   incremental     after ~1% of the volume changed (1% of the big files and
#                   1% of the small ones rewritten), `-i`
#   full-unchanged  a full dump again, nothing changed since (the coda
#                   source's scrub: everything read and compared)
#
# For each: wall time, the CPU time of strata's process tree (user+sys; the
# fake tools run under sshd and are not counted), strata's peak RSS, the
# bytes the process tree wrote to storage (/proc/PID/io write_bytes minus
# cancelled_write_bytes: the stage and the stored copy), and the bytes strata
# says it wrote into the stored files (its summary line).
#
# usage: benches/coda_volume.sh [SIZE-MIB]     (needs root and openssh-server)
# env:   STRATA_BENCH_DIR  work directory [target/bench-coda]
#        STRATA_BIN        strata binary to time (skips building it)
#        BENCH_PROFILE     cargo profile [release]
#        BENCH_KEEP=1      keep the generated files
set -euo pipefail

size_mib=${1:-1024}
cd "$(dirname "$0")/.."
repo=$(pwd)
profile=${BENCH_PROFILE:-release}
case $profile in
    dev) profile_dir=debug ;;
    *) profile_dir=$profile ;;
esac
target=${CARGO_TARGET_DIR:-target}
dir=$(realpath -m "${STRATA_BENCH_DIR:-$target/bench-coda}")

if [[ $(id -u) != 0 ]]; then
    echo "coda_volume: needs root (the fake Coda server is reached as root over ssh)" >&2
    exit 2
fi
for need in /usr/bin/time /usr/sbin/sshd ssh-keygen python3; do
    if ! command -v "$need" >/dev/null; then
        echo "coda_volume: $need is needed" >&2
        exit 2
    fi
done
if [[ -n ${STRATA_BIN:-} ]]; then
    strata=$STRATA_BIN
else
    cargo build --profile "$profile" --bin strata
    strata=$target/$profile_dir/strata
fi
strata=$(realpath "$strata")

sshd_pid=
cleanup() {
    if [[ -n $sshd_pid ]]; then kill "$sshd_pid" 2>/dev/null || true; fi
    if [[ -z ${BENCH_KEEP:-} ]]; then rm -rf "$dir"; fi
}
trap cleanup EXIT
rm -rf "$dir"
fake=$dir/fake
live=$fake/server/volumes/u:bench/live
mkdir -p "$dir/root" "$dir/home" "$fake/bin" "$fake/server/clones" "$fake/server/faults" "$live"
cp "$repo/tests/support/coda/volutil" "$repo/tests/support/coda/codadump2tar" "$fake/bin/"
chmod 755 "$fake/bin/"*
echo 7f000001 >"$fake/server/volumes/u:bench/id"
: >"$fake/server/log"
touch "$fake/server/incremental-by-stat"

echo "generating a ${size_mib} MiB volume in $live"
python3 - "$live" "$size_mib" <<'EOF'
import os, sys
live, mib = sys.argv[1], int(sys.argv[2])
big_n = max(1, mib * 8 // 10 // 4)          # 80%: files of 4 MiB
small_n = max(1, mib * 2 // 10 * 1024 // 20)  # 20%: files of 20 KiB
for i in range(big_n):
    os.makedirs(os.path.join(live, "big"), exist_ok=True)
    with open(os.path.join(live, "big", "%04d" % i), "wb") as f:
        for _ in range(4):
            f.write(os.urandom(1 << 20))
for i in range(small_n):
    d = os.path.join(live, "small", "%03d" % (i // 100))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "%05d" % i), "wb") as f:
        f.write(os.urandom(20 << 10))
print("  %d files of 4 MiB, %d files of 20 KiB" % (big_n, small_n))
EOF

port=$((20000 + RANDOM % 10000))
mkdir -p "$dir/sshd" /run/sshd
ssh-keygen -q -t ed25519 -N '' -f "$dir/sshd/host"
ssh-keygen -q -t ed25519 -N '' -f "$dir/sshd/client"
cp "$dir/sshd/client.pub" "$dir/sshd/authorized_keys"
cat >"$dir/sshd/config" <<EOF
Port $port
ListenAddress 127.0.0.1
HostKey $dir/sshd/host
AuthorizedKeysFile $dir/sshd/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
StrictModes no
UsePAM yes
PidFile $dir/sshd/pid
EOF
/usr/sbin/sshd -D -e -f "$dir/sshd/config" 2>"$dir/sshd/log" &
sshd_pid=$!
sleep 1

cat >"$dir/config.yaml" <<EOF
settings:
  root: '$dir/root'
  snapshot-store: dir
  coda-volutil-path: '$fake/bin/volutil'
  coda-codadump2tar-path: '$fake/bin/codadump2tar'
coda:
  - servers: [127.0.0.1]
    volumes: [u:bench]
    ssh-port: $port
    ssh-identity: '$dir/sshd/client'
EOF

# The backup clone is refreshed outside the timed runs (the fake's `cp -a`
# of the volume is not strata's cost); the timed runs pass -R.
refresh() {
    "$fake/bin/volutil" lock 7f000001 >/dev/null
    "$fake/bin/volutil" backup 7f000001 >/dev/null
}
export dir strata
measure() { # name strata-args...
    local name=$1
    shift
    sync
    /usr/bin/time -o "$dir/time" -f '%e %U %S %M' bash -c '
        HOME=$dir/home STRATA_ALLOW_ROOT=1 "$strata" -c "$dir/config.yaml" coda backup "$@" \
            127.0.0.1 u:bench >"$dir/out" 2>"$dir/err"
        s=$?
        cat /proc/$$/io >"$dir/io"
        exit $s' bash "$@" || {
        echo "coda_volume: $name failed:" >&2
        tail -n 20 "$dir/err" >&2
        exit 1
    }
    local e u s m wb cwb said
    read -r e u s m <"$dir/time"
    wb=$(awk '/^write_bytes/ {print $2}' "$dir/io")
    cwb=$(awk '/^cancelled_write_bytes/ {print $2}' "$dir/io")
    said=$(grep -E '^(full|incremental) dump:' "$dir/out" | tail -n 1 | grep -oE '[0-9]+ bytes written' | cut -d' ' -f1)
    printf '%-15s wall %7.2f s   cpu %6.2f s   peak RSS %6.1f MiB   written to storage %8.1f MiB   into stored files %8.1f MiB\n' \
        "$name" "$e" "$(echo "$u + $s" | bc)" "$(echo "$m / 1024" | bc -l)" \
        "$(echo "($wb - $cwb) / 1048576" | bc -l)" "$(echo "$said / 1048576" | bc -l)"
    grep -E '^(full|incremental) dump:' "$dir/out" | tail -n 1 | sed 's/^/                  /'
}

echo "strata: $strata"
refresh
measure full -R

echo "changing ~1% of the volume"
python3 - "$live" <<'EOF'
import os, sys
live = sys.argv[1]
changed = 0
for sub in ("big", "small"):
    files = sorted(os.path.join(dp, f) for dp, _, fs in os.walk(os.path.join(live, sub)) for f in fs)
    for p in files[:: 100]:
        size = os.path.getsize(p)
        with open(p, "wb") as f:
            f.write(os.urandom(size))
        changed += size
print("  %.1f MiB rewritten" % (changed / 1048576))
EOF
refresh
measure incremental -i -R

refresh
measure full-unchanged -R

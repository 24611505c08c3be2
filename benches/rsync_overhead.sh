#!/usr/bin/env bash
# Bench (not a test) of the rsync source's own cost (issue 4): one rsync
# unit through `strata rsync backup` against the bare rsync command on the
# same tree. The bare command is the exact argv strata ran, taken from the
# first line of strata's log, so the only difference is strata itself:
# config loading, streaming and counting rsync's itemized output, --stats
# parsing, the unit report. Target: overhead <= 5% wall.
#
# usage: benches/rsync_overhead.sh [SMALL-FILES] [BIG-MIB]   (default 20000 200)
# env:   STRATA_BENCH_DIR  work directory [target/bench-rsync]
#        STRATA_BIN        strata binary to time (skips building it)
#        BENCH_PROFILE     cargo profile [release]
#        BENCH_REPS        repetitions per case, median reported [5]
#        BENCH_SSH=1       go over a throwaway sshd on 127.0.0.1 (needs root
#                          and openssh-server) instead of `transport: local`
#        BENCH_CASES       which cases ["full incremental"]
#        BENCH_KEEP=1      keep the generated files
#
# Two cases, each timed with strata and bare, alternating, median of REPS,
# as wall time and as CPU time (user+sys of the local process tree, which
# a loaded machine disturbs far less than wall time):
#   full         into an empty unit directory (every file itemized)
#   incremental  nothing changed (the everyday run: a metadata walk)
set -euo pipefail

small=${1:-20000}
big_mib=${2:-200}
cd "$(dirname "$0")/.."
profile=${BENCH_PROFILE:-release}
case $profile in
    dev) profile_dir=debug ;;
    *) profile_dir=$profile ;;
esac
target=${CARGO_TARGET_DIR:-target}
dir=$(realpath -m "${STRATA_BENCH_DIR:-$target/bench-rsync}")
reps=${BENCH_REPS:-5}

if [[ ! -x /usr/bin/time ]]; then
    echo "rsync_overhead: /usr/bin/time (GNU time) is needed" >&2
    exit 2
fi
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
mkdir -p "$dir/src" "$dir/root" "$dir/home"

echo "generating $small small files and ${big_mib} MiB of large files in $dir/src"
(
    cd "$dir/src"
    for ((d = 0; d < (small + 99) / 100; d++)); do
        mkdir -p "many/$d"
        for ((f = 0; f < 100 && d * 100 + f < small; f++)); do
            printf 'file %d/%d\n' "$d" "$f" >"many/$d/$f"
        done
    done
    mkdir big
    for ((i = 0; i < big_mib / 50; i++)); do
        head -c $((50 << 20)) /dev/urandom >"big/$i"
    done
)

host_entry="  bench.local:
    mounts: ['$dir/src']
    transport: local"
if [[ -n ${BENCH_SSH:-} ]]; then
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
    host_entry="  127.0.0.1:
    alias: bench
    mounts: ['$dir/src']
    ssh-port: $port
    ssh-identity: '$dir/sshd/client'"
fi
cat >"$dir/config.yaml" <<EOF
settings:
  root: '$dir/root'
  snapshot-store: dir
rsync:
$host_entry
EOF

unit=$dir/root/rsync/bench
export dir strata argv
run_strata() {
    # why: --allow-root's variable, for a bench run as root (it changes nothing otherwise)
    HOME=$dir/home STRATA_ALLOW_ROOT=1 "$strata" -c "$dir/config.yaml" rsync backup bench \
        >"$dir/strata.out" 2>"$dir/strata.err"
}
# why: the first run both warms the page cache and records the argv
run_strata
argv=$(head -n 1 "$dir/strata.out")
export argv
run_bare() {
    eval "$argv" >"$dir/bare.out" 2>"$dir/bare.err"
}
echo "bare command: $argv"

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
pct() { echo "($1 - $2) * 100 / $2" | bc -l; }
time_case() { # case-name prepare-command
    local name=$1 prepare=$2 who
    for who in strata bare; do : >"$dir/wall.$who"; : >"$dir/cpu.$who"; done
    for ((r = 0; r < reps; r++)); do
        for who in strata bare; do
            $prepare
            /usr/bin/time -o "$dir/time" -f '%e %U %S' bash -c "$(declare -f "run_$who"); run_$who"
            read -r e u s <"$dir/time"
            echo "$e" >>"$dir/wall.$who"
            echo "$u + $s" | bc >>"$dir/cpu.$who"
        done
    done
    local sw bw sc bc_
    sw=$(median <"$dir/wall.strata")
    bw=$(median <"$dir/wall.bare")
    sc=$(median <"$dir/cpu.strata")
    bc_=$(median <"$dir/cpu.bare")
    printf '%-12s wall: strata %7.2f s  bare %7.2f s  %+6.2f%%   cpu (user+sys, local side): strata %6.2f s  bare %6.2f s  %+6.2f%%\n' \
        "$name" "$sw" "$bw" "$(pct "$sw" "$bw")" "$sc" "$bc_" "$(pct "$sc" "$bc_")"
}
empty_unit() { rm -rf "$unit"; mkdir -p "$unit"; }
nothing() { :; }

echo "strata: $strata; $reps repetitions each, median"
for c in ${BENCH_CASES:-full incremental}; do
    case $c in
        full) time_case full empty_unit ;;
        incremental) time_case incremental nothing ;;
        *) echo "rsync_overhead: unknown case $c" >&2; exit 2 ;;
    esac
done

#!/usr/bin/env bash
# stop-ceph.sh -- tear down a cluster started by start-ceph.sh (strata tests).
#
# Usage: stop-ceph.sh DIR [--keep]
#   Signals exactly the PIDs recorded in DIR/pids/*.pid, and only while
#   /proc/PID/cmdline still names DIR/ceph.conf (so a recycled PID is never
#   hit).  Never uses pkill/killall.  Then removes DIR (unless --keep; it
#   refuses to remove a directory without start-ceph.sh's marker file).
#   Safe to run twice.  Needs nothing beyond bash, coreutils, grep.
#
# Order matters: ceph-fuse mounts and the MDS (tests/support/cephfs/) go
# first, then radosgw, while the OSD and mon are still up.
# If radosgw gets SIGTERM after the OSD is gone it can hang in shutdown
# (observed on 16.2.15: it never exits, needing SIGKILL after the grace time).
#
# Env: CEPH_STOP_GRACE  seconds to wait after SIGTERM before SIGKILL (default 10)
#      CEPH_STOP_KILL=1 skip SIGTERM, SIGKILL everything at once (fastest; fine
#                       for a throwaway cluster)
set -uo pipefail

DIR="${1:?usage: $0 DIR [--keep]}"
KEEP="${2:-}"
GRACE="${CEPH_STOP_GRACE:-10}"
[[ -d "$DIR" ]] || { echo "stop-ceph: $DIR does not exist, nothing to do" >&2; exit 0; }
DIR="$(cd "$DIR" && pwd)"
[[ -f "$DIR/.throwaway-ceph-cluster" ]] || { echo "stop-ceph: $DIR has no .throwaway-ceph-cluster marker; refusing" >&2; exit 1; }

ours() { # pid -> true while it is one of our daemons (cmdline mentions our conf); zombies are "gone"
    local pid=$1
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    { tr '\0' ' ' < "/proc/$pid/cmdline"; } 2>/dev/null | grep -qF -- "$DIR/ceph.conf"
}
pid_of() { local f="$DIR/pids/$1.pid"; [[ -e "$f" ]] && cat "$f"; }

stop_group() { # names... : SIGTERM them, wait up to GRACE s, SIGKILL leftovers
    local name pid pids=() sig=TERM
    [[ "${CEPH_STOP_KILL:-0}" == 1 ]] && sig=KILL
    for name in "$@"; do
        pid=$(pid_of "$name") || continue
        ours "$pid" || continue
        kill -"$sig" "$pid" 2>/dev/null || true
        pids+=("$pid:$name")
    done
    ((${#pids[@]})) || return 0
    local deadline=$(( $(date +%s%N) / 1000000 + GRACE * 1000 )) left
    while :; do
        left=()
        for p in "${pids[@]}"; do ours "${p%%:*}" && left+=("$p"); done
        ((${#left[@]} == 0)) && return 0
        (( $(date +%s%N) / 1000000 < deadline )) || break
        sleep 0.05
    done
    for p in "${left[@]}"; do
        echo "stop-ceph: ${p#*:} (pid ${p%%:*}) still running ${GRACE}s after SIG$sig, sending SIGKILL" >&2
        kill -KILL "${p%%:*}" 2>/dev/null || true
    done
    for _ in $(seq 100); do
        left=()
        for p in "${pids[@]}"; do ours "${p%%:*}" && left+=("$p"); done
        ((${#left[@]} == 0)) && return 0
        sleep 0.05
    done
    echo "stop-ceph: WARNING: could not kill: ${left[*]}" >&2
    return 1
}

rc=0
# why: tests/support/cephfs/ adds ceph-fuse mounts and an MDS to this cluster.
# Clients go first, while the MDS can still close their sessions (a mount
# left behind a dead cluster hangs every stat); the MDS goes before the mon
# and OSD, without which its shutdown hangs.
for f in "$DIR"/mounts/*.mnt; do
    [[ -e "$f" ]] || continue
    "$(dirname "${BASH_SOURCE[0]}")/../cephfs/umount-cephfs.sh" "$DIR" "$(cat "$f")" || rc=1
done
stop_group mds.a        || rc=1
stop_group rgw.a        || rc=1
stop_group osd.0 mgr.x  || rc=1
stop_group mon.a        || rc=1

if [[ "$KEEP" == "--keep" ]]; then
    echo "stop-ceph: daemons stopped; kept $DIR" >&2
elif ((rc == 0)); then
    rm -rf -- "$DIR"
    echo "stop-ceph: daemons stopped; removed $DIR" >&2
else
    echo "stop-ceph: some daemons survived; NOT removing $DIR" >&2
fi
exit $rc

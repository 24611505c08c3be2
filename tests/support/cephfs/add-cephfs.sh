#!/usr/bin/env bash
# add-cephfs.sh -- add an MDS and a CephFS (snapshots allowed) to a running
# tests/support/ceph/start-ceph.sh cluster, for the cephfs store's tests
# (tests/it/support/cephfs.rs). Derived from the team's recipe
# (recipes/cephfs/start-cephfs.sh), but reusing the test Ceph that the rbd
# and rgw tests share instead of starting a second cluster.
#
# Usage:   add-cephfs.sh DIR     (DIR: the cluster dir given to start-ceph.sh)
#          stdout: `export CEPHFS_NAME=...` lines only
#          mount-cephfs.sh DIR MOUNTPOINT [SUBDIR]   (ceph-fuse)
#          umount-cephfs.sh DIR MOUNTPOINT
# Idempotent: a second call on a cluster whose MDS is up prints the same lines.
# stop-ceph.sh DIR unmounts the recorded mounts and stops the MDS first.
#
# Adds to DIR/ceph.conf an [mds] section (its own keyring: the base conf's
# global `keyring` has no mds key, and the MDS then dies with
# "handle_auth_bad_method") and a [client] section (posix ACLs for
# ceph-fuse), creates pools cephfs_metadata and cephfs_data (8 PGs each),
# `ceph fs new`, starts ceph-mds -f under setsid (PID in DIR/pids/mds.a.pid,
# which stop-ceph.sh signals) and waits for up:active.
#
# Needs ceph-mds and ceph-fuse (scripts/install-test-deps.sh --ceph).
# Measured: ~2-3 s on a 2-vCPU VM.
set -euo pipefail

DIR="${1:?usage: $0 DIR}"
FS="${CEPHFS_NAME:-cephfs}"
TMO="${CEPH_START_TIMEOUT:-120}"
exec 9>&2
log() { echo "[add-cephfs] $*" >&9; }
die() { log "ERROR: $*"; exit 1; }

[[ -d "$DIR" ]] || die "$DIR does not exist"
DIR="$(cd "$DIR" && pwd)"
CONF="$DIR/ceph.conf"
[[ -f "$DIR/.throwaway-ceph-cluster" && -f "$CONF" ]] || die "$DIR is not a start-ceph.sh cluster"
command -v ceph-mds >/dev/null || die "ceph-mds is not installed (scripts/install-test-deps.sh --ceph)"
command -v ceph-fuse >/dev/null || die "ceph-fuse is not installed (scripts/install-test-deps.sh --ceph)"
[[ -e /dev/fuse ]] || die "/dev/fuse is missing: ceph-fuse cannot mount"

C=(-c "$CONF")
ceph_() { timeout 60 ceph "${C[@]}" --connect-timeout 30 "$@"; }
ceph_quick() { timeout 10 ceph "${C[@]}" --connect-timeout 5 "$@"; }
ours() { # pid -> true while it is this cluster's ceph-mds
    local pid=$1
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    { tr '\0' ' ' < "/proc/$pid/cmdline"; } 2>/dev/null | grep -qF -- "$DIR/ceph.conf"
}
env_lines() {
    echo "export CEPHFS_NAME='$FS'"
    echo "export CEPHFS_MDS_PID='$(cat "$DIR/pids/mds.a.pid")'"
}

if [[ -e "$DIR/pids/mds.a.pid" ]] && ours "$(cat "$DIR/pids/mds.a.pid")"; then
    env_lines
    exit 0
fi

if ! grep -q '^\[mds\]' "$CONF"; then
    mkdir -p "$DIR/mds.a" "$DIR/mounts"
    cat >> "$CONF" <<CONF

# ---- appended by tests/support/cephfs/add-cephfs.sh
[mds]
mds data = $DIR/mds.\$id
keyring = $DIR/mds.\$id/keyring
mds cache memory limit = $((256 * 1024 * 1024))

[client]
# without this ceph-fuse answers setfacl with EOPNOTSUPP
client acl type = posix_acl
client mount timeout = 30
CONF
fi

ceph_ auth get-or-create mds.a mon 'allow profile mds' osd 'allow rwx' mds 'allow *' \
    -o "$DIR/mds.a/keyring" 2>/dev/null
chmod 600 "$DIR/mds.a/keyring"
if ! ceph_ fs get "$FS" >/dev/null 2>&1; then
    ceph_ osd pool create cephfs_metadata 8 8 >/dev/null 2>&1
    ceph_ osd pool create cephfs_data 8 8 >/dev/null 2>&1
    ceph_ fs new "$FS" cephfs_metadata cephfs_data >/dev/null 2>&1
fi
# why: `ceph fs get` prints the flags in hex; the JSON has them in decimal. Bit 1 = snapshots allowed.
flags=$(ceph_ fs get "$FS" --format=json 2>/dev/null | grep -o '"flags": *[0-9]*' | head -n1 | grep -o '[0-9]*$')
[[ -n "$flags" ]] || die "could not read the flags of fs $FS"
if ! (( flags & 2 )); then
    ceph_ fs set "$FS" allow_new_snaps true --yes-i-really-mean-it >/dev/null 2>&1 ||
        ceph_ fs set "$FS" allow_new_snaps true >/dev/null 2>&1
fi

# why: 9>&- so the daemon does not hold our stderr (fd 9) open: a caller reading it to EOF would wait forever
setsid ceph-mds "${C[@]}" -i a -f < /dev/null > "$DIR/log/mds.a.stdout" 2>&1 9>&- &
MDS_PID=$!
echo "$MDS_PID" > "$DIR/pids/mds.a.pid"
end=$(( $(date +%s) + TMO ))
until ceph_quick fs get "$FS" --format=json 2>/dev/null | grep -q '"state": *"up:active"'; do
    kill -0 "$MDS_PID" 2>/dev/null || { tail -n 20 "$DIR/log/mds.a.log" >&9 2>/dev/null; die "ceph-mds died (see $DIR/log/mds.a.log)"; }
    (( $(date +%s) < end )) || die "timed out waiting for mds.a up:active"
    sleep 0.2
done
log "mds.a (pid $MDS_PID) up:active; fs $FS"
env_lines

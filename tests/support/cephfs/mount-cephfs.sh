#!/usr/bin/env bash
# mount-cephfs.sh -- mount the CephFS that add-cephfs.sh added to a test Ceph, with ceph-fuse
# (from the team's recipe, recipes/cephfs/).
#
# Usage: mount-cephfs.sh DIR MOUNTPOINT [SUBDIR]
#   DIR         the cluster directory given to start-ceph.sh (add-cephfs.sh run on it)
#   MOUNTPOINT  created if missing (and then removed again by umount-cephfs.sh);
#               must be empty and not already a mount point
#   SUBDIR      path inside the fs to mount as the root (ceph-fuse -r); must exist
#
# Environment:
#   CEPHFS_CLIENT_ID      cephx user without "client." (default: admin)
#   CEPHFS_KEYRING        keyring file holding that user's key (default: the
#                         keyring named in DIR/ceph.conf, which has client.admin)
#   CEPHFS_MOUNT_TIMEOUT  seconds to wait for the mount (default 30)
#   CEPHFS_FUSE_ARGS      extra ceph-fuse arguments (word-split), e.g.
#                         "--client_oc_size=67108864"
#
# The kernel CephFS client is not used (no ceph.ko here); ceph-fuse is a
# userspace client (libfuse2).  It runs with -f under setsid; its PID, the
# mount point, its admin socket and log are recorded in DIR/mounts/NAME.*
# (NAME derived from the mount point) so umount-cephfs.sh / stop-cephfs.sh
# signal exactly that process.
# Stdout: `export CEPHFS_MOUNT_PID=...` and `export CEPHFS_MOUNT_ASOK=...` lines.
#
# Pitfalls handled:
#  * Every ceph-fuse gets its own --admin-socket and --log-file: the base conf's
#    `admin socket = DIR/run/$cluster-$name.asok` would give every client.admin
#    process the same socket ("bind_and_listen: ... (17) File exists" on every
#    later `ceph` CLI call, and the second mount has no socket at all).
#  * --client_acl_type=posix_acl (else setfacl -> EOPNOTSUPP), and
#    --client_mount_timeout so a dead cluster fails the mount instead of hanging.
#  * libfuse2 refuses a non-empty mount point; we check first and say so.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DIR="${1:?usage: $0 DIR MOUNTPOINT [SUBDIR]}"
MNT="${2:?usage: $0 DIR MOUNTPOINT [SUBDIR]}"
SUBDIR="${3:-}"
ID="${CEPHFS_CLIENT_ID:-admin}"
KEYRING="${CEPHFS_KEYRING:-}"
TMO="${CEPHFS_MOUNT_TIMEOUT:-30}"

exec 9>&2   # a trap may run while a `... 2>/dev/null` is in effect: log to fd 9
log() { echo "[mount-cephfs] $*" >&9; }
die() { log "ERROR: $*"; exit 1; }

[[ -d "$DIR" ]] || die "$DIR does not exist"
DIR="$(cd "$DIR" && pwd)"
CONF="$DIR/ceph.conf"
[[ -f "$DIR/.throwaway-ceph-cluster" && -f "$CONF" ]] || die "$DIR is not a start-ceph.sh cluster"
[[ -e /dev/fuse ]] || die "/dev/fuse is missing"
command -v ceph-fuse >/dev/null || die "ceph-fuse is not installed (apt-get install -y --no-install-recommends ceph-fuse)"
[[ -z "$KEYRING" || -r "$KEYRING" ]] || die "keyring $KEYRING not readable"

CREATED=0
if [[ ! -e "$MNT" ]]; then mkdir -p "$MNT"; CREATED=1; fi
[[ -d "$MNT" ]] || die "$MNT is not a directory"
MNT="$(cd "$MNT" && pwd -P)"
if findmnt -rn -M "$MNT" >/dev/null 2>&1; then die "$MNT is already a mount point"; fi
[[ -z "$(ls -A "$MNT")" ]] || die "$MNT is not empty (libfuse2 refuses to mount over a non-empty directory)"

mkdir -p "$DIR/mounts"
NAME="m$(printf '%s' "$MNT" | tr -c 'A-Za-z0-9._-' '_')"
REC="$DIR/mounts/$NAME"
[[ ! -e "$REC.pid" ]] || die "a mount record for $MNT already exists ($REC.pid); run umount-cephfs.sh first"

args=(-c "$CONF" --id "$ID")
[[ -n "$KEYRING" ]] && args+=(-k "$KEYRING")
[[ -n "$SUBDIR" ]] && args+=(-r "$SUBDIR")
args+=(--admin-socket "$REC.asok" --log-file "$DIR/log/ceph-fuse.$NAME.log"
       --client_acl_type=posix_acl --client_mount_timeout="$TMO")
# shellcheck disable=SC2206
[[ -n "${CEPHFS_FUSE_ARGS:-}" ]] && args+=(${CEPHFS_FUSE_ARGS})

printf '%s\n' "$MNT" > "$REC.mnt"
echo "$CREATED" > "$REC.created"
# why: 9>&- so ceph-fuse does not hold our stderr (fd 9) open: a caller reading it to EOF would wait forever
setsid ceph-fuse "${args[@]}" -f "$MNT" < /dev/null > "$REC.stdout" 2>&1 9>&- &
PID=$!
echo "$PID" > "$REC.pid"

fail() {
    exec 2>&9
    log "ERROR: $*"
    tail -n 20 "$REC.stdout" >&2 2>/dev/null || true
    tail -n 20 "$DIR/log/ceph-fuse.$NAME.log" >&2 2>/dev/null || true
    "$HERE/umount-cephfs.sh" "$DIR" "$MNT" >&2 || true
    exit 1
}
trap 'fail "interrupted"' TERM INT

end=$(( $(date +%s) + TMO + 5 ))
until [[ "$(findmnt -rn -o FSTYPE -M "$MNT" 2>/dev/null)" == fuse.ceph-fuse ]] && timeout 10 stat -f "$MNT" >/dev/null 2>&1; do
    kill -0 "$PID" 2>/dev/null || fail "ceph-fuse (pid $PID) exited before the mount was ready"
    (( $(date +%s) < end )) || fail "timed out after ${TMO}s waiting for $MNT"
    sleep 0.1
done
log "mounted ${SUBDIR:-/} on $MNT as client.$ID (ceph-fuse pid $PID)"
echo "export CEPHFS_MOUNT_PID='$PID'"
echo "export CEPHFS_MOUNT_ASOK='$REC.asok'"

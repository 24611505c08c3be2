#!/usr/bin/env bash
# umount-cephfs.sh -- undo one mount-cephfs.sh mount (from the team's recipe, recipes/cephfs/;
# stop-ceph.sh runs it for every mount still recorded in DIR/mounts).
#
# Usage: umount-cephfs.sh DIR MOUNTPOINT
#   1. unmounts MOUNTPOINT (fusermount -u / fusermount3 -u if installed, else
#      umount; retried while EBUSY; `umount -l` only as the last resort);
#   2. waits for the recorded ceph-fuse PID to exit by itself (it does, after
#      flushing dirty data and closing its MDS session), then SIGTERM, then SIGKILL
#      -- but only while /proc/PID/cmdline is ceph-fuse with DIR/ceph.conf;
#   3. removes the mount point if mount-cephfs.sh created it (and it is empty),
#      and the DIR/mounts/NAME.* records.
# Exit 0 when the mount is gone and the process has exited.  Safe to run twice.
# Env: CEPHFS_UMOUNT_GRACE  seconds to wait for ceph-fuse to exit (default 15)
set -uo pipefail

DIR="${1:?usage: $0 DIR MOUNTPOINT}"
MNT="${2:?usage: $0 DIR MOUNTPOINT}"
GRACE="${CEPHFS_UMOUNT_GRACE:-15}"
log() { echo "[umount-cephfs] $*" >&2; }

[[ -d "$DIR" ]] || { log "$DIR does not exist"; exit 0; }
DIR="$(cd "$DIR" && pwd)"
# Resolve MNT without touching a possibly dead FUSE mount (stat on it gives ENOTCONN).
case "$MNT" in /*) ;; *) MNT="$PWD/$MNT" ;; esac
MNT="$(realpath -m -s "$MNT")"
NAME="m$(printf '%s' "$MNT" | tr -c 'A-Za-z0-9._-' '_')"
REC="$DIR/mounts/$NAME"
if [[ ! -e "$REC.mnt" ]]; then
    # maybe MNT was given through a symlink: look the record up by content
    for f in "$DIR"/mounts/*.mnt; do
        [[ -e "$f" ]] || continue
        [[ "$(realpath -m "$(cat "$f")")" == "$(realpath -m "$MNT")" ]] && { REC="${f%.mnt}"; MNT="$(cat "$f")"; break; }
    done
fi
[[ -e "$REC.mnt" ]] || { log "no record of a mount on $MNT in $DIR/mounts"; exit 1; }

mounted() { [[ "$(findmnt -rn -o FSTYPE -M "$MNT" 2>/dev/null)" == fuse.ceph-fuse ]]; }
ours() { # pid -> true while it is our ceph-fuse (cmdline names ceph-fuse and our conf)
    local pid=$1 cmd
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    cmd=$( { tr '\0' ' ' < "/proc/$pid/cmdline"; } 2>/dev/null ) || return 1
    [[ "$cmd" == *ceph-fuse* && "$cmd" == *"$DIR/ceph.conf"* ]] || return 1
    # a zombie counts as gone
    [[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]]
}

rc=0
if mounted; then
    unmount_cmd=(umount "$MNT")
    if command -v fusermount >/dev/null; then unmount_cmd=(fusermount -u "$MNT")
    elif command -v fusermount3 >/dev/null; then unmount_cmd=(fusermount3 -u "$MNT"); fi
    for i in $(seq 20); do
        timeout 30 "${unmount_cmd[@]}" 2>"$REC.umount.err" && break
        mounted || break
        ((i == 1)) && log "unmount $MNT: $(cat "$REC.umount.err") -- retrying"
        sleep 0.5
    done
    if mounted; then
        log "WARNING: $MNT still busy after 10 s; lazy unmount (umount -l)"
        timeout 30 umount -l "$MNT" || true
    fi
    if mounted; then log "ERROR: could not unmount $MNT"; rc=1; fi
fi

PID=$(cat "$REC.pid" 2>/dev/null || true)
if ours "$PID"; then
    deadline=$(( $(date +%s) + GRACE ))
    while ours "$PID" && (( $(date +%s) < deadline )); do sleep 0.1; done
    if ours "$PID"; then
        log "ceph-fuse pid $PID still running ${GRACE}s after unmount: SIGTERM"
        kill -TERM "$PID" 2>/dev/null || true
        for _ in $(seq 50); do ours "$PID" || break; sleep 0.1; done
    fi
    if ours "$PID"; then
        log "ceph-fuse pid $PID ignores SIGTERM: SIGKILL"
        kill -KILL "$PID" 2>/dev/null || true
        for _ in $(seq 50); do ours "$PID" || break; sleep 0.1; done
    fi
    if ours "$PID"; then log "ERROR: could not stop ceph-fuse pid $PID"; rc=1; fi
    # killing the process of a still-mounted fs leaves "Transport endpoint is not connected"
    if mounted; then timeout 30 umount "$MNT" 2>/dev/null || timeout 30 umount -l "$MNT" 2>/dev/null || true; fi
    if mounted; then rc=1; fi
fi

if ((rc == 0)); then
    [[ "$(cat "$REC.created" 2>/dev/null)" == 1 ]] && rmdir "$MNT" 2>/dev/null
    rm -f "$REC".{pid,mnt,created,stdout,umount.err,asok}
    log "unmounted $MNT (ceph-fuse pid ${PID:-?} gone)"
fi
exit $rc

#!/usr/bin/env bash
# lvm-thin-cycle.sh DEB -- strata's LVM thin check, end to end, in one VM boot.
#
# On the host (root): boots the QEMU guest of run-in-lvm-vm.sh once. In the guest (a
# throw-away overlay of the host root, so nothing it installs survives):
#   dpkg -i DEB with an empty dpkg database (strata, strata-snapshot, the sudoers rule for user `backup`, units);
#   a thin pool and a thin LV with ext4 (user_xattr) mounted as the backup root;
#   /etc/strata/snapshot.yaml for the helper; then as the unprivileged user `backup`:
#   strata run (a dump unit) twice, ls, mount (content checked, ro/nosuid/nodev/noexec),
#   prune --as-of (keeps the mounted snapshot and says so), umount, prune --as-of
#   (removes by policy), df -c quiet, then df -c firing once the pool is filled past
#   df-warning; refusals through sudo (bad name, another command, env override).
# Prints one "CHECK ok: ..." line per check and PASS; exit 0 on PASS.
# Env: STRATA_VM_SCRATCH (scratch dir, default a new /tmp dir, removed unless STRATA_VM_KEEP=1),
#      LVMVM_* (see run-in-lvm-vm.sh).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
DEB=${1:?usage: lvm-thin-cycle.sh DEB}
DEB=$(cd "$(dirname "$DEB")" && pwd)/$(basename "$DEB")
SCRATCH=${STRATA_VM_SCRATCH:-$(mktemp -d /tmp/strata-vm.XXXXXX)}
[[ ${STRATA_VM_KEEP:-0} == 1 || -n ${STRATA_VM_SCRATCH:-} ]] || trap 'rm -rf "$SCRATCH"' EXIT

cat > "$SCRATCH/guest.sh" <<'GUEST'
#!/bin/bash
# runs inside the guest, as root
set -euo pipefail
DEB=$1
t() { echo "[guest +$(cut -d' ' -f1 /proc/uptime)s] $*"; }
ok() { echo "CHECK ok: $*"; }
fail() { echo "FAIL: $*"; exit 1; }
as_backup() {
  setpriv --reuid=backup --regid=backup --init-groups \
    env -i HOME=/run/strata-home PATH=/usr/local/bin:/usr/bin:/bin LC_ALL=C "$@"
}
S() { as_backup strata -c /run/strata-home/config.yaml "$@"; }

# why: sudo resolves the host name and would print a warning into every helper error
echo "127.0.1.1 $(hostname)" >> /etc/hosts
t "installing $DEB"
# why: an empty dpkg database: loading the host's (thousands of file lists over 9p under
# emulation) takes minutes; the files still land in / and the guest is discarded after
mkdir -p /run/dpkg-admin/updates /run/dpkg-admin/info
: > /run/dpkg-admin/status
DEBIAN_FRONTEND=noninteractive dpkg --admindir=/run/dpkg-admin --force-depends -i "$DEB" > /dev/null
[[ $(stat -c '%U:%G %a' /usr/sbin/strata-snapshot) == "root:root 755" ]] || fail "helper owner/mode"
[[ $(stat -c '%U:%G %a' /etc/sudoers.d/strata) == "root:root 440" ]] || fail "sudoers owner/mode"
visudo -c -q || fail "visudo -c after install"
# why: capture first; `cmd | grep -q` under pipefail fails when grep exits early and cmd gets SIGPIPE
help_out=$(strata --help); grep -q '^Usage: strata' <<< "$help_out" || fail "strata --help"
ok "package installed by dpkg -i; strata --help works; helper root 0755, sudoers 0440"

t "thin pool"
truncate -s 2G /run/pv.img
PV=$(losetup -f --show /run/pv.img)
pvcreate -qy "$PV" > /dev/null
vgcreate -q stratavg "$PV" > /dev/null
lvcreate -q -L 256M -T stratavg/pool > /dev/null 2>&1
lvcreate -q -V 1G -T stratavg/pool -n backup > /dev/null 2>&1
# why: small journal and inode tables written now, so ext4's lazy init does not fill the pool later
mkfs.ext4 -q -J size=4 -N 16384 -E lazy_itable_init=0,lazy_journal_init=0 /dev/stratavg/backup
mkdir -p /srv/backup
mount -o user_xattr /dev/stratavg/backup /srv/backup
chown backup:backup /srv/backup
ok "thin LV with ext4 (user_xattr) mounted at /srv/backup"

mkdir -p /etc/strata
printf 'store: lvm-thin\nroot: /srv/backup\nbackup-lv: stratavg/backup\nfstype: ext4\n' > /etc/strata/snapshot.yaml
chmod 0644 /etc/strata/snapshot.yaml
install -d -o backup -g backup /run/strata-home /run/strata-src
echo v1 > /run/strata-src/greeting.txt
cat > /run/strata-home/config.yaml <<'CONF'
settings:
  root: /srv/backup
  backup-lv: stratavg/backup
  df-warning: 25
dump:
  greeting:
    command: [cat, /run/strata-src/greeting.txt]
    file: greeting.txt
CONF
chown backup:backup /run/strata-home/config.yaml

t "strata run (1)"
out=$(S run) || fail "run 1: $out"
first=$(sed -n 's/^snapshot \(.*\) taken$/\1/p' <<< "$out")
[[ -n $first ]] || fail "no snapshot line: $out"
echo v2 > /run/strata-src/greeting.txt
t "strata run (2)"
out=$(S run) || fail "run 2: $out"
second=$(sed -n 's/^snapshot \(.*\) taken$/\1/p' <<< "$out")
[[ -n $second && $second != "$first" ]] || fail "second snapshot: $out"
ok "two runs as user backup took snapshots $first and $second"

listed=$(S ls)
[[ $listed == "$first"$'\n'"$second" ]] || fail "ls: $listed"
tags=$(lvs --noheadings -o lv_name,lv_tags,origin,lv_attr stratavg | awk '$2=="backup-snapshot" && $3=="backup" {print $1}' | sort | tr '\n' ' ')
[[ $tags == *"$first"* && $tags == *"$second"* ]] || fail "lvs tags: $tags"
ok "ls lists both; lvs shows them tagged backup-snapshot with origin backup"

t "mount"
mp=$(S mount "$first") || fail "mount: $mp"
[[ $mp == /srv/backup/Snapshots/$first ]] || fail "mount point $mp"
[[ $(cat "$mp/dump/greeting/greeting.txt") == v1 ]] || fail "snapshot content"
[[ $(cat /srv/backup/dump/greeting/greeting.txt) == v2 ]] || fail "origin content"
opts=$(findmnt -n -o OPTIONS "$mp")
for o in ro nosuid nodev noexec; do [[ ,$opts, == *,$o,* ]] || fail "mount options $opts lack $o"; done
if as_backup touch "$mp/x" 2> /dev/null; then fail "snapshot writable"; fi
[[ $(stat -c %U:%a /srv/backup/Snapshots) == root:755 ]] || fail "Snapshots dir not root 0755"
ls_out=$(S ls); grep -q "^$first  (mounted at $mp)$" <<< "$ls_out" || fail "ls does not show mounted: $ls_out"
ok "mount $first: content of its time, mounted ro,nosuid,nodev,noexec at $mp"

later=$(date -d '+400 days' +%F)
out=$(S prune --as-of "$later") || fail "prune 1: $out"
grep -q "kept $first" <<< "$out" || fail "prune did not say it kept the mounted one: $out"
lvs stratavg/"$first" > /dev/null 2>&1 || fail "mounted snapshot was removed"
ok "prune --as-of $later keeps the mounted $first and says so"

S umount "$first" || fail "umount"
findmnt "$mp" > /dev/null && fail "still mounted"
[[ -e $mp ]] && fail "mount point left behind"
[[ $(lvs --noheadings -o lv_active stratavg/"$first" | tr -d ' ') != active ]] || fail "LV still active"
out=$(S -v prune --as-of "$later") || fail "prune 2: $out"
grep -q "removed $first" <<< "$out" || fail "prune 2: $out"
[[ $(S ls) == "$second" ]] || fail "ls after prune: $(S ls)"
lvs stratavg/"$first" > /dev/null 2>&1 && fail "LV $first still exists"
ok "umount deactivates; prune --as-of removes $first by policy"

out=$(S df -c) || fail "df -c fired too early: $out"
[[ -z $out ]] || fail "df -c printed: $out"
t "filling the pool"
as_backup dd if=/dev/urandom of=/srv/backup/fill bs=1M count=200 status=none
sync
set +e; out=$(S df -c); rc=$?; set -e
[[ $rc == 1 ]] || fail "df -c exit $rc after fill: $out"
grep -q 'Free LVM data space' <<< "$out" || fail "df -c: $out"
lvs stratavg/pool
ok "df -c quiet at first, exit 1 with 'Free LVM data space' once the pool passes df-warning"

set +e
out=$(as_backup sudo -n /usr/sbin/strata-snapshot mount ../x 2>&1); rc=$?
[[ $rc == 2 && $out == *"invalid snapshot name"* ]] || fail "helper via sudo, bad name: $rc $out"
out=$(as_backup sudo -n /bin/sh -c id 2>&1); rc=$?
[[ $rc != 0 ]] || fail "sudo allowed /bin/sh"
out=$(as_backup sudo -n STRATA_SNAPSHOT_CONFIG=/run/strata-home/config.yaml /usr/sbin/strata-snapshot list 2>&1); rc=$?
[[ $rc != 0 ]] || fail "sudo passed an environment override: $out"
set -e
ok "through sudo: bad name refused (exit 2), other commands and env overrides denied"

umount /srv/backup
echo PASS
GUEST
chmod +x "$SCRATCH/guest.sh"
T0=$(date +%s)
LVMVM_TIMING=1 "$HERE/run-in-lvm-vm.sh" -s "$SCRATCH" -t "${STRATA_VM_TIMEOUT:-900}" -- "$SCRATCH/guest.sh" "$DEB"
rc=$?
echo "lvm-thin-cycle: guest exit $rc, wall time $(( $(date +%s) - T0 ))s"
exit $rc

#!/usr/bin/env bash
# The quick start: the whole job of strata, end to end, with no root, no LVM
# and no network. It builds strata, then, on quickstart/config.yaml:
#   1. backs up a demo host (rsync, transport: local) and three dump units,
#      and takes a snapshot;
#   2. changes the demo host, backs up again (only what changed is written)
#      and takes a second snapshot;
#   3. lists the snapshots, archives the newest one offsite (a local
#      directory) and drills a restore of a random unit from the archive;
#   4. restores a file from the older snapshot.
# Run it again: it goes on from where it stopped (more snapshots).
set -euo pipefail
cd "$(dirname "$0")/.."
# why: STRATA_BIN lets the test suite run this script with the binary it built
if [ -z "${STRATA_BIN:-}" ]; then
    cargo build --quiet --bin strata
    STRATA_BIN=${CARGO_TARGET_DIR:-target}/debug/strata
fi
q=quickstart
strata=("$STRATA_BIN" -c "$q/config.yaml")
# why: strata refuses to write a backup root as root (files root creates there
# break the backup user's later runs); this demo root is a scratch directory of
# the repository, so allow it when the person trying it out is root.
if [ "$(id -u)" = 0 ]; then strata+=(--allow-root); fi
only=()
if ! command -v rsync >/dev/null; then
    echo "(rsync is not installed: the demo host is left out; apt install rsync to see it)"
    only=(--only 'dump/*')
fi
say() { printf '\n== %s\n' "$*"; }

# The demo host: a few files, made once.
demo=$q/demo-tree
if [ ! -d "$demo" ]; then
    mkdir -p "$demo/etc" "$demo/photos"
    printf 'first line\n' > "$demo/notes.txt"
    printf 'listen 8080\n' > "$demo/etc/app.conf"
    chmod 600 "$demo/etc/app.conf"
    head -c 300000 /dev/urandom > "$demo/photos/cat.raw"
    ln -sf ../notes.txt "$demo/etc/notes-link"
fi

say "1. back up everything, then snapshot"
"${strata[@]}" run "${only[@]}"

say "2. the demo host changes; back up again (unchanged files and blocks are not rewritten)"
printf 'a line added at %s\n' "$(date +%T)" >> "$demo/notes.txt"
printf 'new %s\n' "$(date +%T)" > "$demo/new-file.txt"
rm -f "$demo/photos/old.raw"
"${strata[@]}" run "${only[@]}"

say "3. snapshots, an offsite archive of the newest, and a restore drill"
"${strata[@]}" ls
mapfile -t snaps < <("${strata[@]}" ls | awk '{print $1}')
older=${snaps[${#snaps[@]}-2]}
newest=${snaps[${#snaps[@]}-1]}
"${strata[@]}" archive run
"${strata[@]}" archive ls
"${strata[@]}" archive drill

say "4. a file restored from the older snapshot ($older)"
rm -rf "$q/restored"
mkdir -p "$q/restored"
"${strata[@]}" mount "$older" >/dev/null
"${strata[@]}" dump restore --from "$q/backup-root/Snapshots/$older" manifest "$q/restored/"
if [ ${#only[@]} -eq 0 ]; then
    cp "$q/backup-root/Snapshots/$older/rsync/demo-host/demo-tree/notes.txt" "$q/restored/notes.txt"
    echo "notes.txt as it was in $older (the demo host has $(wc -l < "$demo/notes.txt") lines now):"
    sed 's/^/    /' "$q/restored/notes.txt"
fi
"${strata[@]}" umount "$older"

say "status"
"${strata[@]}" status

cat <<MSG

Where things are:
  backup root     $q/backup-root/   (units: rsync/demo-host, dump/*; logs in Logs/)
  snapshots       $q/backup-root/.snapshots/   ($newest is the newest)
  offsite archive $q/offsite/$newest/
  restored files  $q/restored/
Next, try:
  ${strata[*]} status --json
  ${strata[*]} mount $older        # browse it under $q/backup-root/Snapshots/
  ${strata[*]} archive retrieve $newest /tmp/r dump/manifest
  ${strata[*]} prune -n --as-of 2027-06-01
  ${strata[*]} config show
MSG

#!/usr/bin/env bash
# Bench (not a test) of archive packing (DESIGN §9, issue 5): a mixed unit
# (many small files, a few large incompressible and compressible files, a
# sparse file) packed with lz4 + gpg sign+encrypt by `strata archive unit`
# (local archiver: pack to the spool, then copy into the store), against the
# shell pipeline `tar --sparse --xattrs --acls -c | lz4 | gpg -se` on the same
# tree, with one worker (the units one after the other) and two (both units
# at once). The data is split in two units of half the size each.
# The floor: `gpg -se` alone over the same compressed streams (tar | lz4 made
# beforehand, not timed), one unit after the other, with the gpg options
# strata passes (AES256, SHA-256 signatures; plain `gpg -se`, the shell
# pipeline's, signs these keys with SHA-512, about a third more CPU): what
# one worker cannot beat while gpg does the crypto.
#
# usage: benches/archive_pack.sh [TOTAL-MIB]      (default 2048)
# env:   STRATA_BENCH_DIR  work directory [target/bench-archive]; needs ~3x TOTAL
#        STRATA_BIN        strata binary to time (skips building it)
#        BENCH_PROFILE     cargo profile [release]
#        BENCH_KEEP=1      keep the generated files
#        RUNS              runs of each measurement [1]; min/median/max printed
#        BENCH_RESULTS     append result lines for benches/compare.sh
#
# Prints wall seconds, MiB/s and peak RSS (max over the process tree, from
# /usr/bin/time -v) for each run, and strata/shell ratios.
set -euo pipefail

total=${1:-2048}
cd "$(dirname "$0")/.."
profile=${BENCH_PROFILE:-release}
case $profile in dev) profile_dir=debug ;; *) profile_dir=$profile ;; esac
target=${CARGO_TARGET_DIR:-target}
dir=$(realpath -m "${STRATA_BENCH_DIR:-$target/bench-archive}")
if [ -z "${STRATA_BIN:-}" ]; then
    cargo build --profile "$profile" --bin strata >&2
    STRATA_BIN=$target/$profile_dir/strata
fi
STRATA_BIN=$(realpath "$STRATA_BIN")
rm -rf "$dir"; mkdir -p "$dir"/{root/dump,spool,store,out,gnupg}
chmod 700 "$dir/gnupg"
export GNUPGHOME=$dir/gnupg
gpg --batch --passphrase '' --quick-gen-key "Bench signer <s@bench>" ed25519 sign never 2>/dev/null
gpg --batch --passphrase '' --quick-gen-key "Bench archive <a@bench>" future-default default never 2>/dev/null
fpr() { gpg --with-colons --list-keys "$1" | awk -F: '/^fpr/{print $10; exit}'; }
signer=$(fpr s@bench); recipient=$(fpr a@bench)

# The mixed units: per unit, 40% small files (4-64 KiB), 30% incompressible,
# 30% compressible (text-like), and one sparse file.
half=$(( total / 2 ))
for u in u1 u2; do
    d=$dir/root/dump/$u
    mkdir -p "$d/small"
    small_mib=$(( half * 4 / 10 ))
    n=0; bytes=0
    while [ $bytes -lt $(( small_mib << 20 )) ]; do
        sz=$(( (RANDOM % 61 + 4) << 10 ))
        mkdir -p "$d/small/$(( n / 500 ))"
        head -c $sz /dev/urandom > "$d/small/$(( n / 500 ))/f$n" 2>/dev/null || true
        # why: half the small files compress well, like configs and logs
        if [ $(( n % 2 )) -eq 0 ]; then { base64 "$d/small/$(( n / 500 ))/f$n" | head -c $sz > "$d/small/$(( n / 500 ))/f$n.txt" || true; }; bytes=$(( bytes + sz )); fi
        n=$(( n + 1 )); bytes=$(( bytes + sz ))
    done
    head -c $(( half * 3 / 10 ))M /dev/urandom > "$d/random.bin"
    { head -c $(( half * 3 / 40 ))M /dev/urandom | base64 -w 100 > "$d/text.log"; } || true
    truncate -s 4G "$d/sparse.img"; echo data | dd of="$d/sparse.img" bs=1 seek=1G conv=notrunc 2>/dev/null
done
sync
echo "units: $(du -sh --apparent-size "$dir/root/dump" | cut -f1) apparent, $(find "$dir/root/dump" -type f | wc -l) files" >&2

cat > "$dir/config.yaml" <<YAML
settings:
  root: $dir/root
  snapshot-store: dir
  archive-spool: $dir/spool
  archive-gpg-signing-key: $signer
  archive-gpg-recipients:
    - $recipient
  archivers:
    default:
      archiver: local
      local-path: $dir/store
      compression: lz4
YAML

runs=${RUNS:-1}
measure() { # label, row, side, command...
    local label=$1 row=$2 side=$3; shift 3
    local t0 t1 rss load
    load=$(cut -d' ' -f1 /proc/loadavg)
    t0=$(date +%s.%N)
    /usr/bin/time -v -o "$dir/time.txt" "$@" >/dev/null
    t1=$(date +%s.%N)
    rss=$(awk -F': ' '/Maximum resident/{print $2}' "$dir/time.txt")
    local secs; secs=$(echo "$t1 - $t0" | bc -l)
    printf '%-22s %7.2f s  %7.1f MiB/s  peak RSS %6d KiB  load %s\n' "$label" "$secs" "$(echo "$total / $secs" | bc -l)" "$rss" "$load"
    echo "$secs" >> "$dir/$row.$side.vals"
    if [ -n "${BENCH_RESULTS:-}" ]; then echo "$row $side $secs $rss $load" >> "$BENCH_RESULTS"; fi
}

strata_one() { for u in u1 u2; do "$STRATA_BIN" -c "$dir/config.yaml" --allow-root archive unit 20000101-1 "$dir/root" "dump/$u"; done; }
strata_two() { for u in u1 u2; do "$STRATA_BIN" -c "$dir/config.yaml" --allow-root archive unit 20000101-1 "$dir/root" "dump/$u" & done; wait; }
gpg_se() { gpg --batch --no-tty --compress-algo none --trust-model always -se -u "$signer" -r "$recipient"; }
shell_unit() { tar -c --format=gnu --sparse --xattrs --acls -C "$dir/root" "dump/$1" | lz4 -q -c | gpg_se > "$dir/out/$1.tar.lz4.gpg"; }
shell_one() { shell_unit u1; shell_unit u2; }
shell_two() { shell_unit u1 & shell_unit u2 & wait; }
# why: the floor is gpg doing what it does inside strata: strata asks for
# AES256 and SHA-256 signatures, where plain `gpg -se` signs these keys with SHA-512
gpg_strata() { gpg --batch --no-tty --compress-algo none --trust-model always --personal-cipher-preferences AES256 \
    --personal-digest-preferences SHA256 -se -u "$signer" -r "$recipient"; }
gpg_one() { for u in u1 u2; do gpg_strata < "$dir/lz4/$u.tar.lz4" > "$dir/out/$u.gpg-only"; done; }
export -f strata_one strata_two gpg_se gpg_strata shell_unit shell_one shell_two gpg_one
export STRATA_BIN dir signer recipient

# The compressed streams gpg alone is timed on.
mkdir -p "$dir/lz4"
for u in u1 u2; do tar -c --format=gnu --sparse --xattrs --acls -C "$dir/root" "dump/$u" | lz4 -q -c > "$dir/lz4/$u.tar.lz4"; done

rm -f "$dir"/*.vals
for ((r = 1; r <= runs; r++)); do
    for w in one two; do
        rm -rf "$dir/store"/* "$dir/out"/*; sync
        measure "strata, $w worker(s)" "pack-$w" strata bash -c "strata_$w"
        sync
        measure "shell, $w worker(s)" "pack-$w" reference bash -c "shell_$w"
    done
    # For comparison only: the shell's archives made as durable as strata's.
    rm -rf "$dir/out"/*; sync
    measure "shell, two, then synced" pack-two-synced reference bash -c 'shell_two; sync --data "$dir"/out/*'
    if [ -n "${BENCH_RESULTS:-}" ]; then
        awk '$1 == "pack-two" && $2 == "strata" { l = $0 } END { if (l != "") { sub(/^pack-two /, "pack-two-synced ", l); print l } }' \
            "$BENCH_RESULTS" >> "$BENCH_RESULTS"
    fi
    rm -f "$dir/out"/*; sync
    measure "gpg alone, one worker" pack-one floor bash -c gpg_one
done
med() { sort -g "$1" | awk '{ v[NR] = $1 } END { printf "%s", v[int((NR + 1) / 2)] }'; }
for w in one two; do
    printf '%s worker(s): time shell/strata %.2f (medians)\n' "$w" "$(echo "$(med "$dir/pack-$w.reference.vals") / $(med "$dir/pack-$w.strata.vals")" | bc -l)"
done
printf 'one worker against the floor: strata %.2f s, gpg alone on the same lz4 streams %.2f s: strata takes %.2fx the floor\n' \
    "$(med "$dir/pack-one.strata.vals")" "$(med "$dir/pack-one.floor.vals")" \
    "$(echo "$(med "$dir/pack-one.strata.vals") / $(med "$dir/pack-one.floor.vals")" | bc -l)"
echo "archive sizes: strata $(du -sh "$dir/store" | cut -f1), lz4 streams $(du -sh "$dir/lz4" | cut -f1)"
echo "gpg: strata signs with SHA-256 (--personal-digest-preferences), the shell pipeline's plain gpg -se with SHA-512; the floor uses strata's options"
echo "durability: strata's archives are fsynced in the store (the local archiver syncs each before listing it); the shell pipeline's are left in the page cache"
gpgconf --kill all
[ -n "${BENCH_KEEP:-}" ] || rm -rf "$dir"

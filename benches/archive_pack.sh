#!/usr/bin/env bash
# Bench (not a test) of archive packing (DESIGN §9, issue 5): a mixed unit
# (many small files, a few large incompressible and compressible files, a
# sparse file) packed with lz4 + gpg sign+encrypt by `strata archive unit`
# (local archiver: pack to the spool, then copy into the store), against the
# shell pipeline `tar --sparse --xattrs --acls -c | lz4 | gpg -se` on the same
# tree, with one worker (the units one after the other) and two (both units
# at once). The data is split in two units of half the size each.
#
# usage: benches/archive_pack.sh [TOTAL-MIB]      (default 2048)
# env:   STRATA_BENCH_DIR  work directory [target/bench-archive]; needs ~3x TOTAL
#        STRATA_BIN        strata binary to time (skips building it)
#        BENCH_PROFILE     cargo profile [release]
#        BENCH_KEEP=1      keep the generated files
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
        if [ $(( n % 2 )) -eq 0 ]; then base64 "$d/small/$(( n / 500 ))/f$n" | head -c $sz > "$d/small/$(( n / 500 ))/f$n.txt"; bytes=$(( bytes + sz )); fi
        n=$(( n + 1 )); bytes=$(( bytes + sz ))
    done
    head -c $(( half * 3 / 10 ))M /dev/urandom > "$d/random.bin"
    head -c $(( half * 3 / 40 ))M /dev/urandom | base64 -w 100 > "$d/text.log"
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

measure() { # label, command...
    local label=$1; shift
    local t0 t1 rss
    t0=$(date +%s.%N)
    /usr/bin/time -v -o "$dir/time.txt" "$@" >/dev/null
    t1=$(date +%s.%N)
    rss=$(awk -F': ' '/Maximum resident/{print $2}' "$dir/time.txt")
    local secs; secs=$(echo "$t1 - $t0" | bc -l)
    printf '%-22s %7.2f s  %7.1f MiB/s  peak RSS %6d KiB\n' "$label" "$secs" "$(echo "$total / $secs" | bc -l)" "$rss"
    echo "$secs $rss" > "$dir/last.txt"
}

strata_one() { for u in u1 u2; do "$STRATA_BIN" -c "$dir/config.yaml" --allow-root archive unit 20000101-1 "$dir/root" "dump/$u"; done; }
strata_two() { for u in u1 u2; do "$STRATA_BIN" -c "$dir/config.yaml" --allow-root archive unit 20000101-1 "$dir/root" "dump/$u" & done; wait; }
shell_unit() { tar -c --format=gnu --sparse --xattrs --acls -C "$dir/root" "dump/$1" | lz4 -q -c | gpg --batch --no-tty --compress-algo none --trust-model always -se -u "$signer" -r "$recipient" > "$dir/out/$1.tar.lz4.gpg"; }
shell_one() { shell_unit u1; shell_unit u2; }
shell_two() { shell_unit u1 & shell_unit u2 & wait; }
export -f strata_one strata_two shell_unit shell_one shell_two
export STRATA_BIN dir signer recipient

declare -A R
for w in one two; do
    rm -rf "$dir/store"/* "$dir/out"/*; sync
    measure "strata, $w worker(s)" bash -c "strata_$w"; read -r s r < "$dir/last.txt"; R[strata_$w]="$s $r"
    sync
    measure "shell, $w worker(s)" bash -c "shell_$w"; read -r s r < "$dir/last.txt"; R[shell_$w]="$s $r"
done
for w in one two; do
    read -r ss sr <<< "${R[strata_$w]}"; read -r hs hr <<< "${R[shell_$w]}"
    printf '%s worker(s): time strata/shell %.2f, peak RSS strata/shell %.2f\n' "$w" "$(echo "$ss / $hs" | bc -l)" "$(echo "$sr / $hr" | bc -l)"
done
echo "archive sizes: strata $(du -sh "$dir/store" | cut -f1), shell $(du -sh "$dir/out" | cut -f1)"
gpgconf --kill all
[ -n "${BENCH_KEEP:-}" ] || rm -rf "$dir"

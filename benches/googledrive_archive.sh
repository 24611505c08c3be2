#!/usr/bin/env bash
# Bench (not a test) of the googledrive archiver (issue 13): upload and
# retrieve of one incompressible archive through the fake Drive v3 of the
# tests (tests/support/googledrive/fake_drive.py, on 127.0.0.1), at two
# sizes, to show the throughput and that strata's peak RSS does not grow
# with the archive (uploads are streamed from the spool chunk by chunk,
# downloads streamed to disk).
#
# `strata archive -p drive unit` packs (compression none, no gpg, so the
# archive is the data plus tar headers) and uploads in resumable chunks of
# the default 64 MiB; `strata archive -p drive retrieve` downloads it with
# a ranged GET and checks its size and sha256. The fake runs in its own
# process and is not measured (it is Python: it bounds the throughput).
#
# usage: benches/googledrive_archive.sh [MIB...]     (default: 256 2048)
# env:   STRATA_BENCH_DIR  work directory [target/bench-googledrive]; needs ~4x the largest size
#        STRATA_BIN        strata binary to time (skips building it)
#        BENCH_PROFILE     cargo profile [release]
#        BENCH_CHUNK       upload chunk in bytes [strata's default, 64 MiB]
#        BENCH_KEEP=1      keep the generated files
#
# Prints, per size and step, wall seconds, MiB/s, and strata's CPU time and
# peak RSS (/usr/bin/time -v: the strata process and its children, tar for
# the upload's packing; not the fake).
set -euo pipefail

sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(256 2048)
cd "$(dirname "$0")/.."
repo=$PWD
profile=${BENCH_PROFILE:-release}
case $profile in dev) profile_dir=debug ;; *) profile_dir=$profile ;; esac
target=${CARGO_TARGET_DIR:-target}
dir=$(realpath -m "${STRATA_BENCH_DIR:-$target/bench-googledrive}")
if [ -z "${STRATA_BIN:-}" ]; then
    cargo build --profile "$profile" --bin strata >&2
    STRATA_BIN=$target/$profile_dir/strata
fi
STRATA_BIN=$(realpath "$STRATA_BIN")
rm -rf "$dir"; mkdir -p "$dir"/{root/dump,spool,fake,ret}

python3 "$repo/tests/support/googledrive/fake_drive.py" --dir "$dir/fake" > "$dir/fake.port" 2> "$dir/fake.log" &
fake_pid=$!
cleanup() {
    kill "$fake_pid" 2>/dev/null || true
    wait "$fake_pid" 2>/dev/null || true
    [ -n "${BENCH_KEEP:-}" ] || rm -rf "$dir"
}
trap cleanup EXIT
for _ in $(seq 50); do [ -s "$dir/fake.port" ] && break; sleep 0.1; done
port=$(awk '/^PORT/{print $2}' "$dir/fake.port")
base=http://127.0.0.1:$port
curl -sf -X POST "$base/_control/refresh_token" \
    -d '{"refresh_token": "1//bench", "client_id": "test-client", "scopes": ["https://www.googleapis.com/auth/drive.appdata", "https://www.googleapis.com/auth/drive.file"]}' >/dev/null
cat > "$dir/credentials.json" <<JSON
{"format": "strata-googledrive-1", "client_id": "test-client", "client_secret": "test-secret", "refresh_token": "1//bench"}
JSON
chmod 600 "$dir/credentials.json"

cat > "$dir/config.yaml" <<YAML
settings:
  root: $dir/root
  snapshot-store: dir
  archive-spool: $dir/spool
  archivers:
    drive:
      archiver: googledrive
      googledrive-api-url: $base
      googledrive-token-url: $base/token
      googledrive-credentials-file: $dir/credentials.json
      compression: none
YAML

measure() { # label, MiB, command...
    local label=$1 mib=$2; shift 2
    local t0 t1 rss cpu secs
    t0=$(date +%s.%N)
    /usr/bin/time -v -o "$dir/time.txt" "$@" >/dev/null
    t1=$(date +%s.%N)
    rss=$(awk -F': ' '/Maximum resident/{print $2}' "$dir/time.txt")
    cpu=$(awk -F': ' '/User time|System time/{t += $2} END {print t}' "$dir/time.txt")
    secs=$(echo "$t1 - $t0" | bc -l)
    printf '%-10s %6d MiB %7.2f s  %7.1f MiB/s  strata CPU %6.2f s  peak RSS %6d KiB\n' "$label" "$mib" "$secs" "$(echo "$mib / $secs" | bc -l)" "$cpu" "$rss"
}

export STRATA_RETRIEVE_BYTES_PER_SEC=100000000000
[ -z "${BENCH_CHUNK:-}" ] || export STRATA_GOOGLEDRIVE_CHUNK_SIZE=$BENCH_CHUNK
n=0
for mib in "${sizes[@]}"; do
    n=$((n + 1))
    set_name=20000101-$n
    unit=dump/big$n
    mkdir -p "$dir/root/$unit"
    head -c "${mib}M" /dev/urandom > "$dir/root/$unit/data"
    sync
    measure "upload" "$mib" "$STRATA_BIN" -c "$dir/config.yaml" --allow-root archive -p drive unit "$set_name" "$dir/root" "$unit"
    sync
    measure "retrieve" "$mib" "$STRATA_BIN" -c "$dir/config.yaml" --allow-root archive -p drive retrieve "$set_name" "$dir/ret" "$unit"
    got=$dir/ret/$set_name:${unit//\//-}
    want=$(curl -sf "$base/_control/state" | python3 -c "import json,sys; s=json.load(sys.stdin); print([f['appProperties']['sha256'] for f in s['files'] if f['name']=='$unit'][0])")
    [ "$(sha256sum < "$got" | cut -d' ' -f1)" = "$want" ] || { echo "retrieved $unit does not match" >&2; exit 1; }
    rm -f "$got" "$dir/root/$unit/data"
done
curl -sf "$base/_control/state" | python3 -c "import json,sys; c=json.load(sys.stdin)['counters']; print('fake: %d bytes received, %d sent, %d chunk PUTs' % (c['bytes_received'], c['bytes_sent'], c['requests'].get('chunk', 0)))"

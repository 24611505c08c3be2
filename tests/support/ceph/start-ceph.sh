#!/usr/bin/env bash
# start-ceph.sh -- strata's throwaway single-node Ceph (mon, optional mgr,
# 1 memstore OSD, radosgw on 127.0.0.1) for the integration tests
# (tests/it/support/ceph.rs starts it; the rbd and rgw tests use it).
# Adapted from the team's proven recipe; built only from Debian 12 packages
# (Ceph 16.2 "pacific").
#
# Usage:   start-ceph.sh DIR            (DIR must not exist, or be empty)
#          eval "$(start-ceph.sh DIR)"  (stdout is ONLY `export ...` lines;
#                                        also written to DIR/env.sh)
#          stop-ceph.sh DIR             (kills exactly the recorded PIDs)
#
# Install: idempotent.  If the packages are missing it runs
#   scripts/install-test-deps.sh --ceph   when that script exists, else
#   apt-get install --no-install-recommends ceph-mon ceph-mgr ceph-osd
#       ceph-common radosgw uuid-runtime curl iproute2
#   (~30 s once).  CEPH_NO_INSTALL=1 turns a missing package into an error.
#
# Everything lives under DIR: ceph.conf, keyring, mon/mgr/osd data, logs,
# admin sockets, pid files.  No systemd, no /etc/ceph, only 127.0.0.1.
#
# Tunables (environment):
#   CEPH_OBJECTSTORE   memstore (default; data in RAM) | bluestore (4 GiB sparse file in DIR)
#   CEPH_WITH_MGR      0 (default here: RBD and RGW I/O do not need it; it costs
#                      ~300 MiB RSS) | 1
#   CEPH_WITH_RGW      1 (default) | 0
#   CEPH_WAIT_MGR      0 (default) | 1   -- with CEPH_WITH_MGR=1, wait until active
#   CEPH_PORT_BASE     first of 4 consecutive TCP ports (mon v2, mon v1, rgw, rgw https);
#                      default: random free ports in 10000-32765
#   CEPH_RGW_ACCESS_KEY / CEPH_RGW_SECRET_KEY  keys of the S3 admin user
#   CEPH_START_TIMEOUT deadline in seconds for all the wait-for-ready loops (default 300)
#   CEPH_NO_INSTALL    1 = never install anything
#   CEPH_STOP_WHEN_PID_EXITS  a PID (the test binary's): a detached watcher runs
#                      stop-ceph.sh DIR once that process is gone, so a test run
#                      killed by a timeout or SIGKILL leaves no daemons behind
#
# On any failure the partially started cluster is torn down (stop-ceph.sh) and
# the script exits non-zero; logs are copied to DIR.failed-logs first.
#
# Measured on a 2-vCPU Debian 12 VM: 3.5-9 s to RGW user created; RSS ~140 MiB
# without mgr (memstore keeps object data in the OSD's RAM: keep test images small).
#
# Pitfalls handled here:
#  * ports in the ephemeral range (32768-60999) can be grabbed by outgoing
#    connections -> mon "bind ... Address already in use"; we pick 10000-32765.
#  * Pacific refuses size-1 pools unless `mon allow pool size one = true`.
#  * default pg num (32) x ~7 RGW pools exceeds mon_max_pg_per_osd with 1 OSD;
#    we use 8 PGs and autoscale off.
#  * `paxos propose interval` 1 s default makes every pool create / osdmap
#    change take ~1 s; 0.05 s brings start-up to ~3.5 s.
#  * `bluestore block path` must not point inside the OSD data dir (mkfs fails
#    with ELOOP); we leave it at the default.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DIR="${1:?usage: $0 DIR}"
OBJECTSTORE="${CEPH_OBJECTSTORE:-memstore}"
WITH_MGR="${CEPH_WITH_MGR:-0}"
WITH_RGW="${CEPH_WITH_RGW:-1}"
DEADLINE_S="${CEPH_START_TIMEOUT:-300}"

T0_MS=$(( $(date +%s%N) / 1000000 ))
log() { local ms=$(( $(date +%s%N) / 1000000 - T0_MS )); printf '[start-ceph %3d.%03ds] %s\n' $((ms/1000)) $((ms%1000)) "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------- install
REPO_TOP="$(cd "$HERE/../../.." && pwd)"
pkgs=(ceph-mon ceph-osd ceph-common radosgw uuid-runtime curl iproute2)
[[ "$WITH_MGR" == 1 ]] && pkgs+=(ceph-mgr)
need_pkgs=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need_pkgs+=("$p")
done
if ((${#need_pkgs[@]})); then
    [[ "${CEPH_NO_INSTALL:-0}" == 1 ]] && die "missing packages: ${need_pkgs[*]}"
    if [[ -x "$REPO_TOP/scripts/install-test-deps.sh" ]]; then
        log "scripts/install-test-deps.sh --ceph (missing: ${need_pkgs[*]})"
        "$REPO_TOP/scripts/install-test-deps.sh" --ceph >&2
    else
        log "apt-get install ${need_pkgs[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${need_pkgs[@]}" >&2 ||
            { apt-get -o DPkg::Lock::Timeout=600 update -qq >&2;
              apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${need_pkgs[@]}" >&2; }
    fi
fi

# ---------------------------------------------------------------- dirs
if [[ -e "$DIR" ]]; then
    [[ -d "$DIR" && -z "$(ls -A "$DIR")" ]] || die "$DIR exists and is not an empty directory"
fi
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"
# Marker: stop-ceph.sh refuses to rm -rf a directory without it.
echo "throwaway ceph cluster created by $0 at $(date -Is)" > "$DIR/.throwaway-ceph-cluster"
mkdir -p "$DIR"/{run,log,pids,crash,mon.a,mgr.x,osd.0,rgw.a}
CONF="$DIR/ceph.conf"
KEYRING="$DIR/keyring"

cleanup_on_error() {
    local rc=$1
    trap '' PIPE   # a closed stderr reader must not abort the teardown
    if ((rc != 0)); then
        log "start failed (rc=$rc); log tails follow, full logs in $DIR.failed-logs"
        rm -rf "$DIR.failed-logs"; cp -r "$DIR/log" "$DIR.failed-logs" 2>/dev/null || true
        for f in "$DIR"/log/*; do [[ -f $f ]] && { echo "== $f" >&2; tail -n 15 "$f" | cat -v >&2; }; done
        "$HERE/stop-ceph.sh" "$DIR" >&2 || true
    fi
}
trap 'cleanup_on_error $?' EXIT
trap 'log "got SIGTERM"; exit 143' TERM

# ---------------------------------------------------------------- ports
# Pick ports BELOW the kernel's ephemeral range (ip_local_port_range, usually
# 32768-60999): a port in that range can be taken at any moment as the local end
# of some outgoing connection (Ceph daemons and clients make many), and then
# ceph-mon fails with "bind ... (98) Address already in use".
read -r EPH_LO _ < /proc/sys/net/ipv4/ip_local_port_range
port_free() { ! ss -Htan "( sport = :$1 or dport = :$1 )" | grep -q .; }
if [[ -n "${CEPH_PORT_BASE:-}" ]]; then
    BASE=$CEPH_PORT_BASE
    for p in $BASE $((BASE+1)) $((BASE+2)) $((BASE+3)); do port_free "$p" || die "port $p in use"; done
else
    # 10000 .. min(ephemeral_low, 32768)-3, avoiding Ceph's own 6800-7300 OSD/MGR range
    HI=$(( EPH_LO < 32768 ? EPH_LO : 32768 )); HI=$((HI - 4))
    for _ in $(seq 100); do
        BASE=$(( 10000 + (RANDOM * 32768 + RANDOM) % (HI - 10000) ))
        port_free $BASE && port_free $((BASE+1)) && port_free $((BASE+2)) \
            && port_free $((BASE+3)) && break
        BASE=""
    done
    [[ -n "$BASE" ]] || die "no free ports found"
fi
MON_V2=$BASE; MON_V1=$((BASE+1)); RGW_PORT=$((BASE+2)); RGW_SSL_PORT=$((BASE+3))

# ---------------------------------------------------------------- tls
# radosgw also serves https on RGW_SSL_PORT, with a certificate for 127.0.0.1
# signed by a throwaway CA ($DIR/tls/ca.pem), for the tests of `rgw-secure`.
TLS=$DIR/tls
mkdir -p "$TLS"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 7 \
    -subj /CN=strata-test-ca -keyout "$TLS/ca.key" -out "$TLS/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -subj /CN=127.0.0.1 -keyout "$TLS/rgw.key" -out "$TLS/rgw.csr" 2>/dev/null
printf '%s\n' 'subjectAltName=IP:127.0.0.1' 'basicConstraints=CA:FALSE' \
    'keyUsage=digitalSignature' 'extendedKeyUsage=serverAuth' > "$TLS/rgw.ext"
openssl x509 -req -in "$TLS/rgw.csr" -CA "$TLS/ca.pem" -CAkey "$TLS/ca.key" \
    -CAcreateserial -days 7 -extfile "$TLS/rgw.ext" -out "$TLS/rgw.pem" 2>/dev/null

# ---------------------------------------------------------------- ceph.conf
FSID=$(uuidgen)
case "$OBJECTSTORE" in
    memstore) STORE_CONF="osd objectstore = memstore
memstore device bytes = 4294967296" ;;
    bluestore) STORE_CONF="osd objectstore = bluestore
bluestore block create = true
bluestore block size = 4294967296
bluestore block db create = false
bluestore block wal create = false
bluestore fsck on mount = false
bluestore cache autotune = false
bluestore cache size = 134217728
osd memory target = 939524096" ;;
    *) die "CEPH_OBJECTSTORE must be memstore or bluestore" ;;
esac

cat > "$CONF" <<EOF
# generated by start-ceph.sh -- throwaway test cluster
[global]
fsid = $FSID
mon host = [v2:127.0.0.1:$MON_V2,v1:127.0.0.1:$MON_V1]
public network = 127.0.0.1/32
public addr = 127.0.0.1
cluster addr = 127.0.0.1
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
keyring = $KEYRING
run dir = $DIR/run
admin socket = $DIR/run/\$cluster-\$name.asok
log file = $DIR/log/\$name.log
crash dir = $DIR/crash
log to stderr = false
err to stderr = true
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon warn on insecure global id reclaim allowed = false
mon max pg per osd = 1000
mon data avail warn = 2
mon data avail crit = 1
# Pacific's default feature set, spelled out (fast-diff makes export-diff cheap)
rbd default features = layering,exclusive-lock,object-map,fast-diff,deep-flatten

[mon]
mon data = $DIR/mon.\$id
mon cluster log file = $DIR/log/cluster.log
mon initial members = a
# test-cluster speed-ups: commit map changes quickly (default 1s batching)
paxos propose interval = 0.05
paxos min wait = 0.01

[mgr]
mgr data = $DIR/mgr.\$id
mgr initial modules = status

[osd]
osd data = $DIR/osd.\$id
osd journal = $DIR/osd.\$id/journal
$STORE_CONF
osd op num shards = 2
osd op num threads per shard = 1
osd scrub auto repair = false
osd scrub min interval = 86400000
osd scrub max interval = 86400000
osd deep scrub interval = 86400000
osd check max object name len on startup = false

[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$RGW_PORT ssl_endpoint=127.0.0.1:$RGW_SSL_PORT ssl_certificate=$TLS/rgw.pem ssl_private_key=$TLS/rgw.key
rgw data = $DIR/rgw.a
rgw thread pool size = 64
EOF

# ---------------------------------------------------------------- keys
# All daemon + admin keys are created up front and imported into the mon's auth
# database by `ceph-mon --mkfs`, so no `ceph auth` round-trips are needed later.
ceph-authtool -C "$KEYRING" --gen-key -n mon.          --cap mon 'allow *' >/dev/null
ceph-authtool "$KEYRING" --gen-key -n client.admin     --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' --cap mds 'allow *' >/dev/null
ceph-authtool "$KEYRING" --gen-key -n mgr.x            --cap mon 'allow profile mgr' --cap osd 'allow *' --cap mds 'allow *' >/dev/null
ceph-authtool "$KEYRING" --gen-key -n osd.0            --cap mon 'allow profile osd' --cap mgr 'allow profile osd' --cap osd 'allow *' >/dev/null
ceph-authtool "$KEYRING" --gen-key -n client.rgw.a     --cap mon 'allow rw' --cap osd 'allow rwx' --cap mgr 'allow rw' >/dev/null
chmod 600 "$KEYRING"

C=(-c "$CONF")
ceph_() { timeout 60 ceph "${C[@]}" --connect-timeout 30 "$@"; }
ceph_quick() { timeout 10 ceph "${C[@]}" --connect-timeout 5 "$@"; }   # for polling loops

# Run a daemon in the foreground in its own session; record its PID.
start_daemon() { # name binary args...
    local name=$1; shift
    setsid "$@" -f < /dev/null > "$DIR/log/$name.stdout" 2>&1 &
    local pid=$!
    echo "$pid" > "$DIR/pids/$name.pid"
    log "started $name pid=$pid"
}
wait_for() { # desc timeout_s cmd...
    local desc=$1 t=$2; shift 2
    local end=$(( $(date +%s) + t )) hard=$(( T0_MS / 1000 + DEADLINE_S ))
    (( end < hard )) || end=$hard
    until "$@" >/dev/null 2>&1; do
        (( $(date +%s) < end )) || die "timed out after ${t}s waiting for: $desc"
        check_alive
        sleep 0.3
    done
    log "ready: $desc"
}
check_alive() {
    local f
    for f in "$DIR"/pids/*.pid; do
        [[ -e $f ]] || continue
        kill -0 "$(cat "$f")" 2>/dev/null || die "daemon $(basename "$f" .pid) died (see $DIR/log)"
    done
}

# ---------------------------------------------------------------- mon
monmaptool --create --fsid "$FSID" --addv a "[v2:127.0.0.1:$MON_V2,v1:127.0.0.1:$MON_V1]" "$DIR/monmap" >/dev/null
ceph-mon "${C[@]}" --mkfs -i a --monmap "$DIR/monmap" --keyring "$KEYRING" > "$DIR/log/mon-mkfs.out" 2>&1
start_daemon mon.a ceph-mon "${C[@]}" -i a
mon_ready() {
    if grep -q 'Address already in use' "$DIR/log/mon.a.log" 2>/dev/null; then
        die "ceph-mon cannot bind 127.0.0.1:$MON_V2/$MON_V1 (Address already in use); retry or set CEPH_PORT_BASE"
    fi
    ss -Hltn "sport = :$MON_V2" | grep -q . && ceph_quick mon stat
}
wait_for "mon quorum" 60 mon_ready

# ---------------------------------------------------------------- mgr
if [[ "$WITH_MGR" == 1 ]]; then
    start_daemon mgr.x ceph-mgr "${C[@]}" -i x
fi

# ---------------------------------------------------------------- osd
OSD_UUID=$(uuidgen)
OSD_ID=$(ceph_ osd new "$OSD_UUID")
[[ "$OSD_ID" == 0 ]] || die "expected osd id 0, got '$OSD_ID'"
ceph-osd "${C[@]}" -i 0 --mkfs --osd-uuid "$OSD_UUID" > "$DIR/log/osd-mkfs.out" 2>&1
start_daemon osd.0 ceph-osd "${C[@]}" -i 0
osd_up() { ceph_quick osd dump --format=json | grep -q '"up":1'; }
wait_for "osd.0 up" 120 osd_up

# ---------------------------------------------------------------- rbd pool
ceph_ osd pool create rbd 8 8 >/dev/null 2>&1
timeout 120 rbd "${C[@]}" pool init rbd
log "ready: rbd pool"

# ---------------------------------------------------------------- rgw
RGW_ACCESS=""; RGW_SECRET=""
if [[ "$WITH_RGW" == 1 ]]; then
    start_daemon rgw.a radosgw "${C[@]}" -n client.rgw.a
    rgw_up() { curl -fsS -m 2 "http://127.0.0.1:$RGW_PORT/" | grep -q ListAllMyBucketsResult; }
    wait_for "radosgw http://127.0.0.1:$RGW_PORT" 180 rgw_up
    u1=$(uuidgen); u1=${u1//-/}; u2=$(uuidgen); u2=${u2//-/}
    RGW_ACCESS="${CEPH_RGW_ACCESS_KEY:-${u1:0:20}}"; RGW_ACCESS=${RGW_ACCESS^^}
    RGW_SECRET="${CEPH_RGW_SECRET_KEY:-${u1:20:12}${u2}}"
    timeout 120 radosgw-admin "${C[@]}" user create --uid=testadmin --display-name="Test Admin" \
        --access-key="$RGW_ACCESS" --secret-key="$RGW_SECRET" --admin > "$DIR/rgw-admin-user.json"
    log "ready: rgw user testadmin"
fi

if [[ "$WITH_MGR" == 1 && "${CEPH_WAIT_MGR:-0}" == 1 ]]; then
    mgr_active() { ceph_quick mgr stat --format=json | grep -q '"available": *true'; }
    wait_for "mgr active" 120 mgr_active
fi

trap - EXIT TERM
log "cluster up in DIR=$DIR"

if [[ -n "${CEPH_STOP_WHEN_PID_EXITS:-}" ]]; then
    # why: Drop does not run when the test binary is SIGKILLed; this watcher does
    setsid bash -c 'while kill -0 "$1" 2>/dev/null && [[ -d "$3" ]]; do sleep 2; done
                    [[ -d "$3" ]] && CEPH_STOP_KILL=1 "$2" "$3"' ceph-watch \
        "$CEPH_STOP_WHEN_PID_EXITS" "$HERE/stop-ceph.sh" "$DIR" \
        </dev/null >>"$DIR/log/watcher.log" 2>&1 &
    echo "$!" > "$DIR/watcher.pid"
    log "watcher pid $! stops the cluster when pid $CEPH_STOP_WHEN_PID_EXITS exits"
fi

# ---------------------------------------------------------------- env
{
    echo "export CEPH_CONF='$CONF'"
    echo "export CEPH_TEST_KEYRING='$KEYRING'   # also named in ceph.conf, so CEPH_CONF suffices"
    echo "export CEPH_TEST_DIR='$DIR'"
    echo "export CEPH_FSID='$FSID'"
    echo "export CEPH_MON_HOST='[v2:127.0.0.1:$MON_V2,v1:127.0.0.1:$MON_V1]'"
    echo "export CEPH_RBD_POOL='rbd'"
    if [[ "$WITH_RGW" == 1 ]]; then
        echo "export RGW_ENDPOINT='http://127.0.0.1:$RGW_PORT'"
        echo "export RGW_SSL_ENDPOINT='https://127.0.0.1:$RGW_SSL_PORT'   # certificate signed by RGW_CA_FILE"
        echo "export RGW_CA_FILE='$TLS/ca.pem'"
        echo "export RGW_ADMIN_UID='testadmin'"
        echo "export RGW_ACCESS_KEY='$RGW_ACCESS'"
        echo "export RGW_SECRET_KEY='$RGW_SECRET'"
        echo "export AWS_ACCESS_KEY_ID='$RGW_ACCESS'"
        echo "export AWS_SECRET_ACCESS_KEY='$RGW_SECRET'"
        echo "export AWS_DEFAULT_REGION='us-east-1'"
    fi
} | tee "$DIR/env.sh"

#!/usr/bin/env bash
# install-test-deps.sh -- install what strata's integration tests need on a
# Debian 12 (bookworm) machine, idempotently.
#
# Usage: scripts/install-test-deps.sh [--base] [--ceph] [--vm] [--all] [--deltaic] [-q]
#   --base  rsync, sshd, acl/attr tools, btrfs-progs, compressors, gnupg, GNU
#           tar, sudo, e2fsprogs, python3 (the fakes of Google Drive,
#           GitHub and Coda's tools, standard library only), ... and the
#           Python venv with moto[server] (the local S3 server of the archive
#           tests), git and git-lfs
#   --ceph  a single-node Ceph (tests/support/ceph/start-ceph.sh uses it),
#           with an MDS and ceph-fuse for CephFS (tests/support/cephfs/)
#   --vm    QEMU + a stock kernel + LVM thin tools for the LVM VM tests
#           (tests/support/lvm-vm/run-in-lvm-vm.sh uses it)
#   --all   base, ceph and vm (the default when no group is given)
#   --deltaic  a venv with Deltaic's github dependencies (github3.py 0.9.6, ...)
#           for the oracle mode of github_deltaic_byte_identity only
#           (DELTAIC_SRC=<deltaic checkout>, docs/testing.md); CI does not
#           need it: the test runs on Deltaic's recorded output without it
#   -q      print nothing at all when everything is already present
#
# Environment:
#   STRATA_TEST_VENV  where the venv lives [$HOME/.cache/strata-test-venv]
#   STRATA_DELTAIC_VENV  where Deltaic's venv lives [$HOME/.cache/strata-deltaic-venv]
#
# Runs as root (apt-get); when every package is already installed it runs no
# apt-get at all and needs no root.  apt output goes to a log file that is
# shown only when a step fails.  The venv is built under a lock and marked
# complete last, so an interrupted run is redone from scratch next time.
#
# Nothing is started here: on a systemd host the packages' own maintainer
# scripts may enable ssh/ceph services; the tests never use them.
set -euo pipefail

# why: python3 runs the moto venv and the coda tests' fake volutil/codadump2tar
BASE_PKGS=(rsync openssh-server openssh-client acl attr btrfs-progs lzop lz4
    zstd gzip gnupg tar xz-utils sudo e2fsprogs util-linux procps time
    python3 python3-venv git git-lfs curl)
# why: python3-boto3 and librados-dev/librbd-dev from the recipe are left out;
# the tests talk S3 through strata itself and rbd through the CLI.
# why: ceph-mds and ceph-fuse serve the cephfs store's tests (tests/support/
# cephfs/: an MDS added to the shared test Ceph, mounted with ceph-fuse; no
# kernel client and, as root, no fusermount needed)
CEPH_PKGS=(ceph-mon ceph-mgr ceph-osd ceph-common radosgw uuid-runtime curl
    iproute2 openssl ceph-mds ceph-fuse)
VM_PKGS=(qemu-system-x86 linux-image-amd64 busybox-static cpio kmod xz-utils
    lvm2 thin-provisioning-tools)
MOTO_SPEC='moto[server]==5.*'
VENV=${STRATA_TEST_VENV:-$HOME/.cache/strata-test-venv}
# why: Deltaic's github source runs in a venv of its own (tests/support/github/
# run_deltaic.py): github3.py 0.9.6 and the modules Deltaic's util imports,
# pinned to what Deltaic's lock file allows; only the oracle mode needs it
DELTAIC_SPECS=('github3.py==0.9.6' 'click==8.*' 'PyYAML==6.*' 'xattr==1.*' 'pybloom-live==4.0.0' 'setuptools<81')
DELTAIC_VENV=${STRATA_DELTAIC_VENV:-$HOME/.cache/strata-deltaic-venv}

want_base=0 want_ceph=0 want_vm=0 want_deltaic=0 quiet=0
for arg in "$@"; do
    case $arg in
        --base) want_base=1 ;;
        --ceph) want_ceph=1 ;;
        --vm) want_vm=1 ;;
        --all) want_base=1 want_ceph=1 want_vm=1 ;;
        --deltaic) want_deltaic=1 ;;
        -q|--quiet) quiet=1 ;;
        -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
        *) echo "install-test-deps: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
    esac
done
if (( want_base + want_ceph + want_vm + want_deltaic == 0 )); then
    want_base=1 want_ceph=1 want_vm=1
fi

step() { echo "install-test-deps: $*"; }
die() { echo "install-test-deps: error: $*" >&2; exit 1; }

LOG=$(mktemp -t strata-install-test-deps.XXXXXX.log)
cleanup() { rm -f "$LOG"; }
trap cleanup EXIT
# Runs "$@" with its output in $LOG; on failure shows the log's tail and exits.
logged() {
    if ! "$@" >>"$LOG" 2>&1; then
        echo "install-test-deps: failed: $*" >&2
        tail -n 40 "$LOG" >&2
        exit 1
    fi
}

pkgs=()
(( want_base )) && pkgs+=("${BASE_PKGS[@]}")
(( want_ceph )) && pkgs+=("${CEPH_PKGS[@]}")
(( want_vm )) && pkgs+=("${VM_PKGS[@]}")
(( want_deltaic )) && pkgs+=(python3 python3-venv)
# why: groups overlap (xz-utils); apt does not mind, but the step line should
# count each package once.
mapfile -t pkgs < <(printf '%s\n' "${pkgs[@]}" | sort -u)

missing=()
for p in "${pkgs[@]}"; do
    # why: only "install ok installed" counts; config-files, half-installed
    # and unknown packages all need apt.
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [[ $status == "install ok installed" ]] || missing+=("$p")
done

did_something=0
if (( ${#missing[@]} > 0 )); then
    did_something=1
    [[ $(id -u) == 0 ]] || die "missing packages (${missing[*]}) and not root; rerun as root"
    command -v apt-get >/dev/null || die "apt-get not found: this script targets Debian 12"
    export DEBIAN_FRONTEND=noninteractive
    # why: a concurrent apt run (another test run, unattended-upgrades) holds
    # the dpkg lock; wait for it rather than fail.
    # why: never stop at a conffile prompt when a package is upgraded over a
    # locally edited config.
    apt_opts=(-q -o DPkg::Lock::Timeout=600
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
    step "apt-get update"
    logged apt-get "${apt_opts[@]}" update
    step "apt-get install ${#missing[@]} packages: ${missing[*]}"
    logged apt-get "${apt_opts[@]}" install -y --no-install-recommends "${missing[@]}"
fi

if (( want_base + want_deltaic )); then
    # why: Debian's interpreter, not whatever python3 comes first on PATH
    # (pyenv, conda): python3-venv above is what makes `-m venv` work.
    py=/usr/bin/python3
    [[ -x $py ]] || py=$(command -v python3) || die "python3 not found"
fi

if (( want_base )); then
    marker=$VENV/.strata-test-venv-complete
    if [[ ! -f $marker ]]; then
        did_something=1
        mkdir -p "$(dirname "$VENV")"
        exec 9>"$VENV.lock"
        # why: two test runs starting together must not build one venv twice.
        flock 9
        if [[ ! -f $marker ]]; then
            rm -rf "$VENV"
            step "creating venv $VENV with $MOTO_SPEC"
            logged "$py" -m venv "$VENV"
            logged "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$MOTO_SPEC"
            logged "$VENV/bin/python" -c 'import moto, flask, flask_cors'
            [[ -x $VENV/bin/moto_server ]] || die "moto_server missing from $VENV/bin after pip install"
            # why: into a variable first: a redirect would create the marker before the command ran
            ver=$("$VENV/bin/python" -c 'import moto; print(moto.__version__)')
            echo "$ver" >"$marker"
        fi
        exec 9>&-
    fi
fi

if (( want_deltaic )); then
    marker=$DELTAIC_VENV/.strata-deltaic-venv-complete
    if [[ ! -f $marker ]]; then
        did_something=1
        mkdir -p "$(dirname "$DELTAIC_VENV")"
        exec 9>"$DELTAIC_VENV.lock"
        flock 9
        if [[ ! -f $marker ]]; then
            rm -rf "$DELTAIC_VENV"
            step "creating venv $DELTAIC_VENV with ${DELTAIC_SPECS[*]}"
            logged "$py" -m venv "$DELTAIC_VENV"
            logged "$DELTAIC_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${DELTAIC_SPECS[@]}"
            # why: github3.py 0.9.6 needs the collections aliases Python 3.10 removed;
            # run_deltaic.py restores them before importing it, and so does this check
            logged "$DELTAIC_VENV/bin/python" -c 'import collections, collections.abc
for n in ("Callable", "Iterator", "Iterable", "Mapping", "MutableMapping", "Sequence"):
    setattr(collections, n, getattr(collections.abc, n))
import github3, click, yaml, xattr, pybloom_live, pkg_resources'
            # why: marked complete only after the check passed (a redirection would
            # create the marker before its command ran)
            ver=$("$DELTAIC_VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("github3.py"))')
            echo "$ver" >"$marker"
        fi
        exec 9>&-
    fi
fi

if (( ! did_something )); then
    # why: the common case (every test run) stays at one line, or none with -q.
    if (( ! quiet )); then
        if (( want_base )); then
            step "all ${#pkgs[@]} packages present; moto_server: $VENV/bin/moto_server"
        else
            step "all ${#pkgs[@]} packages present"
        fi
    fi
    exit 0
fi
step "done; where things are:"
if (( want_base )); then
    step "  moto_server: $VENV/bin/moto_server (moto $(cat "$VENV/.strata-test-venv-complete"))"
    step "  sshd: /usr/sbin/sshd, rsync: $(command -v rsync), setfacl: $(command -v setfacl)"
fi
if (( want_deltaic )); then
    step "  Deltaic's venv: $DELTAIC_VENV (github3.py $(cat "$DELTAIC_VENV/.strata-deltaic-venv-complete"))"
fi
if (( want_ceph )); then
    step "  ceph: $(command -v ceph-mon), radosgw: $(command -v radosgw) (start with recipes/ceph/start-ceph.sh)"
fi
if (( want_vm )); then
    step "  qemu: $(command -v qemu-system-x86_64), kernels: $(cd /boot && echo vmlinuz-*)"
fi

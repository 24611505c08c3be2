#!/usr/bin/env bash
# The quick start: build strata, back up the dump units of quickstart/config.yaml
# into quickstart/backup-root, take a snapshot (a plain copy: no root, no LVM,
# no network needed), and show the status table. Run it twice to see the
# incremental: unchanged units rewrite nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --bin strata
strata=("${CARGO_TARGET_DIR:-target}/debug/strata" -c quickstart/config.yaml)
# why: strata refuses to write a backup root as root (files root creates there
# break the backup user's later runs); this demo root is a scratch directory of
# the repository, so allow it when the person trying it out is root.
if [ "$(id -u)" = 0 ]; then strata+=(--allow-root); fi
"${strata[@]}" run
echo
"${strata[@]}" ls
echo
"${strata[@]}" status

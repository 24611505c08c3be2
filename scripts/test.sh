#!/usr/bin/env bash
# The whole test suite, from nothing: installs what the tests need (apt
# packages, a Python venv with moto), then runs every test with
# STRATA_TEST_STRICT=1, so a missing prerequisite fails instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-deps.sh
export STRATA_TEST_STRICT=1
cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings
cargo test --locked --all-targets

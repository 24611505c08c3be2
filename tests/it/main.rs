//! strata's one integration-test binary. Each file is one area; `support/`
//! holds the fixtures (real sshd, tree builder and comparison, test homes).
//! Tests that need root or devices are named `root_...` / `vm_...`; a missing
//! prerequisite fails them under `STRATA_TEST_STRICT=1` and skips loudly otherwise.

mod appliances;
mod archive;
mod cephfs;
mod coda;
mod config;
mod deltaic_compat;
mod github;
mod mkconf;
mod modules;
mod package;
mod progress;
mod prune;
mod quickstart;
mod rbd;
mod rgw;
mod rsync;
mod run;
mod run_races;
mod snap_env;
mod snapshots_btrfs;
mod snapshots_priv;
mod snapshots_vm;
mod support;

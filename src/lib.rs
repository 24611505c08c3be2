//! strata: a backup appliance. Many sources are pulled into one filesystem;
//! after each run a read-only snapshot of it is taken, old snapshots are
//! pruned on a calendar, a random share of units is scrubbed against their
//! sources, and each unit of a snapshot can be archived offsite.
//!
//! How data flows, and which module owns each step:
//! - [`config`]: the YAML file (Deltaic's keys) -> a validated `Config`.
//! - [`runner`]: one `run`: a lock, the units of every source, the scrub
//!   draw, unit state, then a snapshot.
//! - [`jobs`]: child processes of strata run in pools with their logs, start
//!   and end lines, reports, and the rule that they die with their runner
//!   (`run` and `archive run` both use it).
//! - [`sources`]: the `Source` trait and its registry; each source's units,
//!   backup, restore and command line (`dump`, `rsync`, `github`, `rbd`,
//!   `rgw`, `coda`).
//! - [`backup_root`]: the layout under the root, and the only writer of file
//!   contents into it (block-level updates: unchanged blocks are never
//!   rewritten, because the thin pool would store them twice); the locks
//!   and the per-unit state kept under `<root>/.strata`.
//! - [`snapshot`]: the `SnapshotStore` trait and its stores.
//! - [`retention`]: pure plans of which snapshots and logs to keep.
//! - [`archive`]: offsite archives: pack, upload, retrieve, unpack, drill.
//! - [`s3`]: what the S3 archiver and the rgw source share: failures in
//!   words, and uploads in parts streamed from disk.
//! - [`names`]: `SnapshotName` and `UnitPath`, validated names shared by
//!   the user side and the root helper (a leaf: it imports nothing of ours).
//! - [`exec`]: the only module that starts processes.
//! - [`writeback`]: starting a file's writeback early (the one `unsafe`
//!   block), for files strata writes front to back and syncs at the end.
//! - [`fault`]: named crash points for the crash-safety tests, inert unless
//!   `STRATA_FAULT_KILL_AT` names one.
//! - [`privileged`]: `strata-snapshot`, the only code that runs as root
//!   (through sudo), and the JSON it answers with.
//! - [`mkconf`]: crontab, sudoers and systemd units rendered from the config.
//! - [`cli`]: clap types, dispatch and output; the only user of `anyhow`.
//!
//! The error policy is written down in [`error`].

pub mod archive;
pub mod backup_root;
pub mod cli;
pub mod config;
pub mod error;
pub mod exec;
pub mod fault;
pub mod jobs;
pub mod mkconf;
pub mod names;
pub mod privileged;
pub mod progress;
pub mod retention;
pub mod runner;
pub mod s3;
pub mod snapshot;
pub mod sources;
pub mod writeback;

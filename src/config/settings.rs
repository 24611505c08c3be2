//! The `settings:` section: the base and retention keys read here, each
//! source's `<source>-*` keys and archiving's keys read by that source's own
//! file from the same mapping. Defaults are those of Deltaic's
//! example-config.yaml (DESIGN Appendix A).

use super::archivers::{self, ArchiveSettings, ArchiverProfile};
use super::coda::{self, CodaSettings};
use super::dump::{self, DumpSettings};
use super::fields::{Ctx, get_count, get_duration, get_path};
use super::github::{self, GithubSettings};
use super::node::Node;
use super::rbd::{self, RbdSettings};
use super::reader::{KeyPath, Reader};
use super::rgw::{self, RgwSettings};
use super::rsync::{self, RsyncSettings};
use crate::retention::{CalendarPolicy, HanoiPolicy, Policy};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StoreKind {
    LvmThin,
    Btrfs,
    Dir,
    Cephfs,
}

/// CephFS's default `mds_max_snaps_per_dir`, the default of `cephfs-max-snapshots`.
pub const DEFAULT_CEPHFS_MAX_SNAPSHOTS: u32 = 100;

/// The default `appliance-lease`: six hours.
pub const DEFAULT_APPLIANCE_LEASE_SECS: u64 = 6 * 3600;

/// `vg/lv`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VgLv {
    pub vg: String,
    pub lv: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Settings {
    pub root: PathBuf,
    pub backup_lv: Option<VgLv>,
    pub df_warning: f64,
    pub snapshot_store: StoreKind,
    pub snapshot_dir: PathBuf,
    /// `cephfs-max-snapshots`: the cluster's `mds_max_snaps_per_dir`.
    pub cephfs_max_snapshots: u32,
    /// `appliance-lease` in seconds: how long the appliances of a shared run
    /// wait for one another's share before taking over what is left of it.
    pub appliance_lease: u64,
    pub stale_days: u32,
    pub retention: Retention,
    pub coda: CodaSettings,
    pub github: GithubSettings,
    pub rbd: RbdSettings,
    pub rgw: RgwSettings,
    pub rsync: RsyncSettings,
    pub dump: DumpSettings,
    pub archive: ArchiveSettings,
    pub archivers: BTreeMap<String, ArchiverProfile>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Retention {
    pub policy: Policy,
    pub log_distinct_days: u32,
    pub min_free_percent: Option<f64>,
    /// `gc-min-free-bytes`: the same rule with an absolute floor.
    pub min_free_bytes: Option<u64>,
    pub min_keep: u32,
}

impl Retention {
    /// The free-space rule (`gc-min-free-percent`, `gc-min-free-bytes`),
    /// when one is configured.
    #[must_use]
    pub fn free_space_rule(&self) -> Option<crate::retention::FreeSpaceRule> {
        (self.min_free_percent.is_some() || self.min_free_bytes.is_some()).then_some(
            crate::retention::FreeSpaceRule {
                min_percent: self.min_free_percent,
                min_bytes: self.min_free_bytes,
            },
        )
    }
}

/// The snapshot retention policy `gc-policy` names.
#[derive(Clone, Copy)]
enum PolicyKind {
    Calendar,
    Hanoi,
}

#[allow(clippy::too_many_lines)] // why: one key after another, in Appendix A's order
/// The `settings:` section.
pub(super) fn read(r: &mut Reader, ctx: &Ctx, node: &Node, path: &KeyPath) -> Option<Settings> {
    let mut f = r.fields(node, path)?;
    let root = f
        .require(r, f.line(), "root", "the backup root directory")
        .and_then(|(n, p)| r.nonempty(n, &p).map(|s| ctx.path(&s)));
    let backup_lv = match f.get("backup-lv") {
        Some((n, p)) => r.nonempty(n, &p).and_then(|s| match s.split_once('/') {
            Some((vg, lv)) if !vg.is_empty() && !lv.is_empty() && !lv.contains('/') => {
                Some(Some(VgLv {
                    vg: vg.to_owned(),
                    lv: lv.to_owned(),
                }))
            }
            _ => {
                r.error(n.line, &p, format!("expected `vg/lv`, found `{s}`"));
                None
            }
        }),
        None => Some(None),
    };
    let df_warning = match f.get("df-warning") {
        Some((n, p)) => r.number_in(n, &p, 0.0, 100.0, "a percentage"),
        None => Some(5.0),
    };
    let snapshot_store = match f.get("snapshot-store") {
        Some((n, p)) => r.choice(
            n,
            &p,
            &[
                ("lvm-thin", StoreKind::LvmThin),
                ("btrfs", StoreKind::Btrfs),
                ("dir", StoreKind::Dir),
                ("cephfs", StoreKind::Cephfs),
            ],
        ),
        None => Some(StoreKind::LvmThin),
    };
    let snapshot_dir = get_path(r, ctx, &mut f, "snapshot-dir");
    let stale_days = get_count(r, &mut f, "stale-days", 3, 1);
    let appliance_lease = get_duration(
        r,
        &mut f,
        "appliance-lease",
        DEFAULT_APPLIANCE_LEASE_SECS,
        1,
    );
    let cephfs_max_snapshots = get_count(
        r,
        &mut f,
        "cephfs-max-snapshots",
        DEFAULT_CEPHFS_MAX_SNAPSHOTS,
        2,
    );

    let duplicate_days = get_count(r, &mut f, "gc-duplicate-days", 14, 0);
    let daily_weeks = get_count(r, &mut f, "gc-daily-weeks", 8, 0);
    let weekly_months = get_count(r, &mut f, "gc-weekly-months", 12, 0);
    let log_distinct_days = get_count(r, &mut f, "gc-log-distinct-days", 60, 1);
    let policy_kind = match f.get("gc-policy") {
        Some((n, p)) => r.choice(
            n,
            &p,
            &[
                ("calendar", PolicyKind::Calendar),
                ("hanoi", PolicyKind::Hanoi),
            ],
        ),
        None => Some(PolicyKind::Calendar),
    };
    let hanoi_discs = get_count(r, &mut f, "gc-hanoi-discs", 10, 1);
    let min_free_percent = match f.get("gc-min-free-percent") {
        Some((n, p)) => r.number_in(n, &p, 0.0, 100.0, "a percentage").map(Some),
        None => Some(None),
    };
    let min_free_bytes = match f.get("gc-min-free-bytes") {
        Some((n, p)) => archivers::size(r, n, &p).map(Some),
        None => Some(None),
    };
    let min_keep = get_count(r, &mut f, "gc-min-keep", 3, 1);

    let coda = coda::settings(r, &mut f);
    let github = github::settings(r, ctx, &mut f);
    let rbd = rbd::settings(r, &mut f);
    let rgw = rgw::settings(r, &mut f);
    let rsync = rsync::settings(r, &mut f);
    let dump = dump::settings(r, &mut f);
    let archive = archivers::settings(r, ctx, &mut f);
    let archivers = match f.get("archivers") {
        Some((n, p)) => archivers::profiles(r, ctx, n, &p),
        None => Some(BTreeMap::new()),
    };
    f.finish(r);

    let root = root?;
    let policy = match policy_kind? {
        PolicyKind::Calendar => Policy::Calendar(CalendarPolicy {
            duplicate_days: duplicate_days?,
            daily_weeks: daily_weeks?,
            weekly_months: weekly_months?,
        }),
        PolicyKind::Hanoi => Policy::Hanoi(HanoiPolicy {
            discs: hanoi_discs?,
        }),
    };
    Some(Settings {
        snapshot_dir: snapshot_dir?.unwrap_or_else(|| root.join(".snapshots")),
        root,
        backup_lv: backup_lv?,
        df_warning: df_warning?,
        snapshot_store: snapshot_store?,
        cephfs_max_snapshots: cephfs_max_snapshots?,
        appliance_lease: appliance_lease?,
        stale_days: stale_days?,
        retention: Retention {
            policy,
            log_distinct_days: log_distinct_days?,
            min_free_percent: min_free_percent?,
            min_free_bytes: min_free_bytes?,
            min_keep: min_keep?,
        },
        coda: coda?,
        github: github?,
        rbd: rbd?,
        rgw: rgw?,
        rsync: rsync?,
        dump: dump?,
        archive: archive?,
        archivers: archivers?,
    })
}

#[cfg(test)]
mod tests {

    fn problems(settings: &str) -> Vec<String> {
        crate::config::problem_lines(&format!(
            "settings:\n  root: /nonexistent\n  snapshot-store: dir\n{settings}"
        ))
    }

    #[test]
    fn one_bad_source_key_leaves_the_others_read() {
        // A bad key of one source: its other keys are still known and checked.
        assert_eq!(
            problems(
                "  github-token: t\n  github-token-file: /t\n  github-workers: 3\n  github-git-path: git\n"
            ),
            [
                "5: settings.github-token-file: give either `github-token` or `github-token-file`, not both"
            ]
        );
        assert_eq!(
            problems("  rsync-exclude: x\n  rsync-ssh-options: [-4]\n  rsync-workers: 0\n"),
            [
                "4: settings.rsync-exclude: expected a list of strings, found a string `x`",
                "6: settings.rsync-workers: must be a whole number of at least 1, found 0",
            ]
        );
        // A bad coda key: the rest of settings is still read, unknown keys reported.
        assert_eq!(
            problems("  coda-full-probability: 2\n  rbd-workers: 0\n  bogus: 1\n"),
            [
                "4: settings.coda-full-probability: a probability must be between 0 and 1, found 2",
                "5: settings.rbd-workers: must be a whole number of at least 1, found 0",
                "6: settings.bogus: unknown key `bogus`",
            ]
        );
    }
}

//! The whole file: [`Config`], its top-level sections, and the checks that
//! span sections (units that collide, keys required by what is configured,
//! tools missing on this machine).

use super::appliances::{self, Appliances};
use super::archivers::{self, ArchiveUnitOverride};
use super::coda::{self, CodaVolume};
use super::collisions::check_unit_collisions;
use super::dump::{self, DumpUnit};
use super::fields::Ctx;
use super::github::{self, GithubOrg};
use super::node::{Node, Value};
use super::rbd::{self, RbdPool};
use super::reader::{KeyPath, Reader};
use super::rgw::{self, RgwBucket};
use super::rsync::{self, RsyncHost};
use super::settings::{self, Settings, StoreKind};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A validated config file.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// The file it was read from.
    pub file: PathBuf,
    pub settings: Settings,
    pub rsync: Vec<RsyncHost>,
    pub github: Vec<GithubOrg>,
    pub rbd: Vec<RbdPool>,
    pub rgw: Vec<RgwBucket>,
    pub coda: Vec<CodaVolume>,
    pub dump: Vec<DumpUnit>,
    /// Top-level `appliances:`: who backs up which units of a shared root.
    pub appliances: Appliances,
    /// Top-level `archivers:`: profile -> unit -> overrides.
    pub archive_units: BTreeMap<String, BTreeMap<String, ArchiveUnitOverride>>,
    #[serde(skip)]
    pub warnings: Vec<super::Problem>,
    /// The line of `settings.root`, for errors found when the root is used.
    #[serde(skip)]
    pub root_line: u64,
    /// The text and tree it was read from, for [`Config::unit_config_text`].
    #[serde(skip)]
    pub(super) origin: Option<std::sync::Arc<super::job::Origin>>,
}

/// The config, and the line where each unit is defined.
pub(super) fn build(
    r: &mut Reader,
    doc: &Node,
    file: &Path,
    base: &Path,
) -> Option<(Config, Vec<(super::UnitPath, u64)>)> {
    let ctx = Ctx { base };
    let top = KeyPath::root();
    let mut f = r.fields(doc, &top)?;
    let settings_node = f.get("settings");
    let settings = if let Some((n, p)) = settings_node {
        settings::read(r, &ctx, n, &p)
    } else {
        r.error(
            doc.line.max(1),
            &top.key("settings"),
            "missing required section `settings` (with at least `root`)",
        );
        None
    };
    // The sources, in the order their unknown-key suggestions are tried.
    let rsync = f
        .get("rsync")
        .map(|(n, p)| rsync::hosts(r, &ctx, n, &p))
        .unwrap_or_default();
    let github = f
        .get("github")
        .map(|(n, p)| github::orgs(r, n, &p))
        .unwrap_or_default();
    let rbd = f
        .get("rbd")
        .map(|(n, p)| rbd::pools(r, n, &p))
        .unwrap_or_default();
    let rgw = f
        .get("rgw")
        .map(|(n, p)| rgw::buckets(r, n, &p))
        .unwrap_or_default();
    let coda = f
        .get("coda")
        .map(|(n, p)| coda::volumes(r, &ctx, n, &p))
        .unwrap_or_default();
    let dump = f
        .get("dump")
        .map(|(n, p)| dump::units(r, &ctx, n, &p))
        .unwrap_or_default();
    let appliances = f
        .get("appliances")
        .map(|(n, p)| appliances::read(r, n, &p))
        .unwrap_or_default();
    let archive_units = f
        .get("archivers")
        .map(|(n, p)| archivers::unit_overrides(r, n, &p))
        .unwrap_or_default();
    f.finish(r);
    let settings = settings?;

    // Cross-section checks.
    archive_units.check_profiles(r, &settings.archivers);
    let defined: Vec<_> = [
        rsync.defined,
        github.defined,
        rbd.defined,
        rgw.defined,
        coda.defined,
        dump.defined,
    ]
    .into_iter()
    .flatten()
    .collect();
    let config = Config {
        file: file.to_owned(),
        settings,
        rsync: rsync.items,
        github: github.items,
        rbd: rbd.items,
        rgw: rgw.items,
        coda: coda.items,
        dump: dump.items,
        appliances,
        archive_units: archive_units.by_profile,
        warnings: Vec::new(),
        root_line: settings_line(doc, "root"),
        origin: None,
    };
    check_unit_collisions(r, &defined);
    check_requirements(r, &config, doc);
    let lines: Vec<_> = defined.into_iter().map(|d| (d.unit, d.line)).collect();
    appliances::check_ownership(r, &config.appliances, &lines, &top.key("appliances"));
    Some((config, lines))
}

/// The line of `settings.<key>`, or of `settings:` when the key is absent
/// (every problem carries a line, even one about the machine).
fn settings_line(doc: &Node, key: &str) -> u64 {
    let Value::Map(top) = &doc.value else {
        return doc.line.max(1);
    };
    let Some((skey, settings)) = top.iter().find(|(k, _)| k.name == "settings") else {
        return doc.line.max(1);
    };
    if let Value::Map(entries) = &settings.value
        && let Some((k, _)) = entries.iter().find(|(k, _)| k.name == key)
    {
        return k.line;
    }
    skey.line.max(1)
}

/// Horizon of the simulated daily runs behind the CephFS limit warning.
const CEPHFS_LIMIT_HORIZON_DAYS: u32 = 10 * 365;

/// `snapshot-store: cephfs`: warn when the retention policy, with one run
/// a day, would keep more snapshots than the directory may hold.
fn cephfs_limit_warning(r: &mut Reader, s: &super::Settings, line: u64, at: &KeyPath) {
    let limit = s.cephfs_max_snapshots;
    // why: a fixed start keeps the message the same from one day to the next
    let start = chrono::NaiveDate::from_ymd_opt(2026, 1, 5).expect("a valid date");
    if let Some((day, _)) = crate::retention::snap_limit::first_day_over(
        &s.retention.policy,
        limit,
        start,
        CEPHFS_LIMIT_HORIZON_DAYS,
    ) {
        r.warn(
            line,
            at,
            format!(
                "with one run a day this policy keeps more than cephfs-max-snapshots ({limit}) \
                 snapshots after {day} days, and CephFS refuses a snapshot past \
                 mds_max_snaps_per_dir (EMLINK); `strata prune` removes the oldest kept \
                 snapshots (monthly first) to stay below it. To keep them instead, raise the \
                 limit (`ceph config set mds mds_max_snaps_per_dir N`) and set \
                 cephfs-max-snapshots to N"
            ),
        );
    }
}

fn check_requirements(r: &mut Reader, c: &Config, doc: &Node) {
    let s = &c.settings;
    let at = |key: &str| KeyPath::root().key("settings").key(key);
    let line = |key: &str| settings_line(doc, key);
    if !c.github.is_empty() && s.github.token.is_none() {
        r.error(
            line("github-token"),
            &at("github-token"),
            "required when github organizations are configured (or give github-token-file)",
        );
    }
    if !c.rgw.is_empty() && s.rgw.server.is_none() {
        r.error(
            line("rgw-server"),
            &at("rgw-server"),
            "required when rgw buckets are configured",
        );
    }
    if s.snapshot_store == StoreKind::LvmThin && s.backup_lv.is_none() {
        r.error(line("snapshot-store"), &at("backup-lv"), "required by snapshot-store lvm-thin (the default); give `vg/lv`, or set snapshot-store to btrfs or dir");
    }
    if s.archive.gpg_signing_key.is_some() == s.archive.gpg_recipients.is_empty() {
        r.error(line("archive-gpg-recipients"), &at("archive-gpg-recipients"), "archive-gpg-signing-key and archive-gpg-recipients must be given together to encrypt archives");
    }
    if !c.appliances.is_empty() && matches!(s.snapshot_store, StoreKind::LvmThin | StoreKind::Btrfs)
    {
        let kind = if s.snapshot_store == StoreKind::Btrfs {
            "btrfs"
        } else {
            "lvm-thin"
        };
        r.error(
            line("snapshot-store"),
            &at("snapshot-store"),
            format!("several appliances need a root they all mount: snapshot-store cephfs (or dir, on a shared file system); {kind} is one machine's"),
        );
    }
    if s.snapshot_store == StoreKind::Cephfs {
        cephfs_limit_warning(r, s, line("gc-policy"), &at("gc-policy"));
    }
    // Machine state: warnings only (DESIGN §8).
    match std::fs::metadata(&s.root) {
        Ok(m) if !m.is_dir() => r.error(
            line("root"),
            &at("root"),
            format!("{} exists but is not a directory", s.root.display()),
        ),
        Ok(_) => {}
        Err(_) => r.warn(
            line("root"),
            &at("root"),
            format!(
                "{} does not exist (yet): commands that use it will refuse to run",
                s.root.display()
            ),
        ),
    }
    let mut tool = |name: &str, key: &str, needed: bool| {
        if needed && !crate::exec::tool_exists(name) {
            r.warn(
                line(key),
                &at(key),
                format!("`{name}` was not found on this machine"),
            );
        }
    };
    tool(
        &s.rsync.local_binary,
        "rsync-local-binary",
        !c.rsync.is_empty(),
    );
    tool(&s.github.git_path, "github-git-path", !c.github.is_empty());
    tool(
        &s.archive.tar_path,
        "archive-tar-path",
        !s.archivers.is_empty(),
    );
    tool(
        &s.archive.gpg_path,
        "archive-gpg-path",
        !s.archivers.is_empty() && s.archive.gpg_signing_key.is_some(),
    );
    tool("rbd", "rbd", !c.rbd.is_empty());
    tool("radosgw-admin", "rgw-server", !c.rgw.is_empty());
}

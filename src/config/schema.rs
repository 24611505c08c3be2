//! The validated configuration types and how the raw tree becomes them.
//! Defaults are those of Deltaic's example-config.yaml (DESIGN Appendix A).

use super::node::Node;
use super::reader::{Fields, KeyPath, Reader};
use super::secret::Secret;
use crate::names::UnitPath;
use crate::retention::{CalendarPolicy, HanoiPolicy, Policy};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
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
    /// Top-level `archivers:`: profile -> unit -> overrides.
    pub archive_units: BTreeMap<String, BTreeMap<String, ArchiveUnitOverride>>,
    #[serde(skip)]
    pub warnings: Vec<super::Problem>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StoreKind {
    LvmThin,
    Btrfs,
    Dir,
}

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
    pub min_keep: u32,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct CodaSettings {
    pub full_probability: f64,
    pub volutil_path: String,
    pub codadump2tar_path: String,
    pub workers: u32,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct GithubSettings {
    pub token: Option<Secret>,
    pub scrub_probability: f64,
    pub git_path: String,
    pub workers: u32,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct RbdSettings {
    pub scrub_probability: f64,
    pub workers: u32,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct RgwSettings {
    pub server: Option<String>,
    pub secure: bool,
    pub scrub_acl_probability: f64,
    pub scrub_probability: f64,
    pub threads: u32,
    pub workers: u32,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct RsyncSettings {
    pub local_binary: String,
    pub exclude: Vec<String>,
    pub scrub_probability: f64,
    pub workers: u32,
    pub ssh_options: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct DumpSettings {
    pub scrub_probability: f64,
    pub workers: u32,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ArchiveSettings {
    pub spool: Option<PathBuf>,
    pub gpg_signing_key: Option<String>,
    pub gpg_recipients: Vec<String>,
    pub tar_path: String,
    pub gpg_path: String,
    pub googledrive_client_id: Option<String>,
    pub googledrive_client_secret: Option<Secret>,
    pub googledrive_credentials_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Compression {
    Gzip,
    Lzop,
    Lz4,
    Zstd,
    None,
}

pub const COMPRESSIONS: &[(&str, Compression)] = &[
    ("gzip", Compression::Gzip),
    ("lzop", Compression::Lzop),
    ("lz4", Compression::Lz4),
    ("zstd", Compression::Zstd),
    ("none", Compression::None),
];

impl Compression {
    #[must_use]
    pub fn name(self) -> &'static str {
        COMPRESSIONS
            .iter()
            .find(|(_, c)| *c == self)
            .map_or("none", |(n, _)| n)
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ArchiverProfile {
    pub name: String,
    pub archiver: ArchiverKind,
    pub compression: Compression,
    pub keep_count: u32,
    pub workers: u32,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case", tag = "archiver")]
pub enum ArchiverKind {
    Aws {
        access_key_id: String,
        secret_access_key: Secret,
        region: String,
        namespace: String,
        storage_cost: f64,
    },
    Googledrive,
    S3(S3Profile),
    Local {
        path: PathBuf,
    },
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct S3Profile {
    pub bucket: String,
    pub prefix: String,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<Secret>,
    pub secret_access_key: Option<Secret>,
    pub storage_class: String,
    pub restore_tier: RestoreTier,
    pub restore_days: u32,
    /// storage class -> prices
    pub prices: BTreeMap<String, S3Price>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestoreTier {
    Bulk,
    Standard,
    Expedited,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct S3Price {
    /// $ per GB-month stored.
    pub storage: f64,
    /// $ per GB retrieved.
    pub retrieval: f64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ArchiveUnitOverride {
    pub compression: Option<Compression>,
    pub skip: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Transport {
    Ssh,
    Local,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct RsyncHost {
    pub host: String,
    pub unit: UnitPath,
    pub mounts: Vec<String>,
    pub alias: String,
    pub user: String,
    pub pre: Option<String>,
    pub post: Option<String>,
    pub exclude: Vec<String>,
    pub ssh_port: Option<u32>,
    pub ssh_identity: Option<PathBuf>,
    pub transport: Transport,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct GithubOrg {
    pub org: String,
    pub unit: UnitPath,
    pub organization_metadata: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct RbdPool {
    pub pool: String,
    /// friendly name -> RBD image name
    pub images: Vec<RbdItem>,
    /// friendly name -> RBD snapshot: a snapshot name found in the pool (as
    /// Deltaic), or `image@snap`
    pub snapshots: Vec<RbdItem>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct RbdItem {
    pub friendly: String,
    pub rbd_name: String,
    pub unit: UnitPath,
}

#[derive(Debug, Clone, Serialize)]
pub struct RgwBucket {
    pub bucket: String,
    pub unit: UnitPath,
}

#[derive(Debug, Clone, Serialize)]
pub struct CodaVolume {
    pub server: String,
    pub volume: String,
    pub unit: UnitPath,
}

/// How a dump unit's command is given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DumpCommand {
    /// An argument vector, run as is.
    Argv(Vec<String>),
    /// One string, run by `/bin/sh -c` (the deliberate exception of STYLE rule 2).
    Shell(String),
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct DumpUnit {
    pub name: String,
    pub unit: UnitPath,
    pub command: DumpCommand,
    /// File name inside the unit directory.
    pub file: String,
    /// Run the command as this user (through `sudo -n -u`).
    pub user: Option<String>,
    /// Per-unit scrub probability (overrides `dump-scrub-probability`).
    pub scrub: Option<f64>,
    /// Working directory of the command: the config file's directory.
    pub cwd: PathBuf,
}

// ---- building ------------------------------------------------------------

const TOP_KEYS: &[&str] = &[
    "settings",
    "coda",
    "github",
    "rbd",
    "rgw",
    "rsync",
    "archivers",
    "dump",
];

struct Ctx<'a> {
    base: &'a Path,
}

impl Ctx<'_> {
    fn path(&self, s: &str) -> PathBuf {
        let p = Path::new(s);
        if p.is_absolute() {
            p.to_owned()
        } else {
            self.base.join(p)
        }
    }
}

pub(super) fn build(r: &mut Reader, doc: &Node, file: &Path, base: &Path) -> Option<Config> {
    let ctx = Ctx { base };
    let top = KeyPath::root();
    let mut f = r.fields(doc, &top)?;
    let settings_node = f.get("settings");
    let settings = if let Some((n, p)) = settings_node {
        settings(r, &ctx, n, &p)
    } else {
        r.error(
            doc.line.max(1),
            &top.key("settings"),
            "missing required section `settings` (with at least `root`)",
        );
        None
    };
    let rsync = f
        .get("rsync")
        .map(|(n, p)| rsync_hosts(r, &ctx, n, &p))
        .unwrap_or_default();
    let github = f
        .get("github")
        .map(|(n, p)| github_orgs(r, n, &p))
        .unwrap_or_default();
    let rbd = f
        .get("rbd")
        .map(|(n, p)| rbd_pools(r, n, &p))
        .unwrap_or_default();
    let rgw = f
        .get("rgw")
        .map(|(n, p)| rgw_buckets(r, n, &p))
        .unwrap_or_default();
    let coda = f
        .get("coda")
        .map(|(n, p)| coda_volumes(r, n, &p))
        .unwrap_or_default();
    let dump = f
        .get("dump")
        .map(|(n, p)| dump_units(r, &ctx, n, &p))
        .unwrap_or_default();
    let archive_units = f
        .get("archivers")
        .map(|(n, p)| archive_units(r, n, &p))
        .unwrap_or_default();
    let _ = TOP_KEYS;
    f.finish(r);
    let settings = settings?;

    // Cross-section checks.
    for (profile, (line, path)) in archive_units.1 {
        if !settings.archivers.contains_key(&profile) {
            let known: Vec<&str> = settings.archivers.keys().map(String::as_str).collect();
            let mut msg =
                format!("archiver profile `{profile}` is not defined under settings.archivers");
            if let Some(best) = super::reader::closest(&profile, &known) {
                let _ = write!(msg, " (did you mean `{best}`?)");
            }
            r.error(line, &path, msg);
        }
    }
    let config = Config {
        file: file.to_owned(),
        settings,
        rsync: rsync.0,
        github: github.0,
        rbd: rbd.0,
        rgw: rgw.0,
        coda: coda.0,
        dump: dump.0,
        archive_units: archive_units.0,
        warnings: Vec::new(),
    };
    let lines: Vec<(UnitPath, u64, KeyPath)> = [rsync.1, github.1, rbd.1, rgw.1, coda.1, dump.1]
        .into_iter()
        .flatten()
        .collect();
    check_unit_collisions(r, &lines);
    check_requirements(r, &config, doc);
    Some(config)
}

/// Two units that would share a directory (two hosts with one alias, a bucket
/// listed twice) are an error naming both places.
fn check_unit_collisions(r: &mut Reader, units: &[(UnitPath, u64, KeyPath)]) {
    let mut seen: BTreeMap<&UnitPath, (u64, &KeyPath)> = BTreeMap::new();
    for (unit, line, path) in units {
        if let Some((first_line, first_path)) = seen.get(unit) {
            r.error(
                *line,
                path,
                format!(
                    "unit {unit} is already defined by {} (line {first_line}): two units cannot share one directory",
                    first_path.as_str()
                ),
            );
        } else {
            seen.insert(unit, (*line, path));
        }
        // A unit nested inside another (github/org and github/org/repo is by design; others are not).
        for (other, (oline, opath)) in &seen {
            if *other != unit && unit.source() != "github" {
                let (a, b) = (unit.as_str(), other.as_str());
                if a.starts_with(&format!("{b}/")) || b.starts_with(&format!("{a}/")) {
                    r.error(
                        *line,
                        path,
                        format!(
                            "unit {unit} overlaps unit {other} defined by {} (line {oline})",
                            opath.as_str()
                        ),
                    );
                }
            }
        }
    }
}

fn check_requirements(r: &mut Reader, c: &Config, doc: &Node) {
    let s = &c.settings;
    let at = |key: &str| KeyPath::root().key("settings").key(key);
    if !c.github.is_empty() && s.github.token.is_none() {
        r.error(
            doc.line.max(1),
            &at("github-token"),
            "required when github organizations are configured (or give github-token-file)",
        );
    }
    if !c.rgw.is_empty() && s.rgw.server.is_none() {
        r.error(
            doc.line.max(1),
            &at("rgw-server"),
            "required when rgw buckets are configured",
        );
    }
    if s.snapshot_store == StoreKind::LvmThin && s.backup_lv.is_none() {
        r.error(doc.line.max(1), &at("backup-lv"), "required by snapshot-store lvm-thin (the default); give `vg/lv`, or set snapshot-store to btrfs or dir");
    }
    if s.archive.gpg_signing_key.is_some() == s.archive.gpg_recipients.is_empty() {
        r.error(doc.line.max(1), &at("archive-gpg-recipients"), "archive-gpg-signing-key and archive-gpg-recipients must be given together to encrypt archives");
    }
    // Machine state: warnings only (DESIGN §8).
    match std::fs::metadata(&s.root) {
        Ok(m) if !m.is_dir() => r.error(
            0,
            &at("root"),
            format!("{} exists but is not a directory", s.root.display()),
        ),
        Ok(_) => {}
        Err(_) => r.warn(
            0,
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
                0,
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

fn get_count(
    r: &mut Reader,
    f: &mut Fields,
    key: &'static str,
    default: u32,
    min: u32,
) -> Option<u32> {
    match f.get(key) {
        Some((n, p)) => r.count(n, &p, min),
        None => Some(default),
    }
}

fn get_prob(r: &mut Reader, f: &mut Fields, key: &'static str, default: f64) -> Option<f64> {
    match f.get(key) {
        Some((n, p)) => r.probability(n, &p),
        None => Some(default),
    }
}

// why: outer None = a problem already reported to the reader; inner None = key absent
#[allow(clippy::option_option)]
fn get_string(r: &mut Reader, f: &mut Fields, key: &'static str) -> Option<Option<String>> {
    match f.get(key) {
        Some((n, p)) => r.nonempty(n, &p).map(Some),
        None => Some(None),
    }
}

fn get_string_or(
    r: &mut Reader,
    f: &mut Fields,
    key: &'static str,
    default: &str,
) -> Option<String> {
    get_string(r, f, key).map(|s| s.unwrap_or_else(|| default.to_owned()))
}

fn get_bool(r: &mut Reader, f: &mut Fields, key: &'static str, default: bool) -> Option<bool> {
    match f.get(key) {
        Some((n, p)) => r.boolean(n, &p),
        None => Some(default),
    }
}

fn get_strings(r: &mut Reader, f: &mut Fields, key: &'static str) -> Option<Vec<String>> {
    match f.get(key) {
        Some((n, p)) => r.strings(n, &p),
        None => Some(Vec::new()),
    }
}

#[allow(clippy::option_option)] // why: as get_string
fn get_path(
    r: &mut Reader,
    ctx: &Ctx,
    f: &mut Fields,
    key: &'static str,
) -> Option<Option<PathBuf>> {
    get_string(r, f, key).map(|s| s.map(|s| ctx.path(&s)))
}

/// `key` inline or `key-file` as a path; both is an error.
#[allow(clippy::option_option)] // why: as get_string
fn get_secret(
    r: &mut Reader,
    ctx: &Ctx,
    f: &mut Fields,
    key: &'static str,
    file_key: &'static str,
) -> Option<Option<Secret>> {
    let inline = get_string(r, f, key)?;
    let file = get_path(r, ctx, f, file_key)?;
    match (inline, file) {
        (Some(_), Some(_)) => {
            let line = f.get(file_key).map_or(f.line(), |(n, _)| n.line);
            r.error(
                line,
                &f.path().key(file_key),
                format!("give either `{key}` or `{file_key}`, not both"),
            );
            None
        }
        (Some(s), None) => Some(Some(Secret::Inline(s))),
        (None, Some(p)) => Some(Some(Secret::File(p))),
        (None, None) => Some(None),
    }
}

/// The snapshot retention policy `gc-policy` names.
#[derive(Clone, Copy)]
enum PolicyKind {
    Calendar,
    Hanoi,
}

#[allow(clippy::too_many_lines)] // why: one key after another, in Appendix A's order
fn settings(r: &mut Reader, ctx: &Ctx, node: &Node, path: &KeyPath) -> Option<Settings> {
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
            ],
        ),
        None => Some(StoreKind::LvmThin),
    };
    let snapshot_dir = get_path(r, ctx, &mut f, "snapshot-dir");
    let stale_days = get_count(r, &mut f, "stale-days", 3, 1);

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
    let min_keep = get_count(r, &mut f, "gc-min-keep", 3, 1);

    let coda = CodaSettings {
        full_probability: get_prob(r, &mut f, "coda-full-probability", 0.143)?,
        volutil_path: get_string_or(r, &mut f, "coda-volutil-path", "volutil")?,
        codadump2tar_path: get_string_or(r, &mut f, "coda-codadump2tar-path", "codadump2tar")?,
        workers: get_count(r, &mut f, "coda-workers", 1, 1)?,
    };
    let github = (|| {
        Some(GithubSettings {
            token: get_secret(r, ctx, &mut f, "github-token", "github-token-file")?,
            scrub_probability: get_prob(r, &mut f, "github-scrub-probability", 0.0166)?,
            git_path: get_string_or(r, &mut f, "github-git-path", "git")?,
            workers: get_count(r, &mut f, "github-workers", 1, 1)?,
        })
    })();
    let rbd = (|| {
        Some(RbdSettings {
            scrub_probability: get_prob(r, &mut f, "rbd-scrub-probability", 0.0166)?,
            workers: get_count(r, &mut f, "rbd-workers", 1, 1)?,
        })
    })();
    let rgw = (|| {
        Some(RgwSettings {
            server: get_string(r, &mut f, "rgw-server")?,
            secure: get_bool(r, &mut f, "rgw-secure", false)?,
            scrub_acl_probability: get_prob(r, &mut f, "rgw-scrub-acl-probability", 0.0)?,
            scrub_probability: get_prob(r, &mut f, "rgw-scrub-probability", 0.0166)?,
            threads: get_count(r, &mut f, "rgw-threads", 4, 1)?,
            workers: get_count(r, &mut f, "rgw-workers", 1, 1)?,
        })
    })();
    let rsync = (|| {
        Some(RsyncSettings {
            local_binary: get_string_or(r, &mut f, "rsync-local-binary", "rsync")?,
            exclude: get_strings(r, &mut f, "rsync-exclude")?,
            scrub_probability: get_prob(r, &mut f, "rsync-scrub-probability", 0.0166)?,
            workers: get_count(r, &mut f, "rsync-workers", 1, 1)?,
            ssh_options: get_strings(r, &mut f, "rsync-ssh-options")?,
        })
    })();
    let dump = (|| {
        Some(DumpSettings {
            scrub_probability: get_prob(r, &mut f, "dump-scrub-probability", 0.0166)?,
            workers: get_count(r, &mut f, "dump-workers", 1, 1)?,
        })
    })();
    let archive = (|| {
        Some(ArchiveSettings {
            spool: get_path(r, ctx, &mut f, "archive-spool")?,
            gpg_signing_key: get_string(r, &mut f, "archive-gpg-signing-key")?,
            gpg_recipients: get_strings(r, &mut f, "archive-gpg-recipients")?,
            tar_path: get_string_or(r, &mut f, "archive-tar-path", "tar")?,
            gpg_path: get_string_or(r, &mut f, "archive-gpg-path", "gpg")?,
            googledrive_client_id: get_string(r, &mut f, "googledrive-client-id")?,
            googledrive_client_secret: get_secret(
                r,
                ctx,
                &mut f,
                "googledrive-client-secret",
                "googledrive-client-secret-file",
            )?,
            googledrive_credentials_file: get_path(r, ctx, &mut f, "googledrive-credentials-file")?,
        })
    })();
    let archivers = match f.get("archivers") {
        Some((n, p)) => archiver_profiles(r, ctx, n, &p),
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
        stale_days: stale_days?,
        retention: Retention {
            policy,
            log_distinct_days: log_distinct_days?,
            min_free_percent: min_free_percent?,
            min_keep: min_keep?,
        },
        coda,
        github: github?,
        rbd: rbd?,
        rgw: rgw?,
        rsync: rsync?,
        dump: dump?,
        archive: archive?,
        archivers: archivers?,
    })
}

const AWS_KEYS: &[&str] = &[
    "aws-access-key-id",
    "aws-secret-access-key",
    "aws-secret-access-key-file",
    "aws-region",
    "aws-namespace",
    "aws-storage-cost",
];
const S3_KEYS: &[&str] = &[
    "s3-bucket",
    "s3-prefix",
    "s3-endpoint",
    "s3-region",
    "s3-access-key-id",
    "s3-access-key-id-file",
    "s3-secret-access-key",
    "s3-secret-access-key-file",
    "s3-storage-class",
    "s3-restore-tier",
    "s3-restore-days",
    "s3-prices",
];
const LOCAL_KEYS: &[&str] = &["local-path"];

fn archiver_profiles(
    r: &mut Reader,
    ctx: &Ctx,
    node: &Node,
    path: &KeyPath,
) -> Option<BTreeMap<String, ArchiverProfile>> {
    let mut out = BTreeMap::new();
    let mut ok = true;
    for (key, n) in r.named_entries(node, path) {
        match archiver_profile(r, ctx, &key.name, n, &path.key(&key.name)) {
            Some(p) => {
                out.insert(key.name.clone(), p);
            }
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn archiver_profile(
    r: &mut Reader,
    ctx: &Ctx,
    name: &str,
    node: &Node,
    path: &KeyPath,
) -> Option<ArchiverProfile> {
    #[derive(Clone, Copy, PartialEq)]
    enum K {
        Aws,
        Googledrive,
        S3,
        Local,
    }
    let mut f = r.fields(node, path)?;
    let kind = f
        .require(r, f.line(), "archiver", "aws, googledrive, s3 or local")
        .and_then(|(n, p)| {
            r.choice(
                n,
                &p,
                &[
                    ("aws", K::Aws),
                    ("googledrive", K::Googledrive),
                    ("s3", K::S3),
                    ("local", K::Local),
                ],
            )
        });
    let compression = match f.get("compression") {
        Some((n, p)) => r.choice(n, &p, COMPRESSIONS),
        None => Some(Compression::Gzip),
    };
    let keep_count = get_count(r, &mut f, "keep-count", 1, 1);
    let workers = get_count(r, &mut f, "workers", 8, 1);
    let kind = kind?;
    // Keys of another archiver kind are a mistake worth naming precisely.
    for (keys, k, label) in [
        (AWS_KEYS, K::Aws, "aws"),
        (S3_KEYS, K::S3, "s3"),
        (LOCAL_KEYS, K::Local, "local"),
    ] {
        if k != kind {
            for key in keys {
                if f.has(key) {
                    let (n, p) = f.get(key).expect("has() said present");
                    r.error(n.line, &p, format!("`{key}` belongs to archiver `{label}`, but this profile's archiver is another"));
                }
            }
        }
    }
    let required = |r: &mut Reader, f: &mut Fields, key: &'static str| -> Option<String> {
        let (n, p) = f.require(r, f.line(), key, "")?;
        r.nonempty(n, &p)
    };
    let archiver = match kind {
        K::Aws => {
            let access_key_id = required(r, &mut f, "aws-access-key-id");
            let secret = get_secret(
                r,
                ctx,
                &mut f,
                "aws-secret-access-key",
                "aws-secret-access-key-file",
            );
            let region = required(r, &mut f, "aws-region");
            let namespace = required(r, &mut f, "aws-namespace");
            let storage_cost = match f.get("aws-storage-cost") {
                Some((n, p)) => r.number_in(n, &p, 0.0, 1e6, "a price"),
                None => Some(0.01),
            };
            let secret_access_key = if let Some(s) = secret? {
                Some(s)
            } else {
                r.error(f.line(), &path.key("aws-secret-access-key"), "missing required key `aws-secret-access-key` (or `aws-secret-access-key-file`)");
                None
            };
            ArchiverKind::Aws {
                access_key_id: access_key_id?,
                secret_access_key: secret_access_key?,
                region: region?,
                namespace: namespace?,
                storage_cost: storage_cost?,
            }
        }
        K::Googledrive => ArchiverKind::Googledrive,
        K::Local => {
            let p = required(r, &mut f, "local-path")?;
            ArchiverKind::Local { path: ctx.path(&p) }
        }
        K::S3 => {
            let bucket = required(r, &mut f, "s3-bucket");
            let prefix = get_string(r, &mut f, "s3-prefix").map(Option::unwrap_or_default);
            let endpoint = get_string(r, &mut f, "s3-endpoint");
            let region = get_string(r, &mut f, "s3-region");
            let access_key_id =
                get_secret(r, ctx, &mut f, "s3-access-key-id", "s3-access-key-id-file");
            let secret_access_key = get_secret(
                r,
                ctx,
                &mut f,
                "s3-secret-access-key",
                "s3-secret-access-key-file",
            );
            let storage_class = match f.get("s3-storage-class") {
                Some((n, p)) => r.choice(
                    n,
                    &p,
                    &[
                        ("STANDARD", "STANDARD"),
                        ("STANDARD_IA", "STANDARD_IA"),
                        ("ONEZONE_IA", "ONEZONE_IA"),
                        ("INTELLIGENT_TIERING", "INTELLIGENT_TIERING"),
                        ("GLACIER", "GLACIER"),
                        ("GLACIER_IR", "GLACIER_IR"),
                        ("DEEP_ARCHIVE", "DEEP_ARCHIVE"),
                    ],
                ),
                None => Some("STANDARD"),
            };
            let restore_tier = match f.get("s3-restore-tier") {
                Some((n, p)) => r.choice(
                    n,
                    &p,
                    &[
                        ("bulk", RestoreTier::Bulk),
                        ("standard", RestoreTier::Standard),
                        ("expedited", RestoreTier::Expedited),
                    ],
                ),
                None => Some(RestoreTier::Bulk),
            };
            let restore_days = get_count(r, &mut f, "s3-restore-days", 7, 1);
            let prices = match f.get("s3-prices") {
                Some((n, p)) => s3_prices(r, n, &p),
                None => Some(BTreeMap::new()),
            };
            ArchiverKind::S3(S3Profile {
                bucket: bucket?,
                prefix: prefix?,
                endpoint: endpoint?,
                region: region?,
                access_key_id: access_key_id?,
                secret_access_key: secret_access_key?,
                storage_class: storage_class?.to_owned(),
                restore_tier: restore_tier?,
                restore_days: restore_days?,
                prices: prices?,
            })
        }
    };
    f.finish(r);
    Some(ArchiverProfile {
        name: name.to_owned(),
        archiver,
        compression: compression?,
        keep_count: keep_count?,
        workers: workers?,
    })
}

fn s3_prices(r: &mut Reader, node: &Node, path: &KeyPath) -> Option<BTreeMap<String, S3Price>> {
    let mut out = BTreeMap::new();
    let mut ok = true;
    for (key, n) in r.named_entries(node, path) {
        let p = path.key(&key.name);
        let Some(mut f) = r.fields(n, &p) else {
            ok = false;
            continue;
        };
        let storage = match f.get("storage") {
            Some((n, p)) => r.number_in(n, &p, 0.0, 1e6, "a price"),
            None => Some(0.0),
        };
        let retrieval = match f.get("retrieval") {
            Some((n, p)) => r.number_in(n, &p, 0.0, 1e6, "a price"),
            None => Some(0.0),
        };
        f.finish(r);
        match (storage, retrieval) {
            (Some(storage), Some(retrieval)) => {
                out.insert(key.name.clone(), S3Price { storage, retrieval });
            }
            _ => ok = false,
        }
    }
    ok.then_some(out)
}

type Located<T> = (Vec<T>, Vec<(UnitPath, u64, KeyPath)>);

/// Make a unit path from parts, reporting an unsafe name at `line`.
fn unit_path(r: &mut Reader, parts: &[&str], line: u64, path: &KeyPath) -> Option<UnitPath> {
    match UnitPath::from_parts(parts) {
        Ok(u) => Some(u),
        Err(e) => {
            r.error(
                line,
                path,
                format!("{e}: it must be usable as a directory name"),
            );
            None
        }
    }
}

fn rsync_hosts(r: &mut Reader, ctx: &Ctx, node: &Node, path: &KeyPath) -> Located<RsyncHost> {
    let mut out = (Vec::new(), Vec::new());
    for (key, n) in r.named_entries(node, path) {
        let p = path.key(&key.name);
        let Some(mut f) = r.fields(n, &p) else {
            continue;
        };
        let mounts = f
            .require(r, key.line, "mounts", "the paths to back up")
            .and_then(|(n, mp)| {
                r.strings(n, &mp).and_then(|m| {
                    if m.is_empty() {
                        r.error(n.line, &mp, "must list at least one path");
                        None
                    } else if let Some(bad) = m.iter().find(|m| !m.starts_with('/')) {
                        r.error(n.line, &mp, format!("`{bad}` is not an absolute path"));
                        None
                    } else {
                        Some(m)
                    }
                })
            });
        let default_alias = key.name.split('.').next().unwrap_or(&key.name).to_owned();
        let alias = get_string_or(r, &mut f, "alias", &default_alias);
        let user = get_string_or(r, &mut f, "user", "root");
        let pre = get_string(r, &mut f, "pre");
        let post = get_string(r, &mut f, "post");
        let exclude = get_strings(r, &mut f, "exclude");
        let ssh_port = match f.get("ssh-port") {
            Some((n, pp)) => r.count(n, &pp, 1).and_then(|v| {
                if v > 65535 {
                    r.error(
                        n.line,
                        &pp,
                        format!("a TCP port must be at most 65535, found {v}"),
                    );
                    None
                } else {
                    Some(Some(v))
                }
            }),
            None => Some(None),
        };
        let ssh_identity = get_path(r, ctx, &mut f, "ssh-identity");
        let transport = match f.get("transport") {
            Some((n, tp)) => r.choice(
                n,
                &tp,
                &[("ssh", Transport::Ssh), ("local", Transport::Local)],
            ),
            None => Some(Transport::Ssh),
        };
        f.finish(r);
        let (
            Some(mounts),
            Some(alias),
            Some(user),
            Some(pre),
            Some(post),
            Some(exclude),
            Some(ssh_port),
            Some(ssh_identity),
            Some(transport),
        ) = (
            mounts,
            alias,
            user,
            pre,
            post,
            exclude,
            ssh_port,
            ssh_identity,
            transport,
        )
        else {
            continue;
        };
        let Some(unit) = unit_path(r, &["rsync", &alias], key.line, &p.key("alias")) else {
            continue;
        };
        out.1.push((unit.clone(), key.line, p.clone()));
        out.0.push(RsyncHost {
            host: key.name.clone(),
            unit,
            mounts,
            alias,
            user,
            pre,
            post,
            exclude,
            ssh_port,
            ssh_identity,
            transport,
        });
    }
    out
}

fn github_orgs(r: &mut Reader, node: &Node, path: &KeyPath) -> Located<GithubOrg> {
    let mut out = (Vec::new(), Vec::new());
    for (key, n) in r.named_entries(node, path) {
        let p = path.key(&key.name);
        let Some(mut f) = r.fields(n, &p) else {
            continue;
        };
        let meta = get_bool(r, &mut f, "organization-metadata", true);
        f.finish(r);
        let (Some(meta), Some(unit)) = (meta, unit_path(r, &["github", &key.name], key.line, &p))
        else {
            continue;
        };
        out.1.push((unit.clone(), key.line, p));
        out.0.push(GithubOrg {
            org: key.name.clone(),
            unit,
            organization_metadata: meta,
        });
    }
    out
}

fn rbd_pools(r: &mut Reader, node: &Node, path: &KeyPath) -> Located<RbdPool> {
    let mut out = (Vec::new(), Vec::new());
    for (key, n) in r.named_entries(node, path) {
        let p = path.key(&key.name);
        let Some(mut f) = r.fields(n, &p) else {
            continue;
        };
        let mut pool = RbdPool {
            pool: key.name.clone(),
            images: Vec::new(),
            snapshots: Vec::new(),
        };
        for (section, label) in [("images", "images"), ("snapshots", "snapshots")] {
            let Some((sn, sp)) = f.get(section) else {
                continue;
            };
            for (fk, fnode) in r.named_entries(sn, &sp) {
                let ip = sp.key(&fk.name);
                let Some(rbd_name) = r.nonempty(fnode, &ip) else {
                    continue;
                };
                let Some(unit) = unit_path(r, &["rbd", &key.name, label, &fk.name], fk.line, &ip)
                else {
                    continue;
                };
                out.1.push((unit.clone(), fk.line, ip));
                let item = RbdItem {
                    friendly: fk.name.clone(),
                    rbd_name,
                    unit,
                };
                if section == "images" {
                    pool.images.push(item);
                } else {
                    pool.snapshots.push(item);
                }
            }
        }
        f.finish(r);
        out.0.push(pool);
    }
    out
}

fn rgw_buckets(r: &mut Reader, node: &Node, path: &KeyPath) -> Located<RgwBucket> {
    let mut out = (Vec::new(), Vec::new());
    for (i, n) in r.items(node, path).into_iter().enumerate() {
        let p = path.index(i);
        let Some(bucket) = r.nonempty(n, &p) else {
            continue;
        };
        let Some(unit) = unit_path(r, &["rgw", &bucket], n.line, &p) else {
            continue;
        };
        out.1.push((unit.clone(), n.line, p));
        out.0.push(RgwBucket { bucket, unit });
    }
    out
}

fn coda_volumes(r: &mut Reader, node: &Node, path: &KeyPath) -> Located<CodaVolume> {
    let mut out = (Vec::new(), Vec::new());
    for (i, n) in r.items(node, path).into_iter().enumerate() {
        let p = path.index(i);
        let Some(mut f) = r.fields(n, &p) else {
            continue;
        };
        let list = |r: &mut Reader, f: &mut Fields, key: &'static str| {
            let (n, kp) = f.require(r, f.line(), key, "")?;
            r.strings(n, &kp).filter(|v| {
                if v.is_empty() {
                    r.error(n.line, &kp, "must not be empty");
                }
                !v.is_empty()
            })
        };
        let servers = list(r, &mut f, "servers");
        let volumes = list(r, &mut f, "volumes");
        f.finish(r);
        let (Some(servers), Some(volumes)) = (servers, volumes) else {
            continue;
        };
        for server in &servers {
            for volume in &volumes {
                let Some(unit) = unit_path(r, &["coda", server, volume], n.line, &p) else {
                    continue;
                };
                out.1.push((unit.clone(), n.line, p.clone()));
                out.0.push(CodaVolume {
                    server: server.clone(),
                    volume: volume.clone(),
                    unit,
                });
            }
        }
    }
    out
}

fn dump_units(r: &mut Reader, ctx: &Ctx, node: &Node, path: &KeyPath) -> Located<DumpUnit> {
    let mut out = (Vec::new(), Vec::new());
    for (key, n) in r.named_entries(node, path) {
        let p = path.key(&key.name);
        let Some(mut f) = r.fields(n, &p) else {
            continue;
        };
        let command = f
            .require(
                r,
                key.line,
                "command",
                "the program and its arguments, as a list",
            )
            .and_then(|(cn, cp)| match &cn.value {
                super::node::Value::Seq(_) => r.strings(cn, &cp).and_then(|argv| {
                    if argv.first().is_none_or(|a| a.trim().is_empty()) {
                        r.error(
                            cn.line,
                            &cp,
                            "the command is empty: give the program and its arguments as a list",
                        );
                        None
                    } else {
                        Some(DumpCommand::Argv(argv))
                    }
                }),
                _ => r.nonempty(cn, &cp).map(DumpCommand::Shell),
            });
        let file = match get_string_or(r, &mut f, "file", &key.name) {
            Some(file)
                if file.contains('/')
                    || file == "."
                    || file == ".."
                    || file.starts_with(".strata") =>
            {
                let line = f.get("file").map_or(key.line, |(n, _)| n.line);
                r.error(
                    line,
                    &p.key("file"),
                    format!("`{file}` must be a plain file name"),
                );
                None
            }
            other => other,
        };
        let user = get_string(r, &mut f, "user");
        let scrub = match f.get("scrub") {
            Some((sn, sp)) => match &sn.value {
                super::node::Value::Bool(b) => Some(Some(if *b { 1.0 } else { 0.0 })),
                _ => r.probability(sn, &sp).map(Some),
            },
            None => Some(None),
        };
        f.finish(r);
        let (Some(command), Some(file), Some(user), Some(scrub)) = (command, file, user, scrub)
        else {
            continue;
        };
        let Some(unit) = unit_path(r, &["dump", &key.name], key.line, &p) else {
            continue;
        };
        out.1.push((unit.clone(), key.line, p));
        out.0.push(DumpUnit {
            name: key.name.clone(),
            unit,
            command,
            file,
            user,
            scrub,
            cwd: ctx.base.to_owned(),
        });
    }
    out
}

type ArchiveUnits = (
    BTreeMap<String, BTreeMap<String, ArchiveUnitOverride>>,
    BTreeMap<String, (u64, KeyPath)>,
);

fn archive_units(r: &mut Reader, node: &Node, path: &KeyPath) -> ArchiveUnits {
    let mut out = (BTreeMap::new(), BTreeMap::new());
    for (pk, pn) in r.named_entries(node, path) {
        let pp = path.key(&pk.name);
        out.1.insert(pk.name.clone(), (pk.line, pp.clone()));
        let mut units = BTreeMap::new();
        for (uk, un) in r.named_entries(pn, &pp) {
            let up = pp.key(&uk.name);
            if let Err(e) = UnitPath::parse(&uk.name) {
                r.error(uk.line, &up, e.to_string());
                continue;
            }
            let Some(mut f) = r.fields(un, &up) else {
                continue;
            };
            let compression = match f.get("compression") {
                Some((n, p)) => r.choice(n, &p, COMPRESSIONS).map(Some),
                None => Some(None),
            };
            let skip = get_bool(r, &mut f, "skip", false);
            f.finish(r);
            if let (Some(compression), Some(skip)) = (compression, skip) {
                units.insert(uk.name.clone(), ArchiveUnitOverride { compression, skip });
            }
        }
        out.0.insert(pk.name.clone(), units);
    }
    out
}

//! The effective config as YAML in the file's own shape (Deltaic's keys),
//! every default filled in and secrets redacted: what `config show` prints,
//! and a valid config file itself.

use super::Secret;
use super::{ArchiverKind, Config, DumpCommand, Transport};
use crate::retention::Policy;
use std::fmt::Write as _;
use std::path::Path;

struct Out(String);

impl Out {
    fn kv(&mut self, indent: usize, key: &str, value: &str) {
        let _ = writeln!(self.0, "{:indent$}{}: {value}", "", q(key));
    }
    fn head(&mut self, indent: usize, key: &str) {
        let _ = writeln!(self.0, "{:indent$}{}:", "", q(key));
    }
    fn list(&mut self, indent: usize, key: &str, items: &[String]) {
        if items.is_empty() {
            self.kv(indent, key, "[]");
        } else {
            self.head(indent, key);
            for i in items {
                let _ = writeln!(self.0, "{:indent$}  - {}", "", q(i));
            }
        }
    }
    fn opt(&mut self, indent: usize, key: &str, value: Option<&str>) {
        if let Some(v) = value {
            self.kv(indent, key, &q(v));
        }
    }
    /// A number, written unquoted.
    fn opt_num(&mut self, indent: usize, key: &str, value: Option<String>) {
        if let Some(v) = value {
            self.kv(indent, key, &v);
        }
    }
}

/// Quote a scalar when YAML would read it as something else.
fn q(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./@:".contains(c))
        && !s.starts_with(['-', ':', '@'])
        && !s.ends_with(':')
        && s.parse::<f64>().is_err()
        && ![
            "yes", "no", "on", "off", "true", "false", "null", "y", "n", "~",
        ]
        .contains(&s.to_ascii_lowercase().as_str());
    if plain {
        s.to_owned()
    } else {
        serde_json::to_string(s).unwrap_or_default()
    }
}

fn path(p: &Path) -> String {
    q(&p.display().to_string())
}

fn secret(s: &Secret) -> String {
    match s {
        Secret::Inline(_) => q("<redacted>"),
        Secret::File(p) => path(p),
    }
}

fn num(f: f64) -> String {
    format!("{f}")
}

/// Render `c` as a config file.
#[must_use]
#[allow(clippy::too_many_lines)] // why: one key after another, in the example's order
pub fn to_yaml(c: &Config) -> String {
    let s = &c.settings;
    let mut o = Out(format!(
        "# effective configuration of {} (defaults filled in, secrets redacted)\n",
        c.file.display()
    ));
    o.head(0, "settings");
    o.kv(2, "root", &path(&s.root));
    o.opt(
        2,
        "backup-lv",
        s.backup_lv
            .as_ref()
            .map(|v| format!("{}/{}", v.vg, v.lv))
            .as_deref(),
    );
    o.kv(2, "df-warning", &num(s.df_warning));
    let store = match s.snapshot_store {
        super::StoreKind::LvmThin => "lvm-thin",
        super::StoreKind::Btrfs => "btrfs",
        super::StoreKind::Dir => "dir",
        super::StoreKind::Cephfs => "cephfs",
    };
    o.kv(2, "snapshot-store", store);
    o.kv(2, "snapshot-dir", &path(&s.snapshot_dir));
    o.kv(
        2,
        "cephfs-max-snapshots",
        &s.cephfs_max_snapshots.to_string(),
    );
    o.kv(2, "appliance-lease", &s.appliance_lease.to_string());
    o.kv(2, "stale-days", &s.stale_days.to_string());
    match &s.retention.policy {
        Policy::Calendar(p) => {
            o.kv(2, "gc-policy", "calendar");
            o.kv(2, "gc-duplicate-days", &p.duplicate_days.to_string());
            o.kv(2, "gc-daily-weeks", &p.daily_weeks.to_string());
            o.kv(2, "gc-weekly-months", &p.weekly_months.to_string());
        }
        Policy::Hanoi(h) => {
            o.kv(2, "gc-policy", "hanoi");
            o.kv(2, "gc-hanoi-discs", &h.discs.to_string());
        }
    }
    o.kv(
        2,
        "gc-log-distinct-days",
        &s.retention.log_distinct_days.to_string(),
    );
    o.opt_num(
        2,
        "gc-min-free-percent",
        s.retention.min_free_percent.map(num),
    );
    o.opt_num(
        2,
        "gc-min-free-bytes",
        s.retention.min_free_bytes.map(|b| b.to_string()),
    );
    o.kv(2, "gc-min-keep", &s.retention.min_keep.to_string());
    o.kv(2, "coda-full-probability", &num(s.coda.full_probability));
    o.kv(2, "coda-volutil-path", &q(&s.coda.volutil_path));
    o.kv(2, "coda-codadump2tar-path", &q(&s.coda.codadump2tar_path));
    o.kv(2, "coda-workers", &s.coda.workers.to_string());
    if let Some(t) = &s.github.token {
        o.kv(
            2,
            if matches!(t, Secret::File(_)) {
                "github-token-file"
            } else {
                "github-token"
            },
            &secret(t),
        );
    }
    o.kv(
        2,
        "github-scrub-probability",
        &num(s.github.scrub_probability),
    );
    o.kv(2, "github-git-path", &q(&s.github.git_path));
    o.kv(2, "github-workers", &s.github.workers.to_string());
    o.kv(2, "github-api-url", &q(&s.github.api_url));
    o.opt(2, "github-client-id", s.github.client_id.as_deref());
    o.kv(2, "rbd-scrub-probability", &num(s.rbd.scrub_probability));
    o.kv(2, "rbd-workers", &s.rbd.workers.to_string());
    o.opt(2, "rgw-server", s.rgw.server.as_deref());
    o.kv(2, "rgw-secure", &s.rgw.secure.to_string());
    o.kv(
        2,
        "rgw-scrub-acl-probability",
        &num(s.rgw.scrub_acl_probability),
    );
    o.kv(2, "rgw-scrub-probability", &num(s.rgw.scrub_probability));
    o.kv(2, "rgw-threads", &s.rgw.threads.to_string());
    o.kv(2, "rgw-workers", &s.rgw.workers.to_string());
    o.kv(2, "rsync-local-binary", &q(&s.rsync.local_binary));
    o.list(2, "rsync-exclude", &s.rsync.exclude);
    o.kv(
        2,
        "rsync-scrub-probability",
        &num(s.rsync.scrub_probability),
    );
    o.kv(2, "rsync-workers", &s.rsync.workers.to_string());
    o.list(2, "rsync-ssh-options", &s.rsync.ssh_options);
    o.kv(2, "dump-scrub-probability", &num(s.dump.scrub_probability));
    o.kv(2, "dump-workers", &s.dump.workers.to_string());
    let a = &s.archive;
    o.opt(
        2,
        "archive-spool",
        a.spool
            .as_deref()
            .map(|p| p.display().to_string())
            .as_deref(),
    );
    o.opt(2, "archive-gpg-signing-key", a.gpg_signing_key.as_deref());
    o.list(2, "archive-gpg-recipients", &a.gpg_recipients);
    o.kv(2, "archive-tar-path", &q(&a.tar_path));
    o.kv(2, "archive-gpg-path", &q(&a.gpg_path));
    o.opt(
        2,
        "googledrive-client-id",
        a.googledrive_client_id.as_deref(),
    );
    if let Some(sec) = &a.googledrive_client_secret {
        o.kv(
            2,
            if matches!(sec, Secret::File(_)) {
                "googledrive-client-secret-file"
            } else {
                "googledrive-client-secret"
            },
            &secret(sec),
        );
    }
    o.opt(
        2,
        "googledrive-credentials-file",
        a.googledrive_credentials_file
            .as_deref()
            .map(|p| p.display().to_string())
            .as_deref(),
    );
    o.opt(2, "googledrive-api-url", a.googledrive_api_url.as_deref());
    o.opt(
        2,
        "googledrive-token-url",
        a.googledrive_token_url.as_deref(),
    );
    if s.archivers.is_empty() {
        o.kv(2, "archivers", "{}");
    } else {
        o.head(2, "archivers");
    }
    for (name, p) in &s.archivers {
        o.head(4, name);
        match &p.archiver {
            ArchiverKind::Aws(aws) => {
                o.kv(6, "archiver", "aws");
                o.kv(6, "aws-access-key-id", &q(&aws.access_key_id));
                o.kv(
                    6,
                    if matches!(aws.secret_access_key, Secret::File(_)) {
                        "aws-secret-access-key-file"
                    } else {
                        "aws-secret-access-key"
                    },
                    &secret(&aws.secret_access_key),
                );
                o.kv(6, "aws-region", &q(&aws.region));
                o.kv(6, "aws-namespace", &q(&aws.namespace));
                o.kv(6, "aws-storage-cost", &num(aws.storage_cost));
                o.opt(6, "aws-glacier-endpoint", aws.glacier_endpoint.as_deref());
                o.opt(6, "aws-sdb-endpoint", aws.sdb_endpoint.as_deref());
            }
            ArchiverKind::Googledrive(gd) => {
                o.kv(6, "archiver", "googledrive");
                o.opt(
                    6,
                    "googledrive-credentials-file",
                    gd.credentials_file
                        .as_deref()
                        .map(|p| p.display().to_string())
                        .as_deref(),
                );
                o.opt(6, "googledrive-api-url", gd.api_url.as_deref());
                o.opt(6, "googledrive-token-url", gd.token_url.as_deref());
            }
            ArchiverKind::Null => o.kv(6, "archiver", &q("null")),
            ArchiverKind::Local { path: p } => {
                o.kv(6, "archiver", "local");
                o.kv(6, "local-path", &path(p));
            }
            ArchiverKind::S3(s3) => {
                o.kv(6, "archiver", "s3");
                o.kv(6, "s3-bucket", &q(&s3.bucket));
                o.kv(6, "s3-prefix", &q(&s3.prefix));
                o.opt(6, "s3-endpoint", s3.endpoint.as_deref());
                o.opt(6, "s3-region", s3.region.as_deref());
                for (key, v) in [
                    ("s3-access-key-id", &s3.access_key_id),
                    ("s3-secret-access-key", &s3.secret_access_key),
                ] {
                    if let Some(v) = v {
                        let k = if matches!(v, Secret::File(_)) {
                            format!("{key}-file")
                        } else {
                            key.to_owned()
                        };
                        o.kv(6, &k, &secret(v));
                    }
                }
                o.kv(6, "s3-storage-class", &s3.storage_class);
                o.opt(
                    6,
                    "s3-final-storage-class",
                    s3.final_storage_class.as_deref(),
                );
                let tier = match s3.restore_tier {
                    super::RestoreTier::Bulk => "bulk",
                    super::RestoreTier::Standard => "standard",
                    super::RestoreTier::Expedited => "expedited",
                };
                o.kv(6, "s3-restore-tier", tier);
                o.kv(6, "s3-restore-days", &s3.restore_days.to_string());
                if !s3.prices.is_empty() {
                    o.head(6, "s3-prices");
                    for (class, price) in &s3.prices {
                        o.kv(
                            8,
                            class,
                            &format!(
                                "{{storage: {}, retrieval: {}}}",
                                price.storage, price.retrieval
                            ),
                        );
                    }
                }
            }
        }
        o.kv(6, "compression", p.compression.name());
        o.kv(6, "keep-count", &p.keep_count.to_string());
        o.kv(6, "workers", &p.workers.to_string());
        o.kv(6, "diffs", &p.diffs.to_string());
        o.kv(
            6,
            "keep-policy",
            match p.keep_policy {
                super::KeepPolicy::Count => "count",
                super::KeepPolicy::Hanoi => "hanoi",
            },
        );
        o.kv(6, "keep-discs", &p.keep_discs.to_string());
        o.kv(6, "keep-oldest", &p.keep_oldest.to_string());
        o.opt_num(6, "keep-bytes", p.keep_bytes.map(|b| b.to_string()));
    }
    if !c.coda.is_empty() {
        o.head(0, "coda");
        for v in &c.coda {
            let _ = writeln!(
                o.0,
                "  - servers: [{}]\n    volumes: [{}]",
                q(&v.server),
                q(&v.volume)
            );
            o.opt_num(4, "ssh-port", v.ssh_port.map(|p| p.to_string()));
            o.opt(
                4,
                "ssh-identity",
                v.ssh_identity
                    .as_deref()
                    .map(|p| p.display().to_string())
                    .as_deref(),
            );
        }
    }
    if !c.github.is_empty() {
        o.head(0, "github");
        for g in &c.github {
            o.head(2, &g.org);
            o.kv(
                4,
                "organization-metadata",
                &g.organization_metadata.to_string(),
            );
            if !g.exclude.is_empty() {
                let globs: Vec<String> = g.exclude.iter().map(|p| q(p.as_str())).collect();
                o.kv(4, "exclude", &format!("[{}]", globs.join(", ")));
            }
            o.kv(4, "lfs", g.lfs.as_str());
        }
    }
    if !c.rbd.is_empty() {
        o.head(0, "rbd");
        for p in &c.rbd {
            o.head(2, &p.pool);
            for (label, items) in [("images", &p.images), ("snapshots", &p.snapshots)] {
                if !items.is_empty() {
                    o.head(4, label);
                    for i in items {
                        o.kv(6, &i.friendly, &q(&i.rbd_name));
                    }
                }
            }
        }
    }
    if !c.rgw.is_empty() {
        o.list(
            0,
            "rgw",
            &c.rgw.iter().map(|b| b.bucket.clone()).collect::<Vec<_>>(),
        );
    }
    if !c.rsync.is_empty() {
        o.head(0, "rsync");
        for h in &c.rsync {
            o.head(2, &h.host);
            o.list(4, "mounts", &h.mounts);
            o.kv(4, "alias", &q(&h.alias));
            o.kv(4, "user", &q(&h.user));
            o.opt(4, "pre", h.pre.as_deref());
            o.opt(4, "post", h.post.as_deref());
            o.list(4, "exclude", &h.exclude);
            o.opt_num(4, "ssh-port", h.ssh_port.map(|p| p.to_string()));
            o.opt(
                4,
                "ssh-identity",
                h.ssh_identity
                    .as_deref()
                    .map(|p| p.display().to_string())
                    .as_deref(),
            );
            o.kv(
                4,
                "transport",
                if h.transport == Transport::Ssh {
                    "ssh"
                } else {
                    "local"
                },
            );
        }
    }
    if !c.dump.is_empty() {
        o.head(0, "dump");
        for d in &c.dump {
            o.head(2, &d.name);
            match &d.command {
                DumpCommand::Argv(argv) => o.list(4, "command", argv),
                DumpCommand::Shell(sh) => o.kv(4, "command", &q(sh)),
                DumpCommand::Pipeline(stages) => {
                    o.head(4, "pipeline");
                    for stage in stages {
                        let argv: Vec<String> = stage.iter().map(|a| q(a)).collect();
                        let _ = writeln!(o.0, "      - [{}]", argv.join(", "));
                    }
                }
            }
            o.kv(4, "file", &q(&d.file));
            o.opt(4, "user", d.user.as_deref());
            o.opt_num(4, "scrub", d.scrub.map(num));
        }
    }
    if !c.appliances.is_empty() {
        o.head(0, "appliances");
        for a in &c.appliances.0 {
            let globs: Vec<String> = a.units.iter().map(|g| q(g)).collect();
            let _ = writeln!(o.0, "  {}: [{}]", a.name, globs.join(", "));
        }
    }
    if !c.archive_units.is_empty() {
        o.head(0, "archivers");
        for (profile, units) in &c.archive_units {
            o.head(2, profile);
            for (unit, ov) in units {
                o.head(4, unit);
                o.opt(
                    6,
                    "compression",
                    ov.compression.map(super::Compression::name),
                );
                o.kv(6, "skip", &ov.skip.to_string());
            }
        }
    }
    o.0
}

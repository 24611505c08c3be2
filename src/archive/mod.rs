//! Offsite archives (DESIGN §6): one unit of one snapshot, packed as
//! `tar | compress | gpg`, stored by an [`Archiver`] with its
//! [`ArchiveMeta`] `{compression, encryption, sha256, size}`; the archives of
//! one snapshot on one profile form an archive set.
//!
//! Owns: packing ([`pack`]), verifying and unpacking ([`unpack`]), the gpg
//! argument vectors and status parsing ([`gpg`]), compression codecs
//! ([`codec`]), the hashing writer, the spool, the shared retrieval rate
//! limit ([`rate`]), retrieval ([`retrieve`]), copying sets between profiles
//! ([`migrate`]), set selection and pruning plans
//! ([`sets`]), the drill's tree comparison ([`compare`]) and the archivers
//! behind one trait ([`archivers`]).
//!
//! Does not own: the snapshot store (mounting goes through
//! `snapshot::SnapshotStore`), per-unit child processes' command line
//! (`cli/archive_cmd.rs` builds it), or processes (through `exec`).
//!
//! Invariants:
//! - A spool file exists only while its archive is being packed, uploaded,
//!   decrypted or unpacked; it is a `tempfile` that is removed on every exit
//!   path but `kill -9`, and leftovers of dead processes are removed by the
//!   next `archive run` (they are named `archive-*` / `unpack-*`).
//! - tar never sees a byte of an archive before its sha256 (plain) or its
//!   signature by the configured signing key (gpg) has been checked, and
//!   before every member has been checked to land inside DESTDIR.
//! - An archive is in a set only once its data and metadata are both stored
//!   (archivers write the metadata last); a set is complete only when its
//!   completion marker is stored, which `archive run` does after every unit.

pub mod archivers;
pub mod chain;
pub mod codec;
pub mod compare;
pub mod drill;
pub mod gpg;
pub mod migrate;
pub mod pack;
pub mod rate;
pub mod retrieve;
pub mod run;
pub mod sets;
pub mod tarwalk;
pub mod unit;
pub mod unpack;

pub use archivers::{Archiver, SetInfo};

use crate::config::{COMPRESSIONS, Compression, Config};
use crate::exec::ExecError;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Why an archive operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("settings.archive-spool is not set: archiving needs a scratch directory")]
    NoSpool,
    #[error("archiver profile `{name}` is not defined under settings.archivers (known: {known})")]
    NoProfile { name: String, known: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Exec(#[from] ExecError),
    #[error(transparent)]
    Snapshot(#[from] crate::snapshot::SnapshotError),
    #[error("packing {unit}: {stage} failed: {source}")]
    Pipeline {
        unit: String,
        stage: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: gpg did not report {what}; refusing to use this archive", file.display())]
    GpgStatus { file: PathBuf, what: String },
    #[error("gpg cannot use {key} ({setting}): {problem}")]
    GpgKey {
        setting: &'static str,
        key: String,
        problem: String,
    },
    #[error("{}: signature check failed: {reason}; nothing was unpacked", file.display())]
    Signature { file: PathBuf, reason: String },
    #[error("{}: its metadata says encryption `{found}` but this config {expected}; refusing (a downgrade or a config mismatch: check the archive's metadata)", file.display())]
    EncryptionMismatch {
        file: PathBuf,
        found: String,
        expected: &'static str,
    },
    #[error("{}: sha256 mismatch: metadata says {expected}, the file has {actual}; nothing was unpacked", file.display())]
    Sha256Mismatch {
        file: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("{}: size mismatch: metadata says {expected} bytes, the file has {actual}", file.display())]
    SizeMismatch {
        file: PathBuf,
        expected: u64,
        actual: u64,
    },
    #[error("{}: bad archive metadata: {reason}", file.display())]
    BadMetadata { file: PathBuf, reason: String },
    #[error("{}: member {member:?} {why}; refusing to unpack anything", file.display())]
    UnsafeMember {
        file: PathBuf,
        member: String,
        why: &'static str,
    },
    #[error("{}: no user.archive.set and user.archive.unit xattrs say which set and unit it is (was it fetched with `strata archive retrieve`?), so its tar volume label cannot be checked; pass --any-label to unpack it anyway", file.display())]
    LabelUnknown { file: PathBuf },
    #[error("{}: its tar volume label is {found}, but it was retrieved as {expected:?}: an archive of another set or unit served under this name? Refusing to unpack anything", file.display())]
    LabelMismatch {
        file: PathBuf,
        /// The label, quoted, or "missing".
        found: String,
        expected: String,
    },
    #[error("cannot confine tar to {} with Landlock: {reason}; nothing was extracted", dest.display())]
    Confine { dest: PathBuf, reason: String },
    #[error("{}: cannot read the tar listing: {line:?}", file.display())]
    BadListing { file: PathBuf, line: String },
    #[error("archive set {0} does not exist")]
    NoSuchSet(String),
    #[error("archive set {set} has no archive of unit {unit}")]
    NoSuchArchive { set: String, unit: String },
    #[error("{}: already exists; remove it or retrieve into another directory", .0.display())]
    AlreadyExists(PathBuf),
    #[error(transparent)]
    GoogleDrive(#[from] archivers::googledrive::DriveError),
    #[error(
        "{archiver}: uploads are refused until {until} ({why}); the set stays incomplete: `strata archive run -r` continues it then"
    )]
    UploadPaused {
        archiver: &'static str,
        /// When to try again (RFC 3339).
        until: String,
        why: String,
    },
    #[error("s3: {op}: {source}")]
    S3 {
        /// The call that failed, in words (`uploading KEY`).
        op: String,
        #[source]
        source: crate::s3::S3Failure,
    },
    #[error("s3: starting the async runtime: {source}")]
    S3Runtime {
        #[source]
        source: std::io::Error,
    },
    #[error("s3: reading credentials: {source}")]
    S3Credentials {
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{archiver}: reading {unit} of set {set} at byte {offset}: {source} (run retrieve again to resume)"
    )]
    Download {
        archiver: &'static str,
        set: String,
        unit: String,
        offset: u64,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{unit} is stored in a cold storage class and its restore is still in progress; try again later"
    )]
    RestorePending { unit: String },
    #[error("aws: {0}")]
    Aws(Box<archivers::aws::AwsError>),
    #[error(
        "{location}: the copy did not arrive whole: {what}; it was deleted (run again to copy it again)"
    )]
    ArrivedWrong { location: String, what: String },
    #[error("there is no snapshot to archive")]
    NoSnapshot,
    #[error("there is no archive set to resume")]
    NothingToResume,
    #[error("{name:?} is not an archive set name: {reason}")]
    BadSetName { name: String, reason: String },
    #[error("archive set {0} is already complete")]
    AlreadyComplete(String),
    #[error("no complete archive set on profile {0}")]
    NoCompleteSet(String),
    #[error("archiving failed for {}; the set stays incomplete: resume with `strata archive run -r`", .0.join(", "))]
    UnitsFailed(Vec<String>),
    #[error("the {0} archiver cannot store incremental chains; set `diffs: 0` on this profile")]
    ChainsUnsupported(&'static str),
    #[error("the chain of {unit} in set {set} is broken: {reason}")]
    BrokenChain {
        set: String,
        unit: String,
        reason: String,
    },
    // why: the lock's own message says which run holds it (strata's of this profile, or Deltaic's)
    #[error("{source}")]
    Locked {
        profile: String,
        #[source]
        source: crate::backup_root::LockError,
    },
}

impl ArchiveError {
    /// `set` has no archive of `unit`.
    #[must_use]
    pub fn no_such_archive(set: &str, unit: &str) -> ArchiveError {
        ArchiveError::NoSuchArchive {
            set: set.to_owned(),
            unit: unit.to_owned(),
        }
    }
}

impl ArchiveError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> ArchiveError {
        let path = path.into();
        move |source| ArchiveError::Io { path, source }
    }
}

/// How an archive is encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encryption {
    Gpg,
    None,
}

impl Encryption {
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Encryption::Gpg => "gpg",
            Encryption::None => "none",
        }
    }

    /// Parse untrusted metadata.
    #[must_use]
    pub fn parse(s: &str) -> Option<Encryption> {
        match s {
            "gpg" => Some(Encryption::Gpg),
            "none" => Some(Encryption::None),
            _ => None,
        }
    }
}

/// Parse an untrusted compression name.
#[must_use]
pub fn parse_compression(s: &str) -> Option<Compression> {
    COMPRESSIONS.iter().find(|(n, _)| *n == s).map(|(_, c)| *c)
}

/// What is stored beside every archive (Deltaic's four fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveMeta {
    pub compression: Compression,
    pub encryption: Encryption,
    /// Lowercase hex sha256 of the stored bytes.
    pub sha256: String,
    pub size: u64,
}

/// The string form of [`ArchiveMeta`], as stored (JSON beside a local archive,
/// S3 object metadata). Parsing it back is where untrusted input is judged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaFields {
    pub compression: String,
    pub encryption: String,
    pub sha256: String,
    pub size: String,
}

impl ArchiveMeta {
    #[must_use]
    pub fn fields(&self) -> MetaFields {
        MetaFields {
            compression: self.compression.name().to_owned(),
            encryption: self.encryption.name().to_owned(),
            sha256: self.sha256.clone(),
            size: self.size.to_string(),
        }
    }

    /// Judge stored metadata; `Err` says which field is wrong.
    pub fn from_fields(f: &MetaFields) -> Result<ArchiveMeta, String> {
        let compression = parse_compression(&f.compression)
            .ok_or_else(|| format!("unknown compression {:?}", f.compression))?;
        let encryption = Encryption::parse(&f.encryption)
            .ok_or_else(|| format!("unknown encryption {:?}", f.encryption))?;
        if f.sha256.len() != 64 || !f.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("sha256 {:?} is not 64 hex digits", f.sha256));
        }
        let size = f
            .size
            .parse()
            .map_err(|_| format!("size {:?} is not a number", f.size))?;
        Ok(ArchiveMeta {
            compression,
            encryption,
            sha256: f.sha256.to_ascii_lowercase(),
            size,
        })
    }
}

/// A writer that hashes (sha256) and counts what passes through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// Flush and return the inner writer, the hex sha256 and the byte count.
    pub fn finish(mut self) -> std::io::Result<(W, String, u64)> {
        self.inner.flush()?;
        Ok((self.inner, hex::encode(self.hasher.finalize()), self.count))
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// sha256 (hex) and length of a file, read in 1 MiB chunks.
pub fn hash_file(path: &Path) -> Result<(String, u64), ArchiveError> {
    let mut f = std::fs::File::open(path).map_err(ArchiveError::io(path))?;
    let mut w = HashingWriter::new(std::io::sink());
    std::io::copy(&mut f, &mut w).map_err(ArchiveError::io(path))?;
    let (_, sha, n) = w.finish().map_err(ArchiveError::io(path))?;
    Ok((sha, n))
}

/// The archive settings a packer, unpacker or retriever needs, taken from
/// the config once.
#[derive(Debug, Clone)]
pub struct ArchiveEnv {
    pub spool: PathBuf,
    pub tar: String,
    pub gpg: String,
    pub signing_key: Option<String>,
    pub recipients: Vec<String>,
}

impl ArchiveEnv {
    pub fn from_config(config: &Config) -> Result<ArchiveEnv, ArchiveError> {
        let a = &config.settings.archive;
        let spool = a.spool.clone().ok_or(ArchiveError::NoSpool)?;
        Ok(ArchiveEnv {
            spool,
            tar: a.tar_path.clone(),
            gpg: a.gpg_path.clone(),
            signing_key: a.gpg_signing_key.clone(),
            recipients: a.gpg_recipients.clone(),
        })
    }

    /// What this config produces and accepts: `gpg` when recipients are set.
    #[must_use]
    pub fn encryption(&self) -> Encryption {
        if self.recipients.is_empty() {
            Encryption::None
        } else {
            Encryption::Gpg
        }
    }

    /// A new spool file (removed when dropped).
    pub fn spool_file(&self, prefix: &str) -> Result<tempfile::NamedTempFile, ArchiveError> {
        std::fs::create_dir_all(&self.spool).map_err(ArchiveError::io(&self.spool))?;
        tempfile::Builder::new()
            .prefix(&format!("{prefix}{}-", std::process::id()))
            .tempfile_in(&self.spool)
            .map_err(ArchiveError::io(&self.spool))
    }

    /// Remove spool files left by processes that died (`kill -9`): names
    /// `archive-<pid>-*` / `unpack-<pid>-*` whose pid is gone.
    pub fn clean_spool(&self) -> Result<usize, ArchiveError> {
        let Ok(rd) = std::fs::read_dir(&self.spool) else {
            return Ok(0);
        };
        let mut removed = 0;
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(pid) = ["archive-", "unpack-", "drill-"]
                .iter()
                .find_map(|p| name.strip_prefix(p))
                .and_then(|rest| rest.split('-').next())
                .and_then(|p| p.parse::<i32>().ok())
            else {
                continue;
            };
            if !process_alive(pid) {
                let p = e.path();
                let r = if p.is_dir() {
                    std::fs::remove_dir_all(&p)
                } else {
                    std::fs::remove_file(&p)
                };
                r.map_err(ArchiveError::io(&p))?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// Whether process `pid` exists and is not a zombie (a killed process whose
/// parent died too may stay a zombie under an init that does not reap).
fn process_alive(pid: i32) -> bool {
    if nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_err() {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // why: the state is the first field after the parenthesised command name, which may itself hold spaces
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_none_or(|state| state != "Z" && state != "X"),
        Err(_) => true,
    }
}

/// The name of a retrieved archive file: `<snapshot>:<unit with / as ->`
/// (Deltaic's naming).
#[must_use]
pub fn retrieved_name(set: &str, unit: &str) -> String {
    format!("{set}:{}", unit.replace('/', "-"))
}

/// The file names of the archives `pairs` (set, unit) retrieved into one
/// directory: each [`retrieved_name`], except that units whose names would
/// be the same (`dump/x/y` and `dump/x-y` are both `dump-x-y`) each get
/// `~` and the first 8 hex digits of their unit's sha256 added, so no
/// retrieve overwrites or refuses another unit's file. The result follows
/// only from the pairs, so a retrieve run again resumes the same files.
#[must_use]
pub fn retrieved_names(pairs: &[(&str, &str)]) -> Vec<String> {
    let plain: Vec<String> = pairs.iter().map(|(s, u)| retrieved_name(s, u)).collect();
    let mut units_of: std::collections::HashMap<&str, std::collections::HashSet<&str>> =
        std::collections::HashMap::new();
    for (name, (_, unit)) in plain.iter().zip(pairs) {
        units_of.entry(name).or_default().insert(unit);
    }
    plain
        .iter()
        .zip(pairs)
        .map(|(name, (_, unit))| {
            if units_of[name.as_str()].len() > 1 {
                let h = hex::encode(Sha256::digest(unit.as_bytes()));
                format!("{name}~{}", &h[..8])
            } else {
                name.clone()
            }
        })
        .collect()
}

/// The longest volume label GNU tar writes (its header's name field).
pub const MAX_LABEL: usize = 99;

/// The tar volume label that binds an archive to its set and unit:
/// `"<set> <unit>"`, or, when that is longer than GNU tar allows (a long
/// github repository or rbd image name), `"<set> sha256:<hex of the unit>"`.
#[must_use]
pub fn volume_label(set: &str, unit: &str) -> String {
    let plain = format!("{set} {unit}");
    if plain.len() <= MAX_LABEL {
        return plain;
    }
    format!(
        "{set} sha256:{}",
        hex::encode(Sha256::digest(unit.as_bytes()))
    )
}

/// The compression of `unit` on `profile`: the unit override, else the profile's.
#[must_use]
pub fn unit_compression(config: &Config, profile: &str, unit: &str) -> Compression {
    config
        .archive_units
        .get(profile)
        .and_then(|u| u.get(unit))
        .and_then(|o| o.compression)
        .or_else(|| {
            config
                .settings
                .archivers
                .get(profile)
                .map(|p| p.compression)
        })
        .unwrap_or(Compression::Gzip)
}

/// Whether `unit` is left out of `profile`'s archives (`skip: true`).
#[must_use]
pub fn unit_skipped(config: &Config, profile: &str, unit: &str) -> bool {
    config
        .archive_units
        .get(profile)
        .and_then(|u| u.get(unit))
        .is_some_and(|o| o.skip)
}

#[cfg(test)]
mod tests {
    #[test]
    fn volume_labels_fit_gnu_tar_and_differ_per_unit() {
        assert_eq!(volume_label("20261130-1", "dump/u"), "20261130-1 dump/u");
        let long = format!("github/org/{}", "r".repeat(120));
        let l = volume_label("20261130-1", &long);
        assert!(l.len() <= MAX_LABEL, "{l}");
        assert!(l.starts_with("20261130-1 sha256:"), "{l}");
        assert_ne!(l, volume_label("20261130-1", &format!("{long}x")));
        assert_ne!(l, volume_label("20261130-2", &long));
    }

    use super::*;

    #[test]
    fn metadata_round_trips_and_rejects_junk() {
        let m = ArchiveMeta {
            compression: Compression::Lz4,
            encryption: Encryption::Gpg,
            sha256: "ab".repeat(32),
            size: 42,
        };
        assert_eq!(ArchiveMeta::from_fields(&m.fields()).unwrap(), m);
        let mut f = m.fields();
        f.encryption = "rot13".into();
        assert!(ArchiveMeta::from_fields(&f).unwrap_err().contains("rot13"));
        let mut f = m.fields();
        f.sha256 = "zz".into();
        assert!(ArchiveMeta::from_fields(&f).is_err());
        let mut f = m.fields();
        f.size = "-1".into();
        assert!(ArchiveMeta::from_fields(&f).is_err());
    }

    #[test]
    fn hashing_writer_counts_and_hashes() {
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(b"abc").unwrap();
        let (v, sha, n) = w.finish().unwrap();
        assert_eq!(v, b"abc");
        assert_eq!(n, 3);
        assert_eq!(
            sha,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn per_unit_compression_and_skip_come_from_the_top_level_archivers_section() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c.yaml");
        std::fs::write(
            &p,
            "settings:\n  root: /nonexistent\n  snapshot-store: dir\n  archivers:\n    default:\n      archiver: local\n      local-path: /x\n      compression: lz4\n\
             archivers:\n  default:\n    dump/a:\n      compression: zstd\n    dump/b:\n      skip: true\n\
             dump:\n  a:\n    command: [true]\n  b:\n    command: [true]\n",
        )
        .unwrap();
        let c = crate::config::load(&p).unwrap();
        assert_eq!(unit_compression(&c, "default", "dump/a"), Compression::Zstd);
        assert_eq!(unit_compression(&c, "default", "dump/b"), Compression::Lz4);
        assert!(unit_skipped(&c, "default", "dump/b"));
        assert!(!unit_skipped(&c, "default", "dump/a"));
    }

    #[test]
    fn retrieved_names_are_flat() {
        assert_eq!(
            retrieved_name("20261122-1", "rbd/p/images/x"),
            "20261122-1:rbd-p-images-x"
        );
    }

    #[test]
    fn units_that_flatten_alike_get_names_of_their_own() {
        let h = |u: &str| hex::encode(Sha256::digest(u.as_bytes()))[..8].to_owned();
        let names = retrieved_names(&[
            ("s-1", "dump/x/y"),
            ("s-1", "dump/x-y"),
            ("s-1", "rsync/web-01"),
            ("s-0", "dump/x/y"),
            // why: a chain lists one unit once per set; that is no clash
            ("s-1", "dump/x/y"),
        ]);
        assert_eq!(
            names,
            [
                format!("s-1:dump-x-y~{}", h("dump/x/y")),
                format!("s-1:dump-x-y~{}", h("dump/x-y")),
                "s-1:rsync-web-01".to_owned(),
                "s-0:dump-x-y".to_owned(),
                format!("s-1:dump-x-y~{}", h("dump/x/y")),
            ]
        );
        assert_ne!(names[0], names[1]);
    }
}

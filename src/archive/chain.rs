//! Incremental archive chains (profile key `diffs: N`, s3napback's fulls and
//! diffs): between two full archives of a unit, each archive holds only what
//! changed since the unit's previous archive.
//!
//! How: GNU tar's `--listed-incremental` (`-g`). A full is packed with a
//! fresh snapshot file ("snar"); a diff with the snar its base left, and
//! tar writes only the files changed since, plus every directory with the
//! list of names it holds (its "dumpdir"), so that deletions are recorded:
//! extracting with `--incremental` removes what a directory no longer
//! lists. Each archive names its base and level in its [`ChainLink`],
//! stored beside it by the archiver with the snar tar left ("chain state"),
//! sealed like an archive (signed and encrypted when the config encrypts),
//! so any machine that can read it continues the chain. A local copy of the
//! last state of each unit (under the spool) spares the download.
//!
//! Two corrections make tar's decisions right for snapshots, both applied to
//! the snar before it is stored ([`rewrite_snar`]):
//! - tar judges a file unchanged when its mtime and ctime are older than
//!   the snar's time stamp. tar stamps the time it started, which may be
//!   long after the snapshot was taken (a slow archive run), and a file
//!   changed in between would be missed by the next diff. The stored stamp
//!   is instead the newest ctime in the unit ([`newest_ctime`]): every
//!   change after the snapshot has a later ctime (user space cannot set
//!   ctime), whatever mtime rsync or rgw gave the file. A file with that
//!   very ctime is written again, which costs one file, never one missed.
//! - tar recognises a directory by device and inode; each snapshot is a
//!   different device (`--no-check-device` ignores that), and a recorded
//!   device of 0, which no filesystem has, keeps tar from taking a new
//!   directory for a renamed old one: strata's archives never hold rename
//!   records, and unpack refuses any that does.
//!
//! On the `dir` snapshot store every copy has new inodes and ctimes, so a
//! diff there holds the whole unit (still a correct diff: restoring it
//! applies its deletions); on lvm-thin and btrfs a diff holds the change.
//!
//! Invariants: a chain's levels are 0 (the full), 1, 2, ... each archive's
//! base is the archive of the same unit in an older, complete set whose
//! level is one less; the chain state is stored before the archive, so a
//! listed diff always has its link; a base that cannot be read makes the
//! unit's archive a full, never a diff on a guess.

use super::{ArchiveEnv, ArchiveError, ArchiveMeta, Archiver, Encryption, MetaFields, gpg};
use crate::config::Compression;
use crate::exec::Cmd;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

/// Where an archive sits in its unit's chain: its base (the set whose
/// archive of the same unit it applies onto; `None` for a full) and level
/// (0 for a full), and the metadata of the stored chain state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainLink {
    pub base: Option<String>,
    pub level: u32,
    pub state: ArchiveMeta,
}

/// The string form of a [`ChainLink`], as stored (JSON beside a local
/// archive, S3 object metadata). Parsing it back judges untrusted input.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct ChainFields {
    /// The base set, empty for a full.
    pub base: String,
    pub level: String,
    pub state_compression: String,
    pub state_encryption: String,
    pub state_sha256: String,
    pub state_size: String,
}

/// The longest chain strata follows (a guard against a loop in hostile
/// metadata; `diffs` is far below it).
pub const MAX_LEVEL: u32 = 10_000;

impl ChainLink {
    #[must_use]
    pub fn fields(&self) -> ChainFields {
        let s = self.state.fields();
        ChainFields {
            base: self.base.clone().unwrap_or_default(),
            level: self.level.to_string(),
            state_compression: s.compression,
            state_encryption: s.encryption,
            state_sha256: s.sha256,
            state_size: s.size,
        }
    }

    /// Judge stored chain metadata; `Err` says which field is wrong.
    pub fn from_fields(f: &ChainFields) -> Result<ChainLink, String> {
        let level: u32 = f
            .level
            .parse()
            .map_err(|_| format!("level {:?} is not a number", f.level))?;
        if level > MAX_LEVEL {
            return Err(format!("level {level} is beyond {MAX_LEVEL}"));
        }
        let base = if f.base.is_empty() {
            None
        } else {
            crate::names::SnapshotName::parse(&f.base)
                .map_err(|e| format!("base {:?}: {e}", f.base))?;
            Some(f.base.clone())
        };
        if base.is_some() != (level > 0) {
            return Err(format!(
                "level {level} with {} base",
                if base.is_some() { "a" } else { "no" }
            ));
        }
        let state = ArchiveMeta::from_fields(&MetaFields {
            compression: f.state_compression.clone(),
            encryption: f.state_encryption.clone(),
            sha256: f.state_sha256.clone(),
            size: f.state_size.clone(),
        })?;
        Ok(ChainLink { base, level, state })
    }
}

/// What the next archive of a unit is, given its base (if any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainStep {
    /// A full archive (level 0), and why not a diff.
    Full(FullReason),
    /// A diff onto the archive in set `base`, at `level`.
    Diff { base: String, level: u32 },
}

/// Why a unit's archive is a full one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FullReason {
    /// `diffs: 0`.
    NoDiffs,
    /// No older complete set holds the unit.
    NoBase,
    /// The base archive has no chain link (made with `diffs: 0`).
    BaseNotChained { base: String },
    /// The base is the last diff `diffs` allows.
    ChainFull { base: String, level: u32 },
    /// The base's chain state could not be read or used.
    BaseUnreadable { base: String },
}

impl std::fmt::Display for FullReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FullReason::NoDiffs => f.write_str("diffs: 0"),
            FullReason::NoBase => f.write_str("no older complete set holds this unit"),
            FullReason::BaseNotChained { base } => {
                write!(f, "its archive in {base} is not part of a chain")
            }
            FullReason::ChainFull { base, level } => {
                write!(
                    f,
                    "its archive in {base} is diff {level}, the last one `diffs` allows"
                )
            }
            FullReason::BaseUnreadable { base } => {
                write!(
                    f,
                    "the chain state of its archive in {base} could not be read"
                )
            }
        }
    }
}

/// The next archive of a unit: `base` is the newest complete set older than
/// the one being archived that holds the unit, with that archive's link.
#[must_use]
pub fn plan_step(diffs: u32, base: Option<(&str, Option<&ChainLink>)>) -> ChainStep {
    if diffs == 0 {
        return ChainStep::Full(FullReason::NoDiffs);
    }
    match base {
        None => ChainStep::Full(FullReason::NoBase),
        Some((set, None)) => ChainStep::Full(FullReason::BaseNotChained {
            base: set.to_owned(),
        }),
        Some((set, Some(link))) if link.level >= diffs => ChainStep::Full(FullReason::ChainFull {
            base: set.to_owned(),
            level: link.level,
        }),
        Some((set, Some(link))) => ChainStep::Diff {
            base: set.to_owned(),
            level: link.level + 1,
        },
    }
}

/// A time stamp of the snar header: seconds and nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Stamp {
    pub secs: i64,
    pub nanos: u32,
}

/// Why a snar could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnarError(pub String);

impl std::fmt::Display for SnarError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "not a GNU tar snapshot file of format 2: {}", self.0)
    }
}

/// A NUL-terminated field of a snar at `*pos`.
fn field<'a>(b: &'a [u8], pos: &mut usize, what: &str) -> Result<&'a [u8], SnarError> {
    let rest = &b[*pos..];
    let end = rest
        .iter()
        .position(|c| *c == 0)
        .ok_or_else(|| SnarError(format!("{what} is not terminated at byte {}", *pos)))?;
    *pos += end + 1;
    Ok(&rest[..end])
}

fn number(text: &[u8], what: &str) -> Result<u64, SnarError> {
    std::str::from_utf8(text)
        .ok()
        .filter(|s| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            SnarError(format!(
                "{what} {:?} is not a number",
                String::from_utf8_lossy(text)
            ))
        })
}

/// The time stamp of a snar (when its files count as unchanged).
pub fn snar_stamp(b: &[u8]) -> Result<Stamp, SnarError> {
    let mut pos = header_end(b)?;
    let secs = number(field(b, &mut pos, "the time stamp")?, "seconds")?;
    let nanos = number(field(b, &mut pos, "the time stamp")?, "nanoseconds")?;
    Ok(Stamp {
        secs: i64::try_from(secs).map_err(|_| SnarError("seconds out of range".into()))?,
        nanos: u32::try_from(nanos)
            .ok()
            .filter(|n| *n < 1_000_000_000)
            .ok_or_else(|| SnarError("nanoseconds out of range".into()))?,
    })
}

fn header_end(b: &[u8]) -> Result<usize, SnarError> {
    let nl = b
        .iter()
        .position(|c| *c == b'\n')
        .ok_or_else(|| SnarError("no header line".into()))?;
    let head = &b[..nl];
    if !head.starts_with(b"GNU tar-") || !head.ends_with(b"-2") {
        return Err(SnarError(format!(
            "header {:?}",
            String::from_utf8_lossy(head)
        )));
    }
    Ok(nl + 1)
}

/// Rewrite a snar as strata stores it: every directory's device 0 (see the
/// module documentation) and, when given, the time stamp `stamp`. Checks
/// the whole structure on the way; directory names and lists are kept
/// byte for byte.
pub fn rewrite_snar(b: &[u8], stamp: Option<Stamp>) -> Result<Vec<u8>, SnarError> {
    let start = header_end(b)?;
    let mut out = b[..start].to_vec();
    let mut pos = start;
    let secs = field(b, &mut pos, "the time stamp")?;
    let nanos = field(b, &mut pos, "the time stamp")?;
    number(secs, "seconds")?;
    number(nanos, "nanoseconds")?;
    if let Some(s) = stamp {
        out.extend_from_slice(format!("{}\0{}\0", s.secs.max(0), s.nanos).as_bytes());
    } else {
        out.extend_from_slice(secs);
        out.push(0);
        out.extend_from_slice(nanos);
        out.push(0);
    }
    while pos < b.len() {
        let nfs = field(b, &mut pos, "a record's nfs flag")?;
        let mt_s = field(b, &mut pos, "a record's mtime")?;
        let mt_n = field(b, &mut pos, "a record's mtime")?;
        let dev = field(b, &mut pos, "a record's device")?;
        let ino = field(b, &mut pos, "a record's inode")?;
        for (v, what) in [
            (nfs, "nfs flag"),
            (mt_s, "mtime"),
            (mt_n, "mtime"),
            (dev, "device"),
            (ino, "inode"),
        ] {
            number(v, what)?;
        }
        let name = field(b, &mut pos, "a record's name")?;
        if name.is_empty() {
            return Err(SnarError(format!("an empty directory name at byte {pos}")));
        }
        for v in [nfs, mt_s, mt_n] {
            out.extend_from_slice(v);
            out.push(0);
        }
        out.extend_from_slice(b"0\0");
        out.extend_from_slice(ino);
        out.push(0);
        out.extend_from_slice(name);
        out.push(0);
        loop {
            let entry = field(b, &mut pos, "a directory entry")?;
            out.extend_from_slice(entry);
            out.push(0);
            if entry.is_empty() {
                break;
            }
        }
        if b.get(pos) != Some(&0) {
            return Err(SnarError(format!("no record terminator at byte {pos}")));
        }
        pos += 1;
        out.push(0);
    }
    Ok(out)
}

/// The newest ctime of anything under `dir`, `dir` included, never
/// following a symlink: the stamp of the snar stored after archiving `dir`.
pub fn newest_ctime(dir: &Path) -> std::io::Result<Stamp> {
    let mut newest = Stamp::default();
    for e in walkdir::WalkDir::new(dir).follow_links(false) {
        let e = e.map_err(std::io::Error::other)?;
        let m = e.path().symlink_metadata()?;
        let s = Stamp {
            secs: m.ctime(),
            nanos: u32::try_from(m.ctime_nsec()).unwrap_or(0),
        };
        newest = newest.max(s);
    }
    Ok(newest)
}

/// A chain state sealed for the store: the file to upload and its metadata.
pub struct Sealed {
    pub file: tempfile::NamedTempFile,
    pub meta: ArchiveMeta,
}

/// Seal a chain state as an archive is sealed: signed and encrypted with
/// the config's keys when it encrypts, plain otherwise; no compression.
pub fn seal(env: &ArchiveEnv, plain: &[u8]) -> Result<Sealed, ArchiveError> {
    let out = env.spool_file("archive-")?;
    match env.encryption() {
        Encryption::None => {
            out.as_file()
                .write_all(plain)
                .and_then(|()| out.as_file().sync_all())
                .map_err(ArchiveError::io(out.path()))?;
        }
        Encryption::Gpg => {
            let signer = env
                .signing_key
                .as_deref()
                .ok_or_else(|| ArchiveError::GpgStatus {
                    file: out.path().to_owned(),
                    what: "a signing key (archive-gpg-signing-key is required with archive-gpg-recipients)".into(),
                })?;
            let status = env.spool_file("archive-")?;
            let sink = out
                .as_file()
                .try_clone()
                .map_err(ArchiveError::io(out.path()))?;
            let mut child = Cmd::new(&env.gpg)
                .args(gpg::sign_encrypt_args(
                    status.path(),
                    signer,
                    &env.recipients,
                ))
                .spawn_writer(Stdio::from(sink))?;
            let fed = child.write_all(plain);
            let ended = child.finish();
            if fed.is_err() || ended.is_err() {
                // why: a refused key is the cause; the broken pipe or exit status only follows from it
                if let Some(e) = gpg::refused_key(&env.gpg, status.path()) {
                    return Err(e);
                }
            }
            fed.map_err(ArchiveError::io(out.path()))?;
            ended?;
            let text =
                std::fs::read_to_string(status.path()).map_err(ArchiveError::io(status.path()))?;
            let st = gpg::parse_status(&text);
            if !st.sig_created || !st.end_encryption {
                return Err(ArchiveError::GpgStatus {
                    file: out.path().to_owned(),
                    what: "SIG_CREATED and END_ENCRYPTION".into(),
                });
            }
            out.as_file()
                .sync_all()
                .map_err(ArchiveError::io(out.path()))?;
        }
    }
    let (sha256, size) = super::hash_file(out.path())?;
    Ok(Sealed {
        file: out,
        meta: ArchiveMeta {
            compression: Compression::None,
            encryption: env.encryption(),
            sha256,
            size,
        },
    })
}

/// The largest chain state strata reads back (a snar lists every name of a
/// unit; a million names of 100 bytes is about 100 MiB).
pub const MAX_STATE: u64 = 1 << 30;

/// Download the chain state of `unit` in `set` and check it as unpack checks
/// an archive (size and sha256; signature by the configured key when
/// encrypted); returns the snar.
pub fn fetch_state(
    env: &ArchiveEnv,
    archiver: &dyn Archiver,
    set: &str,
    unit: &str,
    link: &ChainLink,
) -> Result<Vec<u8>, ArchiveError> {
    if link.state.size > MAX_STATE {
        return Err(ArchiveError::BadMetadata {
            file: format!("{set}:{unit} chain state").into(),
            reason: format!("{} bytes is more than a chain state holds", link.state.size),
        });
    }
    let tmp = env.spool_file("unpack-")?;
    let mut src = archiver.download_chain_state(set, unit)?;
    let mut dst = tmp.as_file();
    std::io::copy(
        &mut std::io::Read::take(&mut src, link.state.size + 1),
        &mut dst,
    )
    .map_err(ArchiveError::io(tmp.path()))?;
    super::unpack::read_verified(env, tmp.path(), &link.state)
}

/// The local copy of a unit's last chain state on a profile, under the
/// spool: `chains/<profile>/<unit%2F...>.snar` and `.json` beside it
/// (which set it is, and the sha256 of the sealed state stored for it).
pub struct StateCache {
    dir: PathBuf,
    unit: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct CacheNote {
    set: String,
    sealed_sha256: String,
}

impl StateCache {
    #[must_use]
    pub fn new(env: &ArchiveEnv, profile: &str, unit: &str) -> StateCache {
        StateCache {
            dir: env
                .spool
                .join("chains")
                .join(super::archivers::encode_unit(profile)),
            unit: super::archivers::encode_unit(unit),
        }
    }

    fn paths(&self) -> (PathBuf, PathBuf) {
        (
            self.dir.join(format!("{}.snar", self.unit)),
            self.dir.join(format!("{}.json", self.unit)),
        )
    }

    /// The cached state of `set`, if it is the one stored (same sealed sha256).
    #[must_use]
    pub fn get(&self, set: &str, link: &ChainLink) -> Option<Vec<u8>> {
        let (snar, note) = self.paths();
        let n: CacheNote = serde_json::from_slice(&std::fs::read(note).ok()?).ok()?;
        if n.set != set || n.sealed_sha256 != link.state.sha256 {
            return None;
        }
        std::fs::read(snar).ok()
    }

    /// Remember `state` as the stored state of `set`. Best effort: a cache
    /// that cannot be written only costs a download later.
    pub fn put(&self, set: &str, sealed_sha256: &str, state: &[u8]) {
        let (snar, note) = self.paths();
        let n = CacheNote {
            set: set.to_owned(),
            sealed_sha256: sealed_sha256.to_owned(),
        };
        let _ = std::fs::create_dir_all(&self.dir)
            .and_then(|()| crate::backup_root::write_atomic(&snar, state))
            .and_then(|()| {
                let json = serde_json::to_vec(&n).map_err(std::io::Error::other)?;
                crate::backup_root::write_atomic(&note, &json)
            });
    }
}

/// One archive of a chain, as `retrieve` fetches it.
#[derive(Debug, Clone)]
pub struct ChainMember {
    pub set: String,
    pub meta: ArchiveMeta,
    pub link: Option<ChainLink>,
}

/// The archives that restore `unit` as of `set`: the full first, then every
/// diff in order, ending with `set`'s own. A plain archive is a chain of one.
pub fn resolve(
    archiver: &dyn Archiver,
    set: &str,
    unit: &str,
) -> Result<Vec<ChainMember>, ArchiveError> {
    let mut out = Vec::new();
    let mut current = set.to_owned();
    let mut want_level: Option<u32> = None;
    let broken = |reason: String| ArchiveError::BrokenChain {
        set: set.to_owned(),
        unit: unit.to_owned(),
        reason,
    };
    loop {
        let meta = match archiver.archive_meta(&current, unit) {
            Err(ArchiveError::NoSuchArchive { .. }) if want_level.is_some() => {
                return Err(broken(format!(
                    "its base set {current} has no archive of it"
                )));
            }
            other => other?,
        };
        let link = archiver.chain_link(&current, unit)?;
        if let Some(w) = want_level {
            match &link {
                Some(l) if l.level == w => {}
                Some(l) => {
                    return Err(broken(format!(
                        "the archive in {current} is at level {}, not {w}",
                        l.level
                    )));
                }
                None => {
                    return Err(broken(format!(
                        "the archive in {current} is not part of a chain"
                    )));
                }
            }
        }
        let next = link.as_ref().and_then(|l| l.base.clone());
        let level = link.as_ref().map_or(0, |l| l.level);
        out.push(ChainMember {
            set: current.clone(),
            meta,
            link,
        });
        match next {
            None => break,
            Some(base) => {
                // why: a base is older than what it is the base of, so a loop in hostile metadata ends here
                if base >= current {
                    return Err(broken(format!(
                        "the archive in {current} names {base} as its base, which is not older"
                    )));
                }
                current = base;
                want_level = Some(level - 1);
            }
        }
    }
    out.reverse();
    Ok(out)
}

/// What restoring every unit of `set` retrieves: archives and bytes, each
/// unit's chain included.
pub fn restore_size(archiver: &dyn Archiver, set: &str) -> Result<(u64, u64), ArchiveError> {
    let mut archives = 0;
    let mut bytes = 0;
    let links = archiver.chain_links(set)?;
    for (unit, size) in archiver.list_set_units(set)? {
        if links.get(&unit).is_some_and(|l| l.base.is_some()) {
            for m in resolve(archiver, set, &unit)? {
                archives += 1;
                bytes += m.meta.size;
            }
        } else {
            archives += 1;
            bytes += size;
        }
    }
    Ok((archives, bytes))
}

/// For each set, the sets its archives apply onto.
pub fn set_bases(
    archiver: &dyn Archiver,
    sets: impl IntoIterator<Item = String>,
) -> Result<BTreeMap<String, std::collections::BTreeSet<String>>, ArchiveError> {
    let mut out = BTreeMap::new();
    if !archiver.supports_chains() {
        return Ok(out);
    }
    for set in sets {
        let bases: std::collections::BTreeSet<String> = archiver
            .chain_links(&set)?
            .into_values()
            .filter_map(|l| l.base)
            .collect();
        if !bases.is_empty() {
            out.insert(set, bases);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(base: Option<&str>, level: u32) -> ChainLink {
        ChainLink {
            base: base.map(str::to_owned),
            level,
            state: ArchiveMeta {
                compression: Compression::None,
                encryption: Encryption::None,
                sha256: "ab".repeat(32),
                size: 7,
            },
        }
    }

    type Case<'a> = (u32, Option<(&'a str, Option<&'a ChainLink>)>, ChainStep);

    #[test]
    fn the_next_step_of_a_chain() {
        let l0 = link(None, 0);
        let l2 = link(Some("20260101-1"), 2);
        let l3 = link(Some("20260102-1"), 3);
        let s = "20260103-1";
        let diff = |level| ChainStep::Diff {
            base: s.to_owned(),
            level,
        };
        // (diffs, base, step)
        let cases: Vec<Case> = vec![
            (
                0,
                Some((s, Some(&l0))),
                ChainStep::Full(FullReason::NoDiffs),
            ),
            (3, None, ChainStep::Full(FullReason::NoBase)),
            (
                3,
                Some((s, None)),
                ChainStep::Full(FullReason::BaseNotChained { base: s.into() }),
            ),
            (3, Some((s, Some(&l0))), diff(1)),
            (3, Some((s, Some(&l2))), diff(3)),
            (
                3,
                Some((s, Some(&l3))),
                ChainStep::Full(FullReason::ChainFull {
                    base: s.into(),
                    level: 3,
                }),
            ),
            (6, Some((s, Some(&l3))), diff(4)),
            (1, Some((s, Some(&l0))), diff(1)),
        ];
        for (diffs, base, want) in cases {
            assert_eq!(plan_step(diffs, base), want, "diffs {diffs}, base {base:?}");
        }
    }

    #[test]
    fn links_round_trip_and_junk_is_refused() {
        for l in [link(None, 0), link(Some("20260101-1"), 4)] {
            assert_eq!(ChainLink::from_fields(&l.fields()).unwrap(), l);
        }
        let bad = |f: &dyn Fn(&mut ChainFields)| {
            let mut x = link(Some("20260101-1"), 1).fields();
            f(&mut x);
            ChainLink::from_fields(&x).unwrap_err()
        };
        assert!(bad(&|f| f.level = "x".into()).contains("level"));
        assert!(bad(&|f| f.level = "0".into()).contains("base"));
        assert!(bad(&|f| f.base = String::new()).contains("no base"));
        assert!(bad(&|f| f.base = "../x".into()).contains("base"));
        assert!(bad(&|f| f.level = "99999999".into()).contains("beyond"));
        assert!(bad(&|f| f.state_sha256 = "zz".into()).contains("sha256"));
    }

    /// A snar as tar 1.34 writes it: two directories, one with entries.
    fn sample() -> Vec<u8> {
        let mut b = b"GNU tar-1.34-2\n1796079643\x00868753368\x00".to_vec();
        b.extend_from_slice(
            b"0\x001796079642\x00850646581\x0065024\x0010041914\x00u\x00Detclink\x00Dkeep\x00\x00\x00",
        );
        b.extend_from_slice(
            b"1\x001796079642\x00850646581\x0065024\x0010041918\x00u/keep\x00\x00\x00",
        );
        b
    }

    #[test]
    fn a_snar_is_rewritten_with_device_0_and_the_given_stamp() {
        let b = sample();
        assert_eq!(
            snar_stamp(&b).unwrap(),
            Stamp {
                secs: 1_796_079_643,
                nanos: 868_753_368
            }
        );
        let kept = rewrite_snar(&b, None).unwrap();
        let want = String::from_utf8_lossy(&b).replace("\x0065024\x00", "\x000\x00");
        assert_eq!(String::from_utf8_lossy(&kept), want);
        let stamped = rewrite_snar(&b, Some(Stamp { secs: 5, nanos: 6 })).unwrap();
        assert_eq!(snar_stamp(&stamped).unwrap(), Stamp { secs: 5, nanos: 6 });
        // rewriting is idempotent
        assert_eq!(rewrite_snar(&stamped, None).unwrap(), stamped);
        // a fresh snar of an empty unit: header and stamp only
        let empty = b"GNU tar-1.34-2\n1\x002\x00".to_vec();
        assert_eq!(rewrite_snar(&empty, None).unwrap(), empty);
    }

    #[test]
    fn a_damaged_snar_is_refused() {
        let b = sample();
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"GNU tar-1.34-1\n1\x002\x00".to_vec(), "header"),
            (b"junk".to_vec(), "header line"),
            (b[..b.len() - 1].to_vec(), "terminator"),
            (b[..b.len() - 3].to_vec(), "not terminated"),
            (
                String::from_utf8_lossy(&b)
                    .replace("65024", "6x024")
                    .into_bytes(),
                "device",
            ),
            (b"GNU tar-1.34-2\nx\x002\x00".to_vec(), "seconds"),
        ];
        for (bytes, why) in cases {
            let e = rewrite_snar(&bytes, None).unwrap_err().to_string();
            assert!(e.contains(why), "{why}: {e}");
        }
    }

    #[test]
    fn the_newest_ctime_covers_the_whole_tree_without_following_links() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("a")).unwrap();
        std::fs::write(d.path().join("a/f"), "x").unwrap();
        std::os::unix::fs::symlink("/", d.path().join("a/root")).unwrap();
        let t = newest_ctime(d.path()).unwrap();
        let f = std::fs::symlink_metadata(d.path().join("a/root")).unwrap();
        assert!(t.secs >= f.ctime(), "{t:?}");
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(d.path().join("a/g"), "y").unwrap();
        assert!(newest_ctime(d.path()).unwrap() > t);
    }
}

//! Unpack retrieved archives into DESTDIR, trusting nothing about them.
//!
//! Order, each step a gate for the next, over all archives of one call:
//! 1. Metadata from the file's `user.archive.*` xattrs; size and sha256 of
//!    the file must match it.
//! 2. Its encryption must be what this config produces: an archive claiming
//!    `none` when the config encrypts is a downgrade and is refused.
//! 3. Encrypted: gpg decrypts into a spool file; only GOODSIG + VALIDSIG by
//!    the configured signing key (see [`super::gpg`]) lets it through.
//! 4. Every (decompressed) tar stream is listed with `tar -tv -P`, and every
//!    member of every archive of the call goes through one
//!    [`ExtractionPlan`], which models DESTDIR as the extraction will leave
//!    it: no absolute name, no `..`, no path through a symlink or through
//!    any other non-directory a member made (a hard link may be a symlink),
//!    no hard link to a symlink (in an archive of the call or already in
//!    DESTDIR), to a directory or to nothing, no directory member over a
//!    symlink, no label or continuation with a bad name, no type strata
//!    never writes.
//!    An incremental archive (one of a chain, `diffs: N`) is also read by
//!    strata itself ([`super::tarwalk`]), member by member in step with
//!    tar's listing, for the dumpdir of each directory: the list of names
//!    the directory keeps, which `tar --incremental` applies by removing
//!    the rest first. The plan applies the same removals (to names earlier
//!    archives of the call made and to what DESTDIR holds), refuses rename
//!    records (strata never writes them) and a kept name that nothing
//!    holds (an incomplete chain). Archives whose set is recorded are taken
//!    oldest first, so a chain applies in order.
//! 5. Only when every archive passed, tar extracts the same verified bytes,
//!    archive after archive, spawned from a thread that Landlock confines to
//!    writing beneath DESTDIR ([`confined`]): whatever the plan missed, no
//!    file outside can be created, removed or written (ownership, modes and
//!    xattrs are the plan's alone). GNU tar's own guards stay on too (no
//!    `-P`). A refusal always comes before anything is written.
//!
//! Crash behaviour: the decrypted spool files are temp files; a crash leaves
//! `unpack-<pid>-*` for `clean_spool`. A crash during step 5 leaves a partly
//! extracted tree in DESTDIR, which a second unpack overwrites.

use super::codec::{self, Decoder};
use super::tarwalk::{DumpEntry, Walked, Walker, parse_dumpdir};
use super::{ArchiveEnv, ArchiveError, ArchiveMeta, Encryption, MetaFields, gpg};
use crate::backup_root::xattrs;
use crate::config::Compression;
use crate::exec::Cmd;
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

/// The metadata recorded on a retrieved file (Deltaic's xattrs).
pub fn read_meta(file: &Path) -> Result<ArchiveMeta, ArchiveError> {
    let get = |name: &str| -> Result<String, ArchiveError> {
        xattrs::get_text(file, name)
            .map_err(ArchiveError::io(file))?
            .ok_or_else(|| ArchiveError::BadMetadata {
                file: file.to_owned(),
                reason: format!("no {name} xattr (was it fetched with `strata archive retrieve`?)"),
            })
    };
    let size = std::fs::metadata(file)
        .map_err(ArchiveError::io(file))?
        .len();
    let fields = MetaFields {
        compression: get(xattrs::ARCHIVE_COMPRESSION)?,
        encryption: get(xattrs::ARCHIVE_ENCRYPTION)?,
        sha256: get(xattrs::ARCHIVE_SHA256)?,
        size: size.to_string(),
    };
    ArchiveMeta::from_fields(&fields).map_err(|reason| ArchiveError::BadMetadata {
        file: file.to_owned(),
        reason,
    })
}

/// Record `meta` on `file` as Deltaic's xattrs.
pub fn write_meta(file: &Path, meta: &ArchiveMeta) -> Result<(), ArchiveError> {
    for (k, v) in [
        (xattrs::ARCHIVE_COMPRESSION, meta.compression.name()),
        (xattrs::ARCHIVE_ENCRYPTION, meta.encryption.name()),
        (xattrs::ARCHIVE_SHA256, meta.sha256.as_str()),
    ] {
        xattr::set(file, k, v.as_bytes()).map_err(ArchiveError::io(file))?;
    }
    Ok(())
}

/// Record on a retrieved `file` the set and unit it was fetched as.
pub fn write_origin(file: &Path, set: &str, unit: &str) -> Result<(), ArchiveError> {
    for (k, v) in [(xattrs::ARCHIVE_SET, set), (xattrs::ARCHIVE_UNIT, unit)] {
        xattr::set(file, k, v.as_bytes()).map_err(ArchiveError::io(file))?;
    }
    Ok(())
}

/// Whether an archive's tar volume label must name the set and unit
/// recorded on the file by `archive retrieve`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LabelCheck {
    /// It must; a file without the record is refused.
    #[default]
    Recorded,
    /// Unpack whatever the label says (`--any-label`, for loose files).
    Any,
}

/// Whether device nodes in an archive are created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Devices {
    /// Skipped, and counted (the default).
    #[default]
    Skip,
    /// Created (`--devices`).
    Restore,
}

/// Whether setuid/setgid files and `security.capability` xattrs in an
/// archive are restored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Privileges {
    /// Setuid/setgid files are skipped and capabilities left off, both
    /// counted (the default).
    #[default]
    Skip,
    /// Restored (`--setuid`).
    Restore,
}

/// What an unpack is asked for beyond the defaults.
#[derive(Debug, Clone, Copy, Default)]
pub struct UnpackOptions {
    pub label: LabelCheck,
    pub devices: Devices,
    pub privileges: Privileges,
}

/// What an unpack left out because it was not asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Skipped {
    pub devices: usize,
    /// Setuid/setgid files, and hard links to them.
    pub setid: usize,
    /// Files whose `security.capability` xattr was not restored.
    pub capabilities: usize,
}

impl Skipped {
    #[must_use]
    pub fn any(&self) -> bool {
        *self != Skipped::default()
    }
}

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if self.devices > 0 {
            parts.push(format!(
                "{} device nodes (--devices creates them)",
                self.devices
            ));
        }
        if self.setid > 0 {
            parts.push(format!(
                "{} setuid/setgid files (--setuid restores them)",
                self.setid
            ));
        }
        if self.capabilities > 0 {
            parts.push(format!(
                "{} security.capability xattrs (--setuid restores them)",
                self.capabilities
            ));
        }
        write!(f, "skipped {}", parts.join(", "))
    }
}

/// The label `file` must carry (`"<set> <unit>"`), or `None` when it is not checked.
fn expected_label(file: &Path, check: LabelCheck) -> Result<Option<Vec<u8>>, ArchiveError> {
    if check == LabelCheck::Any {
        return Ok(None);
    }
    let set = xattrs::get_text(file, xattrs::ARCHIVE_SET).map_err(ArchiveError::io(file))?;
    let unit = xattrs::get_text(file, xattrs::ARCHIVE_UNIT).map_err(ArchiveError::io(file))?;
    match (set, unit) {
        (Some(set), Some(unit)) => Ok(Some(super::volume_label(&set, &unit).into_bytes())),
        _ => Err(ArchiveError::LabelUnknown {
            file: file.to_owned(),
        }),
    }
}

/// One member of a tar listing. Names are raw bytes: tar names need not be
/// UTF-8, and a lossy conversion could hide a symlink behind a replacement
/// character.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The type character of `tar -tv` (`-`, `d`, `l`, `h`, `c`, `b`, `p`, `V`, ...).
    pub kind: char,
    pub name: Vec<u8>,
    /// Symlink target or hard-link target.
    pub link: Option<Vec<u8>>,
    /// The mode has the setuid or setgid bit.
    pub setid: bool,
}

/// Parse one line of `tar -tv --quoting-style=c`; `None` if it is not one.
#[must_use]
pub fn parse_listing_line(line: &[u8]) -> Option<Member> {
    let kind = char::from(*line.first()?);
    let q = line.iter().position(|b| *b == b'"')?;
    let (name, rest) = parse_c_string(&line[q..])?;
    let link = if let Some(r) = rest.strip_prefix(b" -> ") {
        Some(parse_c_string(r)?.0)
    } else if let Some(r) = rest.strip_prefix(b" link to ") {
        Some(parse_c_string(r)?.0)
    } else {
        None
    };
    // why: `-rwsr-xr-x`: the owner's and the group's execute letters say setuid and setgid
    let setid = line
        .get(1..10)
        .is_some_and(|p| matches!(p[2], b's' | b'S') || matches!(p[5], b's' | b'S'));
    Some(Member {
        kind,
        name,
        link,
        setid,
    })
}

/// Parse a C-quoted string at the start of `b`; returns it and what follows.
fn parse_c_string(b: &[u8]) -> Option<(Vec<u8>, &[u8])> {
    if b.first() != Some(&b'"') {
        return None;
    }
    let mut out: Vec<u8> = Vec::new();
    let mut i = 1;
    while i < b.len() {
        match b[i] {
            b'"' => return Some((out, &b[i + 1..])),
            b'\\' => {
                let c = *b.get(i + 1)?;
                i += 2;
                match c {
                    b'n' => out.push(b'\n'),
                    b't' => out.push(b'\t'),
                    b'r' => out.push(b'\r'),
                    b'a' => out.push(7),
                    b'b' => out.push(8),
                    b'f' => out.push(12),
                    b'v' => out.push(11),
                    b'0'..=b'7' => {
                        let mut v = u32::from(c - b'0');
                        let mut k = 0;
                        while k < 2 && i < b.len() && (b'0'..=b'7').contains(&b[i]) {
                            v = v * 8 + u32::from(b[i] - b'0');
                            i += 1;
                            k += 1;
                        }
                        out.push(u8::try_from(v & 0xff).unwrap_or(0));
                    }
                    other => out.push(other),
                }
            }
            other => {
                out.push(other);
                i += 1;
            }
        }
    }
    None
}

/// A name for messages.
fn shown(name: &[u8]) -> String {
    String::from_utf8_lossy(name).into_owned()
}

/// The components of a relative name, without empty and `.` ones: `u//./l/`
/// and `u/l` are the same path to tar, so they must be to the checks.
fn components(name: &[u8]) -> Vec<&[u8]> {
    name.split(|b| *b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .collect()
}

/// Why a member name is not a plain relative path, if it is not.
fn bad_name(name: &[u8]) -> Option<&'static str> {
    if name.first() == Some(&b'/') {
        return Some("is an absolute path");
    }
    let parts = components(name);
    if parts.is_empty() {
        return Some("has an empty name");
    }
    if parts.iter().any(|c| *c == b"..") {
        return Some("contains `..`");
    }
    None
}

/// The normalised name and its proper ancestors (`a`, `a/b` for `a/b/c`).
fn normalise(name: &[u8]) -> (Vec<u8>, Vec<Vec<u8>>) {
    let parts = components(name);
    let ancestors = (1..parts.len()).map(|n| parts[..n].join(&b'/')).collect();
    (parts.join(&b'/'), ancestors)
}

/// What DESTDIR holds at a name before the unpack starts (looked up with
/// `lstat`, never following the name itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDisk {
    Absent,
    Dir,
    Symlink,
    /// A regular file, device, fifo or socket.
    Other,
}

/// What a name is once the members checked so far are extracted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    Dir,
    Symlink,
    /// Anything else a member creates, hard links included: none may be an
    /// ancestor of a later member (a hard link to a symlink is a symlink).
    Other,
}

/// A refused member: its name and why.
pub type Refusal = (String, &'static str);

/// The state of DESTDIR as the extraction of every archive of one `unpack`
/// call will leave it, member after member: the check is a property of the
/// whole call, not of one listing. Names are normalised (see [`components`]).
///
/// Invariant, for every member that [`ExtractionPlan::check`] accepts: each
/// proper ancestor of its name (and of a hard link's target) is a real
/// directory when tar reaches it (one made by a member, one tar makes on the
/// way, or one DESTDIR already had), so no path resolution by tar passes a
/// symlink; a hard link's target is neither a symlink nor absent.
#[derive(Default)]
pub struct ExtractionPlan {
    names: HashMap<Vec<u8>, Node>,
    /// The names of `names` under each directory name (`b""` for the top).
    children: HashMap<Vec<u8>, HashSet<Vec<u8>>>,
    disk: HashMap<Vec<u8>, OnDisk>,
    devices: Devices,
    privileges: Privileges,
    /// Members left out (normalised names), and why.
    skipped: HashMap<Vec<u8>, Skip>,
    /// Names an incremental archive's purge removed (with all below them),
    /// whatever DESTDIR had there.
    gone: HashSet<Vec<u8>>,
    /// Each directory's purges so far, in order: what DESTDIR held in it
    /// survives only what every one of them keeps.
    purges: HashMap<Vec<u8>, Vec<HashMap<Vec<u8>, DumpEntry>>>,
}

/// The parent of a normalised name (`b""` for a top-level name).
fn parent_of(name: &[u8]) -> &[u8] {
    name.iter()
        .rposition(|b| *b == b'/')
        .map_or(&name[..0], |i| &name[..i])
}

/// Whether a purge that lists `listing` keeps an entry named `child` of
/// type `is_dir` (GNU tar's rule, on `lstat`: removed when unlisted, when
/// listed as a directory but not one, when listed as a dumped file but a
/// directory).
fn purge_keeps(listing: &HashMap<Vec<u8>, DumpEntry>, child: &[u8], is_dir: bool) -> bool {
    match listing.get(child) {
        None => false,
        Some(DumpEntry::Dir) => is_dir,
        Some(DumpEntry::Written) => !is_dir,
        Some(DumpEntry::Kept) => true,
    }
}

/// Why a member is left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    Device,
    Setid,
}

/// What a checked member is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checked {
    /// A file, directory or link tar will create.
    Member,
    /// A volume label (`V`): no file; its name is the label.
    Label(Vec<u8>),
    /// A member tar must not extract (excluded by its exact name).
    Skipped(Skip),
}

impl ExtractionPlan {
    #[must_use]
    pub fn new(devices: Devices, privileges: Privileges) -> ExtractionPlan {
        ExtractionPlan {
            devices,
            privileges,
            ..ExtractionPlan::default()
        }
    }

    /// What DESTDIR had at `rel` before the call, cached.
    fn raw_disk(&mut self, rel: &[u8], disk: &mut impl FnMut(&[u8]) -> OnDisk) -> OnDisk {
        *self
            .disk
            .entry(rel.to_vec())
            .or_insert_with_key(|k| disk(k))
    }

    /// What DESTDIR still has at `rel` of what it had before the call, once
    /// the purges so far have run: absent if a purge removed it or a name
    /// above it.
    fn on_disk(&mut self, rel: &[u8], disk: &mut impl FnMut(&[u8]) -> OnDisk) -> OnDisk {
        if self.gone.is_empty() && self.purges.is_empty() {
            return self.raw_disk(rel, disk);
        }
        let mut prefix = rel;
        loop {
            if self.gone.contains(prefix) {
                return OnDisk::Absent;
            }
            if prefix.is_empty() || !prefix.contains(&b'/') {
                break;
            }
            prefix = parent_of(prefix);
        }
        let raw = self.raw_disk(rel, disk);
        if raw == OnDisk::Absent {
            return raw;
        }
        let parent = parent_of(rel).to_vec();
        if !parent.is_empty() && self.on_disk(&parent, disk) != OnDisk::Dir {
            return OnDisk::Absent;
        }
        let child = &rel[parent.len() + usize::from(!parent.is_empty())..];
        if let Some(listings) = self.purges.get(&parent)
            && !listings
                .iter()
                .all(|l| purge_keeps(l, child, raw == OnDisk::Dir))
        {
            return OnDisk::Absent;
        }
        raw
    }

    /// Record that a member (or tar, on the way) makes `name` a `node`.
    fn set_name(&mut self, name: Vec<u8>, node: Node) {
        self.children
            .entry(parent_of(&name).to_vec())
            .or_default()
            .insert(name.clone());
        self.names.insert(name, node);
    }

    /// Forget `name` and everything the plan knew below it: a purge
    /// removed it.
    fn remove_tree(&mut self, name: &[u8]) {
        let mut stack = vec![name.to_vec()];
        while let Some(n) = stack.pop() {
            if let Some(kids) = self.children.remove(&n) {
                stack.extend(kids);
            }
            self.names.remove(&n);
            self.skipped.remove(&n);
        }
        if let Some(siblings) = self.children.get_mut(parent_of(name)) {
            siblings.remove(name);
        }
        self.gone.insert(name.to_vec());
    }

    /// An incremental archive's directory member `dir` (already checked)
    /// and its dumpdir: `tar --incremental` will first remove from the
    /// directory what the dumpdir does not keep. Refuses a dumpdir strata
    /// never writes, and one that keeps from an earlier archive a file that
    /// neither the archives before nor DESTDIR have (an incomplete chain).
    pub fn purge(
        &mut self,
        dir: &[u8],
        dumpdir: &[u8],
        disk: &mut impl FnMut(&[u8]) -> OnDisk,
    ) -> Result<(), Refusal> {
        let refuse = |why: &'static str| (shown(dir), why);
        let listing = parse_dumpdir(dumpdir).map_err(refuse)?;
        let (dir, _) = normalise(dir);
        // why: what the plan knows in the directory goes now; what only DESTDIR holds goes lazily (on_disk)
        let known: Vec<Vec<u8>> = self
            .children
            .get(&dir)
            .map(|c| c.iter().cloned().collect())
            .unwrap_or_default();
        for name in known {
            let child = &name[dir.len() + usize::from(!dir.is_empty())..];
            let is_dir = self.names.get(&name) == Some(&Node::Dir);
            if !purge_keeps(&listing, child, is_dir) {
                self.remove_tree(&name);
            }
        }
        self.purges
            .entry(dir.clone())
            .or_default()
            .push(listing.clone());
        for (child, entry) in &listing {
            if *entry != DumpEntry::Kept {
                continue;
            }
            let mut name = dir.clone();
            if !name.is_empty() {
                name.push(b'/');
            }
            name.extend_from_slice(child);
            let present =
                self.names.contains_key(&name) || self.on_disk(&name, disk) != OnDisk::Absent;
            if !present {
                return Err((
                    shown(&name),
                    "is kept from an earlier archive of its chain, which neither DESTDIR nor the archives before it in this unpack hold: unpack the whole chain, full first (retrieve fetches it)",
                ));
            }
        }
        Ok(())
    }

    /// `Err(why)` unless every ancestor in `ancestors` will be a real
    /// directory; records them as directories (tar makes missing ones).
    fn walk(
        &mut self,
        ancestors: &[Vec<u8>],
        disk: &mut impl FnMut(&[u8]) -> OnDisk,
    ) -> Result<(), &'static str> {
        // why: shortest first, so that a lookup on disk never passes a symlink above it
        for a in ancestors {
            match self.names.get(a) {
                Some(Node::Dir) => continue,
                Some(Node::Symlink) => return Err("would be written through a symbolic link"),
                Some(Node::Other) => {
                    return Err(
                        "would be written through a name an earlier member made (a file or a link, possibly to a symbolic link)",
                    );
                }
                None => {}
            }
            match self.on_disk(a, disk) {
                OnDisk::Absent | OnDisk::Dir => {
                    self.set_name(a.clone(), Node::Dir);
                }
                OnDisk::Symlink => {
                    return Err("would be written through a symbolic link already in DESTDIR");
                }
                OnDisk::Other => return Err("would be written under a file already in DESTDIR"),
            }
        }
        Ok(())
    }

    /// Check one member against everything before it in this call; `disk`
    /// says what DESTDIR held at a name before the call.
    pub fn check(
        &mut self,
        m: &Member,
        disk: &mut impl FnMut(&[u8]) -> OnDisk,
    ) -> Result<Checked, Refusal> {
        let refuse = |why: &'static str| (shown(&m.name), why);
        if let Some(why) = bad_name(&m.name) {
            return Err(refuse(why));
        }
        match m.kind {
            'V' => return Ok(Checked::Label(m.name.clone())),
            // why: tar fails on a continuation after writing what came before; refuse it up front
            'M' => {
                return Err(refuse(
                    "is a multi-volume continuation, which strata never writes",
                ));
            }
            '-' | 'h' | 'l' | 'd' | 'c' | 'b' | 'p' | 'C' => {}
            _ => return Err(refuse("has a type strata never writes")),
        }
        let (name, ancestors) = normalise(&m.name);
        self.walk(&ancestors, disk).map_err(refuse)?;
        if self.skipped.contains_key(&name) {
            return Err(refuse("reuses the name of a member that is skipped"));
        }
        let before = match self.names.get(&name) {
            Some(n) => Some(*n),
            None => match self.on_disk(&name, disk) {
                OnDisk::Symlink => Some(Node::Symlink),
                _ => None,
            },
        };
        match (m.kind, before) {
            // why: tar keeps a symlink (or what a hard link made) where a directory member lands and follows it
            ('d', Some(Node::Symlink | Node::Other)) => {
                return Err(refuse(
                    "is a directory over a symbolic link or another non-directory",
                ));
            }
            ('d', _) | ('l', Some(Node::Symlink) | None) => {}
            (_, Some(Node::Dir)) if self.names.contains_key(&name) => {
                return Err(refuse(
                    "would replace a directory that earlier members used",
                ));
            }
            // why: whether tar replaces or follows a symlink an earlier member made depends on the member type; refuse both
            (k, Some(Node::Symlink)) if k != 'l' && self.names.contains_key(&name) => {
                return Err(refuse("would be written through a symbolic link"));
            }
            _ => {}
        }
        let mut skip = match m.kind {
            'c' | 'b' if self.devices == Devices::Skip => Some(Skip::Device),
            '-' | 'C' if m.setid && self.privileges == Privileges::Skip => Some(Skip::Setid),
            _ => None,
        };
        if m.kind == 'h' {
            let target = m.link.clone().unwrap_or_default();
            if bad_name(&target).is_some() {
                return Err(refuse("is a hard link to a file outside DESTDIR"));
            }
            let (target_name, target_ancestors) = normalise(&target);
            self.walk(&target_ancestors, disk)
                .map_err(|_| refuse("is a hard link to a file outside DESTDIR"))?;
            let t = match self.names.get(&target_name) {
                Some(n) => Some(*n),
                None => match self.on_disk(&target_name, disk) {
                    OnDisk::Absent => None,
                    OnDisk::Dir => Some(Node::Dir),
                    OnDisk::Symlink => Some(Node::Symlink),
                    OnDisk::Other => Some(Node::Other),
                },
            };
            match t {
                Some(Node::Other) => {}
                Some(Node::Symlink) => return Err(refuse("is a hard link to a symbolic link")),
                Some(Node::Dir) => return Err(refuse("is a hard link to a directory")),
                None => {
                    return Err(refuse(
                        "is a hard link to a file that neither the archives nor DESTDIR hold",
                    ));
                }
            }
            // why: a link to a skipped file would make tar fail after writing the rest
            skip = self.skipped.get(&target_name).copied();
        }
        if let Some(why) = skip {
            // why: tar leaves it out by exact name (`--no-wildcards --anchored -X`), which only a plain name matches
            if m.name != name || name.contains(&b'\n') {
                return Err(refuse(
                    "is a device or setuid file whose name is not plain enough to be skipped; pass --devices or --setuid to restore it",
                ));
            }
            self.skipped.insert(name.clone(), why);
            self.set_name(name, Node::Other);
            return Ok(Checked::Skipped(why));
        }
        let node = match m.kind {
            'd' => Node::Dir,
            'l' => Node::Symlink,
            _ => Node::Other,
        };
        self.set_name(name, node);
        Ok(Checked::Member)
    }
}

/// Check every member of one listing on its own; `Err` for the first bad
/// one. `on_disk_symlink(rel)` says whether DESTDIR already has a symlink at
/// `rel`. Returns the number of members that are files (labels excluded).
pub fn check_members(
    members: impl IntoIterator<Item = Member>,
    mut on_disk_symlink: impl FnMut(&[u8]) -> bool,
) -> Result<usize, Refusal> {
    let mut plan = ExtractionPlan::default();
    let mut disk = |rel: &[u8]| {
        if on_disk_symlink(rel) {
            OnDisk::Symlink
        } else {
            OnDisk::Absent
        }
    };
    let mut n = 0;
    for m in members {
        if plan.check(&m, &mut disk)? == Checked::Member {
            n += 1;
        }
    }
    Ok(n)
}

/// How gpg's output reached the spool.
enum Spooled {
    Done,
    /// Stopped at a packet strata never writes.
    Foreign,
    /// Stopped when the plaintext grew past the ciphertext's size.
    TooLarge,
}

/// The verified plain stream of an archive: either the file itself or its
/// decrypted copy in the spool.
enum Verified {
    File(PathBuf),
    Spool(tempfile::NamedTempFile),
}

impl Verified {
    fn path(&self) -> &Path {
        match self {
            Verified::File(p) => p,
            Verified::Spool(t) => t.path(),
        }
    }
}

/// Steps 1-3: metadata, downgrade, sha256, signature. Also returns a note
/// for the user, if the verdict needs one.
fn verify(
    env: &ArchiveEnv,
    file: &Path,
) -> Result<(ArchiveMeta, Verified, Option<String>), ArchiveError> {
    verify_meta(env, file, read_meta(file)?)
}

/// Check a stored chain state (`file`, downloaded, with the metadata its
/// link gives) as an archive is checked, and return its plain bytes.
pub fn read_verified(
    env: &ArchiveEnv,
    file: &Path,
    meta: &ArchiveMeta,
) -> Result<Vec<u8>, ArchiveError> {
    if meta.compression != Compression::None {
        return Err(ArchiveError::BadMetadata {
            file: file.to_owned(),
            reason: format!(
                "a chain state is never compressed, this one says {}",
                meta.compression.name()
            ),
        });
    }
    let size = std::fs::metadata(file)
        .map_err(ArchiveError::io(file))?
        .len();
    if size != meta.size {
        return Err(ArchiveError::SizeMismatch {
            file: file.to_owned(),
            expected: meta.size,
            actual: size,
        });
    }
    let (_, v, _) = verify_meta(env, file, meta.clone())?;
    std::fs::read(v.path()).map_err(ArchiveError::io(v.path()))
}

/// Steps 2-3 for `file` whose metadata is `meta`.
fn verify_meta(
    env: &ArchiveEnv,
    file: &Path,
    meta: ArchiveMeta,
) -> Result<(ArchiveMeta, Verified, Option<String>), ArchiveError> {
    let expected = env.encryption();
    if meta.encryption != expected {
        return Err(ArchiveError::EncryptionMismatch {
            file: file.to_owned(),
            found: meta.encryption.name().to_owned(),
            expected: match expected {
                Encryption::Gpg => "encrypts with gpg",
                Encryption::None => "does not encrypt (no archive-gpg-recipients)",
            },
        });
    }
    let (sha, _) = super::hash_file(file)?;
    if sha != meta.sha256 {
        return Err(ArchiveError::Sha256Mismatch {
            file: file.to_owned(),
            expected: meta.sha256,
            actual: sha,
        });
    }
    match meta.encryption {
        Encryption::None => Ok((meta, Verified::File(file.to_owned()), None)),
        Encryption::Gpg => {
            let key = env
                .signing_key
                .as_deref()
                .ok_or_else(|| ArchiveError::Signature {
                    file: file.to_owned(),
                    reason: "archive-gpg-signing-key is not set, so no signature can be trusted"
                        .into(),
                })?;
            let plain = env.spool_file("unpack-")?;
            let status = env.spool_file("unpack-")?;
            let input = File::open(file).map_err(ArchiveError::io(file))?;
            let mut out = plain
                .as_file()
                .try_clone()
                .map_err(ArchiveError::io(plain.path()))?;
            // why: strata packs without gpg compression, so its plaintext is never larger than the ciphertext
            let limit = meta.size;
            let watch = gpg::PacketWatch::default();
            let (pipe_r, pipe_w) = std::io::pipe().map_err(ArchiveError::io(file))?;
            let mut gpg = Cmd::new(&env.gpg)
                .args(gpg::decrypt_args(status.path(), limit))
                .spawn_writer_tee_stderr(Stdio::from(pipe_w), Box::new(watch.clone()))?;
            // why: gpg's output passes through us, so that nothing more reaches the spool once a packet strata never writes shows up
            let seen = watch.clone();
            let copier = std::thread::spawn(move || -> std::io::Result<Spooled> {
                let mut r = pipe_r;
                let mut buf = vec![0u8; 1 << 20];
                let mut total = 0u64;
                loop {
                    if seen.foreign().is_some() {
                        return Ok(Spooled::Foreign);
                    }
                    let n = match r.read(&mut buf) {
                        Ok(0) => return Ok(Spooled::Done),
                        Ok(n) => n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(e),
                    };
                    total += n as u64;
                    if total > limit {
                        return Ok(Spooled::TooLarge);
                    }
                    if seen.foreign().is_some() {
                        return Ok(Spooled::Foreign);
                    }
                    out.write_all(&buf[..n])?;
                }
            });
            let fed = std::io::copy(&mut BufReader::new(input), &mut gpg);
            // why: a copier that stopped early dropped its end of the pipe, so gpg fails on its next write and this wait ends
            let ended = gpg.finish();
            let spooled = copier
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("the spool writer thread panicked")));
            let refuse = |reason: String| ArchiveError::Signature {
                file: file.to_owned(),
                reason,
            };
            let spooled = spooled.map_err(ArchiveError::io(plain.path()))?;
            // why: gpg has ended and its stderr is drained, so the watch has seen every packet line
            if let Some(tag) = watch.foreign() {
                return Err(refuse(format!(
                    "it holds an OpenPGP packet of type {tag}{}, which strata never writes (a decompression bomb?)",
                    if tag == 8 { " (compressed data)" } else { "" }
                )));
            }
            let capped = ended
                .as_ref()
                .is_err_and(|e| e.stderr_tail().contains("exceeded --max-output limit"));
            if matches!(spooled, Spooled::TooLarge) || capped {
                return Err(refuse(format!(
                    "its plaintext is larger than its {limit} bytes of ciphertext, which strata's archives never are (a decompression bomb?)"
                )));
            }
            let text = std::fs::read_to_string(status.path()).unwrap_or_default();
            let st = gpg::parse_status(&text);
            // why: the status verdict is the clearer message; gpg's exit status backs it up
            let expiry_of = |sig: &gpg::ValidSig| {
                // why: the signer's key, as this keyring holds it (gpg decrypted with it just now)
                gpg::list_colons(&env.gpg, &["--list-keys", "--", &sig.primary])
                    .and_then(|colons| gpg::key_expiry(&colons, sig))
            };
            let verdict = gpg::judge_decryption(&st, key, expiry_of).map_err(refuse)?;
            fed.map_err(ArchiveError::io(file))?;
            ended.map_err(|e| refuse(e.to_string()))?;
            let note = match verdict {
                gpg::Verdict::Good => None,
                gpg::Verdict::GoodByExpiredKey { expired } => Some(format!(
                    "{}: signed by {key} while that key was valid; the key has expired since ({})",
                    file.display(),
                    gpg::date(expired)
                )),
            };
            Ok((meta, Verified::Spool(plain), note))
        }
    }
}

/// Whether the kernel confined an extraction to DESTDIR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confinement {
    Enforced,
    /// No Landlock, or one too old to allow hard links inside the confinement.
    Unavailable,
}

/// Run `f`, which spawns the extracting tar, on a thread of its own that
/// Landlock confines to creating, removing, linking and writing files
/// beneath `dest` (and writing `/dev/null`). tar and its children inherit the
/// confinement, so whatever an archive says, no path resolution can write a
/// file elsewhere: the second line behind [`ExtractionPlan`]. (Landlock does
/// not cover ownership, modes or xattrs; the plan does.)
pub fn confined<T: Send>(
    dest: &Path,
    f: impl FnOnce() -> T + Send,
) -> Result<(T, Confinement), ArchiveError> {
    use landlock::{
        ABI, AccessFs, CompatLevel, Compatible, PathBeneath, PathFd, Ruleset, RulesetAttr,
        RulesetCreatedAttr, RulesetStatus,
    };
    let confine = || -> Result<Confinement, String> {
        // why: ABI 2 is the first that lets a confined tar make hard links (Refer); below it, nothing rather than broken links
        let writes = AccessFs::from_write(ABI::V2);
        let dest_fd = PathFd::new(dest).map_err(|e| e.to_string())?;
        let null = PathFd::new("/dev/null").map_err(|e| e.to_string())?;
        let status = Ruleset::default()
            .set_compatibility(CompatLevel::SoftRequirement)
            .handle_access(writes)
            .and_then(Ruleset::create)
            .and_then(|r| r.add_rule(PathBeneath::new(dest_fd, writes)))
            .and_then(|r| r.add_rule(PathBeneath::new(null, AccessFs::WriteFile)))
            .and_then(landlock::RulesetCreated::restrict_self)
            .map_err(|e| e.to_string())?;
        Ok(match status.ruleset {
            RulesetStatus::NotEnforced => Confinement::Unavailable,
            _ => Confinement::Enforced,
        })
    };
    std::thread::scope(|s| {
        // why: Landlock restricts the calling thread (and what it spawns), never strata's other threads
        s.spawn(|| {
            let how = confine().map_err(|reason| ArchiveError::Confine {
                dest: dest.to_owned(),
                reason,
            })?;
            Ok((f(), how))
        })
        .join()
        .unwrap_or_else(|_| {
            Err(ArchiveError::Confine {
                dest: dest.to_owned(),
                reason: "the extracting thread panicked".into(),
            })
        })
    })
}

/// Stream the decompressed plain tar of `v` into `cmd`'s stdin; `cmd`'s stdout
/// goes to `stdout`. Returns the command's stderr on success.
/// Something shown every chunk written (strata's own reading of a stream).
type Tap<'a> = &'a mut dyn FnMut(&[u8]);

/// A writer that shows what it wrote to `tap` as well.
struct TapWriter<'a, W> {
    inner: W,
    tap: Option<Tap<'a>>,
}

impl<W: Write> Write for TapWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        if let Some(t) = self.tap.as_mut() {
            t(&buf[..n]);
        }
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn feed_tar(
    v: &Verified,
    c: Compression,
    cmd: &Cmd,
    stdout: Stdio,
    file: &Path,
    progress: Option<&str>,
    tap: Option<Tap>,
) -> Result<Vec<u8>, ArchiveError> {
    let f = File::open(v.path()).map_err(ArchiveError::io(v.path()))?;
    let size = f.metadata().map(|m| m.len()).ok();
    // why: the bar counts the verified bytes read, whose total is known; tar's output size is not
    let bar = match progress {
        Some(label) => crate::progress::Bar::bytes(label, size),
        None => crate::progress::Bar::none(),
    };
    let mut dec = Decoder::new(c, BufReader::with_capacity(1 << 20, bar.reader(f)))
        .map_err(ArchiveError::io(file))?;
    let tar = cmd.spawn_writer(stdout)?;
    let mut tapped = TapWriter { inner: tar, tap };
    let copied = std::io::copy(&mut dec, &mut tapped);
    let _ = tapped.flush();
    let tar = tapped.inner;
    drop(dec);
    bar.finish();
    match copied {
        Ok(_) => Ok(tar.finish()?.stderr),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            // why: tar stopped reading; its own error says why
            tar.finish()?;
            Err(ArchiveError::io(file)(e))
        }
        Err(e) => {
            drop(tar);
            Err(ArchiveError::BadMetadata {
                file: file.to_owned(),
                reason: format!("the {} stream is corrupt or truncated: {e}", c.name()),
            })
        }
    }
}

/// What an unpack did.
#[derive(Debug, Clone)]
pub struct Unpacked {
    pub file: PathBuf,
    pub members: usize,
    pub meta: ArchiveMeta,
    /// One line the user should read (a signing key that has expired since).
    pub note: Option<String>,
    /// What was left out because it was not asked for.
    pub skipped: Skipped,
}

/// What DESTDIR holds at `rel` (relative to the canonical `dest`).
fn on_disk(dest: &Path, rel: &[u8]) -> OnDisk {
    match dest
        .join(std::ffi::OsStr::from_bytes(rel))
        .symlink_metadata()
    {
        Err(_) => OnDisk::Absent,
        Ok(m) if m.file_type().is_symlink() => OnDisk::Symlink,
        Ok(m) if m.is_dir() => OnDisk::Dir,
        Ok(_) => OnDisk::Other,
    }
}

/// An archive that passed steps 1-4, waiting for extraction.
struct Checked1 {
    file: PathBuf,
    meta: ArchiveMeta,
    verified: Verified,
    listed: Listed,
    note: Option<String>,
}

/// What the listing of one archive found.
#[derive(Default)]
struct Listed {
    /// Members that tar creates.
    members: usize,
    /// Whether it is an incremental archive (directories with dumpdirs):
    /// extracted with `--incremental`, which applies them.
    incremental: bool,
    /// Exact names of the members tar must leave out.
    exclude: Vec<Vec<u8>>,
    skipped: Skipped,
}

/// Step 4 for one archive: list it with tar and check each member against
/// `plan` (which carries the members of the archives listed before it).
fn list_and_check(
    env: &ArchiveEnv,
    file: &Path,
    meta: &ArchiveMeta,
    verified: &Verified,
    dest: &Path,
    plan: &mut ExtractionPlan,
    label: Option<&[u8]>,
) -> Result<Listed, ArchiveError> {
    // why: -vv --xattrs lists xattrs after their member; only this one name, so no other (which may hold a newline) can pose as a member line
    let mut list = Cmd::new(&env.tar).args([
        "-t",
        "-v",
        "-v",
        "-P",
        "--force-local",
        "--numeric-owner",
        "--quoting-style=c",
        "--xattrs",
        "--xattrs-include=security.capability",
    ]);
    if let Some(flag) = codec::tar_flag(meta.compression) {
        list = list.arg(flag);
    }
    let privileges = plan.privileges;
    let (pipe_r, pipe_w) = std::io::pipe().map_err(ArchiveError::io(file))?;
    let (walked_tx, walked) = std::sync::mpsc::channel::<Result<Walked, String>>();
    let refuse = |member: &[u8], why: &'static str| ArchiveError::UnsafeMember {
        file: file.to_owned(),
        member: shown(member),
        why,
    };
    let bad_walk = |why: String| ArchiveError::BadListing {
        file: file.to_owned(),
        line: format!("strata's own reading of the archive: {why}"),
    };
    let (line_tx, lines) = std::sync::mpsc::channel::<std::io::Result<Vec<u8>>>();
    let (checked, listed) = std::thread::scope(|s| {
        // why: tar's listing is drained as it comes, whatever the checker waits for, so tar never
        // blocks on it: the feeding (and strata's own reading behind it) always goes on
        s.spawn(move || {
            for line in BufReader::new(pipe_r).split(b'\n') {
                if line_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let checker = s.spawn(|| -> Result<Listed, ArchiveError> {
            // why: moved into this thread (a receiver is not shared between threads)
            let walked = walked;
            let lines = lines;
            let mut out = Listed::default();
            let mut first = true;
            let mut disk = |rel: &[u8]| on_disk(dest, rel);
            // why: the same bytes, read by strata too: a dumpdir is taken from this reading only when it names the member tar lists
            let next_walked = |m: &Member| -> Result<Walked, ArchiveError> {
                let w = match walked.recv() {
                    Ok(Ok(w)) => w,
                    Ok(Err(why)) => return Err(bad_walk(why)),
                    Err(_) => return Err(refuse(&m.name, "is listed by tar but not where strata reads the archive")),
                };
                let trim = |n: &[u8]| {
                    let end = n.iter().rposition(|b| *b != b'/').map_or(0, |i| i + 1);
                    n[..end].to_vec()
                };
                if w.kind.listing_char() != m.kind || trim(&w.name) != trim(&m.name) {
                    return Err(refuse(
                        &m.name,
                        "is not the member strata reads at this place of the archive: tar and strata read it differently",
                    ));
                }
                Ok(w)
            };
            for line in &lines {
                let line = line.map_err(ArchiveError::io(file))?;
                if line.starts_with(b"  x: ") && line.ends_with(b" security.capability") {
                    if privileges == Privileges::Skip {
                        out.skipped.capabilities += 1;
                    }
                    continue;
                }
                let Some(m) = parse_listing_line(&line) else {
                    if line.trim_ascii().is_empty() {
                        continue;
                    }
                    return Err(ArchiveError::BadListing {
                        file: file.to_owned(),
                        line: String::from_utf8_lossy(&line).into_owned(),
                    });
                };
                if let Some(want) = label
                    && std::mem::take(&mut first)
                    && (m.kind != 'V' || m.name != want)
                {
                    // why: pack writes the label first; a signature covers bytes, the label says where they belong
                    return Err(ArchiveError::LabelMismatch {
                        file: file.to_owned(),
                        found: if m.kind == 'V' {
                            format!("{:?}", shown(&m.name))
                        } else {
                            "missing".into()
                        },
                        expected: shown(want),
                    });
                }
                // why: the plan first, so that a member it refuses is refused with its own reason
                let checked = plan.check(&m, &mut disk);
                let w = match &checked {
                    Ok(_) => next_walked(&m)?,
                    Err(_) => Walked {
                        kind: super::tarwalk::WalkKind::File,
                        name: Vec::new(),
                        dumpdir: None,
                    },
                };
                match checked {
                    Ok(Checked::Member) => {
                        out.members += 1;
                        if let Some(dumpdir) = &w.dumpdir {
                            out.incremental = true;
                            plan.purge(&m.name, dumpdir, &mut disk)
                                .map_err(|(member, why)| ArchiveError::UnsafeMember {
                                    file: file.to_owned(),
                                    member,
                                    why,
                                })?;
                        }
                    }
                    Ok(Checked::Label(_)) => {}
                    Ok(Checked::Skipped(why)) => {
                        match why {
                            Skip::Device => out.skipped.devices += 1,
                            Skip::Setid => out.skipped.setid += 1,
                        }
                        out.exclude.push(m.name);
                    }
                    Err((member, why)) => {
                        return Err(ArchiveError::UnsafeMember {
                            file: file.to_owned(),
                            member,
                            why,
                        });
                    }
                }
            }
            // why: the reading ends when the feeding does; a member strata read and tar did not list is a disagreement too
            match walked.recv() {
                Ok(Ok(w)) => Err(refuse(&w.name, "is in the archive but not in tar's listing: tar and strata read it differently")),
                Ok(Err(why)) => Err(bad_walk(why)),
                Err(_) => Ok(out),
            }
        });
        let mut walker = Walker::new(move |m| {
            // why: a checker that stopped early (a refusal) no longer listens
            let _ = walked_tx.send(m);
        });
        let listed = if meta.compression == Compression::Lzop {
            // why: tar decompresses lzop itself, so strata's reading goes through an lzop of its own
            match unlzop(file) {
                Ok((mut lzop, lzop_out)) => {
                    let reader = s.spawn(move || {
                        let mut r = lzop_out;
                        let mut buf = vec![0u8; 1 << 16];
                        loop {
                            match r.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => walker.feed(&buf[..n]),
                            }
                        }
                        walker.finish();
                    });
                    let listed = feed_tar(
                        verified,
                        meta.compression,
                        &list,
                        Stdio::from(pipe_w),
                        file,
                        None,
                        Some(&mut |b: &[u8]| {
                            let _ = lzop.write_all(b);
                        }),
                    );
                    let ended = lzop.finish();
                    let _ = reader.join();
                    listed.and(ended.map(|_| Vec::new()).map_err(ArchiveError::from))
                }
                Err(e) => Err(e),
            }
        } else {
            let listed = feed_tar(
                verified,
                meta.compression,
                &list,
                Stdio::from(pipe_w),
                file,
                None,
                Some(&mut |b: &[u8]| walker.feed(b)),
            );
            walker.finish();
            listed
        };
        let checked = checker.join().unwrap_or_else(|_| {
            Err(ArchiveError::BadListing {
                file: file.to_owned(),
                line: "(the listing checker panicked)".into(),
            })
        });
        (checked, listed)
    });
    // why: a refused member stops the checker early, which kills the listing tar; the refusal is the news
    let out = checked?;
    listed?;
    Ok(out)
}

/// An `lzop -d` reading its stdin, and the read end of its stdout.
fn unlzop(file: &Path) -> Result<(crate::exec::ChildWriter, std::io::PipeReader), ArchiveError> {
    let (r, w) = std::io::pipe().map_err(ArchiveError::io(file))?;
    let child = Cmd::new("lzop")
        .args(["-d", "-c", "-q"])
        .spawn_writer(Stdio::from(w))?;
    Ok((child, r))
}

/// Verify every file, list and check every member of all of them as one
/// extraction into `dest`, and only then extract them in order: a refusal,
/// whichever archive it is in, comes before anything is written.
pub fn unpack_all(
    env: &ArchiveEnv,
    files: &[PathBuf],
    dest: &Path,
    opts: UnpackOptions,
) -> Result<Vec<Unpacked>, ArchiveError> {
    // why: the archives of one unit's chain go oldest first (set names sort by date), whatever order they were given in
    let mut files: Vec<PathBuf> = files.to_vec();
    let sets: Vec<Option<String>> = files
        .iter()
        .map(|f| xattrs::get_text(f, xattrs::ARCHIVE_SET).ok().flatten())
        .collect();
    if sets.iter().all(Option::is_some) {
        let mut order: Vec<(Option<String>, PathBuf)> = sets.into_iter().zip(files).collect();
        order.sort_by(|a, b| a.0.cmp(&b.0));
        files = order.into_iter().map(|(_, f)| f).collect();
    }
    // Steps 1-3 for all, then step 4 for all.
    let mut verified = Vec::with_capacity(files.len());
    for file in &files {
        let label = expected_label(file, opts.label)?;
        let (meta, v, note) = verify(env, file)?;
        verified.push((file, meta, v, note, label));
    }
    std::fs::create_dir_all(dest).map_err(ArchiveError::io(dest))?;
    let dest = dest.canonicalize().map_err(ArchiveError::io(dest))?;
    let mut plan = ExtractionPlan::new(opts.devices, opts.privileges);
    let mut checked = Vec::with_capacity(files.len());
    for (file, meta, v, note, label) in verified {
        let listed = list_and_check(env, file, &meta, &v, &dest, &mut plan, label.as_deref())?;
        checked.push(Checked1 {
            file: file.clone(),
            meta,
            verified: v,
            listed,
            note,
        });
    }

    // Step 5: extract.
    let mut done = Vec::with_capacity(checked.len());
    let mut warned = false;
    for c in checked {
        let mut x = Cmd::new(&env.tar)
            .args([
                "-x",
                "--force-local",
                "--numeric-owner",
                "--acls",
                "--xattrs",
                "--xattrs-include=*",
                "-C",
            ])
            .arg(&dest);
        if let Some(flag) = codec::tar_flag(c.meta.compression) {
            x = x.arg(flag);
        }
        if opts.privileges == Privileges::Skip {
            x = x.arg("--xattrs-exclude=security.capability");
        }
        if c.listed.incremental {
            // why: an archive of a chain records deletions in its directories' dumpdirs, which tar applies only so
            x = x.arg("--incremental");
        }
        // why: kept until tar is done with it
        let mut exclude_file = None;
        if !c.listed.exclude.is_empty() {
            let mut t = env.spool_file("unpack-")?;
            for name in &c.listed.exclude {
                t.write_all(name)
                    .and_then(|()| t.write_all(b"\n"))
                    .map_err(ArchiveError::io(t.path()))?;
            }
            t.flush().map_err(ArchiveError::io(t.path()))?;
            // why: exact names only: no pattern characters, no match in the middle of a name
            x = x.args(["--no-wildcards", "--anchored", "-X"]).arg(t.path());
            exclude_file = Some(t);
        }
        let (stderr, confinement) = confined(&dest, || {
            feed_tar(
                &c.verified,
                c.meta.compression,
                &x,
                Stdio::null(),
                &c.file,
                Some(&format!("unpacking {}", c.file.display())),
                None,
            )
        })?;
        let stderr = stderr?;
        drop(exclude_file);
        if confinement == Confinement::Unavailable && !warned {
            warned = true;
            eprintln!(
                "strata: note: this kernel offers no Landlock (ABI 2 or later), so only the member checks keep tar inside {}",
                dest.display()
            );
        }
        if !stderr.is_empty() {
            eprint!("{}", String::from_utf8_lossy(&stderr));
        }
        done.push(Unpacked {
            file: c.file,
            members: c.listed.members,
            meta: c.meta,
            note: c.note,
            skipped: c.listed.skipped,
        });
    }
    Ok(done)
}

/// Verify `file`, check its members, and extract it into `dest`.
pub fn unpack(
    env: &ArchiveEnv,
    file: &Path,
    dest: &Path,
    opts: UnpackOptions,
) -> Result<Unpacked, ArchiveError> {
    let mut all = unpack_all(env, &[file.to_owned()], dest, opts)?;
    Ok(all.remove(0))
}

/// Read a whole small file for tests of the listing parser.
#[doc(hidden)]
pub fn read_listing(mut r: impl Read) -> std::io::Result<Vec<Member>> {
    let mut s = Vec::new();
    r.read_to_end(&mut s)?;
    Ok(s.split(|b| *b == b'\n')
        .filter_map(parse_listing_line)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(kind: char, name: &str, link: Option<&str>) -> Member {
        Member {
            kind,
            name: name.as_bytes().to_vec(),
            link: link.map(|l| l.as_bytes().to_vec()),
            setid: false,
        }
    }

    #[test]
    fn parses_gnu_tar_listing_lines() {
        let text = r#"V--------- 0/0               0 2026-11-22 01:39 "20261122-1 dump/u"--Volume Header--
lrwxrwxrwx 0/0               0 2026-11-22 01:39 "u/sl" -> "/etc/pass wd"
hrw-r--r-- 0/0               0 2026-11-22 01:39 "u/a \"b\"" link to "u/hl"
-rw-r--r-- 0/0               1 2026-11-22 01:39 "u/d/new\nline\303\251"
crw-r--r-- 0/0             1,3 2026-11-22 01:39 "u/null"
"#;
        let v = read_listing(text.as_bytes()).unwrap();
        assert_eq!(v[0], m('V', "20261122-1 dump/u", None));
        assert_eq!(v[1], m('l', "u/sl", Some("/etc/pass wd")));
        assert_eq!(v[2], m('h', "u/a \"b\"", Some("u/hl")));
        assert_eq!(v[3], m('-', "u/d/new\nlineé", None));
        let raw = parse_listing_line(b"-rw-r--r-- 0/0 1 2026-11-22 01:39 \"u/\\377x\"").unwrap();
        assert_eq!(raw.name, b"u/\xffx");
        assert_eq!(v[4], m('c', "u/null", None));
    }

    #[test]
    fn hostile_members_are_refused() {
        let none = |_: &[u8]| false;
        let ok = vec![
            m('d', "u/", None),
            m('l', "u/abs", Some("/etc/passwd")),
            m('-', "u/f", None),
            m('h', "u/h", Some("u/f")),
        ];
        assert_eq!(check_members(ok, none), Ok(4));
        let cases: Vec<(Vec<Member>, &str)> = vec![
            (vec![m('-', "/etc/x", None)], "absolute"),
            (vec![m('-', "u/../../x", None)], ".."),
            (
                vec![m('l', "u/l", Some("/etc")), m('-', "u/l/passwd", None)],
                "symbolic link",
            ),
            (
                vec![m('l', "u/l", Some("..")), m('d', "u/l/", None)],
                "symbolic link",
            ),
            (vec![m('h', "u/h", Some("../../etc/passwd"))], "hard link"),
            (vec![m('h', "u/h", Some("/etc/passwd"))], "hard link"),
            (
                vec![
                    m('l', "u/l", Some("/etc")),
                    m('h', "u/h", Some("u/l/passwd")),
                ],
                "hard link",
            ),
        ];
        for (members, why) in cases {
            let r = check_members(members.clone(), none);
            assert!(
                r.as_ref().is_err_and(|(_, w)| w.contains(why)),
                "{members:?}: {r:?}"
            );
        }
        // a symlink already in DESTDIR
        let r = check_members(vec![m('-', "u/x/f", None)], |p| p == b"u/x");
        assert!(r.is_err());
        // the same path spelled with `//` and `.` is the same path
        let r = check_members(
            vec![m('l', "u/l", Some("/etc")), m('-', "u//./l/passwd", None)],
            none,
        );
        assert!(r.is_err(), "{r:?}");
        let r = check_members(vec![m('-', "./", None)], none);
        assert!(r.is_err(), "{r:?}");
    }

    /// One plan over several listings, with `disk` as DESTDIR's state before
    /// the call; the result of each member in order.
    fn plan_of(disk: &[(&str, OnDisk)], members: &[Member]) -> Result<usize, Refusal> {
        let mut plan = ExtractionPlan::default();
        let mut look = |rel: &[u8]| {
            disk.iter()
                .find(|(n, _)| n.as_bytes() == rel)
                .map_or(OnDisk::Absent, |(_, d)| *d)
        };
        let mut n = 0;
        for mm in members {
            plan.check(mm, &mut look)?;
            n += 1;
        }
        Ok(n)
    }

    #[test]
    fn a_confined_tar_writes_and_links_inside_destdir_and_nowhere_else() {
        let top = tempfile::tempdir().unwrap();
        let dest = top.path().join("dest");
        let outside = top.path().join("outside");
        std::fs::create_dir_all(dest.join("sub")).unwrap();
        std::fs::create_dir(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, dest.join("out")).unwrap();
        let script = "echo in > a && ln a sub/b && echo x > /dev/null && \
                      mkdir d && ( echo evil > out/evil; mkdir out/dir; ln -s x out/sym; true )";
        let (run, how) = confined(&dest, || {
            Cmd::new("sh").args(["-c", script]).current_dir(&dest).run()
        })
        .unwrap();
        if how == Confinement::Unavailable {
            assert!(
                std::env::var_os("STRATA_TEST_STRICT").is_none_or(|v| v != "1"),
                "this kernel offers no Landlock ABI 2"
            );
            eprintln!("*** SKIPPED: no Landlock ABI 2 on this kernel ***");
            return;
        }
        run.unwrap();
        assert_eq!(std::fs::read_to_string(dest.join("sub/b")).unwrap(), "in\n");
        assert!(dest.join("d").is_dir());
        let escaped: Vec<_> = std::fs::read_dir(&outside).unwrap().collect();
        assert!(escaped.is_empty(), "written outside: {escaped:?}");
        // the calling thread is not confined
        std::fs::write(outside.join("free"), "ok").unwrap();
    }

    #[test]
    fn devices_and_setuid_files_are_skipped_unless_asked() {
        let setid = |kind: char, name: &str| Member {
            setid: true,
            ..m(kind, name, None)
        };
        let absent = &mut |_: &[u8]| OnDisk::Absent;
        let mut plan = ExtractionPlan::default();
        let mut check = |mm: Member| plan.check(&mm, absent);
        assert_eq!(
            check(m('c', "u/null", None)),
            Ok(Checked::Skipped(Skip::Device))
        );
        assert_eq!(
            check(setid('-', "u/suid")),
            Ok(Checked::Skipped(Skip::Setid))
        );
        assert_eq!(
            check(m('h', "u/link", Some("u/./suid"))),
            Ok(Checked::Skipped(Skip::Setid))
        );
        // a setgid directory is no privilege
        assert_eq!(check(setid('d', "u/shared")), Ok(Checked::Member));
        assert!(check(m('-', "u/null", None)).is_err_and(|(_, w)| w.contains("skipped")));
        assert!(check(m('-', "u/null/x", None)).is_err());
        assert!(check(m('b', "u//disk", None)).is_err_and(|(_, w)| w.contains("plain")));
        assert!(check(m('b', "u/a\nb", None)).is_err_and(|(_, w)| w.contains("plain")));
        let mut all = ExtractionPlan::new(Devices::Restore, Privileges::Restore);
        assert_eq!(
            all.check(&m('c', "u/null", None), absent),
            Ok(Checked::Member)
        );
        assert_eq!(
            all.check(&setid('-', "u/suid"), absent),
            Ok(Checked::Member)
        );
        let line = b"-rwsr-xr-x  0/0  10 1970-01-01 00:00 \"u/suid\"";
        assert!(parse_listing_line(line).unwrap().setid);
        let line = b"-rwxr-Sr-x  0/0  10 1970-01-01 00:00 \"u/sgid\"";
        assert!(parse_listing_line(line).unwrap().setid);
        let line = b"-rwxr-xr-t  0/0  10 1970-01-01 00:00 \"u/sticky\"";
        assert!(!parse_listing_line(line).unwrap().setid);
    }

    #[test]
    fn the_plan_spans_archives_and_what_destdir_holds() {
        use OnDisk::{Dir, Other, Symlink};
        type Case<'a> = (&'a [(&'a str, OnDisk)], Vec<Member>, Option<&'a str>);
        let cases: Vec<Case> = vec![
            // a hard link to a symlink of an earlier archive, or of DESTDIR
            (
                &[],
                vec![m('l', "u/s", Some("/x")), m('h', "u/h", Some("u/s"))],
                Some("hard link to a symbolic link"),
            ),
            (
                &[("u", Dir), ("u/run", Symlink)],
                vec![m('h', "u/h", Some("u/./run"))],
                Some("hard link to a symbolic link"),
            ),
            // any name a non-directory member made is no way through
            (
                &[("u/f", Other)],
                vec![m('h', "u/h", Some("u/f")), m('-', "u/h/x", None)],
                Some("an earlier member made"),
            ),
            (
                &[],
                vec![m('-', "u/f", None), m('d', "u/f/", None)],
                Some("directory over"),
            ),
            // a directory member where DESTDIR has a symlink
            (
                &[("u/run", Symlink)],
                vec![m('d', "u/run", None)],
                Some("directory over"),
            ),
            // a symlink of DESTDIR above a member
            (
                &[("u", Symlink)],
                vec![m('-', "u/x", None)],
                Some("already in DESTDIR"),
            ),
            // replacing a directory that members went through
            (
                &[],
                vec![m('-', "u/d/x", None), m('l', "u/d", Some("/etc"))],
                Some("replace a directory"),
            ),
            // a hard link to nothing
            (&[], vec![m('h', "u/h", Some("u/none"))], Some("neither")),
            (
                &[("u/d", Dir)],
                vec![m('h', "u/h", Some("u/d"))],
                Some("to a directory"),
            ),
            // labels and continuations
            (&[], vec![m('V', "/etc/x", None)], Some("absolute")),
            (&[], vec![m('M', "u/x", None)], Some("multi-volume")),
            (&[], vec![m('?', "u/x", None)], Some("type")),
            // fine: a symlink over DESTDIR's symlink, a file over it, links to
            // DESTDIR's files, a directory DESTDIR has
            (
                &[
                    ("u", Dir),
                    ("u/run", Symlink),
                    ("u/old", Other),
                    ("u/f", Symlink),
                ],
                vec![
                    m('l', "u/run", Some("/run")),
                    m('h', "u/h", Some("u/old")),
                    m('-', "u/f", None),
                    m('d', "u/", None),
                    m('V', "20261122-1 u", None),
                ],
                None,
            ),
        ];
        for (disk, members, want) in cases {
            let r = plan_of(disk, &members);
            match want {
                None => assert!(r.is_ok(), "{members:?}: {r:?}"),
                Some(why) => assert!(
                    r.as_ref().is_err_and(|(_, w)| w.contains(why)),
                    "{members:?} on {disk:?}: {r:?}, wanted {why:?}"
                ),
            }
        }
    }

    /// One step of a chain's extraction plan: a member, or a directory's
    /// purge by its dumpdir.
    enum Step {
        M(Member),
        P(&'static str, &'static [u8]),
    }

    fn chain_plan(disk: &[(&str, OnDisk)], steps: Vec<Step>) -> Result<(), Refusal> {
        let mut plan = ExtractionPlan::default();
        let mut look = |rel: &[u8]| {
            disk.iter()
                .find(|(n, _)| n.as_bytes() == rel)
                .map_or(OnDisk::Absent, |(_, d)| *d)
        };
        for st in steps {
            match st {
                Step::M(mm) => {
                    plan.check(&mm, &mut look)?;
                }
                Step::P(dir, dd) => plan.purge(dir.as_bytes(), dd, &mut look)?,
            }
        }
        Ok(())
    }

    #[test]
    fn a_chain_purges_what_its_directories_no_longer_list() {
        use OnDisk::{Dir, Other, Symlink};
        use Step::{M, P};
        type Case<'a> = (&'a [(&'a str, OnDisk)], Vec<Step>, Option<&'a str>);
        let cases: Vec<Case> = vec![
            // a directory replaced by a file in the next archive of the chain
            (
                &[],
                vec![
                    M(m('d', "u/", None)),
                    M(m('d', "u/x/", None)),
                    M(m('-', "u/x/f", None)),
                    P("u/", b"Yx\0\0"),
                    M(m('d', "u/", None)),
                    M(m('-', "u/x", None)),
                ],
                None,
            ),
            // without the purge it would replace a directory members used
            (
                &[],
                vec![
                    M(m('d', "u/x/", None)),
                    M(m('-', "u/x/f", None)),
                    P("u/", b"Dx\0\0"),
                    M(m('-', "u/x", None)),
                ],
                Some("replace a directory"),
            ),
            // a symlink of an earlier archive, unlisted, is gone: a directory may take its name
            (
                &[],
                vec![
                    M(m('l', "u/s", Some("/etc"))),
                    P("u/", b"Ds\0\0"),
                    M(m('d', "u/s/", None)),
                    M(m('-', "u/s/passwd", None)),
                ],
                None,
            ),
            // ... but one the dumpdir keeps ('N') stays a symlink, and no member goes through it
            (
                &[],
                vec![
                    M(m('l', "u/s", Some("/etc"))),
                    P("u/", b"Ns\0\0"),
                    M(m('-', "u/s/passwd", None)),
                ],
                Some("symbolic link"),
            ),
            // a symlink DESTDIR holds goes the same way, lazily
            (
                &[("u", Dir), ("u/run", Symlink), ("u/old", Other)],
                vec![
                    P("u", b"Drun\0\0"),
                    M(m('d', "u/run/", None)),
                    M(m('-', "u/run/x", None)),
                ],
                None,
            ),
            (
                &[("u", Dir), ("u/run", Symlink)],
                vec![P("u", b"Yrun\0\0"), M(m('-', "u/run/x", None))],
                Some("symbolic link"),
            ),
            // a hard link to a file the purge removed points at nothing
            (
                &[("u", Dir), ("u/old", Other)],
                vec![P("u", b"Yh\0\0"), M(m('h', "u/h", Some("u/old")))],
                Some("neither"),
            ),
            // a kept file that nothing holds: the chain is incomplete
            (
                &[("u", Dir)],
                vec![P("u", b"Nmissing\0\0")],
                Some("earlier archive of its chain"),
            ),
            (&[("u", Dir), ("u/f", Other)], vec![P("u", b"Nf\0\0")], None),
            // what lies below a purged directory is gone with it
            (
                &[("u", Dir), ("u/d", Dir), ("u/d/f", Other)],
                vec![P("u", b"\0"), M(m('h', "u/h", Some("u/d/f")))],
                Some("neither"),
            ),
            // rename records are never strata's
            (&[], vec![P("u", b"Rold\0Tnew\0\0")], Some("rename")),
        ];
        for (i, (disk, steps, want)) in cases.into_iter().enumerate() {
            let r = chain_plan(disk, steps);
            match want {
                None => assert!(r.is_ok(), "case {i}: {r:?}"),
                Some(why) => assert!(
                    r.as_ref().is_err_and(|(_, w)| w.contains(why)),
                    "case {i}: {r:?}, wanted {why:?}"
                ),
            }
        }
    }
}

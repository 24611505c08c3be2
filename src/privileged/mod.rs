//! The root side: `strata-snapshot`, run by the backup user through
//! `sudo -n`. Everything strata does as root happens here, and nothing else
//! does (DESIGN §4).
//!
//! Owns: the request grammar (`list`, `create`, `remove NAME`, `mount NAME`,
//! `umount NAME`, `pool-status`, nothing else), the helper's root-owned
//! config ([`config`]), the fixed argument vectors of lvs/lvcreate/lvchange/
//! lvremove/mount/umount/btrfs ([`lvm`], [`btrfs_argv`]), and the JSON
//! replies ([`protocol`]).
//!
//! Invariants:
//! - Nothing from the caller reaches a command except a [`SnapshotName`]
//!   that parsed (`^[0-9]{8}-[0-9]+$`, a real date, at most 18 bytes). The
//!   VG/LV, the root, the store kind and the filesystem type come only from
//!   the root-owned config; the user's strata config is never read.
//! - A refusal (exit 2, one line on stderr) happens before any command that
//!   changes anything; refusals that depend on LVM state (a name that is not
//!   one of our snapshots) have run `lvs` only.
//! - Children get an empty environment plus a fixed `PATH` and `LC_ALL=C`;
//!   the helper itself reads no environment variable, except in debug builds
//!   when not run through sudo (see [`Overrides`]).
//! - Mount points are exactly `<root>/Snapshots/<name>`; the helper creates
//!   them (root-owned, 0755) in a root-owned, not group/world-writable
//!   `<root>/Snapshots`, and refuses a symlink or anything it did not make.
//!   Snapshots are mounted `ro,nosuid,nodev,noexec` with journal replay off.

pub mod config;
pub mod lvm;
pub mod protocol;

use crate::exec::{Cmd, ExecError};
use crate::names::{SnapshotName, SnapshotNameError};
use config::{HelperConfig, HelperStore};
use protocol::{
    CreateReply, ListReply, ListedSnapshot, MountReply, PoolReply, RemoveReply, UmountReply,
};
use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The `PATH` children run with.
pub const FIXED_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";
/// No argument may be longer than this (a name is at most 18 bytes).
const MAX_ARG_BYTES: usize = 32;
/// The longest valid name: 8 digits, a dash, 9 digits.
const MAX_NAME_BYTES: usize = 18;

/// How to call the helper, for refusals of a malformed request.
const USAGE: &str =
    "usage: strata-snapshot list | create | remove NAME | mount NAME | umount NAME | pool-status";

/// A request the helper will not carry out; nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("an argument is not UTF-8")]
    ArgNotUtf8,
    #[error("an argument is longer than {MAX_ARG_BYTES} bytes")]
    ArgTooLong,
    #[error("snapshot name {0:?} is too long")]
    NameTooLong(String),
    #[error(transparent)]
    BadName(#[from] SnapshotNameError),
    #[error("no verb; {USAGE}")]
    NoVerb,
    #[error("{verb} takes no arguments; {USAGE}")]
    TakesNoArguments { verb: String },
    #[error("{verb} needs exactly one snapshot name; {USAGE}")]
    NameMissing { verb: String },
    #[error("{verb} takes exactly one snapshot name; {USAGE}")]
    TooManyNames { verb: String },
    #[error("unknown verb {0:?}; {USAGE}")]
    UnknownVerb(String),
    #[error("must run as root (through sudo -n)")]
    NotRoot,
    #[error("backup root {}: {source}", root.display())]
    Root {
        root: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("backup root {} is not a canonical path (it resolves to {})", root.display(), canonical.display())]
    RootNotCanonical { root: PathBuf, canonical: PathBuf },
    #[error("backup root {} is not a directory", root.display())]
    RootNotDirectory { root: PathBuf },
    #[error("config path {} is not absolute", path.display())]
    ConfigPathRelative { path: PathBuf },
    #[error("cannot open config {}: {source}", path.display())]
    ConfigOpen {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot stat config {}: {source}", path.display())]
    ConfigStat {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config {} is not a regular file", path.display())]
    ConfigNotAFile { path: PathBuf },
    #[error("config {} is larger than {} bytes", path.display(), config::MAX_BYTES)]
    ConfigTooLarge { path: PathBuf },
    #[error("cannot read config {}: {source}", path.display())]
    ConfigRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config {}: {source}", path.display())]
    ConfigInvalid {
        path: PathBuf,
        #[source]
        source: config::ConfigProblem,
    },
    /// `what` is `config`, `config directory` or `directory`.
    #[error("{what} {} is owned by uid {uid}, not root", path.display())]
    NotRootOwned {
        what: &'static str,
        path: PathBuf,
        uid: u32,
    },
    #[error("{what} {} is group- or world-writable (mode {mode:o})", path.display())]
    Writable {
        what: &'static str,
        path: PathBuf,
        /// The permission bits (`mode & 0o7777`).
        mode: u32,
    },
    #[error("cannot stat {}: {source}", path.display())]
    Stat {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is a symlink", path.display())]
    Symlink { path: PathBuf },
    #[error("{} is not a directory", path.display())]
    NotADirectory { path: PathBuf },
    #[error("{} changed while it was checked", path.display())]
    ChangedWhileChecked { path: PathBuf },
    #[error("{} vanished", path.display())]
    Vanished { path: PathBuf },
    #[error("mount point {} is not empty", path.display())]
    MountPointNotEmpty { path: PathBuf },
    #[error("{vg}/{name} is not a {} snapshot of {vg}/{lv}", lvm::TAG)]
    NotOurSnapshot {
        vg: String,
        lv: String,
        name: SnapshotName,
    },
    #[error("snapshot {0} does not exist")]
    NoSuchSnapshot(SnapshotName),
    #[error("{} is not a snapshot", path.display())]
    NotASnapshot { path: PathBuf },
    #[error("btrfs snapshots are read-only subvolumes under <root>/.snapshots and need no mount")]
    BtrfsNeedsNoMount,
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum HelperError {
    #[error("refused: {0}")]
    Refused(#[from] Refusal),
    #[error(transparent)]
    Exec(#[from] ExecError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("snapshot {0} is mounted; unmount it first")]
    Mounted(SnapshotName),
    #[error(transparent)]
    Lvm(#[from] lvm::LvmError),
    #[error("cannot mount snapshot {name}: {source}")]
    Mount {
        name: SnapshotName,
        #[source]
        source: ExecError,
    },
}

impl HelperError {
    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> HelperError + '_ {
        move |source| HelperError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// A parsed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verb {
    List,
    Create,
    Remove(SnapshotName),
    Mount(SnapshotName),
    Umount(SnapshotName),
    PoolStatus,
}

/// Parse the arguments after the program name; anything unexpected is refused.
pub fn parse_request(args: &[OsString]) -> Result<Verb, Refusal> {
    let mut text = Vec::new();
    for a in args {
        let s = a.to_str().ok_or(Refusal::ArgNotUtf8)?;
        if s.len() > MAX_ARG_BYTES {
            return Err(Refusal::ArgTooLong);
        }
        text.push(s);
    }
    let name = |s: &str| -> Result<SnapshotName, Refusal> {
        if s.len() > MAX_NAME_BYTES {
            return Err(Refusal::NameTooLong(s.to_owned()));
        }
        Ok(SnapshotName::parse(s)?)
    };
    let verb = || text[0].to_owned();
    match text.as_slice() {
        ["list"] => Ok(Verb::List),
        ["create"] => Ok(Verb::Create),
        ["pool-status"] => Ok(Verb::PoolStatus),
        ["remove", n] => Ok(Verb::Remove(name(n)?)),
        ["mount", n] => Ok(Verb::Mount(name(n)?)),
        ["umount", n] => Ok(Verb::Umount(name(n)?)),
        [] => Err(Refusal::NoVerb),
        ["list" | "create" | "pool-status", ..] => Err(Refusal::TakesNoArguments { verb: verb() }),
        ["remove" | "mount" | "umount"] => Err(Refusal::NameMissing { verb: verb() }),
        ["remove" | "mount" | "umount", ..] => Err(Refusal::TooManyNames { verb: verb() }),
        [other, ..] => Err(Refusal::UnknownVerb((*other).to_owned())),
    }
}

/// Where the config is read from and which `PATH` children get.
///
/// Release builds: always `/etc/strata/snapshot.yaml` and [`FIXED_PATH`].
/// Debug builds (what `cargo test` runs) honour `STRATA_SNAPSHOT_CONFIG` and
/// `STRATA_SNAPSHOT_TEST_PATH`, but only when `SUDO_UID` and `SUDO_USER` are
/// both unset, i.e. when the caller already is root and sudo is not
/// involved: a sudo rule can never reach them (sudo sets `SUDO_*` itself),
/// and a packaged (release) binary does not contain them at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overrides {
    pub config: PathBuf,
    pub path: String,
}

impl Overrides {
    /// Decide from an environment lookup (the process environment in `main`).
    pub fn from_env(get: impl Fn(&str) -> Option<OsString>) -> Overrides {
        let mut o = Overrides {
            config: PathBuf::from(config::DEFAULT_PATH),
            path: FIXED_PATH.to_owned(),
        };
        let under_sudo = get("SUDO_UID").is_some() || get("SUDO_USER").is_some();
        if cfg!(debug_assertions) && !under_sudo {
            if let Some(c) = get("STRATA_SNAPSHOT_CONFIG") {
                o.config = PathBuf::from(c);
            }
            if let Some(p) = get("STRATA_SNAPSHOT_TEST_PATH").and_then(|p| p.into_string().ok()) {
                o.path = p;
            }
        }
        o
    }
}

/// The helper's entry point: one request, one JSON reply, an exit code.
#[must_use]
pub fn main() -> std::process::ExitCode {
    // why: directories the helper makes must not inherit a permissive umask from the caller
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let overrides = Overrides::from_env(|k| std::env::var_os(k));
    match run(&args, &overrides) {
        Ok(json) => {
            println!("{json}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            // why: one line, whatever the cause chain: the unprivileged side shows it as is
            let line = error_line(&e);
            eprintln!("strata-snapshot: {line}");
            let code = match e {
                HelperError::Refused(_) => protocol::EXIT_REFUSED,
                _ => protocol::EXIT_FAILED,
            };
            std::process::ExitCode::from(u8::try_from(code).unwrap_or(1))
        }
    }
}

fn error_line(e: &HelperError) -> String {
    let mut s = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cause = c.source();
    }
    s.replace('\n', " / ")
}

/// Parse, judge, then act. Returns the JSON reply.
pub fn run(args: &[OsString], overrides: &Overrides) -> Result<String, HelperError> {
    let verb = parse_request(args)?;
    if !nix::unistd::geteuid().is_root() {
        return Err(Refusal::NotRoot.into());
    }
    let cfg = config::load(&overrides.config)?;
    let canonical = std::fs::canonicalize(&cfg.root).map_err(|source| Refusal::Root {
        root: cfg.root.clone(),
        source,
    })?;
    if canonical != cfg.root {
        return Err(Refusal::RootNotCanonical {
            root: cfg.root.clone(),
            canonical,
        }
        .into());
    }
    if !canonical.is_dir() {
        return Err(Refusal::RootNotDirectory {
            root: cfg.root.clone(),
        }
        .into());
    }
    let helper = Helper {
        cfg,
        path: overrides.path.clone(),
    };
    match helper.cfg.store {
        HelperStore::LvmThin => helper.lvm(&verb),
        HelperStore::Btrfs => helper.btrfs(&verb),
    }
}

struct Helper {
    cfg: HelperConfig,
    path: String,
}

fn json<T: serde::Serialize>(v: &T) -> String {
    // why: these types have string keys and finite numbers only, so serializing cannot fail
    serde_json::to_string(v).unwrap_or_else(|_| "{}".to_owned())
}

/// What is at a path the helper manages.
#[derive(Debug, PartialEq, Eq)]
enum Found {
    Missing,
    Dir,
}

/// A directory the helper owns: missing, or a real directory owned by root
/// and writable by nobody else. A symlink or anything else is refused.
fn check_own_dir(path: &Path) -> Result<Found, Refusal> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Found::Missing),
        Err(source) => Err(Refusal::Stat {
            path: path.to_owned(),
            source,
        }),
        Ok(m) if m.file_type().is_symlink() => Err(Refusal::Symlink {
            path: path.to_owned(),
        }),
        Ok(m) if !m.is_dir() => Err(Refusal::NotADirectory {
            path: path.to_owned(),
        }),
        Ok(m) => {
            config::check_owner_mode(path, m.uid(), m.mode(), "directory")?;
            Ok(Found::Dir)
        }
    }
}

/// A directory the helper owns, opened without following symlinks, checked
/// through its descriptor, and kept open while commands use it. Commands get
/// [`Pinned::proc_path`] (`/proc/<pid>/fd/<n>`), which the kernel resolves to
/// this very directory: renaming `<root>/Snapshots` or putting a symlink in
/// its place after the check (the backup user owns `<root>`) cannot redirect
/// a mount or an unmount.
struct Pinned {
    fd: std::os::fd::OwnedFd,
}

impl Pinned {
    /// Open `name` in `dir` (or the absolute `shown` when `dir` is None);
    /// `None` when missing. A symlink, a non-directory, or a directory not
    /// owned by root / writable by others is refused.
    fn open(
        dir: Option<&Pinned>,
        name: &Path,
        shown: &Path,
    ) -> Result<Option<Pinned>, HelperError> {
        use nix::fcntl::{AT_FDCWD, OFlag, openat};
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let opened = match dir {
            Some(d) => openat(&d.fd, name, flags, nix::sys::stat::Mode::empty()),
            None => openat(AT_FDCWD, shown, flags, nix::sys::stat::Mode::empty()),
        };
        let fd = match opened {
            Ok(fd) => fd,
            Err(nix::errno::Errno::ENOENT) => return Ok(None),
            Err(nix::errno::Errno::ELOOP | nix::errno::Errno::ENOTDIR) => {
                check_own_dir(shown)?;
                return Err(Refusal::ChangedWhileChecked {
                    path: shown.to_owned(),
                }
                .into());
            }
            Err(e) => return Err(HelperError::io(shown)(e.into())),
        };
        let st = nix::sys::stat::fstat(&fd).map_err(|e| HelperError::io(shown)(e.into()))?;
        config::check_owner_mode(shown, st.st_uid, st.st_mode, "directory")?;
        Ok(Some(Pinned { fd }))
    }

    /// The backup root itself: owned by the backup user by design, so only
    /// "a directory, not a symlink" is checked (its path is canonical and
    /// comes from the root-owned config; its parent is not the user's).
    fn open_root(root: &Path) -> Result<Pinned, HelperError> {
        use nix::fcntl::{AT_FDCWD, OFlag, openat};
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = openat(AT_FDCWD, root, flags, nix::sys::stat::Mode::empty()).map_err(|e| {
            Refusal::Root {
                root: root.to_owned(),
                source: e.into(),
            }
        })?;
        Ok(Pinned { fd })
    }

    /// Make `name` here (root-owned, 0755) unless it exists, then open it.
    fn make(&self, name: &str, shown: &Path) -> Result<Pinned, HelperError> {
        let mode = nix::sys::stat::Mode::from_bits_truncate(0o755);
        match nix::sys::stat::mkdirat(&self.fd, name, mode) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => return Err(HelperError::io(shown)(e.into())),
        }
        Pinned::open(Some(self), Path::new(name), shown)?.ok_or_else(|| {
            Refusal::Vanished {
                path: shown.to_owned(),
            }
            .into()
        })
    }

    fn proc_path(&self) -> String {
        use std::os::fd::AsRawFd;
        format!("/proc/{}/fd/{}", std::process::id(), self.fd.as_raw_fd())
    }
}

fn is_empty_dir(path: &Path) -> Result<bool, HelperError> {
    Ok(std::fs::read_dir(path)
        .map_err(HelperError::io(path))?
        .next()
        .is_none())
}

/// Mount points of `/proc/self/mountinfo` text, unescaped.
#[must_use]
pub fn parse_mountinfo(text: &str) -> Vec<PathBuf> {
    text.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape_octal(p)))
        .collect()
}

fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn mount_points() -> Result<Vec<PathBuf>, HelperError> {
    let p = Path::new("/proc/self/mountinfo");
    let text = std::fs::read_to_string(p).map_err(HelperError::io(p))?;
    Ok(parse_mountinfo(&text))
}

impl Helper {
    fn cmd(&self, argv: &[String]) -> Cmd {
        Cmd::new(&argv[0])
            .args(&argv[1..])
            .env_clear()
            .env("PATH", &self.path)
            .env("LC_ALL", "C")
    }

    fn snapshots_dir(&self) -> PathBuf {
        self.cfg.root.join("Snapshots")
    }

    fn mount_point(&self, name: &SnapshotName) -> PathBuf {
        self.snapshots_dir().join(name.as_str())
    }

    fn vg_lv(&self) -> (&str, &str) {
        match &self.cfg.backup_lv {
            Some((vg, lv)) => (vg, lv),
            // why: config::parse makes backup-lv mandatory for lvm-thin
            None => ("", ""),
        }
    }

    fn lvs(&self) -> Result<Vec<lvm::LvRow>, HelperError> {
        let (vg, _) = self.vg_lv();
        let out = self.cmd(&lvm::lvs_argv(vg)).run()?;
        Ok(lvm::parse_lvs(&out.stdout_text())?)
    }

    fn lvm(&self, verb: &Verb) -> Result<String, HelperError> {
        let (vg, lv) = self.vg_lv();
        match verb {
            Verb::List => {
                let mounted = mount_points()?;
                let snapshots = lvm::snapshots_of(&self.lvs()?, vg, lv)
                    .into_iter()
                    .map(|n| {
                        let mp = self.mount_point(&n);
                        ListedSnapshot {
                            name: n.to_string(),
                            mounted: mounted.contains(&mp).then_some(mp),
                        }
                    })
                    .collect();
                Ok(json(&ListReply { snapshots }))
            }
            Verb::PoolStatus => {
                let pool = lvm::pool_of(&self.lvs()?, vg, lv)?;
                Ok(json(&PoolReply { pool: Some(pool) }))
            }
            Verb::Create => {
                let rows = self.lvs()?;
                if !rows.iter().any(|r| r.lv_name == lv) {
                    return Err(lvm::LvmError::NoSuchLv {
                        vg: vg.to_owned(),
                        lv: lv.to_owned(),
                    }
                    .into());
                }
                // why: every LV name of the VG, tagged or not, so the new name cannot collide
                let taken: Vec<SnapshotName> = rows
                    .iter()
                    .filter_map(|r| SnapshotName::parse(&r.lv_name).ok())
                    .collect();
                let name = SnapshotName::next_for_day(&taken, chrono::Local::now().date_naive());
                self.cmd(&lvm::create_argv(vg, lv, &name)).run()?;
                Ok(json(&CreateReply {
                    created: name.to_string(),
                }))
            }
            Verb::Remove(name) => {
                let rows = self.lvs()?;
                if !self.is_ours(&rows, name)? {
                    return Ok(json(&RemoveReply { removed: false }));
                }
                if mount_points()?.contains(&self.mount_point(name)) {
                    return Err(HelperError::Mounted(name.clone()));
                }
                self.cmd(&lvm::remove_argv(vg, name)).run()?;
                Ok(json(&RemoveReply { removed: true }))
            }
            Verb::Mount(name) => self.lvm_mount(name),
            Verb::Umount(name) => self.lvm_umount(name),
        }
    }

    /// Whether `name` is one of our snapshots; an LV of that name that is
    /// not (untagged, another origin) is refused.
    fn is_ours(&self, rows: &[lvm::LvRow], name: &SnapshotName) -> Result<bool, HelperError> {
        let (vg, lv) = self.vg_lv();
        if lvm::snapshots_of(rows, vg, lv).contains(name) {
            return Ok(true);
        }
        if rows.iter().any(|r| r.lv_name == name.as_str()) {
            return Err(Refusal::NotOurSnapshot {
                vg: vg.to_owned(),
                lv: lv.to_owned(),
                name: name.clone(),
            }
            .into());
        }
        Ok(false)
    }

    /// Check `<root>/Snapshots` and `<root>/Snapshots/<name>` without
    /// changing anything; `Ok(true)` when it is already mounted there.
    fn check_mount_point(&self, name: &SnapshotName) -> Result<bool, HelperError> {
        let dir = self.snapshots_dir();
        if check_own_dir(&dir)? == Found::Missing {
            return Ok(false);
        }
        let mp = self.mount_point(name);
        // why: first, because once mounted, mp shows the snapshot's root dir (owned by the backup user)
        if mount_points()?.contains(&mp) {
            return Ok(true);
        }
        if check_own_dir(&mp)? == Found::Missing {
            return Ok(false);
        }
        if !is_empty_dir(&mp)? {
            return Err(Refusal::MountPointNotEmpty { path: mp }.into());
        }
        Ok(false)
    }

    fn lvm_mount(&self, name: &SnapshotName) -> Result<String, HelperError> {
        let (vg, _) = self.vg_lv();
        let mp = self.mount_point(name);
        let already = self.check_mount_point(name)?;
        let rows = self.lvs()?;
        if !self.is_ours(&rows, name)? {
            return Err(Refusal::NoSuchSnapshot(name.clone()).into());
        }
        if already {
            return Ok(json(&MountReply { mounted: mp }));
        }
        let root = Pinned::open_root(&self.cfg.root)?;
        let snaps = root.make("Snapshots", &self.snapshots_dir())?;
        let target = snaps.make(name.as_str(), &mp)?;
        if !is_empty_dir(Path::new(&target.proc_path()))? {
            return Err(Refusal::MountPointNotEmpty { path: mp }.into());
        }
        self.cmd(&lvm::activate_argv(vg, name)).run()?;
        let device = format!("/dev/{vg}/{name}");
        // why: -c (no canonicalization): the kernel resolves the pinned /proc/<pid>/fd path itself
        let argv = [
            "mount".to_owned(),
            "-c".to_owned(),
            "-t".to_owned(),
            self.cfg.fstype.name().to_owned(),
            "-o".to_owned(),
            self.cfg.fstype.mount_options().to_owned(),
            device,
            target.proc_path(),
        ];
        if let Err(source) = self.cmd(&argv).run() {
            // why: leave nothing behind: the LV inactive again and no empty mount point
            let _ = self.cmd(&lvm::deactivate_argv(vg, name)).run();
            let _ = nix::unistd::unlinkat(
                &snaps.fd,
                name.as_str(),
                nix::unistd::UnlinkatFlags::RemoveDir,
            );
            return Err(HelperError::Mount {
                name: name.clone(),
                source,
            });
        }
        Ok(json(&MountReply { mounted: mp }))
    }

    fn lvm_umount(&self, name: &SnapshotName) -> Result<String, HelperError> {
        let (vg, _) = self.vg_lv();
        let mp = self.mount_point(name);
        let dir_state = check_own_dir(&self.snapshots_dir())?;
        // why: a mounted mp shows the snapshot's root dir (owned by the backup user), so
        // ownership is judged only when nothing is mounted there
        let mounted = dir_state == Found::Dir && mount_points()?.contains(&mp);
        let mp_state = if mounted {
            Found::Dir
        } else if dir_state == Found::Dir {
            check_own_dir(&mp)?
        } else {
            Found::Missing
        };
        let rows = self.lvs()?;
        let ours = self.is_ours(&rows, name)?;
        let snaps = if dir_state == Found::Dir {
            Pinned::open(None, &self.snapshots_dir(), &self.snapshots_dir())?
        } else {
            None
        };
        if let (true, Some(snaps)) = (mounted, &snaps) {
            // why: through the pinned Snapshots dir, as for mount
            let target = format!("{}/{name}", snaps.proc_path());
            self.cmd(&["umount".to_owned(), "-c".to_owned(), target])
                .run()?;
        }
        if ours {
            self.cmd(&lvm::deactivate_argv(vg, name)).run()?;
        }
        if let (Found::Dir, Some(snaps)) = (&mp_state, &snaps) {
            let flags = nix::unistd::UnlinkatFlags::RemoveDir;
            match nix::unistd::unlinkat(&snaps.fd, name.as_str(), flags) {
                // why: a non-empty directory is not one the helper left behind; keep it
                Ok(()) | Err(nix::errno::Errno::ENOENT | nix::errno::Errno::ENOTEMPTY) => {}
                Err(e) => return Err(HelperError::io(&mp)(e.into())),
            }
        }
        Ok(json(&UmountReply { unmounted: mounted }))
    }

    fn btrfs(&self, verb: &Verb) -> Result<String, HelperError> {
        let dir = self.cfg.root.join(".snapshots");
        match verb {
            Verb::List => {
                let snapshots = btrfs_list(&dir)?
                    .into_iter()
                    .map(|n| ListedSnapshot {
                        name: n.to_string(),
                        mounted: None,
                    })
                    .collect();
                Ok(json(&ListReply { snapshots }))
            }
            Verb::PoolStatus => Ok(json(&PoolReply { pool: None })),
            Verb::Create => {
                // why: pinned, as for LVM mounts: the user owns <root> and could swap `.snapshots`
                check_own_dir(&dir)?;
                let root = Pinned::open_root(&self.cfg.root)?;
                let pinned = root.make(".snapshots", &dir)?;
                let name = SnapshotName::next_for_day(
                    &btrfs_list(&dir)?,
                    chrono::Local::now().date_naive(),
                );
                let dest = PathBuf::from(format!("{}/{name}", pinned.proc_path()));
                self.cmd(&btrfs_argv::snapshot(&self.cfg.root, &dest))
                    .run()?;
                Ok(json(&CreateReply {
                    created: name.to_string(),
                }))
            }
            Verb::Remove(name) => {
                if check_own_dir(&dir)? == Found::Missing {
                    return Ok(json(&RemoveReply { removed: false }));
                }
                let root = Pinned::open_root(&self.cfg.root)?;
                let Some(pinned) = Pinned::open(Some(&root), Path::new(".snapshots"), &dir)? else {
                    return Ok(json(&RemoveReply { removed: false }));
                };
                let shown = dir.join(name.as_str());
                let path = PathBuf::from(format!("{}/{name}", pinned.proc_path()));
                match std::fs::symlink_metadata(&path) {
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Ok(json(&RemoveReply { removed: false }));
                    }
                    Err(e) => return Err(HelperError::io(&shown)(e)),
                    Ok(m) if !m.is_dir() => {
                        return Err(Refusal::NotASnapshot { path: shown }.into());
                    }
                    Ok(_) => {}
                }
                self.cmd(&btrfs_argv::delete(&path)).run()?;
                // why: btrfs frees a deleted subvolume's space later, in a cleaner thread; the free-space
                // rule measures after each removal, so the removal ends when the space is free and counted
                let fs = PathBuf::from(pinned.proc_path());
                self.cmd(&btrfs_argv::wait_deleted(&fs)).run()?;
                self.cmd(&btrfs_argv::commit(&fs)).run()?;
                Ok(json(&RemoveReply { removed: true }))
            }
            Verb::Mount(_) | Verb::Umount(_) => Err(Refusal::BtrfsNeedsNoMount.into()),
        }
    }
}

fn btrfs_list(dir: &Path) -> Result<Vec<SnapshotName>, HelperError> {
    if check_own_dir(dir)? == Found::Missing {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(HelperError::io(dir))? {
        let entry = entry.map_err(HelperError::io(dir))?;
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        if let Ok(name) = SnapshotName::parse(&entry.file_name().to_string_lossy()) {
            out.push(name);
        }
    }
    out.sort();
    Ok(out)
}

/// The fixed btrfs argument vectors.
pub mod btrfs_argv {
    use std::path::Path;

    /// `btrfs subvolume snapshot -r ROOT DEST`.
    #[must_use]
    pub fn snapshot(root: &Path, dest: &Path) -> Vec<String> {
        vec![
            "btrfs".into(),
            "subvolume".into(),
            "snapshot".into(),
            "-r".into(),
            root.to_string_lossy().into_owned(),
            dest.to_string_lossy().into_owned(),
        ]
    }

    /// `btrfs subvolume sync PATH`: wait until deleted subvolumes are gone.
    #[must_use]
    pub fn wait_deleted(path: &Path) -> Vec<String> {
        vec![
            "btrfs".into(),
            "subvolume".into(),
            "sync".into(),
            path.to_string_lossy().into_owned(),
        ]
    }

    /// `btrfs filesystem sync PATH`: commit, so freed space is counted.
    #[must_use]
    pub fn commit(path: &Path) -> Vec<String> {
        vec![
            "btrfs".into(),
            "filesystem".into(),
            "sync".into(),
            path.to_string_lossy().into_owned(),
        ]
    }

    /// `btrfs subvolume delete PATH`.
    #[must_use]
    pub fn delete(path: &Path) -> Vec<String> {
        vec![
            "btrfs".into(),
            "subvolume".into(),
            "delete".into(),
            path.to_string_lossy().into_owned(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether a refusal is the one a case expects.
    type Expected = fn(&Refusal) -> bool;

    fn req(args: &[&str]) -> Result<Verb, Refusal> {
        let v: Vec<OsString> = args.iter().map(OsString::from).collect();
        parse_request(&v)
    }

    #[test]
    fn grammar() {
        assert_eq!(req(&["list"]).unwrap(), Verb::List);
        assert_eq!(req(&["pool-status"]).unwrap(), Verb::PoolStatus);
        assert!(matches!(req(&["mount", "20260101-1"]), Ok(Verb::Mount(_))));
        let cases: [(&[&str], Expected); 12] = [
            (&[], |r| matches!(r, Refusal::NoVerb)),
            (
                &["list", "x"],
                |r| matches!(r, Refusal::TakesNoArguments { verb } if verb == "list"),
            ),
            (
                &["create", "20260101-1"],
                |r| matches!(r, Refusal::TakesNoArguments { verb } if verb == "create"),
            ),
            (
                &["mount"],
                |r| matches!(r, Refusal::NameMissing { verb } if verb == "mount"),
            ),
            (&["mount", "../x"], |r| matches!(r, Refusal::BadName(_))),
            (&["mount", "20260101-1;rm"], |r| {
                matches!(r, Refusal::BadName(_))
            }),
            (&["mount", ""], |r| matches!(r, Refusal::BadName(_))),
            (
                &["mount", "20260101-1", "/etc"],
                |r| matches!(r, Refusal::TooManyNames { verb } if verb == "mount"),
            ),
            (&["remove", "othervg/20260101-1"], |r| {
                matches!(r, Refusal::BadName(_))
            }),
            (
                &["remove", "20260101-1234567890"],
                |r| matches!(r, Refusal::NameTooLong(n) if n == "20260101-1234567890"),
            ),
            (
                &["shell"],
                |r| matches!(r, Refusal::UnknownVerb(v) if v == "shell"),
            ),
            (
                &["--config", "/tmp/x"],
                |r| matches!(r, Refusal::UnknownVerb(v) if v == "--config"),
            ),
        ];
        for (bad, expected) in cases {
            match req(bad) {
                Err(r) if expected(&r) => {}
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        let m = req(&["mount"]).unwrap_err().to_string();
        assert_eq!(
            m,
            "mount needs exactly one snapshot name; usage: strata-snapshot list | create | \
             remove NAME | mount NAME | umount NAME | pool-status"
        );
    }

    #[test]
    fn overrides_only_outside_sudo() {
        let env = |sudo: bool| {
            move |k: &str| -> Option<OsString> {
                match k {
                    "STRATA_SNAPSHOT_CONFIG" => Some("/tmp/c.yaml".into()),
                    "SUDO_UID" if sudo => Some("1000".into()),
                    _ => None,
                }
            }
        };
        let o = Overrides::from_env(env(true));
        assert_eq!(o.config, Path::new(config::DEFAULT_PATH));
        let o = Overrides::from_env(env(false));
        // why: this unit test runs in a debug build, where the override exists
        assert_eq!(o.config, Path::new("/tmp/c.yaml"));
    }

    #[test]
    fn mountinfo() {
        let text = "36 35 98:0 / /mnt/a\\040b rw,noatime master:1 - ext3 /dev/root rw\n\
                    37 35 98:0 / /srv/backup/Snapshots/20260101-1 ro - ext4 /dev/mapper/vg-20260101--1 ro\n";
        assert_eq!(
            parse_mountinfo(text),
            [
                PathBuf::from("/mnt/a b"),
                PathBuf::from("/srv/backup/Snapshots/20260101-1")
            ]
        );
    }
}

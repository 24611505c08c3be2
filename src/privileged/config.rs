//! The helper's own configuration: a small root-owned YAML file
//! (`/etc/strata/snapshot.yaml`), the only source of the VG/LV, the backup
//! root and the store kind. The user's strata config is never read here: the
//! user can write it.
//!
//! Invariants of a loaded [`HelperConfig`]: the file was a regular file owned
//! by root and not writable by group or others, opened without following a
//! symlink, in a directory chain that is root-owned and not group/world
//! writable (sticky directories such as /tmp are not accepted); `root` is an
//! absolute path without `.`/`..`; VG and LV names are LVM-safe.
//!
//! ```yaml
//! store: lvm-thin        # or btrfs
//! root: /srv/backup      # the backup root (mounted filesystem or btrfs subvolume)
//! backup-lv: vg/lv       # lvm-thin only
//! fstype: ext4           # lvm-thin only: ext4 (mounted ro,noload) or xfs (ro,norecovery,nouuid)
//! ```

use super::Refusal;
use serde::Deserialize;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

/// Where the helper's config lives.
pub const DEFAULT_PATH: &str = "/etc/strata/snapshot.yaml";
/// A config larger than this is refused (it is four lines).
pub(super) const MAX_BYTES: u64 = 64 * 1024;

/// What is wrong with the text of a helper config.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigProblem {
    /// Not YAML of the expected shape: the first line of the parser's message.
    #[error("{0}")]
    Yaml(String),
    #[error("root {} must be an absolute path below / without . or ..", .0.display())]
    RootNotPlain(PathBuf),
    #[error("root must be UTF-8 without whitespace or backslashes")]
    RootCharacters,
    #[error("backup-lv (vg/lv) is required for store lvm-thin")]
    BackupLvMissing,
    #[error("backup-lv is only for store lvm-thin")]
    BackupLvNotLvm,
    #[error("backup-lv {0:?}: expected vg/lv")]
    BackupLvShape(String),
    #[error(
        "backup-lv {value:?}: {part:?} is not a plain LVM name ([A-Za-z0-9+_.-], not starting with - or .)"
    )]
    BackupLvName { value: String, part: String },
    #[error("fstype is only for store lvm-thin")]
    FstypeNotLvm,
}

/// Which volume manager the helper drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HelperStore {
    LvmThin,
    Btrfs,
}

/// The filesystem on the backup LV, which decides the snapshot's mount options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum FsType {
    #[default]
    Ext4,
    Xfs,
}

impl FsType {
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            FsType::Ext4 => "ext4",
            FsType::Xfs => "xfs",
        }
    }

    /// Read-only, and never replaying a journal: the snapshot was taken
    /// under a mounted filesystem and is read-only.
    #[must_use]
    pub fn mount_options(self) -> &'static str {
        match self {
            FsType::Ext4 => "ro,nosuid,nodev,noexec,noload",
            // why: a snapshot has the origin's UUID, which XFS refuses twice unless nouuid
            FsType::Xfs => "ro,nosuid,nodev,noexec,norecovery,nouuid",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawHelperConfig {
    store: HelperStore,
    root: PathBuf,
    backup_lv: Option<String>,
    fstype: Option<FsType>,
}

/// The validated helper config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelperConfig {
    pub store: HelperStore,
    pub root: PathBuf,
    /// `(vg, lv)`; always `Some` for lvm-thin.
    pub backup_lv: Option<(String, String)>,
    pub fstype: FsType,
}

/// Load and judge the config at `path`; every problem is a refusal.
pub fn load(path: &Path) -> Result<HelperConfig, Refusal> {
    check_ancestors(path)?;
    // why: O_NOFOLLOW, so a symlink planted in place of the file is refused, not followed
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
        .map_err(|source| Refusal::ConfigOpen {
            path: path.to_owned(),
            source,
        })?;
    let meta = file.metadata().map_err(|source| Refusal::ConfigStat {
        path: path.to_owned(),
        source,
    })?;
    if !meta.is_file() {
        return Err(Refusal::ConfigNotAFile {
            path: path.to_owned(),
        });
    }
    check_owner_mode(path, meta.uid(), meta.mode(), "config")?;
    if meta.len() > MAX_BYTES {
        return Err(Refusal::ConfigTooLarge {
            path: path.to_owned(),
        });
    }
    let mut text = String::new();
    file.read_to_string(&mut text)
        .map_err(|source| Refusal::ConfigRead {
            path: path.to_owned(),
            source,
        })?;
    parse(&text).map_err(|source| Refusal::ConfigInvalid {
        path: path.to_owned(),
        source,
    })
}

/// Judge the text of a config.
pub fn parse(text: &str) -> Result<HelperConfig, ConfigProblem> {
    let raw: RawHelperConfig = serde_saphyr::from_str(text).map_err(|e| {
        // why: a refusal is one line
        ConfigProblem::Yaml(e.to_string().lines().next().unwrap_or_default().to_owned())
    })?;
    if !raw.root.is_absolute()
        || raw
            .root
            .components()
            .any(|c| matches!(c, Component::CurDir | Component::ParentDir))
        || raw.root == Path::new("/")
    {
        return Err(ConfigProblem::RootNotPlain(raw.root));
    }
    if raw
        .root
        .to_str()
        .is_none_or(|s| s.contains(['\n', ' ', '\\', '\t']))
    {
        return Err(ConfigProblem::RootCharacters);
    }
    let backup_lv = match (raw.store, raw.backup_lv) {
        (HelperStore::LvmThin, None) => {
            return Err(ConfigProblem::BackupLvMissing);
        }
        (HelperStore::Btrfs, Some(_)) => {
            return Err(ConfigProblem::BackupLvNotLvm);
        }
        (HelperStore::Btrfs, None) => None,
        (HelperStore::LvmThin, Some(s)) => {
            let (vg, lv) = s
                .split_once('/')
                .ok_or_else(|| ConfigProblem::BackupLvShape(s.clone()))?;
            for part in [vg, lv] {
                if !lvm_name_ok(part) {
                    return Err(ConfigProblem::BackupLvName {
                        value: s.clone(),
                        part: part.to_owned(),
                    });
                }
            }
            Some((vg.to_owned(), lv.to_owned()))
        }
    };
    if raw.store == HelperStore::Btrfs && raw.fstype.is_some() {
        return Err(ConfigProblem::FstypeNotLvm);
    }
    Ok(HelperConfig {
        store: raw.store,
        root: raw.root,
        backup_lv,
        fstype: raw.fstype.unwrap_or_default(),
    })
}

/// A VG or LV name that can never be read as an option or a path.
#[must_use]
pub fn lvm_name_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && !s.starts_with(['-', '.'])
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+_.-".contains(&b))
}

/// Root-owned, and writable by nobody else.
pub fn check_owner_mode(
    path: &Path,
    uid: u32,
    mode: u32,
    what: &'static str,
) -> Result<(), Refusal> {
    if uid != 0 {
        return Err(Refusal::NotRootOwned {
            what,
            path: path.to_owned(),
            uid,
        });
    }
    if mode & 0o022 != 0 {
        return Err(Refusal::Writable {
            what,
            path: path.to_owned(),
            mode: mode & 0o7777,
        });
    }
    Ok(())
}

fn check_ancestors(path: &Path) -> Result<(), Refusal> {
    if !path.is_absolute() {
        return Err(Refusal::ConfigPathRelative {
            path: path.to_owned(),
        });
    }
    let mut dir = path.parent();
    while let Some(d) = dir {
        let meta = std::fs::metadata(d).map_err(|source| Refusal::Stat {
            path: d.to_owned(),
            source,
        })?;
        check_owner_mode(d, meta.uid(), meta.mode(), "config directory")?;
        dir = d.parent();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lvm_config() {
        let c = parse("store: lvm-thin\nroot: /srv/backup\nbackup-lv: vg0/backup\n").unwrap();
        assert_eq!(c.backup_lv, Some(("vg0".into(), "backup".into())));
        assert_eq!(c.fstype, FsType::Ext4);
    }

    #[test]
    fn refusals() {
        for (text, why) in [
            ("store: lvm-thin\nroot: /srv\n", "required"),
            ("store: lvm-thin\nroot: srv\nbackup-lv: a/b\n", "absolute"),
            (
                "store: lvm-thin\nroot: /srv/../etc\nbackup-lv: a/b\n",
                "without",
            ),
            (
                "store: lvm-thin\nroot: /srv\nbackup-lv: a/-b\n",
                "plain LVM",
            ),
            (
                "store: lvm-thin\nroot: /srv\nbackup-lv: a/b/c\n",
                "plain LVM",
            ),
            ("store: btrfs\nroot: /srv\nbackup-lv: a/b\n", "only for"),
            ("store: zfs\nroot: /srv\n", ""),
            ("store: btrfs\nroot: /srv\nextra: 1\n", ""),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(why), "{text:?}: {e}");
        }
    }
}

//! What runs on a Coda server, over ssh as root: `volutil info`, `lock`,
//! `backup` and `ancient`, and the dump pipeline `volutil dump [-i -1] ID |
//! codadump2tar -rn .`; reading `volutil info`'s text.
//!
//! Owns: the remote command lines (every word quoted for the remote shell:
//! a volume name or a tool path from the config is never split or expanded
//! there), and telling from the pipeline's stderr how `volutil dump`
//! itself ended. Does not own: ssh (`rsync::ssh`), or what the stream holds.
//!
//! Why the dump's own status: `codadump2tar` stops reading at the first
//! vnode it cannot read and then writes a well-formed tar of what it got,
//! exiting 0; a `volutil dump` cut off by an RPC2 timeout therefore yields a
//! complete-looking stream of part of the volume, and a full dump applied
//! from it would delete the rest. The pipeline runs under `/bin/sh` (root's
//! login shell may be anything) and reports volutil's exit status on stderr
//! as a line `strata-coda: volutil dump exited N`; without that line saying
//! 0 the dump failed.

use crate::exec::{Cmd, ExecError, quote_argv};
use crate::sources::rsync::ssh::{SshError, SshTarget};
use std::ffi::OsString;

/// The stderr line with `volutil dump`'s exit status.
pub const DUMP_STATUS_PREFIX: &str = "strata-coda: volutil dump exited ";

/// A volume's ids from `volutil info`: its replica id and the id of its
/// backup clone (hex, as volutil prints and takes them; `None` before the
/// first `volutil backup` made the clone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeIds {
    pub id: String,
    pub backup_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InfoProblem {
    #[error("no `id = ` line")]
    NoId,
    #[error("no `backupId = ` field")]
    NoBackupId,
    #[error("the volume has no backup clone (backupId 0); run a backup without -R to make one")]
    NoClone,
}

/// Read `id` and `backupId` from `volutil info`'s volume header, e.g.
/// `id = 7f000001, parentId = 7f000001, cloneId = 0, backupId = 7f000004, ...`.
pub fn parse_info(text: &str) -> Result<VolumeIds, InfoProblem> {
    let line = text
        .lines()
        .find(|l| l.starts_with("id = "))
        .ok_or(InfoProblem::NoId)?;
    let field = |name: &str| {
        line.split(',').find_map(|f| {
            let (k, v) = f.split_once('=')?;
            (k.trim() == name).then(|| v.trim().to_owned())
        })
    };
    let hex = |v: Option<String>| {
        v.filter(|v| !v.is_empty() && v.len() <= 16 && v.bytes().all(|b| b.is_ascii_hexdigit()))
    };
    let id = hex(field("id")).ok_or(InfoProblem::NoId)?;
    let backup_id = hex(field("backupId")).ok_or(InfoProblem::NoBackupId)?;
    Ok(VolumeIds {
        id,
        backup_id: (!backup_id.bytes().all(|b| b == b'0')).then_some(backup_id),
    })
}

/// An incremental dump (`-i -1`, relative to the last `volutil ancient`) or
/// a full one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DumpMode {
    Full,
    Incremental,
}

/// The shell script of the dump pipeline, run by `/bin/sh -c`.
#[must_use]
pub fn dump_script(volutil: &str, codadump2tar: &str, backup_id: &str, mode: DumpMode) -> String {
    let mut dump: Vec<OsString> = vec![volutil.into(), "dump".into()];
    if mode == DumpMode::Incremental {
        dump.extend(["-i".into(), "-1".into()]);
    }
    dump.push(backup_id.into());
    let c2t: Vec<OsString> = vec![codadump2tar.into(), "-rn".into(), ".".into()];
    format!(
        "{{ {}; echo \"{DUMP_STATUS_PREFIX}$?\" >&2; }} | {}",
        quote_argv(&dump),
        quote_argv(&c2t)
    )
}

/// `volutil dump`'s exit status from the pipeline's stderr (the last
/// status line), if the line is there.
#[must_use]
pub fn dump_status(stderr: &[u8]) -> Option<i32> {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter_map(|l| l.trim().strip_prefix(DUMP_STATUS_PREFIX))
        .next_back()
        .and_then(|v| v.trim().parse().ok())
}

#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error(transparent)]
    Ssh(#[from] SshError),
    #[error("`volutil {verb}` on {host} failed: {source}")]
    Volutil {
        host: String,
        verb: &'static str,
        #[source]
        source: ExecError,
    },
    #[error("`volutil info {volume}` on {host}: {problem}")]
    Info {
        host: String,
        volume: String,
        problem: InfoProblem,
    },
}

/// One Coda server and the tools on it.
pub struct Server {
    pub target: SshTarget,
    pub volutil: String,
    pub codadump2tar: String,
}

impl Server {
    /// `volutil VERB ARGS...` on the server, its output copied to ours (the
    /// unit's log).
    fn volutil(&self, verb: &'static str, args: &[&str]) -> Result<String, RemoteError> {
        let mut argv: Vec<OsString> = vec![self.volutil.clone().into(), verb.into()];
        argv.extend(args.iter().map(OsString::from));
        let line = quote_argv(&argv);
        println!("> {line}");
        match self.target.remote(&line).run() {
            Ok(out) => {
                print!("{}", out.stdout_text());
                eprint!("{}", String::from_utf8_lossy(&out.stderr));
                Ok(out.stdout_text())
            }
            Err(source) => {
                if let ExecError::Failed { stderr_tail, .. } | ExecError::Killed { stderr_tail, .. } =
                    &source
                    && let Some(e) = self.target.diagnose(stderr_tail.as_bytes())
                {
                    return Err(e.into());
                }
                Err(RemoteError::Volutil {
                    host: self.target.host.clone(),
                    verb,
                    source,
                })
            }
        }
    }

    /// `volutil info VOLUME`, read.
    pub fn info(&self, volume: &str) -> Result<VolumeIds, RemoteError> {
        let text = self.volutil("info", &[volume])?;
        parse_info(&text).map_err(|problem| RemoteError::Info {
            host: self.target.host.clone(),
            volume: volume.to_owned(),
            problem,
        })
    }

    /// The id of the volume's backup clone, which must exist.
    pub fn backup_id(&self, volume: &str) -> Result<String, RemoteError> {
        self.info(volume)?
            .backup_id
            .ok_or_else(|| RemoteError::Info {
                host: self.target.host.clone(),
                volume: volume.to_owned(),
                problem: InfoProblem::NoClone,
            })
    }

    /// Refresh the backup clone: `volutil lock ID`, then `volutil backup ID`
    /// (which unlocks), as Deltaic.
    pub fn refresh(&self, ids: &VolumeIds) -> Result<(), RemoteError> {
        self.volutil("lock", &[&ids.id])?;
        self.volutil("backup", &[&ids.id])?;
        Ok(())
    }

    /// `volutil ancient BACKUP-ID`: the next incremental dump starts from
    /// this one.
    pub fn ancient(&self, backup_id: &str) -> Result<(), RemoteError> {
        self.volutil("ancient", &[backup_id]).map(drop)
    }

    /// The dump pipeline as one ssh command; its stdout is the tar stream.
    #[must_use]
    pub fn dump(&self, backup_id: &str, mode: DumpMode) -> Cmd {
        let script = dump_script(&self.volutil, &self.codadump2tar, backup_id, mode);
        let line = quote_argv(&["/bin/sh".into(), "-c".into(), script.into()]);
        self.target.remote(&line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `volutil info` as `vol-info.cc`'s `PrintHeader` prints it.
    const INFO: &str = "Volume header for volume 7f000001 (a:foo.0)\n\
stamp.magic = 78a1b2c3, stamp.version = 1\n\
partition = (/vicepa)\n\
inUse = 1, inService = 1, blessed = 1, needsSalvaged = 0, dontSalvage = 0\n\
type = 0 (read/write), uniquifier = 5432, needsCallback = 0, destroyMe = 0\n\
id = 7f000001, parentId = 7f000001, cloneId = 00000000, backupId = 7f00000a, restoredFromId = 00000000\n\
maxquota = 0, minquota = 0, maxfiles = 0, filecount = 12, diskused = 340\n\
creationDate = (2014/03/01.10:00:00), copyDate = (2014/03/01.10:00:00)\n\
backupDate = (2024/05/01.02:00:00), expirationDate = (1970/01/01.00:00:00)\n\
accessDate = (2024/05/01.02:00:00), updateDate = (2024/05/01.01:59:00)\n\
owner = 0, accountNumber = 0\n\
dayUse = 0; week = (0, 0, 0, 0, 0, 0, 0), dayUseDate = (2024/05/01.00:00:00)\n\
replicated groupId = 1000001\n";

    #[test]
    fn info_gives_the_volume_and_backup_ids() {
        assert_eq!(
            parse_info(INFO),
            Ok(VolumeIds {
                id: "7f000001".into(),
                backup_id: Some("7f00000a".into())
            })
        );
        assert_eq!(
            parse_info(&INFO.replace("backupId = 7f00000a", "backupId = 00000000")),
            Ok(VolumeIds {
                id: "7f000001".into(),
                backup_id: None
            })
        );
        assert_eq!(
            parse_info(&INFO.replace("backupId = 7f00000a", "backupId = 7f00;rm")),
            Err(InfoProblem::NoBackupId)
        );
        assert_eq!(
            parse_info("VolInfo failed with RPC2_NOBINDING\n"),
            Err(InfoProblem::NoId)
        );
        // why: `parentId = ` must not be read as `id = `
        assert_eq!(
            parse_info("x\n parentId = 1, backupId = 2\n"),
            Err(InfoProblem::NoId)
        );
    }

    #[test]
    fn the_dump_pipeline_reports_volutils_own_status() {
        let d = tempfile::tempdir().unwrap();
        let tool = |name: &str, body: &str| {
            let p = d.path().join(name);
            std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .unwrap();
            p.display().to_string()
        };
        let vol = tool("vol util", "echo \"dump:$*\"; exit 3");
        let c2t = tool("c2t", "cat; echo \"c2t:$*\"");
        let script = dump_script(&vol, &c2t, "7f00000a", DumpMode::Incremental);
        let out = Cmd::new("/bin/sh").args(["-c", &script]).run().unwrap();
        assert_eq!(out.stdout_text(), "dump:dump -i -1 7f00000a\nc2t:-rn .\n");
        assert_eq!(dump_status(&out.stderr), Some(3));
        let vol = tool("ok", "echo \"dump:$*\"");
        let out = Cmd::new("/bin/sh")
            .args(["-c", &dump_script(&vol, &c2t, "1", DumpMode::Full)])
            .run()
            .unwrap();
        assert_eq!(out.stdout_text(), "dump:dump 1\nc2t:-rn .\n");
        assert_eq!(dump_status(&out.stderr), Some(0));
        assert_eq!(dump_status(b"VolDump completed\n"), None);
    }
}

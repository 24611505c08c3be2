//! Files strata asks the system to hold, rendered as text: the backup user's
//! crontab (as Deltaic's), the sudoers rule for the root helper, and systemd
//! service + timer units. Pure functions of [`Target`]; the CLI prints or
//! writes them, and the repository's `sudoers/` and `systemd/` directories
//! hold the rendering for the reference target ([`Target::reference`]),
//! kept equal by a golden test.
//!
//! Invariants: the sudoers text allows exactly one command, the helper by
//! absolute path, for exactly one user; user names and paths are checked
//! before they are written into a file that sudo, cron or systemd parses,
//! so nothing a caller passes can add a line, a rule or an option.

// why: writing into a String cannot fail; the results are ignored with `let _`
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Why a file cannot be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MkconfError {
    #[error("user name {0:?} is not a plain login name ([a-z_][a-z0-9_-]*, at most 32 characters)")]
    BadUser(String),
    #[error("{what} {path:?} must be an absolute path of plain characters ([A-Za-z0-9/._+-])")]
    BadPath { what: &'static str, path: String },
    #[error("email address {0:?} contains a character cron would misread")]
    BadEmail(String),
}

/// Who runs strata, and where things are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The backup user.
    pub user: String,
    /// The strata binary, absolute.
    pub strata: PathBuf,
    /// The root helper, absolute (what sudo allows).
    pub helper: PathBuf,
    /// `-c FILE` passed to every command, when not the user's default.
    pub config: Option<PathBuf>,
}

impl Target {
    /// What the Debian package installs and the repository's files show:
    /// Debian's `backup` system user, `/usr/bin/strata`, `/usr/sbin/strata-snapshot`.
    #[must_use]
    pub fn reference() -> Target {
        Target {
            user: "backup".to_owned(),
            strata: PathBuf::from("/usr/bin/strata"),
            helper: PathBuf::from(crate::snapshot::helper::DEFAULT_HELPER),
            config: None,
        }
    }

    fn check(&self) -> Result<(), MkconfError> {
        let u = &self.user;
        let user_ok = !u.is_empty()
            && u.len() <= 32
            && u.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && u.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !user_ok {
            return Err(MkconfError::BadUser(u.clone()));
        }
        check_path("strata binary", &self.strata)?;
        check_path("helper", &self.helper)?;
        if let Some(c) = &self.config {
            check_path("config file", c)?;
        }
        Ok(())
    }

    /// `strata [-c FILE] -q ARGS`.
    fn command(&self, args: &str) -> String {
        match &self.config {
            Some(c) => format!("{} -c {} -q {args}", self.strata.display(), c.display()),
            None => format!("{} -q {args}", self.strata.display()),
        }
    }
}

fn check_path(what: &'static str, p: &Path) -> Result<(), MkconfError> {
    let s = p.to_string_lossy();
    let ok = p.is_absolute()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._+-".contains(&b))
        && !s.contains("/../");
    if ok {
        Ok(())
    } else {
        Err(MkconfError::BadPath {
            what,
            path: s.into_owned(),
        })
    }
}

/// The scheduled jobs, shared by crontab and systemd: (name, schedule as
/// cron fields, systemd `OnCalendar`, arguments, description, enabled).
struct Job {
    name: &'static str,
    cron: &'static str,
    calendar: &'static str,
    args: &'static str,
    what: &'static str,
    /// Archive jobs need an archiver profile first: commented out in the
    /// crontab, as Deltaic's.
    enabled: bool,
}

// why: Deltaic's schedule, so a migrating installation keeps its rhythm:
// prune 23:00, df check 23:55, run at midnight; archives quarterly, archive
// prune daily, resync twice a year (those three commented out); and strata's
// hourly continuation of an incomplete set (commented out with them)
const JOBS: [Job; 7] = [
    Job {
        name: "prune",
        cron: "0 23 * * *",
        calendar: "*-*-* 23:00:00",
        args: "prune",
        what: "remove snapshots by the retention policy, and old logs",
        enabled: true,
    },
    Job {
        name: "df",
        cron: "55 23 * * *",
        calendar: "*-*-* 23:55:00",
        args: "df -c",
        what: "warn when free space falls below df-warning",
        enabled: true,
    },
    Job {
        name: "run",
        cron: "0 0 * * *",
        calendar: "*-*-* 00:00:00",
        args: "run",
        what: "back up every unit, then take a snapshot",
        enabled: true,
    },
    Job {
        name: "archive",
        cron: "0 0 1 1,4,7,10 *",
        calendar: "*-01,04,07,10-01 00:00:00",
        args: "archive run",
        what: "archive the newest snapshot offsite",
        enabled: false,
    },
    Job {
        name: "archive-continue",
        cron: "17 * * * *",
        calendar: "*-*-* *:17:00",
        args: "archive run -r --if-incomplete",
        what: "continue the newest archive set while it is incomplete (a Drive upload paused at the daily cap, a run that was killed); quiet when there is nothing to continue",
        enabled: false,
    },
    Job {
        name: "archive-prune",
        cron: "0 4 * * *",
        calendar: "*-*-* 04:00:00",
        args: "archive prune",
        what: "remove old archive sets",
        enabled: false,
    },
    Job {
        name: "archive-resync",
        cron: "0 3 30 6,12 *",
        calendar: "*-06,12-30 03:00:00",
        args: "archive resync",
        what: "repair disagreements between the archive index and its data",
        enabled: false,
    },
];

/// The backup user's crontab.
pub fn crontab(t: &Target, email: Option<&str>) -> Result<String, MkconfError> {
    t.check()?;
    let mut s = String::from(
        "# strata: the backup user's crontab (strata mkconf crontab).\n\
         # Install with `crontab FILE` as that user.\n",
    );
    // why: as Deltaic, mail goes to root unless --email says otherwise
    let e = email.unwrap_or("root");
    if e.is_empty()
        || e.bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control() || b == b'%')
    {
        return Err(MkconfError::BadEmail(e.to_owned()));
    }
    let _ = writeln!(s, "MAILTO={e}");
    s.push_str("PATH=/usr/local/bin:/usr/bin:/bin\n\n");
    for j in &JOBS {
        let _ = writeln!(s, "# {}", j.what);
        if !j.enabled {
            s.push_str("# (enable once an archiver profile is configured)\n#");
        }
        let _ = writeln!(s, "{} {}", j.cron, t.command(j.args));
    }
    Ok(s)
}

/// The sudoers file: the backup user may run the helper as root, without a
/// password and without a tty, and nothing else.
pub fn sudoers(t: &Target) -> Result<String, MkconfError> {
    t.check()?;
    Ok(format!(
        "# strata: {user} may run the snapshot helper as root, and nothing else\n\
         # (strata mkconf sudoers). Install as /etc/sudoers.d/strata, mode 0440,\n\
         # after `visudo -c -f FILE`. The helper validates every argument itself.\n\
         Defaults:{user} !requiretty\n\
         {user} ALL=(root) NOPASSWD: {helper}\n",
        user = t.user,
        helper = t.helper.display()
    ))
}

/// For `snapshot-store: cephfs`, instead of a sudoers rule: the `ceph fs
/// authorize` command that gives the backup user's CephFS client a key
/// restricted to the root's path, with the `s` flag that snapshots need.
/// `fs` is the file system's name, `fs_path` the root as seen from the
/// file system's top (what `ceph-fuse -r` mounts).
pub fn ceph_caps(t: &Target, fs: &str, fs_path: &str, root: &Path) -> Result<String, MkconfError> {
    t.check()?;
    let plain = |v: &str| {
        !v.is_empty()
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/._+-".contains(&b))
    };
    if !plain(fs) {
        return Err(MkconfError::BadPath {
            what: "CephFS name",
            path: fs.to_owned(),
        });
    }
    if !plain(fs_path) || !fs_path.starts_with('/') {
        return Err(MkconfError::BadPath {
            what: "path in the CephFS",
            path: fs_path.to_owned(),
        });
    }
    Ok(format!(
        "# strata: snapshot-store cephfs needs no sudo and no helper (strata mkconf\n\
         # sudoers). On a host with the Ceph admin key, give {user}'s CephFS client a key\n\
         # restricted to the backup root's path, with `s` (snapshots: mkdir .snap/NAME):\n\
         ceph fs authorize {fs} client.{user} {fs_path} rws > /etc/ceph/ceph.client.{user}.keyring\n\
         # Then mount it as the root ({user} must be able to write it):\n\
         #   ceph-fuse --id {user} -r {fs_path} {root}\n\
         # Use `rwps` instead of `rws` if {user} should set ceph.quota.max_bytes itself.\n",
        user = t.user,
        root = root.display(),
    ))
}

/// systemd units: `(file name, contents)`, a service and a timer per job.
pub fn systemd(t: &Target) -> Result<Vec<(String, String)>, MkconfError> {
    t.check()?;
    let mut out = Vec::new();
    for j in &JOBS {
        let service = format!(
            "[Unit]\n\
             Description=strata {args}: {what}\n\
             Documentation=man:strata(1)\n\
             After=local-fs.target network-online.target\n\
             Wants=network-online.target\n\
             \n\
             [Service]\n\
             Type=oneshot\n\
             User={user}\n\
             ExecStart={cmd}\n\
             Nice=10\n\
             IOSchedulingClass=idle\n\
             # NoNewPrivileges is deliberately not set: snapshots go through sudo.\n",
            args = j.args,
            what = j.what,
            user = t.user,
            cmd = t.command(j.args),
        );
        let timer = format!(
            "[Unit]\n\
             Description=strata {args} on a schedule\n\
             Documentation=man:strata(1)\n\
             \n\
             [Timer]\n\
             OnCalendar={cal}\n\
             Persistent=true\n\
             \n\
             [Install]\n\
             WantedBy=timers.target\n",
            args = j.args,
            cal = j.calendar,
        );
        out.push((format!("strata-{}.service", j.name), service));
        out.push((format!("strata-{}.timer", j.name), timer));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceph_caps_names_the_fs_the_path_and_rws_and_refuses_odd_input() {
        let t = Target::reference();
        let text = ceph_caps(&t, "cephfs", "/backups/a1", Path::new("/srv/backup")).unwrap();
        assert!(
            text.contains("\nceph fs authorize cephfs client.backup /backups/a1 rws > "),
            "{text}"
        );
        assert!(
            text.contains("ceph-fuse --id backup -r /backups/a1 /srv/backup"),
            "{text}"
        );
        for (fs, path) in [
            ("c fs", "/b"),
            ("cephfs", "b"),
            ("cephfs", "/b;rm"),
            ("", "/b"),
        ] {
            assert!(
                ceph_caps(&t, fs, path, Path::new("/srv/backup")).is_err(),
                "{fs:?} {path:?}"
            );
        }
    }

    #[test]
    fn sudoers_allows_one_command() {
        let s = sudoers(&Target::reference()).unwrap();
        let rules: Vec<&str> = s
            .lines()
            .filter(|l| !l.starts_with('#') && !l.starts_with("Defaults"))
            .collect();
        assert_eq!(
            rules,
            ["backup ALL=(root) NOPASSWD: /usr/sbin/strata-snapshot"]
        );
        assert!(s.contains("Defaults:backup !requiretty"));
    }

    #[test]
    fn injection_is_refused() {
        let mut t = Target::reference();
        t.user = "backup ALL=(ALL) ALL\nx".into();
        assert!(matches!(sudoers(&t), Err(MkconfError::BadUser(_))));
        let mut t = Target::reference();
        t.helper = PathBuf::from("/usr/sbin/strata-snapshot, /bin/sh");
        assert!(matches!(sudoers(&t), Err(MkconfError::BadPath { .. })));
        let mut t = Target::reference();
        t.helper = PathBuf::from("strata-snapshot");
        assert!(sudoers(&t).is_err());
        assert!(crontab(&Target::reference(), Some("a@b\n* * * * * evil")).is_err());
    }

    #[test]
    fn crontab_comments_archive_jobs() {
        let c = crontab(&Target::reference(), Some("ops@example.org")).unwrap();
        assert!(c.contains("MAILTO=ops@example.org\n"));
        assert!(c.contains("\n0 0 * * * /usr/bin/strata -q run\n"));
        assert!(c.contains("\n#0 0 1 1,4,7,10 * /usr/bin/strata -q archive run\n"));
        assert!(c.contains("\n#0 3 30 6,12 * /usr/bin/strata -q archive resync\n"));
    }
}

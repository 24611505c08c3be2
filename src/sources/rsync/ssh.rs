//! Reaching a host over ssh: the `ssh` argument vector strata uses for every
//! remote command (rsync's transport, `pre`/`post`, and a Coda server's
//! `volutil` and dump pipeline), strata's own known-hosts file, and telling
//! from ssh's stderr whether ssh itself failed and how.
//!
//! Does not own: what runs over the connection (rsync, a hook, a dump), nor
//! how rsync splits its `-e` string (`rsync::rsh_command`). Nothing here knows
//! rsync, so another source can build an [`SshTarget`] from its own settings.
//!
//! Invariants:
//! - `BatchMode=yes` comes first, so nothing can make a cron job wait for a
//!   password.
//! - Host keys are checked: `StrictHostKeyChecking=accept-new` against
//!   strata's own known-hosts file ([`known_hosts_file`]), so the first
//!   contact records the key and a changed key fails the unit, naming the
//!   problem and the fix, instead of being silently accepted (Deltaic turned
//!   checking off).
//! - A dead host fails within the connect and keepalive timeouts instead of
//!   holding the run lock.

use crate::exec::Cmd;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error(
        "the ssh host key of {host} does not match the key recorded in {}: {detail}; \
         if the host was really reinstalled or rekeyed, remove the old key with \
         `ssh-keygen -f {} -R {}` and run again",
        known_hosts.display(), known_hosts.display(), crate::exec::quote_argv(&[OsString::from(key_name)])
    )]
    HostKeyChanged {
        host: String,
        known_hosts: PathBuf,
        /// How the host appears in `known_hosts` (`host` or `[host]:port`).
        key_name: String,
        /// What ssh said.
        detail: String,
    },
    #[error("cannot reach {host} over ssh: {detail}")]
    Unreachable {
        host: String,
        /// What ssh said.
        detail: String,
    },
    #[error("{}: {source}", dir.display())]
    KnownHostsDir {
        /// The directory of the known-hosts file, which could not be made.
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// strata's known-hosts file: `~/.config/strata/known_hosts`, beside the
/// default config file and separate from the user's `~/.ssh/known_hosts`, so
/// that the keys strata trusts are the keys its backups recorded.
#[must_use]
pub fn known_hosts_file(home: &Path) -> PathBuf {
    home.join(".config").join("strata").join("known_hosts")
}

/// Make sure the known-hosts file's directory exists (private: it decides
/// which servers we trust). Call before the first ssh to a target.
pub fn prepare_known_hosts(known_hosts: &Path) -> Result<(), SshError> {
    use std::os::unix::fs::DirBuilderExt;
    let Some(dir) = known_hosts.parent() else {
        return Ok(());
    };
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| SshError::KnownHostsDir {
            dir: dir.to_owned(),
            source,
        })
}

/// How to reach a host with ssh.
#[derive(Debug, Clone)]
pub struct SshTarget {
    pub host: String,
    pub user: String,
    pub port: Option<u32>,
    pub identity: Option<PathBuf>,
    /// `rsync-ssh-options`, given before strata's defaults so that they win
    /// (ssh keeps the first value it is given for an option).
    pub options: Vec<String>,
    pub known_hosts: PathBuf,
}

impl SshTarget {
    /// `user@host` on the default port with the default key and no extra
    /// options; set the public fields for the rest.
    #[must_use]
    pub fn new(host: &str, user: &str, known_hosts: &Path) -> SshTarget {
        SshTarget {
            host: host.to_owned(),
            user: user.to_owned(),
            port: None,
            identity: None,
            options: Vec::new(),
            known_hosts: known_hosts.to_owned(),
        }
    }

    /// `ssh` and its options, without the destination.
    #[must_use]
    pub fn ssh_argv(&self) -> Vec<OsString> {
        let mut v: Vec<OsString> = vec!["ssh".into()];
        let mut opt = |o: &str| {
            v.push("-o".into());
            v.push(o.into());
        };
        // why: BatchMode first, so no option can make a cron job wait for a password
        opt("BatchMode=yes");
        for o in &self.options {
            v.push(o.into());
        }
        let mut opt = |o: String| {
            v.push("-o".into());
            v.push(o.into());
        };
        opt("StrictHostKeyChecking=accept-new".to_owned());
        // why: ssh splits this option's value on whitespace (it takes a list of files); quote the path
        opt(format!(
            "UserKnownHostsFile=\"{}\"",
            self.known_hosts.display()
        ));
        // why: a dead host must fail its unit, not hold the run lock forever
        opt("ConnectTimeout=30".to_owned());
        opt("ServerAliveInterval=60".to_owned());
        opt("ServerAliveCountMax=5".to_owned());
        if let Some(port) = self.port {
            v.push("-p".into());
            v.push(port.to_string().into());
        }
        if let Some(id) = &self.identity {
            v.push("-i".into());
            v.push(id.into());
            // why: only the configured key; an agent or ~/.ssh keys must not decide which account we get
            v.push("-o".into());
            v.push("IdentitiesOnly=yes".into());
        }
        v
    }

    /// `user@host`, ssh's destination argument (an IPv6 address unbracketed).
    #[must_use]
    pub fn destination(&self) -> String {
        format!("{}@{}", self.user, self.host)
    }

    /// How ssh names this host in `known_hosts`.
    #[must_use]
    pub fn key_name(&self) -> String {
        match self.port {
            Some(p) if p != 22 => format!("[{}]:{p}", self.host),
            _ => self.host.clone(),
        }
    }

    /// `ssh ... -- user@host SCRIPT`: a remote shell command by nature.
    #[must_use]
    pub fn remote(&self, script: &str) -> Cmd {
        let argv = self.ssh_argv();
        Cmd::new(&argv[0])
            .args(&argv[1..])
            .arg("--")
            .arg(self.destination())
            .arg(script)
    }

    /// The error naming ssh's own failure, if `stderr` (of ssh, or of a
    /// program that ran ssh) shows one; `None` when ssh did its part.
    #[must_use]
    pub fn diagnose(&self, stderr: &[u8]) -> Option<SshError> {
        match ssh_problem(stderr)? {
            SshProblem::HostKey(detail) => Some(SshError::HostKeyChanged {
                host: self.host.clone(),
                known_hosts: self.known_hosts.clone(),
                key_name: self.key_name(),
                detail,
            }),
            SshProblem::Connect(detail) => Some(SshError::Unreachable {
                host: self.host.clone(),
                detail,
            }),
        }
    }
}

/// What ssh's part of a failure was, judged from stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SshProblem {
    /// The host key differs from the recorded one (or could not be verified).
    HostKey(String),
    /// ssh could not connect, resolve, or authenticate.
    Connect(String),
}

/// Whether stderr shows that ssh itself failed, and how.
#[must_use]
pub fn ssh_problem(stderr: &[u8]) -> Option<SshProblem> {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let pick = |pred: &dyn Fn(&str) -> bool| -> Vec<&str> {
        lines.iter().copied().filter(|l| pred(l)).collect()
    };
    if text.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
        || text.contains("Host key verification failed")
    {
        let detail = pick(&|l| {
            l.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
                || l.starts_with("Host key for")
                || l.contains("key for") && l.contains("has changed")
                || l.starts_with("Host key verification failed")
        });
        let detail = detail
            .iter()
            .map(|l| l.trim_matches('@').trim().trim_end_matches('.'))
            .collect::<Vec<_>>()
            .join("; ");
        return Some(SshProblem::HostKey(detail));
    }
    let connect = pick(&|l| {
        l.starts_with("ssh: ")
            || l.contains("Permission denied (")
            || l.starts_with("kex_exchange_identification:")
            || l.starts_with("Connection closed by")
            || l.starts_with("Connection timed out")
            || l.starts_with("Connection refused")
    });
    if connect.is_empty() {
        None
    } else {
        Some(SshProblem::Connect(connect.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strs(v: &[OsString]) -> Vec<String> {
        v.iter().map(|s| s.to_string_lossy().into_owned()).collect()
    }

    #[test]
    fn a_plain_target_runs_a_remote_command_with_checked_host_keys() {
        let t = SshTarget::new("coda.example.org", "root", Path::new("/kh"));
        assert_eq!(
            strs(&t.remote("volutil info 7f000001").argv()),
            [
                "ssh",
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=accept-new",
                "-o",
                "UserKnownHostsFile=\"/kh\"",
                "-o",
                "ConnectTimeout=30",
                "-o",
                "ServerAliveInterval=60",
                "-o",
                "ServerAliveCountMax=5",
                "--",
                "root@coda.example.org",
                "volutil info 7f000001",
            ]
        );
        assert_eq!(t.key_name(), "coda.example.org");
        let t = SshTarget {
            port: Some(2222),
            ..t
        };
        assert_eq!(t.key_name(), "[coda.example.org]:2222");
    }

    #[test]
    fn ssh_problems_are_told_apart() {
        let changed = b"@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n\
@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n\
@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n\
IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!\n\
Host key for [127.0.0.1]:2222 has changed and you have requested strict checking.\n\
Host key verification failed.\n\
rsync: connection unexpectedly closed (0 bytes received so far) [Receiver]\n\
rsync error: unexplained error (code 255) at io.c(232) [Receiver=3.2.7]\n";
        let Some(SshProblem::HostKey(d)) = ssh_problem(changed) else {
            panic!("{:?}", ssh_problem(changed))
        };
        assert!(d.contains("REMOTE HOST IDENTIFICATION HAS CHANGED"), "{d}");
        assert!(d.contains("Host key verification failed"), "{d}");
        let refused = b"ssh: connect to host 127.0.0.1 port 1: Connection refused\n\
rsync: connection unexpectedly closed (0 bytes received so far) [Receiver]\n";
        assert_eq!(
            ssh_problem(refused),
            Some(SshProblem::Connect(
                "ssh: connect to host 127.0.0.1 port 1: Connection refused".into()
            ))
        );
        let old = b"rsync: on remote machine: --acls: unknown option\n\
rsync error: syntax or usage error (code 1) at main.c(1231) [server=2.6.9]\n";
        assert_eq!(ssh_problem(old), None);
    }

    #[test]
    fn host_key_error_names_the_problem_and_the_fix() {
        let e = SshError::HostKeyChanged {
            host: "h".into(),
            known_hosts: "/home/b/.config/strata/known_hosts".into(),
            key_name: "[127.0.0.1]:2222".into(),
            detail: "Host key verification failed.".into(),
        };
        let m = e.to_string();
        assert!(m.contains("ssh host key of h does not match"), "{m}");
        assert!(
            m.contains("ssh-keygen -f /home/b/.config/strata/known_hosts -R '[127.0.0.1]:2222'"),
            "{m}"
        );
    }
}

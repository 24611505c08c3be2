//! The `rsync` source: whole filesystems of hosts, pulled with rsync over ssh
//! as Deltaic did (DESIGN §7), and pushed back on restore.
//!
//! Owns: the argument vectors of `rsync` for a host entry, the `pre`/`post`
//! remote commands, the retry without `--acls --xattrs` for an old remote
//! rsync, judging rsync's exit code (an ssh failure, an rsync failure, or
//! success), and restore. Reaching a host over ssh is [`ssh`] (shared with
//! other sources that run commands on a host); reading rsync's itemized
//! output and `--stats` is [`output`].
//!
//! Does not own: which hosts are units and when a run scrubs them
//! (`sources::units`, the runner), and where logs go (the runner points our
//! stdout and stderr at the unit's logs).
//!
//! Invariants:
//! - Owners, groups, modes, devices, ACLs and xattrs of backed-up files are
//!   kept in `user.rsync.*` xattrs (`--fake-super`), so the backup user needs
//!   no privilege; a restore with `-M--super` makes the receiving rsync apply
//!   them for real.
//! - Every process argument is a vector element. The exceptions are by
//!   nature: `pre`/`post` are shell command lines the user wrote, run by the
//!   remote (or, for `transport: local`, the local) shell; and rsync's `-e`
//!   takes the ssh command as one string, which rsync splits itself (we quote
//!   it with [`rsh_command`] by rsync's own rules).
//! - Host keys are checked against strata's own known-hosts file (see
//!   [`ssh`]): a changed key fails the unit, naming the problem.
//! - `post` runs only after a successful rsync; a failed `pre` means no rsync
//!   and no `post`.
//! - Exit 24 (files vanished during the transfer) is success; exit 2 or 12
//!   that is not an ssh failure is retried once without `--acls --xattrs`.

mod cmd;
pub mod output;
pub mod ssh;

pub use cmd::RSYNC;
pub use output::{Itemized, Line, Stats, Tally, classify};
pub use ssh::{
    SshError, SshProblem, SshTarget, known_hosts_file, prepare_known_hosts, ssh_problem,
};

use crate::config::{Config, RsyncHost, RsyncSettings, Transport};
use crate::exec::{Cmd, ExecError};
use crate::sources::{Check, UnitReport};
use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

/// The options of every backup (DESIGN §7, as Deltaic), plus `--sparse`.
// why: --sparse is strata's addition: without it a file's holes are written
// out as zeros into the backup root (blocks the thin pool stores for nothing,
// DESIGN §2) and come back as zeros on restore.
pub const BACKUP_OPTIONS: &[&str] = &[
    "-aHRxi",
    "--acls",
    "--xattrs",
    "--fake-super",
    "--delete",
    "--delete-excluded",
    "--numeric-ids",
    "--stats",
    "--partial",
    "--sparse",
];

/// The options of a restore: `-M--super` makes the receiver apply the owners,
/// modes, ACLs and xattrs stored by `--fake-super`, and complain if it cannot.
pub const RESTORE_OPTIONS: &[&str] = &[
    "-aHi",
    "--acls",
    "--xattrs",
    "--fake-super",
    "-M--super",
    "--numeric-ids",
    "--sparse",
];

/// A Coda restore: Coda has no ACLs, xattrs, devices or groups; `-o` is
/// forced although the remote user is likely not root (as Deltaic). The
/// volume's `..CodaACLs.yaml` (the directory ACLs codadump2tar writes since
/// 2021) is stored but not restored as a file: docs/coda.md says how to
/// reapply the ACLs.
pub const CODA_RESTORE_OPTIONS: &[&str] = &[
    "-rlptoHi",
    "--fake-super",
    "-M--super",
    "--numeric-ids",
    "--exclude=/..CodaACLs.yaml",
];

/// Options an rsync older than protocol 30 does not know; dropped on retry.
const NEWER_FEATURES: [&str; 2] = ["--acls", "--xattrs"];

/// Exit codes after which the transfer is retried without [`NEWER_FEATURES`].
const RETRY_CODES: [i32; 2] = [2, 12];

/// Exit codes that mean the backup succeeded (24: files vanished meanwhile).
const OK_CODES: [i32; 2] = [0, 24];

/// How many trailing lines of rsync's stderr an error message carries (the
/// whole stderr is already in the unit's log).
const ERROR_TAIL_LINES: usize = 6;

#[derive(Debug, thiserror::Error)]
pub enum RsyncError {
    #[error("no rsync host `{host}` in {} (give the host name or its alias)", config.display())]
    Unknown { host: String, config: PathBuf },
    #[error("the pre command on {host} failed, so rsync and post were not run: {source}")]
    Pre {
        host: String,
        #[source]
        source: ExecError,
    },
    #[error("the post command on {host} failed (the rsync itself completed): {source}")]
    Post {
        host: String,
        #[source]
        source: ExecError,
    },
    #[error(transparent)]
    Ssh(#[from] SshError),
    #[error("rsync of {host} failed ({}): {source}", exit_meaning(.source.status()))]
    Rsync {
        host: String,
        #[source]
        source: ExecError,
    },
    #[error("writing rsync's output to the log: {0}")]
    Log(#[source] std::io::Error),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What an rsync exit code means (rsync(1), EXIT VALUES).
fn exit_meaning(code: Option<i32>) -> &'static str {
    match code {
        Some(1) => "syntax or usage error",
        Some(2) => "protocol incompatibility",
        Some(3) => "errors selecting input/output files or directories",
        Some(5) => "error starting the client-server protocol",
        Some(10) => "error in socket I/O",
        Some(11) => "error in file I/O",
        Some(12) => "error in the rsync protocol data stream",
        Some(20) => "interrupted by a signal",
        Some(23) => "partial transfer: some files could not be transferred",
        Some(30) => "timeout in data send/receive",
        Some(255) => "unexplained error, often the remote shell failing",
        Some(_) => "see rsync(1), EXIT VALUES",
        None => "it did not exit normally",
    }
}

/// Find a host entry by its name in the config or by its alias.
pub fn find<'c>(config: &'c Config, host: &str) -> Result<&'c RsyncHost, RsyncError> {
    config
        .rsync
        .iter()
        .find(|h| h.host == host)
        .or_else(|| config.rsync.iter().find(|h| h.alias == host))
        .ok_or_else(|| RsyncError::Unknown {
            host: host.to_owned(),
            config: config.file.clone(),
        })
}

/// The ssh target of a configured host entry.
fn ssh_target(host: &RsyncHost, settings: &RsyncSettings, known_hosts: &Path) -> SshTarget {
    SshTarget {
        port: host.ssh_port,
        identity: host.ssh_identity.clone(),
        options: settings.ssh_options.clone(),
        ..SshTarget::new(&host.host, &host.user, known_hosts)
    }
}

/// `user@host:`, the prefix of a remote path in rsync's `host:path` syntax,
/// an IPv6 address bracketed.
fn remote_prefix(t: &SshTarget) -> String {
    if t.host.contains(':') {
        format!("{}@[{}]:", t.user, t.host)
    } else {
        format!("{}@{}:", t.user, t.host)
    }
}

/// Join an argument vector into the one string rsync's `-e` takes. rsync
/// splits it on spaces and honours single and double quotes, a doubled quote
/// inside quotes being a literal one (no backslashes); so an argument with a
/// space or a quote is wrapped in single quotes with its single quotes doubled.
#[must_use]
pub fn rsh_command(argv: &[OsString]) -> OsString {
    let mut out: Vec<u8> = Vec::new();
    for (i, a) in argv.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        let b = a.as_bytes();
        if !b.is_empty() && !b.iter().any(|c| matches!(c, b' ' | b'\'' | b'"')) {
            out.extend_from_slice(b);
        } else {
            out.push(b'\'');
            for &c in b {
                if c == b'\'' {
                    out.push(b'\'');
                }
                out.push(c);
            }
            out.push(b'\'');
        }
    }
    OsString::from_vec(out)
}

/// Where a transfer reads or writes on the far side.
#[derive(Debug, Clone)]
pub enum Endpoint {
    Ssh(SshTarget),
    /// `transport: local`: paths on this machine, no ssh.
    Local,
}

impl Endpoint {
    #[must_use]
    pub fn of(host: &RsyncHost, settings: &RsyncSettings, known_hosts: &Path) -> Endpoint {
        match host.transport {
            Transport::Ssh => Endpoint::Ssh(ssh_target(host, settings, known_hosts)),
            Transport::Local => Endpoint::Local,
        }
    }

    /// A path on the far side, as an rsync argument.
    fn path(&self, path: &OsStr) -> OsString {
        match self {
            Endpoint::Ssh(t) => {
                let mut s = OsString::from(remote_prefix(t));
                s.push(path);
                s
            }
            Endpoint::Local => path.to_owned(),
        }
    }

    /// `-e SSH-COMMAND` for ssh, nothing for local.
    fn rsh_args(&self) -> Vec<OsString> {
        match self {
            Endpoint::Ssh(t) => vec!["-e".into(), rsh_command(&t.ssh_argv())],
            Endpoint::Local => Vec::new(),
        }
    }

    /// The command that runs a user's `pre`/`post` line: over ssh by the
    /// remote user's shell, or by `/bin/sh -c` here for a local transport.
    #[must_use]
    pub fn command(&self, script: &str) -> Cmd {
        match self {
            Endpoint::Ssh(t) => t.remote(script),
            Endpoint::Local => Cmd::shell(script),
        }
    }
}

/// The backup's argument vector, program first.
#[must_use]
pub fn backup_argv(
    host: &RsyncHost,
    settings: &RsyncSettings,
    endpoint: &Endpoint,
    dest: &Path,
    check: Check,
) -> Vec<OsString> {
    let mut v: Vec<OsString> = vec![settings.local_binary.clone().into()];
    v.extend(BACKUP_OPTIONS.iter().map(|o| match (endpoint, *o) {
        // why: in a local copy --fake-super applies to both sides, and a sender
        // in fake-super mode reads owners and ACLs from user.rsync.* xattrs, not
        // from the files; -M--fake-super (rsync(1)) limits it to the receiver
        (Endpoint::Local, "--fake-super") => OsString::from("-M--fake-super"),
        _ => OsString::from(o),
    }));
    v.extend(endpoint.rsh_args());
    for pattern in settings.exclude.iter().chain(&host.exclude) {
        v.push(format!("--exclude={pattern}").into());
    }
    if check == Check::Scrub {
        v.push("--checksum".into());
    }
    // why: the separator, so that no mount or destination is read as an option
    v.push("--".into());
    for mount in &host.mounts {
        let m = mount.trim_end_matches('/');
        v.push(endpoint.path(OsStr::new(if m.is_empty() { "/" } else { m })));
    }
    let dest = dest.as_os_str().as_bytes();
    let end = dest.len() - dest.iter().rev().take_while(|b| **b == b'/').count();
    v.push(OsStr::from_bytes(&dest[..end.max(1)]).to_owned());
    v
}

/// The same transfer without the options an old rsync refuses.
fn without_newer_features(argv: &[OsString]) -> Vec<OsString> {
    argv.iter()
        .filter(|a| !NEWER_FEATURES.iter().any(|f| a.as_os_str() == *f))
        .cloned()
        .collect()
}

/// One rsync process as it ended.
struct Transfer {
    code: i32,
    stderr: Vec<u8>,
    tally: Tally,
}

/// Run rsync once: its stdout goes to `out` line by line without the spurious
/// lines, counted as it goes; its stderr is copied to our stderr as it comes,
/// and kept to be judged. Every exit code comes back to the caller to judge.
fn transfer(argv: &[OsString], out: &mut impl Write) -> Result<Transfer, RsyncError> {
    // why: every code is "ok" to exec so that the whole stderr comes back (a
    // failure from exec carries only its tail); the caller judges the code
    let all_codes: Vec<i32> = (0..=255).collect();
    let cmd = Cmd::new(&argv[0]).args(&argv[1..]).ok_codes(&all_codes);
    writeln!(out, "{}", cmd.display()).map_err(RsyncError::Log)?;
    let mut child = cmd
        .spawn_reader_tee_stderr(Box::new(std::io::stderr()))
        .map_err(|source| RsyncError::Rsync {
            host: String::new(),
            source,
        })?;
    let mut tally = Tally::default();
    let mut reader = BufReader::with_capacity(1 << 16, &mut child);
    let mut line = Vec::with_capacity(256);
    let streamed: Result<(), RsyncError> = loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) => break Ok(()),
            Ok(_) => {}
            Err(e) => break Err(RsyncError::Log(e)),
        }
        let body = line.strip_suffix(b"\n").unwrap_or(&line);
        if tally.take(body) == Line::Spurious {
            continue;
        }
        if let Err(e) = out.write_all(&line) {
            break Err(RsyncError::Log(e));
        }
    };
    drop(reader);
    if let Err(e) = streamed {
        child.kill();
        return Err(e);
    }
    out.flush().map_err(RsyncError::Log)?;
    let done = child.finish().map_err(|source| RsyncError::Rsync {
        host: String::new(),
        source,
    })?;
    Ok(Transfer {
        code: done.code,
        stderr: done.stderr,
        tally,
    })
}

/// The last `n` lines of stderr, for an error message.
fn last_lines(stderr: &[u8], n: usize) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Turn a failed ssh-carried command into the error that names its cause.
fn ssh_error(endpoint: &Endpoint, stderr: &[u8]) -> Option<RsyncError> {
    let Endpoint::Ssh(t) = endpoint else {
        return None;
    };
    t.diagnose(stderr).map(RsyncError::Ssh)
}

/// Run rsync with Deltaic's fallback: exit 2 or 12, when ssh did not fail,
/// is retried once without `--acls --xattrs`; ok codes are 0 and 24.
fn transfer_with_fallback(
    host: &str,
    endpoint: &Endpoint,
    argv: &[OsString],
    out: &mut impl Write,
) -> Result<Transfer, RsyncError> {
    let named = |e: RsyncError| match e {
        RsyncError::Rsync { source, .. } => RsyncError::Rsync {
            host: host.to_owned(),
            source,
        },
        other => other,
    };
    let mut argv = argv.to_vec();
    let mut t = transfer(&argv, out).map_err(named)?;
    if RETRY_CODES.contains(&t.code) && ssh_error(endpoint, &t.stderr).is_none() {
        eprintln!(
            "rsync exited {} ({}): perhaps an rsync older than 3.0 on the far side; \
             retrying once without --acls --xattrs (ACLs and xattrs will not be copied)",
            t.code,
            exit_meaning(Some(t.code))
        );
        argv = without_newer_features(&argv);
        t = transfer(&argv, out).map_err(named)?;
    }
    if OK_CODES.contains(&t.code) {
        if t.code == 24 {
            eprintln!("rsync: some files vanished during the transfer (exit 24); that is fine");
        }
        return Ok(t);
    }
    if let Some(e) = ssh_error(endpoint, &t.stderr) {
        return Err(e);
    }
    Err(RsyncError::Rsync {
        host: host.to_owned(),
        source: ExecError::Failed {
            argv: crate::exec::quote_argv(&argv),
            status: t.code,
            stderr_tail: last_lines(&t.stderr, ERROR_TAIL_LINES),
        },
    })
}

/// Run a `pre` or `post` command, its output going to our stdout/stderr.
fn hook(endpoint: &Endpoint, which: &str, script: &str) -> Result<(), (ExecError, Vec<u8>)> {
    let cmd = endpoint.command(script);
    println!("{which}: {}", cmd.display());
    match cmd.run() {
        Ok(out) => {
            let _ = std::io::stdout().write_all(&out.stdout);
            let _ = std::io::stderr().write_all(&out.stderr);
            Ok(())
        }
        Err(e) => {
            let tail = e.stderr_tail().as_bytes().to_vec();
            eprintln!("{which} failed: {e}");
            Err((e, tail))
        }
    }
}

/// Back up one host into `<root>/rsync/<alias>`. `known_hosts` is strata's
/// known-hosts file ([`known_hosts_file`]).
pub fn backup(
    root: &Path,
    config: &Config,
    host: &RsyncHost,
    check: Check,
    known_hosts: &Path,
) -> Result<UnitReport, RsyncError> {
    let settings = &config.settings.rsync;
    let dest = root.join(host.unit.as_str());
    std::fs::create_dir_all(&dest).map_err(|source| RsyncError::Io {
        path: dest.clone(),
        source,
    })?;
    let endpoint = Endpoint::of(host, settings, known_hosts);
    if host.transport == Transport::Ssh {
        prepare_known_hosts(known_hosts)?;
    }

    if let Some(pre) = &host.pre {
        hook(&endpoint, "pre", pre).map_err(|(source, stderr)| {
            ssh_error(&endpoint, &stderr).unwrap_or(RsyncError::Pre {
                host: host.host.clone(),
                source,
            })
        })?;
    }

    let argv = backup_argv(host, settings, &endpoint, &dest, check);
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let t = transfer_with_fallback(&host.host, &endpoint, &argv, &mut out)?;
    drop(out);

    if let Some(post) = &host.post {
        hook(&endpoint, "post", post).map_err(|(source, _)| RsyncError::Post {
            host: host.host.clone(),
            source,
        })?;
    }

    let mut summary = format!(
        "{} changed, {} deleted, {} bytes in {} files, {} bytes transferred",
        t.tally.items.changed,
        t.tally.items.deleted,
        t.tally.stats.total_size,
        t.tally.stats.files,
        t.tally.stats.literal
    );
    if check == Check::Scrub {
        let _ = write!(
            summary,
            "; scrub: {} files differed from the source with equal size and mtime, repaired",
            t.tally.items.repaired
        );
        println!(
            "scrub: repaired {} files whose content differed from {} although size and mtime matched",
            t.tally.items.repaired, host.host
        );
    }
    println!("{summary}");
    Ok(UnitReport {
        bytes: t.tally.stats.total_size,
        changed: t.tally.items.changed + t.tally.items.deleted > 0,
        scrubbed: check == Check::Scrub,
        repaired: t.tally.items.repaired,
        summary,
    })
}

/// Which restore: a filesystem backup, or a Coda volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestoreKind {
    Full,
    Coda,
}

/// A restore request (`rsync restore`).
#[derive(Debug, Clone)]
pub struct Restore {
    pub kind: RestoreKind,
    /// A file or directory in the backup root or a mounted snapshot.
    pub source: PathBuf,
    pub endpoint: Endpoint,
    /// For messages: the destination host.
    pub host: String,
    pub dest_dir: OsString,
    /// Passed to rsync after ours (`--delete`, `--dry-run`, ...).
    pub extra: Vec<OsString>,
}

impl Restore {
    /// Where to restore to `host` as `user`: a configured host entry's ssh
    /// settings (port, identity, transport) apply when `host` names one (by
    /// its name or alias); the entry's own name is then the ssh destination.
    #[must_use]
    pub fn endpoint_for(config: &Config, host: &str, user: &str, known_hosts: &Path) -> Endpoint {
        let settings = &config.settings.rsync;
        let entry = (config.rsync.iter().find(|h| h.host == host))
            .or_else(|| config.rsync.iter().find(|h| h.alias == host));
        match entry {
            Some(h) if h.transport == Transport::Local => Endpoint::Local,
            Some(h) => {
                let mut t = ssh_target(h, settings, known_hosts);
                user.clone_into(&mut t.user);
                Endpoint::Ssh(t)
            }
            None => Endpoint::Ssh(SshTarget {
                options: settings.ssh_options.clone(),
                ..SshTarget::new(host, user, known_hosts)
            }),
        }
    }

    /// The restore's argument vector, program first.
    #[must_use]
    pub fn argv(&self, local_binary: &str) -> Vec<OsString> {
        let mut v: Vec<OsString> = vec![local_binary.into()];
        let opts = match self.kind {
            RestoreKind::Full => RESTORE_OPTIONS,
            RestoreKind::Coda => CODA_RESTORE_OPTIONS,
        };
        v.extend(opts.iter().map(OsString::from));
        v.extend(self.endpoint.rsh_args());
        // why: a directory is restored as its contents (a trailing slash), a file as itself
        let mut src = trim_slashes(self.source.as_os_str());
        if self.source.is_dir() {
            src.push("/");
        }
        let mut dest = trim_slashes(&self.dest_dir);
        dest.push("/");
        v.push(src);
        v.push(self.endpoint.path(&dest));
        v.extend(self.extra.iter().cloned());
        v
    }
}

fn trim_slashes(p: &OsStr) -> OsString {
    let b = p.as_bytes();
    let end = b.len() - b.iter().rev().take_while(|c| **c == b'/').count();
    OsStr::from_bytes(&b[..end]).to_owned()
}

/// Push a backed-up tree back to a host, restoring owners, modes, ACLs and
/// xattrs. Returns what rsync itemized.
pub fn restore(config: &Config, r: &Restore) -> Result<Itemized, RsyncError> {
    if let Endpoint::Ssh(t) = &r.endpoint {
        prepare_known_hosts(&t.known_hosts)?;
    }
    let argv = r.argv(&config.settings.rsync.local_binary);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let t = transfer_with_fallback(&r.host, &r.endpoint, &argv, &mut out)?;
    Ok(t.tally.items)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::UnitPath;

    fn host(transport: Transport) -> RsyncHost {
        RsyncHost {
            host: "octopus.example.org".into(),
            unit: UnitPath::parse("rsync/octopus").unwrap(),
            mounts: vec!["/".into(), "/home/".into()],
            alias: "octopus".into(),
            user: "root".into(),
            pre: None,
            post: None,
            exclude: vec!["/tmp/*".into()],
            ssh_port: Some(2222),
            ssh_identity: Some("/keys/my key".into()),
            transport,
        }
    }

    fn settings() -> RsyncSettings {
        RsyncSettings {
            local_binary: "rsync".into(),
            exclude: vec!["*.swp".into()],
            scrub_probability: 0.0,
            workers: 1,
            ssh_options: vec!["-oCiphers=aes128-ctr".into()],
        }
    }

    fn strs(v: &[OsString]) -> Vec<String> {
        v.iter().map(|s| s.to_string_lossy().into_owned()).collect()
    }

    #[test]
    fn backup_argv_over_ssh_is_deltaics_with_checked_host_keys() {
        let h = host(Transport::Ssh);
        let s = settings();
        let e = Endpoint::of(&h, &s, Path::new("/home/b/.config/strata/known_hosts"));
        let argv = strs(&backup_argv(
            &h,
            &s,
            &e,
            Path::new("/srv/backup/rsync/octopus/"),
            Check::Normal,
        ));
        assert_eq!(
            argv,
            [
                "rsync",
                "-aHRxi",
                "--acls",
                "--xattrs",
                "--fake-super",
                "--delete",
                "--delete-excluded",
                "--numeric-ids",
                "--stats",
                "--partial",
                "--sparse",
                "-e",
                "ssh -o BatchMode=yes -oCiphers=aes128-ctr -o StrictHostKeyChecking=accept-new \
                 -o 'UserKnownHostsFile=\"/home/b/.config/strata/known_hosts\"' -o ConnectTimeout=30 \
                 -o ServerAliveInterval=60 -o ServerAliveCountMax=5 -p 2222 -i '/keys/my key' \
                 -o IdentitiesOnly=yes",
                "--exclude=*.swp",
                "--exclude=/tmp/*",
                "--",
                "root@octopus.example.org:/",
                "root@octopus.example.org:/home",
                "/srv/backup/rsync/octopus",
            ]
        );
    }

    #[test]
    fn scrub_adds_checksum_and_local_transport_has_no_ssh() {
        let h = host(Transport::Local);
        let s = settings();
        let argv = strs(&backup_argv(
            &h,
            &s,
            &Endpoint::Local,
            Path::new("/b/rsync/octopus"),
            Check::Scrub,
        ));
        assert!(argv.contains(&"--checksum".to_owned()));
        assert!(!argv.iter().any(|a| a == "-e" || a.contains("ssh")));
        assert!(argv.contains(&"-M--fake-super".to_owned()));
        assert!(!argv.contains(&"--fake-super".to_owned()));
        assert_eq!(argv[argv.len() - 3..], ["/", "/home", "/b/rsync/octopus"]);
    }

    #[test]
    fn retry_drops_only_acls_and_xattrs() {
        let argv: Vec<OsString> = ["rsync", "-aHRxi", "--acls", "--xattrs", "--fake-super", "x"]
            .iter()
            .map(OsString::from)
            .collect();
        assert_eq!(
            strs(&without_newer_features(&argv)),
            ["rsync", "-aHRxi", "--fake-super", "x"]
        );
    }

    #[test]
    fn ipv6_hosts_are_bracketed_for_rsync_but_not_for_ssh() {
        let mut h = host(Transport::Ssh);
        h.host = "fd00::1".into();
        h.ssh_port = None;
        let e = Endpoint::of(&h, &settings(), Path::new("/kh"));
        assert_eq!(e.path(OsStr::new("/etc")), "root@[fd00::1]:/etc");
        let Endpoint::Ssh(t) = &e else { panic!() };
        assert_eq!(t.key_name(), "fd00::1");
        let cmd = t.remote("echo hi");
        let argv = strs(&cmd.argv());
        assert_eq!(argv[argv.len() - 3..], ["--", "root@fd00::1", "echo hi"]);
    }

    /// rsync's own `-e` splitting must give back our arguments: checked with
    /// a fake remote shell that records its argv.
    #[test]
    fn rsh_command_survives_rsyncs_splitting() {
        if !crate::exec::tool_exists("rsync") {
            eprintln!("SKIP: rsync is not installed");
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let script = d.path().join("fake ssh");
        let log = d.path().join("argv");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nprintf '%s\\n' \"$@\" > '{}'\nexit 1\n",
                log.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let argv: Vec<OsString> = [
            script.to_str().unwrap(),
            "plain",
            "two words",
            "it's",
            "say \"hi\"",
            "UserKnownHostsFile=\"/a b/kh\"",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        let _ = Cmd::new("rsync")
            .arg("-e")
            .arg(rsh_command(&argv))
            .args(["somehost:/x", d.path().join("dest").to_str().unwrap()])
            .ok_codes(&(0..=255).collect::<Vec<_>>())
            .run()
            .unwrap();
        let got = std::fs::read_to_string(&log).unwrap();
        let got: Vec<&str> = got.lines().collect();
        assert_eq!(
            got[..5],
            [
                "plain",
                "two words",
                "it's",
                "say \"hi\"",
                "UserKnownHostsFile=\"/a b/kh\""
            ]
        );
        assert_eq!(got[5], "somehost");
    }

    #[test]
    fn restore_argv_full_and_coda() {
        let d = tempfile::tempdir().unwrap();
        let e = Endpoint::Ssh(SshTarget {
            host: "h".into(),
            user: "alice".into(),
            port: None,
            identity: None,
            options: vec![],
            known_hosts: "/kh".into(),
        });
        let r = Restore {
            kind: RestoreKind::Full,
            source: d.path().to_owned(),
            endpoint: e,
            host: "h".into(),
            dest_dir: "/restore/here//".into(),
            extra: vec!["--delete".into()],
        };
        let argv = strs(&r.argv("rsync"));
        assert_eq!(
            argv[..7],
            [
                "rsync",
                "-aHi",
                "--acls",
                "--xattrs",
                "--fake-super",
                "-M--super",
                "--numeric-ids"
            ]
        );
        let n = argv.len();
        assert_eq!(
            argv[n - 3..],
            [
                format!("{}/", d.path().display()),
                "alice@h:/restore/here/".to_owned(),
                "--delete".to_owned()
            ]
        );
        let coda = Restore {
            kind: RestoreKind::Coda,
            source: d.path().join("file"),
            endpoint: Endpoint::Local,
            ..r
        };
        let argv = strs(&coda.argv("rsync"));
        assert_eq!(
            argv[..5],
            [
                "rsync",
                "-rlptoHi",
                "--fake-super",
                "-M--super",
                "--numeric-ids"
            ]
        );
        assert!(
            argv.contains(&"--exclude=/..CodaACLs.yaml".to_owned()),
            "a Coda volume's ACL file is not restored as a file: {argv:?}"
        );
        assert_eq!(argv[argv.len() - 3], format!("{}/file", d.path().display()));
        assert_eq!(argv[argv.len() - 2], "/restore/here/");
    }
}

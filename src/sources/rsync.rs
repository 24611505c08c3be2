//! The `rsync` source: whole filesystems of hosts, pulled with rsync over ssh
//! as Deltaic did (DESIGN §7), and pushed back on restore.
//!
//! Owns: the argument vectors of `rsync` and `ssh` for a host entry, the
//! `pre`/`post` remote commands, the retry without `--acls --xattrs` for an
//! old remote rsync, reading rsync's itemized output (what changed, what a
//! scrub repaired) and `--stats`, telling an ssh failure (unreachable host,
//! changed host key) from an rsync failure, and restore.
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
//! - Host keys are checked: `StrictHostKeyChecking=accept-new` against
//!   strata's own known-hosts file ([`known_hosts_file`]), so the first
//!   contact records the key and a changed key fails the unit, naming the
//!   problem, instead of being silently accepted (Deltaic turned checking off).
//! - `post` runs only after a successful rsync; a failed `pre` means no rsync
//!   and no `post`.
//! - Exit 24 (files vanished during the transfer) is success; exit 2 or 12
//!   that is not an ssh failure is retried once without `--acls --xattrs`.

mod cmd;

pub use cmd::RSYNC;

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
/// forced although the remote user is likely not root (as Deltaic).
pub const CODA_RESTORE_OPTIONS: &[&str] =
    &["-rlptoHi", "--fake-super", "-M--super", "--numeric-ids"];

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
    Ssh {
        host: String,
        /// What ssh said.
        detail: String,
    },
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

/// strata's known-hosts file: `~/.config/strata/known_hosts`, beside the
/// default config file and separate from the user's `~/.ssh/known_hosts`, so
/// that the keys strata trusts are the keys its backups recorded.
#[must_use]
pub fn known_hosts_file(home: &Path) -> PathBuf {
    home.join(".config").join("strata").join("known_hosts")
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
    /// The target of a configured host entry.
    #[must_use]
    pub fn of(host: &RsyncHost, settings: &RsyncSettings, known_hosts: &Path) -> SshTarget {
        SshTarget {
            host: host.host.clone(),
            user: host.user.clone(),
            port: host.ssh_port,
            identity: host.ssh_identity.clone(),
            options: settings.ssh_options.clone(),
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

    /// `user@host`, bracketing an IPv6 address for rsync's `host:path` syntax.
    fn rsync_prefix(&self) -> String {
        if self.host.contains(':') {
            format!("{}@[{}]", self.user, self.host)
        } else {
            format!("{}@{}", self.user, self.host)
        }
    }

    /// How ssh names this host in `known_hosts`.
    fn key_name(&self) -> String {
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
            .arg(format!("{}@{}", self.user, self.host))
            .arg(script)
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
            Transport::Ssh => Endpoint::Ssh(SshTarget::of(host, settings, known_hosts)),
            Transport::Local => Endpoint::Local,
        }
    }

    /// A path on the far side, as an rsync argument.
    fn path(&self, path: &OsStr) -> OsString {
        match self {
            Endpoint::Ssh(t) => {
                let mut s = OsString::from(t.rsync_prefix());
                s.push(":");
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

/// What rsync's itemized output (`-i`) said changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Itemized {
    /// Entries created or updated (data or attributes).
    pub changed: u64,
    /// Entries deleted.
    pub deleted: u64,
    /// Regular files whose content differed although size and mtime were
    /// equal: what only `--checksum` finds, and a scrub repairs.
    pub repaired: u64,
}

/// One line of rsync's stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line {
    /// `[.h][dfL]........x `: a spurious xattr line some rsync versions print
    /// for unchanged entries (samba bug 10496); Deltaic drops them, so do we.
    Spurious,
    Deleted,
    /// A change; `repaired` as in [`Itemized::repaired`].
    Changed {
        repaired: bool,
    },
    /// Anything else (`--stats`, messages).
    Other,
}

/// Classify one line of rsync's output (without its newline).
#[must_use]
pub fn classify(line: &[u8]) -> Line {
    if line.starts_with(b"*deleting ") {
        return Line::Deleted;
    }
    // why: itemized lines are `YXcstpoguax name`: 11 flag characters, then a space
    if line.len() < 12 || line[11] != b' ' {
        return Line::Other;
    }
    let (y, x, flags) = (line[0], line[1], &line[2..11]);
    if !b"<>ch.".contains(&y) || !b"fdLDS".contains(&x) {
        return Line::Other;
    }
    if (y == b'.' || y == b'h')
        && b"dfL".contains(&x)
        && flags[..8].iter().all(|c| *c == b'.')
        && flags[8] == b'x'
    {
        return Line::Spurious;
    }
    Line::Changed {
        repaired: y == b'>'
            && x == b'f'
            && flags[0] == b'c'
            && flags[1] == b'.'
            && flags[2] == b'.',
    }
}

/// The figures of `--stats` strata reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// `Number of files:`.
    pub files: u64,
    /// `Total file size:` (bytes): what the unit holds.
    pub total_size: u64,
    /// `Literal data:` (bytes): what actually crossed the wire.
    pub literal: u64,
}

impl Stats {
    /// Take a figure from one `--stats` line, if it is one of ours.
    pub fn take(&mut self, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        let Some((key, value)) = text.split_once(':') else {
            return;
        };
        let slot = match key.trim() {
            "Number of files" => &mut self.files,
            "Total file size" => &mut self.total_size,
            "Literal data" => &mut self.literal,
            _ => return,
        };
        if let Some(n) = leading_number(value) {
            *slot = n;
        }
    }
}

/// The integer at the start of `s`, ignoring digit-group separators
/// (rsync prints `1,234,567` or, by locale, `1.234.567`).
fn leading_number(s: &str) -> Option<u64> {
    let token = s.split_whitespace().next()?;
    let digits: String = token.chars().filter(char::is_ascii_digit).collect();
    if digits.is_empty() || token.chars().any(|c| c.is_ascii_alphabetic()) {
        return None;
    }
    digits.parse().ok()
}

/// One rsync process as it ended.
struct Transfer {
    code: i32,
    stderr: Vec<u8>,
    items: Itemized,
    stats: Stats,
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
    let mut items = Itemized::default();
    let mut stats = Stats::default();
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
        match classify(body) {
            Line::Spurious => continue,
            Line::Deleted => items.deleted += 1,
            Line::Changed { repaired } => {
                items.changed += 1;
                items.repaired += u64::from(repaired);
            }
            Line::Other => stats.take(body),
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
        items,
        stats,
    })
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
    match ssh_problem(stderr)? {
        SshProblem::HostKey(detail) => Some(RsyncError::HostKeyChanged {
            host: t.host.clone(),
            known_hosts: t.known_hosts.clone(),
            key_name: t.key_name(),
            detail,
        }),
        SshProblem::Connect(detail) => Some(RsyncError::Ssh {
            host: t.host.clone(),
            detail,
        }),
    }
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
        t.items.changed, t.items.deleted, t.stats.total_size, t.stats.files, t.stats.literal
    );
    if check == Check::Scrub {
        let _ = write!(
            summary,
            "; scrub: {} files differed from the source with equal size and mtime, repaired",
            t.items.repaired
        );
        println!(
            "scrub: repaired {} files whose content differed from {} although size and mtime matched",
            t.items.repaired, host.host
        );
    }
    println!("{summary}");
    Ok(UnitReport {
        bytes: t.stats.total_size,
        changed: t.items.changed + t.items.deleted > 0,
        scrubbed: check == Check::Scrub,
        repaired: t.items.repaired,
        summary,
    })
}

/// Make sure the known-hosts file's directory exists (private: it decides
/// which servers we trust).
fn prepare_known_hosts(known_hosts: &Path) -> Result<(), RsyncError> {
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
        .map_err(|source| RsyncError::Io {
            path: dir.to_owned(),
            source,
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
                let mut t = SshTarget::of(h, settings, known_hosts);
                user.clone_into(&mut t.user);
                Endpoint::Ssh(t)
            }
            None => Endpoint::Ssh(SshTarget {
                host: host.to_owned(),
                user: user.to_owned(),
                port: None,
                identity: None,
                options: settings.ssh_options.clone(),
                known_hosts: known_hosts.to_owned(),
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
    Ok(t.items)
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

    #[test]
    fn classify_itemized_lines() {
        assert_eq!(
            classify(b">f+++++++++ etc/passwd"),
            Line::Changed { repaired: false }
        );
        assert_eq!(
            classify(b">f.st...... etc/passwd"),
            Line::Changed { repaired: false }
        );
        assert_eq!(
            classify(b">fc........ etc/passwd"),
            Line::Changed { repaired: true }
        );
        assert_eq!(
            classify(b">fc.......x etc/passwd"),
            Line::Changed { repaired: true }
        );
        assert_eq!(
            classify(b">fcs....... etc/passwd"),
            Line::Changed { repaired: false }
        );
        assert_eq!(
            classify(b">fc.t...... etc/passwd"),
            Line::Changed { repaired: false }
        );
        assert_eq!(
            classify(b"cL+++++++++ a -> b"),
            Line::Changed { repaired: false }
        );
        assert_eq!(
            classify(b"hf+++++++++ a => b"),
            Line::Changed { repaired: false }
        );
        assert_eq!(
            classify(b".d..t...... etc/"),
            Line::Changed { repaired: false }
        );
        assert_eq!(classify(b"*deleting   etc/old"), Line::Deleted);
        assert_eq!(classify(b".d........x etc/"), Line::Spurious);
        assert_eq!(classify(b".f........x etc/x"), Line::Spurious);
        assert_eq!(classify(b"hL........x etc/l"), Line::Spurious);
        assert_eq!(
            classify(b".f.......ax etc/x"),
            Line::Changed { repaired: false }
        );
        assert_eq!(classify(b"Number of files: 3"), Line::Other);
        assert_eq!(classify(b"sent 1,234 bytes  received 5 bytes"), Line::Other);
        assert_eq!(classify(b""), Line::Other);
    }

    #[test]
    fn stats_are_read_with_any_digit_grouping() {
        let text = "\
Number of files: 20,012 (reg: 20,001, dir: 10, link: 1)
Number of created files: 0
Number of regular files transferred: 3
Total file size: 1,073,741,824 bytes
Total transferred file size: 12 bytes
Literal data: 1.234 bytes
Matched data: 0 bytes
";
        let mut s = Stats::default();
        for l in text.lines() {
            s.take(l.as_bytes());
        }
        assert_eq!(
            s,
            Stats {
                files: 20012,
                total_size: 1_073_741_824,
                literal: 1234
            }
        );
        let mut h = Stats::default();
        h.take(b"Total file size: 1.07G bytes");
        assert_eq!(
            h.total_size, 0,
            "a human-readable size is not taken for a number"
        );
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
        let e = RsyncError::HostKeyChanged {
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
        assert_eq!(argv[argv.len() - 3], format!("{}/file", d.path().display()));
        assert_eq!(argv[argv.len() - 2], "/restore/here/");
    }
}

//! Git through the git CLI (`exec::Cmd`): bare mirrors made with
//! `clone --mirror` and kept with `fetch --prune` (every ref, `refs/pull/*`
//! included), wikis, LFS objects, `fsck` on scrub, and pushes for restore.
//!
//! The token reaches git through a credential helper given in the
//! environment (`GIT_CONFIG_COUNT`/`GIT_CONFIG_KEY_n`/`GIT_CONFIG_VALUE_n`)
//! whose shell function prints it from the variable `STRATA_GITHUB_TOKEN`:
//! never in a URL, an argument, the mirror's config or a file. git never
//! prompts (`GIT_TERMINAL_PROMPT=0`), and a server that stalls below
//! [`LOW_SPEED_BYTES`] a second for [`stall_secs`] fails the command, so a
//! hung server fails the unit instead of holding the run.

use crate::exec::{Cmd, ExecError};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Attempts at a clone or fetch before the unit fails (as Deltaic).
pub const GIT_ATTEMPTS: u32 = 5;
/// A transfer slower than this many bytes a second ...
pub const LOW_SPEED_BYTES: u32 = 1000;
/// ... for this many seconds fails (overridable for tests by
/// `STRATA_GITHUB_GIT_STALL_SECS`).
pub const STALL_SECS: u32 = 120;

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("{what} failed after {attempts} attempts: {source}")]
    Attempts {
        what: String,
        attempts: u32,
        #[source]
        source: ExecError,
    },
    #[error(transparent)]
    Exec(#[from] ExecError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The stall timeout in seconds.
#[must_use]
pub fn stall_secs() -> u32 {
    std::env::var("STRATA_GITHUB_GIT_STALL_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(STALL_SECS)
}

/// How git is run: which binary, with which token.
#[derive(Clone)]
pub struct Git {
    pub program: String,
    token: Option<String>,
}

/// The credential helper: a shell function that answers `get` with the
/// token from the environment and ignores `store`/`erase`.
const HELPER: &str = "!f() { test \"$1\" = get || exit 0; echo username=x-access-token; echo \"password=$STRATA_GITHUB_TOKEN\"; }; f";

/// What became of a mirror.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mirrored {
    Cloned,
    Fetched,
    /// The first clone failed and the caller allowed it (a wiki that does
    /// not exist).
    Absent,
}

impl Git {
    #[must_use]
    pub fn new(program: &str, token: Option<String>) -> Git {
        Git {
            program: program.to_owned(),
            token,
        }
    }

    /// A git command with the credential helper, no prompts and the stall
    /// timeout in its environment.
    #[must_use]
    pub fn cmd(&self) -> Cmd {
        let mut c = Cmd::new(&self.program)
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GCM_INTERACTIVE", "never")
            .env("GIT_HTTP_LOW_SPEED_LIMIT", LOW_SPEED_BYTES.to_string())
            .env("GIT_HTTP_LOW_SPEED_TIME", stall_secs().to_string())
            // why: an empty value first clears helpers from the user's own config
            .env("GIT_CONFIG_COUNT", "3")
            .env("GIT_CONFIG_KEY_0", "credential.helper")
            .env("GIT_CONFIG_VALUE_0", "")
            .env("GIT_CONFIG_KEY_1", "credential.helper")
            .env("GIT_CONFIG_VALUE_1", HELPER)
            // why: given here, git-lfs needs not write it (it still does once
            // into a mirror's own config, which it reads with --local)
            .env("GIT_CONFIG_KEY_2", "lfs.repositoryformatversion")
            .env("GIT_CONFIG_VALUE_2", "0")
            .env_remove("GIT_ASKPASS")
            .env_remove("SSH_ASKPASS");
        c = match &self.token {
            Some(t) => c.env("STRATA_GITHUB_TOKEN", t),
            None => c.env_remove("STRATA_GITHUB_TOKEN"),
        };
        c
    }

    /// Run `args` in `dir` (the mirror) and return stdout.
    pub fn run_in(&self, dir: &Path, args: &[&str]) -> Result<String, ExecError> {
        let out = self.cmd().current_dir(dir).args(args).run()?;
        Ok(out.stdout_text())
    }

    /// Make `dir` a bare mirror of `url`: clone it when absent (into a
    /// temporary name, renamed when complete), otherwise point `origin` at
    /// `url` if it moved and fetch with prune. [`GIT_ATTEMPTS`] tries, a
    /// second apart. `absent_ok`: a failed first clone is [`Mirrored::Absent`].
    pub fn mirror(&self, url: &str, dir: &Path, absent_ok: bool) -> Result<Mirrored, GitError> {
        let exists = dir.join("HEAD").is_file() || dir.join("config").is_file();
        if exists {
            let current = self
                .run_in(dir, &["config", "--get", "remote.origin.url"])
                .unwrap_or_default();
            if current.trim() != url {
                self.run_in(dir, &["remote", "set-url", "origin", url])?;
            }
            // why: fetch --prune is what `remote update --prune` runs for the one
            // remote; --no-write-fetch-head spares rewriting FETCH_HEAD every run
            Self::attempts(&format!("fetching {url}"), || {
                self.cmd()
                    .current_dir(dir)
                    .args(["fetch", "--prune", "--no-write-fetch-head", "origin"])
                    .run()
                    .map(drop)
            })?;
            return Ok(Mirrored::Fetched);
        }
        let parent = dir.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent).map_err(|source| GitError::Io {
            path: parent.to_owned(),
            source,
        })?;
        let tmp = parent.join(format!(
            ".strata-tmp-{}",
            dir.file_name().and_then(|n| n.to_str()).unwrap_or("git")
        ));
        let clear = |p: &Path| {
            if p.exists() {
                std::fs::remove_dir_all(p).map_err(|source| GitError::Io {
                    path: p.to_owned(),
                    source,
                })
            } else {
                Ok(())
            }
        };
        let clone = || {
            let _ = std::fs::remove_dir_all(&tmp);
            if crate::progress::enabled() {
                return self.clone_showing_progress(url, &tmp);
            }
            self.cmd()
                .args(["clone", "--mirror", "--quiet", url])
                .arg(&tmp)
                .run()
                .map(drop)
        };
        // why: as Deltaic, a clone that may fail (a wiki nobody created) is
        // tried once: most repositories claim a wiki they do not have
        let result = if absent_ok {
            println!("git: cloning {url} (once: it may not exist)");
            clone().map_err(|source| GitError::Attempts {
                what: format!("cloning {url}"),
                attempts: 1,
                source,
            })
        } else {
            Self::attempts(&format!("cloning {url}"), clone)
        };
        match result {
            Ok(()) => {
                crate::fault::point("github-cloned");
                std::fs::rename(&tmp, dir).map_err(|source| GitError::Io {
                    path: dir.to_owned(),
                    source,
                })?;
                Ok(Mirrored::Cloned)
            }
            Err(_) if absent_ok => {
                clear(&tmp)?;
                Ok(Mirrored::Absent)
            }
            Err(e) => {
                clear(&tmp)?;
                Err(e)
            }
        }
    }

    /// `git clone --mirror --progress`, git's progress (from its stderr)
    /// drawn as a bar; its stderr is still the error's text.
    fn clone_showing_progress(&self, url: &str, dest: &Path) -> Result<(), ExecError> {
        let bar = crate::progress::Bar::steps(&format!("clone {}", short_url(url)));
        let tee = GitProgress {
            bar: bar.clone(),
            line: Vec::new(),
        };
        let child = self
            .cmd()
            .args(["clone", "--mirror", "--progress", url])
            .arg(dest)
            .spawn_reader_tee_stderr(Box::new(tee));
        // why: clone prints nothing on stdout; finish waits for it and judges its status
        let done = child.and_then(crate::exec::ChildReader::finish).map(drop);
        bar.finish();
        done
    }

    fn attempts(what: &str, mut f: impl FnMut() -> Result<(), ExecError>) -> Result<(), GitError> {
        let mut last = None;
        for attempt in 1..=GIT_ATTEMPTS {
            println!("git: {what} (attempt {attempt})");
            match f() {
                Ok(()) => return Ok(()),
                Err(e) => {
                    println!("git: {e}");
                    last = Some(e);
                    if attempt < GIT_ATTEMPTS {
                        std::thread::sleep(Duration::from_secs(1));
                    }
                }
            }
        }
        Err(GitError::Attempts {
            what: what.to_owned(),
            attempts: GIT_ATTEMPTS,
            source: last.expect("at least one attempt ran"),
        })
    }

    /// `git fsck --no-dangling` (scrub).
    pub fn fsck(&self, dir: &Path) -> Result<(), ExecError> {
        self.run_in(dir, &["fsck", "--no-dangling", "--no-progress"])
            .map(drop)
    }

    /// Whether git-lfs is installed for this git.
    #[must_use]
    pub fn has_lfs(&self) -> bool {
        self.cmd().args(["lfs", "version"]).run().is_ok()
    }

    /// Whether the mirror uses LFS: its HEAD's `.gitattributes` names the
    /// lfs filter, or LFS objects were fetched into it before.
    #[must_use]
    pub fn uses_lfs(&self, dir: &Path) -> bool {
        if dir.join("lfs/objects").is_dir() {
            return true;
        }
        self.run_in(dir, &["cat-file", "-p", "HEAD:.gitattributes"])
            .is_ok_and(|t| t.contains("filter=lfs"))
    }

    /// `git lfs fetch --all` into the mirror of `url`. The endpoint's access
    /// mode is given in the environment, so git-lfs does not record it in
    /// the mirror's config after its first 401.
    pub fn lfs_fetch(&self, dir: &Path, url: &str) -> Result<(), GitError> {
        Self::attempts("fetching LFS objects", || {
            self.lfs_cmd(url)
                .current_dir(dir)
                .args(["lfs", "fetch", "--all", "origin"])
                .run()
                .map(drop)
        })
    }

    /// A git command for git-lfs talking to the LFS endpoint of `url`, with
    /// the endpoint's access mode given (git-lfs records it in the
    /// repository's config otherwise).
    fn lfs_cmd(&self, url: &str) -> Cmd {
        let endpoint = match url.strip_suffix(".git") {
            Some(_) => format!("{url}/info/lfs"),
            None => format!("{url}.git/info/lfs"),
        };
        self.cmd()
            .env("GIT_CONFIG_COUNT", "4")
            .env("GIT_CONFIG_KEY_3", format!("lfs.{endpoint}.access"))
            .env("GIT_CONFIG_VALUE_3", "basic")
    }

    /// Every ref of the mirror but `refs/pull/*` (GitHub refuses them).
    pub fn pushable_refs(&self, dir: &Path) -> Result<Vec<String>, ExecError> {
        let out = self.run_in(dir, &["for-each-ref", "--format=%(refname)"])?;
        Ok(out
            .lines()
            .filter(|r| !r.starts_with("refs/pull/") && !r.is_empty())
            .map(str::to_owned)
            .collect())
    }

    /// Whether `url` holds no refs at all.
    pub fn remote_is_empty(&self, url: &str) -> Result<bool, ExecError> {
        let out = self.cmd().args(["ls-remote", url]).run()?;
        Ok(out.stdout_text().trim().is_empty())
    }

    /// Push `refs` of the mirror to `url`, in batches.
    pub fn push_refs(&self, dir: &Path, url: &str, refs: &[String]) -> Result<(), ExecError> {
        for chunk in refs.chunks(200) {
            let specs: Vec<String> = chunk.iter().map(|r| format!("+{r}:{r}")).collect();
            self.cmd()
                .current_dir(dir)
                .args(["push", "--quiet", url])
                .args(&specs)
                .run()?;
        }
        Ok(())
    }

    /// `git lfs push --all URL` from the mirror.
    pub fn lfs_push(&self, dir: &Path, url: &str) -> Result<(), ExecError> {
        self.lfs_cmd(url)
            .current_dir(dir)
            .args(["lfs", "push", "--all", url])
            .run()
            .map(drop)
    }
}

/// The end of `url` that names the repository (`org/repo.git`).
fn short_url(url: &str) -> String {
    let parts: Vec<&str> = url.trim_end_matches('/').rsplitn(3, '/').collect();
    match parts.as_slice() {
        [repo, org, _] => format!("{org}/{repo}"),
        _ => url.to_owned(),
    }
}

/// One of git's progress lines: its phase and `done` of `total`
/// (`Receiving objects:  45% (450/1000), 1.20 MiB | 2.00 MiB/s`, with or
/// without `remote: ` before it); `None` for any other line.
fn parse_progress(line: &str) -> Option<GitStep<'_>> {
    let line = line.trim().strip_prefix("remote: ").unwrap_or(line.trim());
    let (phase, rest) = line.split_once(": ")?;
    let rest = rest.trim_start();
    let (_percent, rest) = rest.split_once("% (")?;
    let (counts, _) = rest.split_once(')')?;
    let (done, total) = counts.split_once('/')?;
    Some(GitStep {
        phase,
        done: done.parse().ok()?,
        total: total.parse().ok()?,
    })
}

/// Where git is: `done` of `total` in `phase`.
#[derive(Debug, PartialEq, Eq)]
struct GitStep<'a> {
    phase: &'a str,
    done: u64,
    total: u64,
}

/// git's stderr, cut at `\r` and `\n` into lines that move a bar.
struct GitProgress {
    bar: crate::progress::Bar,
    line: Vec<u8>,
}

impl GitProgress {
    fn show(&mut self) {
        let line = String::from_utf8_lossy(&self.line);
        if let Some(step) = parse_progress(&line) {
            self.bar.set_steps(step.done, step.total);
            self.bar.set_message(step.phase.to_owned());
        }
        self.line.clear();
    }
}

impl std::io::Write for GitProgress {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        for &b in buf {
            if b == b'\r' || b == b'\n' {
                self.show();
            } else {
                self.line.push(b);
            }
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Want = (&'static str, u64, u64);

    #[test]
    fn progress_lines_give_phase_and_counts() {
        let table: &[(&str, Option<Want>)] = &[
            (
                "Receiving objects:  45% (450/1000), 1.20 MiB | 2.00 MiB/s",
                Some(("Receiving objects", 450, 1000)),
            ),
            (
                "remote: Compressing objects: 100% (3/3), done.",
                Some(("Compressing objects", 3, 3)),
            ),
            (
                "Resolving deltas:   0% (0/7)",
                Some(("Resolving deltas", 0, 7)),
            ),
            ("remote: Enumerating objects: 12, done.", None),
            ("Cloning into bare repository 'x'...", None),
            ("fatal: repository 'http://h/x.git/' not found", None),
            ("", None),
        ];
        for (line, want) in table {
            let got = parse_progress(line).map(|s| (s.phase, s.done, s.total));
            assert_eq!(got, *want, "{line:?}");
        }
    }

    #[test]
    fn a_clone_url_is_shown_by_its_org_and_repo() {
        assert_eq!(
            short_url("https://github.com/acme/widgets.git"),
            "acme/widgets.git"
        );
        assert_eq!(
            short_url("http://127.0.0.1:9/acme/w.wiki.git/"),
            "acme/w.wiki.git"
        );
        assert_eq!(short_url("widgets"), "widgets");
    }

    #[test]
    fn the_token_is_only_in_the_environment() {
        let g = Git::new("git", Some("sekrit-token".into()));
        let c = g.cmd().args(["fetch", "origin"]);
        assert!(!c.display().contains("sekrit-token"), "{}", c.display());
        assert!(!HELPER.contains("sekrit"));
    }

    #[test]
    fn the_helper_prints_the_token_from_the_environment_for_get_only() {
        let d = tempfile::tempdir().unwrap();
        let g = Git::new("git", Some("tok123".into()));
        let out = g
            .cmd()
            .current_dir(d.path())
            .args(["credential", "fill"])
            .stdin_bytes(b"protocol=https\nhost=example.invalid\n\n".to_vec())
            .run()
            .unwrap();
        let text = out.stdout_text();
        assert!(text.contains("username=x-access-token"), "{text}");
        assert!(text.contains("password=tok123"), "{text}");
    }
}

//! The `github` source: every configured organization's repositories,
//! wikis, issues, pull requests, milestones, labels, commit comments and
//! releases, and its teams and members, in Deltaic's layout and bytes
//! (docs/github.md).
//!
//! Units are discovered when a run starts: `github/<org>/@organization`
//! (with `organization-metadata`) and one `github/<org>/<repo>` per
//! repository the API lists, less the org's `exclude` globs. The listing is
//! recorded under `<root>/.strata/github/<org>/@listing.json`, from which
//! `status` tells, without the network, which stored repositories are gone
//! upstream. A run never deletes a repository; `github forget` does.
//!
//! - [`api`]: the HTTP client, pagination, conditional requests, the
//!   rate-limit governor; [`cache`]: the per-page ETags.
//! - [`pyjson`] and [`layout`]: the exact bytes and mtimes of each file.
//! - [`repo`] and [`org`]: what one unit writes; [`git`]: mirrors.
//! - [`restore`]: `github restore`; [`auth`]: `github auth`; `cmd`: the
//!   verbs and the [`crate::sources::Source`] implementation.

pub mod api;
pub mod auth;
pub mod cache;
mod cmd;
pub mod git;
pub mod layout;
pub mod org;
pub mod pyjson;
pub mod repo;
pub mod restore;

pub use cmd::GITHUB;

use crate::backup_root::BackupRoot;
use crate::config::{Config, GithubOrg};
use crate::sources::{Check, UnitReport};
use api::{Api, ApiError};
use cache::CacheFile;
use git::{Git, GitError, Mirrored};
use layout::Written;
use std::fmt::Write as _;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum GithubError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Git(#[from] GitError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the token could not be read: {0}")]
    Token(#[source] std::io::Error),
    #[error("settings.github-token (or github-token-file) is required for the github source")]
    NoToken,
    #[error("organization `{org}` is not in the config's github section")]
    UnknownOrg { org: String },
    #[error("the API gave no clone_url for {repo}")]
    NoCloneUrl { repo: String },
    #[error("{}: downloaded {got} bytes, the API said {want}", path.display())]
    AssetSize { path: PathBuf, want: u64, got: u64 },
}

/// What a unit's backup did, for its report.
#[derive(Debug, Default)]
pub struct Tally {
    pub created: u64,
    pub changed: u64,
    pub removed: u64,
    /// Files a scrub found different and rewrote.
    pub repaired: u64,
    pub cloned: u64,
    pub fetched: u64,
    /// Optional resources that were not there (one line each).
    pub notes: Vec<String>,
}

impl Tally {
    /// Count one file write.
    pub fn count(&mut self, check: Check, w: Written) {
        match w {
            Written::Unchanged => {}
            Written::Created => self.created += 1,
            Written::Changed => {
                self.changed += 1;
                if check == Check::Scrub {
                    self.repaired += 1;
                }
            }
        }
    }

    pub fn git(&mut self, m: Mirrored) {
        match m {
            Mirrored::Cloned => self.cloned += 1,
            Mirrored::Fetched => self.fetched += 1,
            Mirrored::Absent => {}
        }
    }

    /// A line for the log and the report.
    pub fn note(&mut self, line: String) {
        println!("note: {line}");
        self.notes.push(line);
    }

    fn report(&self, bytes: u64, check: Check) -> UnitReport {
        let mut summary = format!(
            "{} new, {} changed, {} removed files; {} cloned, {} fetched; {} API requests, {} not 304",
            self.created,
            self.changed,
            self.removed,
            self.cloned,
            self.fetched,
            api::REQUESTS.load(std::sync::atomic::Ordering::Relaxed),
            api::NOT_304.load(std::sync::atomic::Ordering::Relaxed),
        );
        if check == Check::Scrub {
            let _ = write!(summary, "; scrub repaired {}", self.repaired);
        }
        for n in &self.notes {
            summary.push_str("; ");
            summary.push_str(n);
        }
        UnitReport {
            bytes,
            changed: self.created + self.changed + self.removed + self.cloned > 0,
            scrubbed: check == Check::Scrub,
            repaired: self.repaired,
            summary,
        }
    }
}

/// The token, read from the config (inline or file).
pub fn token(config: &Config) -> Result<String, GithubError> {
    let t = config
        .settings
        .github
        .token
        .as_ref()
        .ok_or(GithubError::NoToken)?;
    t.reveal().map_err(GithubError::Token)
}

/// The API client of the config.
pub fn api(config: &Config) -> Result<Api, GithubError> {
    Ok(Api::new(
        &config.settings.github.api_url,
        Some(token(config)?),
    ))
}

/// The configured organization `org`.
pub fn find_org<'c>(config: &'c Config, org: &str) -> Result<&'c GithubOrg, GithubError> {
    config
        .github
        .iter()
        .find(|o| o.org == org)
        .ok_or_else(|| GithubError::UnknownOrg {
            org: org.to_owned(),
        })
}

/// Back up `github/<org>/<repo>`, or `github/<org>/@organization` when
/// `repo` is `None`, under `root`.
pub fn backup(
    config: &Config,
    root: &std::path::Path,
    org: &str,
    repo: Option<&str>,
    check: Check,
) -> Result<UnitReport, GithubError> {
    let o = find_org(config, org)?;
    let api = api(config)?;
    let broot = BackupRoot::new(root);
    let mut tally = Tally::default();
    let dir = match repo {
        Some(r) => root.join("github").join(org).join(r),
        None => root.join("github").join(org).join("@organization"),
    };
    let name = repo.unwrap_or("@organization");
    let mut cache = CacheFile::open(&broot.state_dir(), org, name);
    match repo {
        Some(r) => {
            let git = Git::new(&config.settings.github.git_path, Some(token(config)?));
            let mut job = repo::RepoJob {
                api: &api,
                git: &git,
                org,
                repo: r,
                dir: dir.clone(),
                check,
                lfs: o.lfs,
                cache: &mut cache,
                tally: &mut tally,
            };
            repo::backup(&mut job)?;
        }
        None => org::backup(&api, org, &dir, check, &mut cache, &mut tally)?,
    }
    let (remaining, _) = api.quota();
    if let Some(r) = remaining {
        println!("{r} requests left in quota");
    }
    let report = tally.report(layout::tree_bytes(&dir), check);
    println!("{}", report.summary);
    Ok(report)
}

//! `strata github auth|backup|ls|restore|forget`, and the github source's
//! place in the registry.

use super::cache::CacheFile;
use super::org::{self, RepoListing};
use super::{GithubError, api, backup, find_org};
use crate::backup_root::{BackupRoot, PidLock};
use crate::config::{Config, UnitPath};
use crate::error::{ExitCode, UsageError};
use crate::sources::{Check, Cx, Source, SourceError, Unit, UnitsError, backup_unit};
use clap::{FromArgMatches, Subcommand};
use std::path::{Path, PathBuf};

/// The github source.
pub struct Github;

/// The registry's instance.
pub static GITHUB: Github = Github;

#[derive(Debug, Subcommand)]
enum GithubCmd {
    /// Check a personal access token (pasted, or from GitHub's device flow) and store it for the config
    Auth {
        /// Where to store the token [default: ~/.config/strata/github-token]
        #[arg(long, value_name = "PATH")]
        token_file: Option<PathBuf>,
        /// Use GitHub's device flow (needs settings.github-client-id)
        #[arg(long)]
        device: bool,
    },
    /// Back up an organization's metadata (no REPO) or one of its repositories
    Backup {
        /// Scrub: refetch everything without ETags, compare, repair; git fsck
        #[arg(short = 'c', long = "scrub")]
        scrub: bool,
        org: String,
        repo: Option<String>,
    },
    /// List the repositories of an organization
    Ls { org: String },
    /// Restore a stored repository (UNIT-DIR) into the empty GitHub repository OWNER/REPO
    Restore {
        /// The API to restore into [default: settings.github-api-url]
        #[arg(long, value_name = "URL")]
        api_url: Option<String>,
        #[arg(value_name = "UNIT-DIR")]
        unit_dir: PathBuf,
        #[arg(value_name = "OWNER/REPO")]
        target: String,
    },
    /// Remove a stored repository (one gone upstream) from the backup root
    Forget {
        /// Forget it even though the last listing still has it
        #[arg(short = 'f', long)]
        force: bool,
        org: String,
        repo: String,
    },
}

fn unit_path(org: &str, repo: Option<&str>) -> Result<UnitPath, UsageError> {
    UnitPath::from_parts(&["github", org, repo.unwrap_or("@organization")])
        .map_err(|e| UsageError(format!("github {org} {}: {e}", repo.unwrap_or(""))))
}

/// List an organization's repositories for a run (with the ETag cache when
/// the root exists) and record the listing.
fn list_for_run(config: &Config, org: &str) -> Result<Vec<String>, GithubError> {
    let api = api(config)?;
    let root = &config.settings.root;
    if !root.is_dir() {
        return super::org::list_repos(&api, org, &mut CacheFile::none());
    }
    let state = BackupRoot::new(root).state_dir();
    let mut cache = CacheFile::open(&state, org, "@repos");
    let names = super::org::list_repos(&api, org, &mut cache)?;
    let old = org::load_listing(&state, org);
    let stored = org::stored_repos(root, org);
    let next = org::next_listing(
        old.as_ref(),
        names.clone(),
        &stored,
        chrono::Utc::now().timestamp(),
    );
    let path = org::listing_path(&state, org);
    let bytes = serde_json::to_vec_pretty(&next).unwrap_or_default();
    crate::backup_root::write_atomic(&path, &bytes).map_err(|source| GithubError::Io {
        path: path.clone(),
        source,
    })?;
    Ok(names)
}

fn stored(config: &Config, root: &Path) -> Vec<UnitPath> {
    let mut out = Vec::new();
    for o in &config.github {
        let dir = root.join("github").join(&o.org);
        if dir.join("@organization").is_dir()
            && let Ok(u) = unit_path(&o.org, None)
        {
            out.push(u);
        }
        for r in org::stored_repos(root, &o.org) {
            if let Ok(u) = unit_path(&o.org, Some(&r)) {
                out.push(u);
            }
        }
    }
    out
}

impl Source for Github {
    fn name(&self) -> &'static str {
        "github"
    }

    fn about(&self) -> &'static str {
        "The github source: organizations' repositories, wikis, issues, pull requests, releases"
    }

    fn workers(&self, config: &Config) -> u32 {
        config.settings.github.workers
    }

    fn units(&self, config: &Config) -> Vec<Result<Unit, UnitsError>> {
        let p = config.settings.github.scrub_probability;
        let mut out = Vec::new();
        for o in &config.github {
            if o.organization_metadata
                && let Ok(u) = unit_path(&o.org, None)
            {
                out.push(Ok(Unit::new(&GITHUB, u, &[&o.org], p)));
            }
            match list_for_run(config, &o.org) {
                Ok(names) => {
                    for n in names.iter().filter(|n| !o.excludes(n)) {
                        match unit_path(&o.org, Some(n)) {
                            Ok(u) => out.push(Ok(Unit::new(&GITHUB, u, &[&o.org, n], p))),
                            Err(e) => out.push(Err(UnitsError {
                                prefix: format!("github/{}/{n}", o.org),
                                cause: e.into(),
                            })),
                        }
                    }
                }
                Err(e) => out.push(Err(UnitsError {
                    prefix: o.unit.to_string(),
                    cause: SourceError::failed(e),
                })),
            }
        }
        out
    }

    fn stored_units(&self, config: &Config, root: &Path) -> Vec<UnitPath> {
        stored(config, root)
    }

    fn configured_units(&self, config: &Config) -> Vec<UnitPath> {
        config.github.iter().map(|o| o.unit.clone()).collect()
    }

    fn status_units(&self, config: &Config, root: &Path) -> Vec<UnitPath> {
        let mut out = stored(config, root);
        let state = BackupRoot::new(root).state_dir();
        for o in &config.github {
            if o.organization_metadata
                && let Ok(u) = unit_path(&o.org, None)
                && !out.contains(&u)
            {
                out.push(u);
            }
            let Some(l) = org::load_listing(&state, &o.org) else {
                continue;
            };
            for r in l.repos.iter().filter(|r| !o.excludes(r)) {
                if let Ok(u) = unit_path(&o.org, Some(r))
                    && !out.contains(&u)
                {
                    out.push(u);
                }
            }
        }
        out
    }

    fn status_note(&self, config: &Config, root: &Path, unit: &UnitPath) -> Option<String> {
        let mut parts = unit.as_str().splitn(3, '/');
        let (_, o, repo) = (parts.next()?, parts.next()?, parts.next()?);
        if repo == "@organization" {
            return None;
        }
        let org = config.github.iter().find(|x| x.org == o)?;
        if org.excludes(repo) {
            return Some("excluded by config (github forget removes it)".to_owned());
        }
        let l: RepoListing = org::load_listing(&BackupRoot::new(root).state_dir(), o)?;
        let since = l.gone.get(repo)?;
        let day = chrono::DateTime::from_timestamp(*since, 0)
            .map_or_else(|| since.to_string(), |t| t.format("%Y-%m-%d").to_string());
        Some(format!(
            "GONE upstream since {day} (kept; github forget removes it)"
        ))
    }

    fn command(&self) -> clap::Command {
        GithubCmd::augment_subcommands(clap::Command::new(self.name()))
    }

    fn run(&self, cx: &Cx, m: &clap::ArgMatches) -> Result<ExitCode, SourceError> {
        match GithubCmd::from_arg_matches(m).map_err(|e| UsageError::from_clap(&e))? {
            GithubCmd::Backup { scrub, org, repo } => {
                let unit = unit_path(&org, repo.as_deref())?;
                let config = cx.config()?;
                find_org(config, &org).map_err(|e| UsageError(e.to_string()))?;
                if config.settings.github.token.is_none() {
                    return Err(UsageError(GithubError::NoToken.to_string()).into());
                }
                let check = if scrub { Check::Scrub } else { Check::Normal };
                backup_unit(cx, &unit, |root| {
                    Ok(backup(config, root, &org, repo.as_deref(), check)?)
                })
            }
            GithubCmd::Ls { org } => {
                let config = cx.config()?;
                let api = api(config).map_err(SourceError::failed)?;
                let names = super::org::list_repos(&api, &org, &mut CacheFile::none())
                    .map_err(SourceError::failed)?;
                for n in names {
                    println!("{n}");
                }
                Ok(ExitCode::Ok)
            }
            GithubCmd::Forget { force, org, repo } => forget(cx, &org, &repo, force),
            GithubCmd::Restore {
                api_url,
                unit_dir,
                target,
            } => {
                let config = cx.config()?;
                let (owner, name) = target
                    .split_once('/')
                    .filter(|(o, r)| !o.is_empty() && !r.is_empty() && !r.contains('/'))
                    .ok_or_else(|| UsageError(format!("`{target}` is not OWNER/REPO")))?;
                let url = api_url.unwrap_or_else(|| config.settings.github.api_url.clone());
                let token = super::token(config).map_err(SourceError::failed)?;
                let git =
                    super::git::Git::new(&config.settings.github.git_path, Some(token.clone()));
                let api = super::api::Api::new(&url, Some(token));
                let r =
                    super::restore::restore(&api, &git, &unit_dir, owner, name).map_err(|e| {
                        SourceError::Restore {
                            what: format!("{} to {target}", unit_dir.display()),
                            cause: Box::new(e),
                        }
                    })?;
                println!("{}", r.summary());
                for l in r.not_restored() {
                    eprintln!("not restored: {l}");
                }
                Ok(ExitCode::Ok)
            }
            GithubCmd::Auth { token_file, device } => {
                let config = cx.config()?;
                super::auth::auth(config, &cx.home, token_file, device).map_err(SourceError::failed)
            }
        }
    }
}

fn forget(cx: &Cx, org: &str, repo: &str, force: bool) -> Result<ExitCode, SourceError> {
    cx.refuse_root("github forget")?;
    let unit = unit_path(org, Some(repo))?;
    let root = BackupRoot::new(cx.root()?);
    let state = root.state_dir();
    let listed = org::load_listing(&state, org)
        .is_some_and(|l| l.repos.iter().any(|r| r == repo) && !l.gone.contains_key(repo));
    if listed && !force {
        return Err(UsageError(format!(
            "{unit} is still listed upstream (the last run's listing has it), so the next run would back it up again; exclude it in the config, or pass --force"
        ))
        .into());
    }
    let dir = root.unit_dir(&unit);
    if !dir.exists() {
        return Err(UsageError(format!(
            "{unit} is not stored under {}",
            root.path().display()
        ))
        .into());
    }
    let lock = PidLock::unit(&state, &unit)?;
    let io = |p: &Path, source| {
        SourceError::failed(GithubError::Io {
            path: p.to_owned(),
            source,
        })
    };
    std::fs::remove_dir_all(&dir).map_err(|e| io(&dir, e))?;
    for p in [
        state.join("github").join(org).join(format!("{repo}.json")),
        state.join("state").join(format!("{}.json", unit.as_str())),
    ] {
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&p, e)),
        }
    }
    let _ = lock.close();
    if !cx.quiet {
        println!("forgot {unit}: removed {}", dir.display());
    }
    Ok(ExitCode::Ok)
}

//! The github source's configuration: its `github-*` settings and the
//! `github:` section, one unit `github/<org>` per organization (the
//! repositories under it are discovered when a run starts).

use super::entries::{Draft, Units, named_units};
use super::fields::{Ctx, get_bool, get_count, get_prob, get_secret, get_string, get_string_or};
use super::node::Node;
use super::reader::{Fields, KeyPath, Reader};
use super::secret::Secret;
use crate::names::UnitPath;
use serde::Serialize;

/// GitHub's public API, the default of `github-api-url`.
pub const DEFAULT_API_URL: &str = "https://api.github.com";

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct GithubSettings {
    pub token: Option<Secret>,
    pub scrub_probability: f64,
    pub git_path: String,
    pub workers: u32,
    /// The REST API's base URL: `https://api.github.com`, or
    /// `https://HOST/api/v3` for GitHub Enterprise Server.
    pub api_url: String,
    /// An OAuth app's client id, which enables the device flow of
    /// `github auth`.
    pub client_id: Option<String>,
}

/// Whether a repository's git LFS objects are fetched into its mirror.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LfsMode {
    /// When git-lfs is installed and the repository uses LFS.
    Auto,
    /// Always (git-lfs must be installed).
    Always,
    /// Never.
    Never,
}

impl LfsMode {
    /// The config spelling.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            LfsMode::Auto => "auto",
            LfsMode::Always => "true",
            LfsMode::Never => "false",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct GithubOrg {
    pub org: String,
    pub unit: UnitPath,
    pub organization_metadata: bool,
    /// Repository names (globs) not backed up.
    #[serde(serialize_with = "patterns")]
    pub exclude: Vec<glob::Pattern>,
    pub lfs: LfsMode,
}

fn patterns<S: serde::Serializer>(p: &[glob::Pattern], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(p.iter().map(glob::Pattern::as_str))
}

impl GithubOrg {
    /// Whether `repo` is excluded by this organization's `exclude` globs.
    #[must_use]
    pub fn excludes(&self, repo: &str) -> bool {
        self.exclude.iter().any(|p| p.matches(repo))
    }
}

/// The `github-*` keys of `settings:`.
pub(super) fn settings(r: &mut Reader, ctx: &Ctx, f: &mut Fields) -> Option<GithubSettings> {
    let token = get_secret(r, ctx, f, "github-token", "github-token-file");
    let scrub_probability = get_prob(r, f, "github-scrub-probability", 0.0166);
    let git_path = get_string_or(r, f, "github-git-path", "git");
    let workers = get_count(r, f, "github-workers", 1, 1);
    let api_url = api_url(r, f);
    let client_id = get_string(r, f, "github-client-id");
    Some(GithubSettings {
        token: token?,
        scrub_probability: scrub_probability?,
        git_path: git_path?,
        workers: workers?,
        api_url: api_url?,
        client_id: client_id?,
    })
}

fn api_url(r: &mut Reader, f: &mut Fields) -> Option<String> {
    let Some((n, p)) = f.get("github-api-url") else {
        return Some(DEFAULT_API_URL.to_owned());
    };
    let s = r.nonempty(n, &p)?;
    if !(s.starts_with("https://") || s.starts_with("http://")) {
        r.error(
            n.line,
            &p,
            format!("`{s}` is not an http(s) URL (GitHub Enterprise Server: https://HOST/api/v3)"),
        );
        return None;
    }
    Some(s.trim_end_matches('/').to_owned())
}

/// The `github:` section: `org: {organization-metadata, exclude, lfs}`.
pub(super) fn orgs(r: &mut Reader, node: &Node, path: &KeyPath) -> Units<GithubOrg> {
    named_units(r, node, path, "github", |r, e, f| {
        let meta = get_bool(r, f, "organization-metadata", true);
        let exclude = exclude(r, f);
        let lfs = match f.get("lfs") {
            Some((n, p)) => r.choice(
                n,
                &p,
                &[
                    ("auto", LfsMode::Auto),
                    ("true", LfsMode::Always),
                    ("false", LfsMode::Never),
                ],
            ),
            None => Some(LfsMode::Auto),
        };
        let org = e.name.to_owned();
        Some(Draft {
            name: org.clone(),
            blame: e.path.clone(),
            build: move |unit| {
                Some(GithubOrg {
                    org,
                    unit,
                    organization_metadata: meta?,
                    exclude: exclude?,
                    lfs: lfs?,
                })
            },
        })
    })
}

fn exclude(r: &mut Reader, f: &mut Fields) -> Option<Vec<glob::Pattern>> {
    let Some((n, p)) = f.get("exclude") else {
        return Some(Vec::new());
    };
    let globs = r.strings(n, &p)?;
    let mut out = Vec::with_capacity(globs.len());
    let mut ok = true;
    for (i, g) in globs.iter().enumerate() {
        match glob::Pattern::new(g) {
            Ok(pat) => out.push(pat),
            Err(e) => {
                r.error(n.line, &p.index(i), format!("`{g}` is not a glob: {e}"));
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

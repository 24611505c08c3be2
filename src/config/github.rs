//! The github source's configuration: its `github-*` settings and the
//! `github:` section, one unit `github/<org>` per organization (the
//! repositories under it are discovered when a run starts).

use super::entries::{Draft, Units, named_units};
use super::fields::{Ctx, get_bool, get_count, get_prob, get_secret, get_string_or};
use super::node::Node;
use super::reader::{Fields, KeyPath, Reader};
use super::secret::Secret;
use crate::names::UnitPath;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct GithubSettings {
    pub token: Option<Secret>,
    pub scrub_probability: f64,
    pub git_path: String,
    pub workers: u32,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct GithubOrg {
    pub org: String,
    pub unit: UnitPath,
    pub organization_metadata: bool,
}

/// The `github-*` keys of `settings:`.
pub(super) fn settings(r: &mut Reader, ctx: &Ctx, f: &mut Fields) -> Option<GithubSettings> {
    let token = get_secret(r, ctx, f, "github-token", "github-token-file");
    let scrub_probability = get_prob(r, f, "github-scrub-probability", 0.0166);
    let git_path = get_string_or(r, f, "github-git-path", "git");
    let workers = get_count(r, f, "github-workers", 1, 1);
    Some(GithubSettings {
        token: token?,
        scrub_probability: scrub_probability?,
        git_path: git_path?,
        workers: workers?,
    })
}

/// The `github:` section: `org: {organization-metadata}`.
pub(super) fn orgs(r: &mut Reader, node: &Node, path: &KeyPath) -> Units<GithubOrg> {
    named_units(r, node, path, "github", |r, e, f| {
        let meta = get_bool(r, f, "organization-metadata", true);
        let org = e.name.to_owned();
        Some(Draft {
            name: org.clone(),
            blame: e.path.clone(),
            build: move |unit| {
                Some(GithubOrg {
                    org,
                    unit,
                    organization_metadata: meta?,
                })
            },
        })
    })
}

//! An organization: the list of its repositories (the units a run backs
//! up, recorded so that `status` can tell which stored ones are gone
//! upstream without asking the network), and the unit
//! `github/<org>/@organization`: `teams.json` as Deltaic wrote it
//! (`{team name: {permission, members, repos}}`) and strata's
//! `members.json` (`{login: "admin" | "member"}`).

use super::api::{Api, Conditional, Item};
use super::cache::CacheFile;
use super::layout::{field, write_json};
use super::{GithubError, Tally};
use crate::sources::Check;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The listing of an organization's repositories as last made by a run.
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
pub struct RepoListing {
    /// Unix time of the listing.
    pub listed_at: i64,
    /// Every repository the API listed (excluded ones too).
    pub repos: Vec<String>,
    /// Stored repositories missing from the listings, with the time of the
    /// first listing that missed them.
    #[serde(default)]
    pub gone: BTreeMap<String, i64>,
}

/// `<state>/github/<org>/@listing.json` (`@`: no repository name starts
/// with it, so it cannot meet a unit's cache file).
#[must_use]
pub fn listing_path(state_dir: &Path, org: &str) -> PathBuf {
    state_dir.join("github").join(org).join("@listing.json")
}

/// The recorded listing, if any.
#[must_use]
pub fn load_listing(state_dir: &Path, org: &str) -> Option<RepoListing> {
    std::fs::read(listing_path(state_dir, org))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
}

/// The repositories stored under `<root>/github/<org>` (directories other
/// than `@organization` that hold what a repository unit writes).
#[must_use]
pub fn stored_repos(root: &Path, org: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root.join("github").join(org))
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n != "@organization" && !n.starts_with('.'))
        .filter(|n| {
            let d = root.join("github").join(org).join(n);
            d.join("info.json").exists() || d.join("repo").exists()
        })
        .collect();
    v.sort_by_key(|n| n.to_lowercase());
    v
}

/// The new record of a listing: the names, and which stored repositories
/// are missing since when (a pure function of the old record).
#[must_use]
pub fn next_listing(
    old: Option<&RepoListing>,
    listed: Vec<String>,
    stored: &[String],
    now: i64,
) -> RepoListing {
    let mut gone = BTreeMap::new();
    for s in stored {
        if listed.iter().any(|l| l == s) {
            continue;
        }
        let since = old.and_then(|o| o.gone.get(s).copied()).unwrap_or(now);
        gone.insert(s.clone(), since);
    }
    RepoListing {
        listed_at: now,
        repos: listed,
        gone,
    }
}

fn project_name(v: &Value) -> Value {
    json!({"name": field(v, "name")})
}

/// List the organization's repositories (conditionally, with `cache`),
/// sorted by lower-cased name as Deltaic.
pub fn list_repos(api: &Api, org: &str, cache: &mut CacheFile) -> Result<Vec<String>, GithubError> {
    let url = api.url(&format!("/orgs/{org}/repos"));
    let l = api.list(
        &url,
        cache.get("repos"),
        Conditional::UseEtags,
        &project_name,
    )?;
    let mut names: Vec<String> = l
        .items
        .iter()
        .filter_map(|i| {
            let (Item::Fresh(v) | Item::Kept(v)) = i;
            v.get("name").and_then(Value::as_str).map(str::to_owned)
        })
        .collect();
    names.sort_by_key(|n| n.to_lowercase());
    names.dedup();
    let _ = cache.put("repos", l.record);
    Ok(names)
}

fn cond(check: Check) -> Conditional {
    match check {
        Check::Normal => Conditional::UseEtags,
        Check::Scrub => Conditional::Refetch,
    }
}

/// `list` of one named listing of the org unit, saved in the cache; the
/// items' projections.
fn listed(
    api: &Api,
    cache: &mut CacheFile,
    check: Check,
    name: &str,
    url: &str,
    project: &dyn Fn(&Value) -> Value,
) -> Result<Vec<Value>, GithubError> {
    let l = api.list(url, cache.get(name), cond(check), project)?;
    let items = l
        .items
        .iter()
        .map(|i| match i {
            Item::Fresh(v) => project(v),
            Item::Kept(v) => v.clone(),
        })
        .collect();
    cache
        .put(name, l.record)
        .map_err(|source| GithubError::Io {
            path: PathBuf::from(name),
            source,
        })?;
    Ok(items)
}

/// Back up `github/<org>/@organization` into `dir`.
pub fn backup(
    api: &Api,
    org: &str,
    dir: &Path,
    check: Check,
    cache: &mut CacheFile,
    tally: &mut Tally,
) -> Result<(), GithubError> {
    let io = |source| GithubError::Io {
        path: dir.to_owned(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let project_team = |t: &Value| {
        json!({
            "name": field(t, "name"),
            "slug": field(t, "slug"),
            "permission": field(t, "permission"),
        })
    };
    let login = |u: &Value| field(u, "login");
    let teams = listed(
        api,
        cache,
        check,
        "teams",
        &api.url(&format!("/orgs/{org}/teams")),
        &project_team,
    )?;
    let mut out = Map::new();
    for t in &teams {
        let Some(slug) = t["slug"].as_str() else {
            continue;
        };
        let members = listed(
            api,
            cache,
            check,
            &format!("team/{slug}/members"),
            &api.url(&format!("/orgs/{org}/teams/{slug}/members")),
            &login,
        )?;
        let repos = listed(
            api,
            cache,
            check,
            &format!("team/{slug}/repos"),
            &api.url(&format!("/orgs/{org}/teams/{slug}/repos")),
            &project_name,
        )?;
        let name = t["name"].as_str().unwrap_or(slug).to_owned();
        out.insert(
            name,
            json!({
                "permission": t["permission"],
                "members": members,
                "repos": repos.iter().map(|r| r["name"].clone()).collect::<Vec<_>>(),
            }),
        );
    }
    let p = dir.join("teams.json");
    tally.count(
        check,
        write_json(&p, &Value::Object(out), None).map_err(io)?,
    );

    let mut members = Map::new();
    for (role, label) in [("member", "member"), ("admin", "admin")] {
        for m in listed(
            api,
            cache,
            check,
            &format!("members/{role}"),
            &api.url(&format!("/orgs/{org}/members?role={role}")),
            &login,
        )? {
            if let Some(l) = m.as_str() {
                members.insert(l.to_owned(), Value::String(label.to_owned()));
            }
        }
    }
    let p = dir.join("members.json");
    tally.count(
        check,
        write_json(&p, &Value::Object(members), None).map_err(io)?,
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gone_repositories_keep_the_time_they_were_first_missed() {
        let stored = vec!["a".to_owned(), "b".to_owned(), "c".to_owned()];
        let first = next_listing(None, vec!["a".into(), "b".into()], &stored, 100);
        assert_eq!(first.gone, BTreeMap::from([("c".to_owned(), 100)]));
        let second = next_listing(Some(&first), vec!["a".into()], &stored, 200);
        assert_eq!(
            second.gone,
            BTreeMap::from([("b".to_owned(), 200), ("c".to_owned(), 100)])
        );
        let back = next_listing(
            Some(&second),
            vec!["a".into(), "b".into(), "c".into()],
            &stored,
            300,
        );
        assert!(back.gone.is_empty());
        assert_eq!(back.listed_at, 300);
    }
}

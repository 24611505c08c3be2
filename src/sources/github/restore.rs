//! `github restore UNIT-DIR OWNER/REPO`: put a stored repository back into
//! an empty GitHub repository.
//!
//! In order: the mirror's refs (all but `refs/pull/*`, which GitHub
//! refuses) and LFS objects by push, the wiki by push, then labels,
//! milestones, issues with their comments (each body opened by a quote
//! naming the original author and time), closed states, and releases with
//! their assets. Writes keep within GitHub's content-creation limit (the
//! API client's governor). What cannot be restored is listed at the end:
//! authors and timestamps (everything is created by the token's user, now),
//! events, reviews and review comments, pull requests (recreated as issues
//! so that numbers line up), reactions.

use super::api::{Api, ApiError};
use super::git::Git;
use super::layout::ATTR_CONTENT_TYPE;
use crate::exec::ExecError;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Git(#[from] ExecError),
    #[error("{} does not look like a stored github repository (no info.json or repo/)", .0.display())]
    NotAUnit(PathBuf),
    #[error("{url} is not empty: restore pushes into an empty repository only")]
    NotEmpty { url: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not the JSON expected: {why}", path.display())]
    Json { path: PathBuf, why: String },
}

/// What a restore did.
#[derive(Debug, Default)]
pub struct Restored {
    pub refs: usize,
    pub lfs: bool,
    pub wiki: bool,
    pub labels: usize,
    pub milestones: usize,
    pub issues: usize,
    pub comments: usize,
    pub releases: usize,
    pub assets: usize,
    /// Things that could not be put back, one line each.
    pub skipped: Vec<String>,
}

impl Restored {
    #[must_use]
    pub fn summary(&self) -> String {
        format!(
            "restored {} refs{}{}, {} labels, {} milestones, {} issues with {} comments, {} releases with {} assets",
            self.refs,
            if self.lfs { " with LFS objects" } else { "" },
            if self.wiki { ", the wiki" } else { "" },
            self.labels,
            self.milestones,
            self.issues,
            self.comments,
            self.releases,
            self.assets
        )
    }

    /// What restore cannot bring back, and what failed on the way.
    #[must_use]
    pub fn not_restored(&self) -> Vec<String> {
        let mut v = vec![
            "original authors and timestamps (everything is created by the token's user, now; the originals are quoted at the top of each body)".to_owned(),
            "issue events, pull request reviews and review comments (kept in issues/*.json and pulls/*.json)".to_owned(),
            "pull requests (recreated as issues, so that numbers line up; refs/pull/* are not pushed: GitHub refuses them)".to_owned(),
            "teams, members, permissions, webhooks and repository settings".to_owned(),
        ];
        v.extend(self.skipped.iter().cloned());
        v
    }
}

fn read_json(path: &Path) -> Result<Value, RestoreError> {
    let bytes = std::fs::read(path).map_err(|source| RestoreError::Io {
        path: path.to_owned(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|e| RestoreError::Json {
        path: path.to_owned(),
        why: e.to_string(),
    })
}

/// `<dir>/<n>.json` files by number.
fn numbered(dir: &Path) -> Result<BTreeMap<u64, Value>, RestoreError> {
    let mut out = BTreeMap::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Ok(out);
    };
    for e in rd.filter_map(Result::ok) {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(n) = name.strip_suffix(".json").and_then(|s| s.parse().ok()) {
            out.insert(n, read_json(&e.path())?);
        }
    }
    Ok(out)
}

/// Percent-encode a path segment or query value.
#[must_use]
pub fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn quote_header(who: &Value, when: &Value, what: &str) -> String {
    format!(
        "> {what} by @{} on {} (restored by strata)\n\n",
        who.as_str().unwrap_or("ghost"),
        when.as_str().unwrap_or("an unknown date")
    )
}

/// Restore `unit_dir` into `owner/name`, which must exist and be empty.
pub fn restore(
    api: &Api,
    git: &Git,
    unit_dir: &Path,
    owner: &str,
    name: &str,
) -> Result<Restored, RestoreError> {
    if !unit_dir.join("info.json").is_file() && !unit_dir.join("repo").is_dir() {
        return Err(RestoreError::NotAUnit(unit_dir.to_owned()));
    }
    let mut r = Restored::default();
    let repo_url = api.url(&format!("/repos/{owner}/{name}"));
    let target = api.get_json(&repo_url)?;
    let clone_url = target["clone_url"].as_str().unwrap_or_default().to_owned();
    let base = target["url"]
        .as_str()
        .map_or(repo_url.clone(), str::to_owned);

    let mirror = unit_dir.join("repo");
    if mirror.is_dir() {
        let refs = git.pushable_refs(&mirror)?;
        if !refs.is_empty() {
            if !git.remote_is_empty(&clone_url)? {
                return Err(RestoreError::NotEmpty { url: clone_url });
            }
            if mirror.join("lfs/objects").is_dir() && git.has_lfs() {
                git.lfs_push(&mirror, &clone_url)?;
                r.lfs = true;
            }
            git.push_refs(&mirror, &clone_url, &refs)?;
            r.refs = refs.len();
        }
    }
    let wiki = unit_dir.join("wiki");
    if wiki.is_dir() {
        let refs = git.pushable_refs(&wiki)?;
        let wiki_url = match clone_url.strip_suffix(".git") {
            Some(b) => format!("{b}.wiki.git"),
            None => format!("{clone_url}.wiki.git"),
        };
        if !refs.is_empty() {
            match git.push_refs(&wiki, &wiki_url, &refs) {
                Ok(()) => r.wiki = true,
                Err(e) => r.skipped.push(format!(
                    "the wiki: pushing to {wiki_url} failed (GitHub creates a wiki's repository with its first page: create one, then push {} there by hand): {e}",
                    wiki.display()
                )),
            }
        }
    }

    // Labels: labels.json, or the names the issues use.
    let mut labels: Vec<Value> = match read_json(&unit_dir.join("labels.json")) {
        Ok(Value::Array(a)) => a,
        _ => Vec::new(),
    };
    let issues = numbered(&unit_dir.join("issues"))?;
    for i in issues.values() {
        for l in i["labels"].as_array().into_iter().flatten() {
            if !labels.iter().any(|x| x["name"] == *l) {
                labels.push(json!({"name": l, "color": "ededed", "description": null}));
            }
        }
    }
    for l in &labels {
        let Some(lname) = l["name"].as_str() else {
            continue;
        };
        let mut body = json!({"name": lname, "color": l["color"].as_str().unwrap_or("ededed")});
        if let Some(d) = l["description"].as_str() {
            body["description"] = json!(d);
        }
        match api.write_json("POST", &format!("{base}/labels"), &body) {
            Ok(_) => {}
            // why: a new repository comes with default labels; update those
            Err(e) if e.status() == Some(422) => {
                api.write_json("PATCH", &format!("{base}/labels/{}", encode(lname)), &body)?;
            }
            Err(e) => return Err(e.into()),
        }
        r.labels += 1;
    }

    // Milestones, old number -> new number.
    let mut milestone_map = BTreeMap::new();
    for (n, m) in numbered(&unit_dir.join("milestones"))? {
        let mut body = json!({"title": m["title"], "state": m["state"].as_str().unwrap_or("open")});
        if let Some(d) = m["description"].as_str() {
            body["description"] = json!(d);
        }
        if let Some(d) = m["due_on"].as_str() {
            body["due_on"] = json!(d.replace("+00:00", "Z"));
        }
        let made = api.write_json("POST", &format!("{base}/milestones"), &body)?;
        if let Some(new) = made["number"].as_u64() {
            milestone_map.insert(n, new);
        }
        r.milestones += 1;
    }

    // Issues (pull requests too, as issues), in number order.
    for (n, i) in &issues {
        let pull = read_json(&unit_dir.join("pulls").join(format!("{n}.json"))).ok();
        let mut header = quote_header(&i["user"], &i["created_at"], &format!("Originally #{n}"));
        if let Some(p) = &pull {
            let _ = write!(
                header,
                "> (a pull request from `{}` at {} into `{}`)\n\n",
                p["head"]["ref"].as_str().unwrap_or("?"),
                p["head"]["sha"].as_str().unwrap_or("?"),
                p["base"]["ref"].as_str().unwrap_or("?")
            );
        }
        let body = format!("{header}{}", i["body"].as_str().unwrap_or(""));
        let mut req = json!({"title": i["title"], "body": body});
        if let Some(ls) = i["labels"].as_array()
            && !ls.is_empty()
        {
            req["labels"] = json!(ls);
        }
        if let Some(m) = i["milestone"].as_u64().and_then(|m| milestone_map.get(&m)) {
            req["milestone"] = json!(m);
        }
        let made = api.write_json("POST", &format!("{base}/issues"), &req)?;
        let new = made["number"].as_u64().unwrap_or(*n);
        if new != *n {
            r.skipped.push(format!(
                "issue #{n} became #{new} (the repository was not empty of issues)"
            ));
        }
        r.issues += 1;
        for c in i["comments"].as_array().into_iter().flatten() {
            let body = format!(
                "{}{}",
                quote_header(&c["user"], &c["created_at"], "Comment"),
                c["body"].as_str().unwrap_or("")
            );
            api.write_json(
                "POST",
                &format!("{base}/issues/{new}/comments"),
                &json!({"body": body}),
            )?;
            r.comments += 1;
        }
        if i["state"].as_str() == Some("closed") {
            api.write_json(
                "PATCH",
                &format!("{base}/issues/{new}"),
                &json!({"state": "closed"}),
            )?;
        }
    }

    // Releases with their assets.
    let rel_dir = unit_dir.join("releases");
    let mut rels: Vec<PathBuf> = std::fs::read_dir(&rel_dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("info.json").is_file())
        .collect();
    rels.sort();
    for rd in rels {
        let info = read_json(&rd.join("info.json"))?;
        let tag = info["tag_name"].as_str().map_or_else(
            || {
                rd.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            },
            str::to_owned,
        );
        let mut body = json!({
            "tag_name": tag,
            "draft": info["draft"].as_bool().unwrap_or(false),
        });
        if let Some(n) = info["name"].as_str() {
            body["name"] = json!(n);
        }
        if let Some(d) = info["description"].as_str() {
            body["body"] = json!(d);
        }
        let made = api.write_json("POST", &format!("{base}/releases"), &body)?;
        r.releases += 1;
        let upload = made["upload_url"]
            .as_str()
            .map(|u| u.split('{').next().unwrap_or(u).to_owned());
        let assets = rd.join("assets");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&assets)
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.is_file()
                    && !p
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with(".strata-tmp-"))
            })
            .collect();
        files.sort();
        for f in files {
            let Some(up) = &upload else {
                r.skipped
                    .push(format!("{}: the release has no upload_url", f.display()));
                continue;
            };
            let fname = f
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let ct = xattr::get(&f, ATTR_CONTENT_TYPE)
                .ok()
                .flatten()
                .map_or_else(
                    || "application/octet-stream".to_owned(),
                    |v| String::from_utf8_lossy(&v).into_owned(),
                );
            api.upload(&format!("{up}?name={}", encode(&fname)), &ct, &f)?;
            r.assets += 1;
        }
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_keeps_unreserved_bytes_only() {
        assert_eq!(encode("a b/c~d.e"), "a%20b%2Fc~d.e");
        assert_eq!(encode("é"), "%C3%A9");
    }
}

//! One repository unit, `github/<org>/<repo>`: `info.json`, the mirror
//! `repo/` (and LFS objects), `wiki/`, `issues/`, `milestones/`,
//! `comments/`, `releases/` as Deltaic wrote them, and strata's additions
//! `pulls/` and `labels.json`.
//!
//! Every listing is conditional page by page; an item of a page that
//! answered 304 is known unchanged and costs nothing. An issue or pull
//! request whose file's mtime equals its `updated_at` is not fetched again
//! (as Deltaic). A 403/404/410 on an optional listing (issues disabled, no
//! access) is a note in the report, not a failure; a failed clone or fetch
//! of `repo/` fails the unit after the metadata was saved.

use super::api::{Api, ApiError, Conditional, Item, Listing, Unavailable};
use super::cache::CacheFile;
use super::git::{Git, GitError, Mirrored};
use super::layout::{
    ATTR_CONTENT_TYPE, ATTR_ETAG, Written, field, field_or_empty, gc_tree, mtime_is, set_mtime,
    set_xattr, time_t, ts, user, write_json,
};
use super::{GithubError, Tally};
use crate::config::LfsMode;
use crate::sources::Check;
use serde_json::{Map, Value, json};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// What a repository's backup needs besides the API.
pub struct RepoJob<'a> {
    pub api: &'a Api,
    pub git: &'a Git,
    pub org: &'a str,
    pub repo: &'a str,
    pub dir: PathBuf,
    pub check: Check,
    pub lfs: LfsMode,
    pub cache: &'a mut CacheFile,
    pub tally: &'a mut Tally,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> GithubError + '_ {
    move |source| GithubError::Io {
        path: path.to_owned(),
        source,
    }
}

fn cond(check: Check) -> Conditional {
    match check {
        Check::Normal => Conditional::UseEtags,
        Check::Scrub => Conditional::Refetch,
    }
}

/// What of a repository object is cached (all the backup uses of it).
fn project_repo(v: &Value) -> Value {
    let mut m = Map::new();
    for k in [
        "name",
        "description",
        "has_issues",
        "has_wiki",
        "homepage",
        "private",
        "clone_url",
        "url",
    ] {
        if let Some(x) = v.get(k) {
            m.insert(k.to_owned(), x.clone());
        }
    }
    Value::Object(m)
}

fn number_of(v: &Value) -> Value {
    json!({"number": field(v, "number")})
}

/// Back up one repository.
pub fn backup(job: &mut RepoJob) -> Result<(), GithubError> {
    let dir = job.dir.clone();
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let url = job.api.url(&format!("/repos/{}/{}", job.org, job.repo));
    let (item, rec) =
        job.api
            .object(&url, job.cache.page("repo"), cond(job.check), &project_repo)?;
    let repo = match item {
        Item::Fresh(v) | Item::Kept(v) => v,
    };
    let info = json!({
        "description": field_or_empty(&repo, "description"),
        "has_issues": field(&repo, "has_issues"),
        "has_wiki": field(&repo, "has_wiki"),
        "homepage": field_or_empty(&repo, "homepage"),
        "private": field(&repo, "private"),
    });
    let p = dir.join("info.json");
    job.tally
        .count(job.check, write_json(&p, &info, None).map_err(io(&p))?);
    job.cache
        .put("repo", super::cache::ListingRecord { pages: vec![rec] })
        .map_err(io(&dir))?;

    // Git first failure is kept and returned after the metadata is saved.
    let clone_url = repo
        .get("clone_url")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let git_result = mirror_git(job, &clone_url, &repo);

    let api_base = repo
        .get("url")
        .and_then(Value::as_str)
        .map_or(url.clone(), str::to_owned);
    if repo.get("has_issues").and_then(Value::as_bool) == Some(true) {
        issues(job, &api_base)?;
    }
    milestones(job, &api_base)?;
    commit_comments(job, &api_base)?;
    releases(job, &api_base)?;
    pulls(job, &api_base)?;
    labels(job, &api_base)?;
    git_result
}

fn mirror_git(job: &mut RepoJob, clone_url: &str, repo: &Value) -> Result<(), GithubError> {
    if clone_url.is_empty() {
        return Err(GithubError::NoCloneUrl {
            repo: format!("{}/{}", job.org, job.repo),
        });
    }
    let mirror = job.dir.join("repo");
    let m = job.git.mirror(clone_url, &mirror, false)?;
    job.tally.git(m);
    if job.check == Check::Scrub {
        job.git.fsck(&mirror).map_err(GitError::from)?;
    }
    let lfs = match job.lfs {
        LfsMode::Never => false,
        LfsMode::Always => true,
        LfsMode::Auto => job.git.has_lfs() && job.git.uses_lfs(&mirror),
    };
    if lfs {
        job.git.lfs_fetch(&mirror, clone_url)?;
    }
    if repo.get("has_wiki").and_then(Value::as_bool) == Some(true) {
        // why: as Deltaic, `.git` becomes `.wiki`; a wiki the API claims but
        // nobody created does not exist, so its first clone may fail
        let wiki_url = match clone_url.strip_suffix(".git") {
            Some(base) => format!("{base}.wiki"),
            None => format!("{clone_url}.wiki"),
        };
        let wiki = job.dir.join("wiki");
        let m = job.git.mirror(&wiki_url, &wiki, true)?;
        if m == Mirrored::Absent {
            job.tally.note(format!("no wiki at {wiki_url}"));
        } else {
            job.tally.git(m);
            if job.check == Check::Scrub {
                job.git.fsck(&wiki).map_err(GitError::from)?;
            }
        }
    }
    Ok(())
}

/// A listing of the repository, optional: `None` (after a note) when it is
/// not there for us.
fn listing(
    job: &mut RepoJob,
    name: &str,
    url: &str,
    project: &dyn Fn(&Value) -> Value,
) -> Result<Option<Listing>, GithubError> {
    match job
        .api
        .list_optional(url, job.cache.get(name), cond(job.check), project)?
    {
        Ok(l) => Ok(Some(l)),
        Err(Unavailable { status, message }) => {
            job.tally
                .note(format!("{name}: HTTP {status} ({message}); skipped"));
            Ok(None)
        }
    }
}

fn save(job: &mut RepoJob, name: &str, l: Listing, dir: &Path) -> Result<(), GithubError> {
    if l.changed
        && let Some(p) = l.record.pages.first()
        && dir.is_dir()
        && !p.etag.is_empty()
    {
        // why: Deltaic keeps the first page's ETag here; a Deltaic run after
        // strata finds it as it left it
        set_xattr(dir, ATTR_ETAG, &p.etag).map_err(io(dir))?;
    }
    job.cache.put(name, l.record).map_err(io(dir))
}

/// Fetch every page of `url` (no cache): the comments or events of one
/// issue, the reviews of one pull request.
fn all(job: &RepoJob, url: &str) -> Result<Vec<Value>, ApiError> {
    job.api.list_all(url)
}

fn issues(job: &mut RepoJob, base: &str) -> Result<(), GithubError> {
    let dir = job.dir.join("issues");
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let Some(l) = listing(
        job,
        "issues",
        &format!("{base}/issues?state=all"),
        &number_of,
    )?
    else {
        return Ok(());
    };
    let mut valid: HashSet<PathBuf> = HashSet::from([dir.clone()]);
    for item in &l.items {
        let (Item::Fresh(v) | Item::Kept(v)) = item;
        let Some(n) = v.get("number").and_then(Value::as_u64) else {
            continue;
        };
        let path = dir.join(format!("{n}.json"));
        valid.insert(path.clone());
        let Item::Fresh(issue) = item else { continue };
        let updated = time_t(&issue["updated_at"]);
        if job.check == Check::Normal && updated.is_some_and(|t| mtime_is(&path, t)) {
            continue;
        }
        let url = issue
            .get("url")
            .and_then(Value::as_str)
            .map_or_else(|| format!("{base}/issues/{n}"), str::to_owned);
        let comments = if issue.get("comments").and_then(Value::as_u64).unwrap_or(0) > 0 {
            all(job, &format!("{url}/comments"))?
                .iter()
                .map(|c| {
                    json!({
                        "created_at": ts(&c["created_at"]),
                        "updated_at": ts(&c["updated_at"]),
                        "user": user(&c["user"]),
                        "body": field(c, "body"),
                    })
                })
                .collect()
        } else {
            Vec::new()
        };
        let events: Vec<Value> = all(job, &format!("{url}/events"))?
            .iter()
            .map(|e| {
                json!({
                    "actor": user(&e["actor"]),
                    "commit_id": field(e, "commit_id"),
                    "created_at": ts(&e["created_at"]),
                    "event": field(e, "event"),
                })
            })
            .collect();
        let labels: Vec<Value> = issue["labels"]
            .as_array()
            .map(|ls| ls.iter().map(|l| field(l, "name")).collect())
            .unwrap_or_default();
        let info = json!({
            "assignee": user(&issue["assignee"]),
            "body": field_or_empty(issue, "body"),
            "closed_at": ts(&issue["closed_at"]),
            "closed_by": user(&issue["closed_by"]),
            "comments": comments,
            "created_at": ts(&issue["created_at"]),
            "events": events,
            "labels": labels,
            "milestone": issue["milestone"].get("number").cloned().unwrap_or(Value::Null),
            "number": field(issue, "number"),
            "state": field(issue, "state"),
            "title": field(issue, "title"),
            "updated_at": ts(&issue["updated_at"]),
            "user": user(&issue["user"]),
        });
        let w = write_json(&path, &info, updated).map_err(io(&path))?;
        job.tally.count(job.check, w);
    }
    crate::fault::point("github-issues-written");
    job.tally.removed += gc_tree(&dir, &valid).map_err(io(&dir))?;
    save(job, "issues", l, &dir)
}

fn milestones(job: &mut RepoJob, base: &str) -> Result<(), GithubError> {
    let dir = job.dir.join("milestones");
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    // why: Deltaic asked state=all, which github3.py 0.9 dropped, so it kept
    // open milestones only; strata keeps the closed ones too
    let Some(l) = listing(
        job,
        "milestones",
        &format!("{base}/milestones?state=all"),
        &number_of,
    )?
    else {
        return Ok(());
    };
    let mut valid: HashSet<PathBuf> = HashSet::from([dir.clone()]);
    for item in &l.items {
        let (Item::Fresh(v) | Item::Kept(v)) = item;
        let Some(n) = v.get("number").and_then(Value::as_u64) else {
            continue;
        };
        let path = dir.join(format!("{n}.json"));
        valid.insert(path.clone());
        let Item::Fresh(m) = item else { continue };
        let info = json!({
            "created_at": ts(&m["created_at"]),
            "creator": user(&m["creator"]),
            "description": field(m, "description"),
            "due_on": ts(&m["due_on"]),
            "state": field(m, "state"),
            "title": field(m, "title"),
            "updated_at": ts(&m["updated_at"]),
        });
        let w = write_json(&path, &info, time_t(&m["updated_at"])).map_err(io(&path))?;
        job.tally.count(job.check, w);
    }
    job.tally.removed += gc_tree(&dir, &valid).map_err(io(&dir))?;
    save(job, "milestones", l, &dir)
}

fn commit_comment(c: &Value) -> Value {
    json!({
        "commit_id": field(c, "commit_id"),
        "updated_at": field(c, "updated_at"),
        "info": {
            "body": field(c, "body"),
            "created_at": ts(&c["created_at"]),
            "commit_id": field(c, "commit_id"),
            "line": field(c, "line"),
            "path": field(c, "path"),
            "position": field(c, "position"),
            "updated_at": ts(&c["updated_at"]),
            "user": user(&c["user"]),
        }
    })
}

fn commit_comments(job: &mut RepoJob, base: &str) -> Result<(), GithubError> {
    let dir = job.dir.join("comments");
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let Some(l) = listing(
        job,
        "comments",
        &format!("{base}/comments"),
        &commit_comment,
    )?
    else {
        return Ok(());
    };
    if !l.changed {
        return save(job, "comments", l, &dir);
    }
    // Grouped by commit in order of first appearance, as Deltaic's dict.
    let mut order: Vec<String> = Vec::new();
    let mut groups: std::collections::HashMap<String, (Vec<Value>, i64)> =
        std::collections::HashMap::new();
    for item in &l.items {
        let c = match item {
            Item::Fresh(v) => commit_comment(v),
            Item::Kept(v) => v.clone(),
        };
        let Some(sha) = c["commit_id"].as_str().map(str::to_owned) else {
            continue;
        };
        let t = time_t(&c["updated_at"]).unwrap_or(0);
        let g = groups.entry(sha.clone()).or_insert_with(|| {
            order.push(sha.clone());
            (Vec::new(), t)
        });
        g.0.push(c["info"].clone());
        g.1 = g.1.max(t);
    }
    let mut valid: HashSet<PathBuf> = HashSet::from([dir.clone()]);
    for sha in &order {
        let (list, t) = &groups[sha];
        let path = dir.join(format!("{sha}.json"));
        valid.insert(path.clone());
        let w = write_json(&path, &Value::Array(list.clone()), Some(*t)).map_err(io(&path))?;
        job.tally.count(job.check, w);
    }
    job.tally.removed += gc_tree(&dir, &valid).map_err(io(&dir))?;
    save(job, "comments", l, &dir)
}

fn release_dir_name(r: &Value) -> String {
    match r.get("tag_name").and_then(Value::as_str) {
        Some(t) => t.to_owned(),
        None => format!("untagged-{}", field(r, "id")),
    }
}

fn project_release(r: &Value) -> Value {
    let assets: Vec<Value> = r["assets"]
        .as_array()
        .map(|a| a.iter().map(|x| field(x, "name")).collect())
        .unwrap_or_default();
    json!({"dir": release_dir_name(r), "assets": assets})
}

fn releases(job: &mut RepoJob, base: &str) -> Result<(), GithubError> {
    let dir = job.dir.join("releases");
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let Some(l) = listing(
        job,
        "releases",
        &format!("{base}/releases"),
        &project_release,
    )?
    else {
        return Ok(());
    };
    let mut valid: HashSet<PathBuf> = HashSet::from([dir.clone()]);
    for item in &l.items {
        let (Item::Fresh(v) | Item::Kept(v)) = item;
        let p = match item {
            Item::Fresh(r) => project_release(r),
            Item::Kept(_) => v.clone(),
        };
        let Some(name) = p["dir"].as_str() else {
            continue;
        };
        if !safe_name(name) {
            job.tally.note(format!(
                "release {name:?}: not a safe directory name; skipped"
            ));
            continue;
        }
        let rdir = dir.join(name);
        valid.insert(rdir.join("info.json"));
        for a in p["assets"].as_array().into_iter().flatten() {
            if let Some(a) = a.as_str().filter(|a| safe_name(a)) {
                valid.insert(rdir.join("assets").join(a));
            }
        }
        let Item::Fresh(r) = item else { continue };
        std::fs::create_dir_all(&rdir).map_err(io(&rdir))?;
        let info = json!({
            "created_at": ts(&r["created_at"]),
            "description": field(r, "body"),
            "draft": field(r, "draft"),
            "name": field(r, "name"),
            "published_at": ts(&r["published_at"]),
            "tag_name": field(r, "tag_name"),
        });
        let path = rdir.join("info.json");
        let w = write_json(&path, &info, None).map_err(io(&path))?;
        job.tally.count(job.check, w);
        for asset in r["assets"].as_array().into_iter().flatten() {
            asset_file(job, &rdir, asset)?;
        }
    }
    job.tally.removed += gc_tree(&dir, &valid).map_err(io(&dir))?;
    save(job, "releases", l, &dir)
}

/// A name that is one plain path component.
fn safe_name(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && !s.contains('/') && !s.contains('\0')
}

fn asset_file(job: &mut RepoJob, rdir: &Path, asset: &Value) -> Result<(), GithubError> {
    let Some(name) = asset
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| safe_name(n))
    else {
        return Ok(());
    };
    let adir = rdir.join("assets");
    std::fs::create_dir_all(&adir).map_err(io(&adir))?;
    let path = adir.join(name);
    let mtime = time_t(&asset["updated_at"]);
    let size = asset.get("size").and_then(Value::as_u64);
    let same = std::fs::metadata(&path).is_ok_and(|m| Some(m.len()) == size)
        && mtime.is_some_and(|t| mtime_is(&path, t));
    if job.check == Check::Normal && same {
        return Ok(());
    }
    let Some(url) = asset.get("url").and_then(Value::as_str) else {
        return Ok(());
    };
    // Download whole into a temporary file first: a failed download keeps
    // the stored copy; then only the blocks that differ are written.
    let mut tmp = tempfile::Builder::new()
        .prefix(".strata-tmp-")
        .tempfile_in(&adir)
        .map_err(io(&adir))?;
    job.api
        .download(url, |r| std::io::copy(r, tmp.as_file_mut()))?;
    let got = tmp.as_file().metadata().map_err(io(&path))?.len();
    if size.is_some_and(|s| s != got) {
        return Err(GithubError::AssetSize {
            path,
            want: size.unwrap_or(0),
            got,
        });
    }
    crate::fault::point("github-asset-downloaded");
    let existed = path.exists();
    let stats = crate::backup_root::BlockUpdate::apply(
        &path,
        std::fs::File::open(tmp.path()).map_err(io(&path))?,
    )
    .map_err(io(&path))?;
    drop(tmp);
    let w = if !existed {
        Written::Created
    } else if stats.unchanged() {
        Written::Unchanged
    } else {
        Written::Changed
    };
    if w != Written::Unchanged {
        println!("f {}", path.display());
    }
    job.tally.count(job.check, w);
    if let Some(t) = mtime {
        set_mtime(&path, t).map_err(io(&path))?;
    }
    if let Some(ct) = asset.get("content_type").and_then(Value::as_str) {
        set_xattr(&path, ATTR_CONTENT_TYPE, ct).map_err(io(&path))?;
    }
    Ok(())
}

fn pulls(job: &mut RepoJob, base: &str) -> Result<(), GithubError> {
    let dir = job.dir.join("pulls");
    let Some(l) = listing(job, "pulls", &format!("{base}/pulls?state=all"), &number_of)? else {
        return Ok(());
    };
    if l.items.is_empty() && !dir.exists() {
        return save(job, "pulls", l, &dir);
    }
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let mut valid: HashSet<PathBuf> = HashSet::from([dir.clone()]);
    for item in &l.items {
        let (Item::Fresh(v) | Item::Kept(v)) = item;
        let Some(n) = v.get("number").and_then(Value::as_u64) else {
            continue;
        };
        let path = dir.join(format!("{n}.json"));
        valid.insert(path.clone());
        let Item::Fresh(pr) = item else { continue };
        let updated = time_t(&pr["updated_at"]);
        if job.check == Check::Normal && updated.is_some_and(|t| mtime_is(&path, t)) {
            continue;
        }
        let url = pr
            .get("url")
            .and_then(Value::as_str)
            .map_or_else(|| format!("{base}/pulls/{n}"), str::to_owned);
        let reviews: Vec<Value> = all(job, &format!("{url}/reviews"))?
            .iter()
            .map(|r| {
                json!({
                    "id": field(r, "id"),
                    "user": user(&r["user"]),
                    "state": field(r, "state"),
                    "body": field(r, "body"),
                    "commit_id": field(r, "commit_id"),
                    "submitted_at": ts(&r["submitted_at"]),
                })
            })
            .collect();
        let review_comments: Vec<Value> = all(job, &format!("{url}/comments"))?
            .iter()
            .map(|c| {
                json!({
                    "id": field(c, "id"),
                    "in_reply_to_id": field(c, "in_reply_to_id"),
                    "pull_request_review_id": field(c, "pull_request_review_id"),
                    "user": user(&c["user"]),
                    "body": field(c, "body"),
                    "path": field(c, "path"),
                    "position": field(c, "position"),
                    "original_position": field(c, "original_position"),
                    "line": field(c, "line"),
                    "original_line": field(c, "original_line"),
                    "side": field(c, "side"),
                    "commit_id": field(c, "commit_id"),
                    "original_commit_id": field(c, "original_commit_id"),
                    "diff_hunk": field(c, "diff_hunk"),
                    "created_at": ts(&c["created_at"]),
                    "updated_at": ts(&c["updated_at"]),
                })
            })
            .collect();
        let side = |s: &Value| {
            json!({
                "label": field(s, "label"),
                "ref": field(s, "ref"),
                "sha": field(s, "sha"),
            })
        };
        let info = json!({
            "number": field(pr, "number"),
            "title": field(pr, "title"),
            "body": field(pr, "body"),
            "state": field(pr, "state"),
            "draft": field(pr, "draft"),
            "user": user(&pr["user"]),
            "created_at": ts(&pr["created_at"]),
            "updated_at": ts(&pr["updated_at"]),
            "closed_at": ts(&pr["closed_at"]),
            "merged_at": ts(&pr["merged_at"]),
            "merge_commit_sha": field(pr, "merge_commit_sha"),
            "head": side(&pr["head"]),
            "base": side(&pr["base"]),
            "reviews": reviews,
            "review_comments": review_comments,
        });
        let w = write_json(&path, &info, updated).map_err(io(&path))?;
        job.tally.count(job.check, w);
    }
    job.tally.removed += gc_tree(&dir, &valid).map_err(io(&dir))?;
    save(job, "pulls", l, &dir)
}

fn project_label(l: &Value) -> Value {
    json!({
        "name": field(l, "name"),
        "color": field(l, "color"),
        "description": field(l, "description"),
    })
}

fn labels(job: &mut RepoJob, base: &str) -> Result<(), GithubError> {
    let Some(l) = listing(job, "labels", &format!("{base}/labels"), &project_label)? else {
        return Ok(());
    };
    let list: Vec<Value> = l
        .items
        .iter()
        .map(|i| match i {
            Item::Fresh(v) => project_label(v),
            Item::Kept(v) => v.clone(),
        })
        .collect();
    let path = job.dir.join("labels.json");
    let w = write_json(&path, &Value::Array(list), None).map_err(io(&path))?;
    job.tally.count(job.check, w);
    let dir = job.dir.clone();
    save(job, "labels", l, &dir)
}

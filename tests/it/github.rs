//! The github source against the fake GitHub (`support::github`): real git
//! repositories served over smart HTTP (branches, annotated tags,
//! `refs/pull/N/head`, an empty repository, a wiki, an LFS repository), the
//! API with Link pagination, per-page ETags and 304s, rate-limit headers, a
//! secondary limit, a 410, release assets through a 302 to another port.
//!
//! - The root Deltaic's github source writes (recorded as data in
//!   `tests/fixtures/github/deltaic-acme.json`, checked against Deltaic
//!   itself when `DELTAIC_SRC` is set): strata's run over it rewrites none
//!   of Deltaic's files, keeps its xattrs and adds only its own files.
//! - A second run with nothing changed gets (almost) only 304s; a comment on
//!   an issue on page 3 and a new release are picked up by the next run.
//! - The token is nowhere under the root, in no git argv, in no mirror config,
//!   and not sent to the asset host.
//! - Round trip: back up, restore a repository into an empty one on the fake,
//!   compare refs, labels, milestones, issues, releases.
//! - Rate limits are waited out, a 410 is a note, a repository gone upstream
//!   is kept and shown by `status` until `github forget`; a scrub repairs.

use crate::support::deltaic_github;
use crate::support::env::{self, TestHome, strata};
use crate::support::github::{FakeGithub, TOKEN, acme_world, publish_acme, refs, sh};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::SystemTime;

struct Setup {
    home: TestHome,
    fake: FakeGithub,
    root: PathBuf,
}

fn setup(with_410: bool) -> Option<Setup> {
    let home = TestHome::new();
    let fake = FakeGithub::start(&home, &acme_world(with_410))?;
    let work = home.join("work");
    std::fs::create_dir_all(&work).unwrap();
    publish_acme(&home, &fake, &work);
    let root = home.join("root");
    std::fs::create_dir_all(&root).unwrap();
    Some(Setup { home, fake, root })
}

impl Setup {
    fn config(&self, root: &Path, extra: &str, org_extra: &str) -> PathBuf {
        let cfg = self.home.join(format!(
            "config-{}.yaml",
            root.file_name().unwrap().to_string_lossy()
        ));
        let token_file = self.home.join("token");
        std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
        std::fs::write(
            &cfg,
            format!(
                "settings:\n  root: {}\n  snapshot-store: dir\n  github-token-file: {}\n  github-api-url: {}\n  github-scrub-probability: 0\n{extra}github:\n  acme:\n    organization-metadata: true\n{org_extra}",
                root.display(),
                token_file.display(),
                self.fake.api_url()
            ),
        )
        .unwrap();
        cfg
    }

    fn strata(&self, cfg: &Path, args: &[&str]) -> Output {
        strata(&self.home)
            .arg("-c")
            .arg(cfg)
            .args(args)
            .env("STRATA_ALLOW_ROOT", "1")
            .env("STRATA_GITHUB_GIT_STALL_SECS", "20")
            .output()
            .unwrap()
    }

    fn run_ok(&self, cfg: &Path) -> String {
        let out = self.strata(cfg, &["run", "--no-snapshot"]);
        let text = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert!(
            out.status.success(),
            "strata run failed:\n{text}\n{}",
            logs(&self.root)
        );
        text
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Every unit log under `root`, for failure messages.
fn logs(root: &Path) -> String {
    let mut s = String::new();
    for e in walkdir::WalkDir::new(root.join("Logs"))
        .into_iter()
        .filter_map(Result::ok)
    {
        if e.file_type().is_file() {
            let _ = write!(
                s,
                "== {}\n{}\n",
                e.path().display(),
                std::fs::read_to_string(e.path()).unwrap_or_default()
            );
        }
    }
    s
}

/// Files under `dir` (relative path -> (bytes, mtime seconds, mtime nanos)).
fn files(dir: &Path) -> BTreeMap<String, (Vec<u8>, i64, i64)> {
    let mut out = BTreeMap::new();
    for e in walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
    {
        if !e.file_type().is_file() {
            continue;
        }
        let rel = e
            .path()
            .strip_prefix(dir)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if rel.starts_with(".strata") || rel.starts_with("Logs") {
            continue;
        }
        let m = e.metadata().unwrap();
        out.insert(
            rel,
            (std::fs::read(e.path()).unwrap(), m.mtime(), m.mtime_nsec()),
        );
    }
    out
}

fn read_json(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .unwrap()
}

/// API responses of the fake's log that were not 304 (git excluded).
fn api_not_304(fake: &FakeGithub) -> Vec<String> {
    fake.stats()["log"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["path"].as_str().unwrap().starts_with("/api/v3/") && l["status"] != 304)
        .map(|l| format!("{} {} {}", l["method"], l["path"], l["status"]))
        .collect()
}

/// Deltaic's own run, in the oracle mode: its root must equal the recording
/// (or, with `STRATA_RECORD_DELTAIC=1`, becomes it), and the recording made
/// again with the git CLI must equal its root, mirrors included.
fn deltaic_oracle(o: &deltaic_github::Oracle) {
    let Some(s) = setup(false) else { return };
    let droot = s.home.join("deltaic-root");
    std::fs::create_dir_all(&droot).unwrap();
    let git_log = s.home.join("deltaic-git.log");
    let git = deltaic_github::git_wrapper(s.home.path(), &git_log);
    let started = SystemTime::now();
    o.run(&s.home, &s.fake, &droot, &git);
    let got = deltaic_github::capture(&droot, started, &git_log, &s.fake.base(), o.commit(&s.home));
    if o.record {
        deltaic_github::store(&got);
        let _ = writeln!(
            std::io::stderr(),
            "github_deltaic_byte_identity: recorded Deltaic's output into {}",
            deltaic_github::FIXTURE
        );
    } else {
        let diff = deltaic_github::differences(&deltaic_github::load(), &got);
        assert!(
            diff.is_empty(),
            "Deltaic's output differs from {} (regenerate with STRATA_RECORD_DELTAIC=1, docs/testing.md):\n{}",
            deltaic_github::FIXTURE,
            diff.join("\n")
        );
    }
    let made = s.home.join("made-root");
    deltaic_github::materialise(&got, &made, &s.home, &s.fake);
    let diff = deltaic_github::tree_differences(
        &deltaic_github::tree(&droot, started),
        &deltaic_github::tree(&made, started),
    );
    assert!(
        diff.is_empty(),
        "the recording made again differs from Deltaic's root:\n{}",
        diff.join("\n")
    );
}

/// Every user xattr under `dir`, files and directories (strata's own state
/// and logs aside): path -> name -> value.
fn xattrs(dir: &Path) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for e in walkdir::WalkDir::new(dir)
        .min_depth(1)
        .into_iter()
        .filter_map(Result::ok)
    {
        let rel = e
            .path()
            .strip_prefix(dir)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if rel.starts_with(".strata") || rel.starts_with("Logs") || e.path_is_symlink() {
            continue;
        }
        let x = deltaic_github::xattrs_of(e.path());
        if !x.is_empty() {
            out.insert(rel, x);
        }
    }
    out
}

#[test]
fn github_deltaic_byte_identity() {
    match deltaic_github::Oracle::from_env() {
        Some(o) => deltaic_oracle(&o),
        None => {
            let _ = writeln!(
                std::io::stderr(),
                "github_deltaic_byte_identity: Deltaic's recorded output ({}); DELTAIC_SRC=<checkout> checks it against Deltaic",
                deltaic_github::FIXTURE
            );
        }
    }
    let rec = deltaic_github::load();
    // A fresh fake: the state a Deltaic run leaves it in differs only in
    // its counters (ids are given when the world is loaded).
    let Some(s) = setup(false) else { return };
    let sroot = s.home.join("strata-root");
    deltaic_github::materialise(&rec, &sroot, &s.home, &s.fake);
    let before = files(&sroot);
    let before_x = xattrs(&sroot);
    // The recording holds what Deltaic's layout says (a sanity check).
    for f in [
        "github/acme/@organization/teams.json",
        "github/acme/widgets/info.json",
        "github/acme/widgets/issues/1.json",
        "github/acme/widgets/issues/2.json",
        "github/acme/widgets/milestones/1.json",
        "github/acme/widgets/comments/1111111111111111111111111111111111111111.json",
        "github/acme/widgets/releases/v1.0/info.json",
        "github/acme/widgets/releases/v1.0/assets/widgets-1.0.tar.gz",
        "github/acme/widgets/repo/HEAD",
        "github/acme/widgets/wiki/HEAD",
        "github/acme/big/issues/250.json",
    ] {
        assert!(before.contains_key(f), "Deltaic did not write {f}");
    }
    assert!(
        before_x
            .get("github/acme/big/issues")
            .is_some_and(|x| x.contains_key("user.github.etag")),
        "no ETag recorded on big/issues: {before_x:?}"
    );
    let cfg = s.config(&sroot, "", "");
    s.run_ok(&cfg);
    let after = files(&sroot);
    let mut rewritten = Vec::new();
    for (rel, (bytes, secs, nanos)) in &before {
        if rel == "github/acme/lfs/repo/config" {
            // git-lfs's one write into a mirror's config, the first time it
            // runs there (docs/github.md): exactly this, nothing else
            let mut want = bytes.clone();
            want.extend_from_slice(b"[lfs]\n\trepositoryformatversion = 0\n");
            assert_eq!(text(&after[rel].0), text(&want));
            continue;
        }
        match after.get(rel) {
            None => rewritten.push(format!("{rel}: removed")),
            Some((b, _, _)) if b != bytes => rewritten.push(format!(
                "{rel}: bytes differ:\n  deltaic {}\n  strata  {}",
                text(bytes),
                text(b)
            )),
            Some((_, s2, n2)) if (s2, n2) != (secs, nanos) => {
                rewritten.push(format!("{rel}: mtime {secs}.{nanos} became {s2}.{n2}"));
            }
            Some(_) => {}
        }
    }
    assert!(
        rewritten.is_empty(),
        "strata rewrote Deltaic's files:\n{}",
        rewritten.join("\n")
    );
    // Deltaic's xattrs (its ETags, the assets' content types) are as it
    // left them: strata stores the same first-page ETag Deltaic did.
    let after_x = xattrs(&sroot);
    let mut changed = Vec::new();
    for (rel, x) in &before_x {
        for (k, v) in x {
            if rel.ends_with("/milestones") && k == "user.github.etag" {
                // why: github3.py 0.9.6 drops Deltaic's state=all, so
                // Deltaic's ETag is of the open milestones; strata lists
                // them all (docs/github.md), a different first page
                continue;
            }
            let now = after_x.get(rel).and_then(|a| a.get(k));
            if now != Some(v) {
                changed.push(format!("{rel} {k}: {v:?} became {now:?}"));
            }
        }
    }
    assert!(
        changed.is_empty(),
        "strata changed Deltaic's xattrs:\n{}",
        changed.join("\n")
    );
    let added: Vec<&String> = after.keys().filter(|k| !before.contains_key(*k)).collect();
    let allowed = |k: &str| {
        k == "github/acme/@organization/members.json"
            || k.ends_with("/labels.json")
            || k.contains("/pulls/")
            || k == "github/acme/widgets/milestones/2.json"
            || k.starts_with("github/acme/lfs/repo/lfs/")
            // why: Deltaic's own run lock, which a strata run holds too
            || k == ".lock/backup"
    };
    let unexpected: Vec<&&String> = added.iter().filter(|k| !allowed(k)).collect();
    assert!(
        unexpected.is_empty(),
        "strata added files beyond its own: {unexpected:?}"
    );
    for want in [
        "github/acme/@organization/members.json",
        "github/acme/widgets/labels.json",
        "github/acme/widgets/pulls/2.json",
        "github/acme/widgets/milestones/2.json",
    ] {
        assert!(
            added.iter().any(|k| *k == want),
            "strata did not add {want}: {added:?}"
        );
    }
    assert!(
        added
            .iter()
            .any(|k| k.starts_with("github/acme/lfs/repo/lfs/objects/")),
        "no LFS object in the mirror: {added:?}"
    );
}

#[test]
fn github_no_change_run_costs_only_304s_and_changes_are_picked_up() {
    let Some(s) = setup(true) else { return };
    let cfg = s.config(&s.root, "", "");
    let out = s.run_ok(&cfg);
    let unit = s.root.join("github/acme");
    for f in [
        "@organization/teams.json",
        "@organization/members.json",
        "widgets/issues/1.json",
        "widgets/pulls/2.json",
        "big/issues/5.json",
        "big/issues/250.json",
        "noissues/info.json",
        "empty/info.json",
    ] {
        assert!(
            unit.join(f).is_file(),
            "{f} missing after the first run:\n{out}"
        );
    }
    let noissues_log = logs(&s.root);
    assert!(
        noissues_log.contains("issues: HTTP 410"),
        "the 410 is not noted in the unit's log:\n{noissues_log}"
    );
    assert!(
        !unit
            .join("noissues/issues")
            .read_dir()
            .is_ok_and(|mut d| d.next().is_some())
    );

    s.fake.reset();
    s.run_ok(&cfg);
    let stats = s.fake.stats();
    let not_304 = api_not_304(&s.fake);
    let api_total = stats["log"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["path"].as_str().unwrap().starts_with("/api/v3/"))
        .count();
    assert!(
        api_total > 20,
        "too few API requests for 6 units: {api_total}"
    );
    assert!(
        not_304.len() <= 2,
        "a run with nothing changed got {} responses other than 304:\n{}",
        not_304.len(),
        not_304.join("\n")
    );

    // A comment on issue 5 (page 3 of big's issues) and a new release.
    s.fake.control(
        "mutate",
        &json!({"op": "comment", "org": "acme", "repo": "big", "number": 5,
                "body": "late comment on an old issue", "at": "2024-03-09T09:09:09Z"}),
    );
    s.fake.control(
        "mutate",
        &json!({"op": "release", "org": "acme", "repo": "widgets", "release": {
            "tag_name": "v2.0", "name": "Two", "body": "new", "created_at": "2024-03-10T00:00:00Z",
            "published_at": "2024-03-10T00:00:00Z",
            "assets": [{"name": "two.bin", "content_type": "application/octet-stream", "data": "TWO",
                        "updated_at": "2024-03-10T01:00:00Z"}]}}),
    );
    s.fake.reset();
    s.run_ok(&cfg);
    let five = read_json(&unit.join("big/issues/5.json"));
    assert_eq!(
        five["comments"][0]["body"], "late comment on an old issue",
        "{five}"
    );
    assert_eq!(five["updated_at"], "2024-03-09T09:09:09+00:00");
    assert_eq!(
        std::fs::metadata(unit.join("big/issues/5.json"))
            .unwrap()
            .mtime(),
        chrono::DateTime::parse_from_rfc3339("2024-03-09T09:09:09Z")
            .unwrap()
            .timestamp()
    );
    assert_eq!(
        read_json(&unit.join("widgets/releases/v2.0/info.json"))["name"],
        "Two"
    );
    assert_eq!(
        std::fs::read(unit.join("widgets/releases/v2.0/assets/two.bin")).unwrap(),
        b"TWO"
    );
    // Pages 1 and 2 of big's issues did not change: 304s.
    let log = s.fake.stats()["log"].as_array().unwrap().clone();
    let big_pages: Vec<(String, Value)> = log
        .iter()
        .filter(|l| {
            l["path"]
                .as_str()
                .unwrap()
                .starts_with("/api/v3/repos/acme/big/issues?")
        })
        .map(|l| (l["path"].as_str().unwrap().to_owned(), l["status"].clone()))
        .collect();
    assert_eq!(big_pages.len(), 3, "{big_pages:?}");
    assert_eq!(
        big_pages.iter().filter(|(_, st)| *st == 304).count(),
        2,
        "{big_pages:?}"
    );
}

#[test]
fn github_token_is_never_in_argv_files_or_mirror_config() {
    let Some(s) = setup(false) else { return };
    let log = s.home.join("git-calls.log");
    let wrapper = s.home.join("git-wrapper");
    let real = env::find_program("git").unwrap();
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\n{{ printf 'ARGV'; for a in \"$0\" \"$@\"; do printf ' [%s]' \"$a\"; done; echo; env | sed 's/^/ENV /'; }} >> '{}'\nexec '{}' \"$@\"\n",
            log.display(),
            real.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let cfg = s.config(
        &s.root,
        &format!("  github-git-path: {}\n", wrapper.display()),
        "",
    );
    s.run_ok(&cfg);
    let calls = std::fs::read_to_string(&log).unwrap();
    let argv: Vec<&str> = calls.lines().filter(|l| l.starts_with("ARGV")).collect();
    assert!(argv.iter().any(|l| l.contains("[clone]")), "{calls}");
    assert!(
        argv.iter().any(|l| l.contains("[lfs]")),
        "no git lfs call: {argv:?}"
    );
    for l in &argv {
        assert!(!l.contains(TOKEN), "the token is in a git argv: {l}");
    }
    // It reaches git through the environment, for the credential helper.
    assert!(
        calls.contains(&format!("ENV STRATA_GITHUB_TOKEN={TOKEN}")),
        "{calls}"
    );
    for l in calls.lines().filter(|l| l.starts_with("ENV GIT_CONFIG_")) {
        assert!(
            !l.contains(TOKEN),
            "the token is in git config from the environment: {l}"
        );
    }
    // Nowhere under the root: data, state, caches, logs, mirror configs.
    let hits = sh(
        &s.home,
        &format!("grep -rl -F '{TOKEN}' '{}' || true", s.root.display()),
    );
    assert!(hits.trim().is_empty(), "the token is in: {hits}");
    let config = std::fs::read_to_string(s.root.join("github/acme/widgets/repo/config")).unwrap();
    assert!(config.contains(&s.fake.base()), "{config}");
    // The asset host (another origin, after a 302) never got it.
    let assets = s.fake.stats()["asset_log"].as_array().unwrap().clone();
    assert!(
        !assets.is_empty(),
        "no asset download went to the asset host"
    );
    for a in assets {
        assert!(
            a["authorization"].is_null(),
            "the asset host got a token: {a}"
        );
    }
}

#[test]
fn github_round_trip_restores_refs_labels_milestones_issues_releases() {
    let Some(s) = setup(false) else { return };
    let cfg = s.config(&s.root, "", "");
    s.run_ok(&cfg);
    let stored = s.root.join("github/acme/widgets");
    s.fake.control(
        "mutate",
        &json!({"op": "create_repo", "org": "acme", "repo": "restored"}),
    );
    let out = s.strata(
        &cfg,
        &[
            "github",
            "restore",
            stored.to_str().unwrap(),
            "acme/restored",
        ],
    );
    assert!(
        out.status.success(),
        "restore failed:\n{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stderr).contains("not restored: original authors and timestamps"),
        "{}",
        text(&out.stderr)
    );

    // Refs: all of the mirror's but refs/pull/*.
    let want: String = refs(&s.home, &stored.join("repo"))
        .lines()
        .filter(|l| !l.contains(" refs/pull/"))
        .fold(String::new(), |mut acc, l| {
            acc.push_str(l);
            acc.push('\n');
            acc
        });
    assert!(want.contains("tag refs/tags/v1.0"), "{want}");
    assert!(want.contains("refs/heads/feature"), "{want}");
    assert!(refs(&s.home, &stored.join("repo")).contains("refs/pull/2/head"));
    assert_eq!(
        refs(&s.home, &s.fake.git_root.join("acme/restored.git")),
        want
    );

    let got = s.fake.get("dump?org=acme&repo=restored");
    let names: Vec<&str> = got["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["bug", "help wanted"]);
    assert_eq!(got["labels"][0]["color"], "d73a4a");
    assert_eq!(got["labels"][0]["description"], "Something is broken");
    let ms: Vec<(&str, &str)> = got["milestones"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["title"].as_str().unwrap(), m["state"].as_str().unwrap()))
        .collect();
    assert_eq!(ms, [("v1", "open"), ("v0", "closed")]);
    let issues = got["issues"].as_array().unwrap();
    assert_eq!(issues.len(), 3);
    let one = &issues[0];
    assert_eq!(one["number"], 1);
    assert_eq!(one["title"], "Crash on start");
    assert_eq!(one["labels"], json!(["bug"]));
    assert_eq!(one["milestone"], 1);
    let body = one["body"].as_str().unwrap();
    assert!(
        body.starts_with("> Originally #1 by @bob on 2024-02-02T10:00:00+00:00"),
        "{body}"
    );
    assert!(body.ends_with("It crashes.\n\n```\ntrace\n```"), "{body}");
    assert_eq!(one["comments"].as_array().unwrap().len(), 2);
    assert!(
        one["comments"][0]["body"]
            .as_str()
            .unwrap()
            .contains("@ann")
    );
    assert!(
        one["comments"][0]["body"]
            .as_str()
            .unwrap()
            .ends_with("Confirmed — ünïcode")
    );
    assert_eq!(issues[1]["state"], "closed");
    assert!(
        issues[1]["body"]
            .as_str()
            .unwrap()
            .contains("a pull request from `feature`")
    );
    let rels = got["releases"].as_array().unwrap();
    let v1 = rels
        .iter()
        .find(|r| r["tag_name"] == "v1.0")
        .expect("v1.0 restored");
    assert_eq!(v1["name"], "One");
    assert_eq!(v1["body"], "Notes é");
    let mut assets: Vec<(String, String, Vec<u8>)> = v1["assets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["name"].as_str().unwrap().to_owned(),
                a["content_type"].as_str().unwrap().to_owned(),
                base64_decode(a["data_b64"].as_str().unwrap()),
            )
        })
        .collect();
    assets.sort();
    assert_eq!(assets.len(), 2);
    assert_eq!(assets[0].0, "checksums.txt");
    assert_eq!(assets[0].1, "text/plain");
    assert_eq!(assets[0].2, b"abc  widgets-1.0.tar.gz\n");
    assert_eq!(
        assets[1].2,
        std::fs::read(stored.join("releases/v1.0/assets/widgets-1.0.tar.gz")).unwrap()
    );
    assert!(
        rels.iter()
            .any(|r| r["draft"] == true && r["name"] == "Draft")
    );

    // The LFS repository: its objects come back from the mirror.
    let store = s.fake.git_root.join("lfs-store");
    let oids: Vec<PathBuf> = std::fs::read_dir(&store)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(oids.len(), 1);
    let object = std::fs::read(&oids[0]).unwrap();
    std::fs::remove_file(&oids[0]).unwrap();
    s.fake.control(
        "mutate",
        &json!({"op": "create_repo", "org": "acme", "repo": "lfs2"}),
    );
    let lfs = s.strata(
        &cfg,
        &[
            "github",
            "restore",
            s.root.join("github/acme/lfs").to_str().unwrap(),
            "acme/lfs2",
        ],
    );
    assert!(
        lfs.status.success(),
        "{}\n{}",
        text(&lfs.stdout),
        text(&lfs.stderr)
    );
    assert!(
        text(&lfs.stdout).contains("with LFS objects"),
        "{}",
        text(&lfs.stdout)
    );
    assert_eq!(
        std::fs::read(&oids[0]).unwrap(),
        object,
        "the LFS object was not pushed back"
    );

    // Restoring again is refused: the repository is no longer empty.
    let again = s.strata(
        &cfg,
        &[
            "github",
            "restore",
            stored.to_str().unwrap(),
            "acme/restored",
        ],
    );
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("is not empty"),
        "{}",
        text(&again.stderr)
    );
}

fn base64_decode(s: &str) -> Vec<u8> {
    let table = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let mut buf = 0u32;
    let mut bits = 0;
    for c in s.bytes().filter(|c| *c != b'=') {
        let v = u32::try_from(table.iter().position(|t| *t == c).unwrap()).unwrap();
        buf = (buf << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((buf >> bits) & 0xff).unwrap());
        }
    }
    out
}

#[test]
fn github_rate_limits_gone_repositories_forget_and_scrub() {
    let Some(s) = setup(false) else { return };
    let cfg = s.config(&s.root, "", "    exclude: [\"lfs\"]\n");
    // The primary limit is exhausted for 2 s, and one listing gets a
    // secondary-limit 403 with Retry-After: both are waited out.
    s.fake
        .control("fault", &json!({"kind": "exhaust", "reset_in": 2}));
    s.fake.control(
        "fault",
        &json!({"kind": "secondary", "path": "/repos/acme/widgets/milestones", "count": 1, "retry_after": 1}),
    );
    let out = s.run_ok(&cfg);
    let all = format!("{out}\n{}", logs(&s.root));
    assert!(
        all.contains("API rate limit exhausted") && all.contains("waiting until"),
        "{all}"
    );
    assert!(all.contains("secondary rate limit (retry-after)"), "{all}");
    assert!(
        s.root
            .join("github/acme/widgets/milestones/1.json")
            .is_file()
    );
    assert!(
        !s.root.join("github/acme/lfs").exists(),
        "an excluded repository was backed up"
    );

    // A repository deleted upstream is kept, and status says so.
    s.fake.control(
        "mutate",
        &json!({"op": "delete_repo", "org": "acme", "repo": "empty"}),
    );
    s.run_ok(&cfg);
    assert!(
        s.root.join("github/acme/empty/repo").is_dir(),
        "a gone repository was deleted"
    );
    let st = s.strata(&cfg, &["status", "--json"]);
    let rows: Value = serde_json::from_slice(&st.stdout).unwrap();
    let empty = rows["units"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["unit"] == "github/acme/empty")
        .unwrap_or_else(|| panic!("no status row for the gone repository: {rows}"));
    assert!(
        empty["note"]
            .as_str()
            .unwrap()
            .starts_with("GONE upstream since"),
        "{empty}"
    );
    let widgets = rows["units"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["unit"] == "github/acme/widgets")
        .unwrap();
    assert!(widgets["note"].is_null(), "{widgets}");
    // forget refuses a listed repository, removes a gone one.
    let refused = s.strata(&cfg, &["github", "forget", "acme", "widgets"]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused.stderr));
    let forgot = s.strata(&cfg, &["github", "forget", "acme", "empty"]);
    assert!(forgot.status.success(), "{}", text(&forgot.stderr));
    assert!(!s.root.join("github/acme/empty").exists());

    // A scrub repairs a damaged file that a normal run trusts.
    let issue = s.root.join("github/acme/widgets/issues/1.json");
    let good = std::fs::read(&issue).unwrap();
    let mtime = std::fs::metadata(&issue).unwrap().modified().unwrap();
    std::fs::write(&issue, b"{\"damaged\": true}\n").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&issue)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let normal = s.strata(&cfg, &["github", "backup", "acme", "widgets"]);
    assert!(normal.status.success(), "{}", text(&normal.stderr));
    assert_eq!(std::fs::read(&issue).unwrap(), b"{\"damaged\": true}\n");
    let scrub = s.strata(&cfg, &["github", "backup", "-c", "acme", "widgets"]);
    assert!(scrub.status.success(), "{}", text(&scrub.stderr));
    assert_eq!(std::fs::read(&issue).unwrap(), good);
    assert!(
        text(&scrub.stdout).contains("scrub repaired 1"),
        "{}",
        text(&scrub.stdout)
    );
}

#[test]
fn github_auth_checks_a_pasted_token_and_the_device_flow() {
    let home = TestHome::new();
    let Some(fake) = FakeGithub::start(&home, &acme_world(false)) else {
        return;
    };
    let cfg = home.join("c.yaml");
    std::fs::write(
        &cfg,
        format!(
            "settings:\n  root: {}\n  snapshot-store: dir\n  github-token: unused\n  github-api-url: {}\n  github-client-id: Iv1.test\ngithub:\n  acme: {{}}\n",
            home.path().display(),
            fake.api_url()
        ),
    )
    .unwrap();
    let run = |args: &[&str], stdin: &str| {
        let mut c = strata(&home)
            .arg("-c")
            .arg(&cfg)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut c.stdin.take().unwrap(), stdin.as_bytes()).unwrap();
        c.wait_with_output().unwrap()
    };
    let out = run(&["github", "auth"], &format!("{TOKEN}\n"));
    let said = text(&out.stdout);
    assert!(out.status.success(), "{said}\n{}", text(&out.stderr));
    assert!(said.contains("The token belongs to strata-bot"), "{said}");
    assert!(said.contains("acme: repositories and teams: ok"), "{said}");
    let file = home.join(".config/strata/github-token");
    assert!(
        said.contains(&format!("github-token-file: {}", file.display())),
        "{said}"
    );
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        format!("{TOKEN}\n")
    );
    assert_eq!(std::fs::metadata(&file).unwrap().mode() & 0o777, 0o600);
    let bad = run(&["github", "auth"], "wrong-token\n");
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        text(&bad.stderr).contains("refused this token"),
        "{}",
        text(&bad.stderr)
    );
    let dev = run(
        &["github", "auth", "--device", "--token-file", "dev-token"],
        "",
    );
    assert!(
        dev.status.success(),
        "{}\n{}",
        text(&dev.stdout),
        text(&dev.stderr)
    );
    assert!(
        text(&dev.stderr).contains("enter the code WDJB-MJHT"),
        "{}",
        text(&dev.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(home.join("dev-token")).unwrap(),
        format!("{TOKEN}\n")
    );
}

#[test]
fn github_a_hung_git_server_fails_the_unit_and_an_unlistable_org_is_reported() {
    let Some(s) = setup(false) else { return };
    let cfg = s.config(&s.root, "", "  ghost: {}\n");
    let first = s.strata(&cfg, &["run", "--no-snapshot"]);
    let said = format!("{}{}", text(&first.stdout), text(&first.stderr));
    // The org the API does not know fails as `github/ghost`; acme's units go on.
    assert_eq!(first.status.code(), Some(1), "{said}");
    assert!(said.contains("github/ghost"), "{said}");
    assert!(
        s.root.join("github/acme/widgets/repo/HEAD").is_file(),
        "{said}"
    );
    let ls = s.strata(&cfg, &["github", "ls", "acme"]);
    assert_eq!(text(&ls.stdout), "big\nempty\nlfs\nwidgets\n");

    // widgets' git server now accepts requests and never answers.
    s.fake.control(
        "fault",
        &json!({"kind": "git_hang", "path": "/acme/widgets.git", "secs": 120}),
    );
    s.fake.control(
        "mutate",
        &json!({"op": "edit_issue", "org": "acme", "repo": "widgets", "number": 3,
                "set": {"title": "Question, edited", "updated_at": "2024-03-01T00:00:00Z"}}),
    );
    let refs_before = refs(&s.home, &s.root.join("github/acme/widgets/repo"));
    let t = std::time::Instant::now();
    let out = strata(&s.home)
        .arg("-c")
        .arg(&cfg)
        .args(["github", "backup", "acme", "widgets"])
        .env("STRATA_ALLOW_ROOT", "1")
        .env("STRATA_GITHUB_GIT_STALL_SECS", "2")
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "a hung git server did not fail the unit"
    );
    assert!(
        t.elapsed() < std::time::Duration::from_secs(90),
        "the unit took {:?}",
        t.elapsed()
    );
    assert!(
        text(&out.stderr).contains("after 5 attempts"),
        "{}",
        text(&out.stderr)
    );
    // The metadata was still saved, the mirror kept as it was.
    let three = read_json(&s.root.join("github/acme/widgets/issues/3.json"));
    assert_eq!(three["title"], "Question, edited");
    assert_eq!(
        refs(&s.home, &s.root.join("github/acme/widgets/repo")),
        refs_before
    );
}

#[test]
fn github_a_backup_killed_at_each_step_is_finished_by_the_next() {
    let Some(s) = setup(false) else { return };
    let clean = s.home.join("clean-root");
    std::fs::create_dir_all(&clean).unwrap();
    let clean_cfg = s.config(&clean, "", "");
    let ok = s.strata(&clean_cfg, &["github", "backup", "acme", "widgets"]);
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    let cfg = s.config(&s.root, "", "");
    for step in [
        "github-cloned",
        "github-issues-written",
        "github-asset-downloaded",
    ] {
        let killed = strata(&s.home)
            .arg("-c")
            .arg(&cfg)
            .args(["github", "backup", "-c", "acme", "widgets"])
            .env("STRATA_ALLOW_ROOT", "1")
            .env("STRATA_FAULT_KILL_AT", step)
            .output()
            .unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&killed.status),
            Some(9),
            "{step}: not killed: {}",
            text(&killed.stderr)
        );
    }
    let again = s.strata(&cfg, &["github", "backup", "acme", "widgets"]);
    assert!(again.status.success(), "{}", text(&again.stderr));
    let data = |root: &Path| -> BTreeMap<String, Vec<u8>> {
        files(&root.join("github/acme/widgets"))
            .into_iter()
            .filter(|(k, _)| !k.starts_with("repo/") && !k.starts_with("wiki/"))
            .map(|(k, v)| (k, v.0))
            .collect()
    };
    assert_eq!(data(&s.root), data(&clean));
    assert_eq!(
        refs(&s.home, &s.root.join("github/acme/widgets/repo")),
        refs(&s.home, &clean.join("github/acme/widgets/repo"))
    );
    assert!(!s.root.join("github/acme/widgets/.strata-tmp-repo").exists());
}

//! The fake GitHub (`tests/support/github/fake_github.py`, Python's standard
//! library) started on two free ports of 127.0.0.1, with real bare git
//! repositories on disk that it serves over smart HTTP; killed by PID in
//! `Drop`. Also: the world the github tests share (an organization with a
//! full repository, an empty one, an LFS one, a 3-page one, one whose
//! issues answer 410). Deltaic's recorded output and its oracle are in
//! `deltaic_github`.

use super::env::{self, TestHome};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

pub const TOKEN: &str = "ghp_strataTestToken0123456789abcdef";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// A running fake GitHub.
pub struct FakeGithub {
    child: Child,
    pub port: u16,
    pub asset_port: u16,
    pub git_root: PathBuf,
    _dir: tempfile::TempDir,
}

impl FakeGithub {
    /// Start the fake with `world`; `None` after a loud skip when python3
    /// or git is missing.
    pub fn start(home: &TestHome, world: &Value) -> Option<FakeGithub> {
        if !env::require("python3", env::have_program("python3"))
            || !env::require("git", env::have_program("git"))
        {
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("fake-github.")
            .tempdir()
            .unwrap();
        let git_root = dir.path().join("git");
        std::fs::create_dir_all(&git_root).unwrap();
        let world_file = dir.path().join("world.json");
        std::fs::write(&world_file, serde_json::to_vec(world).unwrap()).unwrap();
        let (port, asset_port) = (free_port(), free_port());
        let mut child = home
            .command("python3")
            .arg(repo_path("tests/support/github/fake_github.py"))
            .args([
                "--port",
                &port.to_string(),
                "--asset-port",
                &asset_port.to_string(),
            ])
            .arg("--git-root")
            .arg(&git_root)
            .arg("--world")
            .arg(&world_file)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        let out = child.stdout.take().unwrap();
        BufReader::new(out).read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready", "the fake GitHub did not start");
        Some(FakeGithub {
            child,
            port,
            asset_port,
            git_root,
            _dir: dir,
        })
    }

    /// `http://127.0.0.1:PORT` (the web host: clone URLs, the device flow).
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The API URL strata is configured with.
    pub fn api_url(&self) -> String {
        format!("{}/api/v3", self.base())
    }

    fn agent() -> ureq::Agent {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into()
    }

    /// POST to the control API.
    pub fn control(&self, what: &str, body: &Value) -> Value {
        let mut r = Self::agent()
            .post(format!("{}/_control/{what}", self.base()))
            .send_json(body)
            .unwrap();
        assert!(r.status().is_success(), "control {what}: {}", r.status());
        r.body_mut().read_json().unwrap_or(Value::Null)
    }

    /// GET from the control API.
    pub fn get(&self, what: &str) -> Value {
        let mut r = Self::agent()
            .get(format!("{}/_control/{what}", self.base()))
            .call()
            .unwrap();
        r.body_mut().read_json().unwrap()
    }

    /// The counters and request log.
    pub fn stats(&self) -> Value {
        self.get("stats")
    }

    /// Zero the counters and the log.
    pub fn reset(&self) {
        self.control("reset", &json!({}));
    }

    /// A bare repository `<org>/<name>.git` served by the fake, made from
    /// the work tree `work` (a plain clone).
    pub fn publish(&self, home: &TestHome, org: &str, name: &str, work: &Path) {
        let dest = self.git_root.join(org).join(format!("{name}.git"));
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        sh(
            home,
            &format!(
                "git clone -q --bare '{}' '{}'",
                work.display(),
                dest.display()
            ),
        );
    }

    /// Put an LFS object into the fake's LFS store.
    pub fn lfs_object(&self, data: &[u8]) -> String {
        use sha2::Digest;
        let oid = hex::encode(sha2::Sha256::digest(data));
        let d = self.git_root.join("lfs-store");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(&oid), data).unwrap();
        oid
    }
}

impl Drop for FakeGithub {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap()),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = self.child.wait();
    }
}

/// Run a shell script from `home`, failing the test on error.
pub fn sh(home: &TestHome, script: &str) -> String {
    let out = home
        .command("sh")
        .args(["-ec", script])
        .env("GIT_AUTHOR_NAME", "Ann")
        .env("GIT_AUTHOR_EMAIL", "ann@example.org")
        .env("GIT_COMMITTER_NAME", "Ann")
        .env("GIT_COMMITTER_EMAIL", "ann@example.org")
        .env("GIT_AUTHOR_DATE", "2024-01-01T00:00:00Z")
        .env("GIT_COMMITTER_DATE", "2024-01-01T00:00:00Z")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `git for-each-ref` of a repository: `<sha> <type> <ref>` lines.
pub fn refs(home: &TestHome, git_dir: &Path) -> String {
    sh(
        home,
        &format!(
            "git --git-dir='{}' for-each-ref --format='%(objectname) %(objecttype) %(refname)'",
            git_dir.display()
        ),
    )
}

fn ts(day: u32, hour: u32) -> String {
    format!("2024-02-{day:02}T{hour:02}:00:00Z")
}

/// The shared world: org `acme` with `widgets` (everything), `empty`,
/// `lfs`, `big` (250 issues, 3 pages) and `noissues` (issues answer 410),
/// and its git repositories published on the fake.
pub fn acme_world(with_410: bool) -> Value {
    let mut big_issues = Vec::new();
    for n in 1..=250u32 {
        let mut i = json!({
            "number": n, "title": format!("Issue {n} ünïcode"), "body": format!("body {n}\r\nline"),
            "user": if n % 2 == 0 { "ann" } else { "bob" },
            "created_at": ts(1 + n / 24, n % 24), "updated_at": ts(1 + n / 24, n % 24),
            "labels": if n % 3 == 0 { json!(["bug"]) } else { json!([]) },
            "events": [],
        });
        if n % 50 == 0 {
            i["comments"] = json!([{"user": "ann", "body": format!("comment on {n}"), "created_at": ts(20, 1)}]);
            i["updated_at"] = json!(ts(20, 1));
        }
        big_issues.push(i);
    }
    let mut repos = json!({
        "widgets": {
            "description": "Widgets: é, 🦀, \"quotes\" \\ back", "homepage": "https://example.org/w",
            "labels": [{"name": "bug", "color": "d73a4a", "description": "Something is broken"},
                       {"name": "help wanted", "color": "008672", "description": null}],
            "milestones": [
                {"number": 1, "title": "v1", "state": "open", "description": "First", "creator": "ann",
                 "due_on": "2024-06-01T07:00:00Z", "created_at": ts(1, 0), "updated_at": ts(2, 0)},
                {"number": 2, "title": "v0", "state": "closed", "creator": "ann",
                 "created_at": ts(1, 1), "updated_at": ts(1, 2), "closed_at": ts(1, 2)}],
            "issues": [
                {"number": 1, "title": "Crash on start", "body": "It crashes.\n\n```\ntrace\n```", "user": "bob",
                 "labels": ["bug"], "milestone": 1, "assignee": "ann",
                 "created_at": ts(2, 10), "updated_at": ts(3, 10),
                 "comments": [{"user": "ann", "body": "Confirmed — ünïcode", "created_at": ts(2, 11)},
                              {"user": "bob", "body": "Thanks", "created_at": ts(2, 12), "updated_at": ts(3, 10)}],
                 "events": [{"actor": "ann", "event": "labeled", "created_at": ts(2, 10)},
                            {"actor": "ann", "event": "referenced", "commit_id": "1111111111111111111111111111111111111111", "created_at": ts(2, 13)}]},
                {"number": 2, "title": "Add feature", "body": "Please review", "user": "ann", "state": "closed",
                 "closed_at": ts(5, 0), "created_at": ts(4, 0), "updated_at": ts(5, 0), "labels": ["help wanted"],
                 "events": [{"actor": "ann", "event": "merged", "commit_id": "2222222222222222222222222222222222222222", "created_at": ts(5, 0)}],
                 "pull": {"head_ref": "feature", "head_sha": "3333333333333333333333333333333333333333",
                          "base_ref": "main", "base_sha": "4444444444444444444444444444444444444444",
                          "merged_at": ts(5, 0), "merge_commit_sha": "2222222222222222222222222222222222222222",
                          "reviews": [{"user": "bob", "state": "APPROVED", "body": "LGTM", "submitted_at": ts(4, 5),
                                       "commit_id": "3333333333333333333333333333333333333333"}],
                          "review_comments": [{"user": "bob", "body": "nit: spacing", "path": "src/lib.rs",
                                               "line": 3, "created_at": ts(4, 4)}]}},
                {"number": 3, "title": "Question", "body": null, "user": "carol", "created_at": ts(6, 0),
                 "updated_at": ts(6, 0), "state": "closed", "closed_at": ts(6, 0)}],
            "commit_comments": [
                {"commit_id": "1111111111111111111111111111111111111111", "user": "ann", "body": "Nice", "path": "README",
                 "line": 1, "position": 1, "created_at": ts(2, 1), "updated_at": ts(2, 1)},
                {"commit_id": "5555555555555555555555555555555555555555", "user": "bob", "body": "Hmm",
                 "created_at": ts(2, 2), "updated_at": ts(2, 5)},
                {"commit_id": "1111111111111111111111111111111111111111", "user": "bob", "body": "Agreed",
                 "created_at": ts(2, 3), "updated_at": ts(2, 4)}],
            "releases": [
                {"tag_name": "v1.0", "name": "One", "body": "Notes é", "created_at": ts(7, 0), "published_at": ts(7, 1),
                 "assets": [{"name": "widgets-1.0.tar.gz", "content_type": "application/gzip",
                             "data_b64": "H4sIAAAAAAAAA+3BAQ0AAADCoPdPbQ43oAAAAAAAAAAAAIA3A5reHScAKAAA",
                             "updated_at": ts(7, 2)},
                            {"name": "checksums.txt", "content_type": "text/plain", "data": "abc  widgets-1.0.tar.gz\n",
                             "updated_at": ts(7, 3)}]},
                {"tag_name": null, "name": "Draft", "body": "wip", "draft": true, "created_at": ts(8, 0),
                 "published_at": null}]
        },
        "empty": {"description": null, "has_wiki": true},
        "lfs": {"description": "LFS", "has_wiki": false},
        "big": {"description": "Many issues", "has_wiki": false, "issues": big_issues,
                "labels": [{"name": "bug", "color": "d73a4a", "description": null}]},
    });
    if with_410 {
        repos["noissues"] =
            json!({"description": "Issues off", "has_wiki": false, "issues_410": true});
    }
    json!({
        "token": TOKEN,
        "orgs": {"acme": {
            "id": 7,
            "members": [{"login": "ann", "role": "admin"}, {"login": "bob"}, {"login": "carol"}],
            "teams": [{"name": "Core", "slug": "core", "permission": "push", "members": ["ann", "bob"],
                       "repos": ["widgets", "big"]},
                      {"name": "Docs Team", "slug": "docs-team", "permission": "pull", "members": ["carol"],
                       "repos": []}],
            "repos": repos,
        }}
    })
}

/// Make the git side of [`acme_world`] on `fake`: `widgets` (main and
/// feature branches, an annotated and a lightweight tag, `refs/pull/2/head`,
/// a wiki), `empty` (no commit), `lfs` (an LFS-tracked file whose object
/// the fake's LFS store holds), `big` and `noissues` (one commit).
pub fn publish_acme(home: &TestHome, fake: &FakeGithub, work: &Path) {
    let w = work.join("widgets");
    sh(
        home,
        &format!(
            "git init -q -b main '{w}' && cd '{w}' && echo 'hello' > README && git add README && git commit -qm first \
             && git tag -a v1.0 -m 'release 1.0' && git checkout -q -b feature && echo more >> README \
             && git commit -qam second && git tag light && git checkout -q main",
            w = w.display()
        ),
    );
    fake.publish(home, "acme", "widgets", &w);
    let bare = fake.git_root.join("acme/widgets.git");
    sh(
        home,
        &format!(
            "git --git-dir='{b}' update-ref refs/pull/2/head refs/heads/feature",
            b = bare.display()
        ),
    );
    let wiki = work.join("widgets-wiki");
    sh(
        home,
        &format!(
            "git init -q -b master '{d}' && cd '{d}' && echo '# Home' > Home.md && git add . && git commit -qm wiki",
            d = wiki.display()
        ),
    );
    fake.publish(home, "acme", "widgets.wiki", &wiki);
    let empty = fake.git_root.join("acme/empty.git");
    sh(home, &format!("git init -q --bare '{}'", empty.display()));
    let data = b"large binary content\n".repeat(100);
    let oid = fake.lfs_object(&data);
    let l = work.join("lfs");
    std::fs::create_dir_all(&l).unwrap();
    std::fs::write(
        l.join("blob.bin"),
        format!(
            "version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {}\n",
            data.len()
        ),
    )
    .unwrap();
    std::fs::write(
        l.join(".gitattributes"),
        "*.bin filter=lfs diff=lfs merge=lfs -text\n",
    )
    .unwrap();
    sh(
        home,
        &format!(
            "cd '{d}' && git init -q -b main && git add . && git commit -qm lfs",
            d = l.display()
        ),
    );
    fake.publish(home, "acme", "lfs", &l);
    for name in ["big", "noissues"] {
        let d = work.join(name);
        sh(
            home,
            &format!(
                "git init -q -b main '{d}' && cd '{d}' && echo {name} > f && git add f && git commit -qm {name}",
                d = d.display()
            ),
        );
        fake.publish(home, "acme", name, &d);
    }
}

/// Wait until `f` holds or `secs` pass.
pub fn wait_until(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(secs) {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

//! Deltaic's github output as data. strata never holds Deltaic's code, so
//! what Deltaic's github source writes for the fake's `acme` world is
//! recorded in `tests/fixtures/github/deltaic-acme.json` ([`FIXTURE`]): every
//! directory and file outside the git mirrors (path, mode, xattrs; files
//! with their bytes and, where Deltaic set it, their mtime) and every git
//! command Deltaic ran (argv, working directory, success), from which the
//! mirrors are made again with the git CLI ([`materialise`]).
//!
//! The oracle ([`Oracle`]): with `DELTAIC_SRC` naming a Deltaic checkout,
//! Deltaic's own github source runs against the fake
//! (`tests/support/github/run_deltaic.py`, in the venv
//! `scripts/install-test-deps.sh --deltaic` makes) with git behind a wrapper
//! that logs each call; [`capture`] turns its root into a [`Recording`],
//! which must equal the fixture, or, with `STRATA_RECORD_DELTAIC=1`,
//! replaces it.
//!
//! Invariants: the fixture names no port, path or time of the run that made
//! it (`{base}` and `{root}` stand for the fake's URL and the root); an mtime
//! is recorded only when it is older than the run, that is when Deltaic set
//! it from the API (issues, milestones, commit comments, assets); others are
//! the time Deltaic wrote the file, and [`materialise`] leaves them at the
//! time it writes it.

use super::env::{self, TestHome};
use super::github::{FakeGithub, TOKEN};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::FileTimes;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The recording, relative to the repository.
pub const FIXTURE: &str = "tests/fixtures/github/deltaic-acme.json";

/// The units Deltaic backs up, in order (`deltaic github backup acme [REPO]`):
/// the organization, then each repository of the world without a 410.
pub const UNITS: &[&str] = &["acme", "acme/widgets", "acme/empty", "acme/lfs", "acme/big"];

/// What Deltaic's github source wrote into an empty root.
#[derive(Serialize, Deserialize, PartialEq, Debug, Clone)]
pub struct Recording {
    /// Prose for the reader; not compared.
    pub about: Vec<String>,
    /// The Deltaic commit that wrote it, when known; not compared.
    pub deltaic_commit: Option<String>,
    /// `ORG` or `ORG/REPO`: the `deltaic github backup` commands, in order.
    pub units: Vec<String>,
    /// Every git command Deltaic ran, in order.
    pub git: Vec<GitCall>,
    /// Every directory outside the mirrors, parents first.
    pub dirs: Vec<Dir>,
    /// Every file outside the mirrors, by path.
    pub files: Vec<File>,
}

/// One git command as Deltaic ran it (through `github-git-path`).
#[derive(Serialize, Deserialize, PartialEq, Debug, Clone)]
pub struct GitCall {
    /// The arguments after `git`; `{base}` is the fake's web URL, `{root}`
    /// the backup root.
    pub args: Vec<String>,
    /// The working directory relative to the root, `None` for Deltaic's own
    /// (outside the root: a clone into an absolute path).
    pub cwd: Option<String>,
    /// Whether it exited 0 (a wiki that does not exist fails its clone,
    /// which Deltaic ignores).
    pub ok: bool,
}

#[derive(Serialize, Deserialize, PartialEq, Debug, Clone)]
pub struct Dir {
    pub path: String,
    /// Octal permission bits, e.g. `0755`.
    pub mode: String,
    pub xattrs: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize, PartialEq, Debug, Clone)]
pub struct File {
    pub path: String,
    pub mode: String,
    /// Seconds since the epoch, when Deltaic set it (whole seconds).
    pub mtime: Option<i64>,
    pub xattrs: BTreeMap<String, String>,
    /// The bytes, when they are UTF-8 (all of Deltaic's JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The bytes otherwise (a binary asset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base64: Option<String>,
}

impl File {
    pub fn bytes(&self) -> Vec<u8> {
        match (&self.text, &self.base64) {
            (Some(t), None) => t.clone().into_bytes(),
            (None, Some(b)) => base64::engine::general_purpose::STANDARD
                .decode(b)
                .unwrap_or_else(|e| panic!("{}: bad base64: {e}", self.path)),
            _ => panic!("{}: exactly one of text and base64", self.path),
        }
    }
}

fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// The committed recording.
pub fn load() -> Recording {
    let p = repo_path(FIXTURE);
    let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Replace the committed recording (`STRATA_RECORD_DELTAIC=1`).
pub fn store(rec: &Recording) {
    let p = repo_path(FIXTURE);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    let mut text = serde_json::to_string_pretty(rec).unwrap();
    text.push('\n');
    std::fs::write(&p, text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
}

/// The prose kept at the top of the fixture.
fn about() -> Vec<String> {
    [
        "What Deltaic's own github source (sources/github.py, github3.py 0.9.6) wrote into an",
        "empty root for the fake GitHub's `acme` world (tests/it/support/github.rs acme_world),",
        "one `deltaic github backup` per unit. Data, not Deltaic's code. Mirrors are not stored:",
        "`git` lists the commands Deltaic ran, which the test runs again. `{base}` is the fake's",
        "URL, `{root}` the root; an mtime is given only where Deltaic set it. Regenerate with",
        "STRATA_RECORD_DELTAIC=1 DELTAIC_SRC=<deltaic checkout> cargo test --test it github_deltaic_byte_identity",
        "(docs/testing.md); without STRATA_RECORD_DELTAIC, DELTAIC_SRC checks this file against Deltaic.",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

fn mode_of(m: &std::fs::Metadata) -> String {
    format!("{:04o}", m.permissions().mode() & 0o7777)
}

pub fn xattrs_of(p: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for name in xattr::list(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())) {
        let name = name.to_string_lossy().into_owned();
        // why: only the user namespace is a program's own (security.* is the
        // host's SELinux or capabilities, not Deltaic's)
        if !name.starts_with("user.") {
            continue;
        }
        let v = xattr::get(p, &name).unwrap().unwrap_or_default();
        let v = String::from_utf8(v)
            .unwrap_or_else(|_| panic!("{}: xattr {name} is not UTF-8", p.display()));
        out.insert(name, v);
    }
    out
}

/// An mtime older than the run (with a margin for the file system's coarse
/// clock) was set by Deltaic; a newer one is when it wrote the file.
fn set_mtime_of(m: &std::fs::Metadata, path: &str, started: SystemTime) -> Option<i64> {
    let before = started - Duration::from_mins(1);
    let cut = i64::try_from(before.duration_since(UNIX_EPOCH).unwrap().as_secs()).unwrap();
    (m.mtime() < cut).then(|| {
        assert_eq!(m.mtime_nsec(), 0, "{path}: Deltaic sets whole seconds");
        m.mtime()
    })
}

/// A git wrapper for `github-git-path`: runs the real git, then appends one
/// line to `log`: the working directory, the exit status and the arguments,
/// each ended by a NUL.
pub fn git_wrapper(dir: &Path, log: &Path) -> PathBuf {
    let git = env::find_program("git").expect("git");
    let w = dir.join("git-logged");
    let script = format!(
        "#!/bin/sh\n'{git}' \"$@\"\nst=$?\n{{ printf '%s\\0' \"$PWD\" \"$st\" \"$@\"; printf '\\n'; }} >> '{log}'\nexit $st\n",
        git = git.display(),
        log = log.display()
    );
    std::fs::write(&w, script).unwrap();
    std::fs::set_permissions(&w, std::fs::Permissions::from_mode(0o755)).unwrap();
    w
}

fn placeholders(s: &str, base: &str, root: &Path) -> String {
    s.replace(&root.display().to_string(), "{root}")
        .replace(base, "{base}")
}

fn parse_git_log(log: &Path, base: &str, root: &Path) -> Vec<GitCall> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|line| {
            let mut f: Vec<&str> = line.split('\0').collect();
            assert_eq!(
                f.pop(),
                Some(""),
                "a git log line ends with a NUL: {line:?}"
            );
            let (cwd, status, args) = (f[0], f[1], &f[2..]);
            GitCall {
                args: args.iter().map(|a| placeholders(a, base, root)).collect(),
                cwd: Path::new(cwd)
                    .strip_prefix(root)
                    .ok()
                    .map(|r| r.to_string_lossy().into_owned()),
                ok: status == "0",
            }
        })
        .collect()
}

/// The directories the successful clones of `git` made, relative to the root.
fn mirrors(git: &[GitCall]) -> Vec<String> {
    git.iter()
        .filter(|c| c.ok && c.args.first().is_some_and(|a| a == "clone"))
        .map(|c| {
            let dest = c.args.last().unwrap();
            dest.strip_prefix("{root}/")
                .unwrap_or_else(|| panic!("a clone outside the root: {dest}"))
                .to_owned()
        })
        .collect()
}

fn under(rel: &str, dirs: &[String]) -> bool {
    dirs.iter()
        .any(|d| rel == d || rel.starts_with(&format!("{d}/")))
}

/// Turn the root Deltaic wrote (its run started at `started`, its git calls
/// logged in `git_log` by [`git_wrapper`]) into a [`Recording`].
pub fn capture(
    root: &Path,
    started: SystemTime,
    git_log: &Path,
    base: &str,
    deltaic_commit: Option<String>,
) -> Recording {
    let git = parse_git_log(git_log, base, root);
    let skip = mirrors(&git);
    let mut dirs = Vec::new();
    let mut files = Vec::new();
    for e in walkdir::WalkDir::new(root).min_depth(1).sort_by_file_name() {
        let e = e.unwrap();
        let rel = e
            .path()
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if under(&rel, &skip) {
            continue;
        }
        let m = e.path().symlink_metadata().unwrap();
        if m.is_dir() {
            dirs.push(Dir {
                mode: mode_of(&m),
                xattrs: xattrs_of(e.path()),
                path: rel,
            });
        } else if m.is_file() {
            let bytes = std::fs::read(e.path()).unwrap();
            let (text, base64) = match String::from_utf8(bytes) {
                Ok(t) => (Some(t), None),
                Err(b) => (
                    None,
                    Some(base64::engine::general_purpose::STANDARD.encode(b.into_bytes())),
                ),
            };
            files.push(File {
                mode: mode_of(&m),
                mtime: set_mtime_of(&m, &rel, started),
                xattrs: xattrs_of(e.path()),
                text,
                base64,
                path: rel,
            });
        } else {
            panic!("{rel}: Deltaic wrote something neither file nor directory");
        }
    }
    Recording {
        about: about(),
        deltaic_commit,
        units: UNITS.iter().map(|u| (*u).to_owned()).collect(),
        git,
        dirs,
        files,
    }
}

/// The differences between two recordings (prose and commit aside), one
/// line each; empty when equal.
pub fn differences(want: &Recording, got: &Recording) -> Vec<String> {
    let mut out = Vec::new();
    if want.units != got.units {
        out.push(format!("units: {:?} became {:?}", want.units, got.units));
    }
    if want.git != got.git {
        out.push(format!("git calls: {:#?}\nbecame {:#?}", want.git, got.git));
    }
    let dw: BTreeMap<&str, &Dir> = want.dirs.iter().map(|d| (d.path.as_str(), d)).collect();
    let dg: BTreeMap<&str, &Dir> = got.dirs.iter().map(|d| (d.path.as_str(), d)).collect();
    for (p, d) in &dw {
        match dg.get(p) {
            None => out.push(format!("{p}/: missing")),
            Some(g) if g != d => out.push(format!("{p}/: {d:?} became {g:?}")),
            Some(_) => {}
        }
    }
    for p in dg.keys().filter(|p| !dw.contains_key(*p)) {
        out.push(format!("{p}/: new"));
    }
    let fw: BTreeMap<&str, &File> = want.files.iter().map(|f| (f.path.as_str(), f)).collect();
    let fg: BTreeMap<&str, &File> = got.files.iter().map(|f| (f.path.as_str(), f)).collect();
    for (p, f) in &fw {
        let Some(g) = fg.get(p) else {
            out.push(format!("{p}: missing"));
            continue;
        };
        if f.bytes() != g.bytes() {
            out.push(format!(
                "{p}: bytes differ:\n  recorded {:?}\n  deltaic  {:?}",
                String::from_utf8_lossy(&f.bytes()),
                String::from_utf8_lossy(&g.bytes())
            ));
        }
        if (&f.mode, f.mtime, &f.xattrs) != (&g.mode, g.mtime, &g.xattrs) {
            out.push(format!(
                "{p}: mode/mtime/xattrs {:?} became {:?}",
                (&f.mode, f.mtime, &f.xattrs),
                (&g.mode, g.mtime, &g.xattrs)
            ));
        }
    }
    for p in fg.keys().filter(|p| !fw.contains_key(*p)) {
        out.push(format!("{p}: new"));
    }
    out
}

/// An askpass helper that answers git as Deltaic's `dt-askpass` does: the
/// token as the user name, an empty password.
fn askpass(dir: &Path) -> PathBuf {
    let p = dir.join("test-askpass");
    std::fs::write(
        &p,
        "#!/bin/sh\ncase \"$1\" in *Username*) echo \"$DT_ASKPASS_USER\";; *Password*) echo \"$DT_ASKPASS_PASS\";; *) exit 2;; esac\n",
    )
    .unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

/// Run `args` under umask 022 from `cwd` (Deltaic's files and mirrors were
/// made under it: the modes must not depend on the caller's umask).
pub fn umask022(home: &TestHome, prog: &Path) -> std::process::Command {
    let mut c = home.command("sh");
    c.args(["-c", "umask 022 && exec \"$0\" \"$@\""]).arg(prog);
    c
}

fn parse_mode(m: &str, path: &str) -> u32 {
    u32::from_str_radix(m, 8).unwrap_or_else(|e| panic!("{path}: mode {m}: {e}"))
}

/// Make in `root` (absent or empty) what Deltaic wrote: directories and
/// files with their bytes, modes, xattrs and recorded mtimes, and the
/// mirrors by running Deltaic's git commands again against `fake`.
pub fn materialise(rec: &Recording, root: &Path, home: &TestHome, fake: &FakeGithub) {
    std::fs::create_dir_all(root).unwrap();
    for d in &rec.dirs {
        std::fs::create_dir_all(root.join(&d.path)).unwrap();
    }
    for f in &rec.files {
        std::fs::write(root.join(&f.path), f.bytes()).unwrap();
    }
    let git = env::find_program("git").expect("git");
    let ask = askpass(home.path());
    let root_s = root.display().to_string();
    for call in &rec.git {
        let args: Vec<String> = call
            .args
            .iter()
            .map(|a| a.replace("{root}", &root_s).replace("{base}", &fake.base()))
            .collect();
        let mut c = umask022(home, &git);
        c.args(&args)
            .env("GIT_ASKPASS", &ask)
            .env("DT_ASKPASS_USER", TOKEN)
            .env("DT_ASKPASS_PASS", "");
        if let Some(cwd) = &call.cwd {
            c.current_dir(root.join(cwd));
        }
        let out = c.output().unwrap();
        assert_eq!(
            out.status.success(),
            call.ok,
            "git {args:?}: Deltaic's call {} but this one {}:\n{}",
            if call.ok { "succeeded" } else { "failed" },
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for f in &rec.files {
        let p = root.join(&f.path);
        for (k, v) in &f.xattrs {
            xattr::set(&p, k, v.as_bytes()).unwrap();
        }
        std::fs::set_permissions(
            &p,
            std::fs::Permissions::from_mode(parse_mode(&f.mode, &f.path)),
        )
        .unwrap();
        if let Some(t) = f.mtime {
            let t = UNIX_EPOCH + Duration::from_secs(u64::try_from(t).unwrap());
            std::fs::File::options()
                .write(true)
                .open(&p)
                .unwrap()
                .set_times(FileTimes::new().set_modified(t).set_accessed(t))
                .unwrap();
        }
    }
    for d in rec.dirs.iter().rev() {
        let p = root.join(&d.path);
        for (k, v) in &d.xattrs {
            xattr::set(&p, k, v.as_bytes()).unwrap();
        }
        std::fs::set_permissions(
            &p,
            std::fs::Permissions::from_mode(parse_mode(&d.mode, &d.path)),
        )
        .unwrap();
    }
}

/// Everything under a root, mirrors included: path -> (kind, mode, xattrs,
/// bytes or link target, mtime when older than `started`).
pub type Tree = BTreeMap<String, (char, String, BTreeMap<String, String>, Vec<u8>, Option<i64>)>;

pub fn tree(root: &Path, started: SystemTime) -> Tree {
    let mut out = Tree::new();
    for e in walkdir::WalkDir::new(root).min_depth(1) {
        let e = e.unwrap();
        let rel = e
            .path()
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let m = e.path().symlink_metadata().unwrap();
        let (kind, content) = if m.is_dir() {
            ('d', Vec::new())
        } else if m.is_symlink() {
            (
                'l',
                std::fs::read_link(e.path())
                    .unwrap()
                    .into_os_string()
                    .into_encoded_bytes(),
            )
        } else {
            ('f', std::fs::read(e.path()).unwrap())
        };
        let mtime = if kind == 'f' {
            set_mtime_of(&m, &rel, started)
        } else {
            None
        };
        let xattrs = if kind == 'l' {
            BTreeMap::new()
        } else {
            xattrs_of(e.path())
        };
        out.insert(rel, (kind, mode_of(&m), xattrs, content, mtime));
    }
    out
}

/// The differences between two trees, one line each.
pub fn tree_differences(deltaic: &Tree, made: &Tree) -> Vec<String> {
    let mut out = Vec::new();
    for (p, a) in deltaic {
        match made.get(p) {
            None => out.push(format!("{p}: Deltaic's, not made again")),
            Some(b) if a != b => {
                let mut s = format!("{p}:");
                if a.0 != b.0 || a.1 != b.1 {
                    let _ = write!(s, " kind/mode {}{} vs {}{}", a.0, a.1, b.0, b.1);
                }
                if a.2 != b.2 {
                    let _ = write!(s, " xattrs {:?} vs {:?}", a.2, b.2);
                }
                if a.3 != b.3 {
                    let _ = write!(
                        s,
                        " bytes {:?} vs {:?}",
                        String::from_utf8_lossy(&a.3),
                        String::from_utf8_lossy(&b.3)
                    );
                }
                if a.4 != b.4 {
                    let _ = write!(s, " mtime {:?} vs {:?}", a.4, b.4);
                }
                out.push(s);
            }
            Some(_) => {}
        }
    }
    for p in made.keys().filter(|p| !deltaic.contains_key(*p)) {
        out.push(format!("{p}: made, not Deltaic's"));
    }
    out
}

/// The oracle mode: Deltaic's checkout and the python of its venv.
pub struct Oracle {
    pub src: PathBuf,
    pub python: PathBuf,
    /// `STRATA_RECORD_DELTAIC=1`: write the fixture instead of checking it.
    pub record: bool,
}

impl Oracle {
    /// `Some` when `DELTAIC_SRC` is set. A set `DELTAIC_SRC` without the
    /// venv or without Deltaic's github source is a failure: the oracle was
    /// asked for and cannot run.
    pub fn from_env() -> Option<Oracle> {
        let src = PathBuf::from(std::env::var_os("DELTAIC_SRC")?);
        // why: a checkout (src/deltaic/...) or its src directory
        let src = [src.join("src"), src.clone()]
            .into_iter()
            .find(|d| d.join("deltaic/sources/github.py").is_file())
            .unwrap_or_else(|| {
                panic!(
                    "DELTAIC_SRC={}: no deltaic/sources/github.py there or under src/",
                    src.display()
                )
            });
        let python = deltaic_python().unwrap_or_else(|| {
            panic!(
                "DELTAIC_SRC is set but Deltaic's venv is missing: run \
                 `scripts/install-test-deps.sh --deltaic` (or set STRATA_DELTAIC_VENV)"
            )
        });
        let record = std::env::var_os("STRATA_RECORD_DELTAIC").is_some_and(|v| v == "1");
        Some(Oracle {
            src,
            python,
            record,
        })
    }

    /// The commit of the checkout, when it is a git checkout.
    pub fn commit(&self, home: &TestHome) -> Option<String> {
        let out = home
            .command("git")
            .arg("-C")
            .arg(&self.src)
            .args(["rev-parse", "HEAD"])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// Back up every unit of [`UNITS`] into `root` with Deltaic's own
    /// github source, its git calls going through `git` ([`git_wrapper`]).
    pub fn run(&self, home: &TestHome, fake: &FakeGithub, root: &Path, git: &Path) {
        for unit in UNITS {
            let (org, repo) = match unit.split_once('/') {
                Some((o, r)) => (o, Some(r)),
                None => (*unit, None),
            };
            let mut c = umask022(home, &self.python);
            c.arg(repo_path("tests/support/github/run_deltaic.py"))
                .arg(&self.src)
                .arg(fake.base())
                .arg(TOKEN)
                .arg(root)
                .arg(git)
                .arg(org);
            if let Some(r) = repo {
                c.arg(r);
            }
            let out = c.output().unwrap();
            assert!(
                out.status.success(),
                "Deltaic's github backup {unit} failed:\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// The python of Deltaic's venv (`scripts/install-test-deps.sh --deltaic`),
/// if made.
fn deltaic_python() -> Option<PathBuf> {
    let venv = std::env::var_os("STRATA_DELTAIC_VENV")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/strata-deltaic-venv"))
        })?;
    let marker = venv.join(".strata-deltaic-venv-complete");
    let py = venv.join("bin/python");
    (marker.is_file() && py.is_file()).then_some(py)
}

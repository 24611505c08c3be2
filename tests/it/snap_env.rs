//! What the snapshot tests need from the environment: strict mode, loud
//! skips, root detection, the built binaries, and running a binary with a
//! clean environment (no `STRATA_*`, no `SUDO_*`, a temp `HOME`).
//! A stand-in for `support::env` until that lands on this branch.

#![allow(dead_code)] // why: each test file uses a different subset

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn strict() -> bool {
    std::env::var_os("STRATA_TEST_STRICT").is_some_and(|v| v == "1")
}

/// `ok`, or: a panic under strict mode, a loud skip (false) otherwise.
#[track_caller]
pub fn require(what: &str, ok: bool) -> bool {
    if ok {
        return true;
    }
    let test = std::thread::current()
        .name()
        .unwrap_or("<this test>")
        .to_owned();
    assert!(
        !strict(),
        "{test} needs {what}; STRATA_TEST_STRICT=1 makes that a failure"
    );
    let _ = writeln!(std::io::stderr(), "\n*** SKIPPED: {test} needs {what} ***");
    false
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

pub fn have(program: &str) -> bool {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .any(|d| Path::new(d).join(program).is_file())
}

pub fn strata_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_strata"))
}

pub fn helper_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_strata-snapshot"))
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A command with an empty environment plus `PATH` and `HOME`.
#[allow(clippy::disallowed_methods)] // why: tests drive the real binaries and tools directly
pub fn clean(program: impl AsRef<std::ffi::OsStr>, home: &Path) -> Command {
    let mut c = Command::new(program);
    c.env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
        .env("HOME", home)
        .env("LC_ALL", "C");
    c
}

/// Run a tool (as the test's user) and insist it succeeds.
#[allow(clippy::disallowed_methods)] // why: test fixtures set up real devices and users
#[track_caller]
pub fn sh(program: &str, args: &[&str]) -> Output {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

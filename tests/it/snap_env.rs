//! What the snapshot tests need beyond `support::env` (whose strict mode,
//! loud skips and root detection they reuse): the two built binaries, the
//! repository, and running a program with an empty environment (no
//! `STRATA_*`, no `SUDO_*`) and a given `HOME`, possibly as another uid.

#![allow(dead_code)] // why: each test file uses a different subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub use crate::support::env::{is_root, require};

/// Whether `program` is installed (PATH, /usr/sbin, /sbin).
pub fn have(program: &str) -> bool {
    crate::support::env::have_program(program)
        || ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
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

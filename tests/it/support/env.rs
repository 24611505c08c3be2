//! The test environment: strict mode, prerequisites that skip loudly, root
//! detection, and a temporary `HOME` from which the real binaries are run
//! with a clean environment (STYLE rule 10).
//!
//! Invariants: a [`TestHome`] command never inherits a `STRATA_*` variable
//! or the caller's `HOME`; only the variables it sets itself and a short
//! allow-list pass through. Spawning is confined to [`TestHome::command`].

use std::ffi::OsStr;
use std::io::{self, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::unistd::{Gid, Uid, User};

/// Environment variables a [`TestHome`] command inherits from the test
/// process; everything else is dropped.
// why: TMPDIR so temp files land where the runner wants them; the backtrace
// knobs for readable failures; LLVM_PROFILE_FILE so coverage runs still
// collect data from the spawned binaries.
const INHERITED_VARS: &[&str] = &[
    "PATH",
    "TMPDIR",
    "RUST_BACKTRACE",
    "RUST_LIB_BACKTRACE",
    "LLVM_PROFILE_FILE",
];

/// True when `STRATA_TEST_STRICT=1`: missing prerequisites fail tests
/// instead of skipping them (set by `.ci/run`).
pub fn strict() -> bool {
    std::env::var_os("STRATA_TEST_STRICT").is_some_and(|v| v == "1")
}

/// Checks one prerequisite of the running test. Returns `ok` unchanged when
/// it holds. When it does not: panics under [`strict`], otherwise prints a
/// loud `SKIPPED: <test> needs <what>` on stderr and returns false, and the
/// caller returns early.
///
/// ```ignore
/// if !env::require("root", env::is_root()) { return; }
/// ```
#[track_caller]
pub fn require(what: &str, ok: bool) -> bool {
    if ok {
        return true;
    }
    let test = current_test_name();
    let at = std::panic::Location::caller();
    assert!(
        !strict(),
        "{test} needs {what} ({at}); STRATA_TEST_STRICT=1 turns a missing prerequisite into a failure"
    );
    // why: straight to fd 2, not eprintln!, which libtest captures and
    // hides for a passing test; a skip must show in every run's output.
    let _ = writeln!(
        io::stderr(),
        "\n*** SKIPPED: {test} needs {what} ({at}) ***"
    );
    false
}

/// The libtest name of the running test (its thread's name), or a
/// placeholder when the test runs on the main thread.
fn current_test_name() -> String {
    match std::thread::current().name() {
        // why: with --test-threads=1 libtest may run tests on "main".
        Some(name) if name != "main" => name.to_owned(),
        _ => "<this test>".to_owned(),
    }
}

/// True when the effective uid is 0.
pub fn is_root() -> bool {
    Uid::effective().is_root()
}

/// True when `name` is an executable file in `PATH`, `/usr/sbin` or
/// `/sbin` (sbin is often missing from a non-root `PATH`).
pub fn have_program(name: &str) -> bool {
    find_program(name).is_some()
}

/// The path of the executable `name`, searched like [`have_program`].
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join(name))
        .find(|candidate| {
            candidate
                .metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// An unprivileged account that exists in the password database
/// (`nobody`), for running the backup side as a non-root user. ssh needs
/// the running uid to have a passwd entry, so an arbitrary uid will not do.
pub fn unprivileged_user() -> Option<User> {
    User::from_name("nobody").ok().flatten()
}

/// The path of the `strata` binary built for this test run.
pub fn strata_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_strata"))
}

/// A `strata` command run from `home` (see [`TestHome::command`]). For a
/// home of another user, the binary is the home's own link to it (see
/// [`expose_bin`]).
/// Hold the flock at `path` (made, with its directory, if missing), as
/// another strata process holding that lock would.
pub fn hold_flock(path: &Path) -> nix::fcntl::Flock<std::fs::File> {
    std::fs::create_dir_all(path.parent().expect("a lock in a directory")).unwrap();
    let file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(path)
        .unwrap();
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map_err(|(_, e)| e)
        .unwrap()
}

pub fn strata(home: &TestHome) -> Command {
    match &home.bin {
        Some(bin) => home.command(bin),
        None => home.command(strata_bin()),
    }
}

/// Makes the built binary `bin` runnable by another user: a hard link (or,
/// across filesystems, a copy) named like it in `dir`, mode 0755. Cargo's
/// target dir may sit under a directory other users cannot search, such as
/// `/root/.cache`; `dir` must be one they can.
pub fn expose_bin(bin: &Path, dir: &Path) -> PathBuf {
    let to = dir.join(bin.file_name().expect("a binary path has a file name"));
    if std::fs::hard_link(bin, &to).is_err() {
        std::fs::copy(bin, &to)
            .unwrap_or_else(|e| panic!("copy {} to {}: {e}", bin.display(), to.display()));
    }
    std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", to.display()));
    to
}

/// A temporary directory used as `HOME` by the commands a test runs,
/// deleted on drop. Optionally owned by, and running commands as, an
/// unprivileged user.
pub struct TestHome {
    dir: tempfile::TempDir,
    user: Option<(Uid, Gid)>,
    /// The user's own link to `strata`, for a home of another user.
    bin: Option<PathBuf>,
}

impl TestHome {
    /// A fresh home owned by the current user; commands run as the
    /// current user.
    pub fn new() -> TestHome {
        let dir = tempfile::Builder::new()
            .prefix("strata-test-home.")
            .tempdir()
            .expect("create a temporary HOME under TMPDIR");
        TestHome {
            dir,
            user: None,
            bin: None,
        }
    }

    /// A fresh home owned by `uid:gid` (mode 0700); commands run as that
    /// user with no supplementary groups. Needs root.
    pub fn for_user(uid: Uid, gid: Gid) -> TestHome {
        let home = TestHome::new();
        nix::unistd::chown(home.path(), Some(uid), Some(gid))
            .expect("chown the temporary HOME to the test user (needs root)");
        let bin_dir = home.join(".test-bin");
        std::fs::create_dir(&bin_dir).expect("create the home's binary directory");
        let bin = expose_bin(&strata_bin(), &bin_dir);
        TestHome {
            user: Some((uid, gid)),
            bin: Some(bin),
            ..home
        }
    }

    /// The home directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `rel` under the home directory.
    pub fn join(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The uid/gid commands run as, when not the current user's.
    pub fn user(&self) -> Option<(Uid, Gid)> {
        self.user
    }

    /// A command for the program `bin` (a name looked up in `PATH`, or a
    /// path) with a clean environment: only `PATH`, `TMPDIR`, the backtrace
    /// and coverage variables are inherited; `HOME` is this directory,
    /// `LANG`/`LC_ALL` are `C`, and no `STRATA_*` variable is set. The test
    /// adds its own variables with `.env()`. The working directory is the
    /// home.
    // why: tests drive the real binaries, not strata::exec; STYLE rule 2
    // confines Command::new to src/exec for the product, not its tests.
    #[allow(clippy::disallowed_methods)]
    pub fn command(&self, bin: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new(bin);
        cmd.env_clear();
        for name in INHERITED_VARS {
            if let Some(value) = std::env::var_os(name) {
                cmd.env(name, value);
            }
        }
        cmd.env("HOME", self.path())
            .env("LANG", "C")
            .env("LC_ALL", "C")
            .current_dir(self.path());
        if let Some((uid, gid)) = self.user {
            // why: std drops supplementary groups when a root parent sets a
            // uid, so the child is exactly uid:gid.
            cmd.uid(uid.as_raw()).gid(gid.as_raw());
            if let Some(user) = User::from_uid(uid).ok().flatten() {
                cmd.env("USER", &user.name).env("LOGNAME", &user.name);
            }
        }
        cmd
    }
}

impl Default for TestHome {
    fn default() -> Self {
        TestHome::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_environment_is_clean() {
        // why: std::env::set_var is unsafe in edition 2024 (other test
        // threads read the environment), so no STRATA_* variable is planted
        // here; under CI the runner's own STRATA_TEST_STRICT=1 is the probe.
        let home = TestHome::new();
        let out = home
            .command("env")
            .arg("-0")
            .output()
            .expect("run env(1) from the test home");
        assert!(out.status.success(), "{out:?}");
        let vars: Vec<&[u8]> = out
            .stdout
            .split(|&b| b == 0)
            .filter(|v| !v.is_empty())
            .collect();
        assert!(!vars.iter().any(|v| v.starts_with(b"STRATA_")), "{vars:?}");
        let home_var = [
            b"HOME=".as_slice(),
            home.path().as_os_str().as_encoded_bytes(),
        ]
        .concat();
        assert!(vars.contains(&home_var.as_slice()), "{vars:?}");
        assert!(vars.contains(&b"LANG=C".as_slice()), "{vars:?}");
        assert!(vars.iter().any(|v| v.starts_with(b"PATH=")), "{vars:?}");
        let names: Vec<&[u8]> = vars
            .iter()
            .map(|v| v.split(|&b| b == b'=').next().unwrap_or_default())
            .collect();
        for name in names {
            let name = String::from_utf8_lossy(name);
            assert!(
                INHERITED_VARS.contains(&name.as_ref())
                    || ["HOME", "LANG", "LC_ALL"].contains(&name.as_ref()),
                "unexpected variable {name} in a TestHome command"
            );
        }
        assert_eq!(home.command("x").get_current_dir(), Some(home.path()));
    }

    #[test]
    fn root_commands_run_as_the_home_user() {
        if !require("root", is_root()) {
            return;
        }
        let Some(nobody) = unprivileged_user() else {
            require("a 'nobody' user", false);
            return;
        };
        let home = TestHome::for_user(nobody.uid, nobody.gid);
        let out = home.command("id").output().expect("run id(1) as nobody");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.starts_with(&format!("uid={}(", nobody.uid)), "{text}");
        assert!(
            text.contains(&format!("groups={}(", nobody.gid)),
            "no supplementary groups: {text}"
        );
        let touch = home
            .command("touch")
            .arg(home.join("f"))
            .status()
            .expect("run touch");
        assert!(touch.success(), "the user can write its home");
    }

    #[test]
    fn strata_runs_with_the_temporary_home() {
        let home = TestHome::new();
        let out = strata(&home)
            .arg("--version")
            .output()
            .expect("run the strata binary");
        // why: only that it ran from the temp home; its output is another
        // test's business.
        assert!(out.status.code().is_some(), "{out:?}");
    }

    #[test]
    fn require_passes_through_ok() {
        assert!(require("nothing", true));
        if !strict() {
            assert!(!require(
                "nothing (a self-test of env::require, not a real skip)",
                false
            ));
        }
    }

    #[test]
    fn finds_programs_in_sbin() {
        assert!(have_program("sh"));
        assert!(!have_program("strata-no-such-program"));
    }
}

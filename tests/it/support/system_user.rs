//! A throwaway system user for one test (`useradd --system`), deleted when
//! the value drops: the backup user of the rsync and coda tests, which owns
//! the backup root and has no privilege. Needs root; skips loudly (or fails
//! under `STRATA_TEST_STRICT=1`) without it.

use std::process::{Command, Output};

use nix::unistd::{Gid, Uid, User};

use super::env;

/// A system user created for one test and deleted when it ends.
pub struct SystemUser {
    pub name: String,
    pub uid: Uid,
    pub gid: Gid,
}

impl SystemUser {
    /// Create `strata-rs<pid><tag>` (with its own group), or skip.
    #[track_caller]
    pub fn create(tag: &str) -> Option<SystemUser> {
        if !env::require("root (to create a system user)", env::is_root())
            || !env::require("useradd (apt: passwd)", env::have_program("useradd"))
        {
            return None;
        }
        let name = format!("strata-rs{}{tag}", std::process::id());
        useradd(&name, &["--user-group"]);
        let user = User::from_name(&name)
            .expect("read the passwd entry")
            .expect("the user just created exists");
        Some(SystemUser {
            name,
            uid: user.uid,
            gid: user.gid,
        })
    }

    /// A second account `strata-rs<pid><tag>` with `of`'s uid and group:
    /// what a second machine's backup user is (CephFS checks permissions
    /// by uid, so every appliance runs strata as the same uid).
    #[track_caller]
    pub fn alias(of: &SystemUser, tag: &str) -> SystemUser {
        let name = format!("strata-rs{}{tag}", std::process::id());
        let (uid, gid) = (of.uid.as_raw().to_string(), of.gid.as_raw().to_string());
        useradd(&name, &["--non-unique", "--uid", &uid, "--gid", &gid]);
        SystemUser {
            name,
            uid: of.uid,
            gid: of.gid,
        }
    }
}

impl Drop for SystemUser {
    fn drop(&mut self) {
        // why: best effort; a leftover account is visible in /etc/passwd with our prefix
        let _ = tool("userdel").arg(&self.name).output();
    }
}

// why: tests drive real tools (useradd, userdel); STYLE rule 2 confines
// Command::new to src/exec for the product, not its tests.
#[allow(clippy::disallowed_methods)]
fn tool(program: &str) -> Command {
    Command::new(program)
}

/// `useradd --system` of `name` without a home, with `ids` (its uid and group).
#[track_caller]
fn useradd(name: &str, ids: &[&str]) {
    let out = run(tool("useradd").arg("--system").args(ids).args([
        "--no-create-home",
        "--home-dir",
        "/nonexistent",
        "--shell",
        "/bin/sh",
        name,
    ]));
    assert!(
        out.status.success(),
        "useradd {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("could not run {cmd:?}: {e}"))
}

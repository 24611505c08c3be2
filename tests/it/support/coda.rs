//! A fake Coda server for the coda tests: the fake `volutil` and
//! `codadump2tar` of `tests/support/coda/` (Python, standard library only)
//! copied into a temporary directory with a server state beside them, to be
//! run as root through the test's real sshd (`coda-volutil-path` and
//! `coda-codadump2tar-path` point at them).
//!
//! Owns that directory: `bin/` (the two tools), `server/volumes/<name>/`
//! (`id`, and `live/`, the volume's tree the test writes into),
//! `server/clones/` (what `volutil backup` copies), `server/log` (every
//! volutil call) and `server/faults/` (faults the next calls inject, see the
//! tools' documentation). Deleted on drop.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use super::env;

/// The fake tools and their server state.
pub struct CodaServer {
    dir: tempfile::TempDir,
}

impl CodaServer {
    /// Install the tools, or `None` after [`env::require`] reported a
    /// missing python3.
    #[track_caller]
    pub fn install() -> Option<CodaServer> {
        if !env::require(
            "/usr/bin/python3 (apt: python3)",
            Path::new("/usr/bin/python3").is_file(),
        ) {
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("strata-coda-server.")
            .tempdir()
            .expect("create the fake Coda server's directory");
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/coda");
        std::fs::create_dir(dir.path().join("bin")).expect("mkdir bin");
        for tool in ["volutil", "codadump2tar"] {
            let to = dir.path().join("bin").join(tool);
            std::fs::copy(src.join(tool), &to).expect("copy a fake Coda tool");
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755))
                .expect("chmod a fake Coda tool");
        }
        for d in ["server/volumes", "server/clones", "server/faults"] {
            std::fs::create_dir_all(dir.path().join(d)).expect("mkdir the server state");
        }
        std::fs::write(dir.path().join("server/log"), "").expect("create the call log");
        Some(CodaServer { dir })
    }

    pub fn volutil(&self) -> PathBuf {
        self.dir.path().join("bin/volutil")
    }

    pub fn codadump2tar(&self) -> PathBuf {
        self.dir.path().join("bin/codadump2tar")
    }

    /// Create a volume replica with the hex id `id` (e.g. `7f000001`) and
    /// return its live tree (empty, 0755, owned by root).
    pub fn add_volume(&self, name: &str, id: &str) -> PathBuf {
        let v = self.dir.path().join("server/volumes").join(name);
        std::fs::create_dir_all(v.join("live")).expect("mkdir the live volume");
        std::fs::set_permissions(v.join("live"), std::fs::Permissions::from_mode(0o755))
            .expect("chmod the live volume");
        std::fs::write(v.join("id"), format!("{id}\n")).expect("write the volume id");
        v.join("live")
    }

    /// The live tree of a volume.
    pub fn live(&self, name: &str) -> PathBuf {
        self.dir
            .path()
            .join("server/volumes")
            .join(name)
            .join("live")
    }

    /// Every volutil call so far, one line each (`volutil dump -i -1 7e000001`).
    pub fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("server/log"))
            .expect("read the call log")
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Forget the calls so far.
    pub fn clear_calls(&self) {
        std::fs::write(self.dir.path().join("server/log"), "").expect("clear the call log");
    }

    /// Arm a fault for the next `count` calls that meet it (`None`: every
    /// call), or set a fault's parameter (`c2t-truncate-bytes`,
    /// `c2t-member-kind`).
    pub fn fault(&self, name: &str, value: &str) {
        std::fs::write(self.dir.path().join("server/faults").join(name), value)
            .expect("arm a fault");
    }

    /// Disarm every fault.
    pub fn clear_faults(&self) {
        for e in std::fs::read_dir(self.dir.path().join("server/faults")).expect("list faults") {
            std::fs::remove_file(e.expect("a fault").path()).expect("disarm a fault");
        }
    }
}

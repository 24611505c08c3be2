//! Fixtures of the archive tests: throwaway gpg keys, a moto S3 server on
//! 127.0.0.1, and a backup root with one snapshot and configs pointing at
//! local, S3 and (with the fake Glacier + `SimpleDB`) aws archivers.

use crate::support::env::{self, TestHome, strata};
use crate::support::fake_aws::FakeAws;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A GNUPGHOME with a signing key (no passphrase), an encryption key, and a
/// third key ("mallory") that must never be trusted.
pub struct Gpg {
    pub dir: PathBuf,
    pub signer: String,
    pub recipient: String,
    pub mallory: String,
    home: PathBuf,
}

fn gpg_cmd(home: &TestHome, dir: &Path) -> Command {
    let mut c = home.command("gpg");
    c.env("GNUPGHOME", dir)
        .args(["--batch", "--no-tty", "--passphrase", ""]);
    c
}

fn fingerprint(home: &TestHome, dir: &Path, uid: &str) -> String {
    let out = gpg_cmd(home, dir)
        .args(["--with-colons", "--list-keys", uid])
        .output()
        .unwrap();
    text(&out.stdout)
        .lines()
        .find_map(|l| {
            l.strip_prefix("fpr:")
                .map(|r| r.trim_matches(':').to_owned())
        })
        .expect("a fingerprint")
}

impl Gpg {
    pub fn new(home: &TestHome) -> Gpg {
        let dir = home.join("gnupg");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .unwrap();
        for (uid, algo, usage) in [
            ("Signer <signer@strata.test>", "ed25519", "sign"),
            ("Archive <archive@strata.test>", "future-default", "default"),
            ("Mallory <mallory@strata.test>", "future-default", "default"),
        ] {
            let out = gpg_cmd(home, &dir)
                .args(["--quick-gen-key", uid, algo, usage, "never"])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "gpg key generation: {}",
                text(&out.stderr)
            );
        }
        Gpg {
            signer: fingerprint(home, &dir, "signer@strata.test"),
            recipient: fingerprint(home, &dir, "archive@strata.test"),
            mallory: fingerprint(home, &dir, "mallory@strata.test"),
            home: home.path().to_owned(),
            dir,
        }
    }

    /// Run gpg with extra arguments on `input`, writing `output`.
    pub fn run(&self, home: &TestHome, args: &[&str], input: &Path, output: &Path) {
        let out = gpg_cmd(home, &self.dir)
            .args(["--trust-model", "always", "--compress-algo", "none", "-o"])
            .arg(output)
            .args(args)
            .arg(input)
            .output()
            .unwrap();
        assert!(out.status.success(), "gpg {args:?}: {}", text(&out.stderr));
    }
}

impl Drop for Gpg {
    fn drop(&mut self) {
        // why: each GNUPGHOME starts its own gpg-agent, which would outlive the test
        let _ = TestHome::new()
            .command("gpgconf")
            .env("GNUPGHOME", &self.dir)
            .env("HOME", &self.home)
            .args(["--kill", "all"])
            .output();
    }
}

/// A moto S3 server on 127.0.0.1 at a free port, killed by PID on drop.
pub struct Moto {
    child: Child,
    pub endpoint: String,
}

pub fn moto_server() -> Option<PathBuf> {
    let venv = std::env::var_os("STRATA_TEST_VENV")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/strata-test-venv"))
        })?;
    let p = venv.join("bin/moto_server");
    p.is_file().then_some(p)
}

impl Moto {
    /// Start moto and create `bucket`; `None` (after a loud skip) when moto
    /// is not installed (`scripts/install-test-deps.sh`).
    pub fn start(home: &TestHome, bucket: &str) -> Option<Moto> {
        let bin = moto_server();
        if !env::require("moto_server (scripts/install-test-deps.sh)", bin.is_some()) {
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = home
            .command(bin?)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let t = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(t.elapsed() < Duration::from_secs(30), "moto did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let out = home
            .command("curl")
            .args(["-sf", "-X", "PUT", &format!("{}/{bucket}", moto.endpoint)])
            .output()
            .unwrap();
        assert!(out.status.success(), "create bucket: {}", text(&out.stderr));
        Some(moto)
    }

    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).unwrap()
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig).unwrap();
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A backup root with dump units, a snapshot of it, and configs.
pub struct World {
    pub home: TestHome,
    pub root: PathBuf,
    pub spool: PathBuf,
    pub store: PathBuf,
    pub gpg: Option<Gpg>,
    pub moto: Option<Moto>,
    pub aws: Option<FakeAws>,
    pub snapshot: String,
    units: String,
}

pub const COMPRESSIONS: [&str; 5] = ["gzip", "lzop", "lz4", "zstd", "none"];

impl World {
    /// `prepare(root)` fills the root (unit directories) before the run;
    /// `units` is the YAML of the `dump:` section.
    pub fn new(units: &str, gpg: bool, s3: bool, prepare: impl FnOnce(&Path)) -> Option<World> {
        let home = TestHome::new();
        let moto = if s3 {
            Some(Moto::start(&home, "strata")?)
        } else {
            None
        };
        let root = home.join("backup");
        std::fs::create_dir(&root).unwrap();
        prepare(&root);
        let gpg = gpg.then(|| Gpg::new(&home));
        let mut w = World {
            spool: home.join("spool"),
            store: home.join("store"),
            root,
            gpg,
            moto,
            aws: None,
            snapshot: String::new(),
            units: units.to_owned(),
            home,
        };
        let cfg = w.config("plain", false, "");
        let out = w.strata(&cfg, &["run"]);
        assert!(
            out.status.success(),
            "run: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        let mut snaps: Vec<String> = std::fs::read_dir(w.root.join(".snapshots"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect();
        snaps.sort();
        w.snapshot = snaps.pop().expect("a snapshot");
        Some(w)
    }

    /// Start the fake Glacier + `SimpleDB` server; configs then get one
    /// `aws-<c>` profile per compression. False (after a loud skip) when it
    /// cannot run.
    pub fn start_aws(&mut self) -> bool {
        self.aws = FakeAws::start(&self.home);
        self.aws.is_some()
    }

    /// The aws namespace of config `name`'s profile of compression `c`.
    #[must_use]
    pub fn namespace(name: &str, c: &str) -> String {
        format!("strata-{name}-{c}")
    }

    /// The snapshot's copy of `unit`.
    pub fn snapshot_unit(&self, unit: &str) -> PathBuf {
        self.root.join(".snapshots").join(&self.snapshot).join(unit)
    }

    /// Write config `name`: encrypted or not, with `profiles` (YAML under
    /// `archivers:`, indented by 4) plus one `local-<c>` and (with moto)
    /// one `s3-<c>` profile per compression.
    pub fn config(&self, name: &str, encrypt: bool, profiles: &str) -> PathBuf {
        let mut s = format!(
            "settings:\n  root: {}\n  snapshot-store: dir\n  archive-spool: {}\n",
            self.root.display(),
            self.spool.display()
        );
        if encrypt {
            let g = self.gpg.as_ref().expect("gpg keys");
            let _ = write!(
                s,
                "  archive-gpg-signing-key: {}\n  archive-gpg-recipients:\n    - {}\n",
                g.signer, g.recipient
            );
        }
        s.push_str("  archivers:\n");
        for c in COMPRESSIONS {
            let _ = write!(
                s,
                "    local-{c}:\n      archiver: local\n      local-path: {}/{name}/{c}\n      compression: {c}\n      workers: 2\n",
                self.store.display()
            );
            if let Some(m) = &self.moto {
                let _ = write!(
                    s,
                    "    s3-{c}:\n      archiver: s3\n      s3-bucket: strata\n      s3-prefix: {name}/{c}/\n      s3-endpoint: {}\n      s3-access-key-id: testing\n      s3-secret-access-key: testing\n      compression: {c}\n",
                    m.endpoint
                );
            }
            if let Some(a) = &self.aws {
                s.push_str(&a.profile(&format!("aws-{c}"), &World::namespace(name, c), c));
            }
        }
        s.push_str(profiles);
        s.push_str("dump:\n");
        s.push_str(&self.units);
        let path = self.home.join(format!("{name}.yaml"));
        std::fs::File::create(&path)
            .unwrap()
            .write_all(s.as_bytes())
            .unwrap();
        path
    }

    pub fn cmd(&self, config: &Path) -> Command {
        let mut c = strata(&self.home);
        c.arg("-c").arg(config).arg("--allow-root");
        if let Some(g) = &self.gpg {
            c.env("GNUPGHOME", &g.dir);
        }
        if self.aws.is_some() {
            // why: jobs poll every 0.1 s; the budget's "hour" is a minute, so a test near the top of an hour waits seconds, not minutes
            c.env("STRATA_AWS_POLL_SECS", "0.1")
                .env("STRATA_AWS_SLOT_SECS", "60");
        }
        c
    }

    pub fn strata(&self, config: &Path, args: &[&str]) -> Output {
        self.cmd(config).args(args).output().expect("run strata")
    }

    /// Run strata and insist on success; returns stdout.
    pub fn ok(&self, config: &Path, args: &[&str]) -> String {
        let out = self.strata(config, args);
        assert!(
            out.status.success(),
            "strata {args:?} failed: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }
}

/// Every entry under `dir` (relative), for "nothing was written" checks.
pub fn entries(dir: &Path) -> Vec<PathBuf> {
    if !dir.exists() {
        return Vec::new();
    }
    walkdir::WalkDir::new(dir)
        .min_depth(1)
        .into_iter()
        .map(|e| e.unwrap().path().strip_prefix(dir).unwrap().to_owned())
        .collect()
}

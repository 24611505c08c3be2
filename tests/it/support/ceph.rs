//! A throwaway single-node Ceph (mon, 1 memstore OSD, radosgw) for the rbd and
//! rgw tests, started by `tests/support/ceph/start-ceph.sh` in a temp dir.
//!
//! Owns: the cluster's lifetime. `Drop` runs `stop-ceph.sh DIR`, which kills
//! exactly the daemons whose PIDs it recorded (never by name). A watcher started
//! with the cluster stops it too if the test binary dies without dropping it.
//!
//! Two ways in: [`Ceph::start`] gives a test its own cluster (~4 s);
//! [`Ceph::shared`] hands out one cluster to every test that holds an `Arc` at
//! the same time and stops it when the last one lets go. On a shared cluster a
//! test must use names of its own (images, buckets, users).
//!
//! Prerequisites: the Ceph packages (start-ceph.sh installs them when missing,
//! which needs root and apt). A failed start is an `Err` carrying the script's
//! log tail, so that the caller can fail or skip loudly.

#![allow(dead_code)] // why: each test file uses a different part of the fixture

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use strata::exec::Cmd;

/// A running throwaway cluster; stopped on drop.
pub struct Ceph {
    /// The cluster's directory (ceph.conf, keyring, data, logs, pids).
    dir: PathBuf,
    /// Holds `dir`; removed after the daemons are stopped.
    _tmp: tempfile::TempDir,
    /// Every `export NAME='value'` line start-ceph.sh printed.
    env: BTreeMap<String, String>,
}

fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/ceph")
}

impl Ceph {
    /// Start a cluster of this test's own (with radosgw).
    pub fn start() -> Result<Ceph, String> {
        let tmp = tempfile::Builder::new()
            .prefix("strata-ceph.")
            // why: under /tmp so the admin socket paths stay under the 108-byte limit
            .tempdir_in("/tmp")
            .map_err(|e| format!("temp dir: {e}"))?;
        let dir = tmp.path().join("cluster");
        let out = Cmd::new("timeout")
            .arg("300")
            .arg(scripts_dir().join("start-ceph.sh"))
            .arg(&dir)
            .env("CEPH_STOP_WHEN_PID_EXITS", std::process::id().to_string())
            .run()
            .map_err(|e| format!("start-ceph.sh failed: {e}"))?;
        let env = parse_exports(&out.stdout_text());
        if !env.contains_key("CEPH_CONF") {
            return Err(format!(
                "start-ceph.sh printed no CEPH_CONF; stdout: {}",
                out.stdout_text()
            ));
        }
        Ok(Ceph {
            dir,
            _tmp: tmp,
            env,
        })
    }

    /// The cluster shared by every test that currently holds one; started on
    /// first use, stopped when the last `Arc` is dropped.
    pub fn shared() -> Result<Arc<Ceph>, String> {
        static SHARED: Mutex<Weak<Ceph>> = Mutex::new(Weak::new());
        // why: a test that panicked while holding the lock must not poison the others
        let mut slot = SHARED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(ceph) = slot.upgrade() {
            return Ok(ceph);
        }
        let ceph = Arc::new(Ceph::start()?);
        *slot = Arc::downgrade(&ceph);
        Ok(ceph)
    }

    /// The cluster's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `CEPH_CONF`: the conf file naming the mon and the keyring. With it in
    /// the environment, `rbd`, `ceph` and `radosgw-admin` need no other flag.
    pub fn conf(&self) -> &str {
        &self.env["CEPH_CONF"]
    }

    /// The keyring holding `client.admin`.
    pub fn keyring(&self) -> &str {
        &self.env["CEPH_TEST_KEYRING"]
    }

    /// The pool made for RBD images (`rbd`).
    pub fn rbd_pool(&self) -> &str {
        &self.env["CEPH_RBD_POOL"]
    }

    /// radosgw's S3 endpoint, `http://127.0.0.1:PORT`.
    pub fn rgw_endpoint(&self) -> &str {
        &self.env["RGW_ENDPOINT"]
    }

    /// radosgw's https endpoint (`https://127.0.0.1:PORT`), whose
    /// certificate is signed by [`Ceph::rgw_ca_file`]'s throwaway CA.
    pub fn rgw_ssl_endpoint(&self) -> &str {
        &self.env["RGW_SSL_ENDPOINT"]
    }

    /// The PEM file of the CA that signed radosgw's https certificate.
    pub fn rgw_ca_file(&self) -> &str {
        &self.env["RGW_CA_FILE"]
    }

    /// The S3 keys of the radosgw admin user (`testadmin`, admin flag set).
    pub fn rgw_admin_keys(&self) -> (&str, &str) {
        (&self.env["RGW_ACCESS_KEY"], &self.env["RGW_SECRET_KEY"])
    }

    /// The radosgw admin user's uid.
    pub fn rgw_admin_uid(&self) -> &str {
        &self.env["RGW_ADMIN_UID"]
    }

    /// Every variable start-ceph.sh exported (`CEPH_CONF`, `CEPH_TEST_KEYRING`,
    /// `CEPH_TEST_DIR`, `CEPH_RBD_POOL`, `RGW_ENDPOINT`, `RGW_ACCESS_KEY`,
    /// `RGW_SECRET_KEY`, AWS_*), to put in a child's environment.
    pub fn env(&self) -> Vec<(String, String)> {
        self.env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Add [`Ceph::env`] to a command.
    pub fn with_env(&self, mut cmd: Cmd) -> Cmd {
        for (k, v) in &self.env {
            cmd = cmd.env(k, v);
        }
        cmd
    }

    /// `rbd` pointed at this cluster; add arguments and run.
    pub fn rbd_cmd(&self) -> Cmd {
        self.with_env(Cmd::new("rbd"))
    }

    /// `ceph` pointed at this cluster.
    pub fn ceph_cmd(&self) -> Cmd {
        self.with_env(Cmd::new("ceph"))
    }

    /// `radosgw-admin` pointed at this cluster.
    pub fn radosgw_admin_cmd(&self) -> Cmd {
        self.with_env(Cmd::new("radosgw-admin"))
    }

    /// Run `rbd ARGS`, panicking with its stderr on failure; returns stdout.
    pub fn rbd<I, S>(&self, args: I) -> Vec<u8>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let cmd = self.rbd_cmd().args(args);
        match cmd.run() {
            Ok(out) => out.stdout,
            Err(e) => panic!("{e}"),
        }
    }
}

impl Drop for Ceph {
    fn drop(&mut self) {
        // why: a throwaway cluster needs no graceful shutdown; SIGKILL is ~4 s faster
        let res = Cmd::new("timeout")
            .arg("120")
            .arg(scripts_dir().join("stop-ceph.sh"))
            .arg(&self.dir)
            .env("CEPH_STOP_KILL", "1")
            .run();
        if let Err(e) = res {
            eprintln!(
                "warning: stopping the test Ceph cluster in {}: {e}",
                self.dir.display()
            );
        }
    }
}

/// `export NAME='value'   # comment` lines -> map.
fn parse_exports(text: &str) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.trim().strip_prefix("export ") else {
            continue;
        };
        let Some((name, value)) = rest.split_once('=') else {
            continue;
        };
        let value = value.strip_prefix('\'').and_then(|v| v.split_once('\''));
        if let Some((value, _comment)) = value {
            env.insert(name.to_owned(), value.to_owned());
        }
    }
    env
}

#[test]
fn parse_exports_reads_quoted_values_and_ignores_comments() {
    let env =
        parse_exports("export CEPH_CONF='/tmp/x/ceph.conf'\nexport K='a b'   # note\nnoise\n");
    assert_eq!(env["CEPH_CONF"], "/tmp/x/ceph.conf");
    assert_eq!(env["K"], "a b");
    assert_eq!(env.len(), 2);
}

#[test]
fn ceph_fixture_starts_serves_rbd_and_stops() {
    let ceph = match Ceph::start() {
        Ok(c) => c,
        Err(e) if std::env::var_os("STRATA_TEST_STRICT").is_some() => panic!("{e}"),
        Err(e) => {
            eprintln!("SKIPPED ceph_fixture_starts_serves_rbd_and_stops: {e}");
            return;
        }
    };
    let pool = ceph.rbd_pool().to_owned();
    ceph.rbd(["create", "--size", "4M", &format!("{pool}/fixture-probe")]);
    let ls = String::from_utf8(ceph.rbd(["ls", "--format=json", &pool])).unwrap();
    assert!(ls.contains("fixture-probe"), "{ls}");
    let dir = ceph.dir().to_owned();
    drop(ceph);
    assert!(!dir.exists(), "stop-ceph.sh removes the cluster dir");
}

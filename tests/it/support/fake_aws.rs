//! The fake Glacier + `SimpleDB` server (`tests/support/aws/fake_aws.py`,
//! Python standard library only) on 127.0.0.1 at a port of its choosing,
//! killed by PID on drop; and its control API (state, settings, faults).
//!
//! The fake is strict by default here: eventually consistent reads lag an
//! hour (so a read strata forgets to make consistent sees stale data), jobs
//! complete after 0.2 s.

use super::env::{self, TestHome};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

/// The credentials the fake accepts.
pub const ACCESS_KEY: &str = "AKIDSTRATATEST";
pub const SECRET: &str = "strata-test-secret";

/// The repository's `tests/support/aws/`.
#[must_use]
pub fn support_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/aws")
}

pub struct FakeAws {
    child: Child,
    pub endpoint: String,
    pub data: PathBuf,
}

impl FakeAws {
    /// Start the fake (its archives under `home/fake-aws`); `None` after a
    /// loud skip when python3 is missing.
    pub fn start(home: &TestHome) -> Option<FakeAws> {
        let python = Path::new("/usr/bin/python3");
        if !env::require("python3", python.exists()) {
            return None;
        }
        let data = home.join("fake-aws");
        let mut child = home
            .command(python)
            .arg(support_dir().join("fake_aws.py"))
            .arg("--data")
            .arg(&data)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start fake_aws.py");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped"))
            .read_line(&mut line)
            .expect("read the fake's port");
        let port: u16 = line
            .trim()
            .strip_prefix("listening ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("fake_aws.py said {line:?}"));
        let fake = FakeAws {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            data,
        };
        fake.config(&serde_json::json!({"job_delay": 0.2, "eventual_lag": 3600}));
        Some(fake)
    }

    fn post(&self, what: &str, body: &serde_json::Value) {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .new_agent();
        let mut r = agent
            .post(format!("{}/_control/{what}", self.endpoint))
            .send(body.to_string().as_bytes())
            .expect("fake control");
        let status = r.status().as_u16();
        let text = r.body_mut().read_to_string().unwrap_or_default();
        assert_eq!(status, 200, "control {what}: {text}");
    }

    /// Change settings (`job_delay`, `page_size`, `eventual_lag`, `job_ttl`).
    pub fn config(&self, settings: &serde_json::Value) {
        self.post("config", settings);
    }

    /// Make the next `count` calls of `op` fail with HTTP `status`.
    pub fn fail(&self, op: &str, count: u32, status: u16) {
        self.post(
            "fail",
            &serde_json::json!({"op": op, "count": count, "status": status}),
        );
    }

    /// Flip a byte of the next `count` archive job outputs.
    pub fn corrupt_job_output(&self, count: u32) {
        self.post("corrupt-job-output", &serde_json::json!({ "count": count }));
    }

    /// Forget every job (as after their 24 hours).
    pub fn expire_jobs(&self) {
        self.post("expire-jobs", &serde_json::json!({}));
    }

    /// Make every unfinished upload `secs` older.
    pub fn age_uploads(&self, secs: u64) {
        self.post("age-uploads", &serde_json::json!({ "seconds": secs }));
    }

    /// Everything the fake holds: `domains` (domain -> item -> [[name,
    /// value]]), `vaults` (vault -> archives, uploads), `jobs` (the log of
    /// initiated jobs), `counters` (calls per operation).
    #[must_use]
    pub fn state(&self) -> serde_json::Value {
        let mut r = ureq::get(format!("{}/_control/state", self.endpoint))
            .call()
            .expect("fake state");
        serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap()
    }

    /// The items of `domain`: item -> attributes (name, value) in order.
    #[must_use]
    pub fn items(&self, domain: &str) -> Vec<(String, Vec<(String, String)>)> {
        let s = self.state();
        let Some(items) = s["domains"][domain].as_object() else {
            return Vec::new();
        };
        let mut out: Vec<_> = items
            .iter()
            .map(|(name, attrs)| {
                let attrs = attrs
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| {
                        (
                            p[0].as_str().unwrap().to_owned(),
                            p[1].as_str().unwrap().to_owned(),
                        )
                    })
                    .collect();
                (name.clone(), attrs)
            })
            .collect();
        out.sort();
        out
    }

    /// The archives of `vault`: (id, size, description).
    #[must_use]
    pub fn archives(&self, vault: &str) -> Vec<(String, u64, String)> {
        let s = self.state();
        let mut out: Vec<_> = s["vaults"][vault]["archives"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|x| {
                        (
                            x["id"].as_str().unwrap().to_owned(),
                            x["size"].as_u64().unwrap(),
                            x["description"].as_str().unwrap().to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    }

    /// The archive-retrieval jobs initiated: (time, archive id, start, length).
    #[must_use]
    pub fn range_jobs(&self) -> Vec<(f64, String, u64, u64)> {
        self.state()["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|j| j["type"] == "archive-retrieval")
            .map(|j| {
                (
                    j["time"].as_f64().unwrap(),
                    j["archive_id"].as_str().unwrap().to_owned(),
                    j["start"].as_u64().unwrap(),
                    j["len"].as_u64().unwrap(),
                )
            })
            .collect()
    }

    /// Calls of `op` so far.
    #[must_use]
    pub fn calls(&self, op: &str) -> u64 {
        self.state()["counters"][op].as_u64().unwrap_or(0)
    }

    /// An aws archiver profile (YAML under `archivers:`, indented by 4) on
    /// this fake.
    #[must_use]
    pub fn profile(&self, name: &str, namespace: &str, compression: &str) -> String {
        format!(
            "    {name}:\n      archiver: aws\n      aws-access-key-id: {ACCESS_KEY}\n      aws-secret-access-key: {SECRET}\n      aws-region: us-east-1\n      aws-namespace: {namespace}\n      aws-glacier-endpoint: {ep}\n      aws-sdb-endpoint: {ep}\n      compression: {compression}\n      workers: 2\n",
            ep = self.endpoint
        )
    }
}

impl Drop for FakeAws {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

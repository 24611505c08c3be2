//! The fake Google Drive v3 + OAuth server (`tests/support/googledrive/fake_drive.py`,
//! Python's standard library only) on 127.0.0.1 at a port it picks, killed
//! by PID on drop; its control API (faults, counters, seeding) as calls.

use crate::support::env::{self, TestHome};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

/// The OAuth client the fake knows from the start.
pub const CLIENT_ID: &str = "test-client";
pub const CLIENT_SECRET: &str = "test-secret";
pub const SCOPES: &[&str] = &[
    "https://www.googleapis.com/auth/drive.file",
    "https://www.googleapis.com/auth/drive.appdata",
];

pub struct FakeDrive {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub dir: PathBuf,
    agent: ureq::Agent,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/googledrive/fake_drive.py")
}

impl FakeDrive {
    /// Start the fake with its state under `home`; `None` (after a loud
    /// skip) without python3.
    pub fn start(home: &TestHome) -> Option<FakeDrive> {
        if !env::require(
            "python3 (scripts/install-test-deps.sh)",
            env::have_program("python3"),
        ) {
            return None;
        }
        let dir = home.join("fake-drive");
        std::fs::create_dir_all(&dir).unwrap();
        let log = std::fs::File::create(dir.join("log")).unwrap();
        let mut child = home
            .command("python3")
            .arg(script())
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port: u16 = line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the fake Drive did not start: {line:?}"));
        Some(FakeDrive {
            child,
            base: format!("http://127.0.0.1:{port}"),
            dir,
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .max_redirects(0)
                .build()
                .new_agent(),
        })
    }

    pub fn token_url(&self) -> String {
        format!("{}/token", self.base)
    }

    /// POST /_control/<what> with `body`; the answer.
    pub fn control(&self, what: &str, body: &Value) -> Value {
        let mut r = self
            .agent
            .post(format!("{}/_control/{what}", self.base))
            .send_json(body)
            .unwrap();
        assert!(r.status().is_success(), "control {what}: {}", r.status());
        r.body_mut().read_json().unwrap()
    }

    /// Files, sessions and counters.
    pub fn state(&self) -> Value {
        self.agent
            .get(format!("{}/_control/state", self.base))
            .call()
            .unwrap()
            .body_mut()
            .read_json()
            .unwrap()
    }

    pub fn counter(&self, name: &str) -> u64 {
        self.state()["counters"][name].as_u64().unwrap()
    }

    /// Register a refresh token of the test client (what a sign-in would have made).
    pub fn refresh_token(&self, token: &str, scopes: &[&str]) {
        self.control(
            "refresh_token",
            &json!({"refresh_token": token, "client_id": CLIENT_ID, "scopes": scopes}),
        );
    }

    /// Answer one request of kind `op`, after letting `skip` pass, with
    /// `status`/`reason`/`message`.
    pub fn fault(&self, op: &str, skip: u32, status: u16, reason: &str, message: &str) {
        self.control(
            "fault",
            &json!({"op": op, "skip": skip, "status": status, "reason": reason, "message": message, "count": 1, "retry_after": 0}),
        );
    }

    /// Drop the connection of one request of kind `op`, after letting
    /// `skip` pass, once `after` bytes of its body went through.
    pub fn drop_after(&self, op: &str, skip: u32, after: u64) {
        self.control(
            "fault",
            &json!({"op": op, "skip": skip, "action": "drop", "after": after, "count": 1}),
        );
    }

    /// The stored files (not folders) named `name`.
    pub fn files_named(&self, name: &str) -> Vec<Value> {
        self.state()["files"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["name"] == name)
            .cloned()
            .collect()
    }

    /// A GET through the fake's agent (no redirects followed): status, Location, body.
    pub fn get(&self, url: &str) -> (u16, Option<String>, String) {
        let mut r = self.agent.get(url).call().unwrap();
        let loc = r
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = r.body_mut().read_to_string().unwrap_or_default();
        (r.status().as_u16(), loc, body)
    }
}

impl Drop for FakeDrive {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// strata's credentials file for `refresh_token` of the test client.
pub fn strata_credentials(refresh_token: &str) -> String {
    json!({
        "format": "strata-googledrive-1",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "refresh_token": refresh_token,
        "scopes": SCOPES,
    })
    .to_string()
}

/// Deltaic's oauth2client credentials file (as `Storage.put` wrote it).
pub fn deltaic_credentials(refresh_token: &str) -> String {
    json!({
        "_module": "oauth2client.client",
        "_class": "OAuth2Credentials",
        "access_token": "ya29.expired-long-ago",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "refresh_token": refresh_token,
        "token_expiry": "2015-03-01T12:00:00Z",
        "token_uri": "https://accounts.google.com/o/oauth2/token",
        "user_agent": "Deltaic",
        "revoke_uri": "https://accounts.google.com/o/oauth2/revoke",
        "id_token": null,
        "token_response": {"access_token": "ya29.expired-long-ago", "token_type": "Bearer", "expires_in": 3600, "refresh_token": refresh_token},
        "invalid": false
    })
    .to_string()
}

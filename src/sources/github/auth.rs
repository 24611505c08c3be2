//! `github auth`: check a personal access token (classic or fine-grained)
//! against the API, say which organizations it sees and what it lacks for
//! the configured ones, store it in a file (mode 0600) and print the
//! `github-token-file` line for the config. With `--device` and
//! `settings.github-client-id`, the token comes from GitHub's device flow
//! instead of a paste. (Deltaic's password flow is gone from GitHub since
//! 2020; there is none here.)

use super::api::{Api, ApiError, origin_of};
use crate::config::Config;
use crate::error::ExitCode;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The scopes a classic token needs: `repo` (private repositories, their
/// issues and releases) and `read:org` (teams and members).
pub const CLASSIC_SCOPES: &[&str] = &["repo", "read:org"];

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no token was given")]
    Empty,
    #[error(
        "--device needs settings.github-client-id (an OAuth app's client id with the device flow enabled)"
    )]
    NoClientId,
    #[error("the device flow failed: {0}")]
    Device(String),
}

/// Which classic scopes are missing from an `x-oauth-scopes` header
/// (`admin:org`/`write:org` include `read:org`).
#[must_use]
pub fn missing_scopes(header: &str) -> Vec<&'static str> {
    let have: Vec<&str> = header.split(',').map(str::trim).collect();
    CLASSIC_SCOPES
        .iter()
        .copied()
        .filter(|need| match *need {
            "read:org" => !have
                .iter()
                .any(|h| ["read:org", "write:org", "admin:org"].contains(h)),
            n => !have.contains(&n),
        })
        .collect()
}

/// The web host of an API URL: `https://api.github.com` ->
/// `https://github.com`; `https://HOST/api/v3` -> `https://HOST`.
#[must_use]
pub fn web_base(api_url: &str) -> String {
    let o = origin_of(api_url);
    if o == "https://api.github.com" {
        return "https://github.com".to_owned();
    }
    o
}

fn read_pasted() -> Result<String, AuthError> {
    let stdin = std::io::stdin();
    let tty = stdin.is_terminal();
    if tty {
        eprint!("Paste a personal access token (it is not shown): ");
        let _ = std::io::stderr().flush();
    }
    let echo = tty.then(|| set_echo(false)).flatten();
    let mut line = String::new();
    let r = stdin.lock().read_line(&mut line);
    if echo.is_some() {
        set_echo(true);
        eprintln!();
    }
    r.map_err(|source| AuthError::Io {
        path: PathBuf::from("<stdin>"),
        source,
    })?;
    let t = line.trim().to_owned();
    if t.is_empty() {
        return Err(AuthError::Empty);
    }
    Ok(t)
}

/// Turn the terminal's echo off or on (`stty`, on our own stdin).
fn set_echo(on: bool) -> Option<()> {
    crate::exec::Cmd::new("stty")
        .arg(if on { "echo" } else { "-echo" })
        .stdin_inherit()
        .run()
        .ok()
        .map(drop)
}

fn device_flow(config: &Config) -> Result<String, AuthError> {
    let client = config
        .settings
        .github
        .client_id
        .as_deref()
        .ok_or(AuthError::NoClientId)?;
    let web = web_base(&config.settings.github.api_url);
    let api = Api::new(&config.settings.github.api_url, None);
    let scope = CLASSIC_SCOPES.join(" ");
    let code = api.post_form(
        &format!("{web}/login/device/code"),
        &[("client_id", client), ("scope", &scope)],
    )?;
    let (Some(device), Some(user_code), Some(uri)) = (
        code["device_code"].as_str(),
        code["user_code"].as_str(),
        code["verification_uri"].as_str(),
    ) else {
        return Err(AuthError::Device(format!("unexpected answer: {code}")));
    };
    let mut interval = code["interval"].as_u64().unwrap_or(5);
    let expires = Instant::now() + Duration::from_secs(code["expires_in"].as_u64().unwrap_or(900));
    eprintln!("Open {uri} and enter the code {user_code}; waiting for GitHub...");
    loop {
        if Instant::now() > expires {
            return Err(AuthError::Device("the code expired".into()));
        }
        std::thread::sleep(Duration::from_secs(interval));
        let t = api.post_form(
            &format!("{web}/login/oauth/access_token"),
            &[
                ("client_id", client),
                ("device_code", device),
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ],
        )?;
        if let Some(tok) = t["access_token"].as_str() {
            return Ok(tok.to_owned());
        }
        match t["error"].as_str() {
            Some("authorization_pending") => {}
            Some("slow_down") => interval = t["interval"].as_u64().unwrap_or(interval + 5),
            Some(e) => return Err(AuthError::Device(e.to_owned())),
            None => return Err(AuthError::Device(format!("unexpected answer: {t}"))),
        }
    }
}

fn store(path: &Path, token: &str) -> Result<(), AuthError> {
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| AuthError::Io {
        path: path.to_owned(),
        source,
    };
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(io)?;
    }
    let tmp = path.with_extension("strata-tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io)?;
    writeln!(f, "{token}").map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// `github auth`.
pub fn auth(
    config: &Config,
    home: &Path,
    token_file: Option<PathBuf>,
    device: bool,
) -> Result<ExitCode, AuthError> {
    let token = if device {
        device_flow(config)?
    } else {
        read_pasted()?
    };
    let api = Api::new(&config.settings.github.api_url, Some(token.clone()));
    let (me, scopes) = match api.get_with_header(&api.url("/user"), "x-oauth-scopes") {
        Ok(x) => x,
        Err(e) if e.status() == Some(401) => {
            eprintln!("The API refused this token (401): it is wrong, expired or revoked.");
            return Ok(ExitCode::Failed);
        }
        Err(e) => return Err(e.into()),
    };
    println!(
        "The token belongs to {}.",
        me["login"].as_str().unwrap_or("an unknown user")
    );
    match scopes.as_deref() {
        Some(s) => {
            let missing = missing_scopes(s);
            if missing.is_empty() {
                println!("Classic token with the scopes strata needs ({s}).");
            } else {
                println!(
                    "Classic token, missing scopes: {} (private repositories need repo, teams and members need read:org).",
                    missing.join(", ")
                );
            }
        }
        None => println!(
            "Fine-grained token: give it read access to contents, issues, pull requests and metadata of the repositories, and to the organization's members."
        ),
    }
    let orgs: Vec<String> = api
        .list_all(&api.url("/user/orgs"))
        .unwrap_or_default()
        .iter()
        .filter_map(|o| o["login"].as_str().map(str::to_owned))
        .collect();
    println!(
        "Organizations it can see: {}",
        if orgs.is_empty() {
            "none".to_owned()
        } else {
            orgs.join(", ")
        }
    );
    let mut lacking = false;
    for o in &config.github {
        let probe = |path: &str| api.get_json(&api.url(&format!("{path}?per_page=1")));
        let repos = probe(&format!("/orgs/{}/repos", o.org));
        let teams = probe(&format!("/orgs/{}/teams", o.org));
        let line = match (&repos, &teams) {
            (Ok(_), Ok(_)) => "repositories and teams: ok".to_owned(),
            (Ok(_), Err(e)) => {
                lacking |= o.organization_metadata;
                format!(
                    "repositories ok; teams refused ({}): @organization needs read:org",
                    short(e)
                )
            }
            (Err(e), _) => {
                lacking = true;
                format!("repositories refused ({})", short(e))
            }
        };
        println!("  {}: {line}", o.org);
    }
    let path = token_file.unwrap_or_else(|| home.join(".config/strata/github-token"));
    store(&path, &token)?;
    println!(
        "Stored the token in {} (mode 0600). Add to the config:",
        path.display()
    );
    println!("settings:\n  github-token-file: {}", path.display());
    Ok(if lacking {
        ExitCode::Failed
    } else {
        ExitCode::Ok
    })
}

fn short(e: &ApiError) -> String {
    match e.status() {
        Some(s) => format!("HTTP {s}"),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_scopes_are_checked_with_their_supersets() {
        assert!(missing_scopes("repo, read:org").is_empty());
        assert!(missing_scopes("repo, admin:org, gist").is_empty());
        assert_eq!(missing_scopes("public_repo"), vec!["repo", "read:org"]);
        assert_eq!(missing_scopes("repo"), vec!["read:org"]);
    }

    #[test]
    fn the_web_host_follows_the_api() {
        assert_eq!(web_base("https://api.github.com"), "https://github.com");
        assert_eq!(
            web_base("https://ghe.example.org/api/v3"),
            "https://ghe.example.org"
        );
        assert_eq!(
            web_base("http://127.0.0.1:5000/api/v3"),
            "http://127.0.0.1:5000"
        );
    }
}

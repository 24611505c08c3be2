//! Signing in to Google: the credentials file, access tokens, and the two
//! flows that work today for an installed application.
//!
//! Owns:
//! - where the credentials are ([`locate`]): the configured
//!   `googledrive-credentials-file`, else `$XDG_CACHE_HOME/strata-googledrive-credentials.json`,
//!   else Deltaic's `deltaic-googledrive-credentials.json` beside it, used as
//!   it is (strata never writes Deltaic's file);
//! - their two formats, one reader: strata's own file and Deltaic's
//!   oauth2client `Storage` JSON share the field names `client_id`,
//!   `client_secret`, `refresh_token` (and `access_token`, `token_expiry`);
//! - access tokens ([`TokenSource`]): refreshed at the token endpoint when
//!   missing, about to expire, or refused by Drive (401), kept in memory;
//! - the installed-app loopback flow with PKCE ([`loopback_flow`]: a
//!   browser on this machine is sent back to `http://127.0.0.1:PORT/`) and
//!   the device flow for headless appliances ([`device_flow`]); Google
//!   blocked the out-of-band flow Deltaic used in January 2023;
//! - writing the credentials file 0600, atomically ([`write_credentials`]).
//!
//! Scopes: `drive.file` and `drive.appdata`, both allowed to the device
//! flow. App data belongs to the OAuth client's project: a Deltaic user
//! who keeps their client id sees their old sets.

use super::DriveError;
use super::api::Backoff;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Google's token endpoint.
pub const DEFAULT_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";
/// Google's consent page for the loopback flow.
pub const AUTH_URL: &str = "https://accounts.google.com/o/oauth2/v2/auth";
/// What strata asks for.
pub const SCOPES: &[&str] = &[
    "https://www.googleapis.com/auth/drive.file",
    "https://www.googleapis.com/auth/drive.appdata",
];
/// strata's credentials file, in the cache directory.
pub const STRATA_FILE: &str = "strata-googledrive-credentials.json";
/// Deltaic's, in the same directory.
pub const DELTAIC_FILE: &str = "deltaic-googledrive-credentials.json";
/// The `format` field of strata's file.
const FORMAT: &str = "strata-googledrive-1";

/// A refresh token and the OAuth client it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub client_id: String,
    pub client_secret: String,
    pub refresh_token: String,
    pub scopes: Vec<String>,
}

/// How a credentials file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Strata,
    /// Deltaic's oauth2client `Storage` file.
    Oauth2client,
}

/// The fields both formats share (oauth2client's names).
#[derive(Deserialize, Serialize)]
struct FileFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    format: Option<String>,
    #[serde(default, rename = "_class", skip_serializing)]
    class: Option<String>,
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    client_secret: String,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "scopes"
    )]
    scopes: Vec<String>,
}

/// oauth2client writes `scopes` as a list (newer) or a space-separated string.
fn scopes<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum S {
        List(Vec<String>),
        One(String),
        Null(()),
    }
    Ok(match S::deserialize(d)? {
        S::List(v) => v,
        S::One(s) => s.split_whitespace().map(str::to_owned).collect(),
        S::Null(()) => Vec::new(),
    })
}

/// Parse a credentials file's text (either format).
pub fn parse_credentials(text: &str) -> Result<(Credentials, Format), String> {
    let f: FileFields = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let format = if f.class.is_some() {
        Format::Oauth2client
    } else if f.format.as_deref() == Some(FORMAT) {
        Format::Strata
    } else {
        return Err(
            "neither strata's credentials nor oauth2client's (no `format` or `_class` field)"
                .into(),
        );
    };
    let refresh_token = f
        .refresh_token
        .filter(|t| !t.is_empty())
        .ok_or("it holds no refresh token")?;
    if f.client_id.is_empty() || f.client_secret.is_empty() {
        return Err("it lacks the client_id or client_secret".into());
    }
    Ok((
        Credentials {
            client_id: f.client_id,
            client_secret: f.client_secret,
            refresh_token,
            scopes: f.scopes,
        },
        format,
    ))
}

/// Read a credentials file.
pub fn read_credentials(path: &Path) -> Result<(Credentials, Format), DriveError> {
    let text = std::fs::read_to_string(path).map_err(|source| DriveError::CredentialsIo {
        path: path.to_owned(),
        source,
    })?;
    parse_credentials(&text).map_err(|reason| DriveError::BadCredentials {
        path: path.to_owned(),
        reason,
    })
}

/// Write `c` as strata's credentials file at `path`: mode 0600, atomically,
/// its directory made (0700) if missing.
pub fn write_credentials(path: &Path, c: &Credentials) -> Result<(), DriveError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let io = |source| DriveError::CredentialsIo {
        path: path.to_owned(),
        source,
    };
    let fields = FileFields {
        format: Some(FORMAT.to_owned()),
        class: None,
        client_id: c.client_id.clone(),
        client_secret: c.client_secret.clone(),
        refresh_token: Some(c.refresh_token.clone()),
        scopes: c.scopes.clone(),
    };
    let mut text = serde_json::to_vec_pretty(&fields).map_err(|e| io(std::io::Error::other(e)))?;
    text.push(b'\n');
    let dir = path.parent().unwrap_or(Path::new("."));
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io)?;
    }
    let mut tmp = tempfile::Builder::new()
        .prefix(".strata-credentials-")
        .permissions(std::fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)
        .map_err(io)?;
    tmp.write_all(&text).map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    crate::backup_root::sync_dir(dir).map_err(io)
}

/// The cache directory: `$XDG_CACHE_HOME` when absolute, else `~/.cache`.
#[must_use]
pub fn cache_dir() -> PathBuf {
    match std::env::var_os("XDG_CACHE_HOME").map(PathBuf::from) {
        Some(p) if p.is_absolute() => p,
        _ => std::env::var_os("HOME")
            .map_or_else(|| PathBuf::from("/"), PathBuf::from)
            .join(".cache"),
    }
}

/// Which credentials file to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Located {
    Use(PathBuf),
    /// None exists: the paths looked at.
    Missing(Vec<PathBuf>),
}

/// Where the credentials are: the configured file (whether or not it
/// exists, so that a typo is reported as such), else strata's default in
/// `cache`, else Deltaic's there. Pure but for `exists`.
pub fn locate(configured: Option<&Path>, cache: &Path, exists: impl Fn(&Path) -> bool) -> Located {
    if let Some(p) = configured {
        return Located::Use(p.to_owned());
    }
    let candidates = [cache.join(STRATA_FILE), cache.join(DELTAIC_FILE)];
    match candidates.iter().find(|p| exists(p)) {
        Some(p) => Located::Use(p.clone()),
        None => Located::Missing(candidates.to_vec()),
    }
}

/// Where `googledrive auth` writes: the configured file, else strata's
/// default (never Deltaic's file).
#[must_use]
pub fn auth_target(configured: Option<&Path>, cache: &Path) -> PathBuf {
    configured.map_or_else(|| cache.join(STRATA_FILE), Path::to_owned)
}

/// The device-flow endpoint of a token endpoint: its origin + `/device/code`
/// (Google: `https://oauth2.googleapis.com/device/code`).
#[must_use]
pub fn device_url(token_url: &str) -> String {
    let after_scheme = token_url.find("://").map_or(0, |i| i + 3);
    let origin_end = token_url[after_scheme..]
        .find('/')
        .map_or(token_url.len(), |i| after_scheme + i);
    format!("{}/device/code", &token_url[..origin_end])
}

#[derive(Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    scope: Option<String>,
}

#[derive(Deserialize, Default)]
struct TokenRefusal {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
}

/// What the token endpoint said to one request.
enum Grant {
    Ok(TokenAnswer),
    /// An OAuth error (`invalid_grant`, `authorization_pending`, ...).
    Refused(TokenRefusal),
}

/// POST a form to the token endpoint, retrying transport errors and 5xx.
fn token_request(
    agent: &ureq::Agent,
    url: &str,
    form: &[(&str, &str)],
    backoff: &Backoff,
) -> Result<Grant, DriveError> {
    let op = format!("asking {url} for a token");
    let mut attempt = 0;
    loop {
        let transient = match agent.post(url).send_form(form.iter().copied()) {
            Ok(mut r) => {
                let status = r.status().as_u16();
                let text = r
                    .body_mut()
                    .with_config()
                    .limit(1 << 20)
                    .lossy_utf8(true)
                    .read_to_string()
                    .unwrap_or_default();
                if (200..300).contains(&status) {
                    let a: TokenAnswer =
                        serde_json::from_str(&text).map_err(|e| DriveError::Protocol {
                            op: op.clone(),
                            detail: format!("unreadable token answer: {e}"),
                        })?;
                    return Ok(Grant::Ok(a));
                }
                if status < 500 && status != 429 {
                    let refusal = serde_json::from_str(&text).unwrap_or_else(|_| TokenRefusal {
                        error: format!("HTTP {status}"),
                        error_description: text.lines().next().unwrap_or("").to_owned(),
                    });
                    return Ok(Grant::Refused(refusal));
                }
                DriveError::Protocol {
                    op: op.clone(),
                    detail: format!("HTTP {status}"),
                }
            }
            Err(e) => DriveError::Http {
                op: op.clone(),
                source: Box::new(e),
            },
        };
        if attempt >= backoff.retries {
            return Err(transient);
        }
        backoff.wait(attempt, None);
        attempt += 1;
    }
}

/// Access tokens for one credentials file, refreshed as needed. The file is
/// read on first use (so opening an archiver does no I/O).
pub struct TokenSource {
    token_url: String,
    source: Located,
    state: Mutex<TokenState>,
    backoff: Backoff,
}

#[derive(Default)]
struct TokenState {
    creds: Option<Credentials>,
    token: Option<(String, Instant)>,
}

impl TokenSource {
    #[must_use]
    pub fn new(source: Located, token_url: &str) -> TokenSource {
        TokenSource {
            token_url: token_url.to_owned(),
            source,
            state: Mutex::new(TokenState::default()),
            backoff: Backoff::from_env(),
        }
    }

    /// The credentials file in use.
    pub fn path(&self) -> Result<&Path, DriveError> {
        match &self.source {
            Located::Use(p) => Ok(p),
            Located::Missing(tried) => Err(DriveError::NoCredentials {
                tried: tried
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(" or "),
            }),
        }
    }

    /// A valid access token: the cached one unless it expires within a
    /// minute, else a fresh one.
    pub fn access_token(&self, agent: &ureq::Agent) -> Result<String, DriveError> {
        let mut st = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((t, until)) = &st.token
            && Instant::now() + Duration::from_mins(1) < *until
        {
            return Ok(t.clone());
        }
        if st.creds.is_none() {
            st.creds = Some(read_credentials(self.path()?)?.0);
        }
        let c = st.creds.as_ref().expect("just read");
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", c.refresh_token.as_str()),
            ("client_id", c.client_id.as_str()),
            ("client_secret", c.client_secret.as_str()),
        ];
        match token_request(agent, &self.token_url, &form, &self.backoff)? {
            Grant::Ok(a) if !a.access_token.is_empty() => {
                let life = Duration::from_secs(a.expires_in.unwrap_or(3600));
                st.token = Some((a.access_token.clone(), Instant::now() + life));
                Ok(a.access_token)
            }
            Grant::Ok(_) => Err(DriveError::Protocol {
                op: "refreshing the access token".into(),
                detail: "the answer holds no access_token".into(),
            }),
            Grant::Refused(r) => Err(DriveError::Refresh {
                path: self.path()?.to_owned(),
                error: r.error,
                description: r.error_description,
            }),
        }
    }

    /// Forget `token` (Drive refused it), so that the next call refreshes.
    pub fn invalidate(&self, token: &str) {
        let mut st = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if st.token.as_ref().is_some_and(|(t, _)| t == token) {
            st.token = None;
        }
    }
}

/// An OAuth client (`googledrive-client-id` / `-secret`).
#[derive(Debug, Clone)]
pub struct Client {
    pub id: String,
    pub secret: String,
}

/// Where the flows talk to.
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub auth: String,
    pub token: String,
    pub device: String,
}

/// The PKCE pair: a verifier of 64 unreserved characters and its S256 challenge.
#[must_use]
pub fn pkce(rng: &mut impl rand::Rng) -> (String, String) {
    const UNRESERVED: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~";
    let verifier: String = (0..64)
        .map(|_| UNRESERVED[rng.gen_range(0..UNRESERVED.len())] as char)
        .collect();
    let challenge = base64url(&Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// Base64url without padding (RFC 4648 §5), as PKCE's S256 wants it.
#[must_use]
pub fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// The consent URL of the loopback flow.
#[must_use]
pub fn consent_url(
    auth: &str,
    client: &Client,
    redirect: &str,
    challenge: &str,
    state: &str,
) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("client_id", &client.id)
        .append_pair("redirect_uri", redirect)
        .append_pair("response_type", "code")
        .append_pair("scope", &SCOPES.join(" "))
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("state", state)
        .append_pair("access_type", "offline")
        // why: without it Google returns a refresh token only on a client's first consent
        .append_pair("prompt", "consent");
    format!("{auth}?{}", q.finish())
}

/// What the browser brought back to the loopback listener.
#[derive(Debug, PartialEq, Eq)]
pub enum Redirect {
    Code(String),
    /// The user said no, or Google refused (`error=...`).
    Denied(String),
    /// Not the redirect (a favicon, a stray request): keep waiting.
    Other,
}

/// Judge the request line of a request to the loopback listener: the code,
/// when `state` matches. Pure.
#[must_use]
pub fn parse_redirect(request_line: &str, state: &str) -> Redirect {
    let Some(target) = request_line
        .strip_prefix("GET ")
        .and_then(|r| r.split_whitespace().next())
    else {
        return Redirect::Other;
    };
    let Some((_, query)) = target.split_once('?') else {
        return Redirect::Other;
    };
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    if get("state").as_deref() != Some(state) {
        return Redirect::Other;
    }
    match (get("code"), get("error")) {
        (Some(code), None) if !code.is_empty() => Redirect::Code(code),
        (_, Some(err)) => Redirect::Denied(err),
        _ => Redirect::Other,
    }
}

fn credentials_from(answer: TokenAnswer, client: &Client) -> Result<Credentials, DriveError> {
    let refresh_token = answer
        .refresh_token
        .filter(|t| !t.is_empty())
        .ok_or(DriveError::SignIn {
            why: "Google returned no refresh token; remove strata's access at https://myaccount.google.com/permissions and sign in again".into(),
        })?;
    Ok(Credentials {
        client_id: client.id.clone(),
        client_secret: client.secret.clone(),
        refresh_token,
        scopes: answer.scope.map_or_else(
            || SCOPES.iter().map(|s| (*s).to_owned()).collect(),
            |s| s.split_whitespace().map(str::to_owned).collect(),
        ),
    })
}

/// The installed-app loopback flow: listen on 127.0.0.1:`port` (0: any),
/// hand the consent URL to `announce`, wait (up to `wait`) for the browser
/// to come back with a code, and trade it (with the PKCE verifier) for a
/// refresh token.
pub fn loopback_flow(
    client: &Client,
    ends: &Endpoints,
    port: u16,
    wait: Duration,
    announce: &mut dyn FnMut(&str),
) -> Result<Credentials, DriveError> {
    let io = |what: &str| {
        let what = what.to_owned();
        move |e: std::io::Error| DriveError::SignIn {
            why: format!("{what}: {e}"),
        }
    };
    let listener = TcpListener::bind(("127.0.0.1", port)).map_err(io("listening on 127.0.0.1"))?;
    let port = listener.local_addr().map_err(io("listening"))?.port();
    let redirect = format!("http://127.0.0.1:{port}/");
    let mut rng = rand::thread_rng();
    let (verifier, challenge) = pkce(&mut rng);
    let state = hex::encode(rand::Rng::r#gen::<[u8; 16]>(&mut rng));
    announce(&consent_url(
        &ends.auth, client, &redirect, &challenge, &state,
    ));
    listener.set_nonblocking(true).map_err(io("listening"))?;
    let deadline = Instant::now() + wait;
    let code = loop {
        let (stream, _) = match listener.accept() {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() > deadline {
                    return Err(DriveError::SignIn {
                        why: format!("no answer from the browser within {} s", wait.as_secs()),
                    });
                }
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            Err(e) => return Err(io("waiting for the browser")(e)),
        };
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let mut reader = BufReader::new(&stream);
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        // why: the rest of the request is read so that the browser sees an answer, not a reset
        let mut header = String::new();
        while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
            header.clear();
        }
        let verdict = parse_redirect(&line, &state);
        let (status, page) = match &verdict {
            Redirect::Code(_) => (
                "200 OK",
                "strata: signed in to Google Drive. You can close this page.",
            ),
            Redirect::Denied(_) => (
                "200 OK",
                "strata: sign-in refused. You can close this page.",
            ),
            Redirect::Other => ("404 Not Found", "not here"),
        };
        let mut w = &stream;
        let _ = write!(
            w,
            "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
            page.len()
        );
        match verdict {
            Redirect::Code(c) => break c,
            Redirect::Denied(e) => {
                return Err(DriveError::SignIn {
                    why: format!("Google answered `{e}`"),
                });
            }
            Redirect::Other => {}
        }
    };
    let agent = super::api::agent();
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("code_verifier", verifier.as_str()),
        ("redirect_uri", redirect.as_str()),
        ("client_id", client.id.as_str()),
        ("client_secret", client.secret.as_str()),
    ];
    match token_request(&agent, &ends.token, &form, &Backoff::from_env())? {
        Grant::Ok(a) => credentials_from(a, client),
        Grant::Refused(r) => Err(DriveError::SignIn {
            why: format!("the code was refused: {} {}", r.error, r.error_description),
        }),
    }
}

/// What the device flow shows the user.
#[derive(Debug, Clone, Deserialize)]
pub struct DeviceCode {
    pub device_code: String,
    pub user_code: String,
    /// Google says `verification_url`; RFC 8628 `verification_uri`.
    #[serde(alias = "verification_uri")]
    pub verification_url: String,
    #[serde(default = "default_expiry")]
    pub expires_in: u64,
    #[serde(default = "default_interval")]
    pub interval: u64,
}

fn default_expiry() -> u64 {
    1800
}

fn default_interval() -> u64 {
    5
}

/// The device flow (RFC 8628): ask for a user code, hand it to `announce`
/// (the user enters it at the verification URL on any device), and poll
/// the token endpoint at the interval Google gives until it is approved.
pub fn device_flow(
    client: &Client,
    ends: &Endpoints,
    announce: &mut dyn FnMut(&DeviceCode),
) -> Result<Credentials, DriveError> {
    let agent = super::api::agent();
    let backoff = Backoff::from_env();
    let scope = SCOPES.join(" ");
    let mut r = agent
        .post(&ends.device)
        .send_form([("client_id", client.id.as_str()), ("scope", scope.as_str())])
        .map_err(|e| DriveError::Http {
            op: format!("asking {} for a device code", ends.device),
            source: Box::new(e),
        })?;
    let status = r.status().as_u16();
    let text = r
        .body_mut()
        .with_config()
        .limit(1 << 20)
        .lossy_utf8(true)
        .read_to_string()
        .unwrap_or_default();
    if !(200..300).contains(&status) {
        return Err(DriveError::SignIn {
            why: format!(
                "{} refused a device code (HTTP {status}): {}",
                ends.device,
                text.trim()
            ),
        });
    }
    let code: DeviceCode = serde_json::from_str(&text).map_err(|e| DriveError::Protocol {
        op: "reading the device code".into(),
        detail: e.to_string(),
    })?;
    announce(&code);
    let deadline = Instant::now() + Duration::from_secs(code.expires_in);
    let mut interval = Duration::from_secs(code.interval.max(1));
    loop {
        std::thread::sleep(interval);
        if Instant::now() > deadline {
            return Err(DriveError::SignIn {
                why: "the code expired before it was entered".into(),
            });
        }
        let form = [
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("device_code", code.device_code.as_str()),
            ("client_id", client.id.as_str()),
            ("client_secret", client.secret.as_str()),
        ];
        match token_request(&agent, &ends.token, &form, &backoff)? {
            Grant::Ok(a) => return credentials_from(a, client),
            Grant::Refused(r) => match r.error.as_str() {
                "authorization_pending" => {}
                "slow_down" => interval += Duration::from_secs(5),
                _ => {
                    return Err(DriveError::SignIn {
                        why: format!("{} {}", r.error, r.error_description),
                    });
                }
            },
        }
    }
}

/// Check credentials by getting one access token with them.
pub fn check(c: &Credentials, token_url: &str) -> Result<(), DriveError> {
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", c.refresh_token.as_str()),
        ("client_id", c.client_id.as_str()),
        ("client_secret", c.client_secret.as_str()),
    ];
    match token_request(&super::api::agent(), token_url, &form, &Backoff::from_env())? {
        Grant::Ok(_) => Ok(()),
        Grant::Refused(r) => Err(DriveError::SignIn {
            why: format!(
                "{token_url} refused the refresh token: {} {}",
                r.error, r.error_description
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn deltaic_oauth2client_files_and_strata_files_parse() {
        let deltaic = r#"{"_module": "oauth2client.client", "token_expiry": "2015-06-01T12:00:00Z",
            "access_token": "ya29.old", "token_uri": "https://accounts.google.com/o/oauth2/token",
            "invalid": false, "token_response": {"access_token": "ya29.old", "token_type": "Bearer", "expires_in": 3600,
            "refresh_token": "1/abc"}, "client_id": "123.apps.googleusercontent.com", "id_token": null,
            "client_secret": "s3cr3t", "revoke_uri": "https://accounts.google.com/o/oauth2/revoke",
            "_class": "OAuth2Credentials", "refresh_token": "1/abc", "user_agent": "Deltaic"}"#;
        let (c, f) = parse_credentials(deltaic).unwrap();
        assert_eq!(f, Format::Oauth2client);
        assert_eq!(c.client_id, "123.apps.googleusercontent.com");
        assert_eq!(c.refresh_token, "1/abc");
        let with_scopes = deltaic.replace(
            "\"invalid\": false",
            "\"scopes\": \"https://www.googleapis.com/auth/drive.appfolder https://www.googleapis.com/auth/drive.file\"",
        );
        assert_eq!(parse_credentials(&with_scopes).unwrap().0.scopes.len(), 2);
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/creds.json");
        write_credentials(&p, &c).unwrap();
        let mode =
            std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&p).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(read_credentials(&p).unwrap(), (c, Format::Strata));
        assert!(parse_credentials(r#"{"client_id": "x"}"#).is_err());
        assert!(
            parse_credentials(r#"{"_class": "OAuth2Credentials", "client_id": "x", "client_secret": "y", "refresh_token": null}"#)
                .unwrap_err()
                .contains("no refresh token")
        );
    }

    #[test]
    fn the_configured_file_wins_then_strata_then_deltaic() {
        let cache = Path::new("/c");
        let none = |_: &Path| false;
        let deltaic_only = |p: &Path| p.ends_with(DELTAIC_FILE);
        let both = |_: &Path| true;
        assert_eq!(
            locate(Some(Path::new("/etc/x.json")), cache, none),
            Located::Use("/etc/x.json".into())
        );
        assert_eq!(
            locate(None, cache, both),
            Located::Use(cache.join(STRATA_FILE))
        );
        assert_eq!(
            locate(None, cache, deltaic_only),
            Located::Use(cache.join(DELTAIC_FILE))
        );
        assert_eq!(
            locate(None, cache, none),
            Located::Missing(vec![cache.join(STRATA_FILE), cache.join(DELTAIC_FILE)])
        );
        assert_eq!(auth_target(None, cache), cache.join(STRATA_FILE));
    }

    #[test]
    fn pkce_and_base64url_follow_the_rfcs() {
        // RFC 7636 appendix B
        let v = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert_eq!(
            base64url(&Sha256::digest(v.as_bytes())),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert_eq!(base64url(b"f"), "Zg");
        assert_eq!(base64url(b"fo"), "Zm8");
        assert_eq!(base64url(b"foo"), "Zm9v");
        let (verifier, challenge) = pkce(&mut rand::rngs::StdRng::seed_from_u64(1));
        assert_eq!(verifier.len(), 64);
        assert_eq!(challenge, base64url(&Sha256::digest(verifier.as_bytes())));
    }

    #[test]
    fn redirects_are_judged_by_state() {
        assert_eq!(
            parse_redirect("GET /?state=s1&code=4%2F0Ab HTTP/1.1\r\n", "s1"),
            Redirect::Code("4/0Ab".into())
        );
        assert_eq!(
            parse_redirect("GET /?state=s2&code=x HTTP/1.1", "s1"),
            Redirect::Other
        );
        assert_eq!(
            parse_redirect("GET /?error=access_denied&state=s1 HTTP/1.1", "s1"),
            Redirect::Denied("access_denied".into())
        );
        assert_eq!(
            parse_redirect("GET /favicon.ico HTTP/1.1", "s1"),
            Redirect::Other
        );
        assert_eq!(
            device_url("https://oauth2.googleapis.com/token"),
            "https://oauth2.googleapis.com/device/code"
        );
        assert_eq!(
            device_url("http://127.0.0.1:9/token"),
            "http://127.0.0.1:9/device/code"
        );
        let u = consent_url(
            AUTH_URL,
            &Client {
                id: "id".into(),
                secret: "s".into(),
            },
            "http://127.0.0.1:5/",
            "ch",
            "st",
        );
        assert!(
            u.contains("code_challenge_method=S256")
                && u.contains("redirect_uri=http%3A%2F%2F127.0.0.1%3A5%2F"),
            "{u}"
        );
    }
}

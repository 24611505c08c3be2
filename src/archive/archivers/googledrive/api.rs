//! Drive v3 over plain HTTP (ureq): the calls the archiver and `strata
//! googledrive` make, each retried by one policy.
//!
//! Owns: the request shapes (`files.list` with `q`, `spaces`, `fields` and
//! paging; `files.create` of a folder, multipart and resumable uploads with
//! their session queries; `files.get` and `alt=media` with `Range`;
//! `files.update` of `appProperties`; `files.delete`), the Bearer token on
//! every request (refreshed once when Drive answers 401), and what a refusal
//! means ([`classify`]): 403 `rateLimitExceeded` / `userRateLimitExceeded`,
//! 429 and 5xx are retried with exponential backoff and jitter (a
//! `Retry-After` is honoured); a transport error is retried alike; an upload
//! refused with the daily cap's own message until the retries run out is
//! [`DriveError::DailyCap`].
//!
//! Does not own: what files mean (the layout is `mod.rs`), tokens (`oauth.rs`),
//! what survives a killed upload (`session.rs`).
//!
//! Bodies stream: an upload's bytes are read from the spool file range by
//! range as they are sent, a download's body is handed out as a reader;
//! neither is held in memory. No redirect is followed (a resumable upload's
//! `308 Resume Incomplete` is an answer, not a redirect).

use super::DriveError;
use super::oauth::TokenSource;
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Read;
use std::time::Duration;
use ureq::http::Response;

/// Where Drive v3 lives.
pub const DEFAULT_API_URL: &str = "https://www.googleapis.com";
/// A folder's MIME type.
pub const FOLDER_MIME: &str = "application/vnd.google-apps.folder";
/// What an archive is stored as.
pub const DATA_MIME: &str = "application/octet-stream";
/// The fields every listing asks for (v3 returns only id, name and
/// mimeType unless asked).
pub const FILE_FIELDS: &str = "id,name,mimeType,parents,size,createdTime,appProperties";
/// Google's largest page.
const PAGE_SIZE: &str = "1000";
/// What an error body is read up to (they are small JSON documents).
const ERROR_BODY_LIMIT: u64 = 64 * 1024;

/// A Drive file as a listing returns it (the fields of [`FILE_FIELDS`]).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DriveFile {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub mime_type: String,
    #[serde(default)]
    pub parents: Vec<String>,
    /// Bytes, as v3 gives an int64: a decimal string; none for a folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    #[serde(default)]
    pub created_time: String,
    #[serde(default)]
    pub app_properties: BTreeMap<String, String>,
}

impl DriveFile {
    #[must_use]
    pub fn is_folder(&self) -> bool {
        self.mime_type == FOLDER_MIME
    }

    /// The stored bytes; `None` when the size is missing or not a number.
    #[must_use]
    pub fn bytes(&self) -> Option<u64> {
        self.size.as_deref().and_then(|s| s.parse().ok())
    }

    #[must_use]
    pub fn prop(&self, key: &str) -> Option<&str> {
        self.app_properties.get(key).map(String::as_str)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FileList {
    #[serde(default)]
    files: Vec<DriveFile>,
    next_page_token: Option<String>,
}

/// Which search space a listing covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spaces {
    /// The application data folder: where archive sets live.
    AppData,
    /// `My Drive` and the application data folder (`googledrive ls`).
    All,
}

impl Spaces {
    fn param(self) -> &'static str {
        match self {
            Spaces::AppData => "appDataFolder",
            Spaces::All => "drive,appDataFolder",
        }
    }
}

/// A string literal of the `q` language: `'` and `\` escaped.
#[must_use]
pub fn q_string(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// Google's error body: `{"error": {"code", "message", "errors": [{"reason", ...}]}}`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub reason: String,
    pub message: String,
}

impl ApiError {
    /// Parse an error body; what is not Google's JSON keeps its first line.
    #[must_use]
    pub fn parse(status: u16, body: &str) -> ApiError {
        #[derive(Deserialize)]
        struct Outer {
            error: Inner,
        }
        #[derive(Deserialize)]
        struct Inner {
            #[serde(default)]
            message: String,
            #[serde(default)]
            errors: Vec<Item>,
            #[serde(default)]
            status: String,
        }
        #[derive(Deserialize)]
        struct Item {
            #[serde(default)]
            reason: String,
            #[serde(default)]
            message: String,
        }
        match serde_json::from_str::<Outer>(body) {
            Ok(o) => {
                let first = o.error.errors.into_iter().next();
                let reason = first
                    .as_ref()
                    .map(|i| i.reason.clone())
                    .filter(|r| !r.is_empty())
                    .unwrap_or(o.error.status);
                let message = if o.error.message.is_empty() {
                    first.map(|i| i.message).unwrap_or_default()
                } else {
                    o.error.message
                };
                ApiError {
                    status,
                    reason,
                    message,
                }
            }
            Err(_) => ApiError {
                status,
                reason: String::new(),
                message: body
                    .lines()
                    .next()
                    .unwrap_or("")
                    .chars()
                    .take(200)
                    .collect(),
            },
        }
    }
}

/// What a request is, for [`classify`]: only uploads can meet the daily cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Meta,
    Upload,
}

/// What to do about a refused request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Transient (rate limits, 5xx): back off and try again.
    Retry,
    /// The access token was refused: refresh it and try again, once.
    Reauth,
    /// An upload refused with the message Drive gives at its daily upload
    /// cap, which it also gives, briefly, as a rate limit: retried like
    /// [`Verdict::Retry`], and the daily cap when it outlasts the retries.
    CapSuspect,
    /// Not going to work by trying again.
    Fail,
}

/// The message of Drive's 750 GB/day refusal (rclone's `--drive-stop-on-upload-limit`
/// keys on it too); the ordinary per-user rate limit says "User Rate Limit
/// Exceeded. Rate of requests ...".
pub const DAILY_CAP_MESSAGE: &str = "User rate limit exceeded.";

/// Decide about one refusal: a pure function of the status, Google's reason
/// and message, and the kind of request.
#[must_use]
pub fn classify(e: &ApiError, kind: Kind) -> Verdict {
    match (e.status, e.reason.as_str()) {
        (401, _) => Verdict::Reauth,
        (403 | 429, "userRateLimitExceeded" | "rateLimitExceeded")
            if kind == Kind::Upload && e.message == DAILY_CAP_MESSAGE =>
        {
            Verdict::CapSuspect
        }
        (403, "userRateLimitExceeded" | "rateLimitExceeded") | (408 | 429 | 500..=599, _) => {
            Verdict::Retry
        }
        _ => Verdict::Fail,
    }
}

/// The backoff policy: attempt `n` (0-based) waits `base * 2^n`, at most
/// `max`, plus up to half of that again at random (so concurrent units that
/// meet one rate limit do not come back in step).
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
    /// Retries after the first try.
    pub retries: u32,
}

impl Backoff {
    /// 1 s doubling to 64 s, 8 retries (about 4 minutes in all);
    /// `STRATA_GOOGLEDRIVE_BACKOFF_MS` and `STRATA_GOOGLEDRIVE_RETRIES` change
    /// it (the tests make it milliseconds).
    #[must_use]
    pub fn from_env() -> Backoff {
        let ms = std::env::var("STRATA_GOOGLEDRIVE_BACKOFF_MS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1000u64);
        let retries = std::env::var("STRATA_GOOGLEDRIVE_RETRIES")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(8);
        Backoff {
            base: Duration::from_millis(ms),
            max: Duration::from_millis(ms.saturating_mul(64)),
            retries,
        }
    }

    /// The wait before retry `attempt` (0-based), jitter drawn from `rng`.
    pub fn delay(&self, attempt: u32, rng: &mut impl Rng) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX))
            .min(self.max);
        let jitter = exp.mul_f64(rng.gen_range(0.0..0.5));
        exp + jitter
    }

    /// Sleep before retry `attempt`, or as long as the server asked.
    pub fn wait(&self, attempt: u32, retry_after: Option<Duration>) {
        let d = self.delay(attempt, &mut rand::thread_rng());
        std::thread::sleep(retry_after.map_or(d, |r| r.min(self.max.max(d))));
    }
}

/// A chunk refused or not delivered: what to do, why, and how long the server asked to wait.
pub type ChunkRefusal = (Verdict, DriveError, Option<Duration>);

/// One try's result, for the callers that drive their own retries (the
/// upload of a chunk, whose retry is a status query, not a resend).
pub enum Attempt {
    /// A status the caller handles (2xx, or one it listed).
    Answer(Response<ureq::Body>),
    /// Refused or not delivered.
    Refused {
        verdict: Verdict,
        error: DriveError,
        retry_after: Option<Duration>,
    },
}

/// The Drive client: an HTTP agent, the API's base URL, the token source
/// and the backoff policy.
pub struct Drive {
    agent: ureq::Agent,
    api: String,
    tokens: TokenSource,
    pub backoff: Backoff,
}

/// The body of a request to send.
pub enum Body {
    Empty,
    Json(serde_json::Value),
    /// `len` bytes from a reader made afresh for each try, with a content type.
    Stream {
        len: u64,
        content_type: String,
        open: Box<dyn Fn() -> std::io::Result<Box<dyn Read>>>,
    },
}

/// The agent every Drive and token call goes through: no redirects, no
/// status-as-error, timeouts for a stalled peer (`STRATA_GOOGLEDRIVE_TIMEOUT_SECS`
/// for each read or write, 120 s by default).
#[must_use]
pub fn agent() -> ureq::Agent {
    let stall = Duration::from_secs(
        std::env::var("STRATA_GOOGLEDRIVE_TIMEOUT_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(120),
    );
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_per_read(Some(stall))
        .timeout_per_write(Some(stall))
        .timeout_recv_response(Some(stall.max(Duration::from_mins(5))))
        .user_agent(concat!("strata/", env!("CARGO_PKG_VERSION")))
        .build()
        .new_agent()
}

fn retry_after(r: &Response<ureq::Body>) -> Option<Duration> {
    r.headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// Read a refused response's error body (bounded) and judge it.
fn refusal(op: &str, kind: Kind, mut r: Response<ureq::Body>) -> Attempt {
    let status = r.status().as_u16();
    let after = retry_after(&r);
    let body = r
        .body_mut()
        .with_config()
        .limit(ERROR_BODY_LIMIT)
        .lossy_utf8(true)
        .read_to_string()
        .unwrap_or_default();
    let e = ApiError::parse(status, &body);
    Attempt::Refused {
        verdict: classify(&e, kind),
        error: DriveError::Api {
            op: op.to_owned(),
            status,
            reason: e.reason,
            message: e.message,
        },
        retry_after: after,
    }
}

impl Drive {
    #[must_use]
    pub fn new(api: &str, tokens: TokenSource) -> Drive {
        Drive {
            agent: agent(),
            api: api.trim_end_matches('/').to_owned(),
            tokens,
            backoff: Backoff::from_env(),
        }
    }

    /// `{api}/drive/v3/files{rest}`.
    fn files_url(&self, rest: &str) -> String {
        format!("{}/drive/v3/files{rest}", self.api)
    }

    /// `{api}/upload/drive/v3/files`.
    fn upload_url(&self) -> String {
        format!("{}/upload/drive/v3/files", self.api)
    }

    /// One try of `method url?query` with `headers` and `body`, with the
    /// access token; `accept` lists the non-2xx statuses the caller handles.
    #[allow(clippy::too_many_arguments)]
    pub fn attempt(
        &self,
        op: &str,
        kind: Kind,
        method: &str,
        url: &str,
        query: &[(&str, &str)],
        headers: &[(&str, String)],
        body: &Body,
        accept: &[u16],
    ) -> Result<Attempt, DriveError> {
        let token = self.tokens.access_token(&self.agent)?;
        let mut req = ureq::http::Request::builder()
            .method(method)
            .uri(with_query(url, query))
            .header("authorization", format!("Bearer {token}"));
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let sent = match body {
            Body::Empty => {
                let req = if method == "GET" || method == "DELETE" {
                    req
                } else {
                    req.header("content-length", "0")
                };
                self.agent.run(req.body(()).map_err(http_error(op))?)
            }
            Body::Json(v) => {
                let bytes = serde_json::to_vec(v).map_err(|e| DriveError::Protocol {
                    op: op.to_owned(),
                    detail: e.to_string(),
                })?;
                self.agent.run(
                    req.header("content-type", "application/json; charset=UTF-8")
                        .body(bytes)
                        .map_err(http_error(op))?,
                )
            }
            Body::Stream {
                len,
                content_type,
                open,
            } => {
                let reader = open().map_err(|source| DriveError::Io {
                    op: op.to_owned(),
                    source,
                })?;
                let req = req
                    .header("content-type", content_type.as_str())
                    .header("content-length", len.to_string())
                    .body(ureq::SendBody::from_owned_reader(reader.take(*len)))
                    .map_err(http_error(op))?;
                self.agent.run(req)
            }
        };
        match sent {
            Ok(r) if r.status().is_success() || accept.contains(&r.status().as_u16()) => {
                Ok(Attempt::Answer(r))
            }
            Ok(r) => {
                let a = refusal(op, kind, r);
                if let Attempt::Refused {
                    verdict: Verdict::Reauth,
                    ..
                } = &a
                {
                    self.tokens.invalidate(&token);
                }
                Ok(a)
            }
            Err(e) => Ok(Attempt::Refused {
                verdict: Verdict::Retry,
                error: DriveError::Http {
                    op: op.to_owned(),
                    source: Box::new(e),
                },
                retry_after: None,
            }),
        }
    }

    /// A request retried by the policy: a refused token once after a
    /// refresh, transient refusals with backoff; the daily cap's message
    /// outlasting the retries of an upload is [`DriveError::DailyCap`].
    #[allow(clippy::too_many_arguments)]
    pub fn call(
        &self,
        op: &str,
        kind: Kind,
        method: &str,
        url: &str,
        query: &[(&str, &str)],
        headers: &[(&str, String)],
        body: &Body,
        accept: &[u16],
    ) -> Result<Response<ureq::Body>, DriveError> {
        let mut attempt = 0;
        let mut reauthed = false;
        loop {
            match self.attempt(op, kind, method, url, query, headers, body, accept)? {
                Attempt::Answer(r) => return Ok(r),
                Attempt::Refused {
                    verdict: Verdict::Reauth,
                    error,
                    ..
                } => {
                    if reauthed {
                        return Err(error);
                    }
                    reauthed = true;
                }
                Attempt::Refused {
                    verdict: verdict @ (Verdict::Retry | Verdict::CapSuspect),
                    error,
                    retry_after,
                } => {
                    if attempt >= self.backoff.retries {
                        return Err(if verdict == Verdict::CapSuspect {
                            DriveError::DailyCap {
                                op: op.to_owned(),
                                source: Box::new(error),
                            }
                        } else {
                            error
                        });
                    }
                    self.backoff.wait(attempt, retry_after);
                    attempt += 1;
                }
                Attempt::Refused { error, .. } => return Err(error),
            }
        }
    }

    /// A metadata call whose answer is JSON of type `T`.
    fn json<T: serde::de::DeserializeOwned>(
        &self,
        op: &str,
        method: &str,
        url: &str,
        query: &[(&str, &str)],
        body: &Body,
    ) -> Result<T, DriveError> {
        let mut r = self.call(op, Kind::Meta, method, url, query, &[], body, &[])?;
        read_json(op, &mut r)
    }

    /// Every file matching `q` in `spaces`, all pages.
    pub fn list(&self, q: &str, spaces: Spaces) -> Result<Vec<DriveFile>, DriveError> {
        let op = format!("listing {q}");
        let fields = format!("nextPageToken,files({FILE_FIELDS})");
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut query = vec![
                ("q", q),
                ("spaces", spaces.param()),
                ("fields", fields.as_str()),
                ("pageSize", PAGE_SIZE),
            ];
            if let Some(t) = &token {
                query.push(("pageToken", t.as_str()));
            }
            let page: FileList =
                self.json(&op, "GET", &self.files_url(""), &query, &Body::Empty)?;
            out.extend(page.files);
            match page.next_page_token {
                Some(t) if !t.is_empty() => token = Some(t),
                _ => return Ok(out),
            }
        }
    }

    /// One file's metadata (`fields` as given, or [`FILE_FIELDS`]), raw JSON.
    pub fn get(&self, id: &str, fields: Option<&str>) -> Result<serde_json::Value, DriveError> {
        self.json(
            &format!("reading file {id}"),
            "GET",
            &self.files_url(&format!("/{}", path_segment(id))),
            &[("fields", fields.unwrap_or(FILE_FIELDS))],
            &Body::Empty,
        )
    }

    /// A folder named `name` under `parent` (`appDataFolder` for the app's own).
    pub fn create_folder(
        &self,
        name: &str,
        parent: &str,
        props: &BTreeMap<String, String>,
    ) -> Result<DriveFile, DriveError> {
        let body = serde_json::json!({
            "name": name,
            "mimeType": FOLDER_MIME,
            "parents": [parent],
            "appProperties": props,
        });
        self.json(
            &format!("creating folder {name}"),
            "POST",
            &self.files_url(""),
            &[("fields", FILE_FIELDS)],
            &Body::Json(body),
        )
    }

    /// Set (`Some`) or remove (`None`) app properties of a file.
    pub fn update_props(
        &self,
        id: &str,
        props: &BTreeMap<String, Option<String>>,
    ) -> Result<DriveFile, DriveError> {
        self.json(
            &format!("updating the properties of file {id}"),
            "PATCH",
            &self.files_url(&format!("/{}", path_segment(id))),
            &[("fields", FILE_FIELDS)],
            &Body::Json(serde_json::json!({ "appProperties": props })),
        )
    }

    /// Delete a file for good (a folder with everything in it); one that is
    /// already gone is not an error.
    pub fn delete(&self, id: &str) -> Result<(), DriveError> {
        let r = self.call(
            &format!("deleting file {id}"),
            Kind::Meta,
            "DELETE",
            &self.files_url(&format!("/{}", path_segment(id))),
            &[],
            &[],
            &Body::Empty,
            &[404],
        )?;
        drain(r);
        Ok(())
    }

    /// A multipart upload (metadata and bytes in one request, for small
    /// files): `len` bytes of `open()`.
    pub fn create_multipart(
        &self,
        meta: &serde_json::Value,
        len: u64,
        open: Box<dyn Fn() -> std::io::Result<Box<dyn Read>>>,
    ) -> Result<DriveFile, DriveError> {
        let op = format!("uploading {}", meta["name"].as_str().unwrap_or("?"));
        let boundary = format!("strata-{:016x}", rand::random::<u64>());
        let head = format!(
            "--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{meta}\r\n--{boundary}\r\nContent-Type: {DATA_MIME}\r\n\r\n"
        );
        let tail = format!("\r\n--{boundary}--\r\n");
        let total = head.len() as u64 + len + tail.len() as u64;
        let body = Body::Stream {
            len: total,
            content_type: format!("multipart/related; boundary={boundary}"),
            open: Box::new(move || {
                let data = open()?.take(len);
                Ok(Box::new(
                    std::io::Cursor::new(head.clone().into_bytes())
                        .chain(data)
                        .chain(std::io::Cursor::new(tail.clone().into_bytes())),
                ))
            }),
        };
        let mut r = self.call(
            &op,
            Kind::Upload,
            "POST",
            &self.upload_url(),
            &[("uploadType", "multipart"), ("fields", FILE_FIELDS)],
            &[],
            &body,
            &[],
        )?;
        read_json(&op, &mut r)
    }

    /// Start a resumable upload of `len` bytes; returns the session URL.
    pub fn start_resumable(
        &self,
        meta: &serde_json::Value,
        len: u64,
    ) -> Result<String, DriveError> {
        let op = format!(
            "starting the upload of {}",
            meta["name"].as_str().unwrap_or("?")
        );
        let r = self.call(
            &op,
            Kind::Upload,
            "POST",
            &self.upload_url(),
            &[("uploadType", "resumable"), ("fields", FILE_FIELDS)],
            &[
                ("x-upload-content-type", DATA_MIME.to_owned()),
                ("x-upload-content-length", len.to_string()),
            ],
            &Body::Json(meta.clone()),
            &[],
        )?;
        let location = r
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        drain(r);
        location.ok_or_else(|| DriveError::Protocol {
            op,
            detail: "no Location header (the session URL) in the answer".into(),
        })
    }

    /// The bytes of a file from `offset` on (`alt=media` with `Range`); the
    /// caller reads the body as it goes.
    pub fn media(&self, id: &str, offset: u64) -> Result<Response<ureq::Body>, DriveError> {
        let op = format!("downloading file {id} from byte {offset}");
        let r = self.call(
            &op,
            Kind::Meta,
            "GET",
            &self.files_url(&format!("/{}", path_segment(id))),
            &[("alt", "media")],
            &[("range", format!("bytes={offset}-"))],
            &Body::Empty,
            &[],
        )?;
        // why: a server that ignores Range would hand out the file from byte 0 under offset's name
        let from = match r.status().as_u16() {
            206 => content_range_start(
                r.headers()
                    .get("content-range")
                    .and_then(|v| v.to_str().ok()),
            ),
            200 => Some(0),
            _ => None,
        };
        if from != Some(offset) {
            return Err(DriveError::Protocol {
                op,
                detail: format!(
                    "asked for bytes from {offset}, got status {} starting at {from:?}",
                    r.status().as_u16()
                ),
            });
        }
        Ok(r)
    }

    /// The access token source (for `googledrive test`).
    #[must_use]
    pub fn tokens(&self) -> &TokenSource {
        &self.tokens
    }
}

/// What a resumable session says it holds.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionState {
    /// The server has bytes `0..n`; send from `n`.
    Incomplete(u64),
    /// The upload is finished: the file Drive made.
    Done(DriveFile),
    /// The session is unknown or expired (404/410): start a new one.
    Gone,
}

/// The first byte a resumable session does not have, from its `Range`
/// header (`bytes=0-N`; none means nothing was received).
#[must_use]
pub fn received(range: Option<&str>) -> Option<u64> {
    match range {
        None => Some(0),
        Some(r) => r
            .trim()
            .strip_prefix("bytes=0-")
            .and_then(|n| n.parse::<u64>().ok())
            .map(|n| n + 1),
    }
}

/// The first byte of a `Content-Range: bytes a-b/total` header.
fn content_range_start(h: Option<&str>) -> Option<u64> {
    h?.trim()
        .strip_prefix("bytes ")?
        .split('-')
        .next()?
        .parse()
        .ok()
}

impl Drive {
    /// Turn a session's answer into its state.
    fn session_answer(op: &str, r: Response<ureq::Body>) -> Result<SessionState, DriveError> {
        let mut r = r;
        match r.status().as_u16() {
            308 => {
                let range = r
                    .headers()
                    .get("range")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                drain(r);
                received(range.as_deref())
                    .map(SessionState::Incomplete)
                    .ok_or_else(|| DriveError::Protocol {
                        op: op.to_owned(),
                        detail: format!("unreadable Range header {range:?}"),
                    })
            }
            404 | 410 => {
                drain(r);
                Ok(SessionState::Gone)
            }
            _ => read_json(op, &mut r).map(SessionState::Done),
        }
    }

    /// Ask a session how much it holds of `total` bytes (retried).
    pub fn session_status(&self, url: &str, total: u64) -> Result<SessionState, DriveError> {
        let op = "asking an upload session how much it holds";
        let r = self.call(
            op,
            Kind::Upload,
            "PUT",
            url,
            &[],
            &[("content-range", format!("bytes */{total}"))],
            &Body::Empty,
            &[308, 404, 410],
        )?;
        Self::session_answer(op, r)
    }

    /// Send bytes `from..from+len` of `total` to a session, once: the answer,
    /// or the refusal for the caller's retry (which asks the session first).
    pub fn put_chunk(
        &self,
        url: &str,
        from: u64,
        len: u64,
        total: u64,
        open: Box<dyn Fn() -> std::io::Result<Box<dyn Read>>>,
    ) -> Result<Result<SessionState, ChunkRefusal>, DriveError> {
        let op = format!("sending bytes {from}-{} of {total}", from + len - 1);
        let body = Body::Stream {
            len,
            content_type: DATA_MIME.to_owned(),
            open,
        };
        let range = format!("bytes {from}-{}/{total}", from + len - 1);
        match self.attempt(
            &op,
            Kind::Upload,
            "PUT",
            url,
            &[],
            &[("content-range", range)],
            &body,
            &[308, 404, 410],
        )? {
            Attempt::Answer(r) => Self::session_answer(&op, r).map(Ok),
            Attempt::Refused {
                verdict,
                error,
                retry_after,
            } => Ok(Err((verdict, error, retry_after))),
        }
    }
}

fn http_error(op: &str) -> impl FnOnce(ureq::http::Error) -> DriveError {
    let op = op.to_owned();
    move |e| DriveError::Protocol {
        op,
        detail: e.to_string(),
    }
}

/// Read a JSON answer.
fn read_json<T: serde::de::DeserializeOwned>(
    op: &str,
    r: &mut Response<ureq::Body>,
) -> Result<T, DriveError> {
    let text = r
        .body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_string()
        .map_err(|e| DriveError::Http {
            op: op.to_owned(),
            source: Box::new(e),
        })?;
    serde_json::from_str(&text).map_err(|e| DriveError::Protocol {
        op: op.to_owned(),
        detail: format!(
            "unreadable answer ({e}): {}",
            text.chars().take(200).collect::<String>()
        ),
    })
}

/// Read and drop an answer's body, so that the connection can be reused.
fn drain(mut r: Response<ureq::Body>) {
    let _ = std::io::copy(&mut r.body_mut().as_reader(), &mut std::io::sink());
}

/// `url` with `query` appended, percent-encoded.
fn with_query(url: &str, query: &[(&str, &str)]) -> String {
    if query.is_empty() {
        return url.to_owned();
    }
    let mut ser = form_urlencoded::Serializer::new(String::new());
    for (k, v) in query {
        ser.append_pair(k, v);
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    // why: form encoding writes a space as '+', which Google reads as a space in a query
    format!("{url}{sep}{}", ser.finish())
}

/// A file id as one path segment (ids are URL-safe; anything else is escaped).
fn path_segment(id: &str) -> String {
    id.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn err(status: u16, reason: &str, message: &str) -> ApiError {
        ApiError {
            status,
            reason: reason.into(),
            message: message.into(),
        }
    }

    #[test]
    fn refusals_are_classified_by_status_reason_message_and_kind() {
        let long =
            "User Rate Limit Exceeded. Rate of requests for user exceed configured project quota.";
        let table = [
            (
                err(401, "authError", "Invalid Credentials"),
                Kind::Meta,
                Verdict::Reauth,
            ),
            (
                err(403, "userRateLimitExceeded", long),
                Kind::Upload,
                Verdict::Retry,
            ),
            (
                err(403, "rateLimitExceeded", "Rate Limit Exceeded"),
                Kind::Meta,
                Verdict::Retry,
            ),
            (
                err(429, "rateLimitExceeded", "Too many requests"),
                Kind::Meta,
                Verdict::Retry,
            ),
            (
                err(403, "userRateLimitExceeded", DAILY_CAP_MESSAGE),
                Kind::Upload,
                Verdict::CapSuspect,
            ),
            (
                err(403, "userRateLimitExceeded", DAILY_CAP_MESSAGE),
                Kind::Meta,
                Verdict::Retry,
            ),
            (
                err(500, "backendError", "Backend Error"),
                Kind::Upload,
                Verdict::Retry,
            ),
            (
                err(503, "", "Service Unavailable"),
                Kind::Meta,
                Verdict::Retry,
            ),
            (
                err(
                    403,
                    "storageQuotaExceeded",
                    "The user's Drive storage quota has been exceeded.",
                ),
                Kind::Upload,
                Verdict::Fail,
            ),
            (
                err(403, "insufficientPermissions", "Insufficient Permission"),
                Kind::Meta,
                Verdict::Fail,
            ),
            (
                err(404, "notFound", "File not found: x."),
                Kind::Meta,
                Verdict::Fail,
            ),
            (
                err(400, "invalid", "Invalid Value"),
                Kind::Meta,
                Verdict::Fail,
            ),
        ];
        for (e, kind, want) in table {
            assert_eq!(classify(&e, kind), want, "{e:?} {kind:?}");
        }
    }

    #[test]
    fn google_error_bodies_parse() {
        let body = r#"{"error":{"errors":[{"domain":"usageLimits","reason":"userRateLimitExceeded","message":"User rate limit exceeded."}],"code":403,"message":"User rate limit exceeded."}}"#;
        assert_eq!(
            ApiError::parse(403, body),
            err(403, "userRateLimitExceeded", DAILY_CAP_MESSAGE)
        );
        let e = ApiError::parse(502, "<html>Bad Gateway</html>\nmore");
        assert_eq!(e.reason, "");
        assert_eq!(e.message, "<html>Bad Gateway</html>");
        let e = ApiError::parse(
            401,
            r#"{"error":{"code":401,"message":"Invalid Credentials","status":"UNAUTHENTICATED"}}"#,
        );
        assert_eq!(e.reason, "UNAUTHENTICATED");
    }

    #[test]
    fn backoff_grows_to_its_cap_with_bounded_jitter() {
        let b = Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_millis(1600),
            retries: 8,
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for (attempt, floor) in [
            (0, 100),
            (1, 200),
            (3, 800),
            (4, 1600),
            (9, 1600),
            (40, 1600),
        ] {
            let d = b.delay(attempt, &mut rng);
            let floor = Duration::from_millis(floor);
            assert!(d >= floor && d <= floor.mul_f64(1.5), "{attempt}: {d:?}");
        }
    }

    #[test]
    fn session_ranges_and_query_strings() {
        assert_eq!(received(None), Some(0));
        assert_eq!(received(Some("bytes=0-262143")), Some(262_144));
        assert_eq!(received(Some("bytes=5-9")), None);
        assert_eq!(content_range_start(Some("bytes 100-199/200")), Some(100));
        assert_eq!(q_string("it's a\\b"), r"'it\'s a\\b'");
        assert_eq!(
            with_query(
                "http://x/f",
                &[("q", "name = 'a b'"), ("spaces", "appDataFolder")]
            ),
            "http://x/f?q=name+%3D+%27a+b%27&spaces=appDataFolder"
        );
        assert_eq!(path_segment("1aB-_x/y"), "1aB-_x%2Fy");
    }
}

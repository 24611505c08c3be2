//! The GitHub REST API client: one blocking `ureq` agent, the token in the
//! `Authorization` header of requests to the API's own origin only,
//! `per_page=100` listings followed through `Link: rel="next"`, conditional
//! requests with the ETag of every page (see [`super::cache`]), and one
//! rate-limit governor for the whole process.
//!
//! The governor is driven by the response headers: when
//! `x-ratelimit-remaining` reaches 0 the next request waits until
//! `x-ratelimit-reset` (one log line says until when); a secondary limit
//! (403 or 429 with `retry-after`, or a 403/429 that says so) waits
//! `retry-after`, or at least a minute when none is given, doubling on each
//! repeat. A wait never fails a unit; only [`MAX_WAITS`] waits in a row for
//! one request do.
//!
//! Does not own: what the listings mean (the backup), where ETags are kept
//! (the cache).

use super::cache::{ListingRecord, PageRecord};
use serde_json::Value;
use std::io::Read;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Items per listing page (GitHub's maximum).
pub const PER_PAGE: u32 = 100;
/// Rate-limit waits for one request before it is given up.
pub const MAX_WAITS: u32 = 10;
/// The wait on a secondary limit that names no `retry-after`.
const SECONDARY_MIN_WAIT: Duration = Duration::from_mins(1);
/// Writes (POST/PATCH/PUT) allowed in any minute: GitHub's content-creation
/// limit.
pub const WRITES_PER_MINUTE: usize = 80;
/// The largest JSON body read into memory.
const JSON_LIMIT: u64 = 256 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{method} {url}: {source}")]
    Http {
        method: &'static str,
        url: String,
        #[source]
        source: Box<ureq::Error>,
    },
    #[error("{method} {url}: HTTP {status}: {message}")]
    Status {
        method: &'static str,
        url: String,
        status: u16,
        message: String,
    },
    #[error("{url}: the response is not the JSON expected: {why}")]
    Json { url: String, why: String },
    #[error("{url}: still rate limited after {MAX_WAITS} waits")]
    RateLimited { url: String },
    #[error("{url}: {source}")]
    Io {
        url: String,
        #[source]
        source: std::io::Error,
    },
}

impl ApiError {
    /// The HTTP status, when the server answered with an error status.
    #[must_use]
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Requests sent and responses other than 304 by this process (the
/// no-change test and the bench read them from the unit's log).
pub static REQUESTS: AtomicU64 = AtomicU64::new(0);
pub static NOT_304: AtomicU64 = AtomicU64::new(0);

/// What the rate-limit headers last said, for the whole process.
struct Governor {
    remaining: Option<u64>,
    reset: Option<i64>,
    /// Consecutive secondary-limit hits (the back-off exponent).
    secondary_hits: u32,
    /// When recent writes were sent (the content-creation limit).
    writes: std::collections::VecDeque<Instant>,
}

static GOVERNOR: Mutex<Governor> = Mutex::new(Governor {
    remaining: None,
    reset: None,
    secondary_hits: 0,
    writes: std::collections::VecDeque::new(),
});

fn governor() -> std::sync::MutexGuard<'static, Governor> {
    // why: a panic while holding the lock leaves plain numbers; keep using them
    GOVERNOR
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What the governor decides from one response.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Not a rate limit: hand the response to the caller.
    Pass,
    /// Wait this long, then send the request again.
    Retry(Duration, &'static str),
}

/// A pure reading of one response's status and rate-limit headers:
/// `remaining`/`reset` (`x-ratelimit-*`), `retry_after` (seconds), and
/// whether the body says "secondary rate limit"/"abuse". `hits` counts the
/// secondary limits in a row before this one; `now` is Unix time.
#[must_use]
pub fn judge(
    status: u16,
    remaining: Option<u64>,
    reset: Option<i64>,
    retry_after: Option<u64>,
    says_secondary: bool,
    hits: u32,
    now: i64,
) -> Verdict {
    if status != 403 && status != 429 {
        return Verdict::Pass;
    }
    if let Some(s) = retry_after {
        let backoff = Duration::from_secs(s.max(1)) * 2u32.saturating_pow(hits.min(6));
        return Verdict::Retry(backoff, "secondary rate limit (retry-after)");
    }
    if remaining == Some(0) {
        let secs = reset.map_or(60, |r| (r - now).max(0) + 1);
        return Verdict::Retry(
            Duration::from_secs(u64::try_from(secs).unwrap_or(60)),
            "primary rate limit exhausted",
        );
    }
    if status == 429 || says_secondary {
        return Verdict::Retry(
            SECONDARY_MIN_WAIT * 2u32.saturating_pow(hits.min(6)),
            "secondary rate limit",
        );
    }
    Verdict::Pass
}

/// A page of a listing as the server answered it.
#[derive(Debug)]
pub enum PageReply {
    NotModified,
    Fresh {
        body: Value,
        etag: Option<String>,
        next: Option<String>,
    },
}

/// One item of a listing: fetched now, or known unchanged (the cached
/// projection of a page that answered 304).
#[derive(Debug, Clone)]
pub enum Item {
    Fresh(Value),
    Kept(Value),
}

/// A whole listing: its items in order, and the record to cache.
#[derive(Debug)]
pub struct Listing {
    pub items: Vec<Item>,
    pub record: ListingRecord,
    /// Whether any page answered other than 304.
    pub changed: bool,
}

/// An optional resource that is not there for us (issues disabled: 410;
/// no access: 403; absent: 404).
#[derive(Debug, Clone)]
pub struct Unavailable {
    pub status: u16,
    pub message: String,
}

/// Whether listings send the cached ETags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conditional {
    /// Send If-None-Match with every cached page's ETag.
    UseEtags,
    /// Fetch every page whole (scrub).
    Refetch,
}

/// Whether a request to another origin than the API's may carry the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trust {
    /// Only the API's own origin gets the token (redirects, the web host).
    ApiOrigin,
    /// An `upload_url` the API itself gave (`uploads.github.com`).
    UploadUrl,
}

/// The API client.
pub struct Api {
    agent: ureq::Agent,
    base: String,
    origin: String,
    token: Option<String>,
}

/// `scheme://host[:port]` of a URL.
#[must_use]
pub fn origin_of(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    format!("{scheme}://{}", host.to_ascii_lowercase())
}

/// The URL of `rel="next"` in a `Link` header.
#[must_use]
pub fn link_next(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        let is_next = params
            .split(';')
            .any(|p| p.trim().replace(' ', "") == "rel=\"next\"");
        is_next.then(|| {
            url.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_owned()
        })
    })
}

/// `url` with `per_page=100` added unless it names a page size.
#[must_use]
pub fn with_per_page(url: &str) -> String {
    if url.contains("per_page=") {
        return url.to_owned();
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}per_page={PER_PAGE}")
}

fn header(resp: &ureq::http::Response<ureq::Body>, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

impl Api {
    /// A client of the API at `base` (`github-api-url`), authenticating with
    /// `token` when given.
    #[must_use]
    pub fn new(base: &str, token: Option<String>) -> Api {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(concat!("strata-github/", env!("CARGO_PKG_VERSION")))
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_recv_response(Some(Duration::from_mins(5)))
            .timeout_per_read(Some(Duration::from_mins(5)))
            .build()
            .into();
        let base = base.trim_end_matches('/').to_owned();
        Api {
            agent,
            origin: origin_of(&base),
            base,
            token,
        }
    }

    /// `base` + `path` (`/repos/o/r`).
    #[must_use]
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The API's base URL.
    #[must_use]
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Send one request, waiting out rate limits. The token goes only to
    /// the API's own origin.
    fn send(
        &self,
        method: &'static str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&dyn Fn() -> Result<ureq::SendBody<'static>, std::io::Error>>,
        trust: Trust,
    ) -> Result<ureq::http::Response<ureq::Body>, ApiError> {
        let mut waits = 0;
        loop {
            Self::wait_for_quota(method);
            let mut req = ureq::http::Request::builder().method(method).uri(url);
            let same_origin = origin_of(url) == self.origin;
            if same_origin || trust == Trust::UploadUrl {
                if !headers
                    .iter()
                    .any(|(k, _)| k.eq_ignore_ascii_case("accept"))
                {
                    req = req.header("Accept", "application/vnd.github+json");
                }
                req = req.header("X-GitHub-Api-Version", "2022-11-28");
                if let Some(t) = &self.token {
                    req = req.header("Authorization", format!("Bearer {t}"));
                }
            }
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            REQUESTS.fetch_add(1, Ordering::Relaxed);
            let http = |source: ureq::Error| ApiError::Http {
                method,
                url: url.to_owned(),
                source: Box::new(source),
            };
            let io = |source: std::io::Error| ApiError::Io {
                url: url.to_owned(),
                source,
            };
            let built = |e: ureq::http::Error| ApiError::Io {
                url: url.to_owned(),
                source: std::io::Error::other(e),
            };
            let resp = if let Some(make) = body {
                let req = req.body(make().map_err(io)?).map_err(built)?;
                self.agent.run(req).map_err(http)?
            } else {
                let req = req.body(()).map_err(built)?;
                self.agent.run(req).map_err(http)?
            };
            let status = resp.status().as_u16();
            if status != 304 {
                NOT_304.fetch_add(1, Ordering::Relaxed);
            }
            if !same_origin {
                return Ok(resp);
            }
            let remaining = header(&resp, "x-ratelimit-remaining").and_then(|v| v.parse().ok());
            let reset = header(&resp, "x-ratelimit-reset").and_then(|v| v.parse().ok());
            let retry_after = header(&resp, "retry-after").and_then(|v| v.trim().parse().ok());
            {
                let mut g = governor();
                if remaining.is_some() {
                    g.remaining = remaining;
                    g.reset = reset;
                }
            }
            if status != 403 && status != 429 {
                governor().secondary_hits = 0;
                return Ok(resp);
            }
            // why: only a limited response's body is read here, to tell a
            // secondary limit from a permission error
            let mut resp = resp;
            let text = resp
                .body_mut()
                .with_config()
                .limit(1 << 20)
                .read_to_string()
                .unwrap_or_default();
            let lower = text.to_ascii_lowercase();
            let says = lower.contains("secondary rate limit") || lower.contains("abuse");
            let hits = governor().secondary_hits;
            match judge(
                status,
                remaining,
                reset,
                retry_after,
                says,
                hits,
                chrono::Utc::now().timestamp(),
            ) {
                Verdict::Pass => {
                    return Err(ApiError::Status {
                        method,
                        url: url.to_owned(),
                        status,
                        message: message_of(&text),
                    });
                }
                Verdict::Retry(wait, why) => {
                    waits += 1;
                    if waits > MAX_WAITS {
                        return Err(ApiError::RateLimited {
                            url: url.to_owned(),
                        });
                    }
                    if why == "primary rate limit exhausted" {
                        println!(
                            "github: API rate limit exhausted ({method} {url}); waiting until {}",
                            until(
                                chrono::Utc::now().timestamp()
                                    + i64::try_from(wait.as_secs()).unwrap_or(0)
                            )
                        );
                    } else {
                        governor().secondary_hits = hits + 1;
                        println!(
                            "github: {why} on {method} {url}; waiting {}s",
                            wait.as_secs()
                        );
                    }
                    std::thread::sleep(wait);
                }
            }
        }
    }

    /// Before a request: wait while the quota is known exhausted, and keep
    /// writes within [`WRITES_PER_MINUTE`].
    fn wait_for_quota(method: &str) {
        let wait = {
            let g = governor();
            match (g.remaining, g.reset) {
                (Some(0), Some(reset)) => {
                    let now = chrono::Utc::now().timestamp();
                    (reset >= now).then(|| (reset, reset - now + 1))
                }
                _ => None,
            }
        };
        if let Some((reset, secs)) = wait {
            println!(
                "github: API rate limit exhausted; waiting until {}",
                until(reset)
            );
            std::thread::sleep(Duration::from_secs(u64::try_from(secs).unwrap_or(1)));
            governor().remaining = None;
        }
        if method != "GET" && method != "HEAD" {
            loop {
                let sleep = {
                    let mut g = governor();
                    let now = Instant::now();
                    while g
                        .writes
                        .front()
                        .is_some_and(|t| now.duration_since(*t) >= Duration::from_mins(1))
                    {
                        g.writes.pop_front();
                    }
                    if g.writes.len() < WRITES_PER_MINUTE {
                        g.writes.push_back(now);
                        None
                    } else {
                        g.writes
                            .front()
                            .map(|t| Duration::from_mins(1).saturating_sub(now.duration_since(*t)))
                    }
                };
                match sleep {
                    None => break,
                    Some(d) => std::thread::sleep(d),
                }
            }
        }
    }

    /// GET one page, conditionally when `etag` is given.
    pub fn get_page(&self, url: &str, etag: Option<&str>) -> Result<PageReply, ApiError> {
        let headers: Vec<(&str, &str)> = etag.map(|e| ("If-None-Match", e)).into_iter().collect();
        let mut resp = self.send("GET", url, &headers, None, Trust::ApiOrigin)?;
        let status = resp.status().as_u16();
        if status == 304 {
            return Ok(PageReply::NotModified);
        }
        let etag = header(&resp, "etag");
        let next = header(&resp, "link").and_then(|l| link_next(&l));
        let text = read_text(&mut resp, url)?;
        if status != 200 {
            return Err(ApiError::Status {
                method: "GET",
                url: url.to_owned(),
                status,
                message: message_of(&text),
            });
        }
        let body = serde_json::from_str(&text).map_err(|e| ApiError::Json {
            url: url.to_owned(),
            why: e.to_string(),
        })?;
        Ok(PageReply::Fresh { body, etag, next })
    }

    /// GET a JSON document, unconditionally.
    pub fn get_json(&self, url: &str) -> Result<Value, ApiError> {
        match self.get_page(url, None)? {
            PageReply::Fresh { body, .. } => Ok(body),
            PageReply::NotModified => Err(ApiError::Status {
                method: "GET",
                url: url.to_owned(),
                status: 304,
                message: "not modified, though nothing was asked conditionally".into(),
            }),
        }
    }

    /// Every item of a listing, unconditionally (no cache).
    pub fn list_all(&self, url: &str) -> Result<Vec<Value>, ApiError> {
        let listing = self.list(url, None, Conditional::Refetch, &|v| v.clone())?;
        Ok(listing
            .items
            .into_iter()
            .map(|i| match i {
                Item::Fresh(v) | Item::Kept(v) => v,
            })
            .collect())
    }

    /// A listing, page by page: each page conditional on its cached ETag
    /// (unless `cond` says refetch); a page that answers 304 contributes
    /// its cached projections. `project` turns a fetched item into what is
    /// cached of it. The first page of `url` gets `per_page=100`.
    pub fn list(
        &self,
        url: &str,
        old: Option<&ListingRecord>,
        cond: Conditional,
        project: &dyn Fn(&Value) -> Value,
    ) -> Result<Listing, ApiError> {
        let mut url = with_per_page(url);
        let mut items = Vec::new();
        let mut pages = Vec::new();
        let mut changed = false;
        for i in 0.. {
            let cached = old
                .and_then(|o| o.pages.get(i))
                .filter(|p| p.url == url && cond == Conditional::UseEtags);
            let reply = self.get_page(&url, cached.map(|p| p.etag.as_str()))?;
            let next = match (reply, cached) {
                (PageReply::NotModified, Some(c)) => {
                    items.extend(c.items.iter().cloned().map(Item::Kept));
                    pages.push(c.clone());
                    c.next.clone()
                }
                (PageReply::NotModified, None) => {
                    return Err(ApiError::Status {
                        method: "GET",
                        url,
                        status: 304,
                        message: "not modified, though nothing was asked conditionally".into(),
                    });
                }
                (PageReply::Fresh { body, etag, next }, _) => {
                    changed = true;
                    let Value::Array(list) = body else {
                        return Err(ApiError::Json {
                            url,
                            why: "expected a list".into(),
                        });
                    };
                    pages.push(PageRecord {
                        url: url.clone(),
                        etag: etag.unwrap_or_default(),
                        items: list.iter().map(project).collect(),
                        next: next.clone(),
                    });
                    items.extend(list.into_iter().map(Item::Fresh));
                    next
                }
            };
            match next {
                Some(n) if i < 100_000 => url = n,
                _ => break,
            }
        }
        // why: a page with no ETag cannot be asked conditionally; keep it out
        // of the record so that it is fetched whole next time
        let record = ListingRecord { pages };
        Ok(Listing {
            items,
            record,
            changed,
        })
    }

    /// Like [`Api::list`], but a 403/404/410 on the first page means the
    /// resource is not there for us (issues disabled, no access).
    pub fn list_optional(
        &self,
        url: &str,
        old: Option<&ListingRecord>,
        cond: Conditional,
        project: &dyn Fn(&Value) -> Value,
    ) -> Result<Result<Listing, Unavailable>, ApiError> {
        match self.list(url, old, cond, project) {
            Ok(l) => Ok(Ok(l)),
            Err(ApiError::Status {
                status: s @ (403 | 404 | 410),
                message,
                ..
            }) => Ok(Err(Unavailable { status: s, message })),
            Err(e) => Err(e),
        }
    }

    /// One object, conditional on its cached record (a one-page listing
    /// whose single item is the object's projection).
    pub fn object(
        &self,
        url: &str,
        old: Option<&PageRecord>,
        cond: Conditional,
        project: &dyn Fn(&Value) -> Value,
    ) -> Result<(Item, PageRecord), ApiError> {
        let cached = old.filter(|p| p.url == url && cond == Conditional::UseEtags);
        match (self.get_page(url, cached.map(|p| p.etag.as_str()))?, cached) {
            (PageReply::NotModified, Some(c)) if c.items.len() == 1 => {
                Ok((Item::Kept(c.items[0].clone()), c.clone()))
            }
            (PageReply::NotModified, _) => {
                // why: a record without its projection is no use; ask again whole
                self.object(url, None, Conditional::Refetch, project)
            }
            (PageReply::Fresh { body, etag, .. }, _) => {
                let rec = PageRecord {
                    url: url.to_owned(),
                    etag: etag.unwrap_or_default(),
                    items: vec![project(&body)],
                    next: None,
                };
                Ok((Item::Fresh(body), rec))
            }
        }
    }

    /// Download a release asset: `Accept: application/octet-stream`, a
    /// redirect followed without the token when it leads to another origin;
    /// the body is handed to `sink` as a stream.
    pub fn download<T>(
        &self,
        url: &str,
        sink: impl FnOnce(&mut dyn Read) -> std::io::Result<T>,
    ) -> Result<T, ApiError> {
        let mut url = url.to_owned();
        for _ in 0..5 {
            let mut resp = self.send(
                "GET",
                &url,
                &[("Accept", "application/octet-stream")],
                None,
                Trust::ApiOrigin,
            )?;
            let status = resp.status().as_u16();
            match status {
                200 => {
                    let mut reader = resp.body_mut().with_config().limit(u64::MAX).reader();
                    return sink(&mut reader).map_err(|source| ApiError::Io { url, source });
                }
                301 | 302 | 303 | 307 | 308 => {
                    let Some(loc) = header(&resp, "location") else {
                        return Err(ApiError::Status {
                            method: "GET",
                            url,
                            status,
                            message: "a redirect without a Location".into(),
                        });
                    };
                    url = resolve(&url, &loc);
                }
                _ => {
                    let text = read_text(&mut resp, &url).unwrap_or_default();
                    return Err(ApiError::Status {
                        method: "GET",
                        url,
                        status,
                        message: message_of(&text),
                    });
                }
            }
        }
        Err(ApiError::Status {
            method: "GET",
            url,
            status: 310,
            message: "too many redirects".into(),
        })
    }

    /// POST/PATCH/PUT a JSON body; the JSON answer (a 2xx), or the error.
    pub fn write_json(
        &self,
        method: &'static str,
        url: &str,
        body: &Value,
    ) -> Result<Value, ApiError> {
        let bytes = serde_json::to_vec(body).unwrap_or_default();
        let make = move || {
            Ok(ureq::SendBody::from_owned_reader(std::io::Cursor::new(
                bytes.clone(),
            )))
        };
        let mut resp = self.send(
            method,
            url,
            &[("Content-Type", "application/json")],
            Some(&make),
            Trust::ApiOrigin,
        )?;
        Self::answer(method, url, &mut resp)
    }

    /// POST a file's bytes (a release asset upload), streamed.
    pub fn upload(
        &self,
        url: &str,
        content_type: &str,
        path: &std::path::Path,
    ) -> Result<Value, ApiError> {
        let len = std::fs::metadata(path)
            .map_err(|source| ApiError::Io {
                url: url.to_owned(),
                source,
            })?
            .len()
            .to_string();
        let p = path.to_owned();
        let make = move || Ok(ureq::SendBody::from_owned_reader(std::fs::File::open(&p)?));
        let mut resp = self.send(
            "POST",
            url,
            &[("Content-Type", content_type), ("Content-Length", &len)],
            Some(&make),
            Trust::UploadUrl,
        )?;
        Self::answer("POST", url, &mut resp)
    }

    fn answer(
        method: &'static str,
        url: &str,
        resp: &mut ureq::http::Response<ureq::Body>,
    ) -> Result<Value, ApiError> {
        let status = resp.status().as_u16();
        let text = read_text(resp, url)?;
        if !(200..300).contains(&status) {
            return Err(ApiError::Status {
                method,
                url: url.to_owned(),
                status,
                message: message_of(&text),
            });
        }
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).map_err(|e| ApiError::Json {
            url: url.to_owned(),
            why: e.to_string(),
        })
    }

    /// GET a JSON document and one response header (`x-oauth-scopes`).
    pub fn get_with_header(
        &self,
        url: &str,
        name: &str,
    ) -> Result<(Value, Option<String>), ApiError> {
        let mut resp = self.send("GET", url, &[], None, Trust::ApiOrigin)?;
        let h = header(&resp, name);
        let v = Self::answer("GET", url, &mut resp)?;
        Ok((v, h))
    }

    /// POST a form to another origin than the API's (the device flow on the
    /// web host), never with the token; the JSON answer whatever its status.
    pub fn post_form(&self, url: &str, form: &[(&str, &str)]) -> Result<Value, ApiError> {
        let body: Vec<String> = form
            .iter()
            .map(|(k, v)| {
                format!(
                    "{}={}",
                    super::restore::encode(k),
                    super::restore::encode(v)
                )
            })
            .collect();
        let bytes = body.join("&").into_bytes();
        let make = move || {
            Ok(ureq::SendBody::from_owned_reader(std::io::Cursor::new(
                bytes.clone(),
            )))
        };
        let mut resp = self.send(
            "POST",
            url,
            &[
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("Accept", "application/json"),
            ],
            Some(&make),
            Trust::ApiOrigin,
        )?;
        let text = read_text(&mut resp, url)?;
        serde_json::from_str(&text).map_err(|e| ApiError::Json {
            url: url.to_owned(),
            why: e.to_string(),
        })
    }

    /// What the last response said of the quota: `(remaining, reset)`.
    #[must_use]
    pub fn quota(&self) -> (Option<u64>, Option<i64>) {
        let g = governor();
        (g.remaining, g.reset)
    }
}

/// A Unix time as `HH:MM:SS UTC`, for the wait line.
fn until(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map_or_else(|| t.to_string(), |t| t.format("%H:%M:%S UTC").to_string())
}

fn read_text(resp: &mut ureq::http::Response<ureq::Body>, url: &str) -> Result<String, ApiError> {
    resp.body_mut()
        .with_config()
        .limit(JSON_LIMIT)
        .read_to_string()
        .map_err(|e| ApiError::Http {
            method: "GET",
            url: url.to_owned(),
            source: Box::new(e),
        })
}

/// GitHub's error message from an error body (`{"message": ...}`), or the
/// body's start.
fn message_of(text: &str) -> String {
    serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| text.chars().take(200).collect())
}

/// A `Location` resolved against the URL it answered.
fn resolve(base: &str, loc: &str) -> String {
    if loc.contains("://") {
        loc.to_owned()
    } else if loc.starts_with('/') {
        format!("{}{loc}", origin_of(base))
    } else {
        let dir = base.rsplit_once('/').map_or(base, |(d, _)| d);
        format!("{dir}/{loc}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_headers_give_the_next_page() {
        let l = r#"<https://api.github.com/repositories/1/issues?page=2&per_page=100>; rel="next", <https://api.github.com/repositories/1/issues?page=5&per_page=100>; rel="last""#;
        assert_eq!(
            link_next(l).as_deref(),
            Some("https://api.github.com/repositories/1/issues?page=2&per_page=100")
        );
        let last = r#"<https://x/a?page=1>; rel="prev", <https://x/a?page=1>; rel="first""#;
        assert_eq!(link_next(last), None);
        assert_eq!(link_next(""), None);
    }

    #[test]
    fn per_page_is_added_once() {
        assert_eq!(with_per_page("https://a/x"), "https://a/x?per_page=100");
        assert_eq!(
            with_per_page("https://a/x?state=all"),
            "https://a/x?state=all&per_page=100"
        );
        assert_eq!(
            with_per_page("https://a/x?per_page=5"),
            "https://a/x?per_page=5"
        );
    }

    #[test]
    fn origins_compare_scheme_host_and_port() {
        assert_eq!(
            origin_of("https://API.github.com/x?y"),
            "https://api.github.com"
        );
        assert_eq!(
            origin_of("http://127.0.0.1:8080/api/v3"),
            "http://127.0.0.1:8080"
        );
        assert_ne!(
            origin_of("http://127.0.0.1:8080/a"),
            origin_of("http://127.0.0.1:8081/a")
        );
        assert_eq!(resolve("http://h:1/a/b", "/c"), "http://h:1/c");
        assert_eq!(resolve("http://h:1/a/b", "http://o:2/d"), "http://o:2/d");
    }

    #[test]
    fn the_governor_reads_the_headers() {
        let now = 1_000;
        // (status, remaining, reset, retry-after, says secondary, hits) -> verdict
        #[allow(clippy::type_complexity)] // why: a table of cases reads best inline
        let cases: &[(
            u16,
            Option<u64>,
            Option<i64>,
            Option<u64>,
            bool,
            u32,
            Verdict,
        )] = &[
            (200, Some(0), Some(2_000), None, false, 0, Verdict::Pass),
            (404, None, None, Some(5), false, 0, Verdict::Pass),
            (403, Some(10), Some(2_000), None, false, 0, Verdict::Pass),
            (
                403,
                Some(0),
                Some(1_030),
                None,
                false,
                0,
                Verdict::Retry(Duration::from_secs(31), "primary rate limit exhausted"),
            ),
            (
                403,
                Some(50),
                None,
                Some(3),
                true,
                0,
                Verdict::Retry(Duration::from_secs(3), "secondary rate limit (retry-after)"),
            ),
            (
                429,
                Some(50),
                None,
                Some(3),
                false,
                2,
                Verdict::Retry(
                    Duration::from_secs(12),
                    "secondary rate limit (retry-after)",
                ),
            ),
            (
                403,
                Some(50),
                None,
                None,
                true,
                0,
                Verdict::Retry(Duration::from_mins(1), "secondary rate limit"),
            ),
            (
                429,
                None,
                None,
                None,
                false,
                1,
                Verdict::Retry(Duration::from_mins(2), "secondary rate limit"),
            ),
        ];
        for (status, rem, reset, ra, says, hits, want) in cases {
            assert_eq!(
                judge(*status, *rem, *reset, *ra, *says, *hits, now),
                *want,
                "{status} {rem:?} {reset:?} {ra:?} {says} {hits}"
            );
        }
    }
}

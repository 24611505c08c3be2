//! Backing up one bucket: list, plan each object, fetch what the plan asks
//! for, store the bucket's ACL and CORS, then delete local entries whose
//! objects are gone.
//!
//! Where the time goes, and what this module does about it:
//! - Two requests per object (data, then ACL): they run in two lanes, at
//!   most `threads` data transfers and `threads` ACL requests at once, so an
//!   object's ACL request overlaps the data of others instead of holding a
//!   transfer slot. One client (one connection pool, keep-alive) serves both.
//! - An object up to [`SMALL`] bytes is received into memory and written by
//!   one blocking call that also writes its sidecars; a larger one streams
//!   to a temporary file.
//! - No fsync per object: the crash guarantee is kept by the order of the
//!   writes and one sync of each directory that got new names at the end
//!   (`docs/rgw.md` says which guarantee, and why it holds).
//! - A run in which nothing changed is the listing (with the bucket's ACL
//!   and CORS requested beside it) and a comparison with what is stored:
//!   no request per object, nothing written, nothing synced.

use super::admin::{self, Keys};
use super::keymap::{self, Entry, Role};
use super::s3::{AclDoc, CorsRuleDoc, ObjectMeta, to_json};
use super::sidecar;
use super::{Endpoint, RgwError, io, write_if_changed};
use crate::backup_root::BlockUpdate;
use crate::sources::{Check, UnitReport};
use aws_sdk_s3::types::EncodingType;
use std::collections::{BTreeSet, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};
use tokio::io::AsyncWriteExt;

/// Objects up to this size are received into memory (at most `threads` of
/// them at once) and written in one go; larger ones stream to a temporary
/// file.
pub const SMALL: u64 = 1 << 20;

/// Whether unchanged objects get their ACL fetched again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AclRefresh {
    /// Keep the stored ACL of an unchanged object (an ACL change does not
    /// change an object's `ETag` or Last-Modified, so it goes unseen).
    KeepStored,
    /// `--scrub-acls`, or `rgw-scrub-acl-probability` fired.
    Refetch,
}

/// How to run a backup.
pub struct BackupOptions {
    pub check: Check,
    pub acls: AclRefresh,
    /// Use these credentials instead of the bucket owner's from `radosgw-admin`.
    pub keys: Option<Keys>,
    /// Called once the listing is complete, before any object is fetched
    /// (tests use it to change the bucket at exactly that point).
    pub after_list: Option<Box<dyn Fn() + Send + Sync>>,
}

impl BackupOptions {
    #[must_use]
    pub fn new(check: Check, acls: AclRefresh) -> BackupOptions {
        BackupOptions {
            check,
            acls,
            keys: None,
            after_list: None,
        }
    }
}

/// One object as the listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub key: String,
    pub size: u64,
    pub etag: String,
    /// Last-Modified, milliseconds since the epoch (radosgw lists them).
    pub mtime: i64,
}

/// What the unit directory holds for one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub size: u64,
    /// The data file's mtime, milliseconds since the epoch.
    pub mtime: i64,
    /// From the metadata sidecar; `None` if it is missing or unreadable.
    pub etag: Option<String>,
    /// Whether the ACL sidecar is present and readable (strata's JSON or
    /// Deltaic's XML).
    pub acl_ok: bool,
}

/// What to fetch for one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetch {
    Nothing,
    AclOnly,
    All,
}

/// Whether a stored mtime is the listed Last-Modified (both in ms). strata
/// stores Last-Modified to the millisecond, so that a new ACL or metadata
/// in the same second as the object's last write (a common way to upload)
/// is seen; a stored time of whole seconds was written by Deltaic or an
/// earlier strata, and is compared by the second, so that taking over a
/// unit does not fetch every object again.
fn same_time(stored: i64, listed: i64) -> bool {
    if stored.rem_euclid(1000) == 0 {
        stored.div_euclid(1000) == listed.div_euclid(1000)
    } else {
        stored == listed
    }
}

/// The plan for one object: fetch it when it is new or its size, Last-Modified
/// or `ETag` differ from what is stored (or on a scrub); otherwise fetch only the
/// ACL when asked to or when the stored one is missing.
#[must_use]
pub fn plan(listed: &Listed, stored: Option<&Stored>, check: Check, acls: AclRefresh) -> Fetch {
    let Some(s) = stored else {
        return Fetch::All;
    };
    if check == Check::Scrub
        || s.size != listed.size
        || !same_time(s.mtime, listed.mtime)
        || s.etag.as_deref() != Some(listed.etag.as_str())
    {
        return Fetch::All;
    }
    if !s.acl_ok || acls == AclRefresh::Refetch {
        return Fetch::AclOnly;
    }
    Fetch::Nothing
}

fn read_stored(dir: &Path, key: &str) -> Option<Stored> {
    let st = std::fs::metadata(dir.join(keymap::key_path(key, Role::Data))).ok()?;
    let etag = std::fs::read(dir.join(keymap::key_path(key, Role::Meta)))
        .ok()
        .and_then(|b| serde_json::from_slice::<ObjectMeta>(&b).ok())
        .and_then(|m| m.etag);
    let acl_ok = std::fs::read(dir.join(keymap::key_path(key, Role::Acl)))
        .ok()
        .is_some_and(|b| sidecar::read_acl(&b).is_ok());
    Some(Stored {
        size: st.len(),
        mtime: st.mtime() * 1000 + st.mtime_nsec() / 1_000_000,
        etag,
        acl_ok,
    })
}

struct Ctx {
    client: aws_sdk_s3::Client,
    bucket: String,
    owner: String,
    dir: PathBuf,
    check: Check,
    /// Directories that got new names (files or subdirectories) this run,
    /// synced once at its end.
    touched: Mutex<BTreeSet<PathBuf>>,
    /// Directories known to exist, so that each is created once.
    made: Mutex<HashSet<PathBuf>>,
}

impl Ctx {
    fn touch(&self, dir: &Path) {
        let mut t = self.touched.lock().unwrap_or_else(PoisonError::into_inner);
        if !t.contains(dir) {
            t.insert(dir.to_owned());
        }
    }

    /// Create `dir` and its parents under the unit directory (once per run),
    /// noting each parent that got a new entry.
    fn make_dir(&self, dir: &Path) -> Result<(), RgwError> {
        if self
            .made
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(dir)
        {
            return Ok(());
        }
        let mut missing = Vec::new();
        let mut d = dir;
        while d != self.dir && !d.is_dir() {
            missing.push(d.to_owned());
            let Some(parent) = d.parent() else { break };
            d = parent;
        }
        for m in missing.iter().rev() {
            match std::fs::create_dir(m) {
                Ok(()) => self.touch(m.parent().unwrap_or(&self.dir)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io(m)(e)),
            }
        }
        self.made
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(dir.to_owned());
        Ok(())
    }

    /// Make the names written this run durable: one fsync of each
    /// directory that got one (none when nothing was written).
    fn sync_touched(&self) -> Result<(), RgwError> {
        let dirs =
            std::mem::take(&mut *self.touched.lock().unwrap_or_else(PoisonError::into_inner));
        for d in dirs {
            crate::backup_root::sync_dir(&d).map_err(io(&d))?;
        }
        Ok(())
    }
}

/// What happened to one object.
#[allow(clippy::struct_excessive_bools)] // why: independent facts, counted separately in the report
#[derive(Debug, Default)]
struct Outcome {
    fetched: bool,
    data_changed: bool,
    meta_changed: bool,
    acl_changed: bool,
    vanished: bool,
}

/// Back up `bucket` into `dir` (the unit directory, created if missing).
pub fn backup(
    dir: &Path,
    bucket: &str,
    endpoint: &Endpoint,
    opts: BackupOptions,
) -> Result<UnitReport, RgwError> {
    let (owner, keys) = match opts.keys.clone() {
        Some(k) => (format!("access key {}", k.access_key), k),
        None => admin::bucket_credentials(bucket)?,
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let ctx = Arc::new(Ctx {
        client: super::s3::client(&endpoint.server, endpoint.secure, &keys),
        bucket: bucket.to_owned(),
        owner,
        dir: dir.to_owned(),
        check: opts.check,
        touched: Mutex::new(BTreeSet::new()),
        made: Mutex::new(HashSet::new()),
    });
    super::runtime(endpoint.threads)?.block_on(run(ctx, endpoint.threads, opts))
}

async fn list(ctx: &Ctx) -> Result<Vec<Listed>, RgwError> {
    let mut out = Vec::new();
    // why: url encoding, so that keys with characters XML 1.0 cannot carry still list
    let mut pages = ctx
        .client
        .list_objects_v2()
        .bucket(&ctx.bucket)
        .encoding_type(EncodingType::Url)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page =
            page.map_err(|e| RgwError::s3("listing", &ctx.bucket, &ctx.bucket, &ctx.owner, &e))?;
        for o in page.contents() {
            let raw = o.key().unwrap_or_default();
            let key = super::s3::url_decode(raw).ok_or_else(|| RgwError::S3 {
                op: "listing",
                target: ctx.bucket.clone(),
                failure: super::s3::S3Failure {
                    code: None,
                    status: None,
                    detail: format!("undecodable key {raw:?}"),
                },
            })?;
            out.push(Listed {
                key,
                size: u64::try_from(o.size().unwrap_or(0)).unwrap_or(0),
                etag: o.e_tag().unwrap_or_default().to_owned(),
                mtime: o.last_modified().map_or(0, aws_smithy_millis),
            });
        }
    }
    Ok(out)
}

fn aws_smithy_millis(t: &aws_sdk_s3::primitives::DateTime) -> i64 {
    t.secs() * 1000 + i64::from(t.subsec_nanos() / 1_000_000)
}

async fn run(ctx: Arc<Ctx>, threads: usize, opts: BackupOptions) -> Result<UnitReport, RgwError> {
    // why: the bucket's ACL and CORS are two more round trips; they need
    // nothing from the listing, so they go beside it
    let (listed, bucket_docs) = tokio::join!(list(&ctx), bucket_docs(&ctx));
    let listed = listed?;
    println!("listed {} objects in bucket {}", listed.len(), ctx.bucket);
    if let Some(hook) = &opts.after_list {
        hook();
    }
    let mut jobs = Vec::new();
    let mut unchanged = 0usize;
    let mut bytes = 0u64;
    for l in &listed {
        bytes += l.size;
        let stored = read_stored(&ctx.dir, &l.key);
        match plan(l, stored.as_ref(), ctx.check, opts.acls) {
            Fetch::Nothing => unchanged += 1,
            // why: a scrub of an object a normal run would skip is a check, not an update
            f => {
                let expected = plan(l, stored.as_ref(), Check::Normal, AclRefresh::KeepStored);
                jobs.push((l.clone(), f, expected));
            }
        }
    }

    // why: objects in flight: each holds at most one data transfer and one
    // ACL request, from the lanes below, and then its blocking write
    let sem = Arc::new(tokio::sync::Semaphore::new(2 * threads));
    let lanes = Arc::new(Lanes {
        data: tokio::sync::Semaphore::new(threads),
        acl: tokio::sync::Semaphore::new(threads),
    });
    let mut set = tokio::task::JoinSet::new();
    let mut errors: Vec<RgwError> = Vec::new();
    let mut fatal: Option<RgwError> = None;
    let (mut fetched, mut acls, mut repaired, mut vanished) = (0usize, 0usize, 0u64, 0usize);
    let mut handle =
        |r: Result<(Listed, Fetch, Fetch, Result<Outcome, RgwError>), tokio::task::JoinError>,
         fatal: &mut Option<RgwError>| {
            let Ok((l, f, expected, r)) = r else {
                return; // why: a task aborted after a bucket-wide failure
            };
            match r {
                Ok(o) => {
                    if o.vanished {
                        vanished += 1;
                        println!(
                            "gone before download (kept until the next run): {:?}",
                            l.key
                        );
                        return;
                    }
                    if o.fetched && (o.data_changed || o.meta_changed) {
                        fetched += 1;
                    }
                    if o.acl_changed && !(o.data_changed || o.meta_changed) {
                        acls += 1;
                    }
                    let surprise = (expected == Fetch::Nothing
                        && (o.data_changed || o.meta_changed || o.acl_changed))
                        || (expected == Fetch::AclOnly && (o.data_changed || o.meta_changed));
                    if ctx.check == Check::Scrub && f == Fetch::All && surprise {
                        repaired += 1;
                        println!(
                            "scrub: {:?}: stored {} differed from radosgw; repaired",
                            l.key,
                            [
                                ("data", o.data_changed),
                                ("metadata", o.meta_changed),
                                ("ACL", o.acl_changed)
                            ]
                            .iter()
                            .filter(|(_, c)| *c)
                            .map(|(n, _)| *n)
                            .collect::<Vec<_>>()
                            .join(" and ")
                        );
                    } else if o.data_changed || o.meta_changed {
                        println!("fetched {:?}", l.key);
                    } else if o.acl_changed {
                        println!("ACL updated {:?}", l.key);
                    }
                }
                Err(e) if e.is_bucket_wide() => {
                    if fatal.is_none() {
                        *fatal = Some(e);
                    }
                }
                Err(e) => {
                    eprintln!("{e}");
                    errors.push(e);
                }
            }
        };
    for (l, f, expected) in jobs {
        if fatal.is_some() {
            break;
        }
        let permit = sem
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| RgwError::Build("semaphore closed".into()))?;
        let c = ctx.clone();
        let lanes = lanes.clone();
        set.spawn(async move {
            let _permit = permit;
            let r = sync_object(&c, &lanes, &l, f).await;
            (l, f, expected, r)
        });
        while let Some(r) = set.try_join_next() {
            handle(r, &mut fatal);
        }
    }
    if fatal.is_some() {
        set.abort_all();
    }
    while let Some(r) = set.join_next().await {
        handle(r, &mut fatal);
    }
    if let Some(e) = fatal {
        return Err(e);
    }

    let bucket_changed = store_bucket_docs(&ctx, bucket_docs?)?;
    let keys: HashSet<&str> = listed.iter().map(|l| l.key.as_str()).collect();
    let deleted = collect_garbage(&ctx.dir, &keys)?;
    // why: the names written this run made durable, instead of an fsync per
    // file (docs/rgw.md: the crash guarantee)
    ctx.sync_touched()?;

    let summary = format!(
        "{} objects: {fetched} fetched, {deleted} deleted, {acls} ACLs updated, {unchanged} unchanged{}{}",
        listed.len(),
        if vanished > 0 {
            format!(", {vanished} gone during the run")
        } else {
            String::new()
        },
        if ctx.check == Check::Scrub {
            format!("; scrub repaired {repaired}")
        } else {
            String::new()
        },
    );
    println!("{summary}");
    if let Some(first) = errors.first() {
        return Err(RgwError::ObjectsFailed {
            bucket: ctx.bucket.clone(),
            failed: errors.len(),
            listed: listed.len(),
            first: first.to_string(),
        });
    }
    Ok(UnitReport {
        bytes,
        changed: fetched > 0 || deleted > 0 || acls > 0 || bucket_changed,
        scrubbed: ctx.check == Check::Scrub,
        repaired,
        summary,
    })
}

/// A temporary file that is removed unless it was moved into place.
struct Temp {
    path: PathBuf,
}

impl Temp {
    fn new(dir: &Path) -> Temp {
        let n: u64 = rand::random();
        Temp {
            path: dir.join(format!(".strata-{n:016x}_t")),
        }
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        // why: a failed, short or cancelled download must leave nothing behind
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The two request lanes of a backup (module documentation).
struct Lanes {
    data: tokio::sync::Semaphore,
    acl: tokio::sync::Semaphore,
}

async fn sync_object(
    ctx: &Arc<Ctx>,
    lanes: &Lanes,
    l: &Listed,
    fetch: Fetch,
) -> Result<Outcome, RgwError> {
    let mut out = Outcome::default();
    let data_path = ctx.dir.join(keymap::key_path(&l.key, Role::Data));
    let parent = data_path.parent().unwrap_or(&ctx.dir).to_owned();
    let (downloaded, acl) = tokio::join!(
        async {
            match fetch {
                Fetch::All => {
                    let _slot = lanes.data.acquire().await;
                    download(ctx, l, &parent).await.map(Some)
                }
                Fetch::AclOnly | Fetch::Nothing => Ok(None),
            }
        },
        async {
            let _slot = lanes.acl.acquire().await;
            fetch_acl(ctx, l).await
        }
    );
    let downloaded = downloaded?;
    if let Some(Downloaded::Gone) = downloaded {
        out.vanished = true;
        return Ok(out);
    }
    let acl = acl?;
    if acl.is_none() && downloaded.is_none() {
        out.vanished = true;
        return Ok(out);
    }
    let c = Arc::clone(ctx);
    let key = l.key.clone();
    let mtime = l.mtime;
    tokio::task::spawn_blocking(move || store(&c, &key, mtime, downloaded, acl.as_ref(), out))
        .await
        .map_err(|e| RgwError::Build(format!("storing an object: {e}")))?
}

/// What a download brought.
enum Downloaded {
    /// Deleted after the listing.
    Gone,
    /// The object's bytes and metadata.
    Object { body: Body, meta: Box<ObjectMeta> },
}

/// Where a downloaded object's bytes are.
enum Body {
    Memory(Vec<u8>),
    File(Temp),
}

async fn fetch_acl(ctx: &Ctx, l: &Listed) -> Result<Option<AclDoc>, RgwError> {
    match ctx
        .client
        .get_object_acl()
        .bucket(&ctx.bucket)
        .key(&l.key)
        .send()
        .await
    {
        Ok(a) => Ok(Some(AclDoc::from_sdk(a.owner(), a.grants()))),
        Err(e) => {
            if super::s3::S3Failure::from_sdk(&e).is("NoSuchKey") {
                return Ok(None);
            }
            Err(RgwError::s3(
                "reading the ACL of",
                &ctx.bucket,
                &l.key,
                &ctx.owner,
                &e,
            ))
        }
    }
}

fn stream_error(l: &Listed, e: &impl std::fmt::Display) -> RgwError {
    RgwError::S3 {
        op: "downloading",
        target: l.key.clone(),
        failure: super::s3::S3Failure {
            code: None,
            status: None,
            detail: e.to_string(),
        },
    }
}

/// The object's bytes (checked against its length) and metadata; a large
/// object streams into a temporary file in `parent`.
async fn download(ctx: &Ctx, l: &Listed, parent: &Path) -> Result<Downloaded, RgwError> {
    let resp = match ctx
        .client
        .get_object()
        .bucket(&ctx.bucket)
        .key(&l.key)
        // why: the bytes must be the version the listing showed, or the stored ETag lies
        .if_match(&l.etag)
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) => {
            let failure = super::s3::S3Failure::from_sdk(&e);
            if failure.is("NoSuchKey") {
                return Ok(Downloaded::Gone);
            }
            if failure.is("PreconditionFailed") || failure.status == Some(412) {
                return Err(RgwError::ChangedDuringBackup { key: l.key.clone() });
            }
            return Err(RgwError::s3(
                "downloading",
                &ctx.bucket,
                &l.key,
                &ctx.owner,
                &e,
            ));
        }
    };
    let meta = ObjectMeta {
        metadata: resp
            .metadata()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        cache_control: resp.cache_control().map(str::to_owned),
        content_disposition: resp.content_disposition().map(str::to_owned),
        content_encoding: resp.content_encoding().map(str::to_owned),
        content_language: resp.content_language().map(str::to_owned),
        content_type: resp.content_type().map(str::to_owned),
        expires: resp.expires_string().map(str::to_owned),
        website_redirect_location: resp.website_redirect_location().map(str::to_owned),
        etag: resp.e_tag().map(str::to_owned),
        last_modified: resp
            .last_modified()
            .and_then(|t| t.fmt(aws_sdk_s3::primitives::DateTimeFormat::HttpDate).ok()),
    };
    let want = u64::try_from(resp.content_length().unwrap_or(0)).unwrap_or(0);
    let mut stream = resp.body;
    let (body, got) = if want <= SMALL {
        let mut bytes = Vec::with_capacity(usize::try_from(want).unwrap_or(0));
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| stream_error(l, &e))?;
            // why: a server sending more than it announced must not grow this without bound
            if (bytes.len() + chunk.len()) as u64 > SMALL {
                return Err(RgwError::ShortRead {
                    key: l.key.clone(),
                    got: (bytes.len() + chunk.len()) as u64,
                    want,
                });
            }
            bytes.extend_from_slice(&chunk);
        }
        let got = bytes.len() as u64;
        (Body::Memory(bytes), got)
    } else {
        ctx.make_dir(parent)?;
        let temp = Temp::new(parent);
        let mut file = tokio::fs::File::create(&temp.path)
            .await
            .map_err(io(&temp.path))?;
        let mut got = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| stream_error(l, &e))?;
            got += chunk.len() as u64;
            file.write_all(&chunk).await.map_err(io(&temp.path))?;
        }
        file.flush().await.map_err(io(&temp.path))?;
        drop(file);
        (Body::File(temp), got)
    };
    if got != want {
        return Err(RgwError::ShortRead {
            key: l.key.clone(),
            got,
            want,
        });
    }
    Ok(Downloaded::Object {
        body,
        meta: Box::new(meta),
    })
}

/// Store what was fetched for one object (blocking): its data file and
/// metadata sidecar (when downloaded), then its ACL sidecar, each written
/// only if it differs. The data file gets the object's Last-Modified as its
/// mtime last: that marks it complete.
fn store(
    ctx: &Ctx,
    key: &str,
    mtime: i64,
    downloaded: Option<Downloaded>,
    acl: Option<&AclDoc>,
    mut out: Outcome,
) -> Result<Outcome, RgwError> {
    let data = ctx.dir.join(keymap::key_path(key, Role::Data));
    let parent = data.parent().unwrap_or(&ctx.dir).to_owned();
    ctx.make_dir(&parent)?;
    if let Some(Downloaded::Object { body, meta }) = downloaded {
        out.fetched = true;
        out.data_changed = install_data(ctx, &data, &parent, body)?;
        let meta_path = ctx.dir.join(keymap::key_path(key, Role::Meta));
        out.meta_changed = !says(&meta_path, &*meta, |b| serde_json::from_slice(b).ok())
            && put(ctx, &meta_path, &meta.to_bytes())?;
        set_mtime(&data, mtime)?;
    }
    if let Some(doc) = acl {
        let path = ctx.dir.join(keymap::key_path(key, Role::Acl));
        out.acl_changed =
            !says(&path, doc, |b| sidecar::read_acl(b).ok()) && put(ctx, &path, &to_json(doc))?;
    }
    Ok(out)
}

/// Whether the sidecar at `path` already says `doc`, in whichever form it
/// is (a Deltaic sidecar whose meaning did not change is not rewritten).
fn says<T: PartialEq>(path: &Path, doc: &T, read: impl Fn(&[u8]) -> Option<T>) -> bool {
    std::fs::read(path)
        .ok()
        .and_then(|b| read(&b))
        .is_some_and(|d| d == *doc)
}

/// A sidecar written unless unchanged (no fsync: see the module doc).
fn put(ctx: &Ctx, path: &Path, bytes: &[u8]) -> Result<bool, RgwError> {
    let written = super::put_if_changed(path, bytes)?;
    if written {
        ctx.touch(path.parent().unwrap_or(&ctx.dir));
    }
    Ok(written)
}

/// Put a downloaded object's bytes at `data`: a new file by rename, an
/// existing one by block update (unchanged blocks not rewritten, DESIGN §2).
/// Returns whether the data changed.
fn install_data(ctx: &Ctx, data: &Path, parent: &Path, body: Body) -> Result<bool, RgwError> {
    if data.exists() {
        // why: the commit mark: until the mtime is Last-Modified again, the next run refetches
        set_mtime(data, 0)?;
        let stats = match &body {
            Body::Memory(bytes) => BlockUpdate::apply(data, &bytes[..]),
            Body::File(temp) => {
                let src = std::fs::File::open(&temp.path).map_err(io(&temp.path))?;
                BlockUpdate::apply(data, std::io::BufReader::with_capacity(1 << 20, src))
            }
        }
        .map_err(io(data))?;
        if !stats.unchanged() {
            // why: blocks rewritten in place must be on disk before the
            // mtime says the file is complete (docs/rgw.md)
            std::fs::File::open(data)
                .and_then(|f| f.sync_data())
                .map_err(io(data))?;
        }
        return Ok(!stats.unchanged());
    }
    let temp = match body {
        Body::File(temp) => temp,
        Body::Memory(bytes) => {
            let temp = Temp::new(parent);
            std::fs::write(&temp.path, &bytes).map_err(io(&temp.path))?;
            temp
        }
    };
    std::fs::rename(&temp.path, data).map_err(io(data))?;
    ctx.touch(parent);
    Ok(true)
}

/// Set `path`'s mtime to `millis` since the epoch.
fn set_mtime(path: &Path, millis: i64) -> Result<(), RgwError> {
    let t = if millis >= 0 {
        SystemTime::UNIX_EPOCH + Duration::from_millis(millis.unsigned_abs())
    } else {
        SystemTime::UNIX_EPOCH - Duration::from_millis(millis.unsigned_abs())
    };
    let f = std::fs::File::options()
        .write(true)
        .open(path)
        .map_err(io(path))?;
    f.set_modified(t).map_err(io(path))
}

/// The bucket's ACL and CORS rules (`None`: no CORS configuration).
struct BucketDocs {
    acl: AclDoc,
    cors: Option<Vec<CorsRuleDoc>>,
}

/// Fetch the bucket ACL and CORS rules.
async fn bucket_docs(ctx: &Ctx) -> Result<BucketDocs, RgwError> {
    let (acl, cors) = tokio::join!(
        ctx.client.get_bucket_acl().bucket(&ctx.bucket).send(),
        ctx.client.get_bucket_cors().bucket(&ctx.bucket).send()
    );
    let acl = acl.map_err(|e| {
        RgwError::s3(
            "reading the ACL of bucket",
            &ctx.bucket,
            &ctx.bucket,
            &ctx.owner,
            &e,
        )
    })?;
    let cors = match cors {
        Ok(c) => Some(c.cors_rules().iter().map(CorsRuleDoc::from_sdk).collect()),
        Err(e) => {
            if super::s3::S3Failure::from_sdk(&e).is("NoSuchCORSConfiguration") {
                None
            } else {
                return Err(RgwError::s3(
                    "reading the CORS rules of bucket",
                    &ctx.bucket,
                    &ctx.bucket,
                    &ctx.owner,
                    &e,
                ));
            }
        }
    };
    Ok(BucketDocs {
        acl: AclDoc::from_sdk(acl.owner(), acl.grants()),
        cors,
    })
}

/// Store the bucket ACL and CORS; returns whether either file changed.
fn store_bucket_docs(ctx: &Ctx, docs: BucketDocs) -> Result<bool, RgwError> {
    let acl_path = ctx.dir.join(keymap::BUCKET_ACL);
    let mut changed = !says(&acl_path, &docs.acl, |b| sidecar::read_acl(b).ok())
        && write_if_changed(&acl_path, &to_json(&docs.acl))?;
    let cors_path = ctx.dir.join(keymap::BUCKET_CORS);
    match docs.cors {
        Some(rules) => {
            changed |= !says(&cors_path, &rules, |b| sidecar::read_cors(b).ok())
                && write_if_changed(&cors_path, &to_json(&rules))?;
        }
        None => {
            if cors_path.exists() {
                std::fs::remove_file(&cors_path).map_err(io(&cors_path))?;
                changed = true;
            }
        }
    }
    Ok(changed)
}

/// Delete files of keys not in `keys`, temporary files and files that are
/// not canonical names; then empty directories. Returns objects deleted.
fn collect_garbage(dir: &Path, keys: &HashSet<&str>) -> Result<usize, RgwError> {
    let mut deleted = 0;
    for entry in walkdir::WalkDir::new(dir).min_depth(1).contents_first(true) {
        let entry = entry.map_err(|e| RgwError::Io {
            path: dir.to_owned(),
            source: e.into(),
        })?;
        let path = entry.path();
        if entry.file_type().is_dir() {
            // why: a directory still holding something is not empty; that is fine
            let _ = std::fs::remove_dir(path);
            continue;
        }
        let rel = path.strip_prefix(dir).unwrap_or(path);
        let delete = match keymap::parse_path(rel) {
            Ok(Entry::BucketAcl | Entry::BucketCors) => false,
            Ok(Entry::Temp) => true,
            Ok(Entry::Object { key, role }) => {
                let gone = !keys.contains(key.as_str());
                if gone && role == Role::Data {
                    deleted += 1;
                    println!("deleted {key:?}");
                }
                gone
            }
            Err(e) => {
                println!("removing a file that belongs to no key: {e}");
                true
            }
        };
        if delete {
            std::fs::remove_file(path).map_err(io(path))?;
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed() -> Listed {
        Listed {
            key: "k".into(),
            size: 10,
            etag: "\"e\"".into(),
            mtime: 1_700_000_000_123,
        }
    }

    fn stored() -> Stored {
        Stored {
            size: 10,
            mtime: 1_700_000_000_123,
            etag: Some("\"e\"".into()),
            acl_ok: true,
        }
    }

    #[test]
    fn plan_table() {
        use AclRefresh::{KeepStored as K, Refetch as R};
        use Check::{Normal as N, Scrub as S};
        let l = listed();
        let s = stored();
        let cases: Vec<(Option<Stored>, Check, AclRefresh, Fetch)> = vec![
            (None, N, K, Fetch::All),
            (Some(s.clone()), N, K, Fetch::Nothing),
            (Some(s.clone()), N, R, Fetch::AclOnly),
            (Some(s.clone()), S, K, Fetch::All),
            (
                Some(Stored {
                    size: 11,
                    ..s.clone()
                }),
                N,
                K,
                Fetch::All,
            ),
            (
                Some(Stored {
                    mtime: 0,
                    ..s.clone()
                }),
                N,
                K,
                Fetch::All,
            ),
            // a new ACL or metadata later in the same second
            (
                Some(Stored {
                    mtime: 1_700_000_000_024,
                    ..s.clone()
                }),
                N,
                K,
                Fetch::All,
            ),
            // stored by Deltaic (whole seconds): the same second is the same
            (
                Some(Stored {
                    mtime: 1_700_000_000_000,
                    ..s.clone()
                }),
                N,
                K,
                Fetch::Nothing,
            ),
            (
                Some(Stored {
                    mtime: 1_699_999_999_000,
                    ..s.clone()
                }),
                N,
                K,
                Fetch::All,
            ),
            (
                Some(Stored {
                    etag: Some("\"f\"".into()),
                    ..s.clone()
                }),
                N,
                K,
                Fetch::All,
            ),
            (
                Some(Stored {
                    etag: None,
                    ..s.clone()
                }),
                N,
                K,
                Fetch::All,
            ),
            (
                Some(Stored {
                    acl_ok: false,
                    ..s.clone()
                }),
                N,
                K,
                Fetch::AclOnly,
            ),
        ];
        for (i, (st, c, a, want)) in cases.into_iter().enumerate() {
            assert_eq!(plan(&l, st.as_ref(), c, a), want, "case {i}");
        }
    }

    #[test]
    fn garbage_collection_keeps_listed_keys_and_bucket_files() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path();
        for (key, keep) in [
            ("a", true),
            ("a/b", true),
            ("gone", false),
            ("x/y/z", false),
        ] {
            for role in Role::ALL {
                let p = dir.join(keymap::key_path(key, role));
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::fs::write(&p, key).unwrap();
            }
            let _ = keep;
        }
        std::fs::write(dir.join(keymap::BUCKET_ACL), "{}").unwrap();
        std::fs::write(dir.join("a_d/.strata-1_t"), "partial").unwrap();
        std::fs::write(dir.join("stray"), "?").unwrap();
        let keys: HashSet<&str> = ["a", "a/b"].into_iter().collect();
        assert_eq!(collect_garbage(dir, &keys).unwrap(), 2);
        let mut left: Vec<String> = walkdir::WalkDir::new(dir)
            .min_depth(1)
            .into_iter()
            .map(|e| {
                e.unwrap()
                    .path()
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "a_a", "a_d", "a_d/b_a", "a_d/b_k", "a_d/b_m", "a_k", "a_m", "bucket_A"
            ]
        );
    }
}

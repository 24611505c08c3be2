//! Backing up one bucket: list, plan each object, fetch what the plan asks
//! for with `threads` concurrent transfers, store the bucket's ACL and CORS,
//! then delete local entries whose objects are gone.

use super::admin::{self, Keys};
use super::keymap::{self, Entry, Role};
use super::s3::{AclDoc, CorsRuleDoc, ObjectMeta, to_json};
use super::{Endpoint, RgwError, io, write_if_changed};
use crate::backup_root::BlockUpdate;
use crate::sources::{Check, UnitReport};
use aws_sdk_s3::types::EncodingType;
use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::io::AsyncWriteExt;

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
    /// Last-Modified, whole seconds since the epoch.
    pub mtime: i64,
}

/// What the unit directory holds for one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub size: u64,
    pub mtime: i64,
    /// From the metadata sidecar; `None` if it is missing or unreadable.
    pub etag: Option<String>,
    /// Whether the ACL sidecar is present and in strata's form.
    pub acl_ok: bool,
}

/// What to fetch for one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetch {
    Nothing,
    AclOnly,
    All,
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
        || s.mtime != listed.mtime
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
        .is_some_and(|b| serde_json::from_slice::<AclDoc>(&b).is_ok());
    Some(Stored {
        size: st.len(),
        mtime: st.mtime(),
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
                mtime: o.last_modified().map_or(0, aws_smithy_secs),
            });
        }
    }
    Ok(out)
}

fn aws_smithy_secs(t: &aws_sdk_s3::primitives::DateTime) -> i64 {
    t.secs()
}

async fn run(ctx: Arc<Ctx>, threads: usize, opts: BackupOptions) -> Result<UnitReport, RgwError> {
    let listed = list(&ctx).await?;
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

    let sem = Arc::new(tokio::sync::Semaphore::new(threads));
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
        set.spawn(async move {
            let _permit = permit;
            let r = sync_object(&c, &l, f).await;
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

    let bucket_changed = bucket_files(&ctx).await?;
    let keys: HashSet<&str> = listed.iter().map(|l| l.key.as_str()).collect();
    let deleted = collect_garbage(&ctx.dir, &keys)?;
    // why: one flush of everything written, instead of an fsync per file
    let d = std::fs::File::open(&ctx.dir).map_err(io(&ctx.dir))?;
    nix::unistd::syncfs(&d).map_err(|e| RgwError::Io {
        path: ctx.dir.clone(),
        source: e.into(),
    })?;

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

async fn sync_object(ctx: &Ctx, l: &Listed, fetch: Fetch) -> Result<Outcome, RgwError> {
    let mut out = Outcome::default();
    let data = ctx.dir.join(keymap::key_path(&l.key, Role::Data));
    let parent = data.parent().unwrap_or(&ctx.dir).to_owned();
    tokio::fs::create_dir_all(&parent)
        .await
        .map_err(io(&parent))?;
    // why: the ACL is a second request per object; overlapping the two halves the latency
    let (fetched, acl) = tokio::join!(
        async {
            match fetch {
                Fetch::All => fetch_data(ctx, l, &parent).await,
                Fetch::AclOnly | Fetch::Nothing => Ok(None),
            }
        },
        fetch_acl(ctx, l)
    );
    match fetched? {
        Some(Fetched::Gone) => {
            out.vanished = true;
            return Ok(out);
        }
        Some(Fetched::Stored { data, meta }) => {
            out.fetched = true;
            out.data_changed = data;
            out.meta_changed = meta;
        }
        None => {}
    }
    let Some(doc) = acl? else {
        out.vanished = !out.fetched;
        return Ok(out);
    };
    let path = ctx.dir.join(keymap::key_path(&l.key, Role::Acl));
    out.acl_changed = super::put_if_changed(&path, &to_json(&doc))?;
    Ok(out)
}

enum Fetched {
    /// Deleted after the listing.
    Gone,
    /// Stored; whether the data and the metadata changed.
    Stored { data: bool, meta: bool },
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

async fn fetch_data(ctx: &Ctx, l: &Listed, parent: &Path) -> Result<Option<Fetched>, RgwError> {
    let temp = Temp::new(parent);
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
                return Ok(Some(Fetched::Gone));
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
        etag: resp.e_tag().map(str::to_owned),
        last_modified: resp
            .last_modified()
            .and_then(|t| t.fmt(aws_sdk_s3::primitives::DateTimeFormat::HttpDate).ok()),
    };
    let want = u64::try_from(resp.content_length().unwrap_or(0)).unwrap_or(0);
    let mut body = resp.body;
    let mut file = tokio::fs::File::create(&temp.path)
        .await
        .map_err(io(&temp.path))?;
    let mut got = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| RgwError::S3 {
            op: "downloading",
            target: l.key.clone(),
            failure: super::s3::S3Failure {
                code: None,
                status: None,
                detail: e.to_string(),
            },
        })?;
        got += chunk.len() as u64;
        file.write_all(&chunk).await.map_err(io(&temp.path))?;
    }
    // why: no fsync per object; the backup ends with one syncfs
    file.flush().await.map_err(io(&temp.path))?;
    drop(file);
    if got != want {
        return Err(RgwError::ShortRead {
            key: l.key.clone(),
            got,
            want,
        });
    }
    let key = l.key.clone();
    let dir = ctx.dir.clone();
    let mtime = l.mtime;
    let (data, meta) = tokio::task::spawn_blocking(move || install(&dir, &key, temp, &meta, mtime))
        .await
        .map_err(|e| RgwError::Build(format!("storing an object: {e}")))??;
    Ok(Some(Fetched::Stored { data, meta }))
}

/// Move a complete download into place (blocking): returns whether the data
/// and the metadata sidecar changed.
fn install(
    dir: &Path,
    key: &str,
    temp: Temp,
    meta: &ObjectMeta,
    mtime: i64,
) -> Result<(bool, bool), RgwError> {
    let data = dir.join(keymap::key_path(key, Role::Data));
    let data_changed = if data.exists() {
        // why: the commit mark: until the mtime is Last-Modified again, the next run refetches
        set_mtime(&data, 0)?;
        let src = std::fs::File::open(&temp.path).map_err(io(&temp.path))?;
        let stats = BlockUpdate::apply(&data, std::io::BufReader::with_capacity(1 << 20, src))
            .map_err(io(&data))?;
        !stats.unchanged()
    } else {
        std::fs::rename(&temp.path, &data).map_err(io(&data))?;
        true
    };
    drop(temp);
    let meta_path = dir.join(keymap::key_path(key, Role::Meta));
    let meta_changed = super::put_if_changed(&meta_path, &meta.to_bytes())?;
    set_mtime(&data, mtime)?;
    Ok((data_changed, meta_changed))
}

fn set_mtime(path: &Path, secs: i64) -> Result<(), RgwError> {
    let t = if secs >= 0 {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
    } else {
        SystemTime::UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    };
    let f = std::fs::File::options()
        .write(true)
        .open(path)
        .map_err(io(path))?;
    f.set_modified(t).map_err(io(path))
}

/// Fetch the bucket ACL and CORS; returns whether either file changed.
async fn bucket_files(ctx: &Ctx) -> Result<bool, RgwError> {
    let acl = ctx
        .client
        .get_bucket_acl()
        .bucket(&ctx.bucket)
        .send()
        .await
        .map_err(|e| {
            RgwError::s3(
                "reading the ACL of bucket",
                &ctx.bucket,
                &ctx.bucket,
                &ctx.owner,
                &e,
            )
        })?;
    let doc = AclDoc::from_sdk(acl.owner(), acl.grants());
    let mut changed = write_if_changed(&ctx.dir.join(keymap::BUCKET_ACL), &to_json(&doc))?;
    let cors_path = ctx.dir.join(keymap::BUCKET_CORS);
    match ctx
        .client
        .get_bucket_cors()
        .bucket(&ctx.bucket)
        .send()
        .await
    {
        Ok(c) => {
            let rules: Vec<CorsRuleDoc> =
                c.cors_rules().iter().map(CorsRuleDoc::from_sdk).collect();
            changed |= write_if_changed(&cors_path, &to_json(&rules))?;
        }
        Err(e) => {
            let failure = super::s3::S3Failure::from_sdk(&e);
            if failure.is("NoSuchCORSConfiguration") {
                if cors_path.exists() {
                    std::fs::remove_file(&cors_path).map_err(io(&cors_path))?;
                    changed = true;
                }
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
            mtime: 100,
        }
    }

    fn stored() -> Stored {
        Stored {
            size: 10,
            mtime: 100,
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

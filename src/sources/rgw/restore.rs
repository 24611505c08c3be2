//! Restoring a backed-up bucket into a bucket on radosgw: the bucket (created
//! if missing; a non-empty one only with `force`), its ACL and CORS, and every
//! object with its metadata, content type and ACL, each object uploaded with
//! its owner's credentials (as Deltaic did), so ownership comes back too.
//!
//! Grantees and owners must exist on the target radosgw; grants to users that
//! do not exist are left out, and the report names them. Last-Modified and
//! `ETag` cannot be restored: S3 sets both.

use super::admin::{self, Keys};
use super::keymap::{self, Entry, Role};
use super::s3::{AclDoc, CorsRuleDoc, GranteeDoc, ObjectMeta};
use super::sidecar::{self, SidecarError};
use super::{Endpoint, RgwError, io};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// How to restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestoreOptions {
    /// Refuse a destination bucket that holds objects.
    EmptyOnly,
    /// Restore into a non-empty bucket (`-f`).
    Force,
}

/// What a restore did and could not do.
#[derive(Debug, Default)]
pub struct RestoreReport {
    pub objects: usize,
    pub bytes: u64,
    /// Users named in ACLs (as owner or grantee) that do not exist on the target.
    pub missing_users: BTreeSet<String>,
    pub created_bucket: bool,
    pub cors: bool,
}

/// Who exists on the target radosgw, and their keys (cached; one
/// `radosgw-admin` call per user).
// why: per uid looked up: None = no such user, Some(None) = a user without keys
#[allow(clippy::option_option)]
struct Users {
    known: Mutex<HashMap<String, Option<Option<Keys>>>>,
    missing: Mutex<BTreeSet<String>>,
}

impl Users {
    #[allow(clippy::option_option)] // why: None = no such user, Some(None) = a user without keys
    fn lookup(&self, uid: &str) -> Result<Option<Option<Keys>>, RgwError> {
        if let Some(v) = self.known.lock().map_err(poisoned)?.get(uid) {
            return Ok(v.clone());
        }
        let v = admin::user_info(uid)?;
        if v.is_none() {
            self.missing
                .lock()
                .map_err(poisoned)?
                .insert(uid.to_owned());
        }
        self.known
            .lock()
            .map_err(poisoned)?
            .insert(uid.to_owned(), v.clone());
        Ok(v)
    }

    fn exists(&self, g: &GranteeDoc) -> Result<bool, RgwError> {
        match g {
            GranteeDoc::CanonicalUser { id, .. } => Ok(self.lookup(id)?.is_some()),
            // why: groups always exist; e-mail grantees are resolved by radosgw itself
            GranteeDoc::Group { .. } | GranteeDoc::AmazonCustomerByEmail { .. } => Ok(true),
        }
    }

    /// The ACL with grants to missing users left out.
    fn filter(&self, acl: &AclDoc) -> Result<AclDoc, RgwError> {
        let mut out = acl.clone();
        out.grants.clear();
        for g in &acl.grants {
            if self.exists(&g.grantee)? {
                out.grants.push(g.clone());
            }
        }
        Ok(out)
    }
}

fn poisoned<T>(_: std::sync::PoisonError<T>) -> RgwError {
    RgwError::Build("a restore worker panicked".into())
}

/// A sidecar read with `read` (JSON, or for ACLs and CORS also Deltaic's XML).
fn read_sidecar<T>(
    path: &Path,
    read: impl Fn(&[u8]) -> Result<T, SidecarError>,
) -> Result<T, RgwError> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    read(&bytes).map_err(|source| RgwError::Sidecar {
        path: path.to_owned(),
        source,
    })
}

fn json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, SidecarError> {
    Ok(serde_json::from_slice(bytes)?)
}

/// Restore the backup in `dir` (a unit directory) to `dest` on `endpoint`.
pub fn restore(
    dir: &Path,
    dest: &str,
    endpoint: &Endpoint,
    mode: RestoreOptions,
) -> Result<RestoreReport, RgwError> {
    let acl_path = dir.join(keymap::BUCKET_ACL);
    if !acl_path.exists() {
        return Err(RgwError::NoBackup {
            path: dir.to_owned(),
        });
    }
    let bucket_acl = read_sidecar(&acl_path, sidecar::read_acl)?;
    let part_size = crate::s3::part_size();
    let users = Arc::new(Users {
        known: Mutex::new(HashMap::new()),
        missing: Mutex::new(BTreeSet::new()),
    });
    let owner = bucket_acl
        .owner
        .as_ref()
        .map(|o| o.id.clone())
        .ok_or_else(|| RgwError::NoBackup {
            path: acl_path.clone(),
        })?;
    let owner_keys = match users.lookup(&owner)? {
        None => return Err(RgwError::NoSuchUser { uid: owner }),
        Some(None) => return Err(RgwError::NoKeys { uid: owner }),
        Some(Some(k)) => k,
    };
    let mut keys: Vec<String> = Vec::new();
    for entry in walkdir::WalkDir::new(dir).min_depth(1).sort_by_file_name() {
        let entry = entry.map_err(|e| RgwError::Io {
            path: dir.to_owned(),
            source: e.into(),
        })?;
        if !entry.file_type().is_file() {
            continue;
        }
        let rel = entry.path().strip_prefix(dir).unwrap_or(entry.path());
        if let Ok(Entry::Object {
            key,
            role: Role::Data,
        }) = keymap::parse_path(rel)
        {
            keys.push(key);
        }
    }
    let rt = super::runtime(endpoint.threads)?;
    let mut report = rt.block_on(async {
        let client = super::s3::client(&endpoint.server, endpoint.secure, &owner_keys);
        let mut report = RestoreReport::default();
        match client.head_bucket().bucket(dest).send().await {
            Ok(_) => {
                let l = client
                    .list_objects_v2()
                    .bucket(dest)
                    .max_keys(1)
                    .send()
                    .await
                    .map_err(|e| RgwError::s3("listing", dest, dest, &owner, &e))?;
                if !l.contents().is_empty() && mode == RestoreOptions::EmptyOnly {
                    return Err(RgwError::NotEmpty {
                        bucket: dest.to_owned(),
                    });
                }
            }
            Err(e) => {
                let f = super::s3::S3Failure::from_sdk(&e);
                if f.status != Some(404) {
                    return Err(RgwError::s3("checking bucket", dest, dest, &owner, &e));
                }
                client
                    .create_bucket()
                    .bucket(dest)
                    .send()
                    .await
                    .map_err(|e| RgwError::s3("creating bucket", dest, dest, &owner, &e))?;
                report.created_bucket = true;
                println!("created bucket {dest} owned by {owner}");
            }
        }
        let policy = users.filter(&bucket_acl)?.to_sdk(|_| true)?;
        client
            .put_bucket_acl()
            .bucket(dest)
            .access_control_policy(policy)
            .send()
            .await
            .map_err(|e| RgwError::s3("setting the ACL of bucket", dest, dest, &owner, &e))?;
        let cors_path = dir.join(keymap::BUCKET_CORS);
        if cors_path.exists() {
            let rules = read_sidecar(&cors_path, sidecar::read_cors)?;
            client
                .put_bucket_cors()
                .bucket(dest)
                .cors_configuration(CorsRuleDoc::to_sdk(&rules)?)
                .send()
                .await
                .map_err(|e| {
                    RgwError::s3("setting the CORS rules of bucket", dest, dest, &owner, &e)
                })?;
            report.cors = true;
        } else if !report.created_bucket {
            // why: the unit had no CORS rules; a bucket restored over must not keep its own
            client
                .delete_bucket_cors()
                .bucket(dest)
                .send()
                .await
                .map_err(|e| {
                    RgwError::s3("removing the CORS rules of bucket", dest, dest, &owner, &e)
                })?;
        }
        let clients: Arc<Mutex<HashMap<String, aws_sdk_s3::Client>>> =
            Arc::new(Mutex::new(HashMap::from([(owner.clone(), client)])));
        let sem = Arc::new(tokio::sync::Semaphore::new(endpoint.threads));
        let mut set = tokio::task::JoinSet::new();
        let mut first_error = None;
        for key in keys {
            let permit = sem
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| RgwError::Build("semaphore closed".into()))?;
            let job = Job {
                dir: dir.to_owned(),
                dest: dest.to_owned(),
                owner: owner.clone(),
                endpoint: endpoint.clone(),
                users: users.clone(),
                clients: clients.clone(),
                part_size,
            };
            set.spawn(async move {
                let _permit = permit;
                let r = job.upload(&key).await;
                (key, r)
            });
            while let Some(r) = set.try_join_next() {
                tally(r, &mut report, &mut first_error);
            }
            if first_error.is_some() {
                break;
            }
        }
        while let Some(r) = set.join_next().await {
            tally(r, &mut report, &mut first_error);
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(report),
        }
    })?;
    report
        .missing_users
        .clone_from(&*users.missing.lock().map_err(poisoned)?);
    Ok(report)
}

fn tally(
    r: Result<(String, Result<u64, RgwError>), tokio::task::JoinError>,
    report: &mut RestoreReport,
    first_error: &mut Option<RgwError>,
) {
    match r {
        Ok((key, Ok(n))) => {
            report.objects += 1;
            report.bytes += n;
            println!("restored {key:?}");
        }
        Ok((key, Err(e))) => {
            eprintln!("{key:?}: {e}");
            first_error.get_or_insert(e);
        }
        Err(e) => {
            first_error.get_or_insert(RgwError::Build(format!("a restore task failed: {e}")));
        }
    }
}

/// Whether `acl` is what S3 gives a new object of `uploader` anyway (the
/// owner with full control): then setting it again is a wasted request.
fn is_default_acl(acl: &AclDoc, uploader: &str) -> bool {
    acl.owner.as_ref().is_some_and(|o| o.id == uploader)
        && matches!(acl.grants.as_slice(), [g] if g.permission == "FULL_CONTROL"
            && matches!(&g.grantee, GranteeDoc::CanonicalUser { id, .. } if id == uploader))
}

/// `$request` (a `PutObject` or `CreateMultipartUpload` builder, whose setters
/// are named alike) carrying the stored metadata sidecar `$meta`.
macro_rules! with_object_meta {
    ($request:expr, $meta:expr) => {
        $request
            .set_metadata(Some($meta.metadata.clone().into_iter().collect()))
            .set_content_type($meta.content_type.clone())
            .set_cache_control($meta.cache_control.clone())
            .set_content_disposition($meta.content_disposition.clone())
            .set_content_encoding($meta.content_encoding.clone())
            .set_content_language($meta.content_language.clone())
            .set_expires($meta.expires.as_deref().and_then(|t| {
                aws_sdk_s3::primitives::DateTime::from_str(
                    t,
                    aws_sdk_s3::primitives::DateTimeFormat::HttpDate,
                )
                .ok()
            }))
            .set_website_redirect_location($meta.website_redirect_location.clone())
    };
}

struct Job {
    dir: PathBuf,
    dest: String,
    owner: String,
    endpoint: Endpoint,
    users: Arc<Users>,
    clients: Arc<Mutex<HashMap<String, aws_sdk_s3::Client>>>,
    /// Objects above this are sent in parts (a single PUT stops at 5 GiB).
    part_size: u64,
}

impl Job {
    /// The client of the object's owner, or of the bucket owner when the
    /// object's owner does not exist here (then the report names them).
    fn client_for(&self, uid: &str) -> Result<(String, aws_sdk_s3::Client), RgwError> {
        if let Some(c) = self.clients.lock().map_err(poisoned)?.get(uid) {
            return Ok((uid.to_owned(), c.clone()));
        }
        if let Some(Some(keys)) = self.users.lookup(uid)? {
            let c = super::s3::client(&self.endpoint.server, self.endpoint.secure, &keys);
            self.clients
                .lock()
                .map_err(poisoned)?
                .insert(uid.to_owned(), c.clone());
            Ok((uid.to_owned(), c))
        } else {
            let c = self
                .clients
                .lock()
                .map_err(poisoned)?
                .get(&self.owner)
                .cloned();
            c.map(|c| (self.owner.clone(), c))
                .ok_or_else(|| RgwError::NoSuchUser {
                    uid: self.owner.clone(),
                })
        }
    }

    async fn upload(&self, key: &str) -> Result<u64, RgwError> {
        let data = self.dir.join(keymap::key_path(key, Role::Data));
        let meta: ObjectMeta =
            read_sidecar(&self.dir.join(keymap::key_path(key, Role::Meta)), json)?;
        let acl_path = self.dir.join(keymap::key_path(key, Role::Acl));
        let acl: Option<AclDoc> = if acl_path.exists() {
            Some(read_sidecar(&acl_path, sidecar::read_acl)?)
        } else {
            None
        };
        let uid = acl
            .as_ref()
            .and_then(|a| a.owner.as_ref())
            .map_or_else(|| self.owner.clone(), |o| o.id.clone());
        let (who, client) = self.client_for(&uid)?;
        let len = std::fs::metadata(&data).map_err(io(&data))?.len();
        if len > self.part_size {
            let create = with_object_meta!(client.create_multipart_upload(), meta);
            crate::s3::upload_in_parts(
                &client,
                create,
                &self.dest,
                key,
                &data,
                len,
                self.part_size,
            )
            .await
            .map_err(|p| {
                RgwError::classify(&self.dest, &who, p.failure, |failure| RgwError::S3Parts {
                    step: p.step,
                    failure,
                })
            })?;
        } else {
            self.put(&client, &who, key, &meta, &data, len).await?;
        }
        if let Some(acl) = acl.filter(|a| !is_default_acl(a, &who)) {
            let mut acl = self.users.filter(&acl)?;
            if who != uid {
                // why: the original owner is missing; the uploader owns the object now
                acl.owner = None;
            }
            client
                .put_object_acl()
                .bucket(&self.dest)
                .key(key)
                .access_control_policy(acl.to_sdk(|_| true)?)
                .send()
                .await
                .map_err(|e| RgwError::s3("setting the ACL of", &self.dest, key, &who, &e))?;
        }
        Ok(len)
    }

    /// Send `data` (`len` bytes) as `key` in one PUT, with `meta`.
    async fn put(
        &self,
        client: &aws_sdk_s3::Client,
        who: &str,
        key: &str,
        meta: &ObjectMeta,
        data: &Path,
        len: u64,
    ) -> Result<(), RgwError> {
        let body = aws_sdk_s3::primitives::ByteStream::from_path(data)
            .await
            .map_err(|e| RgwError::Io {
                path: data.to_owned(),
                source: std::io::Error::other(e),
            })?;
        with_object_meta!(client.put_object(), meta)
            .bucket(&self.dest)
            .key(key)
            .body(body)
            .content_length(i64::try_from(len).unwrap_or(i64::MAX))
            .send()
            .await
            .map_err(|e| RgwError::s3("uploading", &self.dest, key, who, &e))?;
        Ok(())
    }
}

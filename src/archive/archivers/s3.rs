//! The `s3` archiver: any S3-compatible store (AWS with a cold storage
//! class, Ceph RGW, `MinIO`, moto), through the AWS SDK.
//!
//! Layout under `s3-prefix`: `<set>/<unit%2F...>.archive`, one object per
//! archive, its metadata (`compression`, `encryption`, `sha256`, `size`) in
//! the object's user metadata; `<set>/COMPLETE` marks a complete set.
//! An object appears in S3 only whole and with its metadata (`PutObject` and
//! `CompleteMultipartUpload` are atomic), so a killed upload leaves nothing
//! listed; at most an unfinished multipart upload, which `resync` aborts.
//! Archives above the part size are uploaded in parts streamed from the
//! spool file (memory stays at one part's buffers), each part retried.
//!
//! Cold classes: reading a GLACIER / `DEEP_ARCHIVE` object first issues
//! `RestoreObject` with the profile's tier and days, then polls `HeadObject`
//! until the restore is done. Sets are protected from prune while any of
//! their objects is younger than its class's minimum storage period
//! (GLACIER and `GLACIER_IR` 90 days, `DEEP_ARCHIVE` 180, the IA classes 30).
//!
//! The SDK is async; this archiver owns a small tokio runtime and blocks on
//! it, so the rest of strata stays synchronous.

use super::{Archiver, CostLine, SetInfo, decode_unit, encode_unit};
use crate::archive::{ArchiveError, ArchiveMeta, MetaFields};
use crate::config::{RestoreTier, S3Profile};
use aws_sdk_s3::Client;
use aws_sdk_s3::config::{
    Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
    timeout::TimeoutConfig,
};
use aws_sdk_s3::operation::head_object::HeadObjectOutput;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumMode, GlacierJobParameters, RestoreRequest, StorageClass, Tier};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::runtime::Runtime;

const ARCHIVE: &str = ".archive";
const COMPLETE: &str = "COMPLETE";

pub struct S3Archiver {
    rt: Arc<Runtime>,
    client: Client,
    profile: S3Profile,
    part_size: u64,
    poll: Duration,
    stall: Duration,
}

fn backend<E: std::error::Error + 'static>(
    op: impl Into<String>,
) -> impl FnOnce(E) -> ArchiveError {
    let op = op.into();
    move |e| ArchiveError::S3 {
        op,
        source: crate::s3::S3Failure::described(&e),
    }
}

/// Minimum storage period of a class, in days.
#[must_use]
pub fn min_storage_days(class: &str) -> i64 {
    match class {
        "GLACIER" | "GLACIER_IR" => 90,
        "DEEP_ARCHIVE" => 180,
        "STANDARD_IA" | "ONEZONE_IA" => 30,
        _ => 0,
    }
}

/// List prices ($/GB-month stored, $/GB retrieved), used when `s3-prices` does
/// not name the class.
#[must_use]
pub fn default_price(class: &str) -> (f64, f64) {
    match class {
        "STANDARD_IA" => (0.0125, 0.01),
        "ONEZONE_IA" => (0.01, 0.01),
        "GLACIER_IR" => (0.004, 0.03),
        "GLACIER" => (0.0036, 0.0025),
        "DEEP_ARCHIVE" => (0.00099, 0.0025),
        _ => (0.023, 0.0),
    }
}

fn cold(class: Option<&str>) -> bool {
    matches!(class, Some("GLACIER" | "DEEP_ARCHIVE"))
}

/// Whether a `x-amz-restore` header says the restored copy is readable.
#[must_use]
pub fn restore_done(header: Option<&str>) -> bool {
    header.is_some_and(|h| h.contains("ongoing-request=\"false\""))
}

struct Listed {
    key: String,
    size: u64,
    class: String,
    modified: i64,
}

impl S3Archiver {
    pub fn new(profile: &S3Profile) -> Result<S3Archiver, ArchiveError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|source| ArchiveError::S3Runtime { source })?;
        let secret = |s: &Option<crate::config::Secret>| -> Result<Option<String>, ArchiveError> {
            s.as_ref()
                .map(crate::config::Secret::reveal)
                .transpose()
                .map_err(|source| ArchiveError::S3Credentials { source })
        };
        let (ak, sk) = (
            secret(&profile.access_key_id)?,
            secret(&profile.secret_access_key)?,
        );
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        let env_region =
            std::env::var_os("AWS_REGION").or_else(|| std::env::var_os("AWS_DEFAULT_REGION"));
        match (&profile.region, env_region) {
            (Some(r), _) => loader = loader.region(Region::new(r.clone())),
            // why: a custom endpoint (RGW, MinIO) needs some region to sign with
            (None, None) => loader = loader.region(Region::new("us-east-1")),
            (None, Some(_)) => {}
        }
        if let (Some(ak), Some(sk)) = (ak, sk) {
            loader =
                loader.credentials_provider(Credentials::new(ak, sk, None, None, "strata-config"));
        }
        // why: the SDK's read timeout covers the first byte; the same limit is applied per read of a body (BlockingBody)
        let read_timeout = std::env::var("STRATA_S3_READ_TIMEOUT_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(120u64);
        loader = loader.timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(10))
                .read_timeout(Duration::from_secs(read_timeout))
                .build(),
        );
        let sdk = rt.block_on(loader.load());
        let mut b = aws_sdk_s3::config::Builder::from(&sdk)
            // why: S3-compatible stores (older RGW, MinIO) reject the newer default CRC checksums
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        if let Some(ep) = &profile.endpoint {
            b = b.endpoint_url(ep).force_path_style(true);
        }
        let client = Client::from_conf(b.build());
        let part_size = crate::s3::part_size();
        let poll = Duration::from_secs(
            std::env::var("STRATA_S3_RESTORE_POLL_SECS")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(300),
        );
        Ok(S3Archiver {
            rt: Arc::new(rt),
            client,
            profile: profile.clone(),
            part_size,
            poll,
            stall: Duration::from_secs(read_timeout),
        })
    }

    fn set_prefix(&self, set: &str) -> String {
        format!("{}{set}/", self.profile.prefix)
    }

    fn key(&self, set: &str, unit: &str) -> String {
        format!("{}{}{ARCHIVE}", self.set_prefix(set), encode_unit(unit))
    }

    fn bucket(&self) -> &str {
        &self.profile.bucket
    }

    /// Every object under `prefix`.
    fn list(&self, prefix: &str) -> Result<Vec<Listed>, ArchiveError> {
        self.rt.block_on(async {
            let mut out = Vec::new();
            let mut token = None;
            loop {
                let r = self
                    .client
                    .list_objects_v2()
                    .bucket(self.bucket())
                    .prefix(prefix)
                    .set_continuation_token(token.take())
                    .send()
                    .await
                    .map_err(backend(format!("listing s3://{}/{prefix}", self.bucket())))?;
                for o in r.contents() {
                    out.push(Listed {
                        key: o.key().unwrap_or_default().to_owned(),
                        size: u64::try_from(o.size().unwrap_or(0)).unwrap_or(0),
                        class: o
                            .storage_class()
                            .map_or_else(|| "STANDARD".to_owned(), |c| c.as_str().to_owned()),
                        modified: o
                            .last_modified()
                            .map_or(0, aws_sdk_s3::primitives::DateTime::secs),
                    });
                }
                match r.next_continuation_token() {
                    Some(t) if r.is_truncated() == Some(true) => token = Some(t.to_owned()),
                    _ => break,
                }
            }
            Ok(out)
        })
    }

    /// HEAD of the archive of `unit` in `set`; a missing object is
    /// [`ArchiveError::NoSuchArchive`], any other failure says it was `doing`.
    fn head(&self, set: &str, unit: &str, doing: &str) -> Result<HeadObjectOutput, ArchiveError> {
        let key = self.key(set, unit);
        self.rt
            .block_on(
                self.client
                    .head_object()
                    .bucket(self.bucket())
                    .key(&key)
                    .send(),
            )
            .map_err(|e| match e.as_service_error() {
                Some(s) if s.is_not_found() => ArchiveError::no_such_archive(set, unit),
                _ => backend(format!("{doing} {key}"))(e),
            })
    }

    fn head_meta(&self, set: &str, unit: &str) -> Result<ArchiveMeta, ArchiveError> {
        let h = self.head(set, unit, "reading the metadata of")?;
        let key = self.key(set, unit);
        let m = h.metadata().cloned().unwrap_or_default();
        let get = |k: &str| m.get(k).cloned().unwrap_or_default();
        let fields = MetaFields {
            compression: get("compression"),
            encryption: get("encryption"),
            sha256: get("sha256"),
            size: get("size"),
        };
        ArchiveMeta::from_fields(&fields).map_err(|reason| ArchiveError::BadMetadata {
            file: format!("s3://{}/{key}", self.bucket()).into(),
            reason,
        })
    }

    async fn upload_multipart(
        &self,
        key: &str,
        meta: &ArchiveMeta,
        file: &Path,
        size: u64,
    ) -> Result<(), ArchiveError> {
        let f = meta.fields();
        let create = self
            .client
            .create_multipart_upload()
            .storage_class(StorageClass::from(self.profile.storage_class.as_str()))
            .metadata("compression", f.compression)
            .metadata("encryption", f.encryption)
            .metadata("sha256", f.sha256)
            .metadata("size", f.size);
        crate::s3::upload_in_parts(
            &self.client,
            create,
            self.bucket(),
            key,
            file,
            size,
            self.part_size,
        )
        .await
        .map_err(|p| ArchiveError::S3 {
            op: p.step,
            source: p.failure,
        })
    }
}

impl S3Archiver {
    /// Store `file` as `upload_archive` does, with SHA-256 checksums that S3
    /// checks on arrival (the archive's own sha256 for one request, one per
    /// part otherwise), then read back with HEAD: the metadata, the size and
    /// the checksum S3 kept must be what was sent; an object that fails
    /// this is deleted. For `archive migrate`.
    pub fn upload_archive_verified(
        &self,
        set: &str,
        unit: &str,
        meta: &ArchiveMeta,
        file: &Path,
    ) -> Result<(), ArchiveError> {
        use base64::Engine as _;
        let key = self.key(set, unit);
        let size = std::fs::metadata(file)
            .map_err(ArchiveError::io(file))?
            .len();
        let f = meta.fields();
        let expected = if size > self.part_size {
            let create = self
                .client
                .create_multipart_upload()
                .storage_class(StorageClass::from(self.profile.storage_class.as_str()))
                .metadata("compression", &f.compression)
                .metadata("encryption", &f.encryption)
                .metadata("sha256", &f.sha256)
                .metadata("size", &f.size);
            self.rt
                .block_on(crate::s3::upload_in_parts_checked(
                    &self.client,
                    create,
                    self.bucket(),
                    &key,
                    file,
                    size,
                    self.part_size,
                ))
                .map_err(|p| ArchiveError::S3 {
                    op: p.step,
                    source: p.failure,
                })?
        } else {
            let digest = hex::decode(&meta.sha256).map_err(|_| ArchiveError::BadMetadata {
                file: file.to_owned(),
                reason: "sha256 is not hex".into(),
            })?;
            let checksum = base64::engine::general_purpose::STANDARD.encode(digest);
            self.rt.block_on(async {
                let body = ByteStream::from_path(file)
                    .await
                    .map_err(backend(format!("reading {}", file.display())))?;
                self.client
                    .put_object()
                    .bucket(self.bucket())
                    .key(&key)
                    .storage_class(StorageClass::from(self.profile.storage_class.as_str()))
                    .metadata("compression", &f.compression)
                    .metadata("encryption", &f.encryption)
                    .metadata("sha256", &f.sha256)
                    .metadata("size", &f.size)
                    .checksum_sha256(&checksum)
                    .body(body)
                    .send()
                    .await
                    .map_err(backend(format!("uploading {key}")))?;
                Ok::<_, ArchiveError>(())
            })?;
            checksum
        };
        let h = self
            .rt
            .block_on(
                self.client
                    .head_object()
                    .bucket(self.bucket())
                    .key(&key)
                    .checksum_mode(ChecksumMode::Enabled)
                    .send(),
            )
            .map_err(backend(format!("checking {key} after its upload")))?;
        let stored = h.metadata().cloned().unwrap_or_default();
        let field = |k: &str| stored.get(k).map_or("", String::as_str);
        let wrong = if u64::try_from(h.content_length().unwrap_or(-1)).ok() != Some(size) {
            Some(format!(
                "it holds {:?} bytes, not {size}",
                h.content_length()
            ))
        } else if [
            ("compression", &f.compression),
            ("encryption", &f.encryption),
            ("sha256", &f.sha256),
            ("size", &f.size),
        ]
        .iter()
        .any(|(k, v)| field(k) != v.as_str())
        {
            Some(format!("its metadata is {stored:?}"))
        } else {
            // why: S3 writes a composite checksum with its part count ("...=-3"), some servers without it
            let digest = |c: &str| c.split('-').next().unwrap_or_default().to_owned();
            h.checksum_sha256()
                .filter(|c| digest(c) != digest(&expected))
                .map(|c| format!("S3's SHA-256 checksum is {c}, strata sent {expected}"))
        };
        if let Some(what) = wrong {
            // why: a copy that is not the archive must not be listed as one
            let _ = self.rt.block_on(
                self.client
                    .delete_object()
                    .bucket(self.bucket())
                    .key(&key)
                    .send(),
            );
            return Err(ArchiveError::ArrivedWrong {
                location: format!("s3://{}/{key}", self.bucket()),
                what,
            });
        }
        Ok(())
    }
}

/// A blocking reader over an AWS SDK body (an S3 object, a Glacier job's
/// output).
pub(crate) struct BlockingBody {
    rt: Arc<Runtime>,
    inner: Pin<Box<dyn tokio::io::AsyncRead + Send>>,
    /// A read that waits longer than this fails (a stalled server).
    stall: Duration,
}

impl BlockingBody {
    /// Read `inner` on `rt`, failing a read that waits longer than `stall`.
    pub(crate) fn new(
        rt: Arc<Runtime>,
        inner: Pin<Box<dyn tokio::io::AsyncRead + Send>>,
        stall: Duration,
    ) -> BlockingBody {
        BlockingBody { rt, inner, stall }
    }
}

impl Read for BlockingBody {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let inner = &mut self.inner;
        let stall = self.stall;
        self.rt.block_on(async {
            match tokio::time::timeout(stall, inner.read(buf)).await {
                Ok(r) => r,
                Err(_) => Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no data from the server for {} s", stall.as_secs()),
                )),
            }
        })
    }
}

impl Archiver for S3Archiver {
    fn kind(&self) -> &'static str {
        "s3"
    }

    fn list_sets(&self) -> Result<BTreeMap<String, SetInfo>, ArchiveError> {
        let now = chrono::Utc::now().timestamp();
        let mut out: BTreeMap<String, SetInfo> = BTreeMap::new();
        for o in self.list(&self.profile.prefix)? {
            let rest = &o.key[self.profile.prefix.len()..];
            let Some((set, name)) = rest.split_once('/') else {
                continue;
            };
            let info = out.entry(set.to_owned()).or_default();
            if name == COMPLETE {
                info.complete = true;
            } else if name.ends_with(ARCHIVE) {
                info.count += 1;
                info.size += o.size;
            }
            if now - o.modified < min_storage_days(&o.class) * 86_400 {
                info.protected = true;
            }
        }
        Ok(out)
    }

    fn complete_set(&self, set: &str) -> Result<(), ArchiveError> {
        let key = format!("{}{COMPLETE}", self.set_prefix(set));
        let stamp = chrono::Utc::now().to_rfc3339();
        self.rt
            .block_on(
                self.client
                    .put_object()
                    .bucket(self.bucket())
                    .key(&key)
                    .body(ByteStream::from(stamp.into_bytes()))
                    .send(),
            )
            .map_err(backend(format!("writing {key}")))?;
        Ok(())
    }

    fn delete_set(&self, set: &str) -> Result<(), ArchiveError> {
        let objects = self.list(&self.set_prefix(set))?;
        if objects.is_empty() {
            return Err(ArchiveError::NoSuchSet(set.to_owned()));
        }
        // why: the marker goes first, so a set half deleted is listed as incomplete, never as complete
        let mut keys: Vec<String> = objects.into_iter().map(|o| o.key).collect();
        keys.sort_by_key(|k| !k.ends_with(COMPLETE));
        self.rt.block_on(async {
            for k in keys {
                self.client
                    .delete_object()
                    .bucket(self.bucket())
                    .key(&k)
                    .send()
                    .await
                    .map_err(backend(format!("deleting {k}")))?;
            }
            Ok(())
        })
    }

    fn list_set_archives(&self, set: &str) -> Result<BTreeMap<String, ArchiveMeta>, ArchiveError> {
        self.list_set_units(set)?
            .into_keys()
            .map(|unit| {
                let meta = self.head_meta(set, &unit)?;
                Ok((unit, meta))
            })
            .collect()
    }

    fn archive_meta(&self, set: &str, unit: &str) -> Result<ArchiveMeta, ArchiveError> {
        self.head_meta(set, unit)
    }

    fn list_set_units(&self, set: &str) -> Result<BTreeMap<String, u64>, ArchiveError> {
        let prefix = self.set_prefix(set);
        Ok(self
            .list(&prefix)?
            .into_iter()
            .filter_map(|o| {
                let enc = o.key[prefix.len()..].strip_suffix(ARCHIVE)?;
                Some((decode_unit(enc), o.size))
            })
            .collect())
    }

    fn upload_archive(
        &self,
        set: &str,
        unit: &str,
        meta: &ArchiveMeta,
        file: &Path,
    ) -> Result<(), ArchiveError> {
        let key = self.key(set, unit);
        let size = std::fs::metadata(file)
            .map_err(ArchiveError::io(file))?
            .len();
        if size > self.part_size {
            return self
                .rt
                .block_on(self.upload_multipart(&key, meta, file, size));
        }
        let f = meta.fields();
        self.rt.block_on(async {
            let body = ByteStream::from_path(file)
                .await
                .map_err(backend(format!("reading {}", file.display())))?;
            self.client
                .put_object()
                .bucket(self.bucket())
                .key(&key)
                .storage_class(StorageClass::from(self.profile.storage_class.as_str()))
                .metadata("compression", f.compression)
                .metadata("encryption", f.encryption)
                .metadata("sha256", f.sha256)
                .metadata("size", f.size)
                .body(body)
                .send()
                .await
                .map_err(backend(format!("uploading {key}")))?;
            Ok(())
        })
    }

    fn prepare_download(&self, set: &str, unit: &str) -> Result<(), ArchiveError> {
        let key = self.key(set, unit);
        let mut requested = false;
        loop {
            let h = self.head(set, unit, "checking")?;
            if !cold(h.storage_class().map(StorageClass::as_str)) || restore_done(h.restore()) {
                return Ok(());
            }
            if h.restore().is_none() && !requested {
                let tier = match self.profile.restore_tier {
                    RestoreTier::Bulk => Tier::Bulk,
                    RestoreTier::Standard => Tier::Standard,
                    RestoreTier::Expedited => Tier::Expedited,
                };
                let params = GlacierJobParameters::builder()
                    .tier(tier)
                    .build()
                    .map_err(backend("building the restore request"))?;
                let days = i32::try_from(self.profile.restore_days).unwrap_or(7);
                self.rt
                    .block_on(
                        self.client
                            .restore_object()
                            .bucket(self.bucket())
                            .key(&key)
                            .restore_request(
                                RestoreRequest::builder()
                                    .days(days)
                                    .glacier_job_parameters(params)
                                    .build(),
                            )
                            .send(),
                    )
                    .map_err(backend(format!("requesting the restore of {key}")))?;
                eprintln!("{unit}: restore from cold storage requested; waiting for it");
                requested = true;
                continue;
            }
            std::thread::sleep(self.poll);
        }
    }

    fn download_archive(
        &self,
        set: &str,
        unit: &str,
        offset: u64,
    ) -> Result<Box<dyn Read + Send>, ArchiveError> {
        let key = self.key(set, unit);
        let r = self
            .rt
            .block_on(
                self.client
                    .get_object()
                    .bucket(self.bucket())
                    .key(&key)
                    .range(format!("bytes={offset}-"))
                    .send(),
            )
            .map_err(|e| match e.as_service_error() {
                Some(s) if s.is_no_such_key() => ArchiveError::no_such_archive(set, unit),
                _ => backend(format!("downloading {key} from byte {offset}"))(e),
            })?;
        Ok(Box::new(BlockingBody {
            rt: Arc::clone(&self.rt),
            inner: Box::pin(r.body.into_async_read()),
            stall: self.stall,
        }))
    }

    fn resync(&self) -> Result<Vec<String>, ArchiveError> {
        let prefix = self.profile.prefix.clone();
        self.rt.block_on(async {
            let mut done = Vec::new();
            let r = self
                .client
                .list_multipart_uploads()
                .bucket(self.bucket())
                .prefix(&prefix)
                .send()
                .await
                .map_err(backend("listing unfinished multipart uploads"))?;
            for u in r.uploads() {
                let (Some(key), Some(id)) = (u.key(), u.upload_id()) else {
                    continue;
                };
                self.client
                    .abort_multipart_upload()
                    .bucket(self.bucket())
                    .key(key)
                    .upload_id(id)
                    .send()
                    .await
                    .map_err(backend(format!("aborting the upload of {key}")))?;
                done.push(format!("aborted an unfinished upload of {key}"));
            }
            Ok(done)
        })
    }

    fn report_cost(&self) -> Result<Vec<CostLine>, ArchiveError> {
        let mut by_class: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for o in self.list(&self.profile.prefix)? {
            if o.key.ends_with(ARCHIVE) {
                let e = by_class.entry(o.class).or_default();
                e.0 += 1;
                e.1 += o.size;
            }
        }
        Ok(by_class
            .into_iter()
            .map(|(class, (archives, bytes))| {
                let (storage, retrieval) = self
                    .profile
                    .prices
                    .get(&class)
                    .map_or_else(|| default_price(&class), |p| (p.storage, p.retrieval));
                #[allow(clippy::cast_precision_loss)] // why: dollars
                let gb = bytes as f64 / 1e9;
                CostLine {
                    class,
                    archives,
                    bytes,
                    monthly: gb * storage,
                    retrieval: gb * retrieval,
                    peak: None,
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_header_and_periods() {
        assert!(restore_done(Some(
            "ongoing-request=\"false\", expiry-date=\"x\""
        )));
        assert!(!restore_done(Some("ongoing-request=\"true\"")));
        assert!(!restore_done(None));
        assert_eq!(min_storage_days("DEEP_ARCHIVE"), 180);
        assert_eq!(min_storage_days("GLACIER"), 90);
        assert_eq!(min_storage_days("STANDARD"), 0);
    }

    #[test]
    fn a_failed_call_names_the_call_and_keeps_the_cause() {
        let e = backend::<std::io::Error>("uploading set/dump%2Fa.archive")(std::io::Error::other(
            "connection reset",
        ));
        let m = e.to_string();
        assert!(
            m.starts_with("s3: uploading set/dump%2Fa.archive: connection reset"),
            "{m}"
        );
        let cause = std::error::Error::source(&e).expect("the cause is kept");
        assert!(m.ends_with(&cause.to_string()), "{m} / {cause}");
    }
}

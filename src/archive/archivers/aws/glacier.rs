//! The Glacier vault, through `aws-sdk-glacier`: uploads (multipart above
//! one part), deletes, retrieval and inventory jobs, job output.
//!
//! Owns: [`Vault`], its tokio runtime (the SDK is async; strata blocks on
//! it, as the s3 archiver does), the part size rule ([`part_size`]), and
//! the checks of the tree hashes Glacier returns.
//!
//! Memory: an upload reads one part (64 MiB; larger powers of two only past
//! 10,000 parts) into memory, hashing its 1 MiB leaves on the way, because
//! the SDK loads each request body whole to hash it again; the archive's
//! tree hash is combined from the parts' hashes, so nothing grows with the
//! archive's size. Job output is streamed.
//!
//! Invariants: an upload in parts is completed or aborted (best effort: a
//! killed process leaves an unfinished upload, which `resync` aborts once
//! it is a day old); every part and the whole archive are sent with the tree
//! hash strata computed, and the hash Glacier returns must be the same.

use super::AwsError;
use super::treehash::{self, Hash, LEAF, TreeHasher};
use crate::archive::archivers::s3::BlockingBody;
use aws_sdk_glacier::Client;
use aws_sdk_glacier::config::{Credentials, Region, timeout::TimeoutConfig};
use aws_sdk_glacier::error::ProvideErrorMetadata;
use aws_sdk_glacier::operation::delete_archive::DeleteArchiveError;
use aws_sdk_glacier::operation::describe_job::DescribeJobError;
use aws_sdk_glacier::primitives::ByteStream;
use aws_sdk_glacier::types::{JobParameters, StatusCode};
use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::runtime::Runtime;

/// Attempts per part before an upload gives up.
pub const PART_ATTEMPTS: u32 = 4;

/// Glacier's largest part count in one upload.
const MAX_PARTS: u64 = 10_000;

/// Glacier's largest part.
const MAX_PART: u64 = 4 << 30;

/// The part size for an archive of `size` bytes: `wanted` (a power of two
/// of MiB), doubled while the archive would need more than 10,000 parts.
#[must_use]
pub fn part_size(size: u64, wanted: u64) -> u64 {
    let mut part = wanted.max(LEAF).next_power_of_two();
    while size.div_ceil(part) > MAX_PARTS && part < MAX_PART {
        part *= 2;
    }
    part
}

/// A retrieval or inventory job as `DescribeJob` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: String,
    pub status: JobStatus,
    pub archive_id: Option<String>,
    /// `"<first>-<last>"`, inclusive.
    pub range: Option<String>,
    /// The retrieved range's tree hash (only for tree-hash aligned ranges).
    pub tree_hash: Option<String>,
    pub message: Option<String>,
    pub inventory: bool,
    /// ISO 8601.
    pub created: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    InProgress,
    Succeeded,
    Failed,
}

/// An archive as a vault inventory lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InventoryArchive {
    pub archive_id: String,
    #[serde(default)]
    pub archive_description: String,
    pub size: u64,
    #[serde(default)]
    pub creation_date: String,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Inventory {
    archive_list: Vec<InventoryArchive>,
}

/// Parse the JSON output of an inventory job.
pub fn parse_inventory(text: &[u8]) -> Result<Vec<InventoryArchive>, AwsError> {
    serde_json::from_slice::<Inventory>(text)
        .map(|i| i.archive_list)
        .map_err(|e| AwsError::Inventory(e.to_string()))
}

/// An unfinished multipart upload.
#[derive(Debug, Clone)]
pub struct Upload {
    pub id: String,
    pub created: Option<String>,
    pub description: String,
}

/// One vault.
pub struct Vault {
    rt: Arc<Runtime>,
    client: Client,
    name: String,
    stall: Duration,
}

fn failed<E>(op: impl Into<String>) -> impl FnOnce(E) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let op = op.into();
    move |e| AwsError::Glacier {
        op,
        code: e.code().map(str::to_owned),
        detail: crate::s3::describe(&e),
    }
}

fn check_hash(op: &str, returned: Option<&str>, computed: &Hash) -> Result<(), AwsError> {
    let computed = treehash::to_hex(computed);
    match returned {
        Some(r) if !r.eq_ignore_ascii_case(&computed) => Err(AwsError::TreeHash {
            what: op.to_owned(),
            expected: computed,
            actual: r.to_owned(),
        }),
        _ => Ok(()),
    }
}

/// Read the next `len` bytes of `file` into memory, hashing them.
fn read_part(file: &mut std::fs::File, len: u64, path: &Path) -> Result<(Vec<u8>, Hash), AwsError> {
    let cap = usize::try_from(len).map_err(|_| AwsError::Io {
        path: path.to_owned(),
        source: std::io::Error::other("part too large for memory"),
    })?;
    let mut buf = Vec::with_capacity(cap);
    file.by_ref()
        .take(len)
        .read_to_end(&mut buf)
        .map_err(|source| AwsError::Io {
            path: path.to_owned(),
            source,
        })?;
    if buf.len() as u64 != len {
        return Err(AwsError::Io {
            path: path.to_owned(),
            source: std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the spool file shrank during the upload",
            ),
        });
    }
    let mut h = TreeHasher::new();
    h.update(&buf);
    Ok((buf, h.finish()))
}

impl Vault {
    /// The vault `name` in `region`, at `endpoint` (AWS's for the region
    /// when `None`).
    pub fn new(
        name: &str,
        region: &str,
        access_key: &str,
        secret: &str,
        endpoint: Option<&str>,
    ) -> Result<Vault, AwsError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(AwsError::Runtime)?;
        let stall = Duration::from_secs(
            std::env::var("STRATA_S3_READ_TIMEOUT_SECS")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(120),
        );
        let loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(Region::new(region.to_owned()))
            .credentials_provider(Credentials::new(
                access_key,
                secret,
                None,
                None,
                "strata-config",
            ))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(10))
                    .read_timeout(stall)
                    .build(),
            );
        let sdk = rt.block_on(loader.load());
        let mut b = aws_sdk_glacier::config::Builder::from(&sdk);
        if let Some(ep) = endpoint {
            b = b.endpoint_url(ep);
        }
        Ok(Vault {
            rt: Arc::new(rt),
            client: Client::from_conf(b.build()),
            name: name.to_owned(),
            stall,
        })
    }

    /// Create the vault (succeeds when it exists).
    pub fn create(&self) -> Result<(), AwsError> {
        self.rt
            .block_on(self.client.create_vault().vault_name(&self.name).send())
            .map_err(failed(format!("creating vault {}", self.name)))?;
        Ok(())
    }

    /// Upload `file` with `description`; returns the archive id. Archives
    /// up to one part go in one request, larger ones in parts of
    /// [`part_size`]`(size, part)`, each tried up to [`PART_ATTEMPTS`] times.
    pub fn upload(&self, file: &Path, description: &str, part: u64) -> Result<String, AwsError> {
        let io = |source| AwsError::Io {
            path: file.to_owned(),
            source,
        };
        let mut f = std::fs::File::open(file).map_err(io)?;
        let size = f.metadata().map_err(io)?.len();
        let part = part_size(size, part);
        if size <= part {
            let (buf, hash) = read_part(&mut f, size, file)?;
            let out = self
                .rt
                .block_on(
                    self.client
                        .upload_archive()
                        .vault_name(&self.name)
                        .archive_description(description)
                        .checksum(treehash::to_hex(&hash))
                        .body(ByteStream::from(buf))
                        .send(),
                )
                .map_err(failed(format!("uploading {description:?}")))?;
            check_hash("the uploaded archive", out.checksum(), &hash)?;
            return out
                .archive_id()
                .map(str::to_owned)
                .ok_or_else(|| AwsError::Glacier {
                    op: format!("uploading {description:?}"),
                    code: None,
                    detail: "no archive id in the answer".into(),
                });
        }
        let started = self
            .rt
            .block_on(
                self.client
                    .initiate_multipart_upload()
                    .vault_name(&self.name)
                    .archive_description(description)
                    .part_size(part.to_string())
                    .send(),
            )
            .map_err(failed(format!("starting the upload of {description:?}")))?;
        let upload_id = started.upload_id().unwrap_or_default().to_owned();
        let result = self.upload_parts(&mut f, file, size, part, &upload_id, description);
        if result.is_err() {
            // why: best effort; the error that matters is the one being returned
            let _ = self.rt.block_on(
                self.client
                    .abort_multipart_upload()
                    .vault_name(&self.name)
                    .upload_id(&upload_id)
                    .send(),
            );
        }
        result
    }

    fn upload_parts(
        &self,
        f: &mut std::fs::File,
        file: &Path,
        size: u64,
        part: u64,
        upload_id: &str,
        description: &str,
    ) -> Result<String, AwsError> {
        let mut hashes = Vec::new();
        let mut offset = 0u64;
        while offset < size {
            let len = part.min(size - offset);
            let (buf, hash) = read_part(f, len, file)?;
            let body = bytes::Bytes::from(buf);
            let number = hashes.len() + 1;
            let mut attempt = 0;
            loop {
                attempt += 1;
                let sent = self.rt.block_on(
                    self.client
                        .upload_multipart_part()
                        .vault_name(&self.name)
                        .upload_id(upload_id)
                        .range(format!("bytes {}-{}/*", offset, offset + len - 1))
                        .checksum(treehash::to_hex(&hash))
                        .body(ByteStream::from(body.clone()))
                        .send(),
                );
                match sent {
                    Ok(o) => {
                        check_hash(&format!("part {number}"), o.checksum(), &hash)?;
                        break;
                    }
                    Err(e) if attempt < PART_ATTEMPTS => {
                        eprintln!(
                            "{description}: part {number} failed (attempt {attempt}): {}; retrying",
                            crate::s3::describe(&e)
                        );
                        std::thread::sleep(Duration::from_secs(u64::from(attempt)));
                    }
                    Err(e) => {
                        return Err(failed(format!(
                            "uploading part {number} of {description:?}"
                        ))(e));
                    }
                }
            }
            hashes.push(hash);
            offset += len;
            crate::fault::point("aws-part-uploaded");
        }
        let whole = treehash::combine(&hashes);
        let done = self
            .rt
            .block_on(
                self.client
                    .complete_multipart_upload()
                    .vault_name(&self.name)
                    .upload_id(upload_id)
                    .archive_size(size.to_string())
                    .checksum(treehash::to_hex(&whole))
                    .send(),
            )
            .map_err(failed(format!("completing the upload of {description:?}")))?;
        check_hash("the uploaded archive", done.checksum(), &whole)?;
        done.archive_id()
            .map(str::to_owned)
            .ok_or_else(|| AwsError::Glacier {
                op: format!("completing the upload of {description:?}"),
                code: None,
                detail: "no archive id in the answer".into(),
            })
    }

    /// Delete archive `id` (succeeds when it is already gone).
    pub fn delete_archive(&self, id: &str) -> Result<(), AwsError> {
        match self.rt.block_on(
            self.client
                .delete_archive()
                .vault_name(&self.name)
                .archive_id(id)
                .send(),
        ) {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(DeleteArchiveError::is_resource_not_found_exception) =>
            {
                Ok(())
            }
            Err(e) => Err(failed(format!("deleting archive {id}"))(e)),
        }
    }

    /// Start a retrieval of bytes `[start, start + len)` of archive `id`.
    pub fn request_range(
        &self,
        id: &str,
        start: u64,
        len: u64,
        description: &str,
    ) -> Result<String, AwsError> {
        let range = format!("{start}-{}", start + len - 1);
        let params = JobParameters::builder()
            .r#type("archive-retrieval")
            .archive_id(id)
            .description(description)
            .retrieval_byte_range(&range)
            .build();
        let out = self
            .rt
            .block_on(
                self.client
                    .initiate_job()
                    .vault_name(&self.name)
                    .job_parameters(params)
                    .send(),
            )
            .map_err(failed(format!("requesting bytes {range} of archive {id}")))?;
        out.job_id()
            .map(str::to_owned)
            .ok_or_else(|| AwsError::Glacier {
                op: format!("requesting bytes {range} of archive {id}"),
                code: None,
                detail: "no job id in the answer".into(),
            })
    }

    /// Start an inventory of the vault.
    pub fn request_inventory(&self) -> Result<String, AwsError> {
        let params = JobParameters::builder()
            .r#type("inventory-retrieval")
            .format("JSON")
            .build();
        let out = self
            .rt
            .block_on(
                self.client
                    .initiate_job()
                    .vault_name(&self.name)
                    .job_parameters(params)
                    .send(),
            )
            .map_err(failed("requesting a vault inventory"))?;
        out.job_id()
            .map(str::to_owned)
            .ok_or_else(|| AwsError::Glacier {
                op: "requesting a vault inventory".into(),
                code: None,
                detail: "no job id in the answer".into(),
            })
    }

    /// Job `id`, or `None` when Glacier does not know it (expired: job
    /// output is kept 24 hours).
    pub fn job(&self, id: &str) -> Result<Option<Job>, AwsError> {
        let out = match self.rt.block_on(
            self.client
                .describe_job()
                .vault_name(&self.name)
                .job_id(id)
                .send(),
        ) {
            Ok(o) => o,
            Err(e)
                if e.as_service_error()
                    .is_some_and(DescribeJobError::is_resource_not_found_exception) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(failed(format!("checking job {id}"))(e)),
        };
        Ok(Some(Job {
            id: id.to_owned(),
            status: status(out.status_code()),
            archive_id: out.archive_id().map(str::to_owned),
            range: out.retrieval_byte_range().map(str::to_owned),
            tree_hash: out.sha256_tree_hash().map(str::to_owned),
            message: out.status_message().map(str::to_owned),
            inventory: out
                .action()
                .is_some_and(|a| a.as_str() == "InventoryRetrieval"),
            created: out.creation_date().map(str::to_owned),
        }))
    }

    /// The vault's jobs Glacier still knows (in progress, or done within a day).
    pub fn jobs(&self) -> Result<Vec<Job>, AwsError> {
        let mut out = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let page = self
                .rt
                .block_on(
                    self.client
                        .list_jobs()
                        .vault_name(&self.name)
                        .set_marker(marker.take())
                        .send(),
                )
                .map_err(failed("listing the vault's jobs"))?;
            for j in page.job_list() {
                out.push(Job {
                    id: j.job_id().unwrap_or_default().to_owned(),
                    status: status(j.status_code()),
                    archive_id: j.archive_id().map(str::to_owned),
                    range: j.retrieval_byte_range().map(str::to_owned),
                    tree_hash: j.sha256_tree_hash().map(str::to_owned),
                    message: j.status_message().map(str::to_owned),
                    inventory: j
                        .action()
                        .is_some_and(|a| a.as_str() == "InventoryRetrieval"),
                    created: j.creation_date().map(str::to_owned),
                });
            }
            match page.marker() {
                Some(m) if !m.is_empty() => marker = Some(m.to_owned()),
                _ => return Ok(out),
            }
        }
    }

    /// The output of finished job `id`, streamed, and the tree hash Glacier
    /// sends with it (for tree-hash aligned output).
    pub fn output(&self, id: &str) -> Result<(Box<dyn Read + Send>, Option<String>), AwsError> {
        let out = self
            .rt
            .block_on(
                self.client
                    .get_job_output()
                    .vault_name(&self.name)
                    .job_id(id)
                    .send(),
            )
            .map_err(failed(format!("reading the output of job {id}")))?;
        let checksum = out.checksum().map(str::to_owned);
        let body = BlockingBody::new(
            Arc::clone(&self.rt),
            Box::pin(out.body.into_async_read()),
            self.stall,
        );
        Ok((Box::new(body), checksum))
    }

    /// The vault's unfinished multipart uploads.
    pub fn uploads(&self) -> Result<Vec<Upload>, AwsError> {
        let mut out = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let page = self
                .rt
                .block_on(
                    self.client
                        .list_multipart_uploads()
                        .vault_name(&self.name)
                        .set_marker(marker.take())
                        .send(),
                )
                .map_err(failed("listing unfinished uploads"))?;
            for u in page.uploads_list() {
                out.push(Upload {
                    id: u.multipart_upload_id().unwrap_or_default().to_owned(),
                    created: u.creation_date().map(str::to_owned),
                    description: u.archive_description().unwrap_or_default().to_owned(),
                });
            }
            match page.marker() {
                Some(m) if !m.is_empty() => marker = Some(m.to_owned()),
                _ => return Ok(out),
            }
        }
    }

    /// Abort unfinished upload `id`.
    pub fn abort(&self, id: &str) -> Result<(), AwsError> {
        self.rt
            .block_on(
                self.client
                    .abort_multipart_upload()
                    .vault_name(&self.name)
                    .upload_id(id)
                    .send(),
            )
            .map_err(failed(format!("aborting upload {id}")))?;
        Ok(())
    }
}

fn status(s: Option<&StatusCode>) -> JobStatus {
    match s.map(StatusCode::as_str) {
        Some("Succeeded") => JobStatus::Succeeded,
        Some("Failed") => JobStatus::Failed,
        _ => JobStatus::InProgress,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_64_mib_until_ten_thousand_would_not_do() {
        const MIB: u64 = 1 << 20;
        const GIB: u64 = 1 << 30;
        // (size, wanted, part)
        let cases = [
            (100 * MIB, 64 * MIB, 64 * MIB),
            (625 * GIB, 64 * MIB, 64 * MIB),
            (625 * GIB + 1, 64 * MIB, 128 * MIB),
            (5 * 1024 * GIB, 64 * MIB, 1024 * MIB),
            (10 * MIB, 1, MIB),
            (10 * MIB, 3 * MIB, 4 * MIB),
        ];
        for (size, wanted, want) in cases {
            assert_eq!(part_size(size, wanted), want, "size {size}");
        }
    }

    #[test]
    fn inventories_parse() {
        let text = br#"{"VaultARN":"arn:aws:glacier:us-east-1:123:vaults/v","InventoryDate":"2026-11-30T00:00:00Z",
            "ArchiveList":[{"ArchiveId":"a1","ArchiveDescription":"20261130-1 dump/u","CreationDate":"2026-11-29T10:00:00Z","Size":12,"SHA256TreeHash":"00"}]}"#;
        let list = parse_inventory(text).unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].archive_id, "a1");
        assert_eq!(list[0].size, 12);
        assert!(parse_inventory(b"{}").is_err());
    }
}

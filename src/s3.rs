//! S3 plumbing shared by the `s3` archiver and the rgw source: what failed
//! in a call ([`S3Failure`]), and a file uploaded in parts streamed from
//! disk ([`upload_in_parts`]; with SHA-256 checksums S3 verifies,
//! [`upload_in_parts_checked`], for `archive migrate`). It knows nothing of archives or units; each
//! caller turns a failure into its own module's error.
//!
//! Invariants: an upload in parts either completes or is aborted (an
//! abandoned one is billed and invisible); memory stays at one part's
//! buffers whatever the file's size.

use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::create_multipart_upload::builders::CreateMultipartUploadFluentBuilder;
use aws_sdk_s3::primitives::{ByteStream, Length};
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart};
use std::path::Path;
use std::time::Duration;

/// Attempts per part before an upload in parts gives up.
pub const PART_ATTEMPTS: u32 = 4;

/// S3's smallest part (all but the last).
const MIN_PART: u64 = 5 << 20;

/// The part size of uploads in parts, and the size above which a file is
/// sent in parts: 64 MiB, or `STRATA_S3_PART_SIZE` (bytes, at least 5 MiB).
#[must_use]
pub fn part_size() -> u64 {
    std::env::var("STRATA_S3_PART_SIZE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(64 << 20)
        .max(MIN_PART)
}

/// S3's largest part count in one upload.
const MAX_PARTS: u64 = 10_000;

/// The part size for a file of `size` bytes: `wanted`, or larger when
/// `wanted` would need more than S3's 10,000 parts (64 MiB parts stop at
/// 625 GiB), rounded up to a whole MiB.
#[must_use]
pub fn parts_of(size: u64, wanted: u64) -> u64 {
    const MIB: u64 = 1 << 20;
    let least = size.div_ceil(MAX_PARTS).div_ceil(MIB) * MIB;
    wanted.max(least).max(MIN_PART)
}

/// What failed in an S3 call, in words.
#[derive(Debug, Clone)]
pub struct S3Failure {
    /// The S3 error code (`NoSuchBucket`, `AccessDenied`, ...), if S3 sent one.
    pub code: Option<String>,
    /// The HTTP status, if there was a response.
    pub status: Option<u16>,
    pub detail: String,
}

/// What to do about an untrusted server certificate, appended to an SDK
/// error's text that reports one.
const UNTRUSTED_HINT: &str = " (the server's certificate is not signed by a CA this machine trusts: \
     add the site's CA to the system's store, or name its PEM file in SSL_CERT_FILE)";

/// An SDK error in words, with [`UNTRUSTED_HINT`] when the TLS handshake
/// refused the server's certificate.
#[must_use]
pub fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = DisplayErrorContext(e).to_string();
    if text.contains("invalid peer certificate") {
        text.push_str(UNTRUSTED_HINT);
    }
    text
}

impl S3Failure {
    pub fn from_sdk<E>(e: &SdkError<E, HttpResponse>) -> S3Failure
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        S3Failure {
            code: e.code().map(str::to_owned),
            status: e.raw_response().map(|r| r.status().as_u16()),
            detail: describe(e),
        }
    }

    /// Any error of a call in words ([`describe`]), without S3's code or
    /// status: for errors that are not the SDK's, or whose code no caller
    /// needs.
    #[must_use]
    pub fn described(e: &(dyn std::error::Error + 'static)) -> S3Failure {
        S3Failure::local(describe(e))
    }

    /// A failure on our side of the call (reading the file to send).
    fn local(detail: String) -> S3Failure {
        S3Failure {
            code: None,
            status: None,
            detail,
        }
    }

    #[must_use]
    pub fn is(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }

    /// The credentials were refused (not merely lacking a permission).
    #[must_use]
    pub fn bad_credentials(&self) -> bool {
        matches!(
            self.code.as_deref(),
            Some("InvalidAccessKeyId" | "SignatureDoesNotMatch" | "UserSuspended")
        )
    }
}

impl std::error::Error for S3Failure {}

impl std::fmt::Display for S3Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.code, self.status) {
            (Some(c), Some(s)) => write!(f, "{c} (HTTP {s})"),
            (Some(c), None) => write!(f, "{c}"),
            (None, Some(s)) => write!(f, "HTTP {s}: {}", self.detail),
            (None, None) => write!(f, "{}", self.detail),
        }
    }
}

/// The step of an upload in parts that failed, in words ("uploading part 3
/// of KEY"), and why.
#[derive(Debug, Clone)]
pub struct PartsFailure {
    pub step: String,
    pub failure: S3Failure,
}

/// Upload the `size` bytes of `file` as `bucket`/`key` in parts of
/// `part_size` bytes, or more when the file would need more than 10,000
/// parts ([`parts_of`]), each
/// streamed from disk and tried up to [`PART_ATTEMPTS`] times. `create` is
/// the caller's `CreateMultipartUpload` request with what the object carries
/// (metadata, content type, storage class); bucket and key are set here.
/// On failure the upload is aborted. Retries are reported on stderr (the
/// unit's log).
pub async fn upload_in_parts(
    client: &Client,
    create: CreateMultipartUploadFluentBuilder,
    bucket: &str,
    key: &str,
    file: &Path,
    size: u64,
    part_size: u64,
) -> Result<(), PartsFailure> {
    upload_parts(
        client,
        create,
        bucket,
        key,
        file,
        size,
        part_size,
        PartChecksums::None,
    )
    .await
    .map(|_| ())
}

/// Whether the parts of an upload carry SHA-256 checksums, which S3 checks
/// on arrival of each part and keeps for the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartChecksums {
    None,
    Sha256,
}

/// [`upload_in_parts`], each part sent with its SHA-256 (S3 refuses a part
/// whose bytes do not match it); returns the object's checksum as S3
/// reports it for an upload in parts: the base64 SHA-256 of the parts'
/// SHA-256 digests, `-` and the part count.
pub async fn upload_in_parts_checked(
    client: &Client,
    create: CreateMultipartUploadFluentBuilder,
    bucket: &str,
    key: &str,
    file: &Path,
    size: u64,
    part_size: u64,
) -> Result<String, PartsFailure> {
    upload_parts(
        client,
        create,
        bucket,
        key,
        file,
        size,
        part_size,
        PartChecksums::Sha256,
    )
    .await
}

/// The SHA-256 of `len` bytes of `file` from `offset`.
fn sha256_of(file: &Path, offset: u64, len: u64) -> std::io::Result<[u8; 32]> {
    use sha2::Digest as _;
    use std::io::{Read as _, Seek as _};
    let mut f = std::fs::File::open(file)?;
    f.seek(std::io::SeekFrom::Start(offset))?;
    let mut h = sha2::Sha256::new();
    let n = std::io::copy(&mut f.take(len), &mut h)?;
    if n != len {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the file shrank during the upload",
        ));
    }
    Ok(h.finalize().into())
}

#[allow(clippy::too_many_arguments)] // why: the two public doors above name what each is
async fn upload_parts(
    client: &Client,
    create: CreateMultipartUploadFluentBuilder,
    bucket: &str,
    key: &str,
    file: &Path,
    size: u64,
    part_size: u64,
    checksums: PartChecksums,
) -> Result<String, PartsFailure> {
    use base64::Engine as _;
    let failed = |step: String| move |failure: S3Failure| PartsFailure { step, failure };
    let part_size = parts_of(size, part_size);
    let create = match checksums {
        PartChecksums::Sha256 => create.checksum_algorithm(ChecksumAlgorithm::Sha256),
        PartChecksums::None => create,
    };
    let created = create
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| S3Failure::from_sdk(&e))
        .map_err(failed(format!("starting the multipart upload of {key}")))?;
    let upload_id = created.upload_id().unwrap_or_default().to_owned();
    let result = async {
        let mut parts = Vec::new();
        let mut digests = Vec::new();
        let mut offset = 0u64;
        let mut number = 1i32;
        while offset < size {
            let len = part_size.min(size - offset);
            let checksum = match checksums {
                PartChecksums::Sha256 => {
                    let d = sha256_of(file, offset, len)
                        .map_err(|e| S3Failure::local(e.to_string()))
                        .map_err(failed(format!("reading {}", file.display())))?;
                    digests.extend_from_slice(&d);
                    Some(base64::engine::general_purpose::STANDARD.encode(d))
                }
                PartChecksums::None => None,
            };
            let mut attempt = 0;
            let etag = loop {
                attempt += 1;
                let body = ByteStream::read_from()
                    .path(file)
                    .offset(offset)
                    .length(Length::Exact(len))
                    .build()
                    .await
                    .map_err(|e| S3Failure::local(e.to_string()))
                    .map_err(failed(format!("reading {}", file.display())))?;
                let sent = client
                    .upload_part()
                    .bucket(bucket)
                    .key(key)
                    .upload_id(&upload_id)
                    .part_number(number)
                    .set_checksum_sha256(checksum.clone())
                    .body(body)
                    .send()
                    .await;
                match sent {
                    Ok(o) => break o.e_tag().unwrap_or_default().to_owned(),
                    Err(e) if attempt < PART_ATTEMPTS => {
                        eprintln!(
                            "{key}: part {number} failed (attempt {attempt}): {}; retrying",
                            DisplayErrorContext(e)
                        );
                        tokio::time::sleep(Duration::from_secs(u64::from(attempt))).await;
                    }
                    Err(e) => {
                        return Err(failed(format!("uploading part {number} of {key}"))(
                            S3Failure::from_sdk(&e),
                        ));
                    }
                }
            };
            parts.push(
                CompletedPart::builder()
                    .part_number(number)
                    .e_tag(etag)
                    .set_checksum_sha256(checksum)
                    .build(),
            );
            offset += len;
            number += 1;
        }
        client
            .complete_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(&upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| S3Failure::from_sdk(&e))
            .map_err(failed(format!("completing the multipart upload of {key}")))?;
        let whole: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(&digests).into();
        Ok(format!(
            "{}-{}",
            base64::engine::general_purpose::STANDARD.encode(whole),
            number - 1
        ))
    }
    .await;
    if result.is_err() {
        // why: best effort; the error that matters is the one being returned
        let _ = client
            .abort_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(&upload_id)
            .send()
            .await;
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_grow_only_past_ten_thousand() {
        const MIB: u64 = 1 << 20;
        const GIB: u64 = 1 << 30;
        // (size, wanted, part size)
        let cases = [
            (100 * MIB, 64 * MIB, 64 * MIB),
            (625 * GIB, 64 * MIB, 64 * MIB),
            (625 * GIB + 1, 64 * MIB, 65 * MIB),
            (5 * 1024 * GIB, 64 * MIB, 525 * MIB),
            (10 * MIB, 1, 5 * MIB),
        ];
        for (size, wanted, want) in cases {
            let got = parts_of(size, wanted);
            assert_eq!(got, want, "size {size}, wanted {wanted}");
            assert!(size.div_ceil(got) <= MAX_PARTS, "size {size}");
        }
    }
}

//! The `googledrive` archiver: Deltaic's Drive layout, through Drive v3.
//!
//! Layout (Deltaic's `archivers/googledrive.py`, v2 names in brackets): one
//! folder per archive set in the application data folder (`appDataFolder`
//! [`appfolder`]), named with the snapshot name, complete when its
//! `appProperties` [private properties] hold `complete=true`; one file per
//! archive named with the unit, whose `appProperties` hold `compression`,
//! `encryption`, `sha256`, `size` (of the whole archive), `googledrive-parts`
//! and `googledrive-part` (1-based). An archive above the part size (2 TiB,
//! as Deltaic; Drive's limit is 5 TB) is split into parts with the same name,
//! joined on download. What Deltaic wrote is read unchanged.
//!
//! An archive is in a set when all its parts are there (a Drive file
//! appears only when its upload is complete, so every part is whole or
//! absent); extra copies of a part (an upload whose answer was lost) and
//! parts of archives that are not whole are left out of listings, and
//! `resync` removes them. Folders of one set with the same name (two
//! processes that created it at once) are read as one set. A set is
//! deleted by clearing `complete` first, then deleting its folder.
//!
//! Uploads are resumable uploads, sent in chunks of a multiple of 256 KiB
//! streamed from the spool file (small single-part archives go in one
//! multipart request); the session URL is kept beside a link to the archive's
//! bytes ([`session`]), so an upload killed mid-way is finished by the next
//! `archive run -r` from where Drive says it stopped, with the same bytes.
//! Downloads stream `alt=media` with `Range` from any offset, reconnecting
//! where a connection broke. Rate limits and 5xx are retried with backoff
//! ([`api`]); Drive's daily upload cap (750 GB) pauses the profile for a
//! day ([`session::Store::pause`]), and `archive run` leaves the set for
//! `archive run -r` instead of failing units.
//!
//! Plain HTTP (ureq), not google-drive3 + yup-oauth2: google-drive3 runs on
//! hyper and tokio (a second HTTP stack; strata's HTTP is ureq), reads every
//! resumable chunk into memory, and gives no way to send `Range` with
//! `alt=media`; and the tests need the token endpoint pointed at a fake
//! (`googledrive-token-url`), for the device flow as well.

pub mod api;
pub mod oauth;
pub mod session;

use super::{Archiver, CostLine, SetInfo};
use crate::archive::{ArchiveError, ArchiveMeta, MetaFields};
use crate::config::{ArchiveSettings, GoogledriveProfile};
use api::{Drive, DriveFile, Spaces, q_string};
use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Deltaic's part size.
pub const DEFAULT_PART_SIZE: u64 = 2048 << 30;
/// Resumable chunks are multiples of this.
pub const CHUNK_UNIT: u64 = 256 << 10;
/// The default chunk: fewer, larger requests; the bytes are streamed, not held.
pub const DEFAULT_CHUNK_SIZE: u64 = 64 << 20;
/// Drive's limit for a multipart (one-request) upload.
pub const MULTIPART_MAX: u64 = 5 << 20;
/// How long the daily cap pauses a profile.
pub const PAUSE_HOURS: i64 = 24;

/// Why a Drive operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DriveError {
    #[error("googledrive: {op}: HTTP {status} {reason}: {message}")]
    Api {
        op: String,
        status: u16,
        reason: String,
        message: String,
    },
    #[error("googledrive: {op}: {source}")]
    Http {
        op: String,
        #[source]
        source: Box<ureq::Error>,
    },
    #[error("googledrive: {op}: {detail}")]
    Protocol { op: String, detail: String },
    #[error("googledrive: {op}: {source}")]
    Io {
        op: String,
        #[source]
        source: std::io::Error,
    },
    #[error("googledrive: {op}: Drive's daily upload cap (750 GB a day): {source}")]
    DailyCap {
        op: String,
        #[source]
        source: Box<DriveError>,
    },
    #[error(
        "googledrive: no credentials ({tried} do not exist): run `strata googledrive auth`, or `strata googledrive auth --import FILE` with Deltaic's credentials file"
    )]
    NoCredentials { tried: String },
    #[error("googledrive: {}: {source}", path.display())]
    CredentialsIo {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("googledrive: {}: not a credentials file: {reason}", path.display())]
    BadCredentials { path: PathBuf, reason: String },
    #[error(
        "googledrive: the token endpoint refused the refresh token of {} ({error}: {description}); sign in again with `strata googledrive auth`", path.display()
    )]
    Refresh {
        path: PathBuf,
        error: String,
        description: String,
    },
    #[error("googledrive: sign-in failed: {why}")]
    SignIn { why: String },
    #[error(
        "googledrive: settings.googledrive-client-id and googledrive-client-secret are needed to sign in (a Desktop OAuth client of your Google Cloud project; docs/disaster-recovery.md)"
    )]
    NoClient,
    #[error("googledrive: {}: {source}", path.display())]
    Spool {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A profile's Drive settings, each from the profile, else `settings:`, else Google's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriveConfig {
    pub credentials_file: Option<PathBuf>,
    pub api_url: String,
    pub token_url: String,
}

impl DriveConfig {
    #[must_use]
    pub fn resolve(
        settings: &ArchiveSettings,
        profile: Option<&GoogledriveProfile>,
    ) -> DriveConfig {
        let p = profile.cloned().unwrap_or_default();
        DriveConfig {
            credentials_file: p
                .credentials_file
                .or_else(|| settings.googledrive_credentials_file.clone()),
            api_url: p
                .api_url
                .or_else(|| settings.googledrive_api_url.clone())
                .unwrap_or_else(|| api::DEFAULT_API_URL.to_owned()),
            token_url: p
                .token_url
                .or_else(|| settings.googledrive_token_url.clone())
                .unwrap_or_else(|| oauth::DEFAULT_TOKEN_URL.to_owned()),
        }
    }

    /// The credentials file to read.
    #[must_use]
    pub fn locate(&self) -> oauth::Located {
        oauth::locate(
            self.credentials_file.as_deref(),
            &oauth::cache_dir(),
            Path::exists,
        )
    }

    /// A Drive client for these settings (no I/O until the first call).
    #[must_use]
    pub fn connect(&self) -> Drive {
        Drive::new(
            &self.api_url,
            oauth::TokenSource::new(self.locate(), &self.token_url),
        )
    }

    /// Where the sign-in flows talk to.
    #[must_use]
    pub fn endpoints(&self) -> oauth::Endpoints {
        oauth::Endpoints {
            auth: oauth::AUTH_URL.to_owned(),
            token: self.token_url.clone(),
            device: oauth::device_url(&self.token_url),
        }
    }
}

/// The OAuth client of `settings:` (what the sign-in flows need).
pub fn client(settings: &ArchiveSettings) -> Result<oauth::Client, DriveError> {
    let secret = settings
        .googledrive_client_secret
        .as_ref()
        .map(crate::config::Secret::reveal)
        .transpose()
        .map_err(|source| DriveError::CredentialsIo {
            path: "settings.googledrive-client-secret-file".into(),
            source,
        })?;
    match (&settings.googledrive_client_id, secret) {
        (Some(id), Some(secret)) if !secret.trim().is_empty() => Ok(oauth::Client {
            id: id.clone(),
            secret: secret.trim().to_owned(),
        }),
        _ => Err(DriveError::NoClient),
    }
}

/// One stored part of an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub id: String,
    pub size: u64,
}

/// An archive as its set's files show it: whole, its parts in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    /// The metadata of its first part (untrusted until [`ArchiveMeta::from_fields`]).
    pub fields: MetaFields,
    pub parts: Vec<Part>,
}

impl Stored {
    #[must_use]
    pub fn bytes(&self) -> u64 {
        self.parts.iter().map(|p| p.size).sum()
    }
}

/// The files of one set, sorted out.
#[derive(Debug, Default, PartialEq)]
pub struct SetFiles {
    /// Whole archives by unit.
    pub archives: BTreeMap<String, Stored>,
    /// Parts of archives not (yet) whole, by unit: an upload in progress,
    /// paused, or abandoned.
    pub partial: BTreeMap<String, Vec<String>>,
    /// Ids of extra copies (a part uploaded twice, an archive stored twice).
    pub duplicates: Vec<String>,
}

fn fields_of(f: &DriveFile) -> MetaFields {
    let get = |k: &str| f.prop(k).unwrap_or_default().to_owned();
    MetaFields {
        compression: get("compression"),
        encryption: get("encryption"),
        sha256: get("sha256"),
        size: get("size"),
    }
}

fn part_no(f: &DriveFile, key: &str) -> Option<u32> {
    // why: Deltaic wrote both keys on every file; an archive without them is one part
    f.prop(key)
        .map_or(Some(1), |v| v.parse().ok().filter(|n| *n >= 1))
}

/// A whole group: its part 1's (createdTime, id), the archive, the group's ids.
type Whole = ((String, String), Stored, Vec<String>);

/// Sort the files of a set's folders into whole archives, partial uploads
/// and duplicates: a pure function of the listing. Files group by name and
/// `sha256`; a group is whole when parts `1..=googledrive-parts` are all
/// there and their sizes add up to `size`; of copies of one part, and of
/// whole groups of one name, the oldest (`createdTime`, then id) is kept.
#[must_use]
pub fn assemble(files: &[DriveFile]) -> SetFiles {
    let mut by_group: BTreeMap<(&str, &str), Vec<&DriveFile>> = BTreeMap::new();
    for f in files.iter().filter(|f| !f.is_folder()) {
        by_group
            .entry((f.name.as_str(), f.prop("sha256").unwrap_or("")))
            .or_default()
            .push(f);
    }
    let mut out = SetFiles::default();
    let mut whole: BTreeMap<&str, Vec<Whole>> = BTreeMap::new();
    for ((name, _), mut group) in by_group {
        group.sort_by(|a, b| (&a.created_time, &a.id).cmp(&(&b.created_time, &b.id)));
        let ids: Vec<String> = group.iter().map(|f| f.id.clone()).collect();
        let count = group.iter().find_map(|f| part_no(f, "googledrive-parts"));
        let mut parts: BTreeMap<u32, &DriveFile> = BTreeMap::new();
        let mut extra = Vec::new();
        for f in &group {
            match (
                part_no(f, "googledrive-part"),
                part_no(f, "googledrive-parts"),
            ) {
                (Some(p), c) if c == count && f.bytes().is_some() => {
                    if let std::collections::btree_map::Entry::Vacant(e) = parts.entry(p) {
                        e.insert(f);
                    } else {
                        extra.push(f.id.clone());
                    }
                }
                _ => extra.push(f.id.clone()),
            }
        }
        let complete = count
            .is_some_and(|m| (1..=m).all(|p| parts.contains_key(&p)) && parts.len() == m as usize);
        let first = parts.get(&1).copied();
        let sized = first.is_some_and(|f| {
            let total: u64 = parts.values().filter_map(|f| f.bytes()).sum();
            f.prop("size").and_then(|s| s.parse::<u64>().ok()) == Some(total)
        });
        match (complete && sized, first) {
            (true, Some(first)) => {
                out.duplicates.extend(extra);
                whole.entry(name).or_default().push((
                    (first.created_time.clone(), first.id.clone()),
                    Stored {
                        fields: fields_of(first),
                        parts: parts
                            .values()
                            .map(|f| Part {
                                id: f.id.clone(),
                                size: f.bytes().unwrap_or(0),
                            })
                            .collect(),
                    },
                    ids,
                ));
            }
            _ => out.partial.entry(name.to_owned()).or_default().extend(ids),
        }
    }
    for (name, mut groups) in whole {
        groups.sort_by(|a, b| a.0.cmp(&b.0));
        let mut it = groups.into_iter();
        let (_, kept, _) = it.next().expect("a whole group");
        for (_, _, ids) in it {
            out.duplicates.extend(ids);
        }
        // why: leftovers of an earlier attempt of an archive that is now whole
        if let Some(ids) = out.partial.remove(name) {
            out.duplicates.extend(ids);
        }
        out.archives.insert(name.to_owned(), kept);
    }
    out.duplicates.sort();
    out
}

/// The parts of an archive of `size` bytes: (offset, length) each; one
/// (empty) part for an empty archive.
#[must_use]
pub fn plan_parts(size: u64, part_size: u64) -> Vec<(u64, u64)> {
    let part_size = part_size.max(1);
    if size == 0 {
        return vec![(0, 0)];
    }
    (0..size.div_ceil(part_size))
        .map(|i| {
            let off = i * part_size;
            (off, part_size.min(size - off))
        })
        .collect()
}

/// The folders that are sets: those named like a snapshot whose parent is
/// not a listed folder (the application data folder's own id is never
/// listed). A folder with any other name is not strata's or Deltaic's, and
/// its name never reaches a path or a prune plan.
fn top_folders(items: &[DriveFile]) -> Vec<&DriveFile> {
    let folder_ids: std::collections::BTreeSet<&str> = items
        .iter()
        .filter(|f| f.is_folder())
        .map(|f| f.id.as_str())
        .collect();
    let mut v: Vec<&DriveFile> = items
        .iter()
        .filter(|f| {
            f.is_folder()
                && !f.parents.iter().any(|p| folder_ids.contains(p.as_str()))
                && crate::names::SnapshotName::parse(&f.name).is_ok()
        })
        .collect();
    v.sort_by(|a, b| (&a.created_time, &a.id).cmp(&(&b.created_time, &b.id)));
    v
}

/// Google One's list prices (USD/month, 2024) by plan size, for `archive
/// cost`: the plan that holds the archives.
pub const PLANS: &[(u64, f64)] = &[
    (15_000_000_000, 0.0),
    (100_000_000_000, 1.99),
    (200_000_000_000, 2.99),
    (2_000_000_000_000, 9.99),
    (5_000_000_000_000, 24.99),
    (10_000_000_000_000, 49.99),
    (20_000_000_000_000, 99.99),
    (30_000_000_000_000, 149.99),
];

/// The monthly price of the smallest plan holding `bytes` (the largest
/// plan's price per 30 TB beyond it).
#[must_use]
pub fn monthly_price(bytes: u64) -> f64 {
    if let Some((_, p)) = PLANS.iter().find(|(cap, _)| bytes <= *cap) {
        return *p;
    }
    let (cap, p) = PLANS[PLANS.len() - 1];
    #[allow(clippy::cast_precision_loss)] // why: dollars
    let n = bytes.div_ceil(cap) as f64;
    n * p
}

/// Set name -> (its folders, the files in them).
type Everything = BTreeMap<String, (Vec<DriveFile>, Vec<DriveFile>)>;

/// The `googledrive` archiver of one profile.
pub struct GoogleDriveArchiver {
    drive: Arc<Drive>,
    store: Option<session::Store>,
    part_size: u64,
    chunk_size: u64,
}

fn env_size(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

impl GoogleDriveArchiver {
    /// The archiver of profile `name`; nothing is read or asked until a call.
    pub fn open(
        settings: &ArchiveSettings,
        name: &str,
        profile: &GoogledriveProfile,
    ) -> Result<GoogleDriveArchiver, ArchiveError> {
        let cfg = DriveConfig::resolve(settings, Some(profile));
        // why: tests make parts and chunks small; a chunk must be a multiple of 256 KiB
        let chunk = env_size("STRATA_GOOGLEDRIVE_CHUNK_SIZE", DEFAULT_CHUNK_SIZE);
        Ok(GoogleDriveArchiver {
            drive: Arc::new(cfg.connect()),
            store: settings
                .spool
                .as_deref()
                .map(|s| session::Store::new(s, name)),
            part_size: env_size("STRATA_GOOGLEDRIVE_PART_SIZE", DEFAULT_PART_SIZE).max(1),
            chunk_size: (chunk / CHUNK_UNIT).max(1) * CHUNK_UNIT,
        })
    }

    fn store(&self) -> Result<&session::Store, ArchiveError> {
        self.store.as_ref().ok_or(ArchiveError::NoSpool)
    }

    /// The folders of `set`, oldest first.
    fn set_folders(&self, set: &str) -> Result<Vec<DriveFile>, DriveError> {
        let q = format!(
            "'appDataFolder' in parents and mimeType = {} and name = {} and trashed = false",
            q_string(api::FOLDER_MIME),
            q_string(set)
        );
        let mut v = self.drive.list(&q, Spaces::AppData)?;
        v.sort_by(|a, b| (&a.created_time, &a.id).cmp(&(&b.created_time, &b.id)));
        Ok(v)
    }

    /// The files in `folders`.
    fn files_in(&self, folders: &[DriveFile]) -> Result<Vec<DriveFile>, DriveError> {
        let mut out = Vec::new();
        for f in folders {
            let q = format!("{} in parents and trashed = false", q_string(&f.id));
            out.extend(self.drive.list(&q, Spaces::AppData)?);
        }
        Ok(out)
    }

    fn set_files(&self, set: &str) -> Result<SetFiles, DriveError> {
        let folders = self.set_folders(set)?;
        Ok(assemble(&self.files_in(&folders)?))
    }

    /// Everything in the application data folder: (set name, folders, files).
    fn everything(&self) -> Result<Everything, DriveError> {
        let items = self.drive.list("trashed = false", Spaces::AppData)?;
        let mut sets = Everything::new();
        let mut owner: BTreeMap<String, String> = BTreeMap::new();
        for f in top_folders(&items) {
            owner.insert(f.id.clone(), f.name.clone());
            sets.entry(f.name.clone()).or_default().0.push(f.clone());
        }
        for f in items.iter().filter(|f| !f.is_folder()) {
            if let Some(set) = f.parents.iter().find_map(|p| owner.get(p)) {
                sets.entry(set.clone()).or_default().1.push(f.clone());
            }
        }
        Ok(sets)
    }

    /// The oldest folder of `set`, made if there is none.
    fn folder_for_upload(&self, set: &str) -> Result<String, DriveError> {
        if let Some(f) = self.set_folders(set)?.into_iter().next() {
            return Ok(f.id);
        }
        let made = self
            .drive
            .create_folder(set, "appDataFolder", &BTreeMap::new())?;
        // why: two processes may have made one at once; all of them then use the oldest, and listings merge the rest
        Ok(self
            .set_folders(set)?
            .into_iter()
            .next()
            .map_or(made.id, |f| f.id))
    }

    fn bad_meta(set: &str, unit: &str, reason: String) -> ArchiveError {
        ArchiveError::BadMetadata {
            file: format!("googledrive:{set}/{unit}").into(),
            reason,
        }
    }

    /// Pause uploads for a day when `e` is the daily cap; the error to return.
    fn pause_on_cap(&self, e: DriveError) -> ArchiveError {
        if let DriveError::DailyCap { .. } = &e
            && let Ok(store) = self.store()
        {
            let until = chrono::Utc::now() + chrono::Duration::hours(PAUSE_HOURS);
            if store.pause(until, &e.to_string()).is_ok() {
                return ArchiveError::UploadPaused {
                    archiver: "googledrive",
                    until: until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    why: "Drive's daily upload cap".into(),
                };
            }
        }
        e.into()
    }

    /// Upload every part of `pending` not yet in `folder`, then forget it.
    fn finish_upload(&self, mut pending: session::Pending, folder: &str) -> Result<(), DriveError> {
        let unit = pending.state.unit.clone();
        let size = pending.meta.size;
        let plan = plan_parts(size, pending.state.part_size);
        let count = u32::try_from(plan.len()).unwrap_or(u32::MAX);
        let q = format!(
            "{} in parents and name = {} and trashed = false",
            q_string(folder),
            q_string(&unit)
        );
        let present = self.drive.list(&q, Spaces::AppData)?;
        let sha = pending.meta.sha256.clone();
        for (i, (offset, len)) in plan.into_iter().enumerate() {
            let part = u32::try_from(i + 1).unwrap_or(u32::MAX);
            let done = present.iter().any(|f| {
                f.prop("sha256") == Some(sha.as_str())
                    && part_no(f, "googledrive-parts") == Some(count)
                    && part_no(f, "googledrive-part") == Some(part)
                    && f.bytes() == Some(len)
            });
            if done {
                continue;
            }
            let f = pending.meta.fields();
            let meta = serde_json::json!({
                "name": unit,
                "mimeType": api::DATA_MIME,
                "parents": [folder],
                "appProperties": {
                    "compression": f.compression,
                    "encryption": f.encryption,
                    "sha256": f.sha256,
                    "size": f.size,
                    "googledrive-parts": count.to_string(),
                    "googledrive-part": part.to_string(),
                },
            });
            let resuming = pending
                .state
                .session
                .as_ref()
                .is_some_and(|s| s.part == part);
            // why: what fits in one chunk goes in one request; anything larger is resumable
            if count == 1 && len <= MULTIPART_MAX.min(self.chunk_size) && !resuming {
                self.drive
                    .create_multipart(&meta, len, opener(&pending.data, offset))?;
            } else {
                self.resumable(&mut pending, part, offset, len, &meta)?;
            }
        }
        pending.finish()
    }

    /// One part through a resumable session: the recorded one if it is for
    /// this part and still alive, else a new one; chunk by chunk from where
    /// Drive says it holds bytes up to.
    fn resumable(
        &self,
        pending: &mut session::Pending,
        part: u32,
        offset: u64,
        len: u64,
        meta: &serde_json::Value,
    ) -> Result<(), DriveError> {
        let mut url = pending
            .state
            .session
            .as_ref()
            .filter(|s| s.part == part)
            .map(|s| s.url.clone());
        let mut restarts = 0;
        loop {
            let (url_now, mut state) = if let Some(u) = url.take() {
                let s = self.drive.session_status(&u, len)?;
                (u, s)
            } else {
                let u = self.drive.start_resumable(meta, len)?;
                pending.set_session(Some(session::Session {
                    part,
                    url: u.clone(),
                    started: chrono::Utc::now().to_rfc3339(),
                }))?;
                (u, api::SessionState::Incomplete(0))
            };
            let mut failures = 0u32;
            loop {
                match state {
                    api::SessionState::Done(_) => {
                        pending.set_session(None)?;
                        return Ok(());
                    }
                    api::SessionState::Gone => break,
                    api::SessionState::Incomplete(from) => {
                        let n = self.chunk_size.min(len.saturating_sub(from));
                        let answer = if n == 0 {
                            // why: Drive holds every byte but has not said so: ask it
                            Ok(self.drive.session_status(&url_now, len)?)
                        } else {
                            self.drive.put_chunk(
                                &url_now,
                                from,
                                n,
                                len,
                                opener(&pending.data, offset + from),
                            )?
                        };
                        match answer {
                            Ok(next) => {
                                let progress = match &next {
                                    api::SessionState::Incomplete(at) => *at > from,
                                    _ => true,
                                };
                                if progress {
                                    failures = 0;
                                    crate::fault::point("googledrive-chunk");
                                } else {
                                    failures += 1;
                                    if failures > self.drive.backoff.retries {
                                        return Err(DriveError::Protocol {
                                            op: format!("uploading {}", pending.state.unit),
                                            detail: format!(
                                                "the session takes no bytes after {from}"
                                            ),
                                        });
                                    }
                                    self.drive.backoff.wait(failures - 1, None);
                                }
                                state = next;
                            }
                            Err((api::Verdict::Reauth, error, _)) => {
                                failures += 1;
                                if failures > 2 {
                                    return Err(error);
                                }
                                state = api::SessionState::Incomplete(from);
                            }
                            Err((verdict, error, retry_after)) => {
                                failures += 1;
                                if verdict == api::Verdict::Fail {
                                    return Err(error);
                                }
                                if failures > self.drive.backoff.retries {
                                    return Err(if verdict == api::Verdict::CapSuspect {
                                        DriveError::DailyCap {
                                            op: format!("uploading {}", pending.state.unit),
                                            source: Box::new(error),
                                        }
                                    } else {
                                        error
                                    });
                                }
                                self.drive.backoff.wait(failures - 1, retry_after);
                                // why: part of the chunk may have arrived; the session says how much
                                state = self.drive.session_status(&url_now, len)?;
                            }
                        }
                    }
                }
            }
            restarts += 1;
            if restarts > 3 {
                return Err(DriveError::Protocol {
                    op: format!("uploading {}", pending.state.unit),
                    detail: "upload sessions keep expiring".into(),
                });
            }
            pending.set_session(None)?;
        }
    }

    /// The ids and sizes of `unit`'s parts in `set`.
    fn parts_of(&self, set: &str, unit: &str) -> Result<Vec<Part>, ArchiveError> {
        self.set_files(set)?
            .archives
            .remove(unit)
            .map(|s| s.parts)
            .ok_or_else(|| ArchiveError::no_such_archive(set, unit))
    }

    /// The Drive client (for `strata googledrive`).
    #[must_use]
    pub fn drive(&self) -> &Drive {
        &self.drive
    }
}

/// Opens the spool copy at `at` for each try of a request.
fn opener(path: &Path, at: u64) -> Box<dyn Fn() -> std::io::Result<Box<dyn Read>>> {
    let path = path.to_owned();
    Box::new(move || {
        let mut f = std::fs::File::open(&path)?;
        f.seek(SeekFrom::Start(at))?;
        Ok(Box::new(std::io::BufReader::with_capacity(1 << 20, f)) as Box<dyn Read>)
    })
}

/// An archive's bytes from an offset: its parts one after the other, each
/// an `alt=media` download with `Range`, reopened where a connection broke.
struct PartsReader {
    drive: Arc<Drive>,
    parts: Vec<Part>,
    index: usize,
    at: u64,
    body: Option<ureq::BodyReader<'static>>,
    failures: u32,
}

impl Read for PartsReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let Some(part) = self.parts.get(self.index) else {
                return Ok(0);
            };
            let left = part.size - self.at.min(part.size);
            if left == 0 {
                self.index += 1;
                self.at = 0;
                self.body = None;
                continue;
            }
            if self.body.is_none() {
                let r = self
                    .drive
                    .media(&part.id, self.at)
                    .map_err(std::io::Error::other)?;
                self.body = Some(r.into_body().into_reader());
            }
            let got = self.body.as_mut().expect("opened").read(buf);
            let failure = match got {
                Ok(0) => std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("part {} ended {left} bytes early", self.index + 1),
                ),
                Ok(n) => {
                    let n = u64::try_from(n).unwrap_or(u64::MAX).min(left);
                    self.at += n;
                    self.failures = 0;
                    return Ok(usize::try_from(n).unwrap_or(usize::MAX));
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => e,
            };
            self.body = None;
            if self.failures >= self.drive.backoff.retries {
                return Err(failure);
            }
            self.drive.backoff.wait(self.failures, None);
            self.failures += 1;
        }
    }
}

impl Archiver for GoogleDriveArchiver {
    fn kind(&self) -> &'static str {
        "googledrive"
    }

    fn list_sets(&self) -> Result<BTreeMap<String, SetInfo>, ArchiveError> {
        let mut out = BTreeMap::new();
        for (name, (folders, files)) in self.everything()? {
            let sorted = assemble(&files);
            out.insert(
                name,
                SetInfo {
                    count: sorted.archives.len() as u64,
                    size: sorted.archives.values().map(Stored::bytes).sum(),
                    complete: folders.iter().any(|f| f.prop("complete") == Some("true")),
                    protected: false,
                },
            );
        }
        Ok(out)
    }

    fn complete_set(&self, set: &str) -> Result<(), ArchiveError> {
        let mut folders = self.set_folders(set)?;
        if folders.is_empty() {
            // why: a set none of whose units was present still gets its (empty) folder and mark
            folders.push(
                self.drive
                    .create_folder(set, "appDataFolder", &BTreeMap::new())?,
            );
        }
        let props = BTreeMap::from([("complete".to_owned(), Some("true".to_owned()))]);
        for f in folders {
            self.drive.update_props(&f.id, &props)?;
        }
        Ok(())
    }

    fn delete_set(&self, set: &str) -> Result<(), ArchiveError> {
        let folders = self.set_folders(set)?;
        if folders.is_empty() {
            return Err(ArchiveError::NoSuchSet(set.to_owned()));
        }
        // why: the mark goes first, so a set half deleted is listed as incomplete, never as complete
        let clear = BTreeMap::from([("complete".to_owned(), None)]);
        for f in &folders {
            self.drive.update_props(&f.id, &clear)?;
        }
        for f in &folders {
            self.drive.delete(&f.id)?;
        }
        if let Some(store) = &self.store {
            store.remove_set(set)?;
        }
        Ok(())
    }

    fn list_set_archives(&self, set: &str) -> Result<BTreeMap<String, ArchiveMeta>, ArchiveError> {
        self.set_files(set)?
            .archives
            .into_iter()
            .map(|(unit, s)| {
                let meta = ArchiveMeta::from_fields(&s.fields)
                    .map_err(|reason| Self::bad_meta(set, &unit, reason))?;
                Ok((unit, meta))
            })
            .collect()
    }

    fn list_set_units(&self, set: &str) -> Result<BTreeMap<String, u64>, ArchiveError> {
        Ok(self
            .set_files(set)?
            .archives
            .into_iter()
            .map(|(unit, s)| {
                let n = s.bytes();
                (unit, n)
            })
            .collect())
    }

    fn prepare_set(&self, set: &str) -> Result<(), ArchiveError> {
        self.folder_for_upload(set)?;
        Ok(())
    }

    fn upload_paused(&self) -> Result<Option<String>, ArchiveError> {
        Ok(self.store.as_ref().and_then(|s| {
            s.paused(chrono::Utc::now())
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        }))
    }

    fn resume_upload(&self, set: &str, unit: &str) -> Result<Option<ArchiveMeta>, ArchiveError> {
        let Some(pending) = self.store()?.find(set, unit)? else {
            return Ok(None);
        };
        let meta = pending.meta.clone();
        let folder = self.folder_for_upload(set)?;
        self.finish_upload(pending, &folder)
            .map_err(|e| self.pause_on_cap(e))?;
        Ok(Some(meta))
    }

    fn upload_archive(
        &self,
        set: &str,
        unit: &str,
        meta: &ArchiveMeta,
        file: &Path,
    ) -> Result<(), ArchiveError> {
        let store = self.store()?;
        let size = std::fs::metadata(file)
            .map_err(ArchiveError::io(file))?
            .len();
        if size != meta.size {
            return Err(ArchiveError::SizeMismatch {
                file: file.to_owned(),
                expected: meta.size,
                actual: size,
            });
        }
        let folder = self.folder_for_upload(set)?;
        let pending = store.begin(set, unit, meta, file, self.part_size)?;
        self.finish_upload(pending, &folder)
            .map_err(|e| self.pause_on_cap(e))
    }

    fn prepare_download(&self, set: &str, unit: &str) -> Result<(), ArchiveError> {
        self.parts_of(set, unit).map(|_| ())
    }

    fn download_archive(
        &self,
        set: &str,
        unit: &str,
        offset: u64,
    ) -> Result<Box<dyn Read + Send>, ArchiveError> {
        let parts = self.parts_of(set, unit)?;
        // why: the offset may fall in any part; the parts before it are skipped whole
        let mut index = 0;
        let mut at = offset;
        while index < parts.len() && at >= parts[index].size {
            at -= parts[index].size;
            index += 1;
        }
        Ok(Box::new(PartsReader {
            drive: Arc::clone(&self.drive),
            parts,
            index,
            at,
            body: None,
            failures: 0,
        }))
    }

    fn resync(&self) -> Result<Vec<String>, ArchiveError> {
        let mut done = Vec::new();
        let all = self.everything()?;
        let pending = self
            .store
            .as_ref()
            .map(session::Store::all)
            .unwrap_or_default();
        for (set, (folders, files)) in &all {
            let sorted = assemble(files);
            for id in &sorted.duplicates {
                self.drive.delete(id)?;
                done.push(format!("{set}: removed an extra copy (file {id})"));
            }
            for (unit, ids) in &sorted.partial {
                if pending.iter().any(|(s, u)| s == set && u == unit) {
                    continue; // why: an upload paused or interrupted, which `archive run -r` finishes
                }
                for id in ids {
                    self.drive.delete(id)?;
                }
                done.push(format!(
                    "{set}: removed {} part(s) of an unfinished upload of {unit}",
                    ids.len()
                ));
            }
            // why: folders of one set made at once by two processes: the empty extras go
            for f in folders.iter().skip(1) {
                if !files.iter().any(|x| x.parents.contains(&f.id)) {
                    self.drive.delete(&f.id)?;
                    done.push(format!(
                        "{set}: removed an empty duplicate folder (file {})",
                        f.id
                    ));
                }
            }
        }
        if let Some(store) = &self.store {
            for (set, unit) in pending {
                let stored = all
                    .get(&set)
                    .is_some_and(|(_, files)| assemble(files).archives.contains_key(&unit));
                if stored || !all.contains_key(&set) {
                    if let Some(p) = store.find(&set, &unit)? {
                        p.finish()?;
                    }
                    done.push(format!(
                        "{set}: dropped the kept upload of {unit} ({})",
                        if stored {
                            "it is stored"
                        } else {
                            "the set is gone"
                        }
                    ));
                }
            }
        }
        Ok(done)
    }

    fn report_cost(&self) -> Result<Vec<CostLine>, ArchiveError> {
        let all = self.everything()?;
        let mut archives = 0;
        let mut bytes = 0;
        for (_, files) in all.values() {
            archives += assemble(files).archives.len() as u64;
            bytes += files.iter().filter_map(DriveFile::bytes).sum::<u64>();
        }
        Ok(vec![CostLine {
            class: "googledrive".into(),
            archives,
            bytes,
            monthly: monthly_price(bytes),
            retrieval: 0.0,
            peak: None,
        }])
    }
}

/// What `strata googledrive test` shows: the application data folder.
pub fn app_folder(drive: &Drive) -> Result<serde_json::Value, DriveError> {
    drive.get("appDataFolder", Some("id,name,mimeType,createdTime"))
}

/// What `strata googledrive ls` shows: every file the app can see.
pub fn list_everything(drive: &Drive) -> Result<Vec<DriveFile>, DriveError> {
    drive.list("trashed = false", Spaces::All)
}

/// The name of file `id` (for `googledrive rm`'s warning).
pub fn file_name(drive: &Drive, id: &str) -> Result<String, DriveError> {
    let v = drive.get(id, Some("id,name"))?;
    Ok(v["name"].as_str().unwrap_or("").to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(id: &str, name: &str, created: &str, size: u64, props: &[(&str, &str)]) -> DriveFile {
        DriveFile {
            id: id.into(),
            name: name.into(),
            mime_type: api::DATA_MIME.into(),
            parents: vec!["set".into()],
            size: Some(size.to_string()),
            created_time: created.into(),
            app_properties: props
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    fn props<'a>(
        sha: &'a str,
        size: &'a str,
        parts: &'a str,
        part: &'a str,
    ) -> Vec<(&'a str, &'a str)> {
        vec![
            ("compression", "gzip"),
            ("encryption", "none"),
            ("sha256", sha),
            ("size", size),
            ("googledrive-parts", parts),
            ("googledrive-part", part),
        ]
    }

    #[test]
    fn archives_are_whole_sets_of_parts_and_extras_are_set_aside() {
        let a = "a".repeat(64);
        let b = "b".repeat(64);
        let files = vec![
            // dump/one: two parts, part 2 uploaded twice
            file(
                "p2",
                "dump/one",
                "2026-01-01T00:00:02Z",
                4,
                &props(&a, "10", "2", "2"),
            ),
            file(
                "p1",
                "dump/one",
                "2026-01-01T00:00:01Z",
                6,
                &props(&a, "10", "2", "1"),
            ),
            file(
                "p2b",
                "dump/one",
                "2026-01-01T00:00:03Z",
                4,
                &props(&a, "10", "2", "2"),
            ),
            // dump/two: only part 1 of 2 (an upload in progress)
            file(
                "t1",
                "dump/two",
                "2026-01-01T00:00:01Z",
                6,
                &props(&a, "10", "2", "1"),
            ),
            // dump/three: stored twice (two packings), the older kept; a leftover part of a third try
            file(
                "n1",
                "dump/three",
                "2026-01-02T00:00:00Z",
                3,
                &props(&b, "3", "1", "1"),
            ),
            file(
                "o1",
                "dump/three",
                "2026-01-01T00:00:00Z",
                3,
                &props(&a, "3", "1", "1"),
            ),
            file(
                "x1",
                "dump/three",
                "2026-01-03T00:00:00Z",
                3,
                &props(&"c".repeat(64), "6", "2", "1"),
            ),
            // dump/bad: sizes do not add up
            file(
                "z1",
                "dump/bad",
                "2026-01-01T00:00:00Z",
                3,
                &props(&a, "4", "1", "1"),
            ),
            // Deltaic's single-part archive with no part keys at all
            file(
                "d1",
                "rsync/host",
                "2015-01-01T00:00:00Z",
                5,
                &[
                    ("compression", "lzop"),
                    ("encryption", "gpg"),
                    ("sha256", &a),
                    ("size", "5"),
                ],
            ),
        ];
        let s = assemble(&files);
        assert_eq!(
            s.archives["dump/one"].parts,
            vec![
                Part {
                    id: "p1".into(),
                    size: 6
                },
                Part {
                    id: "p2".into(),
                    size: 4
                }
            ]
        );
        assert_eq!(s.archives["dump/three"].parts[0].id, "o1");
        assert_eq!(s.archives["rsync/host"].fields.compression, "lzop");
        assert!(!s.archives.contains_key("dump/two") && !s.archives.contains_key("dump/bad"));
        assert_eq!(s.partial["dump/two"], vec!["t1".to_owned()]);
        assert_eq!(s.partial["dump/bad"], vec!["z1".to_owned()]);
        assert_eq!(s.duplicates, vec!["n1", "p2b", "x1"]);
    }

    #[test]
    fn parts_cover_the_archive() {
        assert_eq!(plan_parts(10, 4), vec![(0, 4), (4, 4), (8, 2)]);
        assert_eq!(plan_parts(8, 4), vec![(0, 4), (4, 4)]);
        assert_eq!(plan_parts(3, DEFAULT_PART_SIZE), vec![(0, 3)]);
        assert_eq!(plan_parts(0, 4), vec![(0, 0)]);
    }

    #[test]
    fn settings_resolve_profile_then_settings_then_google() {
        let mut s = ArchiveSettings {
            spool: None,
            gpg_signing_key: None,
            gpg_recipients: vec![],
            tar_path: "tar".into(),
            gpg_path: "gpg".into(),
            googledrive_client_id: None,
            googledrive_client_secret: None,
            googledrive_credentials_file: Some("/s/creds.json".into()),
            googledrive_api_url: Some("http://127.0.0.1:1".into()),
            googledrive_token_url: None,
        };
        let p = GoogledriveProfile {
            credentials_file: Some("/p/creds.json".into()),
            ..GoogledriveProfile::default()
        };
        let c = DriveConfig::resolve(&s, Some(&p));
        assert_eq!(c.credentials_file, Some("/p/creds.json".into()));
        assert_eq!(c.api_url, "http://127.0.0.1:1");
        assert_eq!(c.token_url, oauth::DEFAULT_TOKEN_URL);
        s.googledrive_api_url = None;
        let c = DriveConfig::resolve(&s, None);
        assert_eq!(c.credentials_file, Some("/s/creds.json".into()));
        assert_eq!(c.api_url, api::DEFAULT_API_URL);
        assert!(matches!(client(&s), Err(DriveError::NoClient)));
    }

    #[test]
    fn top_level_folders_are_the_sets_and_prices_follow_the_plans() {
        let mut set = file("f1", "20260101-1", "t", 0, &[]);
        set.mime_type = api::FOLDER_MIME.into();
        set.parents = vec!["appdata-id".into()];
        let mut nested = set.clone();
        nested.id = "f2".into();
        nested.parents = vec!["f1".into()];
        let mut hostile = set.clone();
        hostile.id = "f3".into();
        hostile.name = "../../etc".into();
        let items = [set, nested, hostile];
        let top: Vec<&str> = top_folders(&items).iter().map(|f| f.id.as_str()).collect();
        assert_eq!(top, vec!["f1"]);
        assert!((monthly_price(1) - 0.0).abs() < f64::EPSILON);
        assert!((monthly_price(150_000_000_000) - 2.99).abs() < f64::EPSILON);
        assert!((monthly_price(60_000_000_000_000) - 299.98).abs() < 1e-9);
    }
}

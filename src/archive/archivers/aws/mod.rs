//! The `aws` archiver: Deltaic's Glacier vault and `SimpleDB` catalogue,
//! both named `aws-namespace`, read and written exactly as Deltaic does, so
//! that a Deltaic installation's sets are listed, retrieved and pruned by
//! strata and the sets strata adds are Deltaic's too.
//!
//! The catalogue (one `SimpleDB` domain; every value text):
//! - `<set>//`: `aws-set` = set, `aws-complete` = `true` once the set is
//!   complete.
//! - `<set>/<unit>`: `compression`, `encryption`, `sha256`, `size` (the
//!   archive's metadata), `aws-set`, `aws-archive` (the unit), `aws-aid`
//!   (the vault archive id), `aws-creation-time` (UTC, Python's
//!   `isoformat()`: `2026-11-30T12:34:56.123456+00:00`). Written after the
//!   vault upload, conditional on `aws-aid` being absent: the loser of two
//!   uploads of one unit deletes its own vault archive.
//! - `/bandwidth`: the retrieval budget shared with Deltaic ([`budget`]).
//!
//! Reads are consistent selects (``... where `aws-set` is not null``,
//! values quoted with doubled `"`), paged by `NextToken`; a set is deleted
//! by `BatchDeleteAttributes` in groups of 25, its set item first, then its
//! vault archives. A set is protected from prune for 90 days and 1 hour
//! after its newest archive (Glacier's early-deletion period, and Deltaic's
//! hour of slop). Archives come back only through retrieval jobs
//! ([`retrieval`]); `download_archive` is refused.
//!
//! Files: `sdb.rs` (the `SigV2` `SimpleDB` client), `glacier.rs` (the
//! vault), `treehash.rs`, `budget.rs` (the `/bandwidth` item),
//! `retrieval.rs` (jobs into `.part` files).
//!
//! Test knobs (environment, as `STRATA_S3_PART_SIZE` is for s3):
//! `STRATA_AWS_PART_SIZE` (bytes per part), `STRATA_AWS_POLL_SECS` (job
//! polling, default 60), `STRATA_AWS_SLOT_SECS` (the budget's hour).

pub mod budget;
pub mod glacier;
pub mod retrieval;
pub mod sdb;
pub mod treehash;

use super::{Archiver, CostLine, JobRetrieval, PartTarget, PeakPricing, SetInfo};
use crate::archive::{ArchiveError, ArchiveMeta, MetaFields};
use crate::config::AwsProfile;
use budget::Slots;
use chrono::{DateTime, Datelike, NaiveDateTime, Utc};
use glacier::Vault;
use sdb::{Expected, Item, SdbClient, SdbError, SimpleDb, quote_name, quote_value, select_all};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// How long a set stays protected after its newest archive: Glacier's 90
/// days of minimum storage, plus Deltaic's hour of slop.
pub const PROTECTED: chrono::TimeDelta = chrono::TimeDelta::hours(90 * 24 + 1);

/// Glacier's free retrieval allowance: 5% of what is stored, per month.
pub const FREE_FRACTION: f64 = 0.05;

/// The part size of uploads: 64 MiB.
pub const PART_SIZE: u64 = 64 << 20;

/// Why an aws archiver call failed.
#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    #[error("catalogue: {0}")]
    Sdb(#[from] SdbError),
    #[error("catalogue: {0}")]
    Budget(#[from] budget::BudgetError),
    #[error("vault: {op}: {detail}")]
    Glacier {
        op: String,
        code: Option<String>,
        detail: String,
    },
    #[error("vault: {what}: Glacier's tree hash is {actual}, strata's is {expected}")]
    TreeHash {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("vault: retrieval job {job} failed: {message}")]
    JobFailed { job: String, message: String },
    #[error("vault: the output of job {job} is wrong: {detail}")]
    JobOutput { job: String, detail: String },
    #[error("vault: unreadable inventory: {0}")]
    Inventory(String),
    #[error("catalogue item {item:?}: {reason}")]
    BadItem { item: String, reason: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("starting the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("reading credentials: {0}")]
    Credentials(#[source] std::io::Error),
    #[error("aws-sdb-endpoint: {0}")]
    Endpoint(String),
    #[error(
        "Glacier archives are read through retrieval jobs: use `strata archive retrieve` (or `migrate`)"
    )]
    JobsOnly,
    #[error(
        "a retrieval rate of {0} bytes/hour cannot request even 1 MiB over Glacier's 4 billing hours; use at least 256 KiB/hour"
    )]
    RateTooLow(u64),
}

/// The item of a set.
#[must_use]
pub fn set_item(set: &str) -> String {
    format!("{set}//")
}

/// The item of an archive.
#[must_use]
pub fn archive_item(set: &str, unit: &str) -> String {
    format!("{set}/{unit}")
}

/// A time as Deltaic writes it: Python's `datetime.isoformat()` of an
/// aware UTC time (microseconds only when there are some).
#[must_use]
pub fn isoformat(t: DateTime<Utc>) -> String {
    if t.timestamp_subsec_micros() == 0 {
        t.format("%Y-%m-%dT%H:%M:%S+00:00").to_string()
    } else {
        t.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string()
    }
}

/// Parse an `aws-creation-time` (with an offset, or naive meaning UTC).
#[must_use]
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
                .ok()
                .map(|n| n.and_utc())
        })
}

/// Whether a set whose newest archive was created at `created` is still
/// protected at `now`; an unreadable time protects it (nothing is deleted
/// on a guess).
#[must_use]
pub fn protected(created: Option<&str>, now: DateTime<Utc>) -> bool {
    match created {
        None => false,
        Some(s) => parse_time(s).is_none_or(|t| now - t < PROTECTED),
    }
}

/// The sets of the `list_sets` select's items, as Deltaic counts them.
pub fn sets_of(items: &[Item], now: DateTime<Utc>) -> Result<BTreeMap<String, SetInfo>, AwsError> {
    let mut sets: BTreeMap<String, SetInfo> = BTreeMap::new();
    for item in items {
        let bad = |reason: String| AwsError::BadItem {
            item: item.name.clone(),
            reason,
        };
        let Some(set) = item.single("aws-set").map_err(bad)? else {
            continue;
        };
        let info = sets.entry(set.to_owned()).or_default();
        if item.get("aws-complete").is_some() {
            info.complete = true;
        }
        if protected(item.single("aws-creation-time").map_err(bad)?, now) {
            info.protected = true;
        }
        if let Some(size) = item.single("size").map_err(bad)? {
            info.count += 1;
            info.size += size
                .parse::<u64>()
                .map_err(|_| bad(format!("size {size:?} is not a number")))?;
        }
    }
    Ok(sets)
}

/// The metadata of an archive item.
pub fn meta_of(domain: &str, item: &Item) -> Result<ArchiveMeta, ArchiveError> {
    let field = |name: &str| -> Result<String, ArchiveError> {
        item.single(name)
            .map(|v| v.unwrap_or_default().to_owned())
            .map_err(|reason| ArchiveError::BadMetadata {
                file: format!("sdb://{domain}/{}", item.name).into(),
                reason,
            })
    };
    let fields = MetaFields {
        compression: field("compression")?,
        encryption: field("encryption")?,
        sha256: field("sha256")?,
        size: field("size")?,
    };
    ArchiveMeta::from_fields(&fields).map_err(|reason| ArchiveError::BadMetadata {
        file: format!("sdb://{domain}/{}", item.name).into(),
        reason,
    })
}

fn env_num<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|s| s.parse().ok())
}

/// Deltaic's Glacier + `SimpleDB` archiver.
pub struct AwsArchiver {
    db: Box<dyn SimpleDb>,
    vault: Vault,
    domain: String,
    storage_cost: f64,
    part_size: u64,
    slots: Slots,
    poll: Duration,
    /// The domain and vault were created by this process.
    created: Mutex<bool>,
}

impl AwsArchiver {
    pub fn new(s: &AwsProfile) -> Result<AwsArchiver, AwsError> {
        let secret = s
            .secret_access_key
            .reveal()
            .map_err(AwsError::Credentials)?;
        let sdb_endpoint = s
            .sdb_endpoint
            .clone()
            .unwrap_or_else(|| sdb::default_endpoint(&s.region));
        let db =
            SdbClient::new(&sdb_endpoint, &s.access_key_id, &secret).map_err(AwsError::Endpoint)?;
        let vault = Vault::new(
            &s.namespace,
            &s.region,
            &s.access_key_id,
            &secret,
            s.glacier_endpoint.as_deref(),
        )?;
        Ok(AwsArchiver {
            db: Box::new(db),
            vault,
            domain: s.namespace.clone(),
            storage_cost: s.storage_cost,
            part_size: env_num("STRATA_AWS_PART_SIZE").unwrap_or(PART_SIZE),
            slots: Slots {
                secs: env_num::<i64>("STRATA_AWS_SLOT_SECS")
                    .filter(|s| *s > 0)
                    .unwrap_or(3600),
            },
            poll: Duration::from_secs_f64(
                env_num::<f64>("STRATA_AWS_POLL_SECS")
                    .filter(|s| *s > 0.0)
                    .unwrap_or(60.0),
            ),
            created: Mutex::new(false),
        })
    }

    /// The catalogue (for `migrate` and the tests).
    #[must_use]
    pub fn catalogue(&self) -> &dyn SimpleDb {
        self.db.as_ref()
    }

    /// The vault.
    #[must_use]
    pub fn vault(&self) -> &Vault {
        &self.vault
    }

    /// Create the domain and the vault once per process (both calls succeed
    /// when they exist; Deltaic makes them on every start).
    fn ensure_created(&self) -> Result<(), AwsError> {
        let mut done = self
            .created
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !*done {
            self.db.create_domain(&self.domain)?;
            self.vault.create()?;
            *done = true;
        }
        Ok(())
    }

    fn select(&self, expression: &str) -> Result<Vec<Item>, AwsError> {
        match select_all(self.db.as_ref(), expression, true) {
            Err(e) if e.is_no_such_domain() => Ok(Vec::new()),
            r => Ok(r?),
        }
    }

    fn from(&self) -> String {
        format!("`{}`", quote_name(&self.domain))
    }

    /// The items of `set`'s archives, with every attribute.
    fn archive_items(&self, set: &str) -> Result<Vec<Item>, AwsError> {
        self.select(&format!(
            "select * from {} where `aws-set` = \"{}\" and `aws-archive` is not null",
            self.from(),
            quote_value(set)
        ))
    }

    /// The Glacier peak-rate pricing Deltaic reports, for `total` stored
    /// bytes at `now`.
    #[must_use]
    pub fn pricing(&self, total: u64, month_peak: u64, now: DateTime<Utc>) -> PeakPricing {
        let days = days_in_month(now);
        #[allow(
            clippy::cast_precision_loss,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss
        )] // why: bytes far below 2^52, a positive fraction of them
        let free_today = (total as f64 * FREE_FRACTION / f64::from(days)) as u64;
        PeakPricing {
            free_today,
            per_gib_hour: self.storage_cost * f64::from(days) * 24.0,
            month_peak,
        }
    }

    /// Retrieval rate limit in bytes per hour for `rate` GiB/hour.
    pub fn check_rate(bytes_per_hour: u64) -> Result<(), AwsError> {
        if bytes_per_hour.saturating_mul(budget::BILLING_HOURS) < treehash::LEAF {
            return Err(AwsError::RateTooLow(bytes_per_hour));
        }
        Ok(())
    }
}

/// Bytes in MiB or GiB, for messages.
fn human(bytes: u64) -> String {
    #[allow(clippy::cast_precision_loss)] // why: a message
    let mib = bytes as f64 / f64::from(1u32 << 20);
    if mib >= 1024.0 {
        format!("{:.1} GiB", mib / 1024.0)
    } else {
        format!("{mib:.1} MiB")
    }
}

/// Days of `now`'s month.
#[must_use]
pub fn days_in_month(now: DateTime<Utc>) -> u32 {
    let (y, m) = (now.year(), now.month());
    let next = if m == 12 {
        chrono::NaiveDate::from_ymd_opt(y + 1, 1, 1)
    } else {
        chrono::NaiveDate::from_ymd_opt(y, m + 1, 1)
    };
    let first = chrono::NaiveDate::from_ymd_opt(y, m, 1);
    match (first, next) {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // why: 28..=31
        (Some(a), Some(b)) => (b - a).num_days() as u32,
        _ => 30,
    }
}

impl Archiver for AwsArchiver {
    fn kind(&self) -> &'static str {
        "aws"
    }

    fn list_sets(&self) -> Result<BTreeMap<String, SetInfo>, ArchiveError> {
        let items = self.select(&format!(
            "select `aws-set`, `aws-complete`, `aws-creation-time`, `size` from {} where `aws-set` is not null",
            self.from()
        ))?;
        Ok(sets_of(&items, Utc::now())?)
    }

    fn complete_set(&self, set: &str) -> Result<(), ArchiveError> {
        self.ensure_created()?;
        let attrs = [
            ("aws-set".to_owned(), set.to_owned()),
            ("aws-complete".to_owned(), "true".to_owned()),
        ];
        self.db
            .put_attributes(&self.domain, &set_item(set), &attrs, None)
            .map_err(AwsError::from)?;
        Ok(())
    }

    fn delete_set(&self, set: &str) -> Result<(), ArchiveError> {
        let archives = self.select(&format!(
            "select `aws-archive`, `aws-aid` from {} where `aws-set` = \"{}\" and `aws-archive` is not null",
            self.from(),
            quote_value(set)
        ))?;
        // why: the set item goes in the first batch, so a set half deleted is no longer complete
        let mut items = vec![set_item(set)];
        let mut aids = Vec::new();
        for a in &archives {
            let bad = |reason: String| AwsError::BadItem {
                item: a.name.clone(),
                reason,
            };
            if let Some(unit) = a.single("aws-archive").map_err(bad)? {
                items.push(archive_item(set, unit));
            }
            if let Some(aid) = a.single("aws-aid").map_err(bad)? {
                aids.push(aid.to_owned());
            }
        }
        for batch in items.chunks(sdb::BATCH_LIMIT) {
            match self.db.batch_delete(&self.domain, batch) {
                Err(e) if e.is_no_such_domain() => {
                    return Err(ArchiveError::NoSuchSet(set.to_owned()));
                }
                r => r.map_err(AwsError::from)?,
            }
        }
        for aid in aids {
            self.vault.delete_archive(&aid)?;
        }
        Ok(())
    }

    fn list_set_archives(&self, set: &str) -> Result<BTreeMap<String, ArchiveMeta>, ArchiveError> {
        let mut out = BTreeMap::new();
        for item in self.archive_items(set)? {
            let unit = item
                .single("aws-archive")
                .map_err(|reason| AwsError::BadItem {
                    item: item.name.clone(),
                    reason,
                })?
                .unwrap_or_default()
                .to_owned();
            out.insert(unit, meta_of(&self.domain, &item)?);
        }
        Ok(out)
    }

    fn archive_meta(&self, set: &str, unit: &str) -> Result<ArchiveMeta, ArchiveError> {
        let item = match self
            .db
            .get_attributes(&self.domain, &archive_item(set, unit), true)
        {
            Err(e) if e.is_no_such_domain() => {
                return Err(ArchiveError::no_such_archive(set, unit));
            }
            r => r.map_err(AwsError::from)?,
        };
        if !item.exists() {
            return Err(ArchiveError::no_such_archive(set, unit));
        }
        meta_of(&self.domain, &item)
    }

    fn upload_archive(
        &self,
        set: &str,
        unit: &str,
        meta: &ArchiveMeta,
        file: &Path,
    ) -> Result<(), ArchiveError> {
        self.ensure_created()?;
        let description = format!("{set} {unit}");
        let aid = self.vault.upload(file, &description, self.part_size)?;
        crate::fault::point("aws-archive-uploaded");
        let f = meta.fields();
        let attrs: Vec<(String, String)> = [
            ("compression", f.compression),
            ("encryption", f.encryption),
            ("sha256", f.sha256),
            ("size", f.size),
            ("aws-set", set.to_owned()),
            ("aws-archive", unit.to_owned()),
            ("aws-aid", aid.clone()),
            ("aws-creation-time", isoformat(Utc::now())),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let item = archive_item(set, unit);
        let put = self.db.put_attributes(
            &self.domain,
            &item,
            &attrs,
            Some(&Expected::Absent("aws-aid".into())),
        );
        let Err(e) = put else {
            return Ok(());
        };
        // why: a retried put whose first try landed, or any failure, is settled by reading the item: if it names this archive the put happened
        let stored = self.db.get_attributes(&self.domain, &item, true);
        match stored {
            Ok(i) if i.get("aws-aid") == Some(aid.as_str()) => Ok(()),
            Ok(_) if e.is_conditional_failure() => {
                // As Deltaic: another upload of this unit won; pay the early deletion of ours.
                eprintln!("{unit}: another upload of this archive won the race; deleting ours");
                self.vault.delete_archive(&aid)?;
                Ok(())
            }
            Ok(_) => {
                // why: the item does not name ours, so deleting ours leaks nothing and keeps the vault clean
                let _ = self.vault.delete_archive(&aid);
                Err(AwsError::from(e).into())
            }
            // why: unknown whether the item names ours; leave the archive (resync removes it if it is an orphan) rather than risk an item pointing at nothing
            Err(_) => Err(AwsError::from(e).into()),
        }
    }

    fn prepare_download(&self, _set: &str, _unit: &str) -> Result<(), ArchiveError> {
        Err(AwsError::JobsOnly.into())
    }

    fn download_archive(
        &self,
        _set: &str,
        _unit: &str,
        _offset: u64,
    ) -> Result<Box<dyn Read + Send>, ArchiveError> {
        Err(AwsError::JobsOnly.into())
    }

    fn job_retrieval(&self) -> Option<&dyn JobRetrieval> {
        Some(self)
    }

    fn resync(&self) -> Result<Vec<String>, ArchiveError> {
        let mut done = Vec::new();
        // why: an inventory job takes hours; one started by an earlier, interrupted resync (or by Deltaic) is reused
        let jobs = self.vault.jobs()?;
        let reuse = jobs
            .iter()
            .filter(|j| j.inventory && j.status != glacier::JobStatus::Failed)
            .max_by(|a, b| a.created.cmp(&b.created))
            .map(|j| j.id.clone());
        let job = if let Some(id) = reuse {
            eprintln!("resync: using inventory job {id}");
            id
        } else {
            let id = self.vault.request_inventory()?;
            eprintln!("resync: requested a vault inventory (job {id}); this takes hours");
            id
        };
        loop {
            match self.vault.job(&job)? {
                Some(j) if j.status == glacier::JobStatus::Succeeded => break,
                Some(j) if j.status == glacier::JobStatus::Failed => {
                    return Err(AwsError::JobFailed {
                        job,
                        message: j.message.unwrap_or_default(),
                    }
                    .into());
                }
                Some(_) => std::thread::sleep(self.poll),
                None => {
                    return Err(AwsError::JobFailed {
                        job,
                        message: "Glacier no longer knows this job".into(),
                    }
                    .into());
                }
            }
        }
        let (mut body, _) = self.vault.output(&job)?;
        let mut text = Vec::new();
        body.read_to_end(&mut text)
            .map_err(|e| AwsError::Inventory(e.to_string()))?;
        let inventory = glacier::parse_inventory(&text)?;
        let known: BTreeSet<String> = self
            .select(&format!(
                "select `aws-aid` from {} where `aws-aid` is not null",
                self.from()
            ))?
            .iter()
            .filter_map(|i| i.get("aws-aid").map(str::to_owned))
            .collect();
        // As Deltaic: archives the catalogue does not name are leaks; catalogue
        // items missing from the inventory are ignored (it may be a day old).
        let leaked: Vec<&glacier::InventoryArchive> = inventory
            .iter()
            .filter(|a| !known.contains(&a.archive_id))
            .collect();
        for a in &leaked {
            self.vault.delete_archive(&a.archive_id)?;
            done.push(format!(
                "deleted leaked archive {} ({:?}, {} bytes)",
                a.archive_id, a.archive_description, a.size
            ));
        }
        if !leaked.is_empty() {
            done.push(format!(
                "Deleted {} leaked archives, {} bytes",
                leaked.len(),
                leaked.iter().map(|a| a.size).sum::<u64>()
            ));
        }
        let day_ago = Utc::now() - chrono::TimeDelta::days(1);
        for u in self.vault.uploads()? {
            // why: a younger one may belong to an upload still running
            if u.created
                .as_deref()
                .and_then(parse_time)
                .is_some_and(|t| t < day_ago)
            {
                self.vault.abort(&u.id)?;
                done.push(format!(
                    "aborted unfinished upload {} ({:?})",
                    u.id, u.description
                ));
            }
        }
        Ok(done)
    }

    fn report_cost(&self) -> Result<Vec<CostLine>, ArchiveError> {
        let sets = self.list_sets()?;
        let archives: u64 = sets.values().map(|s| s.count).sum();
        let bytes: u64 = sets.values().map(|s| s.size).sum();
        let now = Utc::now();
        let peak = match budget::read_month_peak(self.db.as_ref(), &self.domain, now) {
            Err(budget::BudgetError::Sdb(e)) if e.is_no_such_domain() => 0,
            r => r.map_err(AwsError::from)?,
        };
        let pricing = self.pricing(bytes, peak, now);
        #[allow(clippy::cast_precision_loss)] // why: dollars
        let gib = bytes as f64 / f64::from(1u32 << 30);
        Ok(vec![CostLine {
            class: "glacier-vault".into(),
            archives,
            bytes,
            monthly: gib * self.storage_cost,
            // why: under peak-rate pricing "all of it" costs the peak rate it is fetched at; at the default 1 GiB/hour that is one GiB/hour of peak
            retrieval: pricing.per_gib_hour,
            peak: Some(pricing),
        }])
    }
}

impl JobRetrieval for AwsArchiver {
    fn retrieve_parts(
        &self,
        targets: &[PartTarget<'_>],
        bytes_per_hour: u64,
        done: &mut dyn FnMut(usize, Result<(), ArchiveError>),
    ) -> Result<(), ArchiveError> {
        AwsArchiver::check_rate(bytes_per_hour)?;
        let mut found = Vec::new();
        let mut index = Vec::new();
        for (i, t) in targets.iter().enumerate() {
            let item = self
                .db
                .get_attributes(&self.domain, &archive_item(t.set, t.unit), true)
                .map_err(AwsError::from)?;
            match item.single("aws-aid") {
                Ok(Some(aid)) => {
                    found.push((t, aid.to_owned()));
                    index.push(i);
                }
                Ok(None) => done(i, Err(ArchiveError::no_such_archive(t.set, t.unit))),
                Err(reason) => done(
                    i,
                    Err(AwsError::BadItem {
                        item: item.name.clone(),
                        reason,
                    }
                    .into()),
                ),
            }
        }
        if found.is_empty() {
            return Ok(());
        }
        let total: u64 = found.iter().map(|(t, _)| t.meta.size).sum();
        eprintln!(
            "Going to retrieve {} of data at {}/hour through Glacier retrieval jobs (each takes hours).",
            human(total),
            human(bytes_per_hour)
        );
        let engine = retrieval::Engine {
            vault: &self.vault,
            db: self.db.as_ref(),
            domain: &self.domain,
            slots: self.slots,
            poll: self.poll,
            rate: bytes_per_hour,
        };
        engine.run(&found, &mut |j, r| done(index[j], r))
    }
}

impl From<AwsError> for ArchiveError {
    fn from(e: AwsError) -> ArchiveError {
        ArchiveError::Aws(Box::new(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(name: &str, pairs: &[(&str, &str)]) -> Item {
        Item {
            name: name.into(),
            attrs: pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn times_are_written_and_read_as_python_does() {
        let t = DateTime::parse_from_rfc3339("2026-11-30T12:34:56.123456Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(isoformat(t), "2026-11-30T12:34:56.123456+00:00");
        let whole = DateTime::parse_from_rfc3339("2026-11-30T12:34:56Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(isoformat(whole), "2026-11-30T12:34:56+00:00");
        assert_eq!(parse_time(&isoformat(t)), Some(t));
        assert_eq!(parse_time("2026-11-30T12:34:56"), Some(whole));
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn sets_count_archives_and_protect_for_ninety_days_and_an_hour() {
        let now = DateTime::parse_from_rfc3339("2026-11-30T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let fresh = isoformat(now - chrono::TimeDelta::days(90));
        let old = isoformat(now - chrono::TimeDelta::hours(90 * 24 + 2));
        let items = [
            item(
                "20260801-1//",
                &[("aws-set", "20260801-1"), ("aws-complete", "true")],
            ),
            item(
                "20260801-1/rsync/a",
                &[
                    ("aws-set", "20260801-1"),
                    ("aws-creation-time", &old),
                    ("size", "10"),
                ],
            ),
            item(
                "20260801-1/rsync/b",
                &[
                    ("aws-set", "20260801-1"),
                    ("aws-creation-time", &old),
                    ("size", "5"),
                ],
            ),
            item(
                "20260830-1/rsync/a",
                &[
                    ("aws-set", "20260830-1"),
                    ("aws-creation-time", &fresh),
                    ("size", "7"),
                ],
            ),
            item(
                "20260831-1/rsync/a",
                &[
                    ("aws-set", "20260831-1"),
                    ("aws-creation-time", "garbage"),
                    ("size", "1"),
                ],
            ),
        ];
        let sets = sets_of(&items, now).unwrap();
        let s = &sets["20260801-1"];
        assert_eq!(
            (s.count, s.size, s.complete, s.protected),
            (2, 15, true, false)
        );
        let s = &sets["20260830-1"];
        assert_eq!(
            (s.count, s.size, s.complete, s.protected),
            (1, 7, false, true)
        );
        assert!(sets["20260831-1"].protected, "an unreadable time protects");
        let bad = [item("x/y", &[("aws-set", "x"), ("size", "many")])];
        assert!(sets_of(&bad, now).is_err());
    }

    #[test]
    fn item_names_are_deltaics() {
        assert_eq!(set_item("20261130-1"), "20261130-1//");
        assert_eq!(
            archive_item("20261130-1", "rsync/host"),
            "20261130-1/rsync/host"
        );
        let now = DateTime::parse_from_rfc3339("2026-02-10T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(days_in_month(now), 28);
    }

    #[test]
    fn archive_metadata_is_judged() {
        let ok = item(
            "s/u",
            &[
                ("compression", "lzop"),
                ("encryption", "gpg"),
                ("sha256", &"a".repeat(64)),
                ("size", "3"),
            ],
        );
        assert_eq!(meta_of("d", &ok).unwrap().size, 3);
        let bad = item(
            "s/u",
            &[
                ("compression", "rar"),
                ("encryption", "gpg"),
                ("sha256", &"a".repeat(64)),
                ("size", "3"),
            ],
        );
        assert!(meta_of("d", &bad).is_err());
    }
}

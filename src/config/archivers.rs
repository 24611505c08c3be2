//! Archiving's configuration: the `archive-*` and `googledrive-*` settings,
//! the archiver profiles under `settings.archivers` (which archiver, where,
//! compression, how many sets to keep), and the top-level `archivers:`
//! section of per-unit overrides (compression, skip) for each profile.

use super::entries::each_entry;
use super::fields::{
    Ctx, get_bool, get_count, get_path, get_secret, get_string, get_string_or, get_strings,
};
use super::node::{Node, Value};
use super::reader::{Fields, KeyPath, Reader, closest};
use super::secret::Secret;
use crate::names::UnitPath;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ArchiveSettings {
    pub spool: Option<PathBuf>,
    pub gpg_signing_key: Option<String>,
    pub gpg_recipients: Vec<String>,
    pub tar_path: String,
    pub gpg_path: String,
    pub googledrive_client_id: Option<String>,
    pub googledrive_client_secret: Option<Secret>,
    pub googledrive_credentials_file: Option<PathBuf>,
    /// Where Drive v3 lives (tests point it at a fake) [Google's].
    pub googledrive_api_url: Option<String>,
    /// The OAuth token endpoint [Google's].
    pub googledrive_token_url: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Compression {
    Gzip,
    Lzop,
    Lz4,
    Zstd,
    None,
}

pub const COMPRESSIONS: &[(&str, Compression)] = &[
    ("gzip", Compression::Gzip),
    ("lzop", Compression::Lzop),
    ("lz4", Compression::Lz4),
    ("zstd", Compression::Zstd),
    ("none", Compression::None),
];

impl Compression {
    #[must_use]
    pub fn name(self) -> &'static str {
        COMPRESSIONS
            .iter()
            .find(|(_, c)| *c == self)
            .map_or("none", |(n, _)| n)
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ArchiverProfile {
    pub name: String,
    pub archiver: ArchiverKind,
    pub compression: Compression,
    pub keep_count: u32,
    pub workers: u32,
    /// `diffs`: archives between two fulls of a unit that hold only what
    /// changed since the unit's previous archive (0: every archive is full).
    pub diffs: u32,
    /// `keep-policy`: which complete sets prune keeps.
    pub keep_policy: KeepPolicy,
    /// `keep-discs`: how many sets the Hanoi rotation keeps.
    pub keep_discs: u32,
    /// `keep-oldest`: with the Hanoi rotation, keep every set that leaves
    /// its oldest disc (s3napback's `ArchiveOldestDisc`).
    pub keep_oldest: bool,
    /// `keep-bytes`: prune drops the oldest complete sets while the
    /// profile's sets hold more than this many bytes.
    pub keep_bytes: Option<u64>,
}

/// Which complete archive sets `archive prune` keeps (`keep-policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeepPolicy {
    /// The newest `keep-count` (Deltaic's rule, the default).
    Count,
    /// s3napback's Tower-of-Hanoi rotation over `keep-discs` discs.
    Hanoi,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case", tag = "archiver")]
pub enum ArchiverKind {
    Aws(AwsProfile),
    Googledrive(GoogledriveProfile),
    S3(S3Profile),
    Local {
        path: PathBuf,
    },
    /// Packs as a real run would and stores nothing (PALHM's null backend):
    /// `archive run` then reports what it would have uploaded.
    Null,
}

/// Deltaic's Glacier vault + `SimpleDB` domain, both named `namespace`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct AwsProfile {
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub region: String,
    pub namespace: String,
    /// $ per GiB-month stored (Deltaic's `aws-storage-cost`).
    pub storage_cost: f64,
    /// strata's: the Glacier endpoint [AWS's for the region].
    pub glacier_endpoint: Option<String>,
    /// strata's: the `SimpleDB` endpoint [AWS's for the region].
    pub sdb_endpoint: Option<String>,
}

/// A googledrive profile's own keys; each overrides the setting of the same
/// name (Deltaic's archiver read `googledrive-credentials-file` from the
/// profile, its `auth` command from the settings).
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct GoogledriveProfile {
    pub credentials_file: Option<PathBuf>,
    pub api_url: Option<String>,
    pub token_url: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct S3Profile {
    pub bucket: String,
    pub prefix: String,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<Secret>,
    pub secret_access_key: Option<Secret>,
    pub storage_class: String,
    /// The class a set's archives are moved to (server-side copy) once the
    /// set is complete; `None` leaves them in `storage_class`.
    pub final_storage_class: Option<String>,
    pub restore_tier: RestoreTier,
    pub restore_days: u32,
    /// storage class -> prices
    pub prices: BTreeMap<String, S3Price>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestoreTier {
    Bulk,
    Standard,
    Expedited,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct S3Price {
    /// $ per GB-month stored.
    pub storage: f64,
    /// $ per GB retrieved.
    pub retrieval: f64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ArchiveUnitOverride {
    pub compression: Option<Compression>,
    pub skip: bool,
}

/// The `archive-*` and `googledrive-*` keys of `settings:`.
pub(super) fn settings(r: &mut Reader, ctx: &Ctx, f: &mut Fields) -> Option<ArchiveSettings> {
    let spool = get_path(r, ctx, f, "archive-spool");
    let gpg_signing_key = get_key_id(r, f, "archive-gpg-signing-key");
    let gpg_recipients = get_strings(r, f, "archive-gpg-recipients");
    let tar_path = get_string_or(r, f, "archive-tar-path", "tar");
    let gpg_path = get_string_or(r, f, "archive-gpg-path", "gpg");
    let googledrive_client_id = get_string(r, f, "googledrive-client-id");
    let googledrive_client_secret = get_secret(
        r,
        ctx,
        f,
        "googledrive-client-secret",
        "googledrive-client-secret-file",
    );
    let googledrive_credentials_file = get_path(r, ctx, f, "googledrive-credentials-file");
    let googledrive_api_url = get_url(r, f, "googledrive-api-url");
    let googledrive_token_url = get_url(r, f, "googledrive-token-url");
    Some(ArchiveSettings {
        spool: spool?,
        gpg_signing_key: gpg_signing_key?,
        gpg_recipients: gpg_recipients?,
        tar_path: tar_path?,
        gpg_path: gpg_path?,
        googledrive_client_id: googledrive_client_id?,
        googledrive_client_secret: googledrive_client_secret?,
        googledrive_credentials_file: googledrive_credentials_file?,
        googledrive_api_url: googledrive_api_url?,
        googledrive_token_url: googledrive_token_url?,
    })
}

/// An optional `OpenPGP` key named by fingerprint (40 hex digits, spaces
/// allowed) or long key ID (16), either with `0x` or a trailing `!`: the
/// forms a signature's VALIDSIG line can be checked against. A user ID
/// would sign (gpg's `-u` takes one) but could never be verified: unpack
/// would refuse every archive made with it.
#[allow(clippy::option_option)] // why: as get_string
fn get_key_id(r: &mut Reader, f: &mut Fields, key: &'static str) -> Option<Option<String>> {
    let line = f.get(key).map(|(n, _)| n.line);
    let s = get_string(r, f, key)?;
    if let Some(k) = &s {
        let hex = normalise_key_id(k);
        if !(matches!(hex.len(), 16 | 40) && hex.bytes().all(|b| b.is_ascii_hexdigit())) {
            r.error(
                line.unwrap_or(f.line()),
                &f.path().key(key),
                format!(
                    "{k:?} is not a key fingerprint (40 hex digits) or long key ID (16): unpack checks \
                     the signature's key against it, so a user ID or short ID would make every archive \
                     unverifiable; `gpg --list-secret-keys --with-colons {k}` shows the fingerprint (the fpr line)"
                ),
            );
            return None;
        }
    }
    Some(s)
}

/// A configured `OpenPGP` key as the hex gpg reports: uppercase, without
/// spaces, `0x` or a trailing `!` (gpg's "this very subkey").
#[must_use]
pub fn normalise_key_id(key: &str) -> String {
    let k: String = key.chars().filter(|c| !c.is_whitespace()).collect();
    let k = k.strip_suffix('!').unwrap_or(&k);
    let k = k
        .strip_prefix("0x")
        .or_else(|| k.strip_prefix("0X"))
        .unwrap_or(k);
    k.to_ascii_uppercase()
}

/// An optional `http://` or `https://` URL, kept without a trailing slash.
#[allow(clippy::option_option)] // why: as get_string
fn get_url(r: &mut Reader, f: &mut Fields, key: &'static str) -> Option<Option<String>> {
    let line = f.get(key).map(|(n, _)| n.line);
    let s = get_string(r, f, key)?;
    match s {
        Some(u) if !(u.starts_with("http://") || u.starts_with("https://")) => {
            r.error(
                line.unwrap_or(f.line()),
                &f.path().key(key),
                format!("{u:?} is not an http:// or https:// URL"),
            );
            None
        }
        other => Some(other.map(|u| u.trim_end_matches('/').to_owned())),
    }
}

const AWS_KEYS: &[&str] = &[
    "aws-access-key-id",
    "aws-secret-access-key",
    "aws-secret-access-key-file",
    "aws-region",
    "aws-namespace",
    "aws-storage-cost",
    "aws-glacier-endpoint",
    "aws-sdb-endpoint",
];
const S3_KEYS: &[&str] = &[
    "s3-bucket",
    "s3-prefix",
    "s3-endpoint",
    "s3-region",
    "s3-access-key-id",
    "s3-access-key-id-file",
    "s3-secret-access-key",
    "s3-secret-access-key-file",
    "s3-storage-class",
    "s3-final-storage-class",
    "s3-restore-tier",
    "s3-restore-days",
    "s3-prices",
];
const LOCAL_KEYS: &[&str] = &["local-path"];
const GOOGLEDRIVE_KEYS: &[&str] = &[
    "googledrive-credentials-file",
    "googledrive-api-url",
    "googledrive-token-url",
];

/// `settings.archivers`: `profile: {archiver, compression, ...}`.
pub(super) fn profiles(
    r: &mut Reader,
    ctx: &Ctx,
    node: &Node,
    path: &KeyPath,
) -> Option<BTreeMap<String, ArchiverProfile>> {
    let mut out = BTreeMap::new();
    let mut ok = true;
    for (key, n) in r.named_entries(node, path) {
        match profile(r, ctx, &key.name, n, &path.key(&key.name)) {
            Some(p) => {
                out.insert(key.name.clone(), p);
            }
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn profile(
    r: &mut Reader,
    ctx: &Ctx,
    name: &str,
    node: &Node,
    path: &KeyPath,
) -> Option<ArchiverProfile> {
    #[derive(Clone, Copy, PartialEq)]
    enum K {
        Aws,
        Googledrive,
        S3,
        Local,
        Null,
    }
    let mut f = r.fields(node, path)?;
    let kind = f
        .require(
            r,
            f.line(),
            "archiver",
            "aws, googledrive, s3, local or null",
        )
        .and_then(|(n, p)| {
            // why: YAML reads a bare `null` as no value; `archiver: null` means the null archiver
            if matches!(n.value, Value::Null) && n.raw().is_some_and(is_yaml_null_word) {
                return Some(K::Null);
            }
            r.choice(
                n,
                &p,
                &[
                    ("aws", K::Aws),
                    ("googledrive", K::Googledrive),
                    ("s3", K::S3),
                    ("local", K::Local),
                    ("null", K::Null),
                ],
            )
        });
    let compression = match f.get("compression") {
        Some((n, p)) => r.choice(n, &p, COMPRESSIONS),
        None => Some(Compression::Gzip),
    };
    let keep_count = get_count(r, &mut f, "keep-count", 1, 1);
    let workers = get_count(r, &mut f, "workers", 8, 1);
    let diffs = get_count(r, &mut f, "diffs", 0, 0);
    let keep_policy = match f.get("keep-policy") {
        Some((n, p)) => r.choice(
            n,
            &p,
            &[("count", KeepPolicy::Count), ("hanoi", KeepPolicy::Hanoi)],
        ),
        None => Some(KeepPolicy::Count),
    };
    let keep_discs = get_count(r, &mut f, "keep-discs", 5, 1);
    let keep_oldest = get_bool(r, &mut f, "keep-oldest", false);
    let keep_bytes = match f.get("keep-bytes") {
        Some((n, p)) => size(r, n, &p).map(Some),
        None => Some(None),
    };
    let kind = kind?;
    // Keys of another archiver kind are a mistake worth naming precisely.
    for (keys, k, label) in [
        (AWS_KEYS, K::Aws, "aws"),
        (S3_KEYS, K::S3, "s3"),
        (LOCAL_KEYS, K::Local, "local"),
        (GOOGLEDRIVE_KEYS, K::Googledrive, "googledrive"),
    ] {
        if k != kind {
            for key in keys {
                if f.has(key) {
                    let (n, p) = f.get(key).expect("has() said present");
                    r.error(n.line, &p, format!("`{key}` belongs to archiver `{label}`, but this profile's archiver is another"));
                }
            }
        }
    }
    let required = |r: &mut Reader, f: &mut Fields, key: &'static str| -> Option<String> {
        let (n, p) = f.require(r, f.line(), key, "")?;
        r.nonempty(n, &p)
    };
    let archiver = match kind {
        K::Aws => {
            let access_key_id = required(r, &mut f, "aws-access-key-id");
            let secret = get_secret(
                r,
                ctx,
                &mut f,
                "aws-secret-access-key",
                "aws-secret-access-key-file",
            );
            let region = required(r, &mut f, "aws-region");
            let namespace = required(r, &mut f, "aws-namespace").and_then(|ns| {
                // why: one name serves as a SimpleDB domain and a Glacier vault; only what both accept
                let ok = (3..=255).contains(&ns.len())
                    && ns
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
                if !ok {
                    let (n, p) = f.get("aws-namespace").expect("required above");
                    r.error(n.line, &p, format!("{ns:?} is not a Glacier vault and SimpleDB domain name (3 to 255 of a-z, A-Z, 0-9, `_`, `-`, `.`)"));
                }
                ok.then_some(ns)
            });
            let storage_cost = match f.get("aws-storage-cost") {
                Some((n, p)) => r.number_in(n, &p, 0.0, 1e6, "a price"),
                None => Some(0.01),
            };
            let glacier_endpoint = get_string(r, &mut f, "aws-glacier-endpoint");
            let sdb_endpoint = get_string(r, &mut f, "aws-sdb-endpoint");
            let secret_access_key = if let Some(s) = secret? {
                Some(s)
            } else {
                r.error(f.line(), &path.key("aws-secret-access-key"), "missing required key `aws-secret-access-key` (or `aws-secret-access-key-file`)");
                None
            };
            ArchiverKind::Aws(AwsProfile {
                access_key_id: access_key_id?,
                secret_access_key: secret_access_key?,
                region: region?,
                namespace: namespace?,
                storage_cost: storage_cost?,
                glacier_endpoint: glacier_endpoint?,
                sdb_endpoint: sdb_endpoint?,
            })
        }
        K::Googledrive => {
            let credentials_file = get_path(r, ctx, &mut f, "googledrive-credentials-file");
            let api_url = get_url(r, &mut f, "googledrive-api-url");
            let token_url = get_url(r, &mut f, "googledrive-token-url");
            ArchiverKind::Googledrive(GoogledriveProfile {
                credentials_file: credentials_file?,
                api_url: api_url?,
                token_url: token_url?,
            })
        }
        K::Null => ArchiverKind::Null,
        K::Local => {
            let p = required(r, &mut f, "local-path")?;
            ArchiverKind::Local { path: ctx.path(&p) }
        }
        K::S3 => {
            let bucket = required(r, &mut f, "s3-bucket");
            let prefix = get_string(r, &mut f, "s3-prefix").map(Option::unwrap_or_default);
            let endpoint = get_string(r, &mut f, "s3-endpoint");
            let region = get_string(r, &mut f, "s3-region");
            let access_key_id =
                get_secret(r, ctx, &mut f, "s3-access-key-id", "s3-access-key-id-file");
            let secret_access_key = get_secret(
                r,
                ctx,
                &mut f,
                "s3-secret-access-key",
                "s3-secret-access-key-file",
            );
            let storage_class = match f.get("s3-storage-class") {
                Some((n, p)) => r.choice(n, &p, S3_CLASSES),
                None => Some("STANDARD"),
            };
            let final_storage_class = match f.get("s3-final-storage-class") {
                Some((n, p)) => r.choice(n, &p, S3_CLASSES).map(Some),
                None => Some(None),
            };
            let restore_tier = match f.get("s3-restore-tier") {
                Some((n, p)) => r.choice(
                    n,
                    &p,
                    &[
                        ("bulk", RestoreTier::Bulk),
                        ("standard", RestoreTier::Standard),
                        ("expedited", RestoreTier::Expedited),
                    ],
                ),
                None => Some(RestoreTier::Bulk),
            };
            let restore_days = get_count(r, &mut f, "s3-restore-days", 7, 1);
            let prices = match f.get("s3-prices") {
                Some((n, p)) => s3_prices(r, n, &p),
                None => Some(BTreeMap::new()),
            };
            ArchiverKind::S3(S3Profile {
                bucket: bucket?,
                prefix: prefix?,
                endpoint: endpoint?,
                region: region?,
                access_key_id: access_key_id?,
                secret_access_key: secret_access_key?,
                storage_class: storage_class?.to_owned(),
                final_storage_class: final_storage_class?.map(str::to_owned),
                restore_tier: restore_tier?,
                restore_days: restore_days?,
                prices: prices?,
            })
        }
    };
    f.finish(r);
    Some(ArchiverProfile {
        name: name.to_owned(),
        archiver,
        compression: compression?,
        keep_count: keep_count?,
        workers: workers?,
        diffs: diffs?,
        keep_policy: keep_policy?,
        keep_discs: keep_discs?,
        keep_oldest: keep_oldest?,
        keep_bytes: keep_bytes?,
    })
}

/// The S3 storage classes a profile may name.
const S3_CLASSES: &[(&str, &str)] = &[
    ("STANDARD", "STANDARD"),
    ("STANDARD_IA", "STANDARD_IA"),
    ("ONEZONE_IA", "ONEZONE_IA"),
    ("INTELLIGENT_TIERING", "INTELLIGENT_TIERING"),
    ("GLACIER", "GLACIER"),
    ("GLACIER_IR", "GLACIER_IR"),
    ("DEEP_ARCHIVE", "DEEP_ARCHIVE"),
];

/// Whether a scalar's text is one of YAML's spellings of null.
fn is_yaml_null_word(raw: &str) -> bool {
    matches!(raw, "null" | "Null" | "NULL")
}

/// A size in bytes: a whole number, or a number with a unit: `K`, `M`,
/// `G`, `T`, `P` and their `KiB`... forms are powers of 1024, `KB`, `MB`,
/// `GB`, `TB`, `PB` powers of 1000, `B` bytes (`500G`, `1.5 TiB`, `800 GB`).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let unit = unit.trim();
    let factor: f64 = match unit {
        "" | "B" => 1.0,
        "K" | "KiB" => 1024.0,
        "M" | "MiB" => 1024.0 * 1024.0,
        "G" | "GiB" => 1024.0 * 1024.0 * 1024.0,
        "T" | "TiB" => 1024f64.powi(4),
        "P" | "PiB" => 1024f64.powi(5),
        "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        "PB" => 1e15,
        _ => {
            return Err(format!(
                "`{text}` is not a size: expected a number of bytes, or a number with K, M, G, T, P (powers of 1024) or KB, MB, GB, TB, PB (powers of 1000)"
            ));
        }
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{text}` is not a size: `{num}` is not a number"))?;
    let bytes = (n * factor).round();
    // why: 2^64 as f64 is exact; anything at or past it does not fit
    if !bytes.is_finite() || bytes >= 18_446_744_073_709_551_616.0 {
        return Err(format!("`{text}` is too large"));
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // why: range checked above
    Ok(bytes as u64)
}

/// A size key (see [`parse_size`]); a plain YAML integer is bytes.
pub(super) fn size(r: &mut Reader, node: &Node, path: &KeyPath) -> Option<u64> {
    let text = match &node.value {
        Value::Int(i) if *i >= 0 => return u64::try_from(*i).ok(),
        Value::Str(s) => s.clone(),
        _ => r.string(node, path)?,
    };
    match parse_size(&text) {
        Ok(n) => Some(n),
        Err(msg) => {
            r.error(node.line, path, msg);
            None
        }
    }
}

fn s3_prices(r: &mut Reader, node: &Node, path: &KeyPath) -> Option<BTreeMap<String, S3Price>> {
    let mut out = BTreeMap::new();
    let mut ok = true;
    let all = each_entry(
        r,
        node,
        path,
        |r, _, f| {
            let storage = match f.get("storage") {
                Some((n, p)) => r.number_in(n, &p, 0.0, 1e6, "a price"),
                None => Some(0.0),
            };
            let retrieval = match f.get("retrieval") {
                Some((n, p)) => r.number_in(n, &p, 0.0, 1e6, "a price"),
                None => Some(0.0),
            };
            storage.zip(retrieval)
        },
        |_, e, price| match price {
            Some((storage, retrieval)) => {
                out.insert(e.name.to_owned(), S3Price { storage, retrieval });
            }
            None => ok = false,
        },
    );
    (all && ok).then_some(out)
}

/// The top-level `archivers:` section: profile -> unit -> overrides.
#[derive(Default)]
pub(super) struct UnitOverrides {
    pub by_profile: BTreeMap<String, BTreeMap<String, ArchiveUnitOverride>>,
    /// Where each profile is named, to report one that `settings.archivers`
    /// does not define.
    named_at: BTreeMap<String, (u64, KeyPath)>,
}

impl UnitOverrides {
    /// Report each profile named here but not defined under `settings.archivers`.
    pub fn check_profiles(&self, r: &mut Reader, defined: &BTreeMap<String, ArchiverProfile>) {
        for (profile, (line, path)) in &self.named_at {
            if !defined.contains_key(profile) {
                let known: Vec<&str> = defined.keys().map(String::as_str).collect();
                let mut msg =
                    format!("archiver profile `{profile}` is not defined under settings.archivers");
                if let Some(best) = closest(profile, &known) {
                    let _ = write!(msg, " (did you mean `{best}`?)");
                }
                r.error(*line, path, msg);
            }
        }
    }
}

/// The top-level `archivers:` section: `profile: {unit: {compression, skip}}`.
pub(super) fn unit_overrides(r: &mut Reader, node: &Node, path: &KeyPath) -> UnitOverrides {
    let mut out = UnitOverrides::default();
    for (pk, pn) in r.named_entries(node, path) {
        let pp = path.key(&pk.name);
        out.named_at.insert(pk.name.clone(), (pk.line, pp.clone()));
        let mut units = BTreeMap::new();
        for (uk, un) in r.named_entries(pn, &pp) {
            let up = pp.key(&uk.name);
            if let Err(e) = UnitPath::parse(&uk.name) {
                r.error(uk.line, &up, e.to_string());
                continue;
            }
            let Some(mut f) = r.fields(un, &up) else {
                continue;
            };
            let compression = match f.get("compression") {
                Some((n, p)) => r.choice(n, &p, COMPRESSIONS).map(Some),
                None => Some(None),
            };
            let skip = get_bool(r, &mut f, "skip", false);
            f.finish(r);
            if let (Some(compression), Some(skip)) = (compression, skip) {
                units.insert(uk.name.clone(), ArchiveUnitOverride { compression, skip });
            }
        }
        out.by_profile.insert(pk.name.clone(), units);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DumpCommand, parse};
    use std::path::Path;

    #[test]
    fn sizes_read_as_bytes_or_with_units() {
        let cases: &[(&str, Option<u64>)] = &[
            ("0", Some(0)),
            ("1234", Some(1234)),
            ("1K", Some(1024)),
            ("1KiB", Some(1024)),
            ("1KB", Some(1000)),
            ("500G", Some(500 << 30)),
            ("1.5 T", Some(3 << 39)),
            ("800 GB", Some(800_000_000_000)),
            ("2 TiB", Some(2 << 40)),
            ("7B", Some(7)),
            ("1P", Some(1 << 50)),
            ("", None),
            ("G", None),
            ("12 parsecs", None),
            ("-5G", None),
            ("1.2.3G", None),
            ("99999999999P", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_size(text).ok(), *want, "{text:?}");
        }
    }

    use crate::config::problem_lines as problems;

    #[test]
    fn the_signing_key_must_be_a_fingerprint_or_long_key_id() {
        let with = |key: &str| {
            problems(&format!(
                "settings:\n  root: /nonexistent\n  snapshot-store: dir\n  archive-gpg-signing-key: '{key}'\n  archive-gpg-recipients: [r@example.org]\n"
            ))
        };
        for ok in [
            "DFF8325AA071E3925917F1D146E72F3A7453B119",
            "dff8 325a a071 e392 5917  f1d1 46e7 2f3a 7453 b119",
            "46E72F3A7453B119",
            "0x46E72F3A7453B119",
            "DFF8325AA071E3925917F1D146E72F3A7453B119!",
        ] {
            assert_eq!(with(ok), Vec::<String>::new(), "{ok}");
        }
        for bad in [
            "s@probe",
            "Signer",
            "7453B119",
            "0x7453B119",
            "<s@probe>",
            "DFF8325AA071E3925917F1D146E72F3A7453B11",
        ] {
            let got = with(bad);
            assert!(
                got.len() == 1
                    && got[0].starts_with("4: settings.archive-gpg-signing-key: ")
                    && got[0]
                        .contains("is not a key fingerprint (40 hex digits) or long key ID (16)"),
                "{bad}: {got:?}"
            );
        }
    }

    #[test]
    fn the_keys_of_issue_15_read_and_refuse() {
        let base = "settings:\n  root: /nonexistent\n  snapshot-store: dir\n";
        let c = parse(
            &format!(
                "{base}  gc-min-free-bytes: 2G\n  archivers:\n    dry:\n      archiver: null\n    hq:\n      archiver: \"null\"\n      diffs: 3\n      keep-policy: hanoi\n      keep-discs: 7\n      keep-oldest: true\n      keep-bytes: 1T\ndump:\n  db:\n    pipeline:\n      - [pg_dump, db]\n      - [zstd]\n"
            ),
            Path::new("/nonexistent/c.yaml"),
        )
        .unwrap();
        assert_eq!(c.settings.retention.min_free_bytes, Some(2 << 30));
        let dry = &c.settings.archivers["dry"];
        assert!(matches!(dry.archiver, ArchiverKind::Null));
        assert_eq!(
            (dry.diffs, dry.keep_policy, dry.keep_bytes),
            (0, KeepPolicy::Count, None)
        );
        let hq = &c.settings.archivers["hq"];
        assert_eq!(
            (
                hq.diffs,
                hq.keep_policy,
                hq.keep_discs,
                hq.keep_oldest,
                hq.keep_bytes
            ),
            (3, KeepPolicy::Hanoi, 7, true, Some(1 << 40))
        );
        assert_eq!(
            c.dump[0].command,
            DumpCommand::Pipeline(vec![
                vec!["pg_dump".into(), "db".into()],
                vec!["zstd".into()]
            ])
        );
        let cases: &[(&str, &str)] = &[
            (
                "  archivers:\n    p:\n      archiver: local\n      local-path: /x\n      keep-bytes: lots\n",
                "settings.archivers.p.keep-bytes: `lots` is not a size",
            ),
            (
                "  archivers:\n    p:\n      archiver: local\n      local-path: /x\n      keep-policy: tower\n",
                "settings.archivers.p.keep-policy: `tower` is not one of count, hanoi",
            ),
            (
                "  archivers:\n    p:\n      archiver:\n",
                "settings.archivers.p.archiver: expected a string",
            ),
            (
                "  archivers:\n    p:\n      archiver: local\n      local-path: /x\n      s3-final-storage-class: GLACIER\n",
                "`s3-final-storage-class` belongs to archiver `s3`",
            ),
            (
                "dump:\n  d:\n    command: [a]\n    pipeline: [[a]]\n",
                "dump.d.pipeline: give either `command` or `pipeline`, not both",
            ),
            (
                "dump:\n  d:\n    pipeline: [a, b]\n",
                "dump.d.pipeline[0]: a stage is the program and its arguments, as a list",
            ),
            (
                "dump:\n  d:\n    pipeline: []\n",
                "dump.d.pipeline: the pipeline has no stage",
            ),
            (
                "dump:\n  d:\n    pipeline: [[]]\n",
                "dump.d.pipeline[0]: the stage is empty",
            ),
            (
                "  gc-min-free-bytes: -3\n",
                "settings.gc-min-free-bytes: `-3` is not a size",
            ),
        ];
        for (extra, want) in cases {
            let (settings, rest) = match extra.find("dump:") {
                Some(0) => ("", *extra),
                _ => (*extra, ""),
            };
            let got = problems(&format!("{base}{settings}{rest}"));
            assert!(got.iter().any(|p| p.contains(want)), "{extra:?}: {got:?}");
        }
    }
}

//! LVM for the helper: the fixed argument vectors of lvs/lvcreate/lvchange/
//! lvremove, and the pure parser of `lvs --reportformat json` output.
//!
//! Invariant: every argv here is built from the root-owned config's VG/LV
//! and a validated [`SnapshotName`]; nothing from the caller reaches LVM in
//! any other form. One `lvs` call (the whole VG) answers list, existence
//! checks and pool status, so there is one output format to parse.

use super::protocol::PoolStatus;
use crate::names::SnapshotName;
use serde::Deserialize;

/// What `lvs` said that the helper cannot use.
#[derive(Debug, thiserror::Error)]
pub enum LvmError {
    #[error("cannot parse lvs JSON output: {0}")]
    Json(#[source] serde_json::Error),
    #[error("logical volume {vg}/{lv} not found")]
    NoSuchLv { vg: String, lv: String },
    #[error("{vg}/{lv} is not a thin volume (it has no pool)")]
    NotThin { vg: String, lv: String },
    #[error("thin pool {vg}/{pool} not found")]
    NoSuchPool { vg: String, pool: String },
    /// `expected` is `byte count` or `percentage`.
    #[error("pool {pool}: {field} {value:?} is not a {expected}")]
    BadField {
        pool: String,
        field: &'static str,
        value: String,
        expected: &'static str,
    },
}

/// The tag every strata (and Deltaic) snapshot carries.
pub const TAG: &str = "backup-snapshot";

/// The columns the helper asks lvs for, in this order.
pub const LVS_FIELDS: &str = "lv_name,vg_name,lv_tags,origin,pool_lv,lv_attr,lv_size,data_percent,lv_metadata_size,metadata_percent";

/// `lvs` over the whole VG, as JSON, sizes in bytes without suffix.
#[must_use]
pub fn lvs_argv(vg: &str) -> Vec<String> {
    [
        "lvs",
        "--reportformat",
        "json",
        "--units",
        "b",
        "--nosuffix",
        "-o",
        LVS_FIELDS,
        vg,
    ]
    .map(str::to_owned)
    .to_vec()
}

/// `lvcreate -s VG/LV -p r -n NAME --addtag backup-snapshot`.
#[must_use]
pub fn create_argv(vg: &str, lv: &str, name: &SnapshotName) -> Vec<String> {
    vec![
        "lvcreate".into(),
        "-s".into(),
        format!("{vg}/{lv}"),
        "-p".into(),
        "r".into(),
        "-n".into(),
        name.as_str().to_owned(),
        "--addtag".into(),
        TAG.into(),
    ]
}

/// `lvchange -ay -K VG/NAME` (thin snapshots carry the activation-skip flag).
#[must_use]
pub fn activate_argv(vg: &str, name: &SnapshotName) -> Vec<String> {
    vec![
        "lvchange".into(),
        "-ay".into(),
        "-K".into(),
        format!("{vg}/{name}"),
    ]
}

/// `lvchange -an VG/NAME`.
#[must_use]
pub fn deactivate_argv(vg: &str, name: &SnapshotName) -> Vec<String> {
    vec!["lvchange".into(), "-an".into(), format!("{vg}/{name}")]
}

/// `lvremove -f VG/NAME`.
#[must_use]
pub fn remove_argv(vg: &str, name: &SnapshotName) -> Vec<String> {
    vec!["lvremove".into(), "-f".into(), format!("{vg}/{name}")]
}

/// One row of `lvs` output, as text (lvs reports every field as a string).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LvRow {
    pub lv_name: String,
    pub vg_name: String,
    #[serde(default)]
    pub lv_tags: String,
    #[serde(default)]
    pub origin: String,
    #[serde(default)]
    pub pool_lv: String,
    #[serde(default)]
    pub lv_attr: String,
    #[serde(default)]
    pub lv_size: String,
    #[serde(default)]
    pub data_percent: String,
    #[serde(default)]
    pub lv_metadata_size: String,
    #[serde(default)]
    pub metadata_percent: String,
}

impl LvRow {
    #[must_use]
    pub fn has_tag(&self, tag: &str) -> bool {
        self.lv_tags.split(',').any(|t| t == tag)
    }
}

#[derive(Deserialize)]
struct Report {
    report: Vec<ReportSection>,
}

#[derive(Deserialize)]
struct ReportSection {
    #[serde(default)]
    lv: Vec<LvRow>,
}

/// Parse `lvs --reportformat json` output into rows.
pub fn parse_lvs(json: &str) -> Result<Vec<LvRow>, LvmError> {
    let report: Report = serde_json::from_str(json).map_err(LvmError::Json)?;
    Ok(report.report.into_iter().flat_map(|s| s.lv).collect())
}

/// The snapshots of `vg/lv`: rows tagged `backup-snapshot` whose origin is
/// `lv` and whose name is a valid snapshot name, oldest first. Anything else
/// in the VG (other LVs, other tags, odd names) is not ours and is ignored.
#[must_use]
pub fn snapshots_of(rows: &[LvRow], vg: &str, lv: &str) -> Vec<SnapshotName> {
    let mut out: Vec<SnapshotName> = rows
        .iter()
        .filter(|r| r.vg_name == vg && r.origin == lv && r.has_tag(TAG))
        .filter_map(|r| SnapshotName::parse(&r.lv_name).ok())
        .collect();
    out.sort();
    out
}

/// The thin pool that holds `vg/lv`, with its usage.
pub fn pool_of(rows: &[LvRow], vg: &str, lv: &str) -> Result<PoolStatus, LvmError> {
    let origin = rows
        .iter()
        .find(|r| r.vg_name == vg && r.lv_name == lv)
        .ok_or_else(|| LvmError::NoSuchLv {
            vg: vg.to_owned(),
            lv: lv.to_owned(),
        })?;
    if origin.pool_lv.is_empty() {
        return Err(LvmError::NotThin {
            vg: vg.to_owned(),
            lv: lv.to_owned(),
        });
    }
    let pool_name = origin.pool_lv.trim_matches(['[', ']']);
    let pool = rows
        .iter()
        .find(|r| r.vg_name == vg && r.lv_name.trim_matches(['[', ']']) == pool_name)
        .ok_or_else(|| LvmError::NoSuchPool {
            vg: vg.to_owned(),
            pool: pool_name.to_owned(),
        })?;
    let bad = |field: &'static str, value: &str, expected: &'static str| LvmError::BadField {
        pool: pool_name.to_owned(),
        field,
        value: value.to_owned(),
        expected,
    };
    let int = |field: &'static str, s: &str| -> Result<u64, LvmError> {
        s.trim().parse().map_err(|_| bad(field, s, "byte count"))
    };
    let pct = |field: &'static str, s: &str| -> Result<f64, LvmError> {
        s.trim().parse().map_err(|_| bad(field, s, "percentage"))
    };
    Ok(PoolStatus {
        pool: pool_name.to_owned(),
        data_size: int("lv_size", &pool.lv_size)?,
        data_percent: pct("data_percent", &pool.data_percent)?,
        metadata_size: int("lv_metadata_size", &pool.lv_metadata_size)?,
        metadata_percent: pct("metadata_percent", &pool.metadata_percent)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/lvm")
            .join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn recorded_vg_with_snapshots() {
        let rows = parse_lvs(&fixture("lvs-with-snapshots.json")).unwrap();
        let names: Vec<String> = snapshots_of(&rows, "stratavg", "backup")
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(names, ["20260101-1", "20260101-2"]);
        let pool = pool_of(&rows, "stratavg", "backup").unwrap();
        assert_eq!(pool.pool, "pool");
        assert!(pool.data_size > 0 && pool.metadata_size > 0, "{pool:?}");
        assert!(
            pool.data_percent > 0.0 && pool.data_percent < 100.0,
            "{pool:?}"
        );
        assert!(pool.metadata_percent > 0.0, "{pool:?}");
    }

    #[test]
    fn foreign_lvs_are_ignored() {
        let rows = parse_lvs(&fixture("lvs-with-snapshots.json")).unwrap();
        // The fixture holds an untagged thin LV named like a snapshot and a
        // tagged snapshot of another origin: neither is ours.
        for r in &rows {
            if r.lv_name == "20260101-9" || r.lv_name == "20260101-8" {
                assert!(
                    !snapshots_of(&rows, "stratavg", "backup")
                        .iter()
                        .any(|n| n.as_str() == r.lv_name)
                );
            }
        }
        assert!(snapshots_of(&rows, "othervg", "backup").is_empty());
    }

    #[test]
    fn recorded_vg_without_snapshots() {
        let rows = parse_lvs(&fixture("lvs-empty.json")).unwrap();
        assert!(snapshots_of(&rows, "stratavg", "backup").is_empty());
        pool_of(&rows, "stratavg", "backup").unwrap();
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(parse_lvs("not json").is_err());
        let rows =
            parse_lvs(r#"{"report":[{"lv":[{"lv_name":"backup","vg_name":"v"}]}]}"#).unwrap();
        let e = pool_of(&rows, "v", "backup").unwrap_err();
        assert!(matches!(e, LvmError::NotThin { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            "v/backup is not a thin volume (it has no pool)"
        );
        let rows = parse_lvs(
            r#"{"report":[{"lv":[{"lv_name":"backup","vg_name":"v","pool_lv":"[p]"},
                {"lv_name":"[p]","vg_name":"v","lv_size":"12 GiB"}]}]}"#,
        )
        .unwrap();
        assert_eq!(
            pool_of(&rows, "v", "backup").unwrap_err().to_string(),
            r#"pool p: lv_size "12 GiB" is not a byte count"#
        );
    }

    #[test]
    fn argv_is_fixed() {
        let n = SnapshotName::parse("20260101-1").unwrap();
        assert_eq!(
            create_argv("vg", "lv", &n).join(" "),
            "lvcreate -s vg/lv -p r -n 20260101-1 --addtag backup-snapshot"
        );
        assert_eq!(
            activate_argv("vg", &n).join(" "),
            "lvchange -ay -K vg/20260101-1"
        );
        assert_eq!(remove_argv("vg", &n).join(" "), "lvremove -f vg/20260101-1");
    }
}

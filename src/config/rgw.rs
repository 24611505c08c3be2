//! The rgw source's configuration: its `rgw-*` settings and the `rgw:`
//! section, a list of buckets, one unit `rgw/<bucket>` each.

use super::entries::{Units, unit_path};
use super::fields::{get_bool, get_count, get_prob, get_string};
use super::node::Node;
use super::reader::{Fields, KeyPath, Reader};
use crate::names::UnitPath;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct RgwSettings {
    pub server: Option<String>,
    pub secure: bool,
    pub scrub_acl_probability: f64,
    pub scrub_probability: f64,
    pub threads: u32,
    pub workers: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct RgwBucket {
    pub bucket: String,
    pub unit: UnitPath,
}

/// The `rgw-*` keys of `settings:`.
pub(super) fn settings(r: &mut Reader, f: &mut Fields) -> Option<RgwSettings> {
    let server = get_string(r, f, "rgw-server");
    let secure = get_bool(r, f, "rgw-secure", false);
    let scrub_acl_probability = get_prob(r, f, "rgw-scrub-acl-probability", 0.0);
    let scrub_probability = get_prob(r, f, "rgw-scrub-probability", 0.0166);
    let threads = get_count(r, f, "rgw-threads", 4, 1);
    let workers = get_count(r, f, "rgw-workers", 1, 1);
    Some(RgwSettings {
        server: server?,
        secure: secure?,
        scrub_acl_probability: scrub_acl_probability?,
        scrub_probability: scrub_probability?,
        threads: threads?,
        workers: workers?,
    })
}

/// The `rgw:` section: a list of bucket names.
pub(super) fn buckets(r: &mut Reader, node: &Node, path: &KeyPath) -> Units<RgwBucket> {
    let mut out = Units::default();
    for (i, n) in r.items(node, path).into_iter().enumerate() {
        let p = path.index(i);
        let Some(bucket) = r.nonempty(n, &p) else {
            continue;
        };
        let Some(unit) = unit_path(r, &["rgw", &bucket], n.line, &p) else {
            continue;
        };
        out.record(&unit, n.line, p);
        out.items.push(RgwBucket { bucket, unit });
    }
    out
}

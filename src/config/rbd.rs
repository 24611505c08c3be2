//! The rbd source's configuration: its `rbd-*` settings and the `rbd:`
//! section, pools whose named images and snapshots are one unit each
//! (`rbd/<pool>/images/<name>`, `rbd/<pool>/snapshots/<name>`).

use super::entries::{Units, each_entry, unit_path};
use super::fields::{get_count, get_prob};
use super::node::Node;
use super::reader::{Fields, KeyPath, Reader};
use crate::names::UnitPath;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct RbdSettings {
    pub scrub_probability: f64,
    pub workers: u32,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct RbdPool {
    pub pool: String,
    /// friendly name -> RBD image name
    pub images: Vec<RbdItem>,
    /// friendly name -> RBD snapshot: a snapshot name found in the pool (as
    /// Deltaic), or `image@snap`
    pub snapshots: Vec<RbdItem>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct RbdItem {
    pub friendly: String,
    pub rbd_name: String,
    pub unit: UnitPath,
}

/// The `rbd-*` keys of `settings:`.
pub(super) fn settings(r: &mut Reader, f: &mut Fields) -> Option<RbdSettings> {
    let scrub_probability = get_prob(r, f, "rbd-scrub-probability", 0.0166);
    let workers = get_count(r, f, "rbd-workers", 1, 1);
    Some(RbdSettings {
        scrub_probability: scrub_probability?,
        workers: workers?,
    })
}

/// The `rbd:` section: `pool: {images: {friendly: image}, snapshots: {friendly: snapshot}}`.
pub(super) fn pools(r: &mut Reader, node: &Node, path: &KeyPath) -> Units<RbdPool> {
    let mut out = Units::default();
    each_entry(
        r,
        node,
        path,
        |r, e, f| {
            let mut pool = RbdPool {
                pool: e.name.to_owned(),
                images: Vec::new(),
                snapshots: Vec::new(),
            };
            for (section, label) in [("images", "images"), ("snapshots", "snapshots")] {
                let Some((sn, sp)) = f.get(section) else {
                    continue;
                };
                for (fk, fnode) in r.named_entries(sn, &sp) {
                    let ip = sp.key(&fk.name);
                    let Some(rbd_name) = r.nonempty(fnode, &ip) else {
                        continue;
                    };
                    let Some(unit) = unit_path(r, &["rbd", e.name, label, &fk.name], fk.line, &ip)
                    else {
                        continue;
                    };
                    out.record(&unit, fk.line, ip);
                    let item = RbdItem {
                        friendly: fk.name.clone(),
                        rbd_name,
                        unit,
                    };
                    if section == "images" {
                        pool.images.push(item);
                    } else {
                        pool.snapshots.push(item);
                    }
                }
            }
            out.items.push(pool);
        },
        |_, _, ()| {},
    );
    out
}

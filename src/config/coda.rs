//! The coda source's configuration: its `coda-*` settings and the `coda:`
//! section, a list of server groups whose every server and volume make one
//! unit `coda/<server>/<volume>`.

use super::entries::{Units, unit_path};
use super::fields::{get_count, get_prob, get_string_or};
use super::node::Node;
use super::reader::{Fields, KeyPath, Reader};
use crate::names::UnitPath;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct CodaSettings {
    pub full_probability: f64,
    pub volutil_path: String,
    pub codadump2tar_path: String,
    pub workers: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct CodaVolume {
    pub server: String,
    pub volume: String,
    pub unit: UnitPath,
}

/// The `coda-*` keys of `settings:`.
pub(super) fn settings(r: &mut Reader, f: &mut Fields) -> Option<CodaSettings> {
    let full_probability = get_prob(r, f, "coda-full-probability", 0.143);
    let volutil_path = get_string_or(r, f, "coda-volutil-path", "volutil");
    let codadump2tar_path = get_string_or(r, f, "coda-codadump2tar-path", "codadump2tar");
    let workers = get_count(r, f, "coda-workers", 1, 1);
    Some(CodaSettings {
        full_probability: full_probability?,
        volutil_path: volutil_path?,
        codadump2tar_path: codadump2tar_path?,
        workers: workers?,
    })
}

/// The `coda:` section: a list of `{servers: [...], volumes: [...]}`.
pub(super) fn volumes(r: &mut Reader, node: &Node, path: &KeyPath) -> Units<CodaVolume> {
    let mut out = Units::default();
    for (i, n) in r.items(node, path).into_iter().enumerate() {
        let p = path.index(i);
        let Some(mut f) = r.fields(n, &p) else {
            continue;
        };
        let list = |r: &mut Reader, f: &mut Fields, key: &'static str| {
            let (n, kp) = f.require(r, f.line(), key, "")?;
            r.strings(n, &kp).filter(|v| {
                if v.is_empty() {
                    r.error(n.line, &kp, "must not be empty");
                }
                !v.is_empty()
            })
        };
        let servers = list(r, &mut f, "servers");
        let volumes = list(r, &mut f, "volumes");
        f.finish(r);
        let (Some(servers), Some(volumes)) = (servers, volumes) else {
            continue;
        };
        for server in &servers {
            for volume in &volumes {
                let Some(unit) = unit_path(r, &["coda", server, volume], n.line, &p) else {
                    continue;
                };
                out.record(&unit, n.line, p.clone());
                out.items.push(CodaVolume {
                    server: server.clone(),
                    volume: volume.clone(),
                    unit,
                });
            }
        }
    }
    out
}

//! The coda source's configuration: its `coda-*` settings and the `coda:`
//! section, a list of replica sets `{servers, volumes, ssh-port?,
//! ssh-identity?}` whose every server and volume make one unit
//! `coda/<server up to its first dot>/<volume>` (Deltaic's `get_relroot`), in
//! Deltaic's order: volume by volume, each volume's servers in turn.

use super::entries::{Units, unit_path};
use super::fields::{Ctx, get_count, get_path, get_port, get_prob, get_string_or};
use super::node::Node;
use super::reader::{Fields, KeyPath, Reader};
use crate::names::UnitPath;
use serde::Serialize;
use std::path::PathBuf;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct CodaSettings {
    /// The chance that a run makes a full dump of a volume instead of an
    /// incremental one (the coda source's scrub).
    pub full_probability: f64,
    pub volutil_path: String,
    pub codadump2tar_path: String,
    pub workers: u32,
}

/// One replica of one volume: a unit.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct CodaVolume {
    /// The server as configured (its FQDN): the ssh destination.
    pub server: String,
    pub volume: String,
    pub unit: UnitPath,
    /// The ssh port and private key of the entry (strata's additions, as an
    /// rsync host has them); the user is always root, as Deltaic.
    pub ssh_port: Option<u32>,
    pub ssh_identity: Option<PathBuf>,
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

/// The directory name of a server's units: its name up to the first dot, as
/// Deltaic (`coda1.example.org` -> `coda1`; an IPv4 address keeps only its
/// first number).
#[must_use]
pub fn server_dir(server: &str) -> &str {
    server.split('.').next().unwrap_or(server)
}

/// The `coda:` section: a list of `{servers: [...], volumes: [...]}`.
pub(super) fn volumes(r: &mut Reader, ctx: &Ctx, node: &Node, path: &KeyPath) -> Units<CodaVolume> {
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
        let ssh_port = get_port(r, &mut f, "ssh-port");
        let ssh_identity = get_path(r, ctx, &mut f, "ssh-identity");
        f.finish(r);
        let (Some(servers), Some(volumes), Some(ssh_port), Some(ssh_identity)) =
            (servers, volumes, ssh_port, ssh_identity)
        else {
            continue;
        };
        // why: Deltaic's get_units walks volumes, then servers; a run backs up
        // every replica of one volume before the next volume
        for volume in &volumes {
            for server in &servers {
                let Some(unit) = unit_path(r, &["coda", server_dir(server), volume], n.line, &p)
                else {
                    continue;
                };
                out.record(&unit, n.line, p.clone());
                out.items.push(CodaVolume {
                    server: server.clone(),
                    volume: volume.clone(),
                    unit,
                    ssh_port,
                    ssh_identity: ssh_identity.clone(),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_is_named_up_to_its_first_dot() {
        for (server, dir) in [
            ("coda1.example.org", "coda1"),
            ("coda1", "coda1"),
            ("127.0.0.1", "127"),
            ("fd00::1", "fd00::1"),
        ] {
            assert_eq!(server_dir(server), dir, "{server}");
        }
    }
}

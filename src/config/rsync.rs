//! The rsync source's configuration: its `rsync-*` settings and the `rsync:`
//! section, one unit `rsync/<alias>` per host.

use super::entries::{Draft, Units, named_units};
use super::fields::{
    Ctx, get_count, get_path, get_port, get_prob, get_string, get_string_or, get_strings,
};
use super::node::Node;
use super::reader::{Fields, KeyPath, Reader};
use crate::names::UnitPath;
use serde::Serialize;
use std::path::PathBuf;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct RsyncSettings {
    pub local_binary: String,
    pub exclude: Vec<String>,
    pub scrub_probability: f64,
    pub workers: u32,
    pub ssh_options: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Transport {
    Ssh,
    Local,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct RsyncHost {
    pub host: String,
    pub unit: UnitPath,
    pub mounts: Vec<String>,
    pub alias: String,
    pub user: String,
    pub pre: Option<String>,
    pub post: Option<String>,
    pub exclude: Vec<String>,
    pub ssh_port: Option<u32>,
    pub ssh_identity: Option<PathBuf>,
    pub transport: Transport,
}

/// The `rsync-*` keys of `settings:`.
pub(super) fn settings(r: &mut Reader, f: &mut Fields) -> Option<RsyncSettings> {
    let local_binary = get_string_or(r, f, "rsync-local-binary", "rsync");
    let exclude = get_strings(r, f, "rsync-exclude");
    let scrub_probability = get_prob(r, f, "rsync-scrub-probability", 0.0166);
    let workers = get_count(r, f, "rsync-workers", 1, 1);
    let ssh_options = get_strings(r, f, "rsync-ssh-options");
    Some(RsyncSettings {
        local_binary: local_binary?,
        exclude: exclude?,
        scrub_probability: scrub_probability?,
        workers: workers?,
        ssh_options: ssh_options?,
    })
}

/// The `rsync:` section: `host: {mounts, alias, ...}`.
pub(super) fn hosts(r: &mut Reader, ctx: &Ctx, node: &Node, path: &KeyPath) -> Units<RsyncHost> {
    named_units(r, node, path, "rsync", |r, e, f| {
        // why: read before `mounts`, whose rule depends on it
        let transport = match f.get("transport") {
            Some((n, tp)) => r.choice(
                n,
                &tp,
                &[("ssh", Transport::Ssh), ("local", Transport::Local)],
            ),
            None => Some(Transport::Ssh),
        };
        let local = transport == Some(Transport::Local);
        let mounts = f
            .require(r, e.line, "mounts", "the paths to back up")
            .and_then(|(n, mp)| {
                r.strings(n, &mp).and_then(|m| {
                    if m.is_empty() {
                        r.error(n.line, &mp, "must list at least one path");
                        None
                    } else if let Some(bad) = m.iter().find(|m| !m.starts_with('/') && !local) {
                        r.error(n.line, &mp, format!("`{bad}` is not an absolute path"));
                        None
                    } else if let Some(bad) = m.iter().find(|m| m.split('/').any(|c| c == "..")) {
                        // why: the mount's path becomes the unit's (rsync -R), and rsync refuses `..` in it
                        r.error(
                            n.line,
                            &mp,
                            format!(
                                "`{bad}` has a `..` component, which rsync refuses in the path it keeps; \
                                 write the directory without it{}",
                                if local && !bad.starts_with('/') {
                                    " (as an absolute path, or one below the config file's directory)"
                                } else {
                                    ""
                                }
                            ),
                        );
                        None
                    } else {
                        // why: a relative mount of a local host is relative to the config
                        // file's directory; rsync -R's `/./` keeps only the relative part
                        // in the unit (rsync/<alias>/<mount>)
                        Some(
                            m.into_iter()
                                .map(|m| {
                                    if m.starts_with('/') {
                                        m
                                    } else {
                                        format!("{}/./{m}", ctx.base.display())
                                    }
                                })
                                .collect(),
                        )
                    }
                })
            });
        let default_alias = e.name.split('.').next().unwrap_or(e.name).to_owned();
        let alias = get_string_or(r, f, "alias", &default_alias);
        let user = get_string_or(r, f, "user", "root");
        let pre = get_string(r, f, "pre");
        let post = get_string(r, f, "post");
        let exclude = get_strings(r, f, "exclude");
        let ssh_port = get_port(r, f, "ssh-port");
        let ssh_identity = get_path(r, ctx, f, "ssh-identity");
        let (
            Some(mounts),
            Some(alias),
            Some(user),
            Some(pre),
            Some(post),
            Some(exclude),
            Some(ssh_port),
            Some(ssh_identity),
            Some(transport),
        ) = (
            mounts,
            alias,
            user,
            pre,
            post,
            exclude,
            ssh_port,
            ssh_identity,
            transport,
        )
        else {
            return None;
        };
        let host = e.name.to_owned();
        Some(Draft {
            name: alias.clone(),
            blame: e.path.key("alias"),
            build: move |unit| {
                Some(RsyncHost {
                    host,
                    unit,
                    mounts,
                    alias,
                    user,
                    pre,
                    post,
                    exclude,
                    ssh_port,
                    ssh_identity,
                    transport,
                })
            },
        })
    })
}

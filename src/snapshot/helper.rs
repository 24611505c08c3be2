//! The unprivileged side of `strata-snapshot`: runs
//! `sudo -n <helper> VERB [NAME]` through [`crate::exec`] and reads its JSON
//! reply ([`crate::privileged::protocol`]).
//!
//! The helper is `/usr/sbin/strata-snapshot` (where the Debian package puts
//! it, and what `mkconf sudoers` allows) unless `STRATA_SNAPSHOT_HELPER`
//! names another absolute path (tests, hand installs); the sudoers rule must
//! name the same path. `-n`: never prompt; a missing rule is an error that
//! says so, not a hung cron job.

use super::{SnapshotError, SnapshotName};
use crate::exec::{Cmd, ExecError};
use crate::privileged::protocol;
use serde::de::DeserializeOwned;
use std::path::PathBuf;

/// Where the Debian package installs the helper.
pub const DEFAULT_HELPER: &str = "/usr/sbin/strata-snapshot";

/// How strata reaches the helper.
#[derive(Debug, Clone)]
pub struct HelperClient {
    program: PathBuf,
}

impl HelperClient {
    /// The helper named by `STRATA_SNAPSHOT_HELPER`, else [`DEFAULT_HELPER`].
    #[must_use]
    pub fn from_env() -> HelperClient {
        let program = std::env::var_os("STRATA_SNAPSHOT_HELPER")
            .filter(|p| !p.is_empty())
            .map_or_else(|| PathBuf::from(DEFAULT_HELPER), PathBuf::from);
        HelperClient { program }
    }

    /// Run one verb and decode its reply.
    pub fn call<T: DeserializeOwned>(
        &self,
        verb: &str,
        name: Option<&SnapshotName>,
    ) -> Result<T, SnapshotError> {
        let mut cmd = Cmd::new("sudo").arg("-n").arg(&self.program).arg(verb);
        if let Some(n) = name {
            cmd = cmd.arg(n.as_str());
        }
        let out = cmd.run().map_err(|e| match e {
            ExecError::Failed {
                argv,
                status,
                stderr_tail,
            } => SnapshotError::Helper {
                argv,
                refused: status == protocol::EXIT_REFUSED,
                reason: stderr_tail,
            },
            other => SnapshotError::Exec(other),
        })?;
        serde_json::from_slice(&out.stdout).map_err(|source| SnapshotError::HelperReply {
            verb: verb.to_owned(),
            source,
        })
    }

    /// `list`, as names (a name that does not parse is a broken reply).
    pub fn list(&self) -> Result<Vec<(SnapshotName, Option<PathBuf>)>, SnapshotError> {
        let reply: protocol::ListReply = self.call("list", None)?;
        let mut out = Vec::new();
        for s in reply.snapshots {
            let name =
                SnapshotName::parse(&s.name).map_err(|source| SnapshotError::HelperBadName {
                    verb: "list",
                    source,
                })?;
            out.push((name, s.mounted));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// `create`: the helper picks the name from its own clock.
    pub fn create(&self) -> Result<SnapshotName, SnapshotError> {
        let reply: protocol::CreateReply = self.call("create", None)?;
        SnapshotName::parse(&reply.created).map_err(|source| SnapshotError::HelperBadName {
            verb: "create",
            source,
        })
    }

    /// `remove NAME`: whether it was there.
    pub fn remove(&self, name: &SnapshotName) -> Result<bool, SnapshotError> {
        let reply: protocol::RemoveReply = self.call("remove", Some(name))?;
        Ok(reply.removed)
    }
}

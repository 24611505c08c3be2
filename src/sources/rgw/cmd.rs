//! `strata rgw backup|restore`, and the rgw source's place in the registry.

use super::{AclRefresh, BackupOptions, Endpoint, RestoreOptions, backup, restore};
use crate::config::{Config, UnitPath};
use crate::error::{ExitCode, UsageError};
use crate::sources::{Check, Cx, Draw, Source, SourceError, Unit, UnitsError, backup_unit};
use clap::{FromArgMatches, Subcommand};
use std::path::PathBuf;

/// The rgw source.
pub struct Rgw;

/// The registry's instance.
pub static RGW: Rgw = Rgw;

/// The flag of `rgw backup` that refreshes every ACL.
const ACL_FLAG: &str = "-A";

#[derive(Debug, Subcommand)]
enum RgwCmd {
    /// Back up a bucket: fetch new and changed objects, delete local entries of deleted ones
    Backup {
        /// Fetch the ACLs of unchanged objects too
        #[arg(short = 'A', long = "scrub-acls")]
        scrub_acls: bool,
        /// Scrub: re-fetch everything, compare with what is stored, repair and report
        #[arg(short = 'c', long = "scrub")]
        scrub: bool,
        bucket: String,
    },
    /// Restore a backed-up bucket (SOURCE: a bucket name, or a unit directory path) into DEST-BUCKET
    Restore {
        /// Restore into a bucket that is not empty
        #[arg(short = 'f', long = "force")]
        force: bool,
        source: String,
        #[arg(value_name = "DEST-BUCKET")]
        dest_bucket: String,
    },
}

fn endpoint(cx: &Cx) -> Result<Endpoint, SourceError> {
    let config = cx.config()?;
    Endpoint::from_settings(&config.settings.rgw).ok_or_else(|| {
        UsageError(format!(
            "{}: settings.rgw-server is required for the rgw source",
            config.file.display()
        ))
        .into()
    })
}

impl Source for Rgw {
    fn name(&self) -> &'static str {
        "rgw"
    }

    fn about(&self) -> &'static str {
        "The rgw source: RADOS Gateway buckets through S3"
    }

    fn workers(&self, config: &Config) -> u32 {
        config.settings.rgw.workers
    }

    fn units(&self, config: &Config) -> Vec<Result<Unit, UnitsError>> {
        let s = &config.settings.rgw;
        config
            .rgw
            .iter()
            .map(|b| {
                let mut u = Unit::new(&RGW, b.unit.clone(), &[&b.bucket], s.scrub_probability);
                // why: as Deltaic, a random share of runs refreshes every ACL (rgw-scrub-acl-probability)
                u.draws.push(Draw {
                    probability: s.scrub_acl_probability,
                    flag: ACL_FLAG,
                });
                Ok(u)
            })
            .collect()
    }

    fn command(&self) -> clap::Command {
        RgwCmd::augment_subcommands(clap::Command::new(self.name()))
    }

    fn run(&self, cx: &Cx, m: &clap::ArgMatches) -> Result<ExitCode, SourceError> {
        match RgwCmd::from_arg_matches(m).map_err(|e| UsageError::from_clap(&e))? {
            RgwCmd::Backup {
                scrub_acls,
                scrub,
                bucket,
            } => {
                let endpoint = endpoint(cx)?;
                let unit = UnitPath::from_parts(&["rgw", &bucket])
                    .map_err(|e| UsageError(format!("bucket {bucket:?}: {e}")))?;
                let check = if scrub { Check::Scrub } else { Check::Normal };
                // why: a run draws the ACL refresh itself (seeded) and passes -A; by hand the draw is here, as Deltaic's
                let p = cx.config()?.settings.rgw.scrub_acl_probability;
                let by_hand = !crate::jobs::child::is_job();
                let acls = if scrub_acls || (by_hand && p > 0.0 && rand::random::<f64>() < p) {
                    AclRefresh::Refetch
                } else {
                    AclRefresh::KeepStored
                };
                backup_unit(cx, &unit, |root| {
                    let dir = root.join(unit.as_str());
                    Ok(backup(
                        &dir,
                        &bucket,
                        &endpoint,
                        BackupOptions::new(check, acls),
                    )?)
                })
            }
            RgwCmd::Restore {
                force,
                source,
                dest_bucket,
            } => {
                let endpoint = endpoint(cx)?;
                // why: as Deltaic, a SOURCE with a slash is a directory, otherwise a bucket in the root
                let dir = if source.contains('/') {
                    PathBuf::from(&source)
                } else {
                    cx.root()?.join("rgw").join(&source)
                };
                let mode = if force {
                    RestoreOptions::Force
                } else {
                    RestoreOptions::EmptyOnly
                };
                let r = restore(&dir, &dest_bucket, &endpoint, mode).map_err(|e| {
                    SourceError::Restore {
                        what: format!("{source} to bucket {dest_bucket}"),
                        cause: Box::new(e),
                    }
                })?;
                println!(
                    "restored {} objects ({} bytes) to bucket {dest_bucket}{}; Last-Modified and ETags are set anew by radosgw",
                    r.objects,
                    r.bytes,
                    if r.cors { ", with CORS rules" } else { "" }
                );
                if !r.missing_users.is_empty() {
                    let names: Vec<&str> = r.missing_users.iter().map(String::as_str).collect();
                    eprintln!(
                        "warning: these users named in ACLs do not exist on this radosgw; their grants were left out: {}",
                        names.join(", ")
                    );
                }
                Ok(ExitCode::Ok)
            }
        }
    }
}

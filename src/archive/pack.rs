//! Pack one unit of a mounted snapshot into a spool file:
//! `tar` (GNU, sparse, xattrs, ACLs, numeric owners, volume label
//! `"<snapshot> <unit>"`) -> compression in Rust -> optional `gpg -se` ->
//! sha256 + byte count -> spool file. With a snapshot file, tar writes an
//! incremental archive (`--listed-incremental`, see [`super::chain`]).
//!
//! The same snapshot packs to the same bytes (unless the unit holds sparse
//! files, whose member names carry tar's PID, or the archive is encrypted):
//! no access times are stored (reading a file changes its atime) and the
//! label's header is dated 1970. So the `null` archiver's sums are what a
//! real run stores.
//!
//! Memory is bounded: 1 MiB copy buffers and the codec's window; nothing is
//! held whole. With gpg, our thread writes tar's compressed stream into gpg's
//! stdin while a second thread reads gpg's stdout into the spool file.
//!
//! Crash behaviour: the spool file is a temp file removed on every error
//! path (a full spool included); `kill -9` leaves `archive-<pid>-*`, which
//! [`super::ArchiveEnv::clean_spool`] removes later. Nothing is uploaded here.

use super::codec::{self, Encoder};
use super::{ArchiveEnv, ArchiveError, ArchiveMeta, Encryption, HashingWriter, gpg};
use crate::config::Compression;
use crate::exec::Cmd;
use std::io::{BufWriter, Read, Write};
use std::path::Path;
use std::process::Stdio;
use tempfile::NamedTempFile;

const BUF: usize = 1 << 20;
/// The pipe buffer asked for between tar, strata and gpg (the default 64 KiB
/// makes each side wake the other every 64 KiB).
const PIPE: i32 = 1 << 20;

/// A packed archive waiting in the spool.
pub struct Packed {
    pub file: NamedTempFile,
    pub meta: ArchiveMeta,
}

/// The tar command that writes `unit` (a path relative to `mount`) to
/// stdout; with `snar`, an incremental archive against that snapshot file,
/// which tar then rewrites.
#[must_use]
pub fn tar_create(
    env: &ArchiveEnv,
    snapshot: &str,
    mount: &Path,
    unit: &str,
    c: Compression,
    snar: Option<&Path>,
) -> Cmd {
    let mut cmd = Cmd::new(&env.tar).args([
        "-c",
        "--force-local",
        "--format=gnu",
        "--sparse",
        "--xattrs",
        "--xattrs-include=*",
        "--acls",
        "--numeric-owner",
        // why: an atime changes when a file is read, so storing it would make two packs of one snapshot differ
        "--pax-option=delete=atime,globexthdr.mtime=0",
    ]);
    if let Some(snar) = snar {
        // why: each snapshot is a device of its own; directories are known by inode (see chain.rs)
        let mut flag = std::ffi::OsString::from("--listed-incremental=");
        flag.push(snar);
        cmd = cmd.arg("--no-check-device").arg(flag);
    }
    cmd = cmd
        .arg("-V")
        .arg(super::volume_label(snapshot, unit))
        .arg("-C")
        .arg(mount);
    if let Some(flag) = codec::tar_flag(c) {
        cmd = cmd.arg(flag);
    }
    cmd.args(["--", unit])
}

/// Copy `r` into `w` with a 1 MiB buffer.
fn pump(r: &mut impl Read, w: &mut impl Write) -> std::io::Result<u64> {
    let mut buf = vec![0u8; BUF];
    let mut n = 0u64;
    loop {
        let k = match r.read(&mut buf) {
            Ok(0) => return Ok(n),
            Ok(k) => k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        w.write_all(&buf[..k])?;
        n += k as u64;
    }
}

/// Pack `unit` of snapshot `snapshot` mounted at `mount`; with `snar`, as
/// an incremental archive against (and updating) that snapshot file.
pub fn pack(
    env: &ArchiveEnv,
    snapshot: &str,
    mount: &Path,
    unit: &str,
    compression: Compression,
    snar: Option<&Path>,
) -> Result<Packed, ArchiveError> {
    let spool = env.spool_file("archive-")?;
    let out = spool
        .as_file()
        .try_clone()
        .map_err(ArchiveError::io(spool.path()))?;
    // why: the disk writes while tar, the compressor and gpg still work, so
    // that the store's sync (the local archiver's) waits for less
    let sink = HashingWriter::new(BufWriter::with_capacity(
        BUF,
        crate::writeback::StepWriter::new(out),
    ));
    let stage = |stage: &'static str| {
        move |source: std::io::Error| ArchiveError::Pipeline {
            unit: unit.to_owned(),
            stage,
            source,
        }
    };

    let mut tar = tar_create(env, snapshot, mount, unit, compression, snar).spawn_reader()?;
    tar.grow_pipe(PIPE);
    let (sink, sha256, size) = match (env.encryption(), env.signing_key.as_deref()) {
        (Encryption::None, _) => {
            let mut enc = Encoder::new(compression, sink).map_err(stage("compression"))?;
            let copied = pump(&mut tar, &mut enc);
            if let Err(e) = copied {
                tar.kill();
                return Err(write_error(e, unit));
            }
            let sink = enc.finish().map_err(|e| write_error(e, unit))?;
            tar.finish()?;
            sink.finish().map_err(|e| write_error(e, unit))?
        }
        (Encryption::Gpg, signer) => {
            let signer = signer.ok_or_else(|| ArchiveError::GpgStatus {
                file: spool.path().to_owned(),
                what: "a signing key (archive-gpg-signing-key is required with archive-gpg-recipients)".into(),
            })?;
            let status = env.spool_file("archive-")?;
            let (pipe_r, pipe_w) = std::io::pipe().map_err(stage("pipe"))?;
            let gpg_cmd = Cmd::new(&env.gpg).args(gpg::sign_encrypt_args(
                status.path(),
                signer,
                &env.recipients,
            ));
            crate::exec::grow_pipe(&pipe_r, PIPE);
            let gpg = gpg_cmd.spawn_writer(Stdio::from(pipe_w))?;
            gpg.grow_pipe(PIPE);
            // why: gpg's stdout must be drained while we feed its stdin, or both block
            let reader = std::thread::spawn(move || {
                let mut pipe_r = pipe_r;
                let mut sink = sink;
                pump(&mut pipe_r, &mut sink).map(|_| sink)
            });
            let mut enc = Encoder::new(compression, gpg).map_err(stage("compression"))?;
            let fed = pump(&mut tar, &mut enc).and_then(|_| enc.finish());
            let gpg_end = fed.map(crate::exec::ChildWriter::finish);
            let drained = reader
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("the spool writer thread panicked")));
            // why: a spool write error (ENOSPC) is the root cause of gpg's broken pipe; report it first
            let sink = drained.map_err(|e| write_error(e, unit))?;
            let refused = || gpg::refused_key(&env.gpg, status.path());
            match gpg_end {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(refused().unwrap_or_else(|| e.into())),
                Err(e) => {
                    tar.kill();
                    // why: gpg that refuses a key exits at once, and feeding it then breaks the pipe
                    return Err(refused().unwrap_or_else(|| stage("feeding gpg")(e)));
                }
            }
            tar.finish()?;
            let text =
                std::fs::read_to_string(status.path()).map_err(ArchiveError::io(status.path()))?;
            let st = gpg::parse_status(&text);
            if !st.sig_created || !st.end_encryption {
                return Err(ArchiveError::GpgStatus {
                    file: spool.path().to_owned(),
                    what: "SIG_CREATED and END_ENCRYPTION".into(),
                });
            }
            sink.finish().map_err(|e| write_error(e, unit))?
        }
    };
    // why: no fsync: the spool is scratch, re-packed after a crash; the store
    // makes the archive durable (the local archiver syncs its copy)
    sink.into_inner()
        .map_err(|e| write_error(e.into_error(), unit))?
        .flush()
        .map_err(|e| write_error(e, unit))?;
    Ok(Packed {
        file: spool,
        meta: ArchiveMeta {
            compression,
            encryption: env.encryption(),
            sha256,
            size,
        },
    })
}

fn write_error(source: std::io::Error, unit: &str) -> ArchiveError {
    ArchiveError::Pipeline {
        unit: unit.to_owned(),
        stage: "writing the spool file",
        source,
    }
}

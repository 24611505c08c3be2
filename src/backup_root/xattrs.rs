//! Extended attribute names on stored files. Deltaic's names are kept as they
//! are, so a Deltaic backup root is read unchanged.

/// Owner/mode/ACL/xattrs of an rsync'd file (rsync `--fake-super`).
pub const RSYNC_STAT: &str = "user.rsync.%stat";
/// The RBD snapshot an image file equals.
pub const RBD_SNAPSHOT: &str = "user.rbd.snapshot";
/// The RBD snapshot whose diff is being applied (crash protocol).
pub const RBD_PENDING_SNAPSHOT: &str = "user.rbd.pending-snapshot";
/// The snapid of a fetched RBD snapshot.
pub const RBD_SNAPID: &str = "user.rbd.snapid";
/// On a Coda volume's stored root: the stored copy took a complete dump, so
/// the next may be incremental (Deltaic's name and value, `true`).
pub const CODA_INCREMENTAL_OK: &str = "user.coda.incremental-ok";
/// On a Coda volume's stored root: the bytes of its regular files (strata's
/// own; what `status` shows after an incremental dump).
pub const STRATA_CODA_BYTES: &str = "user.strata.coda-bytes";
/// Archive metadata on a retrieved archive file (Deltaic's names).
pub const ARCHIVE_COMPRESSION: &str = "user.archive.compression";
pub const ARCHIVE_ENCRYPTION: &str = "user.archive.encryption";
pub const ARCHIVE_SHA256: &str = "user.archive.sha256";
/// The set and unit a retrieved archive was fetched as (strata's own), which
/// its tar volume label must name.
pub const ARCHIVE_SET: &str = "user.archive.set";
pub const ARCHIVE_UNIT: &str = "user.archive.unit";
/// sha256 (hex) of a stored file's content as of its last complete update.
pub const STRATA_SHA256: &str = "user.strata.sha256";
/// sha256 (hex) of the content a block update is writing: present only while
/// an update is under way, so a crash mid-update is detected.
pub const STRATA_PENDING_SHA256: &str = "user.strata.pending-sha256";

/// Read an xattr as UTF-8 text; `None` if absent.
pub fn get_text(path: &std::path::Path, name: &str) -> std::io::Result<Option<String>> {
    Ok(xattr::get(path, name)?.map(|v| String::from_utf8_lossy(&v).into_owned()))
}

/// Remove an xattr; absent is fine.
pub fn remove_if_present(path: &std::path::Path, name: &str) -> std::io::Result<()> {
    match xattr::remove(path, name) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(nix::errno::Errno::ENODATA as i32) => Ok(()),
        Err(e) => Err(e),
    }
}

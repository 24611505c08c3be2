//! LVM thin for real, inside a small QEMU guest (this host's kernel has no
//! device-mapper): `tests/support/lvm-vm/lvm-thin-cycle.sh` boots once and
//! runs every check there (see its header): the Debian package built from
//! this test run's binaries installed with dpkg, a thin pool and LV with
//! ext4 as the backup root, the helper and its sudoers rule, then as the
//! unprivileged `backup` user: run, ls, mount (content), umount, prune
//! --as-of, df -c firing once the pool fills; refusals through sudo.
//!
//! Cost: 100-270 s of wall time on a shared 2-core machine without usable
//! KVM (software emulation; boot ~20 s, the rest the guest running debug
//! binaries); 262 s measured at load average 12.
//! Needs root, qemu-system-x86, a Debian kernel with dm-thin-pool
//! (`scripts/install-test-deps.sh --vm`; the runner apt-installs what is
//! missing otherwise).

use crate::snap_env::{self, have, is_root, require, text};
use std::io::Write as _;

#[test]
fn vm_lvm_thin_cycle_as_unprivileged_user() {
    if !require("root", is_root())
        || !require(
            "dpkg-deb and visudo (apt: dpkg, sudo)",
            have("dpkg-deb") && have("visudo"),
        )
    {
        return;
    }
    let kernel = std::fs::read_dir("/boot").is_ok_and(|d| {
        d.filter_map(Result::ok)
            .any(|e| e.file_name().to_string_lossy().starts_with("vmlinuz-"))
    });
    if !require(
        "qemu-system-x86_64 and a /boot/vmlinuz-* (scripts/install-test-deps.sh --vm)",
        have("qemu-system-x86_64") && kernel,
    ) {
        return;
    }
    // why: under /tmp, which the guest sees (the host root, read-only)
    let work = tempfile::Builder::new()
        .prefix("strata-vm-deb.")
        .tempdir_in("/tmp")
        .unwrap();
    let deb = crate::package::build_deb(work.path());
    let script = snap_env::repo().join("tests/support/lvm-vm/lvm-thin-cycle.sh");
    let t0 = std::time::Instant::now();
    #[allow(clippy::disallowed_methods)] // why: the VM runner is a test fixture script
    let out = std::process::Command::new(&script)
        .arg(&deb)
        .current_dir(work.path())
        .output()
        .unwrap();
    let secs = t0.elapsed().as_secs();
    let stdout = text(&out.stdout);
    // why: straight to fd 2 so the cost shows even when the test passes
    let _ = writeln!(std::io::stderr(), "vm_lvm_thin_cycle: VM wall time {secs}s");
    assert!(
        out.status.success() && stdout.lines().any(|l| l == "PASS"),
        "{}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        text(&out.stderr)
    );
    let checks = stdout
        .lines()
        .filter(|l| l.starts_with("CHECK ok:"))
        .count();
    assert_eq!(checks, 9, "{stdout}");
}

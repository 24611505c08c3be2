//! The Debian package: `packaging/build-deb.sh` builds it from the binaries
//! of this test run; its file list, owners and modes are what the issue asks
//! (helper root-owned 0755, sudoers 0440, units, man pages, completions),
//! and the packaged `strata --help` runs. (`dpkg -i` itself is exercised in
//! the LVM VM test, whose guest installs this package.)

use crate::snap_env::{self, have, require, strata_bin, text};

/// Build the package into `out`; returns the .deb path.
pub fn build_deb(out: &std::path::Path) -> std::path::PathBuf {
    let bin_dir = strata_bin().parent().unwrap().to_owned();
    let script = snap_env::repo().join("packaging/build-deb.sh");
    let o = snap_env::sh(
        script.to_str().unwrap(),
        &[
            "--bin-dir",
            bin_dir.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            // why: xz of the debug binaries takes a minute on this machine
            "--compress",
            "none",
        ],
    );
    std::path::PathBuf::from(text(&o.stdout).trim())
}

#[test]
fn package_builds_with_expected_files_and_modes() {
    if !require(
        "dpkg-deb and visudo (apt: dpkg, sudo)",
        have("dpkg-deb") && have("visudo"),
    ) {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let deb = build_deb(out.path());
    let list = text(&snap_env::sh("dpkg-deb", &["-c", deb.to_str().unwrap()]).stdout);
    let entry = |path: &str| -> (String, String) {
        let line = list
            .lines()
            .find(|l| l.ends_with(&format!(" .{path}")))
            .unwrap_or_else(|| panic!("{path} not in the package:\n{list}"));
        let f: Vec<&str> = line.split_whitespace().collect();
        (f[0].to_owned(), f[1].to_owned())
    };
    let root = "root/root".to_owned();
    assert_eq!(
        entry("/usr/bin/strata"),
        ("-rwxr-xr-x".into(), root.clone())
    );
    assert_eq!(
        entry("/usr/sbin/strata-snapshot"),
        ("-rwxr-xr-x".into(), root.clone())
    );
    assert_eq!(
        entry("/etc/sudoers.d/strata"),
        ("-r--r-----".into(), root.clone())
    );
    for unit in ["run", "prune", "df", "archive", "archive-prune"] {
        for kind in ["service", "timer"] {
            let p = format!("/lib/systemd/system/strata-{unit}.{kind}");
            assert_eq!(entry(&p), ("-rw-r--r--".into(), root.clone()));
        }
    }
    for p in [
        "/usr/share/man/man1/strata.1.gz",
        "/usr/share/man/man1/strata-run.1.gz",
        "/usr/share/man/man8/strata-snapshot.8.gz",
        "/usr/share/bash-completion/completions/strata",
        "/usr/share/zsh/vendor-completions/_strata",
        "/usr/share/fish/vendor_completions.d/strata.fish",
        "/usr/share/doc/strata/examples/snapshot.yaml",
        "/usr/share/doc/strata/copyright",
    ] {
        assert_eq!(entry(p), ("-rw-r--r--".into(), root.clone()), "{p}");
    }
    assert!(
        !list
            .lines()
            .any(|l| l.ends_with("./etc/strata/snapshot.yaml")),
        "the helper config must be written by the admin, not shipped"
    );
    let info = text(
        &snap_env::sh(
            "dpkg-deb",
            &["-f", deb.to_str().unwrap(), "Package", "Depends"],
        )
        .stdout,
    );
    assert!(
        info.contains("Package: strata") && info.contains("sudo"),
        "{info}"
    );
    // The packaged binary runs.
    let x = out.path().join("x");
    snap_env::sh(
        "dpkg-deb",
        &["-x", deb.to_str().unwrap(), x.to_str().unwrap()],
    );
    let help = snap_env::sh(x.join("usr/bin/strata").to_str().unwrap(), &["--help"]);
    assert!(
        text(&help.stdout).contains("Usage: strata"),
        "{}",
        text(&help.stdout)
    );
}

#[test]
fn root_package_installs_with_dpkg_into_an_empty_root() {
    use std::os::unix::fs::MetadataExt;
    if !require("root", crate::snap_env::is_root())
        || !require(
            "dpkg, dpkg-deb and visudo",
            have("dpkg") && have("dpkg-deb") && have("visudo"),
        )
    {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let deb = build_deb(out.path());
    // A clean system as far as dpkg knows: an empty database in an empty root.
    let root = out.path().join("root");
    for d in ["var/lib/dpkg/info", "var/lib/dpkg/updates"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(root.join("var/lib/dpkg/status"), "").unwrap();
    let root_arg = format!("--root={}", root.display());
    // why: --force-depends: libc6 and sudo are not "installed" in the empty database
    snap_env::sh(
        "dpkg",
        &[&root_arg, "--force-depends", "-i", deb.to_str().unwrap()],
    );
    let listed = text(&snap_env::sh("dpkg", &[&root_arg, "-L", "strata"]).stdout);
    assert!(
        listed.lines().any(|l| l == "/usr/sbin/strata-snapshot"),
        "{listed}"
    );
    for (path, mode) in [
        ("usr/bin/strata", 0o755),
        ("usr/sbin/strata-snapshot", 0o755),
        ("etc/sudoers.d/strata", 0o440),
        ("lib/systemd/system/strata-run.timer", 0o644),
    ] {
        let m = std::fs::metadata(root.join(path)).unwrap();
        assert_eq!(
            (m.uid(), m.gid(), m.mode() & 0o7777),
            (0, 0, mode),
            "{path}"
        );
    }
    let help = snap_env::sh(root.join("usr/bin/strata").to_str().unwrap(), &["--help"]);
    assert!(text(&help.stdout).contains("Usage: strata"));
    snap_env::sh(
        "visudo",
        &[
            "-c",
            "-q",
            "-f",
            root.join("etc/sudoers.d/strata").to_str().unwrap(),
        ],
    );
}

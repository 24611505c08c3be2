//! `strata mkconf`: the repository's `sudoers/` and `systemd/` hold the
//! rendering for the reference target (user `backup`, `/usr/bin/strata`,
//! `/usr/sbin/strata-snapshot`), and these golden tests keep them equal.
//! `STRATA_UPDATE_GOLDEN=1` rewrites them. The sudoers file must pass
//! `visudo -c -f` and allow exactly one command.

use crate::snap_env::{self, clean, have, require, strata_bin, text};
use std::fs;
use std::path::Path;

fn update() -> bool {
    std::env::var_os("STRATA_UPDATE_GOLDEN").is_some_and(|v| v == "1")
}

#[track_caller]
fn golden(path: &Path, actual: &str) {
    if update() {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, actual).unwrap();
        return;
    }
    let expected = fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (STRATA_UPDATE_GOLDEN=1 creates it)",
            path.display()
        )
    });
    assert_eq!(
        expected,
        actual,
        "{} differs from mkconf output (STRATA_UPDATE_GOLDEN=1 rewrites it)",
        path.display()
    );
}

fn mkconf(home: &Path, args: &[&str]) -> String {
    let out = clean(strata_bin(), home)
        .arg("mkconf")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mkconf {args:?}: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

#[test]
fn mkconf_sudoers_matches_repository_file() {
    let home = tempfile::tempdir().unwrap();
    let s = mkconf(home.path(), &["sudoers", "--user", "backup"]);
    golden(&snap_env::repo().join("sudoers/strata"), &s);
}

#[test]
fn mkconf_systemd_matches_repository_files() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("units");
    mkconf(
        home.path(),
        &[
            "systemd",
            "--user",
            "backup",
            "--dir",
            dir.to_str().unwrap(),
        ],
    );
    let repo = snap_env::repo().join("systemd");
    let mut names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 14, "{names:?}");
    for n in &names {
        golden(&repo.join(n), &fs::read_to_string(dir.join(n)).unwrap());
    }
    if !update() {
        let in_repo = fs::read_dir(&repo).unwrap().count();
        assert_eq!(
            in_repo,
            names.len(),
            "systemd/ holds files mkconf no longer makes"
        );
    }
}

#[test]
fn mkconf_crontab_matches_repository_file() {
    let home = tempfile::tempdir().unwrap();
    let s = mkconf(
        home.path(),
        &["crontab", "--user", "backup", "--email", "root@localhost"],
    );
    golden(&snap_env::repo().join("packaging/crontab.example"), &s);
}

#[test]
fn mkconf_sudoers_passes_visudo_and_allows_one_command() {
    if !require("visudo (apt: sudo)", have("visudo")) {
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let s = mkconf(
        home.path(),
        &[
            "sudoers",
            "--user",
            "backup",
            "--helper",
            "/opt/strata/sbin/strata-snapshot",
        ],
    );
    let f = home.path().join("strata");
    fs::write(&f, &s).unwrap();
    let out = snap_env::sh("/usr/sbin/visudo", &["-c", "-f", f.to_str().unwrap()]);
    assert!(
        text(&out.stdout).contains("parsed OK"),
        "{}",
        text(&out.stdout)
    );
    let rules: Vec<&str> = s
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("Defaults") && !l.is_empty())
        .collect();
    assert_eq!(
        rules,
        ["backup ALL=(root) NOPASSWD: /opt/strata/sbin/strata-snapshot"]
    );
    // A user name that would add a rule is refused (exit 2), nothing printed.
    let out = clean(strata_bin(), home.path())
        .args(["mkconf", "sudoers", "--user", "backup ALL=(ALL) ALL"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
}

#[test]
fn crontab_mails_root_by_default_and_takes_deltaics_email_order() {
    let home = tempfile::tempdir().unwrap();
    let plain = mkconf(home.path(), &["crontab", "--user", "backup"]);
    assert!(plain.contains("\nMAILTO=root\n"), "{plain}");
    assert!(
        plain.contains("\n0 23 * * * /usr/bin/strata -q prune\n"),
        "{plain}"
    );
    assert!(
        plain.contains("\n0 0 * * * /usr/bin/strata -q run\n"),
        "{plain}"
    );
    // Deltaic's order: the option before the template's name.
    let deltaic = mkconf(
        home.path(),
        &["--email", "ops@example.org", "crontab", "--user", "backup"],
    );
    assert!(deltaic.contains("\nMAILTO=ops@example.org\n"), "{deltaic}");
}

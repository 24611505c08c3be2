//! `config check` / `config show` on real files: Deltaic's own example, the
//! repository's example with every key, and one bad input per rule, each a
//! one-line `file:line: key: message` with exit 2 and nothing touched.

use crate::support::env::{TestHome, strata};
use std::path::{Path, PathBuf};
use std::process::Output;

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn check(home: &TestHome, config: &Path) -> Output {
    strata(home)
        .arg("-c")
        .arg(config)
        .args(["config", "check"])
        .output()
        .expect("run strata")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn deltaic_example_config_passes_unchanged_and_lists_its_units() {
    let home = TestHome::new();
    let out = check(&home, &repo("tests/fixtures/deltaic-example-config.yaml"));
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for unit in [
        "rsync/octopus",
        "github/jquery",
        "rbd/pool-1/images/foo-data",
        "rbd/pool-1/snapshots/foo-data-20140301",
        "rgw/bucket1",
        "coda/coda1/a:foo",
        "coda/coda2/a:baz",
    ] {
        assert!(
            stdout.lines().any(|l| l.trim() == unit),
            "{unit} missing from:\n{stdout}"
        );
    }
    assert!(stdout.contains("valid, 11 units"), "{stdout}");
    // The root of Deltaic's example does not exist here: a warning, not an error.
    assert!(
        text(&out.stderr).contains("settings.root: /srv/backup does not exist"),
        "{}",
        text(&out.stderr)
    );
}

/// Deltaic names a Coda unit `coda/<server up to its first dot>/<volume>`
/// (`get_relroot`) and lists them volume by volume, each volume's servers in
/// turn (`CodaSource.get_units`); strata's units are the same, in the same
/// order, for Deltaic's own example config.
#[test]
fn coda_units_of_deltaics_example_are_named_and_ordered_as_deltaic() {
    let home = TestHome::new();
    let out = check(&home, &repo("tests/fixtures/deltaic-example-config.yaml"));
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let coda: Vec<&str> = stdout
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("coda/"))
        .collect();
    assert_eq!(
        coda,
        [
            "coda/coda1/a:foo",
            "coda/coda2/a:foo",
            "coda/coda1/a:bar",
            "coda/coda2/a:bar",
            "coda/coda1/a:baz",
            "coda/coda2/a:baz",
        ],
        "{stdout}"
    );
}

/// Every key of DESIGN Appendix A, which example-config.yaml must show.
const APPENDIX_A_KEYS: &[&str] = &[
    "root",
    "backup-lv",
    "df-warning",
    "snapshot-store",
    "snapshot-dir",
    "stale-days",
    "gc-duplicate-days",
    "gc-daily-weeks",
    "gc-weekly-months",
    "gc-log-distinct-days",
    "gc-policy",
    "gc-hanoi-discs",
    "gc-min-free-percent",
    "gc-min-keep",
    "coda-full-probability",
    "coda-volutil-path",
    "coda-codadump2tar-path",
    "coda-workers",
    "github-token",
    "github-scrub-probability",
    "github-git-path",
    "github-workers",
    "github-api-url",
    "github-client-id",
    "rbd-scrub-probability",
    "rbd-workers",
    "rgw-server",
    "rgw-secure",
    "rgw-scrub-acl-probability",
    "rgw-scrub-probability",
    "rgw-threads",
    "rgw-workers",
    "rsync-local-binary",
    "rsync-exclude",
    "rsync-scrub-probability",
    "rsync-workers",
    "rsync-ssh-options",
    "archive-spool",
    "archive-gpg-signing-key",
    "archive-gpg-recipients",
    "archive-tar-path",
    "archive-gpg-path",
    "googledrive-client-id",
    "googledrive-client-secret",
    "googledrive-credentials-file",
    "archiver",
    "compression",
    "keep-count",
    "workers",
    "aws-access-key-id",
    "aws-secret-access-key",
    "aws-region",
    "aws-namespace",
    "aws-storage-cost",
    "aws-glacier-endpoint",
    "aws-sdb-endpoint",
    "local-path",
    "s3-bucket",
    "s3-prefix",
    "s3-endpoint",
    "s3-region",
    "s3-access-key-id",
    "s3-secret-access-key-file",
    "s3-storage-class",
    "s3-restore-tier",
    "s3-restore-days",
    "s3-prices",
    "servers",
    "volumes",
    "organization-metadata",
    "lfs",
    "images",
    "snapshots",
    "mounts",
    "alias",
    "user",
    "pre",
    "post",
    "exclude",
    "ssh-port",
    "ssh-identity",
    "transport",
    "command",
    "file",
    "scrub",
    "skip",
    // strata's own keys since (issue 15)
    "gc-min-free-bytes",
    "diffs",
    "keep-policy",
    "keep-discs",
    "keep-oldest",
    "keep-bytes",
    "s3-final-storage-class",
    "pipeline",
];

#[test]
fn example_config_shows_every_key_and_passes() {
    let path = repo("example-config.yaml");
    let body = std::fs::read_to_string(&path).unwrap();
    for key in APPENDIX_A_KEYS {
        let present = body.lines().any(|l| {
            let t = l.trim_start().trim_start_matches("- ");
            t.starts_with(&format!("{key}:"))
        });
        assert!(present, "example-config.yaml does not show the key `{key}`");
    }
    let home = TestHome::new();
    let out = check(&home, &path);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("dump/pgsql"),
        "{}",
        text(&out.stdout)
    );
    let show = strata(&home)
        .arg("-c")
        .arg(&path)
        .args(["config", "show"])
        .output()
        .unwrap();
    assert!(show.status.success(), "{}", text(&show.stderr));
    let shown = text(&show.stdout);
    assert!(shown.contains("gc-duplicate-days: 14"), "{shown}");
    assert!(
        !shown.contains("my_token"),
        "config show must redact secrets:\n{shown}"
    );
    // What `config show` prints is itself a config, and shows the same again.
    let again = home.join("shown.yaml");
    std::fs::write(&again, &shown).unwrap();
    let out = check(&home, &again);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let reshown = strata(&home)
        .arg("-c")
        .arg(&again)
        .args(["config", "show"])
        .output()
        .unwrap();
    let strip = |s: &str| s.lines().skip(1).collect::<Vec<_>>().join("\n");
    assert_eq!(strip(&text(&reshown.stdout)), strip(&shown));
}

#[test]
fn defaults_are_filled_in_by_config_show() {
    let home = TestHome::new();
    let cfg = home.join("c.yaml");
    std::fs::write(
        &cfg,
        "settings:\n  root: /nonexistent\n  snapshot-store: dir\n",
    )
    .unwrap();
    let show = strata(&home)
        .arg("-c")
        .arg(&cfg)
        .args(["config", "show"])
        .output()
        .unwrap();
    let shown = text(&show.stdout);
    for line in [
        "df-warning: 5",
        "stale-days: 3",
        "log-distinct-days: 60",
        "threads: 4",
        "tar-path: tar",
        "gpg-path: gpg",
    ] {
        assert!(shown.contains(line), "`{line}` missing:\n{shown}");
    }
}

#[test]
fn cephfs_store_warns_when_the_policy_outgrows_the_snapshot_limit() {
    let home = TestHome::new();
    let cfg = home.join("c.yaml");
    // (settings, whether config check warns)
    let table = [
        ("", true),
        ("  cephfs-max-snapshots: 1000\n", false),
        ("  gc-policy: hanoi\n  gc-hanoi-discs: 10\n", false),
        ("  gc-weekly-months: 1\n  gc-daily-weeks: 1\n", true),
        (
            "  gc-policy: hanoi\n  gc-hanoi-discs: 10\n  cephfs-max-snapshots: 8\n",
            true,
        ),
    ];
    for (extra, warns) in table {
        std::fs::write(
            &cfg,
            format!("settings:\n  root: /nonexistent\n  snapshot-store: cephfs\n{extra}"),
        )
        .unwrap();
        let out = check(&home, &cfg);
        assert!(out.status.success(), "{extra}: {}", text(&out.stderr));
        let stderr = text(&out.stderr);
        assert_eq!(
            stderr.contains("mds_max_snaps_per_dir"),
            warns,
            "{extra}: {stderr}"
        );
        if warns {
            assert!(
                stderr.contains("settings.gc-policy: with one run a day"),
                "{stderr}"
            );
        }
    }
}

/// One bad config per rule: (what, yaml, expected line, expected fragment).
/// `R` is replaced by an empty root directory.
const BAD: &[(&str, &str, u32, &str)] = &[
    (
        "unknown key",
        "settings:\n  snapshot-store: dir\n  root: R\n  rsync-worker: 2\n",
        4,
        "settings.rsync-worker: unknown key `rsync-worker` (did you mean `rsync-workers`?)",
    ),
    (
        "unknown section",
        "settings:\n  snapshot-store: dir\n  root: R\nrsinc:\n  h: {mounts: [/]}\n",
        4,
        "unknown key `rsinc` (did you mean `rsync`?)",
    ),
    (
        "wrong type",
        "settings:\n  snapshot-store: dir\n  root: R\n  df-warning: lots\n",
        4,
        "settings.df-warning: expected a number, found a string `lots`",
    ),
    (
        "missing root",
        "settings:\n  snapshot-store: dir\n",
        2,
        "settings.root: missing required key `root`",
    ),
    (
        "a .. in a mount",
        "settings:\n  snapshot-store: dir\n  root: R\nrsync:\n  h:\n    transport: local\n    mounts: [../up]\n",
        7,
        "rsync.h.mounts: `../up` has a `..` component, which rsync refuses in the path it keeps; write the directory without it (as an absolute path, or one below the config file's directory)",
    ),
    (
        "a .. in an absolute mount",
        "settings:\n  snapshot-store: dir\n  root: R\nrsync:\n  h: {mounts: [/srv/../etc]}\n",
        5,
        "rsync.h.mounts: `/srv/../etc` has a `..` component, which rsync refuses in the path it keeps; write the directory without it",
    ),
    (
        "missing mounts",
        "settings:\n  snapshot-store: dir\n  root: R\nrsync:\n  h.example.org:\n    alias: h\n",
        5,
        "rsync.\"h.example.org\".mounts: missing required key `mounts`",
    ),
    (
        "missing dump command",
        "settings:\n  snapshot-store: dir\n  root: R\ndump:\n  pg:\n    file: pg.sql\n",
        5,
        "dump.pg.command: missing required key `command` (the program and its arguments, as a list)",
    ),
    (
        "coda servers whose names agree up to the first dot",
        "settings:\n  snapshot-store: dir\n  root: R\ncoda:\n  - servers: [c1.a.org, c1.b.org]\n    volumes: [v]\n",
        5,
        "coda[0]: unit coda/c1/v is already defined by coda[0] (line 5): two units cannot share one directory",
    ),
    (
        "coda ssh port out of range",
        "settings:\n  snapshot-store: dir\n  root: R\ncoda:\n  - servers: [c1]\n    volumes: [v]\n    ssh-port: 65536\n",
        7,
        "coda[0].ssh-port: a TCP port must be at most 65535, found 65536",
    ),
    (
        "missing archiver kind",
        "settings:\n  snapshot-store: dir\n  root: R\n  archivers:\n    offsite:\n      compression: zstd\n",
        6,
        "settings.archivers.offsite.archiver: missing required key `archiver` (aws, googledrive, s3, local or null)",
    ),
    (
        "googledrive url",
        "settings:\n  snapshot-store: dir\n  root: R\n  archivers:\n    d:\n      archiver: googledrive\n      googledrive-api-url: ftp://x\n",
        7,
        "settings.archivers.d.googledrive-api-url: \"ftp://x\" is not an http:// or https:// URL",
    ),
    (
        "googledrive key on another archiver",
        "settings:\n  snapshot-store: dir\n  root: R\n  archivers:\n    d:\n      archiver: local\n      local-path: /x\n      googledrive-credentials-file: /c.json\n",
        8,
        "settings.archivers.d.googledrive-credentials-file: `googledrive-credentials-file` belongs to archiver `googledrive`",
    ),
    (
        "an aws namespace no vault and domain may have",
        "settings:\n  snapshot-store: dir\n  root: R\n  archivers:\n    old:\n      archiver: aws\n      aws-access-key-id: k\n      aws-secret-access-key: s\n      aws-region: us-east-1\n      aws-namespace: my vault\n",
        10,
        "settings.archivers.old.aws-namespace: \"my vault\" is not a Glacier vault and SimpleDB domain name",
    ),
    (
        "unit twice (YAML key)",
        "settings:\n  snapshot-store: dir\n  root: R\nrsync:\n  h: {mounts: [/]}\n  h: {mounts: [/]}\n",
        6,
        "duplicate mapping key",
    ),
    (
        "unit twice (list)",
        "settings:\n  snapshot-store: dir\n  root: R\n  rgw-server: x\nrgw:\n  - b\n  - b\n",
        7,
        "unit rgw/b is already defined by rgw[0]",
    ),
    (
        "two units one directory",
        "settings:\n  snapshot-store: dir\n  root: R\nrsync:\n  a.example.org: {mounts: [/]}\n  b.example.org: {mounts: [/], alias: a}\n",
        6,
        "unit rsync/a is already defined by rsync.\"a.example.org\" (line 5)",
    ),
    (
        "probability",
        "settings:\n  snapshot-store: dir\n  root: R\n  rbd-scrub-probability: 1.5\n",
        4,
        "settings.rbd-scrub-probability: a probability must be between 0 and 1, found 1.5",
    ),
    (
        "negative workers",
        "settings:\n  snapshot-store: dir\n  root: R\n  rsync-workers: -2\n",
        4,
        "settings.rsync-workers: must be a whole number of at least 1, found -2",
    ),
    (
        "empty dump command",
        "settings:\n  snapshot-store: dir\n  root: R\ndump:\n  db:\n    command: []\n",
        6,
        "dump.db.command: the command is empty",
    ),
    (
        "unsafe dump file",
        "settings:\n  snapshot-store: dir\n  root: R\ndump:\n  db:\n    command: [pg_dump]\n    file: ../x\n",
        7,
        "dump.db.file: `../x` must be a plain file name",
    ),
    (
        "bad choice",
        "settings:\n  snapshot-store: dri\n  root: R\n",
        2,
        "`dri` is not one of lvm-thin, btrfs, dir, cephfs (did you mean `dir`?)",
    ),
    (
        "lvm-thin needs backup-lv",
        "settings:\n  root: R\n",
        1,
        "settings.backup-lv: required by snapshot-store lvm-thin",
    ),
    (
        "archiver key of another kind",
        "settings:\n  snapshot-store: dir\n  root: R\n  archivers:\n    usb:\n      archiver: local\n      local-path: /m\n      s3-bucket: b\n",
        8,
        "`s3-bucket` belongs to archiver `s3`",
    ),
    (
        "undefined profile",
        "settings:\n  snapshot-store: dir\n  root: R\narchivers:\n  defualt:\n    dump/x: {skip: true}\n",
        5,
        "archiver profile `defualt` is not defined",
    ),
    (
        "bad YAML",
        "settings:\n  snapshot-store: dir\n  root: [R\n",
        3,
        "invalid YAML",
    ),
];

#[test]
fn each_bad_input_gets_a_one_line_error_naming_file_line_and_key() {
    let home = TestHome::new();
    let root = home.join("root");
    std::fs::create_dir(&root).unwrap();
    for (what, yaml, line, fragment) in BAD {
        let cfg = home.join("strata.yaml");
        let yaml = yaml.replace('R', &root.display().to_string());
        std::fs::write(&cfg, &yaml).unwrap();
        let out = check(&home, &cfg);
        let err = text(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{what}: expected exit 2, stderr: {err}"
        );
        let first = err.lines().next().unwrap_or_default();
        let want_prefix = format!("strata: {}:{line}: ", cfg.display());
        assert!(
            first.starts_with(&want_prefix),
            "{what}: `{first}` does not start with `{want_prefix}`\n{yaml}"
        );
        assert!(
            err.contains(fragment),
            "{what}: `{fragment}` not in:\n{err}"
        );
        assert_eq!(
            err.lines().count(),
            1,
            "{what}: one problem, one line:\n{err}"
        );
        // Nothing is touched: not even `run` writes into the root.
        let run = strata(&home)
            .arg("-c")
            .arg(&cfg)
            .args(["--allow-root", "run"])
            .output()
            .unwrap();
        assert_eq!(run.status.code(), Some(2), "{what}: run on a bad config");
        assert_eq!(
            std::fs::read_dir(&root).unwrap().count(),
            0,
            "{what}: the root was touched"
        );
    }
}

#[test]
fn root_that_is_a_file_is_an_error_and_missing_root_refuses_run() {
    let home = TestHome::new();
    let file = home.join("not-a-dir");
    std::fs::write(&file, "").unwrap();
    let cfg = home.join("c.yaml");
    std::fs::write(
        &cfg,
        format!(
            "settings:\n  root: {}\n  snapshot-store: dir\n",
            file.display()
        ),
    )
    .unwrap();
    let out = check(&home, &cfg);
    assert_eq!(out.status.code(), Some(2));
    // Every config error carries its line, machine-state ones included.
    assert!(
        text(&out.stderr).contains(&format!("{}:2: settings.root:", cfg.display()))
            && text(&out.stderr).contains("is not a directory"),
        "{}",
        text(&out.stderr)
    );

    let missing = home.join("not-mounted");
    std::fs::write(
        &cfg,
        format!(
            "settings:\n  root: {}\n  snapshot-store: dir\n",
            missing.display()
        ),
    )
    .unwrap();
    let out = check(&home, &cfg);
    assert!(
        out.status.success(),
        "a missing root is only a warning for config check"
    );
    // why: ls too: an unmounted volume must not look like "no snapshots"
    for cmd in [&["run"][..], &["ls"], &["--json", "ls"]] {
        let out = strata(&home)
            .arg("-c")
            .arg(&cfg)
            .arg("--allow-root")
            .args(cmd)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{cmd:?}");
        assert!(
            text(&out.stderr).contains(&format!("{}:2: settings.root:", cfg.display()))
                && text(&out.stderr).contains("does not exist (is the backup volume mounted?)"),
            "{cmd:?}: {}",
            text(&out.stderr)
        );
    }
    assert!(!missing.exists(), "run must not create a missing root");
}

#[test]
fn default_config_path_falls_back_to_deltaic_conf() {
    let home = TestHome::new();
    std::fs::create_dir_all(home.join(".config")).unwrap();
    std::fs::write(
        home.join(".config/deltaic.conf"),
        "settings:\n  root: /x\n  snapshot-store: dir\ndump:\n  d: {command: [true]}\n",
    )
    .unwrap();
    let out = strata(&home).args(["config", "check"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("deltaic.conf: valid, 1 units"),
        "{}",
        text(&out.stdout)
    );
    std::fs::create_dir_all(home.join(".config/strata")).unwrap();
    std::fs::write(
        home.join(".config/strata/config.yaml"),
        "settings:\n  root: /x\n  snapshot-store: dir\n",
    )
    .unwrap();
    let out = strata(&home).args(["config", "check"]).output().unwrap();
    assert!(
        text(&out.stdout).contains("config.yaml: valid, 0 units"),
        "{}",
        text(&out.stdout)
    );
    std::fs::remove_dir_all(home.join(".config")).unwrap();
    let out = strata(&home).args(["config", "check"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("no config file: looked for"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn an_oversized_or_non_utf8_config_gets_a_one_line_error() {
    let home = TestHome::new();
    // 17 MiB (sparse): over the 16 MiB cap.
    let big = home.join("big.yaml");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(17 << 20)
        .unwrap();
    for path in [big.as_path(), Path::new("/dev/zero")] {
        let out = check(&home, path);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            err.contains(&format!(
                "{}: larger than 16 MiB; a config file is never that big",
                path.display()
            )),
            "{err}"
        );
    }
    // A Latin-1 byte on line 3.
    let latin1 = home.join("latin1.yaml");
    std::fs::write(&latin1, b"settings:\n  root: /srv/backup\n  # caf\xe9\n").unwrap();
    let out = check(&home, &latin1);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "{}:3: not UTF-8 (byte 0xE9 at column 8); save the file as UTF-8",
            latin1.display()
        )),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

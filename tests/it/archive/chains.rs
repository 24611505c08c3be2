//! Incremental chains (`diffs: N`) for real: five snapshots of a tree that
//! changes between them (files added, changed, deleted, renamed, a
//! directory replaced by a file and a file by a directory, links and
//! attributes), archived with `diffs: 3` on the local archiver (encrypted)
//! and on moto (plain), a SIGKILL during a diff's upload finished by
//! `archive run -r`; each snapshot's unit retrieved with its chain,
//! unpacked and compared with the snapshot attribute for attribute. On a
//! directory that keeps its inodes (as lvm-thin and btrfs snapshots do), a
//! diff holds only the change and the files it keeps come from the full;
//! a diff alone is refused. The null archiver's report equals what a local
//! run stores; `s3-final-storage-class` is applied when a set completes.

use super::fixtures::{World, entries, text};
use crate::support::treecmp::{CompareOptions, assert_trees_equal};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

const UNIT: &str = "dump/u";
const UNITS: &str = "  u:\n    command: [printf, 'hello\\n']\n    file: out\n";

fn write(p: &Path, content: &[u8]) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

fn random(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut v);
    v
}

/// The tree of unit `u` at snapshot `step` (0..5), made from the one before.
fn evolve(u: &Path, step: usize) {
    let t = u.join("t");
    match step {
        0 => {
            write(&t.join("keep.txt"), b"unchanged forever\n");
            std::fs::set_permissions(t.join("keep.txt"), std::fs::Permissions::from_mode(0o640))
                .unwrap();
            xattr::set(t.join("keep.txt"), "user.note", b"one").unwrap();
            write(&t.join("change.txt"), b"v0\n");
            write(&t.join("gone.txt"), b"to be deleted\n");
            write(&t.join("moveme.txt"), b"moving\n");
            write(&t.join("dir/a.txt"), b"a\n");
            write(&t.join("dir/sub/b.txt"), b"b\n");
            write(&t.join("becomes_file/inner.txt"), b"inner\n");
            write(&t.join("becomes_dir"), b"a file first\n");
            std::os::unix::fs::symlink("keep.txt", t.join("link")).unwrap();
            write(&t.join("hard1"), b"linked\n");
            std::fs::hard_link(t.join("hard1"), t.join("hard2")).unwrap();
            write(&t.join("big.bin"), &random(300 << 10));
        }
        1 => {
            write(&t.join("change.txt"), b"v1, longer\n");
            std::fs::remove_file(t.join("gone.txt")).unwrap();
            write(&t.join("added.txt"), b"added\n");
            std::fs::remove_file(t.join("hard2")).unwrap();
            xattr::set(t.join("keep.txt"), "user.note", b"two").unwrap();
        }
        2 => {
            std::fs::rename(t.join("moveme.txt"), t.join("moved.txt")).unwrap();
            std::fs::rename(t.join("dir"), t.join("dir_renamed")).unwrap();
            std::fs::set_permissions(t.join("keep.txt"), std::fs::Permissions::from_mode(0o600))
                .unwrap();
        }
        3 => {
            std::fs::remove_dir_all(t.join("becomes_file")).unwrap();
            write(&t.join("becomes_file"), b"now a file\n");
            std::fs::remove_file(t.join("becomes_dir")).unwrap();
            write(&t.join("becomes_dir/x.txt"), b"now a directory\n");
            std::fs::remove_file(t.join("link")).unwrap();
            std::os::unix::fs::symlink("dir_renamed/a.txt", t.join("link2")).unwrap();
        }
        4 => {
            write(&t.join("change.txt"), b"v4\n");
            std::fs::remove_dir_all(t.join("dir_renamed/sub")).unwrap();
            write(&t.join("new/deep/file.txt"), b"new\n");
        }
        _ => unreachable!(),
    }
}

/// The snapshot a `run` took, from its output.
fn taken(out: &str) -> String {
    out.lines()
        .find_map(|l| {
            l.strip_prefix("snapshot ")
                .and_then(|l| l.strip_suffix(" taken"))
        })
        .unwrap_or_else(|| panic!("no snapshot in: {out}"))
        .to_owned()
}

fn chain_profile(w: &World, s3: bool) -> String {
    match &w.moto {
        Some(m) if s3 => format!(
            // why: lzop, which tar decompresses itself, so unpack's own reading of the diffs goes through an lzop of its own
            "    chain:\n      archiver: s3\n      s3-bucket: strata\n      s3-prefix: chain/\n      s3-endpoint: {}\n      s3-access-key-id: testing\n      s3-secret-access-key: testing\n      compression: lzop\n      diffs: 3\n      keep-count: 1\n",
            m.endpoint
        ),
        _ => format!(
            "    chain:\n      archiver: local\n      local-path: {}/chain\n      compression: zstd\n      diffs: 3\n      keep-count: 1\n",
            w.store.display()
        ),
    }
}

fn chains(s3: bool, encrypt: bool) {
    let Some(w) = World::new(UNITS, encrypt, s3, |root| evolve(&root.join(UNIT), 0)) else {
        return;
    };
    let config = w.config("chain", encrypt, &chain_profile(&w, s3));
    let archive = |args: &[&str]| {
        let mut a = vec!["archive", "-p", "chain"];
        a.extend_from_slice(args);
        w.ok(&config, &a)
    };
    let mut snaps = vec![w.snapshot.clone()];
    let out = archive(&["run"]);
    assert!(out.contains(", full"), "{out}");
    for step in 1..5 {
        std::thread::sleep(std::time::Duration::from_millis(20));
        evolve(&w.root.join(UNIT), step);
        snaps.push(taken(&w.ok(&config, &["run"])));
        if step == 2 {
            // A SIGKILL while the diff is being uploaded; `-r` finishes the set.
            let out = w
                .cmd(&config)
                .args(["archive", "-p", "chain", "run"])
                .env(strata::fault::FAULT_ENV, "archive-upload")
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
            assert!(
                text(&out.stdout).contains("killed by signal 9"),
                "{}",
                text(&out.stdout)
            );
            let sets = archive(&["ls", "-s"]);
            assert!(
                sets.lines()
                    .any(|l| l.starts_with(&snaps[2]) && l.contains("incomplete")),
                "{sets}"
            );
            let out = archive(&["run", "-r"]);
            assert!(out.contains("diff 2 onto"), "{out}");
        } else {
            archive(&["run"]);
        }
        if step == 3 {
            // keep-count 1 keeps the newest set and the chain it stands on
            let plan = archive(&["prune", "-n"]);
            assert!(!plan.contains("would prune"), "{plan}");
            let cost = archive(&["cost"]);
            assert!(cost.contains("retrieves 4 archives"), "{cost}");
            let drill = archive(&["drill", UNIT]);
            assert!(
                drill.contains("is equal to the snapshot (4 archives unpacked)"),
                "{drill}"
            );
        }
    }
    let ls = archive(&["ls"]);
    let chain_of = |set: &str| -> String {
        ls.lines()
            .find(|l| l.starts_with(set))
            .and_then(|l| l.split_once(UNIT))
            .map_or_else(|| panic!("{set} not in {ls}"), |(_, c)| c.trim().to_owned())
    };
    let want = [
        "full".to_owned(),
        format!("diff 1 onto {}", snaps[0]),
        format!("diff 2 onto {}", snaps[1]),
        format!("diff 3 onto {}", snaps[2]),
        "full".to_owned(),
    ];
    for (s, w) in snaps.iter().zip(&want) {
        assert_eq!(&chain_of(s), w, "{ls}");
    }
    // Every snapshot restored from its chain, into one retrieve directory
    // (a base fetched for one snapshot serves the next).
    let ret = w.home.join("ret");
    for (i, snap) in snaps.iter().enumerate() {
        let got = archive(&["retrieve", snap, ret.to_str().unwrap(), UNIT]);
        let files: Vec<&str> = got.lines().collect();
        assert_eq!(files.len(), [1, 2, 3, 4, 1][i], "{snap}: {got}");
        let out = w.home.join(format!("out-{i}"));
        let mut args = vec!["unpack", out.to_str().unwrap()];
        // why: given newest first on purpose: unpack applies a chain oldest first
        args.extend(files.iter().rev());
        archive(&args);
        assert_trees_equal(
            &w.root.join(".snapshots").join(snap).join(UNIT),
            &out.join(UNIT),
            &CompareOptions::default(),
        );
    }
    // The newest set is a full: prune may now drop the whole older chain.
    let pruned = archive(&["prune"]);
    for s in &snaps[..4] {
        assert!(
            pruned.contains(&format!("pruning archive set {s}")),
            "{pruned}"
        );
    }
    let out = archive(&["drill", UNIT]);
    assert!(out.contains("(1 archive unpacked)"), "{out}");
    let resync = archive(&["resync"]);
    assert!(!resync.contains("removed"), "nothing is orphaned: {resync}");
}

#[test]
fn chains_on_the_local_archiver_restore_every_snapshot_of_a_changing_tree() {
    chains(false, true);
}

#[test]
fn chains_on_s3_restore_every_snapshot_of_a_changing_tree() {
    chains(true, false);
}

/// `cp -a`, for keeping a state of the live tree to compare with.
fn copy_tree(w: &World, from: &Path, to: &Path) {
    let out = w
        .home
        .command("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn on_a_tree_that_keeps_its_inodes_a_diff_holds_only_the_change() {
    let Some(w) = World::new(UNITS, false, false, |_| {}) else {
        return;
    };
    let config = w.config("live", false, &chain_profile(&w, false));
    // why: `archive unit` reads any directory as the mounted snapshot; this
    // one changes in place, as the origin of an lvm-thin or btrfs snapshot does
    let live = w.home.join("live");
    let u = live.join(UNIT);
    write(&u.join("big.bin"), &random(2 << 20));
    write(&u.join("small.txt"), b"small\n");
    write(&u.join("gone.txt"), b"gone soon\n");
    write(&u.join("d/x.txt"), b"x\n");
    let store = w.store.join("chain");
    let sets = ["20300101-1", "20300102-1", "20300103-1"];
    let mut sizes = Vec::new();
    let kept = w.home.join("kept");
    std::fs::create_dir(&kept).unwrap();
    for (i, set) in sets.iter().enumerate() {
        match i {
            0 => {}
            1 => {
                write(&u.join("small.txt"), b"small, changed\n");
                std::fs::remove_file(u.join("gone.txt")).unwrap();
                write(&u.join("new.txt"), b"new\n");
            }
            _ => {
                std::fs::rename(u.join("new.txt"), u.join("d/renamed.txt")).unwrap();
                write(&u.join("e/f.txt"), b"f\n");
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        let out = w.ok(
            &config,
            &[
                "archive",
                "-p",
                "chain",
                "unit",
                set,
                live.to_str().unwrap(),
                UNIT,
            ],
        );
        assert!(
            out.contains(if i == 0 { "full" } else { "diff" }),
            "{set}: {out}"
        );
        // what `archive run` does after the last unit
        std::fs::write(store.join(set).join("COMPLETE"), "x").unwrap();
        copy_tree(&w, &live, &kept.join(set));
        let meta: serde_json::Value = serde_json::from_slice(
            &std::fs::read(store.join(set).join("dump%2Fu.meta.json")).unwrap(),
        )
        .unwrap();
        sizes.push(meta["size"].as_str().unwrap().parse::<u64>().unwrap());
    }
    assert!(sizes[0] > 2 << 20, "the full holds the big file: {sizes:?}");
    assert!(
        sizes[1] < 64 << 10 && sizes[2] < 64 << 10,
        "the diffs hold only the change: {sizes:?}"
    );
    let ret = w.home.join("ret");
    let got = w.ok(
        &config,
        &[
            "archive",
            "-p",
            "chain",
            "retrieve",
            sets[2],
            ret.to_str().unwrap(),
            UNIT,
        ],
    );
    let files: Vec<&str> = got.lines().collect();
    assert_eq!(files.len(), 3, "{got}");
    // A diff alone keeps files from archives that are not there: refused,
    // before anything is written.
    let alone = w.home.join("alone");
    let out = w.strata(
        &config,
        &[
            "archive",
            "-p",
            "chain",
            "unpack",
            alone.to_str().unwrap(),
            files[2],
        ],
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("earlier archive of its chain"),
        "{}",
        text(&out.stderr)
    );
    assert!(entries(&alone).is_empty(), "{:?}", entries(&alone));
    // The whole chain restores the last state: big.bin from the full.
    let out = w.home.join("out");
    let mut args = vec!["archive", "-p", "chain", "unpack", out.to_str().unwrap()];
    args.extend(&files);
    w.ok(&config, &args);
    assert_trees_equal(
        &kept.join(sets[2]).join(UNIT),
        &out.join(UNIT),
        &CompareOptions::default(),
    );
}

#[test]
fn diffs_on_an_archiver_without_chains_are_refused() {
    let Some(w) = World::new(UNITS, false, false, |_| {}) else {
        return;
    };
    let config = w.config(
        "plain",
        false,
        "    dry:\n      archiver: null\n      diffs: 2\n",
    );
    let out = w.strata(&config, &["archive", "-p", "dry", "run"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("the null archiver cannot store incremental chains"),
        "{}",
        text(&out.stderr)
    );
}

/// `(unit, bytes, sha256)` of each line of a dry run's report.
fn dry_report(out: &str) -> Vec<(String, u64, String)> {
    out.lines()
        .filter_map(|l| {
            let (unit, rest) = l.trim().split_once(": ")?;
            let bytes = rest.split_once(" bytes")?.0.parse().ok()?;
            let sha = rest.split_once("sha256 ")?.1.split(',').next()?.to_owned();
            Some((unit.to_owned(), bytes, sha))
        })
        .collect()
}

#[test]
fn the_null_archivers_report_is_what_a_local_run_then_stores() {
    let units = format!("{UNITS}  v:\n    command: [printf, 'other\\n']\n");
    let Some(w) = World::new(&units, false, false, |root| {
        evolve(&root.join(UNIT), 0);
    }) else {
        return;
    };
    let config = w.config(
        "plain",
        false,
        "    dry:\n      archiver: null\n      compression: gzip\n",
    );
    let out = w.ok(&config, &["archive", "-p", "dry", "run"]);
    assert!(out.contains("stored nothing"), "{out}");
    assert!(out.contains("total: 2 archives"), "{out}");
    let dry = dry_report(&out);
    assert_eq!(dry.len(), 2, "{out}");
    // nothing stored, so a second dry run packs everything again
    assert!(
        w.ok(&config, &["archive", "-p", "dry", "ls", "-s"])
            .trim()
            .is_empty()
    );
    w.ok(&config, &["archive", "-p", "local-gzip", "run"]);
    let ls = w
        .cmd(&config)
        .args(["--json", "archive", "-p", "local-gzip", "ls"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&ls.stdout).unwrap();
    let stored = &v[&w.snapshot];
    for (unit, bytes, sha) in dry {
        assert_eq!(stored[&unit]["size"], bytes.to_string(), "{unit}: {v}");
        assert_eq!(stored[&unit]["sha256"], sha, "{unit}: {v}");
    }
}

#[test]
fn the_final_storage_class_is_set_when_the_set_completes() {
    let units = format!(
        "{UNITS}  big:\n    command: [head, -c, '{}', /dev/urandom]\n    file: data\n",
        7 << 20
    );
    let Some(w) = World::new(&units, false, true, |_| {}) else {
        return;
    };
    let endpoint = w.moto.as_ref().unwrap().endpoint.clone();
    let profile = format!(
        "    cold:\n      archiver: s3\n      s3-bucket: strata\n      s3-prefix: cold/\n      s3-endpoint: {endpoint}\n      s3-access-key-id: testing\n      s3-secret-access-key: testing\n      s3-final-storage-class: GLACIER\n      s3-restore-tier: expedited\n      compression: none\n"
    );
    let config = w.config("plain", false, &profile);
    let mount = w.root.join(".snapshots").join(&w.snapshot);
    // One unit uploaded by hand: the set is incomplete, its archive in the upload class.
    w.ok(
        &config,
        &[
            "archive",
            "-p",
            "cold",
            "unit",
            &w.snapshot,
            mount.to_str().unwrap(),
            UNIT,
        ],
    );
    let cost = w.ok(&config, &["archive", "-p", "cold", "cost"]);
    assert!(
        cost.contains("STANDARD") && !cost.contains("GLACIER"),
        "{cost}"
    );
    // `-r` uploads the other unit and completes the set; the 7 MiB archive
    // is moved in parts (a copy limit of 5 MiB instead of 5 GiB).
    let out = w
        .cmd(&config)
        .env("STRATA_S3_COPY_LIMIT", "5242880")
        .args(["archive", "-p", "cold", "run", "-r"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let cost = w.ok(&config, &["archive", "-p", "cold", "cost"]);
    assert!(
        cost.contains("GLACIER") && cost.contains("     2 archives"),
        "{cost}"
    );
    assert!(!cost.contains("STANDARD"), "{cost}");
    let sets = w.ok(&config, &["archive", "-p", "cold", "ls", "-s"]);
    assert!(
        sets.contains("complete") && sets.contains("protected"),
        "{sets}"
    );
    // The copy kept the bytes and the metadata: retrieve checks both.
    let ret = w.home.join("ret");
    let got = w
        .cmd(&config)
        .env("STRATA_S3_RESTORE_POLL_SECS", "1")
        .args([
            "archive",
            "-p",
            "cold",
            "retrieve",
            &w.snapshot,
            ret.to_str().unwrap(),
            "dump/big",
        ])
        .output()
        .unwrap();
    assert!(got.status.success(), "{}", text(&got.stderr));
    let file = PathBuf::from(text(&got.stdout).trim());
    let out = w.home.join("out");
    w.ok(
        &config,
        &[
            "archive",
            "-p",
            "cold",
            "unpack",
            out.to_str().unwrap(),
            file.to_str().unwrap(),
        ],
    );
    assert_eq!(
        std::fs::read(out.join("dump/big/data")).unwrap(),
        std::fs::read(mount.join("dump/big/data")).unwrap()
    );
}

#[test]
fn archive_prune_follows_the_hanoi_rotation_and_keep_bytes() {
    let Some(w) = World::new(UNITS, false, false, |_| {}) else {
        return;
    };
    let profiles = format!(
        "    hanoi:\n      archiver: local\n      local-path: {s}/hanoi\n      keep-policy: hanoi\n      keep-discs: 3\n      keep-oldest: true\n    small:\n      archiver: local\n      local-path: {s}/hanoi\n      keep-count: 9\n      keep-bytes: 25\n",
        s = w.store.display()
    );
    let config = w.config("plain", false, &profiles);
    // One complete set a day for 12 days from 2026-01-28 (day number 20481)
    let store = w.store.join("hanoi");
    let start = chrono::NaiveDate::from_ymd_opt(2026, 1, 28).unwrap();
    let names: Vec<String> = (0..12u64)
        .map(|k| {
            (start + chrono::Days::new(k))
                .format("%Y%m%d-1")
                .to_string()
        })
        .collect();
    for n in &names {
        write(&store.join(n).join("dump%2Fu.archive"), b"0123456789");
        write(
            &store.join(n).join("dump%2Fu.meta.json"),
            format!(
                "{{\"compression\":\"none\",\"encryption\":\"none\",\"sha256\":\"{}\",\"size\":\"10\"}}",
                "0".repeat(64)
            )
            .as_bytes(),
        );
        write(&store.join(n).join("COMPLETE"), b"x");
    }
    let out = w.ok(&config, &["archive", "-p", "hanoi", "prune", "-n"]);
    let would: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|n| out.contains(&format!("would prune archive set {n}")))
        .collect();
    // 3 discs: the newest of discs 0, 1 and 2, and (keep-oldest) every set of disc 2;
    // days 20481..20492 have discs 0 1 0 2 0 1 0 2 0 1 0 2
    let kept: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|n| !would.contains(n))
        .collect();
    assert_eq!(
        kept,
        [
            "20260131-1",
            "20260204-1",
            "20260206-1",
            "20260207-1",
            "20260208-1"
        ],
        "{out}"
    );
    // keep-bytes 25 over sets of 10 bytes: the two newest stay
    w.ok(&config, &["archive", "-p", "small", "prune"]);
    let left = w.ok(&config, &["archive", "-p", "small", "ls", "-s"]);
    assert_eq!(left.lines().count(), 2, "{left}");
    assert!(
        left.contains(&names[11]) && left.contains(&names[10]),
        "{left}"
    );
}

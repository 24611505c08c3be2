//! `archive`: pack -> upload -> retrieve -> unpack round trips for every
//! compression, encrypted and plain, on the local, S3 (moto) and aws (the
//! fake Glacier + `SimpleDB`) archivers;
//! hostile archives; faults (SIGKILL mid-upload, a full spool, the S3 server
//! stopped mid-retrieve); the shared retrieval rate limit; drill; prune;
//! and the s3 archiver against radosgw.

mod aws;
mod chains;
mod escape;
mod faults;
mod fixtures;
mod googledrive;
mod hostile;

use crate::support::env;
use crate::support::tree_builder::{Feature, build_hostile_tree};
use crate::support::treecmp::{CompareOptions, HoleCheck, assert_trees_equal};
use fixtures::{COMPRESSIONS, World, text};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

const UNIT: &str = "dump/u";
pub(super) const UNITS: &str = "  u:\n    command: [printf, 'hello\\n']\n    file: out\n";

/// A world whose unit `dump/u` is the hostile tree (xattrs, ACLs, hard
/// links, sparse files, devices, odd names) plus the dump's own file.
fn tree_world(s3: bool, extra_random: usize) -> Option<(World, bool)> {
    let mut sparse_ok = true;
    let w = World::new(UNITS, true, s3, |root| {
        let m = build_hostile_tree(&root.join(UNIT), 20);
        sparse_ok = m.built(Feature::Holes);
        eprintln!("{}", m.skipped_summary());
        if extra_random > 0 {
            let mut buf = vec![0u8; extra_random];
            rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut buf);
            std::fs::write(root.join(UNIT).join("random.bin"), buf).unwrap();
        }
    })?;
    Some((w, sparse_ok))
}

/// Retrieve and unpack `profile`'s archive of UNIT and compare it with the snapshot.
fn check_round_trip(w: &World, config: &Path, profile: &str, tag: &str, sparse_ok: bool) {
    let ret = w.home.join(format!("ret-{tag}-{profile}"));
    let out = w.home.join(format!("out-{tag}-{profile}"));
    let listed = w.ok(config, &["archive", "-p", profile, "ls"]);
    assert!(listed.contains(UNIT), "{profile}: {listed}");
    let got = w.ok(
        config,
        &[
            "archive",
            "-p",
            profile,
            "retrieve",
            &w.snapshot,
            ret.to_str().unwrap(),
            UNIT,
        ],
    );
    let file = std::path::PathBuf::from(got.trim());
    assert_eq!(
        file.file_name().unwrap().to_string_lossy(),
        format!("{}:dump-u", w.snapshot)
    );
    let enc = xattr::get(&file, "user.archive.encryption")
        .unwrap()
        .unwrap();
    assert_eq!(
        enc,
        if tag == "enc" {
            &b"gpg"[..]
        } else {
            &b"none"[..]
        }
    );
    w.ok(
        config,
        &[
            "archive",
            "-p",
            profile,
            "unpack",
            // why: the hostile tree has device nodes and setuid files, which unpack creates only when asked
            "--devices",
            "--setuid",
            out.to_str().unwrap(),
            file.to_str().unwrap(),
        ],
    );
    let opts = CompareOptions {
        holes: HoleCheck::AtLeastAsSparse,
        ..CompareOptions::default()
    };
    assert_trees_equal(&w.snapshot_unit(UNIT), &out.join(UNIT), &opts);
    if sparse_ok {
        // why: the holes must survive: a 64 MiB hole restored as data would take 64 MiB of blocks
        let sparse = walkdir::WalkDir::new(out.join(UNIT))
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_file())
            .filter_map(|e| e.metadata().ok())
            .filter(|m| m.size() >= 16 << 20)
            .count();
        assert!(sparse >= 2, "{profile}: the sparse files are missing");
        for e in walkdir::WalkDir::new(out.join(UNIT))
            .into_iter()
            .filter_map(Result::ok)
        {
            let m = e.metadata().unwrap();
            if e.file_type().is_file() && m.size() >= 16 << 20 {
                assert!(
                    m.blocks() * 512 < 1 << 20,
                    "{}: holes lost ({} blocks)",
                    e.path().display(),
                    m.blocks()
                );
            }
        }
    }
    std::fs::remove_dir_all(&out).unwrap();
}

fn matrix(archiver: &str) {
    let Some((mut w, sparse_ok)) = tree_world(archiver == "s3", 0) else {
        return;
    };
    if archiver == "aws" && !w.start_aws() {
        return;
    }
    for (tag, encrypt) in [("enc", true), ("plain", false)] {
        let config = w.config(tag, encrypt, "");
        for c in COMPRESSIONS {
            let profile = format!("{archiver}-{c}");
            let out = w.ok(&config, &["archive", "-p", &profile, "run"]);
            assert!(out.contains("complete"), "{profile}: {out}");
            check_round_trip(&w, &config, &profile, tag, sparse_ok);
        }
        let sets = w.ok(
            &config,
            &["archive", "-p", &format!("{archiver}-lz4"), "ls", "-s"],
        );
        assert!(
            sets.contains(&w.snapshot) && sets.contains("  complete"),
            "{sets}"
        );
        // Archiving the same snapshot again finds every unit in the set (on
        // S3 from one listing) and uploads nothing.
        let profile = format!("{archiver}-lz4");
        let again = w.ok(&config, &["archive", "-p", &profile, "run", &w.snapshot]);
        assert!(again.contains("complete: 0 archived now, "), "{again}");
        assert!(!again.contains(", 0 already in"), "{again}");
        let drilled = w.ok(&config, &["archive", "-p", &profile, "drill", UNIT]);
        assert!(drilled.contains("is equal to the snapshot"), "{drilled}");
    }
    // Nothing is left in the spool.
    let left: Vec<_> = fixtures::entries(&w.spool)
        .into_iter()
        .filter(|p| {
            p.to_string_lossy().starts_with("archive-")
                || p.to_string_lossy().starts_with("unpack-")
        })
        .collect();
    assert!(left.is_empty(), "spool leftovers: {left:?}");
}

#[test]
fn round_trips_every_compression_encrypted_and_plain_on_the_local_archiver() {
    matrix("local");
}

#[test]
fn round_trips_every_compression_encrypted_and_plain_on_s3() {
    matrix("s3");
}

#[test]
fn round_trips_every_compression_encrypted_and_plain_on_aws() {
    matrix("aws");
}

#[test]
fn s3_cold_storage_is_restored_before_download_protected_and_costed() {
    // why: 7 MiB of random data makes the archive a multipart upload at a 5 MiB part size
    let Some((w, _)) = tree_world(true, 7 << 20) else {
        return;
    };
    let endpoint = w.moto.as_ref().unwrap().endpoint.clone();
    let profile = format!(
        "    cold:\n      archiver: s3\n      s3-bucket: strata\n      s3-prefix: cold/\n      s3-endpoint: {endpoint}\n      s3-access-key-id: testing\n      s3-secret-access-key: testing\n      s3-storage-class: GLACIER\n      s3-restore-tier: expedited\n      compression: zstd\n      s3-prices:\n        GLACIER:\n          storage: 0.004\n          retrieval: 0.01\n"
    );
    let config = w.config("enc", true, &profile);
    // why: a small part size makes this archive a multipart upload
    let out = w
        .cmd(&config)
        .env("STRATA_S3_PART_SIZE", "5242880")
        .args(["archive", "-p", "cold", "run"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let sets = w.ok(&config, &["archive", "-p", "cold", "ls", "-s"]);
    assert!(
        sets.contains("protected"),
        "a fresh GLACIER set is protected: {sets}"
    );
    let cost = w.ok(&config, &["archive", "-p", "cold", "cost"]);
    assert!(cost.contains("GLACIER"), "{cost}");
    // Prune never removes a protected set, even with a newer complete one absent.
    w.ok(&config, &["archive", "-p", "cold", "prune"]);
    assert!(
        w.ok(&config, &["archive", "-p", "cold", "ls", "-s"])
            .contains(&w.snapshot)
    );
    let ret = w.home.join("ret-cold");
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
            UNIT,
        ])
        .output()
        .unwrap();
    assert!(got.status.success(), "{}", text(&got.stderr));
    let file = text(&got.stdout).trim().to_owned();
    let out = w.home.join("out-cold");
    w.ok(
        &config,
        &[
            "archive",
            "-p",
            "cold",
            "unpack",
            "--devices",
            "--setuid",
            out.to_str().unwrap(),
            &file,
        ],
    );
    assert_trees_equal(
        &w.snapshot_unit(UNIT),
        &out.join(UNIT),
        &CompareOptions {
            holes: HoleCheck::AtLeastAsSparse,
            ..CompareOptions::default()
        },
    );
}

#[test]
fn drill_reports_equal_and_prune_keeps_keep_count_sets() {
    let Some((w, _)) = tree_world(false, 0) else {
        return;
    };
    let config = w.config("enc", true, "");
    w.ok(&config, &["archive", "-p", "local-zstd", "run"]);
    let out = w.ok(&config, &["archive", "-p", "local-zstd", "drill"]);
    assert!(out.contains("is equal to the snapshot"), "{out}");
    assert!(
        fixtures::entries(&w.spool)
            .iter()
            .all(|p| !p.to_string_lossy().starts_with("drill-")),
        "drill cleans up"
    );
    // A second, newer set: with keep-count 1 prune removes the older one.
    let store = w.store.join("enc/zstd");
    std::fs::create_dir_all(store.join("29991231-1")).unwrap();
    std::fs::write(store.join("29991231-1/COMPLETE"), "x").unwrap();
    let pruned = w.ok(&config, &["archive", "-p", "local-zstd", "prune"]);
    assert!(
        pruned.contains(&format!("pruning archive set {}", w.snapshot)),
        "{pruned}"
    );
    assert!(!store.join(&w.snapshot).exists());
    // `archive unit` for a unit that is not in the snapshot fails cleanly.
    let out = w.strata(
        &config,
        &["archive", "-p", "local-zstd", "run", &w.snapshot],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// The s3 archiver against radosgw, a real S3 implementation: an encrypted
/// multipart upload, listing with metadata, a ranged download, unpack.
/// (moto serves the matrix and the cold-storage paths, which RGW lacks.)
#[test]
fn rgw_round_trip_with_a_multipart_upload() {
    let ceph = match crate::support::ceph::Ceph::shared() {
        Ok(c) => c,
        Err(e) => {
            env::require(&format!("a throwaway Ceph cluster ({e})"), false);
            return;
        }
    };
    let Some((w, _)) = tree_world(false, 7 << 20) else {
        return;
    };
    let (ak, sk) = ceph.rgw_admin_keys();
    let endpoint = ceph.rgw_endpoint().to_owned();
    let bucket = format!("strata-archive-{}", std::process::id());
    // why: boto3 (in the moto venv) signs the request; RGW accepts no anonymous bucket creation
    let Some(python) = fixtures::moto_server().map(|m| m.with_file_name("python3")) else {
        env::require(
            "the moto venv's python with boto3 (scripts/install-test-deps.sh)",
            false,
        );
        return;
    };
    let out = w
        .home
        .command(python)
        .arg("-c")
        .arg(format!(
            "import boto3; boto3.client('s3', endpoint_url='{endpoint}', aws_access_key_id='{ak}', \
             aws_secret_access_key='{sk}', region_name='us-east-1').create_bucket(Bucket='{bucket}')"
        ))
        .output()
        .unwrap();
    assert!(out.status.success(), "create bucket: {}", text(&out.stderr));
    let profile = format!(
        "    rgw:\n      archiver: s3\n      s3-bucket: {bucket}\n      s3-endpoint: {endpoint}\n      s3-access-key-id: {ak}\n      s3-secret-access-key: {sk}\n      compression: lz4\n"
    );
    let config = w.config("enc", true, &profile);
    let out = w
        .cmd(&config)
        .env("STRATA_S3_PART_SIZE", "5242880")
        .args(["archive", "-p", "rgw", "run"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    check_round_trip(&w, &config, "rgw", "enc", true);
}

#[test]
fn snapshot_prune_keeps_a_snapshot_that_an_incomplete_archive_set_reads() {
    let Some(w) = World::new(UNITS, false, false, |_| {}) else {
        return;
    };
    let config = w.config("plain", false, "");
    let first = w.snapshot.clone();
    w.ok(&config, &["run"]); // a second snapshot the same day: the policy drops the first later on
    // An incomplete set of the first snapshot, as a killed `archive run` leaves it.
    std::fs::create_dir_all(w.store.join("plain/zstd").join(&first)).unwrap();
    let as_of = (chrono::Local::now() + chrono::Duration::days(60))
        .format("%Y-%m-%d")
        .to_string();
    let out = w.ok(&config, &["prune", "-n", "--as-of", &as_of]);
    assert!(
        out.contains(&format!(
            "kept {first}: read by an incomplete archive set of profile local-zstd"
        )),
        "{out}"
    );
    // Once the set is complete the snapshot may go.
    std::fs::write(
        w.store.join("plain/zstd").join(&first).join("COMPLETE"),
        "x",
    )
    .unwrap();
    let out = w.ok(&config, &["prune", "-n", "--as-of", &as_of]);
    assert!(out.contains(&format!("would remove {first}")), "{out}");
}

#[test]
fn a_unit_whose_name_is_too_long_for_a_tar_label_round_trips_bound_to_its_unit() {
    // why: "<set> <unit>" would be 107 bytes, past GNU tar's 99-byte volume label
    let name = "n".repeat(95);
    let unit = format!("dump/{name}");
    let units = format!("  {name}:\n    command: [printf, 'long\\n']\n");
    let Some(w) = World::new(&units, false, false, |_| {}) else {
        return;
    };
    let config = w.config("plain", false, "");
    w.ok(&config, &["archive", "-p", "local-gzip", "run"]);
    let ret = w.home.join("ret");
    let got = w.ok(
        &config,
        &[
            "archive",
            "-p",
            "local-gzip",
            "retrieve",
            &w.snapshot,
            ret.to_str().unwrap(),
            &unit,
        ],
    );
    let out = w.home.join("out");
    w.ok(
        &config,
        &[
            "archive",
            "-p",
            "local-gzip",
            "unpack",
            out.to_str().unwrap(),
            got.trim(),
        ],
    );
    assert_eq!(
        std::fs::read(out.join(&unit).join(&name)).unwrap(),
        b"long\n"
    );
}

#[test]
fn units_whose_retrieved_names_would_clash_are_retrieved_and_unpacked_side_by_side() {
    // why: `dump/x/y` and `dump/x-y` both flatten to Deltaic's `<set>:dump-x-y`
    let units = "  a:\n    command: [printf, 'a\\n']\n";
    let Some(w) = World::new(units, false, false, |_| {}) else {
        return;
    };
    let config = w.config("plain", false, "");
    let mount = w.home.join("tree");
    for (unit, data) in [("dump/x/y", "slash\n"), ("dump/x-y", "dash\n")] {
        std::fs::create_dir_all(mount.join(unit)).unwrap();
        std::fs::write(mount.join(unit).join("f"), data).unwrap();
        w.ok(
            &config,
            &[
                "archive",
                "-p",
                "local-gzip",
                "unit",
                &w.snapshot,
                mount.to_str().unwrap(),
                unit,
            ],
        );
    }
    let ret = w.home.join("ret");
    let retrieve = || {
        w.ok(
            &config,
            &[
                "archive",
                "-p",
                "local-gzip",
                "retrieve",
                &w.snapshot,
                ret.to_str().unwrap(),
                "dump/x/y",
                "dump/x-y",
            ],
        )
    };
    let got = retrieve();
    let files: Vec<&str> = got.lines().collect();
    assert_eq!(files.len(), 2, "{got}");
    assert_ne!(files[0], files[1]);
    let out = w.home.join("out");
    let mut args = vec![
        "archive",
        "-p",
        "local-gzip",
        "unpack",
        out.to_str().unwrap(),
    ];
    args.extend(&files);
    w.ok(&config, &args);
    assert_eq!(std::fs::read(out.join("dump/x/y/f")).unwrap(), b"slash\n");
    assert_eq!(std::fs::read(out.join("dump/x-y/f")).unwrap(), b"dash\n");
    // run again: both are already there, and nothing is fetched twice
    assert_eq!(retrieve(), got);
}

//! The aws archiver against the fake Glacier + `SimpleDB`
//! (`tests/support/aws/fake_aws.py`): a catalogue Deltaic wrote (by
//! `deltaic_catalogue.py`, through botocore's own clients) listed,
//! retrieved, unpacked and pruned; strata's items shaped as Deltaic's;
//! SIGKILL mid-upload and mid-retrieval; two retrieves sharing the budget;
//! what the fake refuses; the same calls on the fake and on moto; and the
//! migration of a Deltaic set to S3 (moto).

use super::fixtures::{self, World, text};
use crate::support::env;
use crate::support::fake_aws::{ACCESS_KEY, FakeAws, SECRET, support_dir};
use crate::support::tree_builder::build_hostile_tree;
use crate::support::treecmp::{CompareOptions, HoleCheck, assert_trees_equal};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use strata::archive::archivers::aws::AwsError;
use strata::archive::archivers::aws::glacier::{JobStatus, Vault};
use strata::archive::archivers::aws::sdb::{Expected, SdbClient, SimpleDb};

const MIB: u64 = 1 << 20;

fn random_unit(name: &str, bytes: u64) -> String {
    format!("  {name}:\n    command: [head, -c, '{bytes}', /dev/urandom]\n    file: data\n")
}

/// The moto venv's python, which has boto3 (`scripts/install-test-deps.sh`).
fn venv_python() -> Option<PathBuf> {
    let p = fixtures::moto_server().map(|m| m.with_file_name("python3"));
    env::require(
        "the test venv's python with boto3 (scripts/install-test-deps.sh)",
        p.is_some(),
    )
    .then_some(p)
    .flatten()
}

/// One archive Deltaic writes: set, unit, compression, encrypted, creation time.
struct DeltaicArchive<'a>(&'a str, &'a str, &'a str, bool, String);

/// What Deltaic wrote: archives, the sets it completed, its `/bandwidth` item.
struct Deltaic<'a> {
    archives: Vec<DeltaicArchive<'a>>,
    complete: &'a [&'a str],
    bandwidth: serde_json::Value,
}

/// Write `d` into `namespace` on `fake` as Deltaic does (packing from
/// `root`); returns per archive {set, unit, sha256, size, aid}.
fn deltaic_write(
    w: &World,
    fake: &FakeAws,
    python: &Path,
    namespace: &str,
    root: &Path,
    d: &Deltaic,
) -> Vec<serde_json::Value> {
    let gpg = w
        .gpg
        .as_ref()
        .map(|g| json!({"home": g.dir, "signer": g.signer, "recipient": g.recipient}));
    let manifest = json!({
        "endpoint": fake.endpoint, "access_key": ACCESS_KEY, "secret": SECRET,
        "region": "us-east-1", "namespace": namespace, "part_size": MIB,
        "root": root, "gpg": gpg,
        "archives": d.archives.iter().map(|a| json!({
            "set": a.0, "unit": a.1, "compression": a.2, "encrypt": a.3, "created": a.4,
        })).collect::<Vec<_>>(),
        "complete": d.complete, "bandwidth": d.bandwidth,
    });
    let path = w.home.join(format!("deltaic-{namespace}.json"));
    std::fs::write(&path, manifest.to_string()).unwrap();
    let out = w
        .home
        .command(python)
        .arg(support_dir().join("deltaic_catalogue.py"))
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "deltaic_catalogue.py: {}",
        text(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn iso(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, false)
}

fn compare(a: &Path, b: &Path) {
    assert_trees_equal(
        a,
        b,
        &CompareOptions {
            holes: HoleCheck::AtLeastAsSparse,
            ..CompareOptions::default()
        },
    );
}

/// `archive -p PROFILE ls -s` as set -> (count, complete, protected).
fn set_lines(listing: &str) -> BTreeMap<String, (u64, bool, bool)> {
    listing
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (
                f[0].to_owned(),
                (
                    f[1].parse().unwrap(),
                    l.contains("  complete"),
                    l.contains("protected"),
                ),
            )
        })
        .collect()
}

#[test]
fn a_deltaic_written_catalogue_is_listed_retrieved_unpacked_costed_and_pruned() {
    let Some(mut w) = World::new(super::UNITS, true, false, |_| {}) else {
        return;
    };
    let Some(python) = venv_python() else { return };
    if !w.start_aws() {
        return;
    }
    let fake = w.aws.as_ref().unwrap();
    // why: 40 items over pages of 4: listing must follow NextToken
    fake.config(&json!({"page_size": 4}));
    let droot = w.home.join("deltaic-root");
    let m = build_hostile_tree(&droot.join("rsync/hosta"), 10);
    eprintln!("{}", m.skipped_summary());
    std::fs::create_dir_all(droot.join("rsync/hostb/etc")).unwrap();
    std::fs::write(droot.join("rsync/hostb/etc/motd"), "hello from deltaic\n").unwrap();
    for i in 0..30 {
        std::fs::create_dir_all(droot.join(format!("rsync/t{i:02}"))).unwrap();
        std::fs::write(droot.join(format!("rsync/t{i:02}/f")), format!("{i}\n")).unwrap();
    }
    let now = chrono::Utc::now();
    let old = "2024-01-01T05:06:07.123456+00:00".to_owned();
    let recent = iso(now - chrono::Duration::days(89));
    let mut archives: Vec<DeltaicArchive> = Vec::new();
    let tiny: Vec<String> = (0..30).map(|i| format!("rsync/t{i:02}")).collect();
    for u in &tiny {
        archives.push(DeltaicArchive("20231201-1", u, "gzip", false, old.clone()));
    }
    archives.extend([
        DeltaicArchive("20240101-1", "rsync/hosta", "gzip", false, old.clone()),
        DeltaicArchive("20240101-1", "rsync/hostb", "lzop", true, old.clone()),
        DeltaicArchive("20240115-1", "rsync/hostb", "none", false, recent),
        DeltaicArchive("20240201-1", "rsync/hostb", "gzip", false, old.clone()),
        DeltaicArchive("20240301-1", "rsync/hosta", "none", true, iso(now)),
    ]);
    let month = now.format("%Y-%m-01").to_string();
    let written = deltaic_write(
        &w,
        fake,
        &python,
        "deltaic",
        &droot,
        &Deltaic {
            archives,
            complete: &["20231201-1", "20240101-1", "20240115-1", "20240201-1"],
            bandwidth: json!({"serial": "41", "current-month": month, "max-bandwidth-month": "3145728"}),
        },
    );
    assert_eq!(written.len(), 35);
    let profile = fake.profile("deltaic", "deltaic", "zstd");
    let plain = w.config("plain", false, &profile);
    let enc = w.config("enc", true, &profile);

    // Listed: counts, completion and protection as Deltaic computes them.
    let sets = set_lines(&w.ok(&plain, &["archive", "-p", "deltaic", "ls", "-s"]));
    let want: BTreeMap<String, (u64, bool, bool)> = [
        ("20231201-1", (30, true, false)),
        ("20240101-1", (2, true, false)),
        ("20240115-1", (1, true, true)),
        ("20240201-1", (1, true, false)),
        ("20240301-1", (1, false, true)),
    ]
    .into_iter()
    .map(|(s, v)| (s.to_owned(), v))
    .collect();
    assert_eq!(sets, want);
    let listed = w.ok(&plain, &["archive", "-p", "deltaic", "ls", "20240101-1"]);
    assert!(
        listed.contains("rsync/hosta") && listed.contains("rsync/hostb"),
        "{listed}"
    );
    assert!(
        fake.calls("Select") >= 10,
        "listing paged through NextToken"
    );

    // Retrieved (byte ranges of archives uploaded in parts) and unpacked unchanged.
    let ret = w.home.join("ret");
    let got = w.ok(
        &plain,
        &[
            "archive",
            "-p",
            "deltaic",
            "retrieve",
            "20240101-1",
            ret.to_str().unwrap(),
            "rsync/hosta",
            "rsync/hostb",
        ],
    );
    assert_eq!(got.lines().count(), 2, "{got}");
    let got_new = w.ok(
        &enc,
        &[
            "archive",
            "-p",
            "deltaic",
            "retrieve",
            "20240301-1",
            ret.to_str().unwrap(),
            "rsync/hosta",
        ],
    );
    let out = w.home.join("out-plain");
    w.ok(
        &plain,
        &[
            "archive",
            "unpack",
            "--devices",
            "--setuid",
            out.to_str().unwrap(),
            ret.join("20240101-1:rsync-hosta").to_str().unwrap(),
        ],
    );
    compare(&droot.join("rsync/hosta"), &out.join("rsync/hosta"));
    let out_enc = w.home.join("out-enc");
    w.ok(
        &enc,
        &[
            "archive",
            "unpack",
            out_enc.to_str().unwrap(),
            ret.join("20240101-1:rsync-hostb").to_str().unwrap(),
        ],
    );
    compare(&droot.join("rsync/hostb"), &out_enc.join("rsync/hostb"));
    let out_new = w.home.join("out-new");
    w.ok(
        &enc,
        &[
            "archive",
            "unpack",
            "--devices",
            "--setuid",
            out_new.to_str().unwrap(),
            got_new.trim(),
        ],
    );
    compare(&droot.join("rsync/hosta"), &out_new.join("rsync/hosta"));

    // Costed from the sizes and Deltaic's /bandwidth item.
    let cost = w.ok(&plain, &["archive", "-p", "deltaic", "cost"]);
    assert!(
        cost.contains("maximum retrieval rate this month has been\n3.0 MiB/hour"),
        "{cost}"
    );
    assert!(cost.contains("(35 archives)"), "{cost}");

    // strata adds a set: its items are shaped as Deltaic's.
    w.ok(&plain, &["archive", "-p", "deltaic", "run"]);
    let items: BTreeMap<String, Vec<(String, String)>> =
        fake.items("deltaic").into_iter().collect();
    let names = |item: &str| -> Vec<String> {
        let mut n: Vec<String> = items[item].iter().map(|(k, _)| k.clone()).collect();
        n.sort();
        n
    };
    let ours = format!("{}/dump/u", w.snapshot);
    assert_eq!(names(&ours), names("20240101-1/rsync/hosta"));
    assert_eq!(names(&format!("{}//", w.snapshot)), names("20240101-1//"));
    let created = &items[&ours]
        .iter()
        .find(|(k, _)| k == "aws-creation-time")
        .unwrap()
        .1;
    assert!(
        regex_like_isoformat(created),
        "aws-creation-time {created:?} is not Python's isoformat"
    );
    let vault_before = fake.archives("deltaic").len();
    assert_eq!(vault_before, 36);

    // Pruned: keep-count 1, never a protected set, 31 items in batches of 25.
    let pruned = w.ok(&plain, &["archive", "-p", "deltaic", "prune"]);
    for s in ["20231201-1", "20240101-1", "20240201-1"] {
        assert!(
            pruned.contains(&format!("pruning archive set {s}")),
            "{pruned}"
        );
    }
    let left = set_lines(&w.ok(&plain, &["archive", "-p", "deltaic", "ls", "-s"]));
    let left: Vec<&String> = left.keys().collect();
    assert_eq!(left, ["20240115-1", "20240301-1", w.snapshot.as_str()]);
    assert_eq!(fake.archives("deltaic").len(), vault_before - 33);
    let items = fake.items("deltaic");
    assert!(
        items
            .iter()
            .all(|(name, _)| !name.starts_with("20231201-1") && !name.starts_with("20240101-1")),
        "{items:?}"
    );
    assert!(fake.calls("BatchDeleteAttributes") >= 4);
}

/// `2026-11-30T12:34:56.123456+00:00` or without the fraction.
fn regex_like_isoformat(s: &str) -> bool {
    let (main, tz) = s.split_at(s.len().saturating_sub(6));
    tz == "+00:00"
        && chrono::NaiveDateTime::parse_from_str(main, "%Y-%m-%dT%H:%M:%S%.f").is_ok()
        && (main.len() == 19 || main.len() == 26)
}

/// The aids the catalogue `domain` names.
fn catalogue_aids(fake: &FakeAws, domain: &str) -> Vec<String> {
    let mut aids: Vec<String> = fake
        .items(domain)
        .into_iter()
        .flat_map(|(_, attrs)| attrs.into_iter())
        .filter(|(k, _)| k == "aws-aid")
        .map(|(_, v)| v)
        .collect();
    aids.sort();
    aids
}

#[test]
fn sigkill_mid_upload_and_after_it_then_run_r_and_resync_leave_one_archive_per_unit() {
    let units = format!(
        "{}{}",
        random_unit("big", 3 * MIB),
        random_unit("small", 1024)
    );
    let Some(mut w) = World::new(&units, false, false, |_| {}) else {
        return;
    };
    if !w.start_aws() {
        return;
    }
    let config = w.config("plain", false, "");
    let ns = World::namespace("plain", "none");
    let run = |w: &World, args: &[&str], fault: Option<&str>| {
        let mut c = w.cmd(&config);
        // why: 1 MiB parts make the 3 MiB archive an upload in parts
        c.env("STRATA_AWS_PART_SIZE", MIB.to_string()).args(args);
        if let Some(f) = fault {
            c.env(strata::fault::FAULT_ENV, f);
        }
        c.output().unwrap()
    };
    // Killed after the first part of dump/big: no item, no archive, an unfinished upload.
    let out = run(
        &w,
        &["archive", "-p", "aws-none", "run"],
        Some("aws-part-uploaded"),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("done  dump/big FAILED: killed by signal 9"),
        "{}",
        text(&out.stdout)
    );
    let fake = w.aws.as_ref().unwrap();
    let state = fake.state();
    assert_eq!(state["vaults"][&ns]["uploads"].as_array().unwrap().len(), 1);
    assert_eq!(
        fake.archives(&ns).len(),
        1,
        "only dump/small is in the vault"
    );
    let listed = w.ok(&config, &["archive", "-p", "aws-none", "ls", "-s"]);
    assert!(!listed.contains("  complete"), "{listed}");
    let out = run(&w, &["archive", "-p", "aws-none", "run", "-r"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(fake.archives(&ns).len(), 2);

    // Killed after the vault upload, before the catalogue item: leaked archives.
    w.ok(&config, &["run"]);
    let out = run(
        &w,
        &["archive", "-p", "aws-none", "run"],
        Some("aws-archive-uploaded"),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert_eq!(fake.archives(&ns).len(), 4, "two archives without items");
    // why: no item of the new set exists, so `-r` (the newest set the archiver knows) would name the first
    let out = run(&w, &["archive", "-p", "aws-none", "run"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let sets = set_lines(&w.ok(&config, &["archive", "-p", "aws-none", "ls", "-s"]));
    assert_eq!(sets.len(), 2);
    assert!(
        sets.values()
            .all(|(count, complete, _)| *count == 2 && *complete),
        "{sets:?}"
    );
    assert_eq!(fake.archives(&ns).len(), 6);

    // resync deletes what no item names and aborts the day-old upload.
    fake.age_uploads(2 * 86_400);
    let said = w.ok(&config, &["archive", "-p", "aws-none", "resync"]);
    assert!(said.contains("Deleted 2 leaked archives"), "{said}");
    assert!(said.contains("aborted unfinished upload"), "{said}");
    let mut vault: Vec<String> = fake.archives(&ns).into_iter().map(|a| a.0).collect();
    vault.sort();
    assert_eq!(
        vault,
        catalogue_aids(fake, &ns),
        "one vault archive per item, no other"
    );
    assert_eq!(vault.len(), 4);
    assert!(
        fake.state()["vaults"][&ns]["uploads"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let listed = w.ok(&config, &["archive", "-p", "aws-none", "ls"]);
    assert_eq!(listed.matches("dump/big").count(), 2, "{listed}");

    // A part failing more often than the SDK retries is sent again by strata.
    w.ok(&config, &["run"]);
    let before = fake.calls("UploadMultipartPart");
    fake.fail("UploadMultipartPart", 4, 503);
    let out = run(&w, &["archive", "-p", "aws-none", "run"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        fake.calls("UploadMultipartPart") - before,
        4 + 4,
        "4 parts, 4 refusals"
    );
    let log: String = std::fs::read_dir(w.root.join("Logs/Archive/aws-none/dump/big"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert!(log.contains("part 1 failed (attempt 1)"), "{log}");
}

/// The archive-retrieval jobs of `aid`: (start, length), in order.
fn ranges_of(fake: &FakeAws, aid: &str) -> Vec<(u64, u64)> {
    fake.range_jobs()
        .into_iter()
        .filter(|j| j.1 == aid)
        .map(|j| (j.2, j.3))
        .collect()
}

#[test]
fn sigkill_mid_retrieval_then_retrieve_resumes_with_the_jobs_it_paid_for() {
    let Some(mut w) = World::new(&random_unit("big", 6 * MIB), false, false, |_| {}) else {
        return;
    };
    if !w.start_aws() {
        return;
    }
    let config = w.config("plain", false, "");
    let ns = World::namespace("plain", "none");
    w.ok(&config, &["archive", "-p", "aws-none", "run"]);
    let fake = w.aws.as_ref().unwrap();
    let aid = catalogue_aids(fake, &ns).pop().unwrap();
    let size = fake.archives(&ns)[0].1;
    let dest = w.home.join("ret");
    // why: 1.25 MiB an "hour" of 2 s: 4 MiB + 1 MiB requested at once, the rest 4 slots later
    let retrieve = |fault: Option<&str>| {
        let mut c = w.cmd(&config);
        c.env("STRATA_AWS_SLOT_SECS", "2").args([
            "archive",
            "-p",
            "aws-none",
            "retrieve",
            "-r",
            "0.001220703125",
            &w.snapshot,
            dest.to_str().unwrap(),
            "dump/big",
        ]);
        if let Some(f) = fault {
            c.env(strata::fault::FAULT_ENV, f);
        }
        c.output().unwrap()
    };
    let out = retrieve(Some("aws-range-retrieved"));
    assert_eq!(out.status.code(), None, "killed: {}", text(&out.stderr));
    assert_eq!(ranges_of(fake, &aid), [(0, 4 * MIB), (4 * MIB, MIB)]);
    let jobs_file = dest.join(format!("{}:dump-big.part.jobs", w.snapshot));
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&jobs_file).unwrap()).unwrap();
    assert_eq!(state["ranges"][0]["done"], true);
    assert_eq!(state["ranges"][1]["done"], false);

    // The resumed retrieve reads the outstanding job; its output arrives corrupted: refused.
    fake.corrupt_job_output(1);
    let out = retrieve(None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("tree hash"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(ranges_of(fake, &aid).len(), 2, "no job was requested again");

    // Again: the same job's output, then the rest once the budget allows.
    let out = retrieve(None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let file = PathBuf::from(text(&out.stdout).trim());
    let ranges = ranges_of(fake, &aid);
    assert_eq!(ranges.len(), 4, "{ranges:?}");
    let mut at = 0;
    for (start, len) in &ranges {
        assert_eq!(*start, at, "ranges in order, none twice: {ranges:?}");
        at += len;
    }
    assert_eq!(at, size);
    assert!(!jobs_file.exists());
    let out = w.home.join("out");
    w.ok(
        &config,
        &[
            "archive",
            "unpack",
            out.to_str().unwrap(),
            file.to_str().unwrap(),
        ],
    );
    assert_eq!(
        std::fs::read(out.join("dump/big/data")).unwrap(),
        std::fs::read(w.snapshot_unit("dump/big").join("data")).unwrap()
    );
}

#[test]
fn two_concurrent_retrieves_stay_within_the_shared_hourly_budget() {
    let units = format!("{}{}", random_unit("a", 3 * MIB), random_unit("b", 3 * MIB));
    let Some(mut w) = World::new(&units, false, false, |_| {}) else {
        return;
    };
    if !w.start_aws() {
        return;
    }
    let config = w.config("plain", false, "");
    w.ok(&config, &["archive", "-p", "aws-none", "run"]);
    let slot = 2.0;
    let rate = MIB; // an hour's budget: 1 MiB (-r 1/1024)
    let children: Vec<_> = ["dump/a", "dump/b"]
        .iter()
        .enumerate()
        .map(|(i, unit)| {
            w.cmd(&config)
                .env("STRATA_AWS_SLOT_SECS", "2")
                .args([
                    "archive",
                    "-p",
                    "aws-none",
                    "retrieve",
                    "-r",
                    "0.0009765625",
                    &w.snapshot,
                ])
                .arg(w.home.join(format!("ret{i}")))
                .arg(unit)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let fake = w.aws.as_ref().unwrap();
    let jobs = fake.range_jobs();
    let total: u64 = jobs.iter().map(|j| j.3).sum();
    let sizes: u64 = fake
        .archives(&World::namespace("plain", "none"))
        .iter()
        .map(|a| a.1)
        .sum();
    assert_eq!(total, sizes, "every byte requested once: {jobs:?}");
    // Glacier bills a job of n bytes as n/4 an hour for 4 hours: the peak hour's sum.
    #[allow(clippy::cast_possible_truncation)]
    let slot_of = |t: f64| (t / slot).floor() as i64;
    let first = jobs.iter().map(|j| slot_of(j.0)).min().unwrap();
    let last = jobs.iter().map(|j| slot_of(j.0)).max().unwrap();
    let mut peak = 0u64;
    for k in first..=last + 3 {
        let hour: u64 = jobs
            .iter()
            .filter(|j| (k - 3..=k).contains(&slot_of(j.0)))
            .map(|j| j.3.div_ceil(4))
            .sum();
        peak = peak.max(hour);
    }
    #[allow(clippy::cast_precision_loss)]
    let ratio = peak as f64 / rate as f64;
    assert!(
        ratio <= 1.1,
        "peak {peak} bytes/hour is {ratio:.2}x the shared budget of {rate}: {jobs:?}"
    );
    assert!(
        last > first,
        "the second retrieve waited for the budget: {jobs:?}"
    );
}

fn wait_for(vault: &Vault, job: &str) {
    let t = std::time::Instant::now();
    loop {
        let j = vault.job(job).unwrap().expect("the job exists");
        if j.status == JobStatus::Succeeded {
            return;
        }
        assert!(j.status != JobStatus::Failed, "{j:?}");
        assert!(t.elapsed().as_secs() < 60, "job {job} did not finish");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// The same calls of strata's clients, and what they observed.
fn transcript(endpoint: &str, tag: &str, dir: &Path) -> Vec<String> {
    let mut t = Vec::new();
    let db = SdbClient::new(endpoint, ACCESS_KEY, SECRET).unwrap();
    let domain = format!("parity-{tag}");
    let pairs = |p: &[(&str, &str)]| -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    db.create_domain(&domain).unwrap();
    db.create_domain(&domain).unwrap();
    let item = "20240101-1/rsync/a b";
    db.put_attributes(
        &domain,
        item,
        &pairs(&[("size", "12"), ("aws-set", "20240101-1")]),
        None,
    )
    .unwrap();
    db.put_attributes(&domain, item, &pairs(&[("size", "13")]), None)
        .unwrap();
    let mut got = db.get_attributes(&domain, item, true).unwrap().attrs;
    got.sort();
    t.push(format!("item {got:?}"));
    t.push(format!(
        "missing item exists: {}",
        db.get_attributes(&domain, "nothing", true)
            .unwrap()
            .exists()
    ));
    t.push(format!(
        "missing domain: {:?}",
        db.get_attributes("no-such-domain", item, true)
            .unwrap_err()
            .code()
    ));
    let vault = Vault::new(&domain, "us-east-1", ACCESS_KEY, SECRET, Some(endpoint)).unwrap();
    vault.create().unwrap();
    vault.create().unwrap();
    let file = dir.join(format!("parity-{tag}"));
    #[allow(clippy::cast_possible_truncation)]
    let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&file, &data).unwrap();
    let id = vault
        .upload(&file, "20240101-1 rsync/a b", 64 * MIB)
        .unwrap();
    let inv = vault.request_inventory().unwrap();
    wait_for(&vault, &inv);
    let (mut body, _) = vault.output(&inv).unwrap();
    let mut text = Vec::new();
    std::io::Read::read_to_end(&mut body, &mut text).unwrap();
    let listed: Vec<(u64, String)> =
        strata::archive::archivers::aws::glacier::parse_inventory(&text)
            .unwrap()
            .into_iter()
            .filter(|a| a.archive_id == id)
            .map(|a| (a.size, a.archive_description))
            .collect();
    t.push(format!("inventory {listed:?}"));
    let job = vault
        .request_range(&id, 0, 100_000, "20240101-1 rsync/a b 0-99999")
        .unwrap();
    wait_for(&vault, &job);
    let (mut body, _) = vault.output(&job).unwrap();
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut body, &mut out).unwrap();
    t.push(format!("output equal: {}", out == data));
    let j = vault.job(&job).unwrap().unwrap();
    t.push(format!(
        "job {:?} of the archive: {}",
        j.status,
        j.archive_id.as_deref() == Some(id.as_str())
    ));
    let listed = vault
        .jobs()
        .unwrap()
        .iter()
        .filter(|x| x.id == job || x.id == inv)
        .count();
    t.push(format!("jobs listed: {listed}"));
    vault.delete_archive(&id).unwrap();
    t.push("deleted".into());
    t
}

/// Where moto also implements a call, it and the fake must agree: the
/// fake cannot drift from the behaviour of a server others maintain.
#[test]
fn strata_s_calls_observe_the_same_on_the_fake_and_on_moto() {
    let home = crate::support::env::TestHome::new();
    let Some(fake) = FakeAws::start(&home) else {
        return;
    };
    let Some(moto) = fixtures::Moto::start(&home, "parity") else {
        return;
    };
    let on_fake = transcript(&fake.endpoint, "f", home.path());
    let on_moto = transcript(&moto.endpoint, "m", home.path());
    assert_eq!(on_fake.len(), 8, "{on_fake:#?}");
    assert_eq!(on_fake, on_moto);
}

/// The fake refuses what Glacier and `SimpleDB` refuse.
#[test]
#[allow(clippy::result_large_err)] // why: the SDK's own error types, in a test
fn the_fake_refuses_bad_signatures_hashes_ranges_and_conditions() {
    let home = crate::support::env::TestHome::new();
    let Some(fake) = FakeAws::start(&home) else {
        return;
    };
    let pairs = |p: &[(&str, &str)]| -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    // SimpleDB: the signature, conditions, consistency, quoting.
    let bad = SdbClient::new(&fake.endpoint, ACCESS_KEY, "wrong").unwrap();
    assert_eq!(
        bad.create_domain("refusals").unwrap_err().code(),
        Some("SignatureDoesNotMatch")
    );
    let db = SdbClient::new(&fake.endpoint, ACCESS_KEY, SECRET).unwrap();
    db.create_domain("refusals").unwrap();
    db.put_attributes(
        "refusals",
        "i",
        &pairs(&[("a", "1"), ("q", r#"say "hi""#)]),
        None,
    )
    .unwrap();
    let put =
        |cond: Expected| db.put_attributes("refusals", "i", &pairs(&[("a", "2")]), Some(&cond));
    assert_eq!(
        put(Expected::Absent("a".into())).unwrap_err().code(),
        Some("ConditionalCheckFailed")
    );
    assert_eq!(
        put(Expected::Equals("b".into(), "1".into()))
            .unwrap_err()
            .code(),
        Some("AttributeDoesNotExist")
    );
    assert_eq!(
        put(Expected::Equals("a".into(), "9".into()))
            .unwrap_err()
            .code(),
        Some("ConditionalCheckFailed")
    );
    put(Expected::Equals("a".into(), "1".into())).unwrap();
    assert!(
        !db.get_attributes("refusals", "i", false).unwrap().exists(),
        "an eventually consistent read lags"
    );
    assert_eq!(
        db.get_attributes("refusals", "i", true).unwrap().get("a"),
        Some("2")
    );
    let hits = strata::archive::archivers::aws::sdb::select_all(
        &db,
        r#"select * from `refusals` where `q` = "say ""hi""" and `a` is not null"#,
        true,
    )
    .unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(
        db.select("select * from `refusals` where `a` ~ 1", true, None)
            .unwrap_err()
            .code(),
        Some("InvalidQueryExpression")
    );

    // Glacier: the signature, tree hashes, part and range alignment, unfinished jobs.
    let bad = Vault::new(
        "refusals",
        "us-east-1",
        ACCESS_KEY,
        "wrong",
        Some(&fake.endpoint),
    )
    .unwrap();
    match bad.create() {
        Err(AwsError::Glacier { code, .. }) => {
            assert_eq!(code.as_deref(), Some("InvalidSignatureException"));
        }
        r => panic!("{r:?}"),
    }
    let vault = Vault::new(
        "refusals",
        "us-east-1",
        ACCESS_KEY,
        SECRET,
        Some(&fake.endpoint),
    )
    .unwrap();
    vault.create().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let sdk = rt.block_on(
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_sdk_glacier::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_glacier::config::Credentials::new(
                ACCESS_KEY, SECRET, None, None, "t",
            ))
            .load(),
    );
    let raw = aws_sdk_glacier::Client::from_conf(
        aws_sdk_glacier::config::Builder::from(&sdk)
            .endpoint_url(&fake.endpoint)
            .build(),
    );
    let code = |e: &dyn aws_sdk_glacier::error::ProvideErrorMetadata| e.code().map(str::to_owned);
    let up = rt
        .block_on(
            raw.initiate_multipart_upload()
                .vault_name("refusals")
                .part_size(MIB.to_string())
                .send(),
        )
        .unwrap();
    let uid = up.upload_id().unwrap();
    let part = vec![5u8; 1 << 20];
    let send = |range: &str, checksum: Option<&str>| {
        let mut r = raw
            .upload_multipart_part()
            .vault_name("refusals")
            .upload_id(uid)
            .range(range)
            .body(aws_sdk_glacier::primitives::ByteStream::from(part.clone()));
        if let Some(c) = checksum {
            r = r.checksum(c);
        }
        rt.block_on(r.send())
    };
    let e = send("bytes 0-1048575/*", Some(&"00".repeat(32))).unwrap_err();
    assert_eq!(
        code(&e),
        Some("InvalidParameterValueException".into()),
        "a wrong tree hash"
    );
    let e = send("bytes 512-1049087/*", None).unwrap_err();
    assert_eq!(
        code(&e),
        Some("InvalidParameterValueException".into()),
        "a part off its alignment"
    );
    send("bytes 0-1048575/*", None).unwrap();
    let e = rt
        .block_on(
            raw.complete_multipart_upload()
                .vault_name("refusals")
                .upload_id(uid)
                .archive_size((2 * MIB).to_string())
                .checksum("00".repeat(32))
                .send(),
        )
        .unwrap_err();
    assert_eq!(
        code(&e),
        Some("InvalidParameterValueException".into()),
        "parts missing"
    );
    let file = home.join("small");
    std::fs::write(&file, vec![1u8; 3 << 20]).unwrap();
    let id = vault.upload(&file, "a b", MIB).unwrap();
    let ranged = |range: &str| {
        rt.block_on(
            raw.initiate_job()
                .vault_name("refusals")
                .job_parameters(
                    aws_sdk_glacier::types::JobParameters::builder()
                        .r#type("archive-retrieval")
                        .archive_id(&id)
                        .retrieval_byte_range(range)
                        .build(),
                )
                .send(),
        )
    };
    let e = ranged("1-1048576").unwrap_err();
    assert_eq!(
        code(&e),
        Some("InvalidParameterValueException".into()),
        "a range off the megabyte"
    );
    fake.config(&json!({"job_delay": 30}));
    let job = ranged("1048576-3145727").unwrap();
    let e = rt
        .block_on(
            raw.get_job_output()
                .vault_name("refusals")
                .job_id(job.job_id().unwrap())
                .send(),
        )
        .unwrap_err();
    assert_eq!(
        code(&e),
        Some("InvalidParameterValueException".into()),
        "output before the job finished"
    );
    assert_eq!(
        vault.job(job.job_id().unwrap()).unwrap().unwrap().status,
        JobStatus::InProgress
    );
    // Job output with a Range: the bytes asked for, and a tree hash when they are a node.
    fake.config(&json!({"job_delay": 0}));
    let done = ranged("1048576-3145727").unwrap();
    let part_of = |range: &str| {
        let out = rt
            .block_on(
                raw.get_job_output()
                    .vault_name("refusals")
                    .job_id(done.job_id().unwrap())
                    .range(range)
                    .send(),
            )
            .unwrap();
        let hash = out.checksum().map(str::to_owned);
        let body = rt.block_on(out.body.collect()).unwrap().into_bytes();
        (body.len(), hash)
    };
    let one = strata::archive::archivers::aws::treehash::to_hex(
        &strata::archive::archivers::aws::treehash::tree_hash(&vec![1u8; 1 << 20]),
    );
    assert_eq!(part_of("bytes=1048576-2097151"), (1 << 20, Some(one)));
    assert_eq!(part_of("bytes=10-19"), (10, None));
    fake.expire_jobs();
    assert!(
        vault.job(job.job_id().unwrap()).unwrap().is_none(),
        "an expired job is unknown"
    );
}

#[test]
fn a_deltaic_set_migrates_to_s3_resumably_untouched_at_the_source_and_unpacks_from_there() {
    let Some(mut w) = World::new(super::UNITS, true, true, |_| {}) else {
        return;
    };
    let Some(python) = venv_python() else { return };
    if !w.start_aws() {
        return;
    }
    let fake = w.aws.as_ref().unwrap();
    let droot = w.home.join("deltaic-root");
    build_hostile_tree(&droot.join("rsync/hosta"), 5);
    std::fs::create_dir_all(droot.join("rsync/hostb")).unwrap();
    std::fs::write(droot.join("rsync/hostb/notes"), "kept offsite since 2014\n").unwrap();
    std::fs::create_dir_all(droot.join("rsync/hostc")).unwrap();
    let mut big = vec![0u8; 7 << 20];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut big);
    std::fs::write(droot.join("rsync/hostc/big"), &big).unwrap();
    let old = "2024-01-01T05:06:07.123456+00:00".to_owned();
    deltaic_write(
        &w,
        fake,
        &python,
        "deltaic",
        &droot,
        &Deltaic {
            archives: vec![
                DeltaicArchive("20240101-1", "rsync/hosta", "gzip", false, old.clone()),
                DeltaicArchive("20240101-1", "rsync/hostb", "lzop", true, old.clone()),
                DeltaicArchive("20240101-1", "rsync/hostc", "none", false, old.clone()),
                DeltaicArchive("20240201-1", "rsync/hostb", "gzip", false, old),
            ],
            complete: &["20240101-1"],
            bandwidth: serde_json::Value::Null,
        },
    );
    let endpoint = w.moto.as_ref().unwrap().endpoint.clone();
    let profiles = format!(
        "{}    cold:\n      archiver: s3\n      s3-bucket: strata\n      s3-prefix: migrated/\n      s3-endpoint: {endpoint}\n      s3-access-key-id: testing\n      s3-secret-access-key: testing\n      s3-storage-class: GLACIER\n      s3-restore-tier: expedited\n      s3-prices:\n        GLACIER: {{storage: 0.004, retrieval: 0.01}}\n",
        fake.profile("deltaic", "deltaic", "gzip")
    );
    let plain = w.config("plain", false, &profiles);
    let enc = w.config("enc", true, &profiles);
    let migrate = |fault: Option<&str>, extra: &[&str]| {
        let mut c = w.cmd(&plain);
        // why: 5 MiB parts make the 7 MiB archive an upload in parts, each with its checksum
        c.env("STRATA_S3_PART_SIZE", "5242880")
            .args(["archive", "-p", "deltaic", "migrate", "--to", "cold"])
            .args(extra);
        if let Some(f) = fault {
            c.env(strata::fault::FAULT_ENV, f);
        }
        c.output().unwrap()
    };
    let untouched = |fake: &FakeAws| {
        let items: Vec<_> = fake
            .items("deltaic")
            .into_iter()
            .filter(|(name, _)| name != "/bandwidth")
            .collect();
        (items, fake.archives("deltaic"))
    };
    let before = untouched(fake);

    // --plan: what, how long, how much; nothing requested.
    let out = migrate(None, &["--plan"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(said.contains("total: 4 archives to copy"), "{said}");
    assert!(said.contains("cost: retrieval about $"), "{said}");
    assert!(said.contains("storage at cold: $"), "{said}");
    assert!(fake.range_jobs().is_empty(), "--plan requests nothing");
    assert!(
        w.ok(&plain, &["archive", "-p", "cold", "ls", "-s"])
            .trim()
            .is_empty()
    );

    // Killed after the first archive is copied; the rerun copies the rest
    // with the retrieval jobs the first run requested.
    let out = migrate(Some("migrate-copied"), &[]);
    assert_eq!(out.status.code(), None, "killed: {}", text(&out.stderr));
    let jobs = fake.range_jobs().len();
    assert_eq!(jobs, 4, "one job per archive (each within one budget slot)");
    let out = migrate(None, &[]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let said = text(&out.stdout);
    assert!(
        said.contains("migrated: 3 archives copied, 1 sets complete at cold, 0 failed"),
        "{said}"
    );
    assert_eq!(fake.range_jobs().len(), jobs, "nothing was requested twice");
    let sets = set_lines(&w.ok(&plain, &["archive", "-p", "cold", "ls", "-s"]));
    assert_eq!(sets["20240101-1"], (3, true, true));
    assert_eq!(sets["20240201-1"].0, 1);
    assert!(!sets["20240201-1"].1, "an incomplete set stays incomplete");
    assert_eq!(untouched(fake), before, "the source is left untouched");
    let out = migrate(None, &[]);
    assert!(
        text(&out.stdout).contains("migrated: 0 archives copied"),
        "{}",
        text(&out.stdout)
    );

    // Retrieved from S3 (a cold class: restored first) and unpacked.
    let ret = w.home.join("ret");
    let got = w
        .cmd(&plain)
        .env("STRATA_S3_RESTORE_POLL_SECS", "1")
        .args([
            "archive",
            "-p",
            "cold",
            "retrieve",
            "20240101-1",
            ret.to_str().unwrap(),
        ])
        .args(["rsync/hosta", "rsync/hostb", "rsync/hostc"])
        .output()
        .unwrap();
    assert!(got.status.success(), "{}", text(&got.stderr));
    let out = w.home.join("out");
    w.ok(
        &plain,
        &[
            "archive",
            "unpack",
            "--devices",
            "--setuid",
            out.to_str().unwrap(),
            ret.join("20240101-1:rsync-hosta").to_str().unwrap(),
            ret.join("20240101-1:rsync-hostc").to_str().unwrap(),
        ],
    );
    w.ok(
        &enc,
        &[
            "archive",
            "unpack",
            out.to_str().unwrap(),
            ret.join("20240101-1:rsync-hostb").to_str().unwrap(),
        ],
    );
    for u in ["rsync/hosta", "rsync/hostb", "rsync/hostc"] {
        compare(&droot.join(u), &out.join(u));
    }
}

//! The rbd source against a real single-node Ceph (support/ceph.rs): images
//! written with random writes and discards (`rbd import-diff` of generated
//! streams), incrementals, crash safety at every step of the protocol
//! (`STRATA_FAULT_KILL_AT`), corrupt diffs, scrub, restore, snapshot units,
//! a repointed friendly name, `drop`.
//!
//! All tests share one cluster ([`Ceph::shared`]), each with images of its own.

use crate::support::ceph::Ceph;
use crate::support::env::{self, TestHome, strata};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};
use std::fmt::Write as _;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use strata::sources::rbd::diff::DiffWriter;
use strata::sources::rbd::tool::{is_backup_snapshot, parse_snap_ls};

const MIB: u64 = 1 << 20;
const IMAGE_SIZE: u64 = 64 * MIB;

struct Rig {
    ceph: Arc<Ceph>,
    home: TestHome,
    root: PathBuf,
    config: PathBuf,
    pool: String,
}

impl Rig {
    /// A cluster (shared), a backup root and a config; `None` = skipped.
    fn new(images: &[(&str, &str)], snapshots: &[(&str, &str)]) -> Option<Rig> {
        let ceph = match Ceph::shared() {
            Ok(c) => c,
            Err(e) => {
                env::require(&format!("a throwaway Ceph cluster ({e})"), false);
                return None;
            }
        };
        let home = TestHome::new();
        let root = home.join("backup");
        std::fs::create_dir(&root).unwrap();
        let rig = Rig {
            pool: ceph.rbd_pool().to_owned(),
            ceph,
            config: home.join("strata.yaml"),
            root,
            home,
        };
        rig.write_config(images, snapshots);
        Some(rig)
    }

    fn write_config(&self, images: &[(&str, &str)], snapshots: &[(&str, &str)]) {
        let mut c = format!(
            "settings:\n  root: {}\n  snapshot-store: dir\nrbd:\n  {}:\n",
            self.root.display(),
            self.pool
        );
        for (key, items) in [("images", images), ("snapshots", snapshots)] {
            if !items.is_empty() {
                let _ = writeln!(c, "    {key}:");
                for (f, n) in items {
                    let _ = writeln!(c, "      {f}: {n}");
                }
            }
        }
        std::fs::write(&self.config, c).unwrap();
    }

    fn strata(&self, args: &[&str], fault: Option<&str>) -> Output {
        let mut cmd = strata(&self.home);
        cmd.arg("-c")
            .arg(&self.config)
            .env("STRATA_ALLOW_ROOT", "1")
            .args(args);
        for (k, v) in self.ceph.env() {
            cmd.env(k, v);
        }
        if let Some(step) = fault {
            cmd.env(strata::fault::FAULT_ENV, step);
        }
        cmd.output().expect("run strata")
    }

    /// Run strata, which must succeed; its stdout and stderr.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.strata(args, None);
        let text = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert!(out.status.success(), "strata {args:?} failed: {text}");
        text
    }

    fn rbd(&self, args: &[&str]) -> Vec<u8> {
        self.ceph.rbd(args)
    }

    fn spec(&self, image: &str) -> String {
        format!("{}/{image}", self.pool)
    }

    fn image_file(&self, friendly: &str) -> PathBuf {
        self.root
            .join("rbd")
            .join(&self.pool)
            .join("images")
            .join(friendly)
    }

    fn snapshot_file(&self, friendly: &str) -> PathBuf {
        self.root
            .join("rbd")
            .join(&self.pool)
            .join("snapshots")
            .join(friendly)
    }

    fn backup_snapshots(&self, image: &str) -> Vec<String> {
        let json = self.rbd(&["snap", "ls", "--format=json", &self.spec(image)]);
        parse_snap_ls(&json)
            .unwrap()
            .into_iter()
            .map(|s| s.name)
            .filter(|n| is_backup_snapshot(n))
            .collect()
    }

    fn export_sha(&self, image: &str, snap: Option<&str>) -> String {
        let spec = match snap {
            Some(s) => format!("{}@{s}", self.spec(image)),
            None => self.spec(image),
        };
        sha(&self.rbd(&["export", "--no-progress", &spec, "-"]))
    }

    /// The file equals the image at the snapshot its xattr names, which is
    /// the one and only `backup-*` snapshot of the image; nothing pending.
    fn assert_consistent(&self, friendly: &str, image: &str) {
        let file = self.image_file(friendly);
        let held = xattr_text(&file, "user.rbd.snapshot").expect("user.rbd.snapshot set");
        assert_eq!(xattr_text(&file, "user.rbd.pending-snapshot"), None);
        assert_eq!(self.backup_snapshots(image), vec![held.clone()]);
        assert_eq!(sha_file(&file), self.export_sha(image, Some(&held)));
        for ext in [".pending", ".pending.part"] {
            let mut p = file.clone().into_os_string();
            p.push(ext);
            assert!(
                !Path::new(&p).exists(),
                "{} left behind",
                p.to_string_lossy()
            );
        }
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn sha(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

fn sha_file(p: &Path) -> String {
    sha(&std::fs::read(p).unwrap())
}

fn xattr_text(p: &Path, name: &str) -> Option<String> {
    xattr::get(p, name)
        .unwrap()
        .map(|v| String::from_utf8(v).unwrap())
}

fn allocated(p: &Path) -> u64 {
    std::fs::metadata(p).unwrap().blocks() * 512
}

/// An RBD image and a model of its bytes, changed by generated diff streams
/// applied with `rbd import-diff`.
struct Image {
    name: String,
    model: Vec<u8>,
    rng: StdRng,
    dir: tempfile::TempDir,
}

impl Image {
    fn create(rig: &Rig, name: &str, seed: u64) -> Image {
        rig.rbd(&["create", "--size", "64M", &rig.spec(name)]);
        Image {
            name: name.to_owned(),
            model: vec![0; usize::try_from(IMAGE_SIZE).unwrap()],
            rng: StdRng::seed_from_u64(seed),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// `writes` random writes (4-64 KiB of random data, 4 KiB aligned) then
    /// `discards` random discards (4-512 KiB), sent as one diff of sorted,
    /// non-overlapping extents, as `rbd export-diff` writes them.
    // why: `rbd import-diff` issues its writes concurrently, so overlapping
    // records in one stream may land in any order.
    fn mutate(&mut self, rig: &Rig, writes: usize, discards: usize) {
        const WRITTEN: u8 = 1;
        const ZEROED: u8 = 2;
        let blocks = IMAGE_SIZE / 4096;
        let mut last = vec![0u8; usize::try_from(blocks).unwrap()];
        for _ in 0..writes {
            let len = self.rng.gen_range(1..=16u64) * 4096;
            let off = self.rng.gen_range(0..blocks - 16) * 4096;
            let mut data = vec![0u8; usize::try_from(len).unwrap()];
            self.rng.fill(&mut data[..]);
            let o = usize::try_from(off).unwrap();
            self.model[o..o + data.len()].copy_from_slice(&data);
            last[o / 4096..(o + data.len()) / 4096].fill(WRITTEN);
        }
        for _ in 0..discards {
            let len = self.rng.gen_range(1..=128u64) * 4096;
            let off = self.rng.gen_range(0..blocks - 128) * 4096;
            let o = usize::try_from(off).unwrap();
            let l = usize::try_from(len).unwrap();
            self.model[o..o + l].fill(0);
            last[o / 4096..(o + l) / 4096].fill(ZEROED);
        }
        let mut w = DiffWriter::new(Vec::new()).unwrap();
        w.size(IMAGE_SIZE).unwrap();
        let mut b = 0;
        while b < last.len() {
            let kind = last[b];
            let end = b + last[b..].iter().take_while(|&&k| k == kind).count();
            let (off, len) = (b * 4096, (end - b) * 4096);
            match kind {
                WRITTEN => w.data(off as u64, &self.model[off..off + len]).unwrap(),
                ZEROED => w.zero(off as u64, len as u64).unwrap(),
                _ => {}
            }
            b = end;
        }
        let diff = self.dir.path().join("change.diff");
        std::fs::write(&diff, w.finish().unwrap()).unwrap();
        rig.rbd(&[
            "import-diff",
            "--no-progress",
            diff.to_str().unwrap(),
            &rig.spec(&self.name),
        ]);
    }

    fn model_sha(&self) -> String {
        sha(&self.model)
    }

    fn nonzero_bytes(&self) -> u64 {
        self.model
            .chunks(4096)
            .filter(|b| b.iter().any(|&x| x != 0))
            .count() as u64
            * 4096
    }
}

#[test]
fn rbd_ten_incrementals_track_the_image_and_keep_holes() {
    let Some(rig) = Rig::new(&[("vm", "inc-img")], &[]) else {
        return;
    };
    let mut img = Image::create(&rig, "inc-img", 1);
    img.mutate(&rig, 200, 0);
    let out = rig.ok(&["rbd", "backup", &rig.pool, "vm"]);
    assert!(out.contains("full fetch"), "{out}");
    rig.assert_consistent("vm", "inc-img");
    assert_eq!(sha_file(&rig.image_file("vm")), img.model_sha());
    for round in 0..10 {
        img.mutate(&rig, 30, 4);
        let out = rig.ok(&["rbd", "backup", &rig.pool, "vm"]);
        assert!(
            out.contains("incremental from backup-"),
            "round {round}: {out}"
        );
        rig.assert_consistent("vm", "inc-img");
        let file = rig.image_file("vm");
        assert_eq!(sha_file(&file), img.model_sha(), "round {round}");
        let (have, data) = (allocated(&file), img.nonzero_bytes());
        // why: holes kept: allocation follows the data, not the 4 MiB objects
        assert!(
            have <= data + 256 * 1024,
            "round {round}: {have} bytes allocated for {data} bytes of data"
        );
    }
}

#[test]
fn rbd_a_crash_at_any_step_is_finished_by_the_next_run() {
    let Some(rig) = Rig::new(&[("vm", "crash-img")], &[]) else {
        return;
    };
    let mut img = Image::create(&rig, "crash-img", 2);
    img.mutate(&rig, 400, 0);
    // the first, full fetch, killed midway and after its snapshot exists
    for step in ["snapshot-created", "full-fetch"] {
        let out = rig.strata(&["rbd", "backup", &rig.pool, "vm"], Some(step));
        assert_eq!(
            out.status.signal(),
            Some(9),
            "{step}: {}",
            text(&out.stderr)
        );
    }
    rig.ok(&["rbd", "backup", &rig.pool, "vm"]);
    rig.assert_consistent("vm", "crash-img");
    for step in [
        "snapshot-created",
        "export",
        "pending-written",
        "apply",
        "applied",
        "before-old-snapshot-delete",
    ] {
        img.mutate(&rig, 60, 4);
        let before = sha_file(&rig.image_file("vm"));
        let out = rig.strata(&["rbd", "backup", &rig.pool, "vm"], Some(step));
        assert_eq!(
            out.status.signal(),
            Some(9),
            "{step}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains(&format!("SIGKILL at step `{step}`")),
            "{step}"
        );
        if matches!(step, "snapshot-created" | "export" | "pending-written") {
            assert_eq!(
                sha_file(&rig.image_file("vm")),
                before,
                "{step}: image untouched"
            );
        }
        let out = rig.ok(&["rbd", "backup", &rig.pool, "vm"]);
        assert!(
            out.contains("finishing a backup interrupted"),
            "{step}: {out}"
        );
        rig.assert_consistent("vm", "crash-img");
        assert_eq!(sha_file(&rig.image_file("vm")), img.model_sha(), "{step}");
    }
}

/// Corruptions of a `.pending` diff made by strata: each error message, and
/// the stored image unchanged.
fn corruptions(good: &[u8]) -> Vec<(&'static str, Vec<u8>, &'static str)> {
    // header 12, 'f' len name, 't' len name, 's' size, then the first data record
    let name_len =
        |at: usize| u32::from_le_bytes(good[at + 1..at + 5].try_into().unwrap()) as usize;
    let t_at = 12 + 5 + name_len(12);
    let s_at = t_at + 5 + name_len(t_at);
    assert_eq!(good[s_at], b's');
    let first_data = s_at + 9;
    let mut bad_magic = good.to_vec();
    bad_magic[9] = b'x';
    let truncated = good[..good.len() - 10].to_vec();
    let mut unknown = good.to_vec();
    unknown[first_data] = b'q';
    let mut past_end = good.to_vec();
    past_end[s_at + 1..s_at + 9].copy_from_slice(&4096u64.to_le_bytes());
    let mut trailing = good.to_vec();
    trailing.extend_from_slice(b"junk");
    vec![
        ("bad magic", bad_magic, "not an rbd diff stream"),
        ("truncated", truncated, "truncated"),
        ("unknown tag", unknown, "unknown record tag"),
        ("write past the size", past_end, "past the image size"),
        ("trailing bytes", trailing, "after the 'e'"),
    ]
}

#[test]
fn rbd_a_corrupt_pending_diff_is_an_error_and_leaves_the_image() {
    let Some(rig) = Rig::new(&[("vm", "corrupt-img")], &[]) else {
        return;
    };
    let mut img = Image::create(&rig, "corrupt-img", 3);
    img.mutate(&rig, 50, 0);
    rig.ok(&["rbd", "backup", &rig.pool, "vm"]);
    img.mutate(&rig, 50, 2);
    let out = rig.strata(&["rbd", "backup", &rig.pool, "vm"], Some("pending-written"));
    assert_eq!(out.status.signal(), Some(9));
    let file = rig.image_file("vm");
    let pending = file.with_file_name("vm.pending");
    let good = std::fs::read(&pending).unwrap();
    let before = sha_file(&file);
    for (kind, bytes, message) in corruptions(&good) {
        std::fs::write(&pending, &bytes).unwrap();
        let out = rig.strata(&["rbd", "backup", &rig.pool, "vm"], None);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{kind}: {err}");
        assert!(
            err.contains(message) && err.contains("corrupt rbd diff"),
            "{kind}: {err}"
        );
        assert_eq!(sha_file(&file), before, "{kind}: image changed");
    }
    // the next run exports the diff again and completes
    rig.ok(&["rbd", "backup", &rig.pool, "vm"]);
    rig.assert_consistent("vm", "corrupt-img");
    assert_eq!(sha_file(&file), img.model_sha());
}

#[test]
fn rbd_apply_diff_refuses_each_kind_of_corrupt_diff_and_leaves_the_image() {
    let home = TestHome::new();
    let mut w = DiffWriter::new(Vec::new()).unwrap();
    w.from_snap("backup-a").unwrap();
    w.to_snap("backup-b").unwrap();
    w.size(4 * MIB).unwrap();
    w.data(8192, &[7u8; 8192]).unwrap();
    w.zero(MIB, 4096).unwrap();
    let good = w.finish().unwrap();
    let image = home.join("image");
    std::fs::write(&image, vec![1u8; usize::try_from(4 * MIB).unwrap()]).unwrap();
    xattr::set(&image, "user.rbd.snapshot", b"backup-a").unwrap();
    let before = sha_file(&image);
    let diff = home.join("d");
    for (kind, bytes, message) in corruptions(&good) {
        std::fs::write(&diff, &bytes).unwrap();
        let out = strata(&home)
            .args(["rbd", "apply-diff"])
            .arg(&diff)
            .arg(&image)
            .output()
            .unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{kind}: {err}");
        assert!(err.contains(message), "{kind}: {err}");
        assert_eq!(sha_file(&image), before, "{kind}");
    }
    std::fs::write(&diff, &good).unwrap();
    let out = strata(&home)
        .args(["rbd", "apply-diff"])
        .arg(&diff)
        .arg(&image)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let data = std::fs::read(&image).unwrap();
    assert_eq!(&data[8192..16384], &[7u8; 8192][..]);
    let mib = usize::try_from(MIB).unwrap();
    assert!(data[mib..mib + 4096].iter().all(|&b| b == 0));
}

/// A diff from `from` (none: a full export) to `to` of an image of `size`
/// bytes with one `w` record of `len` bytes of `byte` at `at`.
fn small_diff(from: Option<&str>, to: &str, size: u64, at: u64, len: usize, byte: u8) -> Vec<u8> {
    let mut w = DiffWriter::new(Vec::new()).unwrap();
    if let Some(f) = from {
        w.from_snap(f).unwrap();
    }
    w.to_snap(to).unwrap();
    w.size(size).unwrap();
    w.data(at, &vec![byte; len]).unwrap();
    w.finish().unwrap()
}

#[test]
fn rbd_apply_diff_follows_the_backup_rules() {
    let home = TestHome::new();
    let apply = |diff: &[u8], image: &Path| -> Output {
        let d = home.join("d");
        std::fs::write(&d, diff).unwrap();
        strata(&home)
            .args(["rbd", "apply-diff"])
            .arg(&d)
            .arg(image)
            .output()
            .unwrap()
    };
    let held = |image: &Path| {
        xattr::get(image, "user.rbd.snapshot")
            .unwrap()
            .map(|v| text(&v))
    };
    // An image file as a backup leaves it: all ones, at snapshot s1.
    let image = home.join("image");
    std::fs::write(&image, vec![1u8; usize::try_from(4 * MIB).unwrap()]).unwrap();
    xattr::set(&image, "user.rbd.snapshot", b"s1").unwrap();

    // s1 -> s2, then s2 -> s3: each applies and records its snapshot.
    for (from, to, at) in [("s1", "s2", 8192), ("s2", "s3", 16384)] {
        let out = apply(&small_diff(Some(from), to, 4 * MIB, at, 4096, 2), &image);
        assert!(out.status.success(), "{from}->{to}: {}", text(&out.stderr));
        assert_eq!(held(&image).as_deref(), Some(to), "{from}->{to}");
    }
    // A diff from another snapshot is refused, in plain words.
    let out = apply(&small_diff(Some("s1"), "s2", 4 * MIB, 0, 4096, 3), &image);
    let err = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("holds snapshot s3, but the diff goes from snapshot s1 to snapshot s2"),
        "{err}"
    );
    assert!(!err.contains("Some("), "{err}");
    // A full export replaces the image: nothing of the old content survives.
    let out = apply(&small_diff(None, "s4", MIB, 0, 4096, 4), &image);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let data = std::fs::read(&image).unwrap();
    assert_eq!(data.len(), usize::try_from(MIB).unwrap());
    assert!(data[..4096].iter().all(|&b| b == 4));
    assert!(
        data[4096..].iter().all(|&b| b == 0),
        "the full export was merged into the old image"
    );
    assert_eq!(held(&image).as_deref(), Some("s4"));
    // An incremental onto a file that records no snapshot is refused.
    let bare = home.join("bare");
    std::fs::write(&bare, vec![1u8; 4096]).unwrap();
    let out = apply(&small_diff(Some("s1"), "s2", MIB, 0, 4096, 5), &bare);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("records no snapshot (no user.rbd.snapshot)"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(std::fs::read(&bare).unwrap(), vec![1u8; 4096]);
    // A size record of 2^63 onto a new file creates nothing.
    let new = home.join("new");
    let mut w = DiffWriter::new(Vec::new()).unwrap();
    w.to_snap("s1").unwrap();
    w.size(1 << 63).unwrap();
    let out = apply(&w.finish().unwrap(), &new);
    assert!(!out.status.success());
    assert!(!new.exists(), "a refused diff left {}", new.display());
}

#[test]
fn rbd_scrub_repairs_a_flipped_byte_and_restore_round_trips() {
    let Some(rig) = Rig::new(&[("vm", "scrub-img")], &[]) else {
        return;
    };
    let mut img = Image::create(&rig, "scrub-img", 4);
    img.mutate(&rig, 100, 2);
    rig.ok(&["rbd", "backup", &rig.pool, "vm"]);
    let file = rig.image_file("vm");
    // flip a byte inside data
    let mut data = std::fs::read(&file).unwrap();
    let at = data.iter().position(|&b| b != 0).unwrap() + 100;
    data[at] ^= 0x55;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .and_then(|f| std::os::unix::fs::FileExt::write_all_at(&f, &data[at..=at], at as u64))
        .unwrap();
    let out = rig.ok(&["rbd", "backup", "-c", &rig.pool, "vm"]);
    let block = at as u64 / 4096 * 4096;
    assert!(
        out.contains(&format!("scrub: repaired bytes {block}..{}", block + 4096)),
        "{out}"
    );
    assert!(out.contains("1 repairs"), "{out}");
    rig.assert_consistent("vm", "scrub-img");
    assert_eq!(sha_file(&file), img.model_sha());
    // a clean scrub repairs nothing
    let out = rig.ok(&["rbd", "backup", "-c", &rig.pool, "vm"]);
    assert!(out.contains("0 repairs"), "{out}");

    // restore to a new image
    rig.ok(&[
        "rbd",
        "restore",
        file.to_str().unwrap(),
        &rig.pool,
        "scrub-restored",
    ]);
    assert_eq!(rig.export_sha("scrub-restored", None), sha_file(&file));
    // a file with a pending diff is refused
    let copy = rig.home.join("pending-copy");
    std::fs::copy(&file, &copy).unwrap();
    xattr::set(&copy, "user.rbd.pending-snapshot", b"backup-x").unwrap();
    let out = rig.strata(
        &[
            "rbd",
            "restore",
            copy.to_str().unwrap(),
            &rig.pool,
            "scrub-r2",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("partially applied diff"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn rbd_snapshot_units_repointed_names_and_drop() {
    let Some(rig) = Rig::new(
        &[("vm", "snap-a")],
        &[
            ("v1", "snap-a@rel-1"),
            ("v2", "snap-a@rel-2"),
            // why: Deltaic's configs name a snapshot alone; strata finds its image
            ("bare", "rel-1"),
        ],
    ) else {
        return;
    };
    let mut a = Image::create(&rig, "snap-a", 5);
    a.mutate(&rig, 100, 0);
    rig.rbd(&[
        "snap",
        "create",
        "--no-progress",
        &format!("{}@rel-1", rig.spec("snap-a")),
    ]);
    let v1 = a.model_sha();
    a.mutate(&rig, 20, 2);
    rig.rbd(&[
        "snap",
        "create",
        "--no-progress",
        &format!("{}@rel-2", rig.spec("snap-a")),
    ]);

    let out = rig.ok(&["rbd", "backup", "-s", &rig.pool, "v1"]);
    assert!(out.contains("in full"), "{out}");
    let out = rig.ok(&["rbd", "backup", "-s", &rig.pool, "v2"]);
    assert!(out.contains("as a diff from rel-1"), "{out}");
    assert_eq!(sha_file(&rig.snapshot_file("v1")), v1);
    let out = rig.ok(&["rbd", "backup", "-s", &rig.pool, "bare"]);
    assert!(
        out.contains("fetched") && out.contains("snap-a@rel-1"),
        "{out}"
    );
    assert_eq!(sha_file(&rig.snapshot_file("bare")), v1);
    assert_eq!(sha_file(&rig.snapshot_file("v2")), a.model_sha());
    let out = rig.ok(&["rbd", "backup", "-s", "-c", &rig.pool, "v2"]);
    assert!(
        out.contains("unchanged") && out.contains("0 repairs"),
        "{out}"
    );
    assert!(xattr_text(&rig.snapshot_file("v2"), "user.rbd.snapid").is_some());

    // the friendly name pointed at another image: full fetch, old snapshot removed
    rig.ok(&["rbd", "backup", &rig.pool, "vm"]);
    assert_eq!(rig.backup_snapshots("snap-a").len(), 1);

    // the file lost its xattr: a full fetch that names the old snapshot and leaves it
    let old = rig.backup_snapshots("snap-a").remove(0);
    let old_spec = format!("{}@{old}", rig.spec("snap-a"));
    xattr::remove(rig.image_file("vm"), "user.rbd.snapshot").unwrap();
    let out = rig.ok(&["rbd", "backup", &rig.pool, "vm"]);
    assert!(
        out.contains("full fetch")
            && out.contains("also holds backup snapshots this unit's file does not name")
            && out.contains(&format!("rbd snap rm {old_spec}")),
        "{out}"
    );
    assert_eq!(rig.backup_snapshots("snap-a").len(), 2);
    rig.rbd(&["snap", "rm", "--no-progress", &old_spec]);
    rig.assert_consistent("vm", "snap-a");
    let mut b = Image::create(&rig, "snap-b", 6);
    b.mutate(&rig, 50, 0);
    rig.write_config(&[("vm", "snap-b")], &[]);
    let out = rig.ok(&["rbd", "backup", &rig.pool, "vm"]);
    assert!(
        out.contains("belongs to image snap-a") && out.contains("full fetch"),
        "{out}"
    );
    assert!(rig.backup_snapshots("snap-a").is_empty());
    rig.assert_consistent("vm", "snap-b");
    assert_eq!(sha_file(&rig.image_file("vm")), b.model_sha());

    // drop removes strata's snapshot, so the owner can delete the image
    let out = rig.ok(&["rbd", "drop", &rig.pool, "vm"]);
    assert!(out.contains("1 snapshots removed"), "{out}");
    assert!(rig.backup_snapshots("snap-b").is_empty());
    assert_eq!(xattr_text(&rig.image_file("vm"), "user.rbd.snapshot"), None);
    rig.rbd(&["rm", "--no-progress", &rig.spec("snap-b")]);
}

#[test]
fn rbd_units_are_backed_up_by_run() {
    let Some(rig) = Rig::new(&[("vm", "run-img")], &[("rel", "run-img@rel")]) else {
        return;
    };
    let mut img = Image::create(&rig, "run-img", 7);
    img.mutate(&rig, 40, 0);
    rig.rbd(&[
        "snap",
        "create",
        "--no-progress",
        &format!("{}@rel", rig.spec("run-img")),
    ]);
    let rel = img.model_sha();
    for round in 0..2 {
        img.mutate(&rig, 20, 1);
        let out = rig.strata(&["run"], None);
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
        for unit in ["images/vm", "snapshots/rel"] {
            let unit = format!("rbd/{}/{unit}", rig.pool);
            assert!(
                stdout.contains(&format!("done  {unit} ok")),
                "round {round}: {stdout}"
            );
            let state: serde_json::Value = serde_json::from_slice(
                &std::fs::read(rig.root.join(format!(".strata/state/{unit}.json"))).unwrap(),
            )
            .unwrap();
            assert!(state["bytes"].as_u64().unwrap() > 0, "{state}");
        }
        rig.assert_consistent("vm", "run-img");
        assert_eq!(sha_file(&rig.image_file("vm")), img.model_sha());
        assert_eq!(sha_file(&rig.snapshot_file("rel")), rel);
    }
}

/// What Deltaic's `fetch_image` leaves: an RBD snapshot named
/// `backup-<uuid1>`, the image at that snapshot in `rbd/<pool>/images/<name>`
/// and its name in `user.rbd.snapshot`. The file is written by the real
/// `rbd export` of that snapshot (the bytes Deltaic's unpacked full diff
/// holds), with holes where it holds zeros, as Deltaic's. Returns the snapshot's name.
fn deltaic_full_backup(rig: &Rig, friendly: &str, image: &str, uuid1: &str) -> String {
    let snap = format!("backup-{uuid1}");
    rig.rbd(&["snap", "create", &format!("{}@{snap}", rig.spec(image))]);
    let file = rig.image_file(friendly);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    rig.rbd(&[
        "export",
        "--no-progress",
        &format!("{}@{snap}", rig.spec(image)),
        file.to_str().unwrap(),
    ]);
    // why: `rbd export` writes zeros out; Deltaic's unpack_diff seeks over
    // what the diff leaves out and punches its zero extents, so its file has
    // holes there
    let out = rig
        .home
        .command("fallocate")
        .arg("--dig-holes")
        .arg(&file)
        .output()
        .expect("run fallocate");
    assert!(out.status.success(), "fallocate: {}", text(&out.stderr));
    xattr::set(&file, "user.rbd.snapshot", snap.as_bytes()).unwrap();
    snap
}

/// The number before `word` in strata's summary line (`N bytes written`).
fn summary_number(out: &str, word: &str) -> u64 {
    let at = out
        .find(word)
        .unwrap_or_else(|| panic!("no `{word}` in:\n{out}"));
    out[..at]
        .split_whitespace()
        .next_back()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number before `{word}` in:\n{out}"))
}

/// Taking over a Deltaic root (issue 17): strata's first backup of an image
/// Deltaic backed up continues from Deltaic's snapshot (an incremental, no
/// full fetch), leaves the file's inode and, when the image did not change,
/// its size and mtime, writes only the changed extents otherwise, and ends
/// with the file equal to `rbd export` of its own new snapshot, Deltaic's
/// snapshot removed; an incremental Deltaic left half done is finished; a
/// snapshot unit Deltaic fetched is left untouched.
#[test]
fn rbd_takes_over_a_deltaic_image_backup_incrementally() {
    let Some(rig) = Rig::new(
        &[
            ("quiet", "dq-img"),
            ("busy", "db-img"),
            ("crashed", "dc-img"),
        ],
        // why: Deltaic's configs name a snapshot alone
        &[("release", "dq-release")],
    ) else {
        return;
    };
    let mut quiet = Image::create(&rig, "dq-img", 17);
    quiet.mutate(&rig, 100, 0);
    let mut busy = Image::create(&rig, "db-img", 18);
    busy.mutate(&rig, 100, 0);
    let quiet_snap = deltaic_full_backup(
        &rig,
        "quiet",
        "dq-img",
        "0c8a1f4e-2f1b-11ef-9a41-525400a1b2c3",
    );
    let busy_snap = deltaic_full_backup(
        &rig,
        "busy",
        "db-img",
        "0c8a1f4f-2f1b-11ef-9a41-525400a1b2c3",
    );
    let stat = |friendly: &str| std::fs::metadata(rig.image_file(friendly)).unwrap();
    let (quiet_before, busy_before) = (stat("quiet"), stat("busy"));

    // Nothing changed in the image: nothing of the file is written.
    let out = rig.ok(&["rbd", "backup", &rig.pool, "quiet"]);
    assert!(
        out.contains(&format!("incremental from {quiet_snap} to backup-")),
        "strata continued from Deltaic's snapshot:\n{out}"
    );
    assert_eq!(summary_number(&out, " bytes written"), 0, "{out}");
    assert_eq!(summary_number(&out, " punched"), 0, "{out}");
    rig.assert_consistent("quiet", "dq-img");
    let after = stat("quiet");
    assert_eq!(
        (after.ino(), after.len(), after.mtime(), after.mtime_nsec()),
        (
            quiet_before.ino(),
            quiet_before.len(),
            quiet_before.mtime(),
            quiet_before.mtime_nsec()
        ),
        "the file of an unchanged image is not rewritten"
    );
    assert_eq!(sha_file(&rig.image_file("quiet")), quiet.model_sha());

    // A few extents changed: those alone are written, in the same file.
    busy.mutate(&rig, 5, 1);
    let out = rig.ok(&["rbd", "backup", &rig.pool, "busy"]);
    assert!(
        out.contains(&format!("incremental from {busy_snap} to backup-")),
        "strata continued from Deltaic's snapshot:\n{out}"
    );
    let written = summary_number(&out, " bytes written");
    // why: mutate writes 5 extents of at most 64 KiB each
    assert!(
        written > 0 && written <= 5 * 64 * 1024,
        "only the changed extents are written:\n{out}"
    );
    rig.assert_consistent("busy", "db-img");
    let new = xattr_text(&rig.image_file("busy"), "user.rbd.snapshot").unwrap();
    assert_ne!(new, busy_snap);
    assert_eq!(
        sha_file(&rig.image_file("busy")),
        rig.export_sha("db-img", Some(&new)),
        "the file equals `rbd export` of strata's new snapshot"
    );
    assert_eq!(sha_file(&rig.image_file("busy")), busy.model_sha());
    assert_eq!(stat("busy").ino(), busy_before.ino(), "updated in place");

    // A Deltaic incremental interrupted after make_patch (the `.pending`
    // diff written, user.rbd.pending-snapshot set, not yet applied) is
    // finished by strata from Deltaic's own diff, then continued.
    let mut crashed = Image::create(&rig, "dc-img", 19);
    crashed.mutate(&rig, 100, 0);
    let old = deltaic_full_backup(
        &rig,
        "crashed",
        "dc-img",
        "0c8a1f50-2f1b-11ef-9a41-525400a1b2c3",
    );
    crashed.mutate(&rig, 5, 1);
    let pending = "backup-5e3d7a02-2f1c-11ef-9a41-525400a1b2c3";
    let file = rig.image_file("crashed");
    rig.rbd(&[
        "snap",
        "create",
        "--no-progress",
        &format!("{}@{pending}", rig.spec("dc-img")),
    ]);
    let diff = rig.rbd(&[
        "export-diff",
        "--no-progress",
        "-p",
        &rig.pool,
        "dc-img",
        "--snap",
        pending,
        "-",
        "--from-snap",
        &old,
    ]);
    let mut pending_path = file.clone().into_os_string();
    pending_path.push(".pending");
    std::fs::write(&pending_path, diff).unwrap();
    xattr::set(&file, "user.rbd.pending-snapshot", pending.as_bytes()).unwrap();
    let out = rig.ok(&["rbd", "backup", &rig.pool, "crashed"]);
    assert!(
        out.contains(&format!(
            "finishing a backup interrupted at snapshot {pending}"
        )) && out.contains(&format!("incremental from {pending} to backup-")),
        "strata finished Deltaic's incremental, then continued from it:\n{out}"
    );
    rig.assert_consistent("crashed", "dc-img");
    assert_eq!(sha_file(&file), crashed.model_sha());

    // A snapshot unit Deltaic fetched (fetch_snapshot's file and
    // user.rbd.snapshot, then user.rbd.snapid) is kept as it is: not
    // even its ctime moves.
    let spec = format!("{}@dq-release", rig.spec("dq-img"));
    rig.rbd(&["snap", "create", "--no-progress", &spec]);
    let file = rig.snapshot_file("release");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    rig.rbd(&["export", "--no-progress", &spec, file.to_str().unwrap()]);
    let json = rig.rbd(&["snap", "ls", "--format=json", &rig.spec("dq-img")]);
    let snapid = parse_snap_ls(&json)
        .unwrap()
        .into_iter()
        .find(|s| s.name == "dq-release")
        .unwrap()
        .id;
    xattr::set(&file, "user.rbd.snapshot", b"dq-release").unwrap();
    xattr::set(&file, "user.rbd.snapid", snapid.to_string().as_bytes()).unwrap();
    let stamp = |m: &std::fs::Metadata| {
        (
            m.ino(),
            m.len(),
            (m.mtime(), m.mtime_nsec()),
            (m.ctime(), m.ctime_nsec()),
        )
    };
    let before = stamp(&std::fs::metadata(&file).unwrap());
    let out = rig.ok(&["rbd", "backup", "-s", &rig.pool, "release"]);
    assert!(out.contains("unchanged"), "{out}");
    assert_eq!(
        stamp(&std::fs::metadata(&file).unwrap()),
        before,
        "Deltaic's snapshot file is not touched:\n{out}"
    );
    assert_eq!(
        xattr_text(&file, "user.rbd.snapid"),
        Some(snapid.to_string())
    );
    assert_eq!(
        sha_file(&file),
        rig.export_sha("dq-img", Some("dq-release"))
    );
}

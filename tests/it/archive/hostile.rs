//! Hostile archives: each is refused with a clear message, and not one
//! byte lands outside DESTDIR (nor, for the checks before tar, inside it).

use super::fixtures::{World, entries, text};
use super::{UNIT, UNITS};
use sha2::{Digest, Sha256};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn sha(p: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(p).unwrap()))
}

/// Give `file` the xattrs `retrieve` writes; `sha` defaults to the file's own.
fn stage(file: &Path, compression: &str, encryption: &str, sha256: Option<&str>) {
    let own = sha(file);
    for (k, v) in [
        ("user.archive.compression", compression),
        ("user.archive.encryption", encryption),
        ("user.archive.sha256", sha256.unwrap_or(&own)),
    ] {
        xattr::set(file, k, v.as_bytes()).unwrap();
    }
}

/// A tar made by Python's tarfile from a list of members:
/// (kind f|l|h, name, link target).
fn evil_tar(w: &World, path: &Path, members: &[(&str, &str, &str)]) {
    let mut script = String::from(
        "import tarfile, io, sys\nt = tarfile.open(sys.argv[1], 'w', format=tarfile.GNU_FORMAT)\n",
    );
    for (kind, name, link) in members {
        let ty = match *kind {
            "f" => "tarfile.REGTYPE",
            "l" => "tarfile.SYMTYPE",
            "h" => "tarfile.LNKTYPE",
            "d" => "tarfile.DIRTYPE",
            _ => unreachable!(),
        };
        let _ = write!(
            script,
            "i = tarfile.TarInfo({name:?}); i.type = {ty}; i.linkname = {link:?}; i.mode = 0o755\n\
             data = b'pwned' if i.type == tarfile.REGTYPE else b''\ni.size = len(data)\nt.addfile(i, io.BytesIO(data))\n"
        );
    }
    script.push_str("t.close()\n");
    let out = w
        .home
        .command("python3")
        .arg("-c")
        .arg(&script)
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "python: {}", text(&out.stderr));
}

/// (kind, name, link target) of a crafted tar member.
type Member = (&'static str, String, String);

struct Case {
    name: &'static str,
    file: PathBuf,
    config: PathBuf,
    expect: &'static str,
}

#[test]
fn hostile_archives_are_refused_and_nothing_lands_outside_destdir() {
    let Some(w) = World::new(UNITS, true, false, |root| {
        std::fs::create_dir_all(root.join(UNIT)).unwrap();
        std::fs::write(root.join(UNIT).join("data"), vec![7u8; 100_000]).unwrap();
    }) else {
        return;
    };
    let enc = w.config("enc", true, "");
    let plain = w.config("plain", false, "");
    let outside = w.home.join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("victim"), "precious").unwrap();
    let evil = w.home.join("evil");
    std::fs::create_dir(&evil).unwrap();

    // Genuine archives to tamper with.
    w.ok(&enc, &["archive", "-p", "local-lz4", "run"]);
    w.ok(&plain, &["archive", "-p", "local-none", "run"]);
    let fetch = |config: &Path, profile: &str, dir: &str| -> PathBuf {
        let d = w.home.join(dir);
        let out = w.ok(
            config,
            &[
                "archive",
                "-p",
                profile,
                "retrieve",
                &w.snapshot,
                d.to_str().unwrap(),
                UNIT,
            ],
        );
        PathBuf::from(out.trim())
    };
    let good_enc = fetch(&enc, "local-lz4", "good-enc");
    let good_plain = fetch(&plain, "local-none", "good-plain");
    let plain_tar = good_plain.clone();
    let mut cases: Vec<Case> = Vec::new();
    let mut add = |name: &'static str, config: &Path, expect: &'static str, file: PathBuf| {
        cases.push(Case {
            name,
            file,
            config: config.to_owned(),
            expect,
        });
    };

    // Members that would land outside DESTDIR (plain config, sha256 matches).
    let outside_s = outside.to_str().unwrap().to_owned();
    let dest_rel_outside = "../outside";
    let tars: Vec<(&'static str, Vec<Member>, &'static str)> = vec![
        (
            "dotdot",
            vec![("f", format!("{dest_rel_outside}/evil"), String::new())],
            "contains `..`",
        ),
        (
            "absolute",
            vec![("f", format!("{outside_s}/evil"), String::new())],
            "absolute path",
        ),
        (
            "symlink-then-file",
            vec![
                ("l", "u/l".into(), outside_s.clone()),
                ("f", "u/l/evil".into(), String::new()),
            ],
            "through a symbolic link",
        ),
        (
            "hardlink-outside",
            vec![("h", "u/h".into(), format!("{dest_rel_outside}/victim"))],
            "hard link to a file outside",
        ),
        (
            "hardlink-absolute",
            vec![("h", "u/h".into(), format!("{outside_s}/victim"))],
            "hard link to a file outside",
        ),
    ];
    for (name, members, expect) in &tars {
        let p = evil.join(format!("{name}.tar"));
        let m: Vec<(&str, &str, &str)> = members
            .iter()
            .map(|(k, n, l)| (*k, n.as_str(), l.as_str()))
            .collect();
        evil_tar(&w, &p, &m);
        stage(&p, "none", "none", None);
        add(name, &plain, expect, p);
    }

    // sha256 mismatch: a genuine plain archive whose metadata disagrees.
    let p = evil.join("sha-mismatch");
    std::fs::copy(&plain_tar, &p).unwrap();
    stage(&p, "none", "none", Some(&"0".repeat(64)));
    add("sha256-mismatch", &plain, "sha256 mismatch", p);

    // Truncated plain archive (metadata of the whole one).
    let p = evil.join("truncated-plain");
    let bytes = std::fs::read(&plain_tar).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    stage(&p, "none", "none", Some(&sha(&plain_tar)));
    add("truncated-plain", &plain, "sha256 mismatch", p);

    // Downgrade: a plain archive where the config encrypts.
    let p = evil.join("downgrade");
    std::fs::copy(&plain_tar, &p).unwrap();
    stage(&p, "none", "none", None);
    add("downgrade", &enc, "a downgrade", p);

    let g = w.gpg.as_ref().unwrap();
    // Tampered ciphertext (its sha256 made to match, so gpg is the judge).
    let p = evil.join("tampered");
    let mut bytes = std::fs::read(&good_enc).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&p, &bytes).unwrap();
    stage(&p, "lz4", "gpg", None);
    add("tampered-ciphertext", &enc, "signature check failed", p);

    // Truncated ciphertext, sha256 made to match.
    let p = evil.join("truncated-enc");
    let bytes = std::fs::read(&good_enc).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() * 2 / 3]).unwrap();
    stage(&p, "lz4", "gpg", None);
    add("truncated-ciphertext", &enc, "signature check failed", p);

    // Encrypted to us but unsigned.
    let p = evil.join("unsigned");
    g.run(&w.home, &["-e", "-r", &g.recipient], &plain_tar, &p);
    stage(&p, "none", "gpg", None);
    add("unsigned", &enc, "unsigned", p);

    // Signed by another key.
    let p = evil.join("mallory");
    g.run(
        &w.home,
        &["-s", "-e", "-u", &g.mallory, "-r", &g.recipient],
        &plain_tar,
        &p,
    );
    stage(&p, "none", "gpg", None);
    add("signed-by-another-key", &enc, "not by the configured", p);

    for c in cases {
        let dest = w.home.join(format!("dest-{}", c.name));
        let out = w.strata(
            &c.config,
            &[
                "archive",
                "unpack",
                "--any-label",
                dest.to_str().unwrap(),
                c.file.to_str().unwrap(),
            ],
        );
        let err = text(&out.stderr);
        assert!(!out.status.success(), "{}: accepted!", c.name);
        assert!(
            err.contains(c.expect),
            "{}: message {err:?} lacks {:?}",
            c.name,
            c.expect
        );
        assert_eq!(
            entries(&outside),
            vec![PathBuf::from("victim")],
            "{}: something landed outside DESTDIR",
            c.name
        );
        assert_eq!(
            std::fs::read_to_string(outside.join("victim")).unwrap(),
            "precious"
        );
        assert!(
            entries(&dest).is_empty(),
            "{}: DESTDIR got {:?}",
            c.name,
            entries(&dest)
        );
    }
    let left: Vec<_> = entries(&w.spool)
        .into_iter()
        .filter(|p| p.to_string_lossy().starts_with("unpack-"))
        .collect();
    assert!(left.is_empty(), "decrypted spool files left: {left:?}");

    // The genuine ones still unpack.
    let dest = w.home.join("dest-good");
    w.ok(
        &enc,
        &[
            "archive",
            "unpack",
            dest.to_str().unwrap(),
            good_enc.to_str().unwrap(),
        ],
    );
    assert_eq!(
        std::fs::read(dest.join(UNIT).join("data")).unwrap(),
        vec![7u8; 100_000]
    );
}

/// The largest file in `dir` now (0 if none).
fn largest_file(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |rd| {
        rd.filter_map(Result::ok)
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .max()
            .unwrap_or(0)
    })
}

#[test]
fn a_gpg_decompression_bomb_stops_before_it_fills_the_spool() {
    let Some(w) = World::new(UNITS, true, false, |root| {
        std::fs::create_dir_all(root.join(UNIT)).unwrap();
    }) else {
        return;
    };
    let enc = w.config("enc", true, "");
    let g = w.gpg.as_ref().unwrap();
    // 256 MiB of zeros, bzip2-compressed inside gpg, encrypted to our key and
    // unsigned: anyone who has the public recipient key can make it.
    let bomb = w.home.join("bomb");
    let out = w
        .home
        .command("sh")
        .env("GNUPGHOME", &g.dir)
        .arg("-c")
        .arg(
            "head -c 268435456 /dev/zero | gpg --batch --no-tty --trust-model always \
             --compress-algo bzip2 --bzip2-compress-level 9 -e -r \"$1\" -o \"$2\"",
        )
        .args(["sh", &g.recipient, bomb.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "gpg: {}", text(&out.stderr));
    let cipher = std::fs::metadata(&bomb).unwrap().len();
    assert!(cipher < 4096, "the bomb is {cipher} bytes");
    stage(&bomb, "none", "gpg", None);
    std::fs::create_dir_all(&w.spool).unwrap();

    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = {
        let done = done.clone();
        let spool = w.spool.clone();
        std::thread::spawn(move || {
            let mut max = 0;
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                max = max.max(largest_file(&spool));
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            max
        })
    };
    let dest = w.home.join("dest-bomb");
    let out = w.strata(
        &enc,
        &[
            "archive",
            "unpack",
            "--any-label",
            dest.to_str().unwrap(),
            bomb.to_str().unwrap(),
        ],
    );
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let max = poller.join().unwrap();
    let err = text(&out.stderr);
    assert!(!out.status.success(), "a bomb was accepted");
    assert!(
        err.contains("OpenPGP packet of type 8 (compressed data), which strata never writes"),
        "{err}"
    );
    assert!(
        max <= cipher,
        "the spool grew to {max} bytes for a {cipher}-byte archive"
    );
    assert!(entries(&dest).is_empty());
}

/// Run gpg on the test keyring, which must succeed; its stdout.
fn keyring(w: &World, args: &[&str]) -> String {
    let g = w.gpg.as_ref().expect("gpg keys");
    let out = w
        .home
        .command("gpg")
        .env("GNUPGHOME", &g.dir)
        .args(["--batch", "--no-tty", "--passphrase", ""])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "gpg {args:?}: {}", text(&out.stderr));
    text(&out.stdout)
}

/// The fingerprint of the test keyring's key with user ID `uid`.
fn fingerprint_of(w: &World, uid: &str) -> String {
    keyring(w, &["--with-colons", "--list-keys", uid])
        .lines()
        .find_map(|l| {
            l.strip_prefix("fpr:")
                .map(|r| r.trim_matches(':').to_owned())
        })
        .expect("a fingerprint")
}

#[test]
fn an_archive_signed_by_a_key_that_has_expired_since_unpacks_with_a_note() {
    let Some(w) = World::new(UNITS, true, false, |root| {
        std::fs::create_dir_all(root.join(UNIT)).unwrap();
        std::fs::write(root.join(UNIT).join("data"), b"kept for years").unwrap();
    }) else {
        return;
    };
    let plain = w.config("plain", false, "");
    w.ok(&plain, &["archive", "-p", "local-none", "run"]);
    let d = w.home.join("plain-ret");
    let tar = PathBuf::from(
        w.ok(
            &plain,
            &[
                "archive",
                "-p",
                "local-none",
                "retrieve",
                &w.snapshot,
                d.to_str().unwrap(),
                UNIT,
            ],
        )
        .trim(),
    );
    // A signing key made in 2020 that expired on 2021-01-01, and an archive
    // it signed (encrypted to our key) in June 2020, while it was valid.
    let g = w.gpg.as_ref().unwrap();
    let gpg = |args: &[&str]| keyring(&w, args);
    gpg(&[
        "--faked-system-time",
        "20200101T000000",
        "--quick-gen-key",
        "Old Signer <old@strata.test>",
        "ed25519",
        "sign",
        "2021-01-01",
    ]);
    let old = fingerprint_of(&w, "old@strata.test");
    let signed = w.home.join("signed-in-2020");
    gpg(&[
        "--faked-system-time",
        "20200601T000000",
        // why: the recipient key was made today, "in the future" of June 2020
        "--ignore-valid-from",
        "--ignore-time-conflict",
        "--trust-model",
        "always",
        "--compress-algo",
        "none",
        "-s",
        "-e",
        "-u",
        &old,
        "-r",
        &g.recipient,
        "-o",
        signed.to_str().unwrap(),
        tar.to_str().unwrap(),
    ]);
    stage(&signed, "none", "gpg", None);
    xattr::set(&signed, "user.archive.set", w.snapshot.as_bytes()).unwrap();
    xattr::set(&signed, "user.archive.unit", UNIT.as_bytes()).unwrap();
    let config = w.config("enc", true, "");
    let text_cfg = std::fs::read_to_string(&config)
        .unwrap()
        .replace(&g.signer, &old);
    let old_cfg = w.home.join("old.yaml");
    std::fs::write(&old_cfg, text_cfg).unwrap();

    // An unrelated key, expired before the signer, trusted ultimately: gpg
    // checks its trustdb during the unpack and says KEYEXPIRED for it too,
    // in the signature's status lines.
    gpg(&[
        "--faked-system-time",
        "20190101T000000",
        "--quick-gen-key",
        "Unrelated <unrelated@strata.test>",
        "rsa2048",
        "cert",
        "2019-06-01",
    ]);
    let unrelated = fingerprint_of(&w, "unrelated@strata.test");
    gpg(&[
        "--faked-system-time",
        "20190101T000000",
        "--quick-add-key",
        &unrelated,
        "rsa2048",
        "encr",
        "2019-06-01",
    ]);
    // why: a trustdb never checked (as on a recovery machine that just
    // imported its keys) is checked during the next verification
    let trust = w.home.join("ownertrust.txt");
    let owners = gpg(&["--export-ownertrust"]);
    std::fs::write(&trust, format!("{owners}{unrelated}:6:\n{old}:6:\n")).unwrap();
    std::fs::remove_file(g.dir.join("trustdb.gpg")).unwrap();
    gpg(&["--import-ownertrust", trust.to_str().unwrap()]);

    let dest = w.home.join("dest-old");
    let out = w.strata(
        &old_cfg,
        &[
            "archive",
            "unpack",
            dest.to_str().unwrap(),
            signed.to_str().unwrap(),
        ],
    );
    let err = text(&out.stderr);
    assert!(out.status.success(), "refused: {err}");
    assert!(
        err.contains("while that key was valid; the key has expired since (2021-01-01)"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(
        std::fs::read(dest.join(UNIT).join("data")).unwrap(),
        b"kept for years"
    );
}

#[test]
fn an_archive_of_another_unit_or_set_served_under_this_name_is_refused() {
    let units = "  u:\n    command: [printf, 'u\\n']\n    file: out\n  v:\n    command: [printf, 'v\\n']\n    file: out\n";
    let Some(w) = World::new(units, true, false, |_| {}) else {
        return;
    };
    let enc = w.config("enc", true, "");
    let plain = w.config("plain", false, "");
    let first = w.snapshot.clone();
    w.ok(&enc, &["archive", "-p", "local-lz4", "run", &first]);
    w.ok(&plain, &["run"]);
    let mut snaps: Vec<String> = std::fs::read_dir(w.root.join(".snapshots"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    snaps.sort();
    let second = snaps.pop().unwrap();
    assert_ne!(first, second);
    w.ok(&enc, &["archive", "-p", "local-lz4", "run", &second]);

    // Whoever controls the store serves validly signed archives under the
    // wrong names: the first (older) set's dump/u as the second set's, and
    // dump/v as dump/u in the first set.
    let store = w.store.join("enc/lz4");
    let swap = |from_set: &str, from: &str, to_set: &str, to: &str| {
        for ext in [".archive", ".meta.json"] {
            std::fs::copy(
                store.join(from_set).join(format!("dump%2F{from}{ext}")),
                store.join(to_set).join(format!("dump%2F{to}{ext}")),
            )
            .unwrap();
        }
    };
    let retrieve = |set: &str, dir: &str| -> PathBuf {
        let d = w.home.join(dir);
        PathBuf::from(
            w.ok(
                &enc,
                &[
                    "archive",
                    "-p",
                    "local-lz4",
                    "retrieve",
                    set,
                    d.to_str().unwrap(),
                    "dump/u",
                ],
            )
            .trim(),
        )
    };
    swap(&first, "u", &second, "u");
    let other_set = retrieve(&second, "r-other-set");
    swap(&first, "v", &first, "u");
    let other_unit = retrieve(&first, "r-other-unit");

    for (file, found, expected) in [
        (
            &other_unit,
            format!("{first} dump/v"),
            format!("{first} dump/u"),
        ),
        (
            &other_set,
            format!("{first} dump/u"),
            format!("{second} dump/u"),
        ),
    ] {
        let dest = w.home.join("dest-label");
        let out = w.strata(
            &enc,
            &[
                "archive",
                "unpack",
                dest.to_str().unwrap(),
                file.to_str().unwrap(),
            ],
        );
        let err = text(&out.stderr);
        assert!(!out.status.success(), "{}: accepted", file.display());
        assert!(
            err.contains(&format!(
                "its tar volume label is {found:?}, but it was retrieved as {expected:?}"
            )),
            "{err}"
        );
        assert!(entries(&dest).is_empty(), "{:?}", entries(&dest));
    }

    // A loose file (no record of its set and unit) needs --any-label.
    let loose = w.home.join("loose");
    std::fs::copy(&other_unit, &loose).unwrap();
    for k in [
        "user.archive.compression",
        "user.archive.encryption",
        "user.archive.sha256",
    ] {
        xattr::set(&loose, k, &xattr::get(&other_unit, k).unwrap().unwrap()).unwrap();
    }
    let dest = w.home.join("dest-loose");
    let args = |any: bool| {
        let mut v = vec!["archive", "unpack"];
        if any {
            v.push("--any-label");
        }
        v.push(dest.to_str().unwrap());
        v.push(loose.to_str().unwrap());
        v
    };
    let out = w.strata(&enc, &args(false));
    let err = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("cannot be checked; pass --any-label to unpack it anyway"),
        "{err}"
    );
    assert!(entries(&dest).is_empty());
    w.ok(&enc, &args(true));
    assert_eq!(
        std::fs::read_to_string(dest.join("dump/v/out")).unwrap(),
        "v\n"
    );
}

#[test]
fn root_unpack_skips_devices_setuid_files_and_capabilities_unless_asked() {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    if !crate::support::env::require("root", crate::support::env::is_root()) {
        return;
    }
    let home = crate::support::env::TestHome::new();
    let tar = home.join("privileged.tar");
    let script = r"
import tarfile, io, sys
t = tarfile.open(sys.argv[1], 'w', format=tarfile.PAX_FORMAT)
def add(name, typ=tarfile.REGTYPE, mode=0o644, data=b'', link='', pax=None, dev=(0, 0)):
    i = tarfile.TarInfo(name); i.type = typ; i.mode = mode; i.linkname = link
    i.size = len(data) if typ == tarfile.REGTYPE else 0
    i.devmajor, i.devminor = dev
    if pax: i.pax_headers = pax
    t.addfile(i, io.BytesIO(data) if typ == tarfile.REGTYPE else None)
add('u', tarfile.DIRTYPE, 0o755)
add('u/null', tarfile.CHRTYPE, 0o666, dev=(1, 3))
add('u/suid', mode=0o4755, data=b'#!/bin/sh\n')
add('u/sgid', mode=0o2755, data=b'x')
add('u/suid-link', tarfile.LNKTYPE, 0o4755, link='u/suid')
add('u/shared', tarfile.DIRTYPE, 0o2775)
add('u/cap', mode=0o755, data=b'y', pax={
    'SCHILY.xattr.security.capability': '\x01\x00\x00\x02\x00\x20' + '\x00' * 14,
    'SCHILY.xattr.user.kept': 'yes'})
add('u/plain', data=b'z')
t.close()
";
    let out = home
        .command("python3")
        .args(["-c", script])
        .arg(&tar)
        .output()
        .unwrap();
    assert!(out.status.success(), "python: {}", text(&out.stderr));
    stage(&tar, "none", "none", None);
    let config = home.join("c.yaml");
    std::fs::write(
        &config,
        format!(
            "settings:\n  root: {}\n  snapshot-store: dir\n  archive-spool: {}\n",
            home.path().display(),
            home.join("spool").display()
        ),
    )
    .unwrap();
    let unpack = |dest: &Path, extra: &[&str]| {
        let out = crate::support::env::strata(&home)
            .arg("-c")
            .arg(&config)
            .args(["--allow-root", "archive", "unpack", "--any-label"])
            .args(extra)
            .arg(dest)
            .arg(&tar)
            .output()
            .unwrap();
        assert!(out.status.success(), "{extra:?}: {}", text(&out.stderr));
        text(&out.stderr)
    };
    let cap = |p: &Path| xattr::get(p, "security.capability").unwrap();

    // By default: none of them, and a count.
    let dest = home.join("dest");
    let err = unpack(&dest, &[]);
    assert!(
        err.contains(
            "skipped 1 device nodes (--devices creates them), 3 setuid/setgid files (--setuid restores them), 1 security.capability xattrs (--setuid restores them)"
        ),
        "{err}"
    );
    let u = dest.join("u");
    for gone in ["null", "suid", "sgid", "suid-link"] {
        assert!(
            u.join(gone).symlink_metadata().is_err(),
            "{gone} was restored"
        );
    }
    assert_eq!(cap(&u.join("cap")), None, "security.capability restored");
    assert_eq!(
        xattr::get(u.join("cap"), "user.kept").unwrap().as_deref(),
        Some(&b"yes"[..])
    );
    assert_eq!(std::fs::read(u.join("plain")).unwrap(), b"z");
    // a setgid directory is no privilege: it is restored as it is
    assert_eq!(
        std::fs::metadata(u.join("shared"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o2775
    );

    // Asked for: all of them.
    let dest = home.join("dest-all");
    let err = unpack(&dest, &["--devices", "--setuid"]);
    assert!(!err.contains("skipped"), "{err}");
    let u = dest.join("u");
    assert!(
        std::fs::symlink_metadata(u.join("null"))
            .unwrap()
            .file_type()
            .is_char_device()
    );
    for (f, bits) in [("suid", 0o4755), ("sgid", 0o2755), ("suid-link", 0o4755)] {
        assert_eq!(
            std::fs::metadata(u.join(f)).unwrap().permissions().mode() & 0o7777,
            bits,
            "{f}"
        );
    }
    assert!(cap(&u.join("cap")).is_some());
}

#[test]
fn a_key_gpg_refuses_is_named_with_what_is_wrong_and_nothing_is_stored() {
    let Some(w) = World::new(UNITS, true, false, |root| {
        std::fs::create_dir_all(root.join(UNIT)).unwrap();
        std::fs::write(root.join(UNIT).join("data"), b"secret").unwrap();
    }) else {
        return;
    };
    let g = w.gpg.as_ref().unwrap();
    let gpg = |args: &[&str]| keyring(&w, args);
    gpg(&[
        "--faked-system-time",
        "20200101T000000",
        "--quick-gen-key",
        "Expired <expired@strata.test>",
        "future-default",
        "default",
        "2021-01-01",
    ]);
    let expired = fingerprint_of(&w, "expired@strata.test");
    let absent = "0123456789ABCDEF0123456789ABCDEF01234567";
    let body = std::fs::read_to_string(w.config("enc", true, "")).unwrap();
    let cases = [
        (
            body.replace(&format!("- {}", g.recipient), &format!("- {expired}")),
            format!(
                "gpg cannot use {expired} (archive-gpg-recipients): the key expired on 2021-01-01"
            ),
        ),
        (
            body.replace(&format!("- {}", g.recipient), &format!("- {absent}")),
            format!("gpg cannot use {absent} (archive-gpg-recipients): it is not in gpg's keyring"),
        ),
        (
            body.replace(
                &format!("archive-gpg-signing-key: {}", g.signer),
                &format!("archive-gpg-signing-key: {absent}"),
            ),
            format!(
                "gpg cannot use {absent} (archive-gpg-signing-key): it is not in gpg's keyring"
            ),
        ),
    ];
    let mount = w.root.join(".snapshots").join(&w.snapshot);
    for (i, (config, want)) in cases.iter().enumerate() {
        assert_ne!(config, &body, "case {i} changed nothing");
        let path = w.home.join(format!("refused-{i}.yaml"));
        std::fs::write(&path, config).unwrap();
        let out = w.strata(
            &path,
            &[
                "archive",
                "-p",
                "local-lz4",
                "unit",
                &w.snapshot,
                mount.to_str().unwrap(),
                UNIT,
            ],
        );
        let err = text(&out.stderr);
        assert!(!out.status.success(), "case {i}: {err}");
        assert!(
            err.contains(want.as_str()),
            "case {i}: want {want:?} in {err}"
        );
        assert!(
            entries(&w.store).iter().all(|p| !w.store.join(p).is_file()),
            "case {i}: something was stored: {:?}",
            entries(&w.store)
        );
    }
}

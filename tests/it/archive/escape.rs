//! Escapes from DESTDIR that need more than one listing to see: a hard link
//! to a symlink that an earlier archive of the same `unpack` call made, or
//! that DESTDIR already held (the "unpack into the backup root" case, where
//! an rsync tree has `var/run -> /run`). Each call must be refused before
//! anything is written, leave the directory outside DESTDIR untouched, and
//! leave DESTDIR as it was. Run as the test's user and, when that is root,
//! again as an unprivileged one (the escape works for both).

use super::fixtures::{entries, text};
use crate::support::env::{self, TestHome, strata};
use sha2::{Digest, Sha256};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// A crafted member: (kind f|l|h|d|M, name, link target).
type Member<'a> = (&'a str, &'a str, &'a str);

/// Write a GNU tar of `members` with Python's tarfile (as the home's user),
/// and give it the xattrs `archive retrieve` writes for a plain archive.
fn crafted(home: &TestHome, path: &Path, members: &[Member]) {
    let mut script = String::from(
        "import tarfile, io, sys\nt = tarfile.open(sys.argv[1], 'w', format=tarfile.GNU_FORMAT)\n",
    );
    for (kind, name, link) in members {
        let ty = match *kind {
            "f" => "tarfile.REGTYPE",
            "l" => "tarfile.SYMTYPE",
            "h" => "tarfile.LNKTYPE",
            "d" => "tarfile.DIRTYPE",
            "M" => "b'M'",
            _ => unreachable!(),
        };
        let _ = write!(
            script,
            "i = tarfile.TarInfo({name:?}); i.type = {ty}; i.linkname = {link:?}; i.mode = 0o755\n\
             data = b'pwned' if i.type in (tarfile.REGTYPE, b'M') else b''\ni.size = len(data)\nt.addfile(i, io.BytesIO(data))\n"
        );
    }
    script.push_str("t.close()\n");
    let out = home
        .command("python3")
        .arg("-c")
        .arg(&script)
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "python: {}", text(&out.stderr));
    let sha = hex::encode(Sha256::digest(std::fs::read(path).unwrap()));
    for (k, v) in [
        ("user.archive.compression", "none"),
        ("user.archive.encryption", "none"),
        ("user.archive.sha256", sha.as_str()),
    ] {
        xattr::set(path, k, v.as_bytes()).unwrap();
    }
}

/// Run `cmd` as the home's user and insist on success.
fn as_user(home: &TestHome, cmd: &str, args: &[&str]) {
    let out = home.command(cmd).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        text(&out.stderr)
    );
}

struct Shape {
    name: &'static str,
    /// Symlinks DESTDIR holds before the call: (name, target), target
    /// `OUT` meaning the directory outside.
    on_disk: &'static [(&'static str, &'static str)],
    /// The archives of the one call; `OUT` in a link target is the
    /// directory outside.
    archives: Vec<Vec<Member<'static>>>,
    expect: &'static str,
}

fn shapes() -> Vec<Shape> {
    vec![
        // 1. Two archives in one call: the first makes a symlink pointing
        //    out; the second hard-links a new name to it, then writes a file
        //    under that name.
        Shape {
            name: "two-archives",
            on_disk: &[],
            archives: vec![
                vec![("d", "u", ""), ("l", "u/s", "OUT")],
                vec![("h", "u/h", "u/s"), ("f", "u/h/evil", "")],
            ],
            expect: "is a hard link to a symbolic link",
        },
        // 2. DESTDIR already holds a directory symlink (an rsync tree's
        //    var/run -> /run): a hard link to it, then a file under the link.
        Shape {
            name: "destdir-symlink",
            on_disk: &[("u/var/run", "OUT")],
            archives: vec![vec![
                ("h", "u/var/lock", "u/var/run"),
                ("f", "u/var/lock/evil", ""),
            ]],
            expect: "is a hard link to a symbolic link",
        },
        // 3. (ours) A chain across archives: the first archive only links a
        //    new name to DESTDIR's symlink (harmless alone); the second links
        //    a third name to that link, spelled with `./` and `//`, and
        //    writes below it: no listing on its own shows a symlink.
        Shape {
            name: "chain-across-archives",
            on_disk: &[("u/var/run", "OUT")],
            archives: vec![
                vec![("h", "u/a", "u/var/run")],
                vec![("h", "u/b", ".//u/a"), ("f", "u/b/evil", "")],
            ],
            expect: "is a hard link to a symbolic link",
        },
        // 4. (ours) A harmless archive, then one with a multi-volume
        //    continuation, which tar fails on only after writing what came
        //    before: refused before anything is written.
        Shape {
            name: "continuation-after-files",
            on_disk: &[],
            archives: vec![
                vec![("d", "u", ""), ("f", "u/ok", "")],
                vec![("f", "u/ok2", ""), ("M", "u/part", "")],
            ],
            expect: "multi-volume continuation",
        },
    ]
}

fn refuse_every_shape(home: &TestHome, who: &str) {
    let outside = home.join("outside");
    as_user(home, "mkdir", &[outside.to_str().unwrap()]);
    as_user(
        home,
        "sh",
        &[
            "-c",
            "echo precious > \"$1\"",
            "sh",
            outside.join("victim").to_str().unwrap(),
        ],
    );
    let out_s = outside.to_str().unwrap().to_owned();
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
    for shape in shapes() {
        let dest = home.join(format!("dest-{}", shape.name));
        as_user(home, "mkdir", &[dest.to_str().unwrap()]);
        for (name, target) in shape.on_disk {
            let link = dest.join(name);
            as_user(
                home,
                "mkdir",
                &["-p", link.parent().unwrap().to_str().unwrap()],
            );
            let target = target.replace("OUT", &out_s);
            as_user(home, "ln", &["-s", &target, link.to_str().unwrap()]);
        }
        let before = entries(&dest);
        let mut files: Vec<PathBuf> = Vec::new();
        for (i, members) in shape.archives.iter().enumerate() {
            let p = home.join(format!("{}-{i}.tar", shape.name));
            let m: Vec<(String, String, String)> = members
                .iter()
                .map(|(k, n, l)| ((*k).to_owned(), (*n).to_owned(), l.replace("OUT", &out_s)))
                .collect();
            let m: Vec<Member> = m
                .iter()
                .map(|(k, n, l)| (k.as_str(), n.as_str(), l.as_str()))
                .collect();
            crafted(home, &p, &m);
            files.push(p);
        }
        let out = strata(home)
            .arg("-c")
            .arg(&config)
            .arg("--allow-root")
            .args(["archive", "unpack", "--any-label"])
            .arg(&dest)
            .args(&files)
            .output()
            .unwrap();
        let err = text(&out.stderr);
        assert!(
            !out.status.success(),
            "{who} {}: accepted: {}",
            shape.name,
            text(&out.stdout)
        );
        assert!(
            err.contains(shape.expect),
            "{who} {}: message {err:?} lacks {:?}",
            shape.name,
            shape.expect
        );
        assert_eq!(
            entries(&outside),
            vec![PathBuf::from("victim")],
            "{who} {}: something landed outside DESTDIR",
            shape.name
        );
        assert_eq!(
            std::fs::read_to_string(outside.join("victim")).unwrap(),
            "precious\n"
        );
        assert_eq!(
            entries(&dest),
            before,
            "{who} {}: DESTDIR changed although the call was refused",
            shape.name
        );
    }
}

#[test]
fn unpack_refuses_hard_links_to_symlinks_of_earlier_archives_and_of_destdir() {
    refuse_every_shape(&TestHome::new(), "as the test's user:");
    if env::is_root() {
        let user = env::unprivileged_user();
        if !env::require("an unprivileged user (nobody)", user.is_some()) {
            return;
        }
        let user = user.unwrap();
        refuse_every_shape(
            &TestHome::for_user(user.uid, user.gid),
            "as an unprivileged user:",
        );
    }
}

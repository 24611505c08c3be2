//! Unpack a retrieved archive into DESTDIR, trusting nothing about it.
//!
//! Order, each step a gate for the next:
//! 1. Metadata from the file's `user.archive.*` xattrs; size and sha256 of
//!    the file must match it.
//! 2. Its encryption must be what this config produces: an archive claiming
//!    `none` when the config encrypts is a downgrade and is refused.
//! 3. Encrypted: gpg decrypts into a spool file; only GOODSIG + VALIDSIG by
//!    the configured signing key (see [`super::gpg`]) lets it through.
//! 4. The (decompressed) tar stream is listed with `tar -tv -P`; every
//!    member is checked ([`check_members`]): no absolute name, no `..`, no
//!    path through a symlink (one in the archive, or one already in
//!    DESTDIR), no hard link to a name that is absolute, has `..`, or goes
//!    through a symlink.
//! 5. Only then tar extracts the same verified bytes (without `-P`, so GNU
//!    tar's own guards stay on as a second line).
//!
//! Crash behaviour: the decrypted spool file is a temp file; a crash leaves
//! `unpack-<pid>-*` for `clean_spool`. A crash during step 5 leaves a partly
//! extracted tree in DESTDIR, which a second unpack overwrites.

use super::codec::{self, Decoder};
use super::{ArchiveEnv, ArchiveError, ArchiveMeta, Encryption, MetaFields, gpg};
use crate::backup_root::xattrs;
use crate::config::Compression;
use crate::exec::Cmd;
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::process::Stdio;

/// The metadata recorded on a retrieved file (Deltaic's xattrs).
pub fn read_meta(file: &Path) -> Result<ArchiveMeta, ArchiveError> {
    let get = |name: &str| -> Result<String, ArchiveError> {
        xattrs::get_text(file, name)
            .map_err(ArchiveError::io(file))?
            .ok_or_else(|| ArchiveError::BadMetadata {
                file: file.to_owned(),
                reason: format!("no {name} xattr (was it fetched with `strata archive retrieve`?)"),
            })
    };
    let size = std::fs::metadata(file)
        .map_err(ArchiveError::io(file))?
        .len();
    let fields = MetaFields {
        compression: get(xattrs::ARCHIVE_COMPRESSION)?,
        encryption: get(xattrs::ARCHIVE_ENCRYPTION)?,
        sha256: get(xattrs::ARCHIVE_SHA256)?,
        size: size.to_string(),
    };
    ArchiveMeta::from_fields(&fields).map_err(|reason| ArchiveError::BadMetadata {
        file: file.to_owned(),
        reason,
    })
}

/// Record `meta` on `file` as Deltaic's xattrs.
pub fn write_meta(file: &Path, meta: &ArchiveMeta) -> Result<(), ArchiveError> {
    for (k, v) in [
        (xattrs::ARCHIVE_COMPRESSION, meta.compression.name()),
        (xattrs::ARCHIVE_ENCRYPTION, meta.encryption.name()),
        (xattrs::ARCHIVE_SHA256, meta.sha256.as_str()),
    ] {
        xattr::set(file, k, v.as_bytes()).map_err(ArchiveError::io(file))?;
    }
    Ok(())
}

/// One member of a tar listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The type character of `tar -tv` (`-`, `d`, `l`, `h`, `c`, `b`, `p`, `V`, ...).
    pub kind: char,
    pub name: String,
    /// Symlink target or hard-link target.
    pub link: Option<String>,
}

/// Parse one line of `tar -tv --quoting-style=c`; `None` if it is not one.
#[must_use]
pub fn parse_listing_line(line: &str) -> Option<Member> {
    let kind = line.chars().next()?;
    let q = line.find('"')?;
    let (name, rest) = parse_c_string(&line[q..])?;
    let link = if let Some(r) = rest.strip_prefix(" -> ") {
        Some(parse_c_string(r)?.0)
    } else if let Some(r) = rest.strip_prefix(" link to ") {
        Some(parse_c_string(r)?.0)
    } else {
        None
    };
    Some(Member { kind, name, link })
}

/// Parse a C-quoted string at the start of `s`; returns it and what follows.
fn parse_c_string(s: &str) -> Option<(String, &str)> {
    let b = s.as_bytes();
    if b.first() != Some(&b'"') {
        return None;
    }
    let mut out: Vec<u8> = Vec::new();
    let mut i = 1;
    while i < b.len() {
        match b[i] {
            b'"' => {
                return Some((String::from_utf8_lossy(&out).into_owned(), &s[i + 1..]));
            }
            b'\\' => {
                let c = *b.get(i + 1)?;
                i += 2;
                match c {
                    b'n' => out.push(b'\n'),
                    b't' => out.push(b'\t'),
                    b'r' => out.push(b'\r'),
                    b'a' => out.push(7),
                    b'b' => out.push(8),
                    b'f' => out.push(12),
                    b'v' => out.push(11),
                    b'0'..=b'7' => {
                        let mut v = u32::from(c - b'0');
                        let mut k = 0;
                        while k < 2 && i < b.len() && (b'0'..=b'7').contains(&b[i]) {
                            v = v * 8 + u32::from(b[i] - b'0');
                            i += 1;
                            k += 1;
                        }
                        out.push(u8::try_from(v & 0xff).unwrap_or(0));
                    }
                    other => out.push(other),
                }
            }
            other => {
                out.push(other);
                i += 1;
            }
        }
    }
    None
}

/// Why a member name is not a plain relative path, if it is not.
fn bad_name(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("has an empty name");
    }
    if name.starts_with('/') {
        return Some("is an absolute path");
    }
    if Path::new(name)
        .components()
        .any(|c| matches!(c, Component::ParentDir))
    {
        return Some("contains `..`");
    }
    None
}

/// The proper ancestors of a relative path (`a`, `a/b` for `a/b/c`).
fn ancestors(name: &str) -> impl Iterator<Item = String> + '_ {
    let trimmed = name.trim_end_matches('/');
    trimmed
        .match_indices('/')
        .map(move |(i, _)| trimmed[..i].trim_end_matches('/').to_owned())
        .filter(|a| !a.is_empty() && a != ".")
}

/// Check every member of a listing; `Err((member, why))` for the first bad one.
/// `on_disk_symlink(rel)` says whether DESTDIR already has a symlink at `rel`.
pub fn check_members(
    members: impl IntoIterator<Item = Member>,
    mut on_disk_symlink: impl FnMut(&str) -> bool,
) -> Result<usize, (String, &'static str)> {
    let mut symlinks: HashSet<String> = HashSet::new();
    let mut disk: HashMap<String, bool> = HashMap::new();
    let mut n = 0;
    let norm = |s: &str| s.trim_start_matches("./").trim_end_matches('/').to_owned();
    for m in members {
        if m.kind == 'V' || m.kind == 'M' {
            continue; // why: volume labels and continuation headers are not files
        }
        n += 1;
        if let Some(why) = bad_name(&m.name) {
            return Err((m.name, why));
        }
        let mut through_symlink = |path: &str| {
            ancestors(path).any(|a| {
                let a = norm(&a);
                symlinks.contains(&a) || *disk.entry(a).or_insert_with_key(|a| on_disk_symlink(a))
            })
        };
        if through_symlink(&m.name) {
            return Err((m.name, "would be written through a symbolic link"));
        }
        if m.kind == 'h' {
            let target = m.link.clone().unwrap_or_default();
            if bad_name(&target).is_some() || through_symlink(&target) {
                return Err((m.name, "is a hard link to a file outside DESTDIR"));
            }
            if symlinks.contains(&norm(&target)) {
                return Err((m.name, "is a hard link to a symbolic link"));
            }
        }
        let name = norm(&m.name);
        if m.kind == 'l' {
            symlinks.insert(name);
        } else if symlinks.contains(&name) {
            // why: whether tar replaces or follows an existing symlink depends on the member type; refuse both
            return Err((m.name, "would be written through a symbolic link"));
        }
    }
    Ok(n)
}

/// The verified plain stream of an archive: either the file itself or its
/// decrypted copy in the spool.
enum Verified {
    File(PathBuf),
    Spool(tempfile::NamedTempFile),
}

impl Verified {
    fn path(&self) -> &Path {
        match self {
            Verified::File(p) => p,
            Verified::Spool(t) => t.path(),
        }
    }
}

/// Steps 1-3: metadata, downgrade, sha256, signature.
fn verify(env: &ArchiveEnv, file: &Path) -> Result<(ArchiveMeta, Verified), ArchiveError> {
    let meta = read_meta(file)?;
    let expected = env.encryption();
    if meta.encryption != expected {
        return Err(ArchiveError::EncryptionMismatch {
            file: file.to_owned(),
            found: meta.encryption.name().to_owned(),
            expected: match expected {
                Encryption::Gpg => "encrypts with gpg",
                Encryption::None => "does not encrypt (no archive-gpg-recipients)",
            },
        });
    }
    let (sha, _) = super::hash_file(file)?;
    if sha != meta.sha256 {
        return Err(ArchiveError::Sha256Mismatch {
            file: file.to_owned(),
            expected: meta.sha256,
            actual: sha,
        });
    }
    match meta.encryption {
        Encryption::None => Ok((meta, Verified::File(file.to_owned()))),
        Encryption::Gpg => {
            let key = env
                .signing_key
                .as_deref()
                .ok_or_else(|| ArchiveError::Signature {
                    file: file.to_owned(),
                    reason: "archive-gpg-signing-key is not set, so no signature can be trusted"
                        .into(),
                })?;
            let plain = env.spool_file("unpack-")?;
            let status = env.spool_file("unpack-")?;
            let input = File::open(file).map_err(ArchiveError::io(file))?;
            let out = plain
                .as_file()
                .try_clone()
                .map_err(ArchiveError::io(plain.path()))?;
            let mut gpg = Cmd::new(&env.gpg)
                .args(gpg::decrypt_args(status.path()))
                .spawn_writer(Stdio::from(out))?;
            let fed = std::io::copy(&mut BufReader::new(input), &mut gpg);
            let ended = gpg.finish();
            let text = std::fs::read_to_string(status.path()).unwrap_or_default();
            let st = gpg::parse_status(&text);
            let judged = gpg::judge_decryption(&st, key);
            // why: the status verdict is the clearer message; gpg's exit status backs it up
            if let Err(reason) = judged {
                return Err(ArchiveError::Signature {
                    file: file.to_owned(),
                    reason,
                });
            }
            fed.map_err(ArchiveError::io(file))?;
            ended.map_err(|e| ArchiveError::Signature {
                file: file.to_owned(),
                reason: e.to_string(),
            })?;
            Ok((meta, Verified::Spool(plain)))
        }
    }
}

/// Stream the decompressed plain tar of `v` into `cmd`'s stdin; `cmd`'s stdout
/// goes to `stdout`. Returns the command's stderr on success.
fn feed_tar(
    v: &Verified,
    c: Compression,
    cmd: &Cmd,
    stdout: Stdio,
    file: &Path,
) -> Result<Vec<u8>, ArchiveError> {
    let f = File::open(v.path()).map_err(ArchiveError::io(v.path()))?;
    let mut dec =
        Decoder::new(c, BufReader::with_capacity(1 << 20, f)).map_err(ArchiveError::io(file))?;
    let mut tar = cmd.spawn_writer(stdout)?;
    let copied = std::io::copy(&mut dec, &mut tar);
    let _ = tar.flush();
    match copied {
        Ok(_) => Ok(tar.finish()?.stderr),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            // why: tar stopped reading; its own error says why
            tar.finish()?;
            Err(ArchiveError::io(file)(e))
        }
        Err(e) => {
            drop(tar);
            Err(ArchiveError::BadMetadata {
                file: file.to_owned(),
                reason: format!("the {} stream is corrupt or truncated: {e}", c.name()),
            })
        }
    }
}

/// What an unpack did.
#[derive(Debug, Clone)]
pub struct Unpacked {
    pub members: usize,
    pub meta: ArchiveMeta,
}

/// Verify `file`, check its members, and extract it into `dest`.
pub fn unpack(env: &ArchiveEnv, file: &Path, dest: &Path) -> Result<Unpacked, ArchiveError> {
    let (meta, verified) = verify(env, file)?;
    std::fs::create_dir_all(dest).map_err(ArchiveError::io(dest))?;
    let dest = dest.canonicalize().map_err(ArchiveError::io(dest))?;

    // Step 4: list and check.
    let mut list = Cmd::new(&env.tar).args([
        "-t",
        "-v",
        "-P",
        "--force-local",
        "--numeric-owner",
        "--quoting-style=c",
    ]);
    if let Some(flag) = codec::tar_flag(meta.compression) {
        list = list.arg(flag);
    }
    let (pipe_r, pipe_w) = std::io::pipe().map_err(ArchiveError::io(file))?;
    let dest2 = dest.clone();
    let file2 = file.to_owned();
    let checker = std::thread::spawn(move || -> Result<usize, ArchiveError> {
        let mut bad_line = None;
        let reader = BufReader::new(pipe_r);
        let members = reader.split(b'\n').map_while(Result::ok).filter_map(|l| {
            let s = String::from_utf8_lossy(&l).into_owned();
            let m = parse_listing_line(&s);
            if m.is_none() && bad_line.is_none() && !s.trim().is_empty() {
                bad_line = Some(s);
            }
            m
        });
        let r = check_members(members, |rel| {
            dest2
                .join(rel)
                .symlink_metadata()
                .is_ok_and(|m| m.file_type().is_symlink())
        });
        if let Some(line) = bad_line {
            return Err(ArchiveError::BadListing { file: file2, line });
        }
        r.map_err(|(member, why)| ArchiveError::UnsafeMember {
            file: file2,
            member,
            why,
        })
    });
    let listed = feed_tar(
        &verified,
        meta.compression,
        &list,
        Stdio::from(pipe_w),
        file,
    );
    let checked = checker.join().unwrap_or_else(|_| {
        Err(ArchiveError::BadListing {
            file: file.to_owned(),
            line: "(the listing checker panicked)".into(),
        })
    });
    // why: a refused member stops the checker early, which kills the listing tar; the refusal is the news
    let members = checked?;
    listed?;

    // Step 5: extract.
    let mut x = Cmd::new(&env.tar)
        .args([
            "-x",
            "--force-local",
            "--numeric-owner",
            "--acls",
            "--xattrs",
            "--xattrs-include=*",
            "-C",
        ])
        .arg(&dest);
    if let Some(flag) = codec::tar_flag(meta.compression) {
        x = x.arg(flag);
    }
    let stderr = feed_tar(&verified, meta.compression, &x, Stdio::null(), file)?;
    if !stderr.is_empty() {
        eprint!("{}", String::from_utf8_lossy(&stderr));
    }
    Ok(Unpacked { members, meta })
}

/// Read a whole small file for tests of the listing parser.
#[doc(hidden)]
pub fn read_listing(mut r: impl Read) -> std::io::Result<Vec<Member>> {
    let mut s = String::new();
    r.read_to_string(&mut s)?;
    Ok(s.lines().filter_map(parse_listing_line).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(kind: char, name: &str, link: Option<&str>) -> Member {
        Member {
            kind,
            name: name.into(),
            link: link.map(Into::into),
        }
    }

    #[test]
    fn parses_gnu_tar_listing_lines() {
        let text = r#"V--------- 0/0               0 2026-11-22 01:39 "20261122-1 dump/u"--Volume Header--
lrwxrwxrwx 0/0               0 2026-11-22 01:39 "u/sl" -> "/etc/pass wd"
hrw-r--r-- 0/0               0 2026-11-22 01:39 "u/a \"b\"" link to "u/hl"
-rw-r--r-- 0/0               1 2026-11-22 01:39 "u/d/new\nline\303\251"
crw-r--r-- 0/0             1,3 2026-11-22 01:39 "u/null"
"#;
        let v = read_listing(text.as_bytes()).unwrap();
        assert_eq!(v[0], m('V', "20261122-1 dump/u", None));
        assert_eq!(v[1], m('l', "u/sl", Some("/etc/pass wd")));
        assert_eq!(v[2], m('h', "u/a \"b\"", Some("u/hl")));
        assert_eq!(v[3], m('-', "u/d/new\nlineé", None));
        assert_eq!(v[4], m('c', "u/null", None));
    }

    #[test]
    fn hostile_members_are_refused() {
        let none = |_: &str| false;
        let ok = vec![
            m('d', "u/", None),
            m('l', "u/abs", Some("/etc/passwd")),
            m('-', "u/f", None),
            m('h', "u/h", Some("u/f")),
        ];
        assert_eq!(check_members(ok, none), Ok(4));
        let cases: Vec<(Vec<Member>, &str)> = vec![
            (vec![m('-', "/etc/x", None)], "absolute"),
            (vec![m('-', "u/../../x", None)], ".."),
            (
                vec![m('l', "u/l", Some("/etc")), m('-', "u/l/passwd", None)],
                "symbolic link",
            ),
            (
                vec![m('l', "u/l", Some("..")), m('d', "u/l/", None)],
                "symbolic link",
            ),
            (vec![m('h', "u/h", Some("../../etc/passwd"))], "hard link"),
            (vec![m('h', "u/h", Some("/etc/passwd"))], "hard link"),
            (
                vec![
                    m('l', "u/l", Some("/etc")),
                    m('h', "u/h", Some("u/l/passwd")),
                ],
                "hard link",
            ),
        ];
        for (members, why) in cases {
            let r = check_members(members.clone(), none);
            assert!(
                r.as_ref().is_err_and(|(_, w)| w.contains(why)),
                "{members:?}: {r:?}"
            );
        }
        // a symlink already in DESTDIR
        let r = check_members(vec![m('-', "u/x/f", None)], |p| p == "u/x");
        assert!(r.is_err());
    }
}

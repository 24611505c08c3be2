//! Attribute-by-attribute comparison of two trees, for `archive drill`:
//! type, mode, owner, size, content, mtime (ns; not for symlinks), symlink
//! target, device numbers, every xattr (POSIX ACLs are the
//! `system.posix_acl_*` ones), hard-link grouping, and sparseness (a file
//! with holes must still have holes). Reports every difference, sorted.

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

fn xattrs(p: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = xattr::list(p)
        .map(|names| {
            names
                .filter_map(|n| {
                    let value = xattr::get(p, &n).ok().flatten()?;
                    Some((n.to_string_lossy().into_owned(), value))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn same_content(a: &Path, b: &Path) -> std::io::Result<bool> {
    let (mut fa, mut fb) = (std::fs::File::open(a)?, std::fs::File::open(b)?);
    let (mut ba, mut bb) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
    loop {
        let na = read_full(&mut fa, &mut ba)?;
        let nb = read_full(&mut fb, &mut bb)?;
        if na != nb || ba[..na] != bb[..nb] {
            return Ok(false);
        }
        if na == 0 {
            return Ok(true);
        }
    }
}

fn read_full(f: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn sparse(m: &std::fs::Metadata) -> bool {
    m.blocks() * 512 < m.size()
}

/// Every difference between tree `a` (the original) and tree `b`.
pub fn compare_trees(a: &Path, b: &Path) -> std::io::Result<Vec<String>> {
    let mut diffs = Vec::new();
    let mut links: HashMap<u64, u64> = HashMap::new();
    let mut seen = std::collections::HashSet::new();
    for e in walkdir::WalkDir::new(a).sort_by_file_name() {
        let e = e.map_err(std::io::Error::other)?;
        let rel = e
            .path()
            .strip_prefix(a)
            .map_err(std::io::Error::other)?
            .to_owned();
        seen.insert(rel.clone());
        let shown = if rel.as_os_str().is_empty() {
            ".".into()
        } else {
            rel.display().to_string()
        };
        let pb = b.join(&rel);
        let (ma, mb) = (
            e.path().symlink_metadata()?,
            if let Ok(m) = pb.symlink_metadata() {
                m
            } else {
                diffs.push(format!("{shown}: missing"));
                continue;
            },
        );
        let mut d = |what: String| diffs.push(format!("{shown}: {what}"));
        if ma.file_type() != mb.file_type() {
            d(format!("type {:?} != {:?}", ma.file_type(), mb.file_type()));
            continue;
        }
        if ma.mode() != mb.mode() {
            d(format!("mode {:o} != {:o}", ma.mode(), mb.mode()));
        }
        if (ma.uid(), ma.gid()) != (mb.uid(), mb.gid()) {
            d(format!(
                "owner {}:{} != {}:{}",
                ma.uid(),
                ma.gid(),
                mb.uid(),
                mb.gid()
            ));
        }
        let ft = ma.file_type();
        if !ft.is_symlink() && (ma.mtime(), ma.mtime_nsec()) != (mb.mtime(), mb.mtime_nsec()) {
            d(format!(
                "mtime {}.{:09} != {}.{:09}",
                ma.mtime(),
                ma.mtime_nsec(),
                mb.mtime(),
                mb.mtime_nsec()
            ));
        }
        if ft.is_symlink() {
            let (ta, tb) = (std::fs::read_link(e.path())?, std::fs::read_link(&pb)?);
            if ta != tb {
                d(format!(
                    "symlink target {} != {}",
                    ta.display(),
                    tb.display()
                ));
            }
        } else if xattrs(e.path()) != xattrs(&pb) {
            d("xattrs or ACLs differ".into());
        }
        if ft.is_file() {
            if ma.size() != mb.size() {
                d(format!("size {} != {}", ma.size(), mb.size()));
            } else if !same_content(e.path(), &pb)? {
                d("content differs".into());
            }
            if sparse(&ma) && !sparse(&mb) {
                d(format!(
                    "holes lost ({} blocks, was {})",
                    mb.blocks(),
                    ma.blocks()
                ));
            }
            if ma.nlink() > 1 || mb.nlink() > 1 {
                match links.get(&ma.ino()) {
                    Some(ino) if *ino != mb.ino() => d("hard link grouping differs".into()),
                    Some(_) => {}
                    None => {
                        if links.values().any(|v| *v == mb.ino()) {
                            d("hard link grouping differs".into());
                        }
                        links.insert(ma.ino(), mb.ino());
                    }
                }
            }
        }
        if !(ft.is_file() || ft.is_dir()) && ma.rdev() != mb.rdev() {
            d(format!("device {} != {}", ma.rdev(), mb.rdev()));
        }
    }
    for e in walkdir::WalkDir::new(b)
        .sort_by_file_name()
        .into_iter()
        .flatten()
    {
        if let Ok(rel) = e.path().strip_prefix(b)
            && !seen.contains(rel)
        {
            diffs.push(format!("{}: extra", rel.display()));
        }
    }
    Ok(diffs)
}

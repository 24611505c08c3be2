//! The mapping between S3 object keys and paths under an rgw unit directory.
//!
//! Owns: turning any key into a relative path that is safe to create under the
//! unit directory, for each file stored per object (data, metadata, ACL), and
//! turning such a path back into its key. Does not own: what the files hold
//! (see the parent module) or walking the directory.
//!
//! The scheme extends Deltaic's, so that a Deltaic backup root is read as it
//! is: the key is split at `/`, and every path component is a key component
//! followed by a two-byte *type code* `_X`:
//!
//! | code | meaning |
//! | --- | --- |
//! | `_d` | a directory: a key component followed by `/` |
//! | `_k` | the object's data (last component) |
//! | `_m` | the object's metadata sidecar (JSON) |
//! | `_a` | the object's ACL sidecar (JSON) |
//! | `_c` | continuation: a slice of an over-long key component, continued by the next path component |
//! | `_t` | a temporary file (never a key; removed when found) |
//! | `bucket_A`, `bucket_C` | the bucket's ACL and CORS configuration, at the top only |
//!
//! Because every component ends in a code, no component is ever empty, `.`
//! or `..` (the key `a//../b` becomes `a_d/_d/.._d/b_k`); a key that is also
//! a prefix of other keys (`a` and `a/b`) gives a file `a_k` beside a
//! directory `a_d`; sidecars and bucket files can never collide with data,
//! because their codes differ. Extensions to Deltaic's scheme, for keys it
//! could not store:
//! - a key component longer than 253 bytes is cut, at character boundaries,
//!   into slices of at most 253 bytes; all but the last get the code `_c`,
//!   so each path component stays within the 255-byte limit of Linux
//!   filesystems;
//! - a key component holding a control character (`U+0000`-`U+001F`,
//!   `U+007F`) is *escaped*: those characters and `%` are written as `%XX`
//!   (their UTF-8 byte in hex) and the code separator is `%` instead of `_`
//!   (`a\nb` gives `a%0Ab%k`), so no path holds a NUL, a newline or another
//!   control character.
//!
//! The mapping is a bijection between keys and *canonical* paths:
//! [`parse_path`] accepts a path only if [`key_path`] would produce it, so a
//! stray file (a Deltaic-era name for a key this scheme escapes, say) is
//! reported as not belonging to any key, and garbage collection removes it.

use std::fmt::Write as _;
use std::path::{Component, Path, PathBuf};

/// The longest key component slice stored in one path component: 255 bytes
/// (the Linux `NAME_MAX`) less the two-byte type code.
pub const MAX_SLICE: usize = 253;

/// The bucket ACL file, at the top of the unit directory (Deltaic's name).
pub const BUCKET_ACL: &str = "bucket_A";
/// The bucket CORS file, at the top of the unit directory (Deltaic's name).
pub const BUCKET_CORS: &str = "bucket_C";

/// Which of an object's stored files a path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// The object's bytes (`_k`).
    Data,
    /// Content type, user metadata, `ETag`, Last-Modified (`_m`).
    Meta,
    /// The object's ACL (`_a`).
    Acl,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Data, Role::Meta, Role::Acl];

    fn code(self) -> u8 {
        match self {
            Role::Data => b'k',
            Role::Meta => b'm',
            Role::Acl => b'a',
        }
    }

    fn from_code(c: u8) -> Option<Role> {
        match c {
            b'k' => Some(Role::Data),
            b'm' => Some(Role::Meta),
            b'a' => Some(Role::Acl),
            _ => None,
        }
    }
}

/// What a path under the unit directory is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// One of an object's files.
    Object { key: String, role: Role },
    /// `bucket_A`.
    BucketAcl,
    /// `bucket_C`.
    BucketCors,
    /// A temporary file left by an interrupted run.
    Temp,
}

/// Why a path is not a canonical name of anything.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyMapError {
    #[error("{path:?}: {why}")]
    NotCanonical { path: String, why: &'static str },
}

fn needs_escape(c: char) -> bool {
    c.is_ascii_control()
}

/// The path (relative to the unit directory) of `role`'s file for `key`.
#[must_use]
pub fn key_path(key: &str, role: Role) -> PathBuf {
    let mut out = String::with_capacity(key.len() + 16);
    let mut parts = key.split('/').peekable();
    while let Some(part) = parts.next() {
        let code = if parts.peek().is_some() {
            b'd'
        } else {
            role.code()
        };
        push_component(&mut out, part, code);
        if parts.peek().is_some() {
            out.push('/');
        }
    }
    PathBuf::from(out)
}

/// Append the path components for one key component, ending with `code`.
fn push_component(out: &mut String, part: &str, code: u8) {
    let escaped = part.chars().any(needs_escape);
    let sep = if escaped { '%' } else { '_' };
    let mut slice_len = 0;
    for c in part.chars() {
        let mut buf = [0u8; 4];
        let enc: &str = c.encode_utf8(&mut buf);
        let len = if escaped && (needs_escape(c) || c == '%') {
            3
        } else {
            enc.len()
        };
        if slice_len + len > MAX_SLICE {
            out.push(sep);
            out.push('c');
            out.push('/');
            slice_len = 0;
        }
        if escaped && (needs_escape(c) || c == '%') {
            // why: control characters and '%' are one byte in UTF-8
            let _ = write!(out, "%{:02X}", c as u32);
        } else {
            out.push(c);
        }
        slice_len += len;
    }
    out.push(sep);
    out.push(char::from(code));
}

/// What the relative path `rel` (from the unit directory) names; an error if
/// no key, sidecar or bucket file maps to exactly this path.
pub fn parse_path(rel: &Path) -> Result<Entry, KeyMapError> {
    let bad = |why| KeyMapError::NotCanonical {
        path: rel.to_string_lossy().into_owned(),
        why,
    };
    let text = rel.to_str().ok_or_else(|| bad("not UTF-8"))?;
    if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return Err(bad("not a plain relative path"));
    }
    if text == BUCKET_ACL {
        return Ok(Entry::BucketAcl);
    }
    if text == BUCKET_CORS {
        return Ok(Entry::BucketCors);
    }
    let comps: Vec<&str> = text.split('/').collect();
    let last = comps.last().copied().unwrap_or_default();
    if last.len() >= 2 && last.ends_with("_t") {
        return Ok(Entry::Temp);
    }
    let mut key = String::new();
    let mut role = None;
    for (i, comp) in comps.iter().enumerate() {
        let b = comp.as_bytes();
        if b.len() < 2 {
            return Err(bad("component without a type code"));
        }
        let code = b[b.len() - 1];
        let escaped = match b[b.len() - 2] {
            b'_' => false,
            b'%' => true,
            _ => return Err(bad("component without a type code")),
        };
        let name = &comp[..comp.len() - 2];
        if escaped {
            key.push_str(&unescape(name).ok_or_else(|| bad("bad %-escape"))?);
        } else {
            key.push_str(name);
        }
        let is_last = i + 1 == comps.len();
        match (code, is_last) {
            (b'c', false) => {}
            (b'd', false) => key.push('/'),
            (c, true) => role = Some(Role::from_code(c).ok_or_else(|| bad("unknown type code"))?),
            _ => return Err(bad("a file type code on a directory")),
        }
    }
    let role = role.ok_or_else(|| bad("empty path"))?;
    if key_path(&key, role) != rel {
        return Err(bad("not the canonical path of its key"));
    }
    Ok(Entry::Object { key, role })
}

fn unescape(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(key: &str) -> String {
        key_path(key, Role::Data).to_string_lossy().into_owned()
    }

    #[test]
    fn table_of_hostile_keys() {
        let long = "x".repeat(300);
        let cases: &[(&str, &str)] = &[
            ("hello.txt", "hello.txt_k"),
            ("dir/sub dir/f", "dir_d/sub dir_d/f_k"),
            ("..", ".._k"),
            (".", "._k"),
            ("../../etc/passwd", ".._d/.._d/etc_d/passwd_k"),
            ("/abs", "_d/abs_k"),
            ("a//b", "a_d/_d/b_k"),
            ("dir/", "dir_d/_k"),
            ("", "_k"),
            ("a", "a_k"),
            ("a/b", "a_d/b_k"),
            ("bucket", "bucket_k"),
            ("bucket_A", "bucket_A_k"),
            ("x_m", "x_m_k"),
            ("x_t", "x_t_k"),
            ("100%", "100%_k"),
            ("a\nb", "a%0Ab%k"),
            ("nul\0%", "nul%00%25%k"),
        ];
        for (key, want) in cases {
            assert_eq!(p(key), *want, "key {key:?}");
            assert_eq!(
                parse_path(Path::new(want)).unwrap(),
                Entry::Object {
                    key: (*key).to_owned(),
                    role: Role::Data
                }
            );
        }
        let lp = p(&long);
        let comps: Vec<&str> = lp.split('/').collect();
        assert_eq!(comps.len(), 2);
        assert_eq!(comps[0].len(), 255);
        assert!(comps[0].ends_with("_c") && comps[1].ends_with("_k"));
        assert_eq!(
            key_path("a", Role::Meta),
            PathBuf::from("a_m"),
            "sidecars sit beside the data"
        );
        assert_eq!(key_path("a/b", Role::Acl), PathBuf::from("a_d/b_a"));
    }

    #[test]
    fn non_canonical_and_foreign_paths_are_refused() {
        for bad in [
            "plain", "a_x", "a_k/b_k", "a_d", "a_c",
            "a\nb_k", // Deltaic would have stored this raw; strata escapes it
            "a%zz%k", "../a_k", "/a_k",
        ] {
            assert!(parse_path(Path::new(bad)).is_err(), "{bad:?}");
        }
        assert_eq!(parse_path(Path::new("bucket_A")).unwrap(), Entry::BucketAcl);
        assert_eq!(
            parse_path(Path::new("bucket_C")).unwrap(),
            Entry::BucketCors
        );
        assert_eq!(
            parse_path(Path::new("d_d/.strata-1_t")).unwrap(),
            Entry::Temp
        );
    }

    fn key_strategy() -> impl Strategy<Value = String> {
        // why: bias toward the characters that matter (separators, dots,
        // escapes, multibyte) while still covering arbitrary Unicode
        let piece = prop_oneof![
            Just("/".to_owned()),
            Just("//".to_owned()),
            Just(".".to_owned()),
            Just("..".to_owned()),
            Just("%".to_owned()),
            Just("_".to_owned()),
            Just("_d".to_owned()),
            Just("_k".to_owned()),
            Just("\0".to_owned()),
            Just("\n".to_owned()),
            Just("é".to_owned()),
            Just("🦀".to_owned()),
            "[a-z]{1,8}".prop_map(|s| s),
            "[a-z]{200,300}".prop_map(|s| s),
            any::<char>().prop_map(|c| c.to_string()),
        ];
        prop::collection::vec(piece, 0..12).prop_map(|v| v.concat())
    }

    fn check_safe(path: &Path) {
        for c in path.components() {
            let Component::Normal(name) = c else {
                panic!("{path:?} has a non-normal component");
            };
            let b = name.as_encoded_bytes();
            assert!(!b.is_empty() && b.len() <= 255, "{path:?}");
            assert!(b != b"." && b != b"..", "{path:?}");
            assert!(!b.iter().any(|&x| x < 0x20 || x == 0x7f), "{path:?}");
        }
        assert!(path.is_relative());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn keys_round_trip_and_never_escape(key in key_strategy()) {
            for role in Role::ALL {
                let path = key_path(&key, role);
                check_safe(&path);
                prop_assert_eq!(parse_path(&path).unwrap(), Entry::Object { key: key.clone(), role });
            }
        }

        #[test]
        fn distinct_keys_never_collide(a in key_strategy(), b in key_strategy()) {
            prop_assume!(a != b);
            for ra in Role::ALL {
                let pa = key_path(&a, ra);
                prop_assert!(pa != Path::new(BUCKET_ACL) && pa != Path::new(BUCKET_CORS));
                for rb in Role::ALL {
                    let pb = key_path(&b, rb);
                    prop_assert_ne!(&pa, &pb);
                    // why: a file of one key is never a directory of another (`a` vs `a/b`)
                    prop_assert!(!pb.starts_with(&pa) || pa == pb);
                }
            }
        }
    }
}

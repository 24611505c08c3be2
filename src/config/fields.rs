//! Reading one optional key of a mapping with its default: the small readers
//! every section shares (`get_count(r, f, "rsync-workers", 1, 1)`), and the
//! directory relative paths resolve against.
//!
//! Each returns `None` when the key was present but wrong (the problem is
//! already reported to the [`Reader`]), so a caller can read every key first
//! and combine them after, reporting every bad key at once.

use super::reader::{Fields, Reader};
use super::secret::Secret;
use std::path::{Path, PathBuf};

/// What reading needs besides the tree: the config file's directory.
pub(super) struct Ctx<'a> {
    pub base: &'a Path,
}

impl Ctx<'_> {
    /// `s` as a path, relative ones resolved against the config file's directory.
    pub fn path(&self, s: &str) -> PathBuf {
        let p = Path::new(s);
        if p.is_absolute() {
            p.to_owned()
        } else {
            self.base.join(p)
        }
    }
}

pub(super) fn get_count(
    r: &mut Reader,
    f: &mut Fields,
    key: &'static str,
    default: u32,
    min: u32,
) -> Option<u32> {
    match f.get(key) {
        Some((n, p)) => r.count(n, &p, min),
        None => Some(default),
    }
}

/// A duration in whole seconds: a number of seconds, or a number with a
/// unit `s`, `m`, `h` or `d` (`90m`, `6h`), at least `min` seconds.
pub(super) fn get_duration(
    r: &mut Reader,
    f: &mut Fields,
    key: &'static str,
    default: u64,
    min: u64,
) -> Option<u64> {
    let Some((n, p)) = f.get(key) else {
        return Some(default);
    };
    let raw = r.string(n, &p)?;
    let t = raw.trim();
    let (digits, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let scale = match unit.trim() {
        "" | "s" => Some(1),
        "m" => Some(60),
        "h" => Some(3600),
        "d" => Some(86_400),
        _ => None,
    };
    let secs = digits
        .parse::<u64>()
        .ok()
        .zip(scale)
        .and_then(|(d, s)| d.checked_mul(s));
    match secs {
        Some(s) if s >= min => Some(s),
        Some(_) => {
            r.error(
                n.line,
                &p,
                format!("must be at least {min} seconds, found `{raw}`"),
            );
            None
        }
        None => {
            r.error(
                n.line,
                &p,
                format!("expected a duration such as 600, 90m, 6h or 1d, found `{raw}`"),
            );
            None
        }
    }
}

pub(super) fn get_prob(
    r: &mut Reader,
    f: &mut Fields,
    key: &'static str,
    default: f64,
) -> Option<f64> {
    match f.get(key) {
        Some((n, p)) => r.probability(n, &p),
        None => Some(default),
    }
}

// why: outer None = a problem already reported to the reader; inner None = key absent
#[allow(clippy::option_option)]
pub(super) fn get_string(
    r: &mut Reader,
    f: &mut Fields,
    key: &'static str,
) -> Option<Option<String>> {
    match f.get(key) {
        Some((n, p)) => r.nonempty(n, &p).map(Some),
        None => Some(None),
    }
}

pub(super) fn get_string_or(
    r: &mut Reader,
    f: &mut Fields,
    key: &'static str,
    default: &str,
) -> Option<String> {
    get_string(r, f, key).map(|s| s.unwrap_or_else(|| default.to_owned()))
}

pub(super) fn get_bool(
    r: &mut Reader,
    f: &mut Fields,
    key: &'static str,
    default: bool,
) -> Option<bool> {
    match f.get(key) {
        Some((n, p)) => r.boolean(n, &p),
        None => Some(default),
    }
}

pub(super) fn get_strings(
    r: &mut Reader,
    f: &mut Fields,
    key: &'static str,
) -> Option<Vec<String>> {
    match f.get(key) {
        Some((n, p)) => r.strings(n, &p),
        None => Some(Vec::new()),
    }
}

/// An optional TCP port (`ssh-port`): 1 to 65535.
#[allow(clippy::option_option)] // why: as get_string
pub(super) fn get_port(r: &mut Reader, f: &mut Fields, key: &'static str) -> Option<Option<u32>> {
    match f.get(key) {
        Some((n, pp)) => r.count(n, &pp, 1).and_then(|v| {
            if v > 65535 {
                r.error(
                    n.line,
                    &pp,
                    format!("a TCP port must be at most 65535, found {v}"),
                );
                None
            } else {
                Some(Some(v))
            }
        }),
        None => Some(None),
    }
}

#[allow(clippy::option_option)] // why: as get_string
pub(super) fn get_path(
    r: &mut Reader,
    ctx: &Ctx,
    f: &mut Fields,
    key: &'static str,
) -> Option<Option<PathBuf>> {
    get_string(r, f, key).map(|s| s.map(|s| ctx.path(&s)))
}

/// `key` inline or `key-file` as a path; both is an error.
#[allow(clippy::option_option)] // why: as get_string
pub(super) fn get_secret(
    r: &mut Reader,
    ctx: &Ctx,
    f: &mut Fields,
    key: &'static str,
    file_key: &'static str,
) -> Option<Option<Secret>> {
    let inline = get_string(r, f, key)?;
    let file = get_path(r, ctx, f, file_key)?;
    match (inline, file) {
        (Some(_), Some(_)) => {
            let line = f.get(file_key).map_or(f.line(), |(n, _)| n.line);
            r.error(
                line,
                &f.path().key(file_key),
                format!("give either `{key}` or `{file_key}`, not both"),
            );
            None
        }
        (Some(s), None) => Some(Some(Secret::Inline(s))),
        (None, Some(p)) => Some(Some(Secret::File(p))),
        (None, None) => Some(None),
    }
}

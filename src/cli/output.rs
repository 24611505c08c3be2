//! Human formatting shared by commands.

use std::fmt::Write as _;

/// The version of every `--json` document's shape: bumped when a field
/// changes meaning or disappears (new fields may be added within a version).
pub const JSON_SCHEMA_VERSION: u32 = 1;

/// Print a `--json` document: an object naming its kind and schema version,
/// with `body`'s fields beside them (or `body` under `key` when it is not an
/// object).
pub fn json(kind: &str, key: &str, body: serde_json::Value) -> anyhow::Result<()> {
    let mut doc = serde_json::Map::new();
    doc.insert("kind".into(), kind.into());
    doc.insert("schema_version".into(), JSON_SCHEMA_VERSION.into());
    match body {
        serde_json::Value::Object(m) => doc.extend(m),
        other => {
            doc.insert(key.into(), other);
        }
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::Value::Object(doc))?
    );
    Ok(())
}

/// `1.5 GiB`, `512 B`.
#[must_use]
#[allow(clippy::cast_precision_loss)] // why: display only
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

/// A Unix time as local `YYYY-MM-DD HH:MM`, or `never`.
#[must_use]
pub fn time(t: Option<i64>) -> String {
    t.and_then(|t| chrono::DateTime::from_timestamp(t, 0))
        .map_or_else(
            || "never".to_owned(),
            |d| {
                d.with_timezone(&chrono::Local)
                    .format("%Y-%m-%d %H:%M")
                    .to_string()
            },
        )
}

/// Print rows as aligned columns.
pub fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                let _ = write!(s, "{c:<w$}  ", w = widths[i]);
            }
        }
        println!("{}", s.trim_end());
    };
    line(header.iter().map(|h| (*h).to_owned()).collect());
    for r in rows {
        line(r.clone());
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes() {
        assert_eq!(super::size(512), "512 B");
        assert_eq!(super::size(1536), "1.5 KiB");
        assert_eq!(super::size(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }
}

//! Reading rsync's stdout: the itemized lines of `-i` (what changed, what was
//! deleted, what a scrub repaired), the figures of `--stats`, and Deltaic's
//! filter of the spurious xattr lines some rsync versions print.
//!
//! Does not own: running rsync or judging its exit code (`rsync`), nor
//! anything about ssh (`rsync::ssh`). Everything here is a pure function of
//! the lines it is given.

/// What rsync's itemized output (`-i`) said changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Itemized {
    /// Entries created or updated (data or attributes).
    pub changed: u64,
    /// Entries deleted.
    pub deleted: u64,
    /// Regular files whose content differed although size and mtime were
    /// equal: what only `--checksum` finds, and a scrub repairs.
    pub repaired: u64,
}

/// One line of rsync's stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line {
    /// `[.h][dfL]........x `: a spurious xattr line some rsync versions print
    /// for unchanged entries (samba bug 10496); Deltaic drops them, so do we.
    Spurious,
    Deleted,
    /// A change; `repaired` as in [`Itemized::repaired`].
    Changed {
        repaired: bool,
    },
    /// Anything else (`--stats`, messages).
    Other,
}

/// Classify one line of rsync's output (without its newline).
#[must_use]
pub fn classify(line: &[u8]) -> Line {
    if line.starts_with(b"*deleting ") {
        return Line::Deleted;
    }
    // why: itemized lines are `YXcstpoguax name`: 11 flag characters, then a space
    if line.len() < 12 || line[11] != b' ' {
        return Line::Other;
    }
    let (y, x, flags) = (line[0], line[1], &line[2..11]);
    if !b"<>ch.".contains(&y) || !b"fdLDS".contains(&x) {
        return Line::Other;
    }
    if (y == b'.' || y == b'h')
        && b"dfL".contains(&x)
        && flags[..8].iter().all(|c| *c == b'.')
        && flags[8] == b'x'
    {
        return Line::Spurious;
    }
    Line::Changed {
        repaired: y == b'>'
            && x == b'f'
            && flags[0] == b'c'
            && flags[1] == b'.'
            && flags[2] == b'.',
    }
}

/// The figures of `--stats` strata reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// `Number of files:`.
    pub files: u64,
    /// `Total file size:` (bytes): what the unit holds.
    pub total_size: u64,
    /// `Literal data:` (bytes): what actually crossed the wire.
    pub literal: u64,
}

impl Stats {
    /// Take a figure from one `--stats` line, if it is one of ours.
    pub fn take(&mut self, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        let Some((key, value)) = text.split_once(':') else {
            return;
        };
        let slot = match key.trim() {
            "Number of files" => &mut self.files,
            "Total file size" => &mut self.total_size,
            "Literal data" => &mut self.literal,
            _ => return,
        };
        if let Some(n) = leading_number(value) {
            *slot = n;
        }
    }
}

/// The integer at the start of `s`, ignoring digit-group separators
/// (rsync prints `1,234,567` or, by locale, `1.234.567`).
fn leading_number(s: &str) -> Option<u64> {
    let token = s.split_whitespace().next()?;
    let digits: String = token.chars().filter(char::is_ascii_digit).collect();
    if digits.is_empty() || token.chars().any(|c| c.is_ascii_alphabetic()) {
        return None;
    }
    digits.parse().ok()
}

/// What one transfer's stdout said, counted line by line as it streams.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub items: Itemized,
    pub stats: Stats,
}

impl Tally {
    /// Count one line (without its newline) and say what it was; the caller
    /// drops a [`Line::Spurious`] one from the log.
    pub fn take(&mut self, line: &[u8]) -> Line {
        let class = classify(line);
        match class {
            Line::Spurious => {}
            Line::Deleted => self.items.deleted += 1,
            Line::Changed { repaired } => {
                self.items.changed += 1;
                self.items.repaired += u64::from(repaired);
            }
            Line::Other => self.stats.take(line),
        }
        class
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_itemized_lines() {
        assert_eq!(
            classify(b">f+++++++++ etc/passwd"),
            Line::Changed { repaired: false }
        );
        assert_eq!(
            classify(b">f.st...... etc/passwd"),
            Line::Changed { repaired: false }
        );
        assert_eq!(
            classify(b">fc........ etc/passwd"),
            Line::Changed { repaired: true }
        );
        assert_eq!(
            classify(b">fc.......x etc/passwd"),
            Line::Changed { repaired: true }
        );
        assert_eq!(
            classify(b">fcs....... etc/passwd"),
            Line::Changed { repaired: false }
        );
        assert_eq!(
            classify(b">fc.t...... etc/passwd"),
            Line::Changed { repaired: false }
        );
        assert_eq!(
            classify(b"cL+++++++++ a -> b"),
            Line::Changed { repaired: false }
        );
        assert_eq!(
            classify(b"hf+++++++++ a => b"),
            Line::Changed { repaired: false }
        );
        assert_eq!(
            classify(b".d..t...... etc/"),
            Line::Changed { repaired: false }
        );
        assert_eq!(classify(b"*deleting   etc/old"), Line::Deleted);
        assert_eq!(classify(b".d........x etc/"), Line::Spurious);
        assert_eq!(classify(b".f........x etc/x"), Line::Spurious);
        assert_eq!(classify(b"hL........x etc/l"), Line::Spurious);
        assert_eq!(
            classify(b".f.......ax etc/x"),
            Line::Changed { repaired: false }
        );
        assert_eq!(classify(b"Number of files: 3"), Line::Other);
        assert_eq!(classify(b"sent 1,234 bytes  received 5 bytes"), Line::Other);
        assert_eq!(classify(b""), Line::Other);
    }

    #[test]
    fn stats_are_read_with_any_digit_grouping() {
        let text = "\
Number of files: 20,012 (reg: 20,001, dir: 10, link: 1)
Number of created files: 0
Number of regular files transferred: 3
Total file size: 1,073,741,824 bytes
Total transferred file size: 12 bytes
Literal data: 1.234 bytes
Matched data: 0 bytes
";
        let mut s = Stats::default();
        for l in text.lines() {
            s.take(l.as_bytes());
        }
        assert_eq!(
            s,
            Stats {
                files: 20012,
                total_size: 1_073_741_824,
                literal: 1234
            }
        );
        let mut h = Stats::default();
        h.take(b"Total file size: 1.07G bytes");
        assert_eq!(
            h.total_size, 0,
            "a human-readable size is not taken for a number"
        );
    }

    #[test]
    fn a_tally_counts_changes_deletions_repairs_and_stats_but_not_spurious_lines() {
        let mut t = Tally::default();
        for l in [
            ">fc........ a",
            ">f+++++++++ b",
            "*deleting   c",
            ".f........x d",
            "Total file size: 10 bytes",
        ] {
            t.take(l.as_bytes());
        }
        assert_eq!(
            t,
            Tally {
                items: Itemized {
                    changed: 2,
                    deleted: 1,
                    repaired: 1
                },
                stats: Stats {
                    total_size: 10,
                    ..Stats::default()
                }
            }
        );
    }
}

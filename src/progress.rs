//! Progress on a terminal, silence under cron.
//!
//! Owns: whether progress is shown (`--progress auto|always|never`; `auto`
//! shows it only when stdout and stderr are terminals and `-q` was not
//! given; the command line asks for `never` in a job's child, whose output
//! is its log), and the three kinds of bar strata draws on stderr: a byte
//! count with rate and ETA (`retrieve`, `unpack`, `rbd backup`, `rbd
//! apply-diff`), a count of units done with the running ones named (`run`,
//! `archive run`), and a count of steps whose total is learned on the way
//! (a first git clone, from git's own progress). Lines printed while a bar
//! is drawn go through [`Bar::suspend`], so they never tear it.
//!
//! With `always` and no terminal (a log file), the bar is written as a plain
//! line at most once a second instead of being redrawn in place.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike};
use std::io::{IsTerminal, Read, Write};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// When progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// On a terminal, unless quiet.
    Auto,
    Always,
    Never,
}

static MODE: AtomicU8 = AtomicU8::new(0);
const NEVER: u8 = 0;
const TERMINAL: u8 = 1;
const PLAIN: u8 = 2;

/// Decide once, at start-up, from the command line.
pub fn set_mode(mode: Mode, quiet: bool) {
    let tty = std::io::stdout().is_terminal() && std::io::stderr().is_terminal();
    let v = match mode {
        Mode::Never => NEVER,
        Mode::Auto if quiet || !tty => NEVER,
        Mode::Auto => TERMINAL,
        Mode::Always if std::io::stderr().is_terminal() => TERMINAL,
        Mode::Always => PLAIN,
    };
    MODE.store(v, Ordering::Relaxed);
}

/// Whether bars are drawn at all.
#[must_use]
pub fn enabled() -> bool {
    MODE.load(Ordering::Relaxed) != NEVER
}

fn target() -> ProgressDrawTarget {
    match MODE.load(Ordering::Relaxed) {
        TERMINAL => ProgressDrawTarget::stderr(),
        PLAIN => ProgressDrawTarget::term_like_with_hz(Box::new(PlainLines::default()), 1),
        _ => ProgressDrawTarget::hidden(),
    }
}

/// A progress bar, or nothing when progress is off. Clones show the same
/// bar (one may be moved to the thread that reads a child's stderr).
#[derive(Clone)]
pub struct Bar {
    bar: Option<ProgressBar>,
}

impl Bar {
    /// Bytes of `label`, out of `total` when it is known.
    #[must_use]
    pub fn bytes(label: &str, total: Option<u64>) -> Bar {
        if !enabled() {
            return Bar { bar: None };
        }
        let bar = ProgressBar::with_draw_target(total, target());
        let template = if total.is_some() {
            "{prefix} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} [{wide_bar}]"
        } else {
            "{prefix} {bytes} {binary_bytes_per_sec} {elapsed}"
        };
        bar.set_style(
            ProgressStyle::with_template(template)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix(label.to_owned());
        Bar { bar: Some(bar) }
    }

    /// Units done out of `total`, with a message naming the running ones.
    #[must_use]
    pub fn units(label: &str, total: u64) -> Bar {
        if !enabled() {
            return Bar { bar: None };
        }
        let bar = ProgressBar::with_draw_target(Some(total), target());
        bar.set_style(
            ProgressStyle::with_template("{prefix} {pos}/{len} units done, {elapsed}: {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_prefix(label.to_owned());
        Bar { bar: Some(bar) }
    }

    /// Steps of `label` (objects, deltas), whose total and phase (the
    /// message) are set as they become known.
    #[must_use]
    pub fn steps(label: &str) -> Bar {
        if !enabled() {
            return Bar { bar: None };
        }
        let bar = ProgressBar::with_draw_target(Some(0), target());
        bar.set_style(
            ProgressStyle::with_template("{prefix} {msg} {pos}/{len} {elapsed} [{wide_bar}]")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix(label.to_owned());
        Bar { bar: Some(bar) }
    }

    /// No bar: counts nothing, draws nothing.
    #[must_use]
    pub fn none() -> Bar {
        Bar { bar: None }
    }

    pub fn inc(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc(n);
        }
    }

    /// Set the position and total of a [`Bar::steps`].
    pub fn set_steps(&self, done: u64, total: u64) {
        if let Some(b) = &self.bar {
            b.set_length(total);
            b.set_position(done);
        }
    }

    pub fn set_message(&self, msg: String) {
        if let Some(b) = &self.bar {
            b.set_message(msg);
        }
    }

    /// Run `f` (which prints) with the bar out of the way.
    pub fn suspend<T>(&self, f: impl FnOnce() -> T) -> T {
        match &self.bar {
            Some(b) => b.suspend(f),
            None => f(),
        }
    }

    /// `r`, counting what is read from it on this bar.
    pub fn reader<R: Read>(&self, r: R) -> Counting<'_, R> {
        Counting {
            inner: r,
            bar: self,
        }
    }

    /// Remove the bar (what it showed is not left on the screen).
    pub fn finish(self) {
        if let Some(b) = self.bar {
            b.finish_and_clear();
        }
    }
}

/// A reader that advances a [`Bar`].
pub struct Counting<'a, R> {
    inner: R,
    bar: &'a Bar,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }
}

/// `--progress always` without a terminal: each draw is one plain line, at
/// most one a second.
#[derive(Debug, Default)]
struct PlainLines {
    last: Mutex<Option<Instant>>,
}

impl TermLike for PlainLines {
    fn width(&self) -> u16 {
        100
    }
    fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn write_line(&self, s: &str) -> std::io::Result<()> {
        if s.trim().is_empty() {
            return Ok(());
        }
        // why: indicatif's own limit lets a burst of 20 draws through first
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        if last.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
            return Ok(());
        }
        *last = Some(Instant::now());
        writeln!(std::io::stderr(), "{}", s.trim_end())
    }
    fn write_str(&self, s: &str) -> std::io::Result<()> {
        self.write_line(s)
    }
    fn clear_line(&self) -> std::io::Result<()> {
        Ok(())
    }
    fn flush(&self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

//! Progress on a terminal, nothing extra under cron: `run` through a real
//! pseudo-terminal (`script`) shows its units-done bar; with pipes, `-q` or
//! `--progress never` it shows none; `--progress always` writes plain lines.

use crate::run::{Setup, text};
use crate::snap_env::have;
use crate::support::env;

const UNITS: &str =
    "  slow:\n    command: [sh, -c, 'sleep 1.5; echo x']\n  quick:\n    command: [echo, y]\n";

/// `strata ARGS` run under `script`, on a pseudo-terminal; all it printed.
fn on_a_terminal(s: &Setup, args: &str) -> Option<String> {
    if !env::require("script (util-linux)", have("script")) {
        return None;
    }
    let line = format!(
        "{} -c {} --allow-root {args}",
        env::strata_bin().display(),
        s.config.display()
    );
    let out = s
        .home
        .command("script")
        // why: a real terminal has a TERM; without one, a terminal is taken as dumb
        .env("TERM", "xterm")
        .args(["-q", "-e", "-f", "-c", &line, "/dev/null"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    Some(text(&out.stdout))
}

#[test]
fn run_shows_progress_on_a_terminal_and_nothing_extra_elsewhere() {
    let s = Setup::new("  dump-workers: 2\n", UNITS);
    let Some(tty) = on_a_terminal(&s, "run --no-snapshot") else {
        return;
    };
    assert!(
        tty.contains("units done"),
        "a terminal shows the bar:\n{tty}"
    );
    assert!(tty.contains("done  dump/slow ok"), "{tty}");

    let quiet = on_a_terminal(&s, "-q run --no-snapshot").unwrap();
    assert!(!quiet.contains("units done"), "-q: {quiet}");
    let never = on_a_terminal(&s, "--progress never run --no-snapshot").unwrap();
    assert!(!never.contains("units done"), "never: {never}");

    // Pipes (cron): only the start and end lines.
    let out = s.run(&["run", "--no-snapshot"]);
    assert!(out.status.success());
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        !all.contains("units done") && !all.contains('\u{1b}'),
        "{all}"
    );

    // --progress always without a terminal: plain lines, no cursor movement.
    let out = s.run(&["--progress", "always", "run", "--no-snapshot"]);
    assert!(out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("units done"), "{err}");
    assert!(!err.contains('\u{1b}'), "{err}");
}

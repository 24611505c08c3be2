//! Progress on a terminal, nothing extra under cron: `run`, `rbd
//! apply-diff` and a first github clone through a real pseudo-terminal
//! (`script`) show their bars; with pipes, `-q` or `--progress never` they
//! show none; `--progress always` writes plain lines.

use crate::run::{Setup, text};
use crate::snap_env::have;
use crate::support::ceph::Ceph;
use crate::support::env::{self, TestHome, strata};
use crate::support::github::{FakeGithub, TOKEN, acme_world, publish_acme};
use strata::sources::rbd::diff::DiffWriter;

const UNITS: &str =
    "  slow:\n    command: [sh, -c, 'sleep 1.5; echo x']\n  quick:\n    command: [echo, y]\n";

/// `strata ARGS` run in `home` under `script`, on a pseudo-terminal; all it
/// printed. `None` (after a loud skip) without `script`.
fn in_a_terminal(home: &TestHome, args: &str) -> Option<String> {
    in_a_terminal_with(home, args, &[])
}

/// [`in_a_terminal`] with `vars` added to the environment.
fn in_a_terminal_with(home: &TestHome, args: &str, vars: &[(String, String)]) -> Option<String> {
    if !env::require("script (util-linux)", have("script")) {
        return None;
    }
    let line = format!("{} {args}", env::strata_bin().display());
    let out = home
        .command("script")
        .envs(vars.iter().map(|(k, v)| (k, v)))
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

/// `strata -c CONFIG --allow-root ARGS` of `s` on a pseudo-terminal.
fn on_a_terminal(s: &Setup, args: &str) -> Option<String> {
    in_a_terminal(
        &s.home,
        &format!("-c {} --allow-root {args}", s.config.display()),
    )
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

/// A diff of a 64 MiB image with 32 MiB of data (long enough to be drawn),
/// to snapshot `to` when given, of bytes `fill + 1`, `fill + 2`, ...
fn big_diff(to: Option<&str>, fill: u8) -> Vec<u8> {
    const MIB: u64 = 1 << 20;
    let mut w = DiffWriter::new(Vec::new()).unwrap();
    if let Some(to) = to {
        w.to_snap(to).unwrap();
    }
    w.size(64 * MIB).unwrap();
    for i in 0..32u8 {
        w.data(u64::from(i) * 2 * MIB, &vec![fill + i + 1; 1 << 20])
            .unwrap();
    }
    w.finish().unwrap()
}

#[test]
fn rbd_apply_diff_shows_bytes_on_a_terminal_and_nothing_extra_elsewhere() {
    let home = TestHome::new();
    let diff = home.join("d");
    std::fs::write(&diff, big_diff(Some("s1"), 0)).unwrap();
    let image = home.join("image");
    let args = format!("rbd apply-diff {} {}", diff.display(), image.display());

    let Some(tty) = in_a_terminal(&home, &args) else {
        return;
    };
    // The bar: its label, a byte count of the known total, a rate, an ETA.
    assert!(
        tty.contains("apply image"),
        "a terminal shows the bar:\n{tty}"
    );
    assert!(tty.contains("ETA"), "{tty}");
    assert!(tty.contains("applied "), "{tty}");

    for quiet in ["-q", "--progress never"] {
        let out = in_a_terminal(&home, &format!("{quiet} {args}")).unwrap();
        assert!(!out.contains("apply image"), "{quiet}: {out}");
    }

    // Pipes (cron): the one summary line.
    let out = strata(&home)
        .args(["rbd", "apply-diff"])
        .arg(&diff)
        .arg(&image)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(text(&out.stdout).is_empty(), "{}", text(&out.stdout));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("applied "), "{err}");

    // --progress always without a terminal: plain lines, no cursor
    // movement, at most one a second.
    let t = std::time::Instant::now();
    let out = strata(&home)
        .args(["--progress", "always", "rbd", "apply-diff"])
        .arg(&diff)
        .arg(&image)
        .output()
        .unwrap();
    let secs = t.elapsed().as_secs();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("apply image"), "{err}");
    assert!(!err.contains('\u{1b}'), "{err}");
    let lines = err.lines().filter(|l| l.starts_with("apply image")).count();
    assert!(
        lines as u64 <= secs + 1,
        "{lines} lines in {secs} s:\n{err}"
    );
}

#[test]
fn a_first_github_clone_shows_gits_progress_on_a_terminal_only() {
    let home = TestHome::new();
    let Some(fake) = FakeGithub::start(&home, &acme_world(false)) else {
        return;
    };
    let work = home.join("work");
    std::fs::create_dir_all(&work).unwrap();
    publish_acme(&home, &fake, &work);
    let token_file = home.join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    // One root per attempt, so each backup is a first clone.
    let config = |name: &str| {
        let root = home.join(name);
        std::fs::create_dir_all(&root).unwrap();
        let cfg = home.join(format!("{name}.yaml"));
        std::fs::write(
            &cfg,
            format!(
                "settings:\n  root: {}\n  snapshot-store: dir\n  github-token-file: {}\n  github-api-url: {}\n  github-scrub-probability: 0\ngithub:\n  acme:\n    organization-metadata: true\n",
                root.display(),
                token_file.display(),
                fake.api_url()
            ),
        )
        .unwrap();
        (cfg, root)
    };
    let bar = "clone acme/widgets.git";

    let (cfg, root) = config("tty");
    let Some(tty) = in_a_terminal(
        &home,
        &format!(
            "-c {} --allow-root github backup acme widgets",
            cfg.display()
        ),
    ) else {
        return;
    };
    assert!(tty.contains(bar), "a terminal shows the clone:\n{tty}");
    assert!(tty.contains("Receiving objects"), "git's own phase: {tty}");
    assert!(
        root.join("github/acme/widgets/repo/HEAD").is_file(),
        "{tty}"
    );

    let (cfg, _) = config("quiet");
    let out = in_a_terminal(
        &home,
        &format!(
            "-c {} --allow-root -q github backup acme widgets",
            cfg.display()
        ),
    )
    .unwrap();
    assert!(
        !out.contains(bar) && !out.contains("Receiving"),
        "-q: {out}"
    );

    // Pipes (cron): no bar, no git progress, no cursor movement.
    let (cfg, root) = config("pipes");
    let out = strata(&home)
        .arg("-c")
        .arg(&cfg)
        .args(["--allow-root", "github", "backup", "acme", "widgets"])
        .output()
        .unwrap();
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{all}");
    assert!(
        !all.contains(bar) && !all.contains("Receiving") && !all.contains('\u{1b}'),
        "{all}"
    );
    assert!(
        root.join("github/acme/widgets/repo/HEAD").is_file(),
        "{all}"
    );

    // --progress always without a terminal: plain lines.
    let (cfg, _) = config("always");
    let out = strata(&home)
        .arg("-c")
        .arg(&cfg)
        .args([
            "--allow-root",
            "--progress",
            "always",
            "github",
            "backup",
            "acme",
            "widgets",
        ])
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains(bar), "{err}");
    assert!(!err.contains('\u{1b}'), "{err}");
}

#[test]
fn rbd_backup_shows_bytes_on_a_terminal_and_nothing_extra_elsewhere() {
    let ceph = match Ceph::shared() {
        Ok(c) => c,
        Err(e) => {
            env::require(&format!("a throwaway Ceph cluster ({e})"), false);
            return;
        }
    };
    let home = TestHome::new();
    let root = home.join("backup");
    std::fs::create_dir(&root).unwrap();
    let pool = ceph.rbd_pool().to_owned();
    let config = home.join("strata.yaml");
    std::fs::write(
        &config,
        format!(
            "settings:\n  root: {}\n  snapshot-store: dir\nrbd:\n  {pool}:\n    images:\n      vm: progress-img\n",
            root.display()
        ),
    )
    .unwrap();
    let spec = format!("{pool}/progress-img");
    ceph.rbd(["create", "--size", "64M", &spec]);
    let write = |fill: u8| {
        let d = home.join("change.diff");
        std::fs::write(&d, big_diff(None, fill)).unwrap();
        ceph.rbd(["import-diff", "--no-progress", d.to_str().unwrap(), &spec]);
    };
    write(0);
    let vars = ceph.env();
    let backup = format!("-c {} --allow-root rbd backup {pool} vm", config.display());

    // The first backup fetches the whole image, the next exports a diff and applies it.
    let Some(full) = in_a_terminal_with(&home, &backup, &vars) else {
        return;
    };
    assert!(full.contains("full fetch to"), "{full}");
    assert!(
        full.contains("fetch progress-img@backup-"),
        "the fetch's bar:\n{full}"
    );
    write(40);
    let incremental = in_a_terminal_with(&home, &backup, &vars).unwrap();
    assert!(incremental.contains("incremental from"), "{incremental}");
    assert!(
        incremental.contains("export progress-img@backup-"),
        "the export's bar:\n{incremental}"
    );
    assert!(
        incremental.contains("apply progress-img@backup-") && incremental.contains("ETA"),
        "the apply's bar, with its total known:\n{incremental}"
    );

    // A scrub compares the whole image: its size is the total.
    let scrub_args = format!(
        "-c {} --allow-root rbd backup -c {pool} vm",
        config.display()
    );
    let scrub = in_a_terminal_with(&home, &scrub_args, &vars).unwrap();
    assert!(scrub.contains("scrub: compared"), "{scrub}");
    assert!(
        scrub.contains("scrub progress-img@backup-") && scrub.contains("64.00 MiB"),
        "the scrub's bar:\n{scrub}"
    );

    // -q on a terminal, and pipes (cron): no bar.
    write(80);
    let quiet = in_a_terminal_with(&home, &format!("-q {backup}"), &vars).unwrap();
    assert!(!quiet.contains("progress-img@"), "-q: {quiet}");
    write(120);
    let mut cmd = strata(&home);
    cmd.arg("-c")
        .arg(&config)
        .args(["--allow-root", "rbd", "backup", &pool, "vm"]);
    for (k, v) in &vars {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{all}");
    assert!(all.contains("incremental from"), "{all}");
    assert!(
        !all.contains("progress-img@") && !all.contains('\u{1b}'),
        "{all}"
    );
}

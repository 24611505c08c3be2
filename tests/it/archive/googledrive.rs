//! The googledrive archiver against the fake Drive v3 + OAuth server
//! (`tests/support/googledrive/`): a round trip with drill and prune; a set
//! shaped like Deltaic's v2 data listed, retrieved and unpacked unchanged;
//! SIGKILL mid-upload then `archive run -r` finishing the same session; a
//! split into parts with rate limits, 5xx, dropped connections and a token
//! that expires mid-run; the daily cap pausing the set; the sign-in flows.

use super::fixtures::{World, text};
use super::{UNIT, UNITS, check_round_trip, tree_world};
use crate::support::googledrive::{
    CLIENT_ID, CLIENT_SECRET, FakeDrive, SCOPES, deltaic_credentials, strata_credentials,
};
use crate::support::treecmp::{CompareOptions, assert_trees_equal};
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

const PROFILE: &str = "drive";

/// The `drive` profile (YAML under `archivers:`) against `fake`.
fn profile(fake: &FakeDrive, creds: &Path, compression: &str, workers: u32) -> String {
    format!(
        "    {PROFILE}:\n      archiver: googledrive\n      googledrive-api-url: {}\n      googledrive-token-url: {}\n      googledrive-credentials-file: {}\n      compression: {compression}\n      workers: {workers}\n",
        fake.base,
        fake.token_url(),
        creds.display()
    )
}

/// Signed-in credentials for `fake` in the world's home.
fn sign_in(w: &World, fake: &FakeDrive) -> PathBuf {
    fake.refresh_token("1//strata-test", SCOPES);
    let creds = w.home.join("drive-credentials.json");
    std::fs::write(&creds, strata_credentials("1//strata-test")).unwrap();
    creds
}

/// strata with the test knobs: small chunks, millisecond backoff.
fn drive_cmd(w: &World, config: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = w.cmd(config);
    c.env("STRATA_GOOGLEDRIVE_CHUNK_SIZE", "262144")
        .env("STRATA_GOOGLEDRIVE_BACKOFF_MS", "1")
        .env("STRATA_GOOGLEDRIVE_RETRIES", "4")
        .env("STRATA_RETRIEVE_BYTES_PER_SEC", "104857600");
    for (k, v) in env {
        c.env(k, v);
    }
    c.args(args).output().unwrap()
}

fn ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

fn random_unit(name: &str, bytes: u64) -> String {
    format!("  {name}:\n    command: [head, -c, '{bytes}', /dev/urandom]\n    file: data\n")
}

#[test]
fn googledrive_round_trip_with_paging_drill_cost_and_prune() {
    let Some((w, sparse_ok)) = tree_world(false, 600 << 10) else {
        return;
    };
    let Some(fake) = FakeDrive::start(&w.home) else {
        return;
    };
    // why: one file per page makes every listing follow nextPageToken
    fake.control("page_limit", &json!({"n": 1}));
    let creds = sign_in(&w, &fake);
    let config = w.config("enc", true, &profile(&fake, &creds, "zstd", 2));
    let out = ok(
        &drive_cmd(&w, &config, &["archive", "-p", PROFILE, "run"], &[]),
        "archive run",
    );
    assert!(out.contains("complete"), "{out}");
    // Deltaic's layout: a folder named after the snapshot in the app data
    // folder, marked complete, holding a file named after the unit.
    let state = fake.state();
    let appdata = state["appdata_id"].as_str().unwrap();
    let folder = state["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == w.snapshot.as_str())
        .expect("the set's folder")
        .clone();
    assert_eq!(folder["parents"], json!([appdata]));
    assert_eq!(folder["mimeType"], "application/vnd.google-apps.folder");
    assert_eq!(folder["appProperties"]["complete"], "true");
    let files = fake.files_named(UNIT);
    assert_eq!(files.len(), 1, "{files:?}");
    let p = &files[0]["appProperties"];
    assert_eq!(files[0]["parents"], json!([folder["id"]]));
    for (k, v) in [
        ("compression", "zstd"),
        ("encryption", "gpg"),
        ("googledrive-parts", "1"),
        ("googledrive-part", "1"),
    ] {
        assert_eq!(p[k], v, "{p}");
    }
    assert_eq!(p["size"], files[0]["size"]);
    assert_eq!(p["sha256"].as_str().unwrap().len(), 64);
    // Streamed in 256 KiB chunks through one resumable session.
    let s = state["sessions"].as_object().unwrap();
    assert_eq!(s.len(), 1, "{s:?}");
    let (_, session) = s.iter().next().unwrap();
    assert!(session["puts"].as_u64().unwrap() >= 3, "{session}");

    let sets = w.ok(&config, &["archive", "-p", PROFILE, "ls", "-s"]);
    assert!(
        sets.contains(&w.snapshot) && sets.contains("  complete"),
        "{sets}"
    );
    check_round_trip(&w, &config, PROFILE, "enc", sparse_ok);
    let drilled = w.ok(&config, &["archive", "-p", PROFILE, "drill", UNIT]);
    assert!(drilled.contains("is equal to the snapshot"), "{drilled}");
    let cost = w.ok(&config, &["archive", "-p", PROFILE, "cost"]);
    assert!(
        cost.contains("googledrive") && cost.contains("$0.00/month"),
        "{cost}"
    );
    // Archiving the same snapshot again uploads nothing.
    let again = ok(
        &drive_cmd(
            &w,
            &config,
            &["archive", "-p", PROFILE, "run", &w.snapshot],
            &[],
        ),
        "archive run again",
    );
    assert!(
        again.contains("complete: 0 archived now, 1 already in"),
        "{again}"
    );

    // prune: a newer complete set (keep-count 1) makes this one go, and
    // before that, an older incomplete one goes as well.
    for (name, complete) in [("20000101-1", false), ("29991231-1", true)] {
        let props = if complete {
            json!({"complete": "true"})
        } else {
            json!({})
        };
        fake.control(
            "seed",
            &json!({"name": name, "mimeType": "application/vnd.google-apps.folder", "parents": ["appDataFolder"], "appProperties": props}),
        );
    }
    let pruned = w.ok(&config, &["archive", "-p", PROFILE, "prune"]);
    assert!(
        pruned.contains("pruning incomplete archive set 20000101-1"),
        "{pruned}"
    );
    assert!(
        pruned.contains(&format!("pruning archive set {}", w.snapshot)),
        "{pruned}"
    );
    assert!(
        fake.files_named(UNIT).is_empty(),
        "the set's files went with it"
    );
    let sets = w.ok(&config, &["archive", "-p", PROFILE, "ls", "-s"]);
    assert!(
        sets.contains("29991231-1") && !sets.contains(&w.snapshot),
        "{sets}"
    );
}

/// Pack `unit` of `root` as Deltaic did (GNU tar with its label, gzip,
/// `gpg -se` with Deltaic's preferences), into `out`.
fn deltaic_pack(w: &World, root: &Path, set: &str, unit: &str, out: &Path) {
    let tar = w.home.join("deltaic.tar.gz");
    let st = w
        .home
        .command("tar")
        .args([
            "c",
            "--force-local",
            "--format=gnu",
            "--sparse",
            "--acls",
            "--xattrs",
            "-V",
        ])
        .arg(format!("{set} {unit}"))
        .arg("-C")
        .arg(root)
        .arg(unit)
        .arg("--gzip")
        .arg("-f")
        .arg(&tar)
        .output()
        .unwrap();
    assert!(st.status.success(), "tar: {}", text(&st.stderr));
    let g = w.gpg.as_ref().unwrap();
    let _ = std::fs::remove_file(out);
    g.run(
        &w.home,
        &[
            "--personal-cipher-preferences",
            "AES256,AES192,AES",
            "--personal-digest-preferences",
            "SHA256,SHA1",
            "--personal-compress-preferences",
            "Uncompressed",
            "-seu",
            &g.signer,
            "-r",
            &g.recipient,
        ],
        &tar,
        out,
    );
}

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}

#[test]
fn googledrive_reads_a_set_deltaic_wrote_unchanged() {
    let Some(w) = World::new(UNITS, true, false, |_| {}) else {
        return;
    };
    let Some(fake) = FakeDrive::start(&w.home) else {
        return;
    };
    // The source Deltaic archived: two units of a snapshot root.
    let src = w.home.join("deltaic-root");
    for (unit, files) in [
        (
            "rsync/octopus",
            vec![
                ("etc/hosts", b"127.0.0.1 localhost\n".to_vec()),
                ("big", vec![7u8; 300_000]),
            ],
        ),
        ("dump/pgsql", vec![("pgsql", b"-- dump\n".to_vec())]),
    ] {
        for (name, data) in files {
            let p = src.join(unit).join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, data).unwrap();
        }
    }
    std::os::unix::fs::symlink("etc/hosts", src.join("rsync/octopus/link")).unwrap();
    let set = "20150301-1";
    let folder = fake.control(
        "seed",
        &json!({"name": set, "mimeType": "application/vnd.google-apps.folder", "parents": ["appDataFolder"],
                "appProperties": {"complete": "true"}, "createdTime": "2015-03-01T04:00:00.000Z"}),
    );
    for (unit, split) in [("rsync/octopus", true), ("dump/pgsql", false)] {
        let packed = w.home.join("packed");
        deltaic_pack(&w, &src, set, unit, &packed);
        let bytes = std::fs::read(&packed).unwrap();
        let props = |parts: usize, part: usize| {
            json!({"compression": "gzip", "encryption": "gpg", "sha256": sha256_hex(&bytes),
                   "size": bytes.len().to_string(), "googledrive-parts": parts.to_string(),
                   "googledrive-part": part.to_string()})
        };
        // why: Deltaic split at 2 TiB; any cut joins back the same way
        let pieces: Vec<&[u8]> = if split {
            let (a, b) = bytes.split_at(bytes.len() / 3);
            vec![a, b]
        } else {
            vec![&bytes]
        };
        for (i, piece) in pieces.iter().enumerate() {
            let part = w.home.join(format!("piece{i}"));
            std::fs::write(&part, piece).unwrap();
            fake.control(
                "seed",
                &json!({"name": unit, "parents": [folder["id"]], "appProperties": props(pieces.len(), i + 1),
                        "createdTime": "2015-03-01T05:00:00.000Z", "content_path": part}),
            );
        }
    }
    // Deltaic's credentials file, where Deltaic kept it, is found and used;
    // the profile names no credentials file.
    fake.refresh_token(
        "1/deltaic",
        &["https://www.googleapis.com/auth/drive.appfolder", SCOPES[0]],
    );
    let cache = w.home.join(".cache");
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::write(
        cache.join("deltaic-googledrive-credentials.json"),
        deltaic_credentials("1/deltaic"),
    )
    .unwrap();
    let prof = format!(
        "    {PROFILE}:\n      archiver: googledrive\n      googledrive-api-url: {}\n      googledrive-token-url: {}\n",
        fake.base,
        fake.token_url()
    );
    let config = w.config("enc", true, &prof);
    let before = fake.state();

    let sets = w.ok(&config, &["archive", "-p", PROFILE, "ls", "-s"]);
    assert!(
        sets.starts_with(&format!("{set}     2")) && sets.contains("  complete"),
        "{sets}"
    );
    let listed = w.ok(&config, &["archive", "-p", PROFILE, "ls", set]);
    assert!(
        listed.contains("rsync/octopus") && listed.contains("dump/pgsql"),
        "{listed}"
    );
    let ret = w.home.join("ret");
    let got = w.ok(
        &config,
        &[
            "archive",
            "-p",
            PROFILE,
            "retrieve",
            set,
            ret.to_str().unwrap(),
            "rsync/octopus",
            "dump/pgsql",
        ],
    );
    let out = w.home.join("out");
    let mut args = vec!["archive", "unpack", out.to_str().unwrap()];
    args.extend(got.lines());
    w.ok(&config, &args);
    for unit in ["rsync/octopus", "dump/pgsql"] {
        assert_trees_equal(&src.join(unit), &out.join(unit), &CompareOptions::default());
    }
    let test = w.ok(&config, &["googledrive", "test"]);
    assert!(
        test.contains(before["appdata_id"].as_str().unwrap()),
        "{test}"
    );
    let ls = w.ok(&config, &["googledrive", "ls"]);
    assert_eq!(ls.matches("\"name\": \"rsync/octopus\"").count(), 2, "{ls}");
    // Unchanged: nothing was created, updated or deleted, and Deltaic's
    // credentials file is as it was.
    let after = fake.state();
    assert_eq!(
        after["counters"]["mutations"],
        before["counters"]["mutations"]
    );
    assert_eq!(after["files"], before["files"]);
    assert_eq!(
        std::fs::read_to_string(cache.join("deltaic-googledrive-credentials.json")).unwrap(),
        deltaic_credentials("1/deltaic")
    );
    assert!(!cache.join("strata-googledrive-credentials.json").exists());
}

#[test]
fn googledrive_sigkill_mid_upload_then_run_r_resumes_the_same_session() {
    let size: u64 = 3 << 20;
    // why: "small" fits in one chunk and goes up in one multipart request
    let units = format!("{}{}", random_unit("big", size), random_unit("small", 4096));
    let Some(w) = World::new(&units, false, false, |_| {}) else {
        return;
    };
    let Some(fake) = FakeDrive::start(&w.home) else {
        return;
    };
    let creds = sign_in(&w, &fake);
    let config = w.config("plain", false, &profile(&fake, &creds, "none", 2));
    let out = drive_cmd(
        &w,
        &config,
        &["archive", "-p", PROFILE, "run"],
        &[(strata::fault::FAULT_ENV, "googledrive-chunk")],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("done  dump/big FAILED: killed by signal 9"),
        "{}",
        text(&out.stdout)
    );
    let state = fake.state();
    let sessions = state["sessions"].as_object().unwrap().clone();
    assert_eq!(sessions.len(), 1);
    assert_eq!(state["counters"]["requests"]["multipart"], 1);
    assert_eq!(fake.files_named("dump/small").len(), 1);
    let (sid, s) = sessions.iter().next().unwrap();
    assert_eq!(
        s["received"], 262_144,
        "one chunk went in before the kill: {s}"
    );
    assert!(fake.files_named("dump/big").is_empty());
    let kept = w
        .spool
        .join(format!(".googledrive-{PROFILE}"))
        .join(&w.snapshot);
    let json = std::fs::read_to_string(kept.join("dump%2Fbig.json")).unwrap();
    assert!(
        json.contains(sid.as_str()),
        "the session URL is kept: {json}"
    );

    let out = ok(
        &drive_cmd(&w, &config, &["archive", "-p", PROFILE, "run", "-r"], &[]),
        "run -r",
    );
    assert!(out.contains("complete: 1 archived now"), "{out}");
    let state = fake.state();
    assert_eq!(
        state["counters"]["sessions_started"], 1,
        "no second session"
    );
    let s = &state["sessions"][sid.as_str()];
    let archived = fake.files_named("dump/big");
    assert_eq!(archived.len(), 1);
    let total: u64 = archived[0]["size"].as_str().unwrap().parse().unwrap();
    assert_eq!(s["received"].as_u64().unwrap(), total);
    assert_eq!(
        s["bytes_in"].as_u64().unwrap(),
        total,
        "every byte was sent once: no restart from zero"
    );
    assert!(!kept.join("dump%2Fbig.json").exists() && !kept.join("dump%2Fbig.archive").exists());
    let log: String = std::fs::read_dir(w.root.join("Logs/Archive").join(PROFILE).join("dump/big"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert!(
        log.contains("finished the upload an earlier process left"),
        "{log}"
    );
    let ret = w.home.join("ret");
    let got = ok(
        &drive_cmd(
            &w,
            &config,
            &[
                "archive",
                "-p",
                PROFILE,
                "retrieve",
                &w.snapshot,
                ret.to_str().unwrap(),
                "dump/big",
            ],
            &[],
        ),
        "retrieve",
    );
    let out_dir = w.home.join("out");
    w.ok(
        &config,
        &["archive", "unpack", out_dir.to_str().unwrap(), got.trim()],
    );
    assert_eq!(
        std::fs::read(out_dir.join("dump/big/data")).unwrap(),
        std::fs::read(w.snapshot_unit("dump/big").join("data")).unwrap()
    );
    let resync = w.ok(&config, &["archive", "-p", PROFILE, "resync"]);
    assert!(resync.trim().is_empty(), "nothing to repair: {resync}");
}

#[test]
fn googledrive_parts_rate_limits_5xx_drops_and_an_expiring_token() {
    let size: u64 = (5 << 20) / 2;
    let Some(w) = World::new(&random_unit("big", size), false, false, |_| {}) else {
        return;
    };
    let Some(fake) = FakeDrive::start(&w.home) else {
        return;
    };
    let creds = sign_in(&w, &fake);
    let config = w.config("plain", false, &profile(&fake, &creds, "none", 1));
    // A token dies after 6 requests: the run goes on with fresh ones.
    fake.control("tokens", &json!({"max_uses": 6}));
    fake.fault(
        "resumable_start",
        0,
        403,
        "rateLimitExceeded",
        "Rate Limit Exceeded",
    );
    fake.fault("list", 0, 503, "backendError", "Service Unavailable");
    fake.fault(
        "create",
        0,
        403,
        "userRateLimitExceeded",
        "User Rate Limit Exceeded. Rate of requests for user exceed configured project quota.",
    );
    // why: mid-part, so that a retry that went back to byte 0 would show in the counts
    fake.fault("chunk", 1, 429, "rateLimitExceeded", "Too many requests");
    fake.fault("chunk", 3, 500, "backendError", "Backend Error");
    // why: a connection lost mid-chunk: Drive keeps whole 256 KiB units of it (none here)
    fake.drop_after("chunk", 5, 100 << 10);
    let out = ok(
        &drive_cmd(
            &w,
            &config,
            &["archive", "-p", PROFILE, "run"],
            &[("STRATA_GOOGLEDRIVE_PART_SIZE", "1048576")],
        ),
        "archive run",
    );
    assert!(out.contains("complete"), "{out}");
    // three parts of one archive, Deltaic's way
    let mut parts = fake.files_named("dump/big");
    parts.sort_by_key(|f| {
        f["appProperties"]["googledrive-part"]
            .as_str()
            .unwrap()
            .to_owned()
    });
    let sizes: Vec<&str> = parts.iter().map(|f| f["size"].as_str().unwrap()).collect();
    assert_eq!(parts.len(), 3, "{parts:?}");
    let total: u64 = sizes.iter().map(|s| s.parse::<u64>().unwrap()).sum();
    assert_eq!(&sizes[..2], ["1048576", "1048576"]);
    for (i, p) in parts.iter().enumerate() {
        let props = &p["appProperties"];
        assert_eq!(props["googledrive-parts"], "3");
        assert_eq!(props["googledrive-part"], (i + 1).to_string());
        assert_eq!(props["size"], total.to_string());
        assert_eq!(props["sha256"], parts[0]["appProperties"]["sha256"]);
    }
    let st = fake.state();
    assert!(
        st["counters"]["unauthorized"].as_u64().unwrap() >= 1,
        "the token expired mid-run: {}",
        st["counters"]
    );
    // Every retry went on from where the session stood: the only bytes sent
    // twice are the 100 KiB of the dropped chunk.
    let sessions = st["sessions"].as_object().unwrap();
    assert_eq!(sessions.len(), 3, "one session per part");
    let sent: u64 = sessions
        .values()
        .map(|s| s["bytes_in"].as_u64().unwrap())
        .sum();
    assert_eq!(sent, total + (100 << 10));
    // Retrieval joins the parts; a dropped download and a 503 are resumed
    // from where they stopped, and the token keeps expiring.
    fake.drop_after("media", 0, 300_000);
    fake.fault("media", 1, 503, "backendError", "Service Unavailable");
    fake.drop_after("media", 2, 100_000);
    let ret = w.home.join("ret");
    let got = ok(
        &drive_cmd(
            &w,
            &config,
            &[
                "archive",
                "-p",
                PROFILE,
                "retrieve",
                &w.snapshot,
                ret.to_str().unwrap(),
                "dump/big",
            ],
            &[],
        ),
        "retrieve",
    );
    let sent = fake.counter("bytes_sent");
    assert!(
        sent >= total && sent < total + 450_000,
        "{sent} bytes sent for {total}: resumed, not restarted"
    );
    let out_dir = w.home.join("out");
    w.ok(
        &config,
        &["archive", "unpack", out_dir.to_str().unwrap(), got.trim()],
    );
    assert_eq!(
        std::fs::read(out_dir.join("dump/big/data")).unwrap(),
        std::fs::read(w.snapshot_unit("dump/big").join("data")).unwrap()
    );
    // An extra copy of a part (an upload whose answer was lost) is not
    // listed twice, and resync removes it.
    let part2 = parts[1].clone();
    let copy = w.home.join("copy");
    std::fs::write(&copy, vec![0u8; 1_048_576]).unwrap();
    fake.control(
        "seed",
        &json!({"name": "dump/big", "parents": part2["parents"], "appProperties": part2["appProperties"],
                "createdTime": "2999-01-01T00:00:00.000Z", "content_path": copy}),
    );
    let listed = w.ok(&config, &["archive", "-p", PROFILE, "ls"]);
    assert_eq!(listed.matches("dump/big").count(), 1, "{listed}");
    let resync = w.ok(&config, &["archive", "-p", PROFILE, "resync"]);
    assert!(resync.contains("removed an extra copy"), "{resync}");
    assert_eq!(fake.files_named("dump/big").len(), 3);
}

#[test]
fn googledrive_daily_cap_pauses_the_set_and_run_r_resumes_it_the_next_day() {
    let units = format!("{}{}", random_unit("a", 1 << 20), random_unit("b", 1 << 20));
    let Some(w) = World::new(&units, false, false, |_| {}) else {
        return;
    };
    let Some(fake) = FakeDrive::start(&w.home) else {
        return;
    };
    let creds = sign_in(&w, &fake);
    let config = w.config("plain", false, &profile(&fake, &creds, "none", 1));
    // why: the first unit fits under the cap, the second meets it mid-upload
    fake.control("upload_cap", &json!({"bytes": (3 << 20) / 2}));
    let out = drive_cmd(&w, &config, &["archive", "-p", PROFILE, "run"], &[]);
    assert!(
        out.status.success(),
        "a pause is not a failure: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let err = text(&out.stderr);
    assert!(err.contains("paused") && err.contains("run -r"), "{err}");
    assert!(!err.contains("FAILED"), "{err}");
    let sets = w.ok(&config, &["archive", "-p", PROFILE, "ls", "-s"]);
    assert!(sets.contains("incomplete"), "{sets}");
    let stored: Vec<usize> = ["dump/a", "dump/b"]
        .iter()
        .map(|u| fake.files_named(u).len())
        .collect();
    assert_eq!(
        stored.iter().sum::<usize>(),
        1,
        "one unit fit under the cap: {stored:?}"
    );
    let marker = w.spool.join(format!(".googledrive-{PROFILE}/paused.json"));
    assert!(marker.exists());

    // The same day: nothing is tried.
    let before = fake.state()["counters"]["requests"].clone();
    let out = drive_cmd(&w, &config, &["archive", "-p", PROFILE, "run", "-r"], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("paused"),
        "{}",
        text(&out.stderr)
    );
    // the hourly cron job says nothing while the pause lasts
    let cron_is_quiet = |when: &str| {
        let out = drive_cmd(
            &w,
            &config,
            &[
                "-q",
                "archive",
                "-p",
                PROFILE,
                "run",
                "-r",
                "--if-incomplete",
            ],
            &[],
        );
        assert!(
            out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
            "cron's continuation {when}: {:?} {}{}",
            out.status,
            text(&out.stdout),
            text(&out.stderr)
        );
    };
    cron_is_quiet("while paused");
    let after = fake.state()["counters"]["requests"].clone();
    assert_eq!(before["chunk"], after["chunk"], "no upload while paused");

    // The next day (the pause's time has passed, Drive's counter is reset).
    fake.control("upload_cap", &json!({"bytes": null, "reset_day": true}));
    std::fs::write(
        &marker,
        r#"{"until": "2000-01-01T00:00:00Z", "why": "test"}"#,
    )
    .unwrap();
    let out = ok(
        &drive_cmd(
            &w,
            &config,
            &["archive", "-p", PROFILE, "run", "-r", "--if-incomplete"],
            &[],
        ),
        "run -r --if-incomplete the next day",
    );
    assert!(
        out.contains("complete: 1 archived now, 1 already in"),
        "{out}"
    );
    // the set complete: the cron job is quiet under -q, says why without it
    cron_is_quiet("once the set is complete");
    let said = ok(
        &drive_cmd(
            &w,
            &config,
            &["archive", "-p", PROFILE, "run", "-r", "--if-incomplete"],
            &[],
        ),
        "run -r --if-incomplete on a complete set",
    );
    assert!(
        said.contains(&format!(
            "profile {PROFILE}: nothing to continue: archive set "
        )) && said.contains("is already complete"),
        "{said}"
    );
    let out = drive_cmd(&w, &config, &["archive", "-p", PROFILE, "run", "-r"], &[]);
    assert!(
        !out.status.success() && text(&out.stderr).contains("is already complete"),
        "without --if-incomplete a complete set is an error: {}",
        text(&out.stderr)
    );
    let st = fake.state();
    assert_eq!(
        st["counters"]["sessions_started"], 2,
        "dump/b went on in its session"
    );
    for u in ["dump/a", "dump/b"] {
        assert_eq!(fake.files_named(u).len(), 1, "{u}");
    }
    let sessions = st["sessions"].as_object().unwrap();
    let total: u64 = sessions
        .values()
        .map(|s| s["received"].as_u64().unwrap())
        .sum();
    let sent: u64 = sessions
        .values()
        .map(|s| s["bytes_in"].as_u64().unwrap())
        .sum();
    assert_eq!(total, sent, "no byte was sent twice");
}

/// Read `child`'s stdout until a line satisfies `want`.
fn wait_for_line(out: &mut impl BufRead, want: impl Fn(&str) -> bool) -> String {
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "the command ended first"
        );
        if want(&line) {
            return line.trim().to_owned();
        }
    }
}

#[test]
fn googledrive_sign_in_by_browser_by_device_code_and_by_import() {
    let Some(w) = World::new(UNITS, false, false, |_| {}) else {
        return;
    };
    let Some(fake) = FakeDrive::start(&w.home) else {
        return;
    };
    let settings = format!(
        "  googledrive-client-id: {CLIENT_ID}\n  googledrive-client-secret: {CLIENT_SECRET}\n  googledrive-token-url: {}\n  googledrive-api-url: {}\n",
        fake.token_url(),
        fake.base
    );
    let plain = w.config("plain", false, "");
    let body = std::fs::read_to_string(&plain).unwrap();
    let config = w.home.join("signin.yaml");
    std::fs::write(
        &config,
        body.replacen("settings:\n", &format!("settings:\n{settings}"), 1),
    )
    .unwrap();
    let default = w.home.join(".cache/strata-googledrive-credentials.json");
    let mode = |p: &Path| {
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(p).unwrap().permissions())
            & 0o777
    };

    // The device flow: the code is shown, approved elsewhere, then polled.
    let mut child = w
        .cmd(&config)
        .args(["googledrive", "auth", "--device"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let line = wait_for_line(&mut out, |l| l.contains("enter the code"));
    let code = line.rsplit(' ').next().unwrap();
    fake.control("device", &json!({"user_code": code}));
    let end = child.wait_with_output().unwrap();
    assert!(end.status.success(), "{}", text(&end.stderr));
    assert_eq!(mode(&default), 0o600);
    let creds: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&default).unwrap()).unwrap();
    assert!(
        creds["refresh_token"].as_str().unwrap().starts_with("1//"),
        "{creds}"
    );
    let test = w.ok(&config, &["googledrive", "test"]);
    assert!(test.contains("Application Data"), "{test}");

    // The loopback flow: the browser is sent to Google's consent page, then
    // back to 127.0.0.1 with a code that only the PKCE verifier redeems.
    std::fs::remove_file(&default).unwrap();
    let mut child = w
        .cmd(&config)
        .args(["googledrive", "auth"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let url = wait_for_line(&mut out, |l| l.starts_with("https://accounts.google.com/"));
    assert!(
        url.contains("code_challenge_method=S256") && url.contains("drive.appdata"),
        "{url}"
    );
    let at_fake = url.replacen("https://accounts.google.com", &fake.base, 1);
    let (status, location, _) = fake.get(&at_fake);
    assert_eq!(status, 302);
    let back = location.unwrap();
    assert!(back.starts_with("http://127.0.0.1:"), "{back}");
    let (status, _, page) = fake.get(&back);
    assert_eq!(status, 200, "{page}");
    let end = child.wait_with_output().unwrap();
    assert!(end.status.success(), "{}", text(&end.stderr));
    assert_eq!(mode(&default), 0o600);
    assert!(
        w.ok(&config, &["googledrive", "test"])
            .contains("Application Data")
    );

    // --import of Deltaic's oauth2client file, into the configured file.
    fake.refresh_token(
        "1/deltaic",
        &["https://www.googleapis.com/auth/drive.appfolder", SCOPES[0]],
    );
    let deltaic = w.home.join("deltaic-googledrive-credentials.json");
    std::fs::write(&deltaic, deltaic_credentials("1/deltaic")).unwrap();
    let target = w.home.join("creds/imported.json");
    let with_file = w.home.join("import.yaml");
    std::fs::write(
        &with_file,
        std::fs::read_to_string(&config).unwrap().replacen(
            "settings:\n",
            &format!(
                "settings:\n  googledrive-credentials-file: {}\n",
                target.display()
            ),
            1,
        ),
    )
    .unwrap();
    w.ok(
        &with_file,
        &["googledrive", "auth", "--import", deltaic.to_str().unwrap()],
    );
    assert_eq!(mode(&target), 0o600);
    let imported: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&target).unwrap()).unwrap();
    assert_eq!(imported["refresh_token"], "1/deltaic");
    // A refresh token Google no longer knows is refused before anything is written.
    std::fs::write(&deltaic, deltaic_credentials("1/revoked")).unwrap();
    let out = w.strata(
        &with_file,
        &["googledrive", "auth", "--import", deltaic.to_str().unwrap()],
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("invalid_grant"),
        "{}",
        text(&out.stderr)
    );

    // rm deletes by id (-y skips Deltaic's ten-second countdown); ls shows it gone.
    let folder = fake.control(
        "seed",
        &json!({"name": "20260101-1", "mimeType": "application/vnd.google-apps.folder", "parents": ["appDataFolder"]}),
    );
    let id = folder["id"].as_str().unwrap();
    assert!(w.ok(&with_file, &["googledrive", "ls"]).contains(id));
    let out = w.strata(&with_file, &["googledrive", "rm", "-y", id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("Deleting 20260101-1"),
        "{}",
        text(&out.stderr)
    );
    assert!(!w.ok(&with_file, &["googledrive", "ls"]).contains(id));
}

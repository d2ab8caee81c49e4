//! Issue 12, "the first hour with s4": the binary tried as a new user would, each test named
//! after what it pins: checks before a target is saved, confirmations, conventions of the
//! command line, end summaries, error hints that name the endpoint and the target, `--json`.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use s4::s3::{self, Client, Credentials, Meter, PutOptions, Tap, Transfer};
use serde_json::Value;
use support::env::{block_on, read, write, write_bytes, Env, Run};
use support::proxy::{Fault, Match, Plan, Proxy, Rule};
use support::{client, store};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `s4 add` by flags with `extra` (the secret on stdin): (exit code, stderr).
fn add(e: &Env, name: &str, uri: &str, endpoint: &str, extra: &[&str]) -> (Option<i32>, String) {
    let s = store();
    let folder = e.folder(name);
    let mut args = vec![
        "add",
        "--name",
        name,
        "--local-folder",
        folder.to_str().unwrap(),
        "--s3-uri",
        uri,
        "--endpoint-url",
        endpoint,
        "--region",
        &s.region,
        "--access-key-id",
        &s.access_key,
        "--secret-access-key-stdin",
    ];
    args.extend_from_slice(extra);
    let out = e.s4(&args, &format!("{}\n", s.secret_key));
    (out.status.code(), text(&out.stderr))
}

fn uri(e: &Env, name: &str) -> String {
    format!("s3://{}/{}{name}", store().bucket, e.prefix)
}

/// A port on 127.0.0.1 where nothing listens (bound, then closed).
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn add_refuses_bad_uris_endpoints_folders_and_taken_names_before_saving() {
    let e = Env::new("add-checks");
    let ep = store().endpoint.clone();
    let cases: &[(&str, &str, &[&str], &str)] = &[
        ("s3://s3://b/p", &ep, &["--create"], "s3:// twice"),
        ("s3://B_ad/p", &ep, &["--create"], "not a valid bucket name"),
        (&uri(&e, "x"), "127.0.0.1:9000", &["--create"], "did you mean http://127.0.0.1:9000"),
        (&uri(&e, "x"), &ep, &[], "does not exist: create it first, or pass --create"),
    ];
    for (u, endpoint, extra, says) in cases {
        let (code, err) = add(&e, "t1", u, endpoint, extra);
        assert_eq!(code, Some(2), "{u} {endpoint}: {err}");
        assert!(err.contains(says), "{u} {endpoint}: expected {says:?} in {err}");
    }
    assert!(!e.conf().exists(), "nothing was saved");
    let (code, err) = add(&e, "t1", &uri(&e, "x"), &ep, &["--create"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(e.folder("t1").is_dir());
    // Issue 12: a second `add --name t1` silently replaced the first.
    let (code, err) = add(&e, "t1", &uri(&e, "y"), &ep, &[]);
    assert_eq!(code, Some(2));
    assert!(err.contains("exists already") && err.contains("`s4 edit t1`"), "{err}");
    assert!(read(&e.conf()).contains(&uri(&e, "x")));
}

#[test]
fn add_checks_the_store_answers_before_saving_and_no_check_skips_it() {
    let e = Env::new("add-probe");
    let port = closed_port();
    let dead = format!("http://127.0.0.1:{port}");
    let (code, err) = add(&e, "t2", &uri(&e, "x"), &dead, &["--create"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains(&format!("Nothing answers at {dead}")), "{err}");
    assert!(err.contains("s4 edit t2") && err.contains("--no-check"), "{err}");
    assert!(!e.conf().exists());
    let (code, err) = add(&e, "t2", &uri(&e, "x"), &dead, &["--create", "--no-check"]);
    assert_eq!(code, Some(0), "{err}");
    // The same one line at sync time, with the real target's name in the hint.
    let out = e.s4(&["sync", "t2"], "");
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("Nothing answers at {dead}")) && err.contains("`s4 edit t2`"), "{err}");
    // Wrong secret: refused at `add`, with sync's words.
    let s = store();
    if !s.is_s3s_fs() && s.lacks("sigv4").is_some() {
        return;
    }
    let folder = e.folder("t3");
    let out = e.s4(
        &[
            "add",
            "--name",
            "t3",
            "--local-folder",
            folder.to_str().unwrap(),
            "--create",
            "--s3-uri",
            &uri(&e, "x"),
            "--endpoint-url",
            &s.endpoint,
            "--region",
            &s.region,
            "--access-key-id",
            &s.access_key,
            "--secret-access-key-stdin",
        ],
        "wrong-secret-wrong-secret\n",
    );
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("s4 edit t3") && !err.contains("s4 edit NAME"), "{err}");
}

#[test]
fn rm_without_a_terminal_refuses_unless_yes() {
    let e = Env::new("rm-confirm");
    e.add("docs");
    let out = e.s4(&["rm", "docs"], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("s4 rm docs --yes"), "{}", text(&out.stderr));
    assert!(read(&e.conf()).contains("\"docs\""));
    let out = e.s4(&["rm", "docs", "-y"], "");
    assert!(out.status.success());
    assert!(!read(&e.conf()).contains("\"docs\""));
}

#[test]
fn help_version_and_global_flags_after_the_command_follow_conventions() {
    let e = Env::new("conventions");
    for args in [&["-V"][..], &["--version"], &["version"], &["v"]] {
        let out = e.s4(args, "");
        assert_eq!((out.status.code(), text(&out.stdout).trim()), (Some(0), env!("CARGO_PKG_VERSION")), "{args:?}");
    }
    for args in [&["-h"][..], &["--help"], &["sync", "-h"], &["add", "--help"]] {
        let out = e.s4(args, "");
        assert!(out.status.success() && text(&out.stdout).contains("Usage"), "{args:?}: {}", text(&out.stderr));
    }
    e.add("a");
    let out = e.s4(&["sync", "a", "--log-level", "DEBUG", "--no-colors"], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("DEBUG: "), "{}", text(&out.stderr));
    for shell in ["bash", "zsh", "fish"] {
        let out = e.s4(&["completions", shell], "");
        assert!(out.status.success() && text(&out.stdout).contains("daemon"), "{shell}");
    }
    let out = e.s4(&["completions", "tcsh"], "");
    assert_eq!(out.status.code(), Some(2));
    let out = e.s4(&["man"], "");
    assert!(text(&out.stdout).starts_with(".TH S4 1"));
    let out = e.s4(&["sync", "a", "--bwlimit", "fast"], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("500K"), "{}", text(&out.stderr));
}

#[test]
fn every_run_ends_with_a_summary_line() {
    let e = Env::new("summary");
    e.add("a");
    write(&e.folder("a").join("f.txt"), "hello", -10);
    let out = e.s4(&["--no-colors", "sync", "a"], "");
    let err = text(&out.stderr);
    assert!(err.contains("a: 1 uploaded, 0 downloaded, 0 deleted, 0 conflicts, 0 failed · 5 B in "), "{err}");
    let out = e.s4(&["-q", "sync", "a"], "");
    assert_eq!(text(&out.stderr), "", "-q: quiet when all is well");
}

#[test]
fn a_failed_run_says_what_failed_in_its_summary() {
    let e = Env::new("failed-summary");
    e.add("a");
    write(&e.folder("a").join("ok.txt"), "fine", -10);
    write(&e.folder("a").join("locked/inner.txt"), "x", -10);
    use std::os::unix::fs::PermissionsExt;
    let locked = e.folder("a").join("locked/inner.txt");
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    if std::fs::read(&locked).is_ok() {
        eprintln!("note: running as a user who reads mode-000 files (root); failure summary not checked");
        return;
    }
    let out = e.s4(&["--no-colors", "sync", "a"], "");
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("1 failed") && err.contains("did not sync"), "{err}");
}

#[test]
fn json_lines_carry_schema_event_and_target_and_a_failed_target_is_an_error_object() {
    let e = Env::new("json");
    e.add("a");
    let (code, err) =
        add(&e, "dead", &uri(&e, "dead"), &format!("http://127.0.0.1:{}", closed_port()), &["--create", "--no-check"]);
    assert_eq!(code, Some(0), "{err}");
    write(&e.folder("a").join("f.txt"), "x", -10);
    let out = e.s4(&["--no-colors", "sync", "--json"], "");
    let r = Run::from_output(&out);
    assert_eq!(r.code, 2, "{}", r.stderr);
    for l in &r.lines {
        assert_eq!(l["schema"], 1, "{l}");
        assert!(l.get("event").is_some() && l.get("target").is_some(), "{l}");
    }
    let action = r.lines.iter().find(|l| l["event"] == "action").expect("an action line");
    assert_eq!((action["target"].as_str(), action["key"].as_str()), (Some("a"), Some("f.txt")));
    let error = r.lines.iter().find(|l| l["event"] == "error").expect("an error object");
    assert_eq!(error["target"], "dead");
    assert!(error["error"].as_str().unwrap().contains("Nothing answers at"), "{error}");
    assert_eq!(r.lines.last().unwrap()["target"], Value::Null);
    assert_eq!(r.count("uploaded"), 1);
}

#[test]
fn a_json_reader_that_goes_away_does_not_crash_the_sync() {
    // Issue 12 re-checked: `s4 sync --json | head -3` panicked ("failed printing to stdout:
    // Broken pipe") at the next line, with a backtrace instead of a finished sync.
    let e = Env::new("json-epipe");
    e.add("a");
    write(&e.folder("a").join("f.txt"), "x", -10);
    let mut child = e.command(&["--no-colors", "sync", "--json", "a"]).spawn().unwrap();
    drop(child.stdin.take());
    drop(child.stdout.take()); // the reader is gone before the first line
    let out = child.wait_with_output().unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains("a: 1 uploaded"), "{err}");
    assert_eq!(e.remote_keys().iter().filter(|k| *k == "f.txt").count(), 1);
}

#[test]
fn listing_commands_into_a_closed_pipe_do_not_panic() {
    // `s4 ls a | head` panicked at the first line past the reader: every command's stdout now
    // drops a closed pipe's error (`out!`), which clippy enforces.
    let e = Env::new("ls-epipe");
    e.add("a");
    write(&e.folder("a").join("f.txt"), "x", -10);
    assert_eq!(e.sync("a", &[]).code, 0);
    let commands: [&[&str]; 5] = [&["ls", "a"], &["targets"], &["version"], &["--help"], &["status", "a"]];
    for args in commands {
        let mut child = e.command(&[&["--no-colors"][..], args].concat()).spawn().unwrap();
        drop(child.stdin.take());
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "s4 {args:?}: {err}");
        assert!(!err.contains("panicked"), "s4 {args:?}: {err}");
    }
    println!("summary: {} commands wrote into a closed pipe, none panicked", commands.len());
}

#[test]
fn status_counts_what_a_sync_would_move() {
    let e = Env::new("status");
    e.add("a");
    write(&e.folder("a").join("f.txt"), "x", -10);
    let out = e.s4(&["status", "--json"], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let line: Value = serde_json::from_str(text(&out.stdout).lines().next().unwrap()).unwrap();
    assert_eq!((line["event"].as_str(), line["target"].as_str()), (Some("status"), Some("a")));
    assert_eq!(line["planned"], 1);
    assert!(e.remote_keys().is_empty(), "status changes nothing");
    e.sync("a", &[]);
    let out = e.s4(&["status", "a"], "");
    assert_eq!(text(&out.stdout).trim(), "a: in sync");
}

const MIB: usize = 1 << 20;

/// Issue 12: `--bwlimit` was accepted but no transfer honoured it. 21 MiB each way at 6 MiB/s
/// (a 4 MiB file in one request, a 17 MiB one in parallel parts and ranges, all sharing one
/// limit per direction) must take at least 3 s; a lower bound, which a noisy machine only makes
/// easier to meet. Unlimited, the same sync takes a fraction of that.
#[test]
fn bwlimit_keeps_uploads_and_downloads_with_parallel_parts_under_the_limit() {
    let e = Env::new("bwlimit");
    e.add("a");
    e.add("b");
    let data: Vec<u8> = (0..21 * MIB).map(|i| (i % 251) as u8).collect();
    write_bytes(&e.folder("a").join("small.bin"), &data[..4 * MIB], -10);
    write_bytes(&e.folder("a").join("big.bin"), &data[4 * MIB..], -10);
    let t = Instant::now();
    let up = e.sync("a", &["--bwlimit", "6M"]);
    let up_secs = t.elapsed().as_secs_f64();
    assert_eq!((up.code, up.count("uploaded")), (0, 2), "{}", up.stderr);
    let t = Instant::now();
    let down = e.sync("b", &["--bwlimit", "6M"]);
    let down_secs = t.elapsed().as_secs_f64();
    assert_eq!((down.code, down.count("downloaded")), (0, 2), "{}", down.stderr);
    assert_eq!(std::fs::read(e.folder("b").join("big.bin")).unwrap(), &data[4 * MIB..]);
    let rate = |secs: f64| 21.0 / secs;
    println!(
        "S4-SUMMARY bwlimit 6 MiB/s: 21 MiB up in {up_secs:.2} s ({:.2} MiB/s), down in {down_secs:.2} s ({:.2} MiB/s)",
        rate(up_secs),
        rate(down_secs)
    );
    assert!(up_secs >= 3.0, "upload ran at {:.2} MiB/s", rate(up_secs));
    assert!(down_secs >= 3.0, "download ran at {:.2} MiB/s", rate(down_secs));
}

/// A meter that keeps every count it hears.
fn recording() -> (Meter, Arc<Mutex<Vec<u64>>>) {
    let heard = Arc::new(Mutex::new(Vec::new()));
    let h = heard.clone();
    (Arc::new(move |n| h.lock().unwrap().push(n)), heard)
}

/// Issue 12: the progress display moved only when a whole file finished (a 300 MiB upload
/// showed nothing for seconds). The S3 layer's meter now hears a multipart upload and a ranged
/// download piece by piece, and each byte once: the store's answer to one part is lost, the part
/// is sent again, and its bytes are not counted twice.
#[test]
fn byte_progress_moves_during_a_large_transfer_and_a_retried_part_counts_once() {
    let s = store();
    if s.endpoint.is_empty() {
        return eprintln!("note: no endpoint to put the fault proxy in front of; skipped");
    }
    let lost = Match { method: Some("PUT"), query: Some("partNumber="), path: None };
    let proxy = Proxy::start(Plan::rules(vec![Rule::nth(lost, Fault::ResetAfter, 2)]), Duration::from_secs(5));
    let creds = Credentials {
        access_key_id: s.access_key.clone(),
        secret_access_key: s.secret_key.clone(),
        session_token: None,
    };
    let c = Client::new(s3::Config::new(Some(proxy.endpoint.clone()), s.region.clone(), creds), &s.bucket).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("big.bin");
    let size = 40 * MIB as u64;
    std::fs::write(&src, (0..size).map(|i| (i % 253) as u8).collect::<Vec<u8>>()).unwrap();
    let key = format!("{}big.bin", support::unique_prefix("byte-progress"));
    let xfer = Transfer::default();
    let (meter, heard) = recording();
    let tap = Tap { meter: Some(meter), throttle: None };
    block_on(c.put_file(&key, &src, size, &PutOptions::default(), &xfer, &tap)).unwrap();
    assert_eq!(proxy.faults().get(&Fault::ResetAfter), Some(&1), "a part's answer was lost: {}", proxy.report());
    let up = heard.lock().unwrap().clone();
    assert_eq!(up.iter().sum::<u64>(), size, "each byte counted once");
    assert!(up.len() >= 40 && up.iter().all(|&n| n <= 256 << 10), "{} counts, largest {:?}", up.len(), up.iter().max());

    let (meter, heard) = recording();
    let tap = Tap { meter: Some(meter), throttle: None };
    let dest = dir.path().join("back.bin");
    block_on(c.download_to_file_if(&key, &dest, size, None, &xfer, &tap)).unwrap();
    let down = heard.lock().unwrap().clone();
    assert_eq!(down.iter().sum::<u64>(), size);
    assert!(down.len() >= 40, "{} counts", down.len());
    assert_eq!(std::fs::read(&dest).unwrap(), std::fs::read(&src).unwrap());
    println!(
        "S4-SUMMARY byte progress: 40 MiB up in {} counts (one part sent twice), down in {}",
        up.len(),
        down.len()
    );
    let _ = block_on(client().delete(&key));
}

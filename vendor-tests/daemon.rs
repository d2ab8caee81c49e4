//! The daemon's steady state costs what changed, not the tree (issue 13): on a folder of many
//! files, one edited file reaches S3 through a round that syncs that key alone (no scan, no
//! listing of the prefix), and an idle poll of S3 is one conditional GET of the remote index.
//! Measured figures are printed (`--nocapture`); the asserts are on requests, not on time.
//! `S4_DAEMON_FILES` sets the folder's size (default 20,000).

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::env::{block_on, write, Env};

/// Stops the daemon even when an assertion fails first.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !ok() {
        assert!(t0.elapsed() < limit, "the daemon never did: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The `'a': round (...): N requests in S s` lines the daemon logs at DEBUG, as (what, N).
fn rounds(log: &str) -> Vec<(String, u64)> {
    log.lines()
        .filter_map(|l| {
            let rest = l.split("'a': round (").nth(1)?;
            let (what, tail) = rest.split_once("): ")?;
            Some((what.to_string(), tail.split_whitespace().next()?.parse().ok()?))
        })
        .collect()
}

fn read_log(p: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned()
}

#[test]
fn one_edit_in_a_large_folder_costs_one_key_and_an_idle_poll_one_request() {
    let files: usize = std::env::var("S4_DAEMON_FILES").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let e = Env::new("daemon-steady");
    e.add("a");
    let folder = e.folder("a");
    for i in 0..files {
        let p = folder.join(format!("d{:03}/f{i:06}.txt", i % 200));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, format!("file {i}")).unwrap();
    }
    let t0 = Instant::now();
    let r = e.sync("a", &[]);
    assert_eq!((r.code, r.count("uploaded")), (0, files as u64), "{}", r.stderr);
    let first_sync = t0.elapsed();
    let log_path = e.dir.path().join("daemon.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let _d = Daemon(
        Command::new(support::s4_bin!())
            .args(["--no-colors", "--log-level", "DEBUG", "daemon", "a", "--poll", "1", "--read-delay", "200"])
            .env("S4_CONFIG", e.conf())
            .env("HOME", e.dir.path())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    // The first round is a full sync (a no-op); then polls of S3 find nothing changed.
    let unchanged = "poll: the remote index is unchanged (1 request)";
    wait_for("a full first round, then idle polls", Duration::from_secs(300), || {
        read_log(&log_path).matches(unchanged).count() >= 2
    });
    let start = rounds(&read_log(&log_path));
    assert!(matches!(&start[..], [(w, _)] if w == "full sync"), "{start:?}");
    // One edit: it reaches S3 in a round of that one key.
    let key = format!("d007/f{:06}.txt", 7);
    write(&folder.join(&key), "edited", 5);
    let edited = Instant::now();
    let c = e.client();
    let full_key = format!("{}{key}", e.prefix);
    wait_for("upload the edit", Duration::from_secs(60), || {
        block_on(c.get_bytes(&full_key)).unwrap().is_some_and(|(b, _)| &b[..] == b"edited")
    });
    let to_s3 = edited.elapsed();
    wait_for("log the round", Duration::from_secs(30), || rounds(&read_log(&log_path)).len() > start.len());
    let text = read_log(&log_path);
    let after = rounds(&text)[start.len()..].to_vec();
    let (what, requests) = after[0].clone();
    assert_eq!(what, "1 changed key(s)", "the edit synced by its key, not a full sync: {after:?}");
    // A full round lists the prefix (a request per 1,000 keys) on top of the rest; the key's
    // round is a HEAD, the upload, and the index: a handful, whatever the folder's size.
    let full_requests = start[0].1;
    assert!(requests < 20, "{requests} requests for one key (a full round took {full_requests})");
    // What the key's round sent, for the figures: the request lines logged since the edit.
    let since_edit = text.rsplit(unchanged).next().unwrap_or("");
    let sent: Vec<String> = since_edit
        .lines()
        .filter(|l| l.contains(" ms: ") && l.contains(" at "))
        .filter_map(|l| {
            let request = l.rsplit(": ").find(|part| part.contains(" at "))?;
            Some(request.split(" at ").next()?.replace(&e.prefix, "").trim().to_string())
        })
        .collect();
    println!("the key's round sent: {}", sent.join(" · "));
    let idle = text.matches(unchanged).count();
    println!(
        "daemon on {files} files: first sync {:.1} s; full round {full_requests} requests; one edit on S3 after \
         {:.2} s (read delay 0.2 s) in a round of {requests} requests; {idle} idle polls at 1 request each",
        first_sync.as_secs_f64(),
        to_s3.as_secs_f64()
    );
}

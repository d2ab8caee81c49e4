//! Issue 10: a real distributed store under node loss. A 3-node Garage cluster (replication
//! factor 3) loses a node in the middle of a sync of thousands of files, and the node comes back
//! a few seconds later: the sync completes, or stops with a clear error and completes on the next
//! run; a second machine syncing through another node gets every byte; nothing is lost.
//!
//! Needs the cluster of `vendor-tests/garage-cluster.sh` (`vendor-tests/run garage-cluster`);
//! without `S4_CLUSTER_DIR` each test says so and passes. `S4_CLUSTER_FILES` sets the number of
//! small files (default 4000). Each test prints one `summary:` line with its figures.

mod support;

#[path = "robustness/common.rs"]
#[allow(dead_code)]
mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;
use support::env::{write_bytes, Env, Run};

/// The tests kill and restart the one cluster's nodes: one at a time.
static CLUSTER: Mutex<()> = Mutex::new(());

/// A run of s4 that takes longer than this has hung (a full run takes well under a minute).
const HANG: Duration = Duration::from_secs(600);

struct Cluster {
    dir: std::path::PathBuf,
    endpoints: Vec<String>,
}

fn cluster() -> Option<Cluster> {
    let dir = std::env::var_os("S4_CLUSTER_DIR")?;
    let endpoints: Vec<String> =
        std::env::var("S4_CLUSTER_ENDPOINTS").unwrap_or_default().split_whitespace().map(String::from).collect();
    assert_eq!(endpoints.len(), 3, "S4_CLUSTER_ENDPOINTS names three nodes");
    Some(Cluster { dir: dir.into(), endpoints })
}

impl Cluster {
    /// SIGKILL node `n` by its PID: no goodbye to its peers, nothing flushed.
    fn kill(&self, n: usize) -> u32 {
        let pid = std::fs::read_to_string(self.dir.join(format!("n{n}.pid"))).unwrap();
        let ok = Command::new("kill").args(["-9", pid.trim()]).status().unwrap().success();
        assert!(ok, "kill -9 {pid}");
        pid.trim().parse().unwrap()
    }

    /// Start node `n` again (same data dir) and wait until it answers.
    fn restart(&self, n: usize) {
        for step in ["start", "wait"] {
            let out = Command::new(self.dir.join("node")).args([step, &n.to_string()]).output().unwrap();
            assert!(out.status.success(), "node {step} {n}: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
}

/// A sync watched while it runs: its JSON lines as they come, and its stderr.
struct Watched {
    child: Child,
    lines: Arc<Mutex<Vec<Value>>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<std::thread::JoinHandle<()>>,
    t0: Instant,
}

impl Watched {
    /// `s4 --log-level DEBUG sync --json NAME`: DEBUG logs every request attempt on stderr,
    /// which is how the retries are counted.
    fn start(e: &Env, name: &str) -> Watched {
        let mut args = vec!["--log-level".to_string(), "DEBUG".to_string()];
        args.extend(e.sync_args(name, &[]));
        let mut child =
            e.command(&args.iter().map(String::as_str).collect::<Vec<_>>()).stdin(Stdio::null()).spawn().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (out, err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
        let l = lines.clone();
        let s = stderr.clone();
        let readers = vec![
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    l.lock().unwrap().push(serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}")));
                }
            }),
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines().map_while(Result::ok) {
                    let mut s = s.lock().unwrap();
                    s.push_str(&line);
                    s.push('\n');
                }
            }),
        ];
        Watched { child, lines, stderr, readers, t0: Instant::now() }
    }

    /// Transfers finished so far.
    fn done(&self) -> usize {
        self.lines.lock().unwrap().iter().filter(|v| v["status"] == "ok").count()
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Wait for the end (a run past [`HANG`] is killed and fails the test).
    fn finish(mut self) -> (Run, f64) {
        while self.running() {
            if self.t0.elapsed() > HANG {
                let _ = self.child.kill();
                panic!("s4 sync hung: still running after {HANG:?}\n{}", tail(&self.stderr.lock().unwrap(), 20));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let code = self.child.wait().unwrap().code().unwrap_or(-1);
        for r in self.readers {
            r.join().unwrap();
        }
        let secs = self.t0.elapsed().as_secs_f64();
        let lines = std::mem::take(&mut *self.lines.lock().unwrap());
        let stderr = std::mem::take(&mut *self.stderr.lock().unwrap());
        (Run { code, lines, stderr }, secs)
    }
}

fn tail(s: &str, n: usize) -> String {
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(n)..].join("\n")
}

/// Request attempts that failed in a way worth a retry (DEBUG lines `OP KEY at T ms: WHAT in
/// D ms`, WHAT a broken connection, a timeout or a 5xx): each one was retried or reported.
fn failed_attempts(stderr: &str) -> usize {
    stderr
        .lines()
        .filter_map(|l| l.split_once(" ms: ").map(|(_, rest)| rest))
        .filter(|what| {
            what.contains("connection failed")
                || what.contains("timed out")
                || what.split(": ").any(|p| p.len() >= 3 && p.starts_with('5') && p[..3].parse::<u16>().is_ok())
        })
        .count()
}

/// The errors a run reported (`--json` lines with an `error`): per action, or the whole run's.
fn errors(run: &Run) -> Vec<String> {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    run.lines
        .iter()
        .filter(|v| v.get("error").is_some())
        .map(|v| match v.get("key") {
            Some(k) => format!("{} {}: {}", text(&v["action"]), text(k), text(&v["error"])),
            None => text(&v["error"]),
        })
        .collect()
}

/// A failed run says what failed: every error names the step (the S3 operation) and the object
/// or the store, and the summary counts them.
fn assert_clear(run: &Run) {
    let errs = errors(run);
    assert!(!errs.is_empty(), "exit {} without an error reported:\n{}", run.code, tail(&run.stderr, 20));
    for e in &errs {
        assert!(
            e.contains("s3://") || e.contains("http://"),
            "an error that names neither the object nor the store: {e}"
        );
    }
}

/// Machine a's folder: `files` small files, four of 1-4 MiB and one that goes multipart.
fn populate(e: &Env, files: u64) -> u64 {
    let a = e.folder("a");
    small_files(&a, "small", files, 21);
    for i in 0..4u64 {
        write_bytes(&a.join(format!("big/{i}.bin")), &content(22, i, (i as usize + 1) << 20), -900);
    }
    write_bytes(&a.join("big/multipart.bin"), &content(23, 0, BIG), -900);
    tree(&a).values().map(|v| v.len() as u64).sum()
}

/// Kill node `victim` once a third of the transfers are done, bring it back `down` later, and
/// sync until clean (at most two more runs); then b syncs down through node 3 and a is quiet.
fn lose_a_node(victim: usize, test: &str) {
    let Some(c) = cluster() else {
        eprintln!("note: no cluster (S4_CLUSTER_DIR); run `vendor-tests/run garage-cluster`");
        return;
    };
    let _one = CLUSTER.lock().unwrap_or_else(|p| p.into_inner());
    let files = knob("S4_CLUSTER_FILES", 4000);
    let down = Duration::from_secs(knob("S4_CLUSTER_DOWN_SECS", 4));
    let e = Env::new(test);
    e.add("a");
    e.add_via("b", &c.endpoints[2]);
    let bytes = populate(&e, files);
    let want = tree(&e.folder("a"));

    let mut w = Watched::start(&e, "a");
    while w.running() && w.done() < want.len() / 3 && w.t0.elapsed() < HANG {
        std::thread::sleep(Duration::from_millis(20));
    }
    let killed_during_run = w.running();
    let killed_at = (w.done(), w.t0.elapsed().as_secs_f64());
    let pid = c.kill(victim);
    std::thread::sleep(down);
    c.restart(victim);
    let (first, secs) = w.finish();
    assert!(killed_during_run, "the sync ended before the kill: make S4_CLUSTER_FILES larger");
    let mut runs = vec![(first, secs)];
    if runs[0].0.code != 0 {
        assert_clear(&runs[0].0);
    }
    while runs.last().unwrap().0.code != 0 {
        assert!(runs.len() < 3, "no clean run in 3:\n{}", tail(&runs.last().unwrap().0.stderr, 30));
        let w = Watched::start(&e, "a");
        let (r, s) = w.finish();
        if r.code != 0 {
            assert_clear(&r);
        }
        runs.push((r, s));
    }
    for (r, _) in &runs {
        let conflicts: Vec<_> = r.lines.iter().filter(|v| v["action"] == "conflict").collect();
        assert!(conflicts.is_empty(), "conflicts the node loss caused: {conflicts:?}");
    }

    let (b, b_secs) = Watched::start(&e, "b").finish();
    // A finished sync's intent, still listed after its delete, once made b wait out the TTL.
    assert!(
        !b.stderr.contains("taking over"),
        "b waited out a lease left behind ({b_secs:.0}s):\n{}",
        tail(&b.stderr, 5)
    );
    assert_eq!((b.code, b.count("errors")), (0, 0), "b through node 3: {}", b.stderr);
    assert_same(&want, &tree(&e.folder("a")), "a after the node loss");
    assert_same(&want, &tree(&e.folder("b")), "b, synced down through node 3");
    // The bytes on the store are what b just read through node 3; through node 1 the keys
    // suffice (reading every object again would double the test's time).
    let keys: Vec<String> =
        e.remote_keys().into_iter().filter(|k| k != ".index" && !k.starts_with(".s4lease")).collect();
    assert_eq!(keys, want.keys().cloned().collect::<Vec<_>>(), "the store's keys, listed through node 1");
    let (quiet, quiet_secs) = Watched::start(&e, "a").finish();
    assert!(!quiet.stderr.contains("taking over"), "a waited out a lease left behind ({quiet_secs:.0}s)");
    assert!(quiet.code == 0 && quiet.actions().is_empty(), "a third sync on a has work: {:?}", quiet.actions());

    let times: Vec<String> = runs.iter().map(|(r, s)| format!("{s:.1}s exit {}", r.code)).collect();
    let retried: usize = runs.iter().map(|(r, _)| failed_attempts(&r.stderr)).sum();
    let errors: Vec<String> = runs.iter().flat_map(|(r, _)| errors(r)).collect();
    for line in errors.iter().take(3) {
        eprintln!("error seen: {line}");
    }
    for (i, (r, _)) in runs.iter().enumerate().filter(|(_, (r, _))| r.code != 0) {
        // How the run ended, in its own words (DEBUG lines left out).
        let told: Vec<&str> = r
            .stderr
            .lines()
            .filter(|l| !["DEBUG: ", "Creating ", "Updating "].iter().any(|p| l.starts_with(p)))
            .filter(|l| !l.contains("connection failed"))
            .collect();
        // A run that stopped (exit 2) says why in its JSON `error` event.
        let stopped: Vec<&str> =
            r.lines.iter().filter(|v| v.get("key").is_none()).filter_map(|v| v.get("error")?.as_str()).collect();
        eprintln!(
            "run {} of a, exit {}, ended with:\n{}\n{}",
            i + 1,
            r.code,
            told[told.len().saturating_sub(4)..].join("\n"),
            stopped.join("\n")
        );
    }
    eprintln!(
        "summary: {files} small + 5 big files ({:.1} MiB) up through node 1, node {victim} (pid {pid}) SIGKILLed \
         after {} transfers ({:.1}s) and back {}s later; runs of a: [{}]; failed request attempts {retried}, \
         errors reported {}; b down through node 3 in {b_secs:.1}s, all {} files byte-identical; quiet rerun {quiet_secs:.1}s; \
         lost 0",
        bytes as f64 / (1 << 20) as f64,
        killed_at.0,
        killed_at.1,
        down.as_secs(),
        times.join(", "),
        errors.len(),
        want.len(),
    );
}

/// Node 2 is a replica, not the node a talks to: quorum (2 of 3) still holds, so the sync
/// should not even notice.
#[test]
fn a_replica_lost_mid_sync_loses_nothing() {
    lose_a_node(2, "cluster-replica");
}

/// Node 1 is the node a talks to: the store is unreachable until it comes back. The sync must
/// say so clearly (or ride it out on retries) and the next run finish the work.
#[test]
fn the_node_a_talks_to_lost_mid_sync_loses_nothing() {
    lose_a_node(1, "cluster-entry");
}

//! `kill -9` at many points of a sync of thousands of files, each followed by a rerun: the
//! end state is complete and identical everywhere, without conflicts, and work finished
//! before a kill is not done again (unindexed uploads are settled by the content check).

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Instant;

use crate::common::*;
use crate::support::env::{write_bytes, Env, Run};

/// The world before the sync under test: `b` has uploaded files for `a` to download, `a` has
/// deleted some synced files (remote deletions to make) and holds new files to upload.
fn prepare(e: &Env, files: u64) {
    e.add("a");
    e.add("b");
    let (a, b) = (e.folder("a"), e.folder("b"));
    small_files(&a, "old", 100, 3);
    assert_eq!(e.sync("a", &[]).code, 0);
    small_files(&b, "from-b", 400, 4);
    assert_eq!(e.sync("b", &[]).code, 0);
    std::fs::remove_dir_all(a.join("old")).unwrap();
    small_files(&a, "new", files, 5);
    for i in 0..2u64 {
        write_bytes(&a.join(format!("big/{i}.bin")), &content(9, i, BIG), -800);
    }
}

fn spawn_sync(e: &Env) -> std::process::Child {
    let args = e.sync_args("a", &[]);
    let mut cmd = e.command(&args.iter().map(String::as_str).collect::<Vec<_>>());
    cmd.stdin(Stdio::null()).spawn().unwrap()
}

#[test]
fn kill_9_at_many_points_then_rerun_loses_nothing_and_redoes_nothing() {
    let files = knob("S4_TEST_KILL_FILES", 2000);
    let points = knob("S4_TEST_KILL_POINTS", 12);
    // A first, timed run of the same work tells where the kill points fall.
    let timed = Env::new("kill-timed");
    prepare(&timed, files);
    let t0 = Instant::now();
    let first = timed.sync("a", &[]);
    let full = t0.elapsed();
    assert_eq!(first.code, 0, "{}", first.stderr);
    let want_up = first.done("upload").len();
    let want_down = first.done("download").len();

    let e = Env::new("kill");
    prepare(&e, files);
    let mut runs: Vec<Run> = Vec::new();
    let mut killed = 0;
    // Run i is killed 0.3·i/(points+1) of the full time after it starts: each resumes the
    // last, so the kills land ever further into the work (and in the re-checks of earlier work).
    for i in 1..=points {
        let delay = full.mul_f64(0.3 * i as f64 / (points + 1) as f64);
        let mut child = spawn_sync(&e);
        std::thread::sleep(delay);
        let ended_first = child.try_wait().unwrap().is_some();
        if !ended_first {
            // SIGKILL: std's Child::kill sends it.
            child.kill().unwrap();
            killed += 1;
        }
        let out = child.wait_with_output().unwrap();
        runs.push(Run::from_killed(&out));
        if ended_first {
            break;
        }
    }
    let last = e.sync("a", &[]);
    assert_eq!((last.code, last.count("conflicts_skipped"), last.count("errors")), (0, 0, 0), "{}", last.stderr);
    runs.push(last);
    let quiet = e.sync("a", &[]);
    assert!(quiet.actions().is_empty(), "a rerun after the clean one does nothing: {:?}", quiet.actions());

    // No conflicts anywhere, not even in the runs that were killed.
    for (i, r) in runs.iter().enumerate() {
        let skipped: Vec<_> = r.lines.iter().filter(|v| v["action"] == "conflict").collect();
        assert!(skipped.is_empty(), "run {i}: conflicts the interruption caused: {skipped:?}\n{}", r.stderr);
    }
    // Count re-transfers: a key transferred (ok) by more than one run.
    let mut times: BTreeMap<(String, String), usize> = BTreeMap::new();
    for r in &runs {
        for action in ["upload", "download", "delete_remote"] {
            for k in r.done(action) {
                *times.entry((action.to_string(), k)).or_default() += 1;
            }
        }
    }
    let redone: Vec<_> = times.iter().filter(|(_, n)| **n > 1).map(|(k, n)| (k.clone(), *n)).collect();
    let uploads = times.keys().filter(|(a, _)| a == "upload").count();
    let downloads = times.keys().filter(|(a, _)| a == "download").count();

    assert_same(&tree(&timed.folder("a")), &tree(&e.folder("a")), "a: killed vs never killed");
    let b = e.sync("b", &[]);
    assert_eq!((b.code, b.count("conflicts_skipped")), (0, 0), "{}", b.stderr);
    let want = tree(&e.folder("a"));
    assert_same(&want, &tree(&e.folder("b")), "b synced down after the kills");
    assert_same(&want, &store_tree(&e), "the store after the kills");
    assert!(!want.keys().any(|k| k.starts_with("old/")), "the local deletions reached everywhere");
    assert!(temps(&e.folder("a")).is_empty(), "temp files left: {:?}", temps(&e.folder("a")));
    assert!(redone.is_empty(), "finished work redone after a kill: {redone:?}");
    eprintln!(
        "summary: kill -9, {files} small + 2 big files up, 400 down, 100 remote deletions; full run {:.1}s; \
         {killed} kills of {points} planned, {} runs; {uploads}/{want_up} keys uploaded and {downloads}/{want_down} \
         downloaded with an ok line (the rest settled by the content check), re-transferred 0, conflicts 0, \
         bytes lost 0",
        full.as_secs_f64(),
        runs.len()
    );
}

//! Several s4 processes at once: on one folder the `.s4lock` refuses the second (and a dead
//! holder's lock is taken over); on one prefix from two folders, no update is lost.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::*;
use crate::support::env::{read, write, Env, Run};
use crate::support::proxy::{Fault, Match, Plan, Proxy, Rule};

#[test]
fn a_second_s4_on_one_folder_is_refused_and_a_dead_ones_lock_is_taken_over() {
    let e = Env::new("lock");
    // The first s4 hangs on its listing (the proxy holds it) while it holds the lock.
    let proxy = Proxy::start(Plan::rules(vec![Rule::always(Match::listing(), Fault::Stall)]), Duration::from_secs(60));
    e.add_via("a", &proxy.endpoint);
    write(&e.folder("a").join("f.txt"), "precious", -100);
    let args = e.sync_args("a", &[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut first = e.command(&args).stdin(Stdio::null()).spawn().unwrap();
    let t0 = Instant::now();
    while proxy.total_faults() == 0 {
        assert!(t0.elapsed() < Duration::from_secs(30), "the first s4 never listed");
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = Run::from_output(&e.command(&args).stdin(Stdio::null()).output().unwrap());
    assert_eq!(second.code, 2, "{}", second.stderr);
    assert!(second.stderr.contains("another s4 (pid ") && second.stderr.contains(".s4lock"), "{}", second.stderr);
    first.kill().unwrap();
    first.wait().unwrap();
    assert!(e.folder("a").join(".s4lock").exists(), "kill -9 leaves the lock file behind");
    proxy.set_plan(Plan::none());
    let third = Run::from_output(&e.command(&args).stdin(Stdio::null()).output().unwrap());
    assert_eq!((third.code, third.done("upload")), (0, vec!["f.txt".to_string()]), "{}", third.stderr);
    assert!(!e.folder("a").join(".s4lock").exists(), "the lock is removed after the run");
    assert_eq!(read(&e.folder("a").join("f.txt")), "precious");
    eprintln!("summary: .s4lock, 1 refused while held, 1 stale lock taken over after kill -9, bytes lost 0");
}

/// One machine's loop: each round writes a new file and a new version of its own file (mtimes
/// a whole second apart, as S4 compares), then syncs. Returns the exit codes.
fn edit_loop(e: &Env, m: &str, rounds: u64) -> Vec<i32> {
    (0..rounds)
        .map(|round| {
            let r = round;
            let dir = e.folder(m);
            write(&dir.join(format!("{m}/round-{r}.txt")), &format!("{m} made this in round {r}"), -300 + r as i64);
            write(&dir.join(format!("{m}-own.txt")), &format!("{m} version {r}"), -300 + r as i64);
            let r = e.sync(m, &[]);
            assert!(r.code <= 1, "{m}: {}", r.stderr);
            if r.code != 0 {
                eprintln!("{m} round {round}: exit {}:\n{}", r.code, r.stderr);
            }
            r.code
        })
        .collect()
}

#[test]
fn two_processes_on_one_prefix_lose_no_update_and_converge() {
    let rounds = knob("S4_TEST_ROUNDS", 10);
    let e = Env::new("two-procs");
    e.add("a");
    e.add("b");
    let (ca, cb) = std::thread::scope(|s| {
        let ta = s.spawn(|| edit_loop(&e, "a", rounds));
        let tb = s.spawn(|| edit_loop(&e, "b", rounds));
        (ta.join().unwrap(), tb.join().unwrap())
    });
    for m in ["a", "b", "a", "b"] {
        let r = e.sync(m, &[]);
        assert_eq!((r.code, r.count("conflicts_skipped"), r.count("errors")), (0, 0, 0), "{m}: {}", r.stderr);
    }
    let last = rounds - 1;
    for m in ["a", "b"] {
        for other in ["a", "b"] {
            let own = read(&e.folder(m).join(format!("{other}-own.txt")));
            assert_eq!(own, format!("{other} version {last}"), "{m} holds {other}'s last edit");
            for r in 0..rounds {
                assert!(e.folder(m).join(format!("{other}/round-{r}.txt")).exists(), "{m} lacks {other} round {r}");
            }
        }
        assert!(e.sync(m, &[]).actions().is_empty(), "{m} is settled");
    }
    assert_same(&tree(&e.folder("a")), &tree(&e.folder("b")), "a and b");
    assert_same(&tree(&e.folder("a")), &store_tree(&e), "the store");
    let partial = ca.iter().chain(&cb).filter(|c| **c != 0).count();
    eprintln!(
        "summary: two processes on one prefix, {rounds} rounds each, {} files, {partial} rounds exited 1, \
         updates lost 0, bytes lost 0",
        tree(&e.folder("a")).len()
    );
}

//! s4 through the fault-injecting proxy: a mix of faults still ends in complete, identical
//! trees; persistent breakage stops with a message naming the operation and changes nothing.

use std::time::Duration;

use crate::common::*;
use crate::support::env::{write_bytes, Env};
use crate::support::proxy::{Fault, Match, Mix, Plan, Proxy, Rule};

/// s4's read timeout in these tests, and how long the proxy stalls (longer than that).
const TIMEOUT: &[(&str, &str)] = &[("S4_READ_TIMEOUT_SECS", "2")];
const STALL: Duration = Duration::from_secs(4);

fn mix(seed: u64) -> Mix {
    let many = u64::MAX;
    Mix {
        seed,
        permille: 80,
        kinds: vec![
            (Fault::SlowDown, many),
            (Fault::Reset, many),
            (Fault::ResetAfter, many),
            (Fault::Truncate, many),
            (Fault::ErrorIn200, many),
            (Fault::ShortLength, many),
            // Each of these costs a whole run (a broken listing stops it) or a read timeout.
            (Fault::MalformedXml, 2),
            (Fault::Stall, 3),
        ],
    }
}

#[test]
fn a_sync_under_a_fault_mix_completes_with_nothing_lost() {
    let seeds = knob("S4_TEST_SEEDS", 1);
    let mut faults = std::collections::BTreeMap::new();
    let (mut requests, mut runs, mut files) = (0, 0, 0);
    for seed in 1..=seeds {
        let e = Env::new(&format!("fault-mix-{seed}"));
        let proxy = Proxy::start(Plan { rules: Vec::new(), mix: Some(mix(seed)) }, STALL);
        e.add_via("a", &proxy.endpoint);
        e.add_via("b", &proxy.endpoint);
        let (a, b) = (e.folder("a"), e.folder("b"));
        small_files(&a, "small", 300, seed);
        for i in 0..2u64 {
            write_bytes(&a.join(format!("big/{i}.bin")), &content(seed, 1000 + i, BIG), -900);
        }
        // Up from a, down to b; then edits on b go back to a.
        let mut all = sync_until_clean(&e, "a", TIMEOUT, 8);
        all.extend(sync_until_clean(&e, "b", TIMEOUT, 8));
        assert_same(&tree(&a), &tree(&b), &format!("seed {seed}: b after syncing down"));
        for i in (0..300u64).step_by(15) {
            let p = b.join(format!("small/d{:02}/f{i:04}.bin", i % 16));
            write_bytes(&p, &content(seed + 77, i, 700), -500);
        }
        small_files(&b, "from-b", 20, seed + 1);
        all.extend(sync_until_clean(&e, "b", TIMEOUT, 8));
        all.extend(sync_until_clean(&e, "a", TIMEOUT, 8));
        let want = tree(&b);
        assert_same(&want, &tree(&a), &format!("seed {seed}: a after b's edits"));
        assert_same(&want, &store_tree(&e), &format!("seed {seed}: the store"));
        for r in &all {
            let deleted = r.done("delete_local").len() + r.done("delete_remote").len();
            assert_eq!(deleted, 0, "seed {seed}: nothing is deleted here: {}", r.stderr);
        }
        assert!(temps(&a).is_empty() && temps(&b).is_empty(), "temp files left: {:?} {:?}", temps(&a), temps(&b));
        assert_eq!(proxy.upstream_errors(), 0);
        eprintln!("seed {seed}: {}; {} runs", proxy.report(), all.len());
        for (f, n) in proxy.faults() {
            *faults.entry(f.name()).or_insert(0) += n;
        }
        requests += proxy.requests();
        runs += all.len();
        files += want.len();
    }
    let total: u64 = faults.values().sum();
    eprintln!(
        "summary: fault mix, {seeds} seed(s), {files} files (2 of 17 MiB per seed) up and down, {runs} runs, \
         {requests} requests, {total} faults injected {faults:?}, bytes lost 0"
    );
}

/// A store that is broken the same way every time: s4 gives up with a message naming the
/// operation and the object, exit 1 (per file) or 2 (the run), and no local file changes.
#[test]
fn persistent_breakage_stops_with_a_clear_message_and_changes_nothing() {
    let e = Env::new("breakage");
    let proxy = Proxy::start(Plan::none(), STALL);
    e.add_via("a", &proxy.endpoint);
    e.add("c");
    small_files(&e.folder("a"), "mine", 20, 5);
    small_files(&e.folder("c"), "dl", 10, 6);
    assert_eq!(sync_with(&e, "a", &[], TIMEOUT).code, 0);
    assert_eq!(sync_with(&e, "c", &[], TIMEOUT).code, 0);
    let a = e.folder("a");
    let object_gets = || Match::method("GET").path("/dl/");
    let cases: Vec<(&str, Rule, i32, Vec<&str>)> = vec![
        (
            "malformed listing XML",
            Rule::always(Match::listing(), Fault::MalformedXml),
            2,
            vec!["ListObjectsV2", "malformed"],
        ),
        ("truncated downloads", Rule::always(object_gets(), Fault::Truncate), 1, vec!["GetObject", "/dl/d"]),
        ("wrong Content-Length", Rule::always(object_gets(), Fault::ShortLength), 1, vec!["/dl/d"]),
        (
            "truncated index",
            Rule::always(Match::method("GET").path(".index"), Fault::Truncate),
            2,
            vec!["GetObject", ".index"],
        ),
        ("stalled listing", Rule::always(Match::listing(), Fault::Stall), 2, vec!["ListObjectsV2", "timed out"]),
    ];
    let n = cases.len();
    for (what, rule, code, words) in cases {
        let before = user_files(&a);
        proxy.set_plan(Plan::rules(vec![rule]));
        let t0 = std::time::Instant::now();
        let r = sync_with(&e, "a", &[], TIMEOUT);
        assert_eq!(r.code, code, "{what}: {}", r.stderr);
        for w in words {
            assert!(r.stderr.contains(w), "{what}: the message names {w:?}: {}", r.stderr);
        }
        assert_eq!(before, user_files(&a), "{what}: local files changed");
        assert!(temps(&a).is_empty(), "{what}: temp files left: {:?}", temps(&a));
        eprintln!("{what}: exit {code} after {:.1}s: {}", t0.elapsed().as_secs_f64(), first_error(&r.stderr));
    }
    proxy.set_plan(Plan::none());
    assert_eq!(sync_with(&e, "a", &[], TIMEOUT).code, 0, "healthy again");
    assert_same(&tree(&e.folder("c")), &tree(&a), "after the store healed");
    eprintln!("summary: persistent breakage, {n} kinds, {}, local files changed 0, bytes lost 0", proxy.report());
}

fn first_error(stderr: &str) -> &str {
    stderr.lines().find(|l| l.contains("rror")).unwrap_or("")
}

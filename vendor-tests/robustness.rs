//! Issue #4 "Nothing lost": s4 under server faults, `kill -9`, two processes on one prefix,
//! hostile keys and files, and broken local state. Each test drives the built binary and
//! prints one `summary:` line with what it tried and the counts (bytes lost = 0).
//!
//! Bigger stress runs: `S4_TEST_SEEDS` (fault-mix seeds, default 1), `S4_TEST_KILL_FILES`
//! (default 2000), `S4_TEST_KILL_POINTS` (default 12), `S4_TEST_ROUNDS` (default 10).

mod support;

#[path = "robustness/broken.rs"]
mod broken;
#[path = "robustness/common.rs"]
mod common;
#[path = "robustness/concurrent.rs"]
mod concurrent;
#[path = "robustness/faults.rs"]
mod faults;
#[path = "robustness/hostile.rs"]
mod hostile;
#[path = "robustness/kill.rs"]
mod kill;
#[path = "robustness/scenarios.rs"]
mod scenarios;

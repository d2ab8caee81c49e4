//! What the daemon's next round for a target is (issue 13: the steady state costs what changed,
//! not the tree). Pure: the clock is passed in.
//!
//! - Local news from the watch are keys: a key-set sync (a stat and a HEAD each), no scan.
//! - S3 is polled with one conditional GET of the remote index (If-None-Match on the ETag the
//!   last sync saw): every s4 machine that changes the prefix rewrites that index, so 304
//!   means nothing for us to do, at one request per poll whatever the tree's size.
//! - A full sync (scan and listing) every `--full-every` minutes (60 by default) regardless:
//!   other tools writing to the bucket directly (the aws cli, a backup job, S4 run beside the
//!   index) do not touch the index, and a watch can miss what happened while it was being set
//!   up. An hour bounds how long such a change waits, while a 1,000,000-file prefix costs
//!   1,000 LIST requests an hour (AWS: about $0.12 a day) instead of one full sync per poll.
//! - Everything else that leaves doubt is a full sync: the first round, the watch losing track
//!   (queue overflow, a folder moved away), folders that could not be watched, a failed round
//!   (retried every poll), a changed `.syncignore`, and an index whose ETag is unknown.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// More keys than this in one round: a full sync is cheaper. HEADs go 64 at a time, but a
/// listing page names 1,000 keys, and S3 bills a HEAD about a twelfth of a LIST: 10,000 HEADs
/// cost about what listing 1,000,000 keys does.
pub const KEYS_AT_MOST: usize = 10_000;

/// Local news gathered since the last round.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Local {
    pub keys: BTreeSet<String>,
    /// Why only a full sync can tell what changed (`None`: the keys say it all).
    pub everything: Option<String>,
}

impl Local {
    pub fn add(&mut self, change: crate::watch::Change) {
        match change {
            crate::watch::Change::Keys(k) => self.keys.extend(k),
            crate::watch::Change::Everything(why) => {
                self.everything.get_or_insert(why);
            }
            // The daemon remembers it for good (see `Past::watch_complete`).
            crate::watch::Change::Unwatched => {}
        }
    }
}

/// What the daemon knows of a target's past rounds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Past {
    pub last_full: Option<Instant>,
    /// The last look at S3 (a full sync, or a conditional GET of the index).
    pub last_check: Option<Instant>,
    /// The remote index's ETag as of the last sync is known (and nobody else wrote during it).
    pub index_known: bool,
    /// The last round failed, or some files in it did: try again at the next poll.
    pub retry: bool,
    /// Every folder is watched (else local changes show up only in full syncs).
    pub watch_complete: bool,
}

/// The daemon's timings (`--poll`, `--full-every`).
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub poll: Duration,
    pub full_every: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Idle,
    /// Ask S3 whether the remote index changed, then decide again with the answer.
    Ask,
    Keys(Vec<String>),
    Full(String),
}

/// The next round. `remote`: the answer to [`Step::Ask`] (`Some(true)`: the index changed).
pub fn decide(now: Instant, t: Timing, past: &Past, local: &Local, remote: Option<bool>) -> Step {
    let since = |at: Option<Instant>| at.map(|at| now.saturating_duration_since(at));
    let Some(full_age) = since(past.last_full) else { return Step::Full("the first round".into()) };
    if let Some(why) = &local.everything {
        return Step::Full(why.clone());
    }
    if local.keys.contains(".syncignore") {
        return Step::Full(".syncignore changed".into());
    }
    if local.keys.len() > KEYS_AT_MOST {
        return Step::Full(format!("{} keys changed", local.keys.len()));
    }
    let poll_due = since(past.last_check).is_none_or(|age| age >= t.poll);
    if poll_due {
        // At a poll: `--full-every 0` makes every poll a full sync, as before issue 13.
        if full_age >= t.full_every {
            return Step::Full(format!(
                "the periodic full sync (every {} min): finds what other tools changed on S3",
                t.full_every.as_secs() / 60
            ));
        }
        if past.retry {
            return Step::Full("retrying the last round".into());
        }
        if !past.watch_complete {
            return Step::Full("some folders are not watched".into());
        }
        if !past.index_known {
            return Step::Full("the remote index's version is not known".into());
        }
        match remote {
            None => return Step::Ask,
            Some(true) => return Step::Full("the remote index changed".into()),
            Some(false) => {}
        }
    }
    match local.keys.is_empty() {
        true => Step::Idle,
        false => Step::Keys(local.keys.iter().cloned().collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timing = Timing { poll: Duration::from_secs(30), full_every: Duration::from_secs(3600) };

    fn keys(k: &[&str]) -> Local {
        Local { keys: k.iter().map(|s| s.to_string()).collect(), everything: None }
    }

    /// A target synced fully `full_ago` and checked `check_ago` seconds before `now`.
    fn past(now: Instant, full_ago: u64, check_ago: u64) -> Past {
        Past {
            last_full: Some(now - Duration::from_secs(full_ago)),
            last_check: Some(now - Duration::from_secs(check_ago)),
            index_known: true,
            retry: false,
            watch_complete: true,
        }
    }

    #[test]
    fn the_steady_state_costs_what_changed() {
        let now = Instant::now() + Duration::from_secs(100_000);
        let p = past(now, 600, 10);
        assert_eq!(decide(now, T, &p, &Local::default(), None), Step::Idle, "nothing changed, no poll due");
        assert_eq!(decide(now, T, &p, &keys(&["b", "a"]), None), Step::Keys(vec!["a".into(), "b".into()]));
        // A poll due: one conditional GET first; 304 → only the keys, or nothing at all.
        let p = past(now, 600, 30);
        assert_eq!(decide(now, T, &p, &Local::default(), None), Step::Ask);
        assert_eq!(decide(now, T, &p, &Local::default(), Some(false)), Step::Idle);
        assert_eq!(decide(now, T, &p, &keys(&["a"]), Some(false)), Step::Keys(vec!["a".into()]));
        assert!(matches!(decide(now, T, &p, &keys(&["a"]), Some(true)), Step::Full(w) if w.contains("changed")));
    }

    #[test]
    fn doubt_means_a_full_sync() {
        let now = Instant::now() + Duration::from_secs(100_000);
        let quiet = Local::default();
        let first = Past { watch_complete: true, ..Past::default() };
        assert!(matches!(decide(now, T, &first, &quiet, None), Step::Full(w) if w.contains("first")));
        let p = past(now, 3600, 30);
        assert!(matches!(decide(now, T, &p, &quiet, None), Step::Full(w) if w.contains("every 60 min")));
        assert_eq!(decide(now, T, &past(now, 3600, 5), &quiet, None), Step::Idle, "at the next poll");
        let p = past(now, 600, 5);
        let lost = Local { everything: Some("the kernel's event queue overflowed".into()), ..keys(&["a"]) };
        assert!(matches!(decide(now, T, &p, &lost, None), Step::Full(w) if w.contains("overflowed")));
        assert!(matches!(decide(now, T, &p, &keys(&[".syncignore"]), None), Step::Full(_)));
        let many = Local { keys: (0..=KEYS_AT_MOST).map(|i| i.to_string()).collect(), everything: None };
        assert!(matches!(decide(now, T, &p, &many, None), Step::Full(_)));
        // At the next poll (not before): a failed round, unwatched folders, an unknown index.
        for p2 in [
            Past { retry: true, ..past(now, 600, 30) },
            Past { watch_complete: false, ..past(now, 600, 30) },
            Past { index_known: false, ..past(now, 600, 30) },
        ] {
            assert!(matches!(decide(now, T, &p2, &quiet, None), Step::Full(_)), "{p2:?}");
            let not_yet = Past { last_check: Some(now - Duration::from_secs(5)), ..p2 };
            assert_eq!(decide(now, T, &not_yet, &quiet, None), Step::Idle, "{p2:?}");
        }
    }

    #[test]
    fn full_every_zero_is_a_full_sync_every_poll() {
        let now = Instant::now() + Duration::from_secs(100_000);
        let t = Timing { full_every: Duration::ZERO, ..T };
        assert!(matches!(decide(now, t, &past(now, 30, 30), &Local::default(), None), Step::Full(_)));
        assert_eq!(decide(now, t, &past(now, 5, 5), &Local::default(), None), Step::Idle);
    }
}

//! The three-way decision (SPEC-S4 §2), pure: index timestamps and real timestamps in,
//! an action out. S4's table with its holes fixed; every row is a table test below.

use super::index::Etag;

/// A side's state since the last sync, as S4 derives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum State {
    Created,
    Deleted,
    Updated,
    NoChanges,
    /// The real timestamp went backwards (R < I).
    Conflict,
    DoesNotExist,
}

impl State {
    /// S4's spelling, shown in the conflict prompt.
    pub fn name(self) -> &'static str {
        match self {
            State::Created => "CREATED",
            State::Deleted => "DELETED",
            State::Updated => "UPDATED",
            State::NoChanges => "NOCHANGES",
            State::Conflict => "CONFLICT",
            State::DoesNotExist => "DOESNOTEXIST",
        }
    }
}

/// One side's view of a key: its state, its real timestamp (mtime / LastModified) and the
/// agreed version stamp recorded in its index (`remote_timestamp`). All truncated to
/// integers, as S4 compares them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Side {
    pub state: State,
    pub real: Option<i64>,
    pub stamp: Option<i64>,
    /// DELETED by a tombstone: a deletion both sides already agreed on, not a new one.
    pub tombstone: bool,
    /// The version the side's index entry names (issue 10), when it names one.
    pub version: Option<Etag>,
}

impl Side {
    /// Version identity over time (issue 10): where the index names the version it last saw
    /// and the store names the one it holds now, the two ETags decide whether the side
    /// changed. A LastModified is whole seconds: two writes in one second look like none.
    pub fn with_identity(mut self, index: Option<Etag>, now: Option<Etag>) -> Side {
        self.version = index;
        if let (Some(a), Some(b)) = (index, now) {
            self.state = match self.state {
                State::Updated | State::Conflict | State::NoChanges if a == b => State::NoChanges,
                State::NoChanges => State::Updated,
                s => s,
            };
        }
        self
    }
}

/// Do two index entries name the same version, as far as they tell? Entries written by S4
/// name none: then only the stamps can say.
fn same_version(a: Option<Etag>, b: Option<Etag>) -> bool {
    !matches!((a, b), (Some(a), Some(b)) if a != b)
}

/// S4's `get_sync_state` for the S3 side, whose times are whole seconds. Existence is decided
/// by `Option`, not by truthiness: S4 treated a timestamp of 0 as missing and crashed on it.
pub fn side(index_local: Option<f64>, real: Option<f64>, stamp: Option<f64>) -> Side {
    derive(index_local, real, stamp, |i, r| (i as i64).cmp(&(r as i64)))
}

/// The local side: mtimes are compared to the millisecond, not truncated to seconds as S4
/// did, so an edit within the second of the last sync is not missed (and later overwritten).
/// The millisecond of slack absorbs float rounding between Python's and our mtime.
pub fn local_side(index_local: Option<f64>, real: Option<f64>, stamp: Option<f64>) -> Side {
    derive(
        index_local,
        real,
        stamp,
        |i, r| {
            if (i - r).abs() < 1e-3 {
                std::cmp::Ordering::Equal
            } else {
                i.total_cmp(&r)
            }
        },
    )
}

fn derive(
    index_local: Option<f64>,
    real: Option<f64>,
    stamp: Option<f64>,
    cmp: impl Fn(f64, f64) -> std::cmp::Ordering,
) -> Side {
    use std::cmp::Ordering::*;
    let state = match (index_local, real) {
        (None, Some(_)) => State::Created,
        (Some(_), None) => State::Deleted,
        (None, None) if stamp.is_some() => State::Deleted,
        (None, None) => State::DoesNotExist,
        (Some(i), Some(r)) => match cmp(i, r) {
            Less => State::Updated,
            Greater => State::Conflict,
            Equal => State::NoChanges,
        },
    };
    let t = |v: Option<f64>| v.map(|x| x as i64);
    let tombstone = index_local.is_none() && real.is_none() && stamp.is_some();
    Side { state, real: t(real), stamp: t(stamp), tombstone, version: None }
}

/// Create (the target lacks the key) or update (it has an older version): only the log line differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Kind {
    Create,
    Update,
}

/// What to do with a key. `ts` is the version stamp both indexes record afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Decision {
    Nothing,
    Upload { kind: Kind, ts: i64 },
    Download { kind: Kind, ts: i64 },
    DeleteRemote { ts: i64 },
    DeleteLocal { ts: i64 },
    Conflict,
}

/// The lowest stamp above `stamp` (anything, when there is none): a new version must beat
/// every stamp it replaces, or machines holding the higher one would take theirs back.
pub fn above(stamp: Option<i64>) -> i64 {
    stamp.map_or(i64::MIN, |s| s.saturating_add(1))
}

/// The decision table of SPEC-S4 §2 (local side, remote side).
pub fn decide(l: Side, r: Side) -> Decision {
    use Decision as D;
    use State::*;
    let same = l.stamp == r.stamp && same_version(l.version, r.version);
    // This machine last synced a version older than the one S3's index records.
    let older = matches!((l.stamp, r.stamp), (Some(a), Some(b)) if a < b);
    let up = |kind, ts: Option<i64>| ts.map_or(D::Conflict, |ts| D::Upload { kind, ts });
    let down = |kind, ts: Option<i64>| ts.map_or(D::Conflict, |ts| D::Download { kind, ts });
    // Fix: this machine's deletion was already carried out and agreed (a tombstone), and S3
    // holds the key again: someone re-created (or restored) it since. S4 called this a
    // conflict, or with equal stamps deleted it everywhere; nothing local can be lost by
    // taking it.
    if l.tombstone && r.real.is_some() {
        let ts = match r.state {
            NoChanges => r.stamp.or(r.real),
            _ => r.real.map(|t| t.max(above(l.stamp))),
        };
        return down(Kind::Create, ts);
    }
    match (l.state, r.state) {
        (NoChanges, NoChanges) => match (l.stamp, r.stamp) {
            _ if same => D::Nothing,
            // Both indexes name their version and the names differ: S3 holds what the remote
            // index names (its side is unchanged), so S3 moved on since this machine synced,
            // written by a machine that saw our version (conditional writes, or the lease).
            // Never upload ours back over it (a touched file re-uploaded over a newer edit,
            // found by the simulation); take it where its stamp is not older (issue 10,
            // scenario 3: one stamp, two versions); else ask, in case a writer did not see
            // ours after all (a lease that failed: defence in depth, from review).
            (Some(a), Some(b)) if l.version.zip(r.version).is_some_and(|(x, y)| x != y) => match a <= b {
                true => D::Download { kind: Kind::Update, ts: b },
                false => D::Conflict,
            },
            // How a second machine learns of a new version: the stamps differ.
            (Some(a), Some(b)) if a > b => D::Upload { kind: Kind::Update, ts: a },
            (Some(_), Some(b)) => D::Download { kind: Kind::Update, ts: b },
            _ => D::Conflict,
        },
        (Created, DoesNotExist) => up(Kind::Create, l.real),
        (DoesNotExist, Created) => down(Kind::Create, r.real),
        (NoChanges, DoesNotExist) => up(Kind::Create, l.stamp),
        (DoesNotExist, NoChanges) => down(Kind::Create, r.stamp),
        (Updated, DoesNotExist) => up(Kind::Create, l.real.map(|t| t.max(above(l.stamp)))),
        // S4 bug: it tried to upload the missing local file here, failing on every run.
        (DoesNotExist, Updated) => down(Kind::Create, r.real.map(|t| t.max(above(r.stamp)))),
        (Deleted | DoesNotExist, Deleted | DoesNotExist) => D::Nothing,
        // A new version is stamped above the one it replaces, not just with its own time: an
        // edit whose mtime is older than the current stamp (a file copied with `cp -p`, a clock
        // behind, a stamp taken from S3's LastModified) would otherwise look older than the
        // version it replaced, and machines holding that one would upload it back over it.
        (Updated, NoChanges) if same => up(Kind::Update, l.real.map(|t| t.max(above(l.stamp)))),
        // Unchanged here, changed on S3 since a version at least as new as ours: take it. The
        // stamps may differ when S3 moved on more than once since this machine last synced
        // (another machine's upload not yet in the remote index): nothing local can be lost.
        (NoChanges, Updated) if same || older => down(Kind::Update, r.real.map(|t| t.max(above(r.stamp)))),
        (Deleted, NoChanges) if same => l.stamp.map_or(D::Conflict, |ts| D::DeleteRemote { ts }),
        (NoChanges, Deleted) if same || older => r.stamp.map_or(D::Conflict, |ts| D::DeleteLocal { ts }),
        // A re-creation over a deletion is stamped above it: a file restored with its old
        // mtime would otherwise carry the deleted version's stamp and be deleted again.
        (Deleted, Created) if same => down(Kind::Create, r.real.map(|t| t.max(above(l.stamp)))),
        // A file this machine has no record of, where S3 has only a deletion: uploaded when
        // it is newer than the deleted version (made after the deletion; S4 saw a conflict
        // on every run once its tombstone was gone). An older one may be a stale copy (a
        // crash before the index commit, a restored backup): a conflict, asked once.
        (Created, Deleted) if same || l.real.zip(r.stamp).is_some_and(|(real, stamp)| real > stamp) => {
            up(Kind::Create, l.real.map(|t| t.max(above(r.stamp))))
        }
        _ => D::Conflict,
    }
}

/// Which side a conflict is settled for (`--conflicts 1|2` or the prompt).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    Local,
    Remote,
}

/// S4's `Resolution.get_resolution`: make the other side like the kept one. Fixed: a kept
/// side in CONFLICT (mtime went backwards) is copied over too (S4 raised an error), and a
/// kept side that does not exist deletes the other.
pub fn resolve(keep: Keep, l: Side, r: Side) -> Decision {
    let (kept, other) = match keep {
        Keep::Local => (l, r),
        Keep::Remote => (r, l),
    };
    // The stamp of the version both sides agree on afterwards. A kept side without changes
    // keeps the stamp the other machines hold for it; any other kept version is new and gets a
    // stamp above every stamp it replaces, or machines holding the higher one would undo the
    // choice (S4 used the file's own time for both).
    let ts = match (kept.state, keep) {
        (State::NoChanges, Keep::Remote) => kept.stamp.or(kept.real),
        (State::NoChanges, Keep::Local) => kept.stamp.or(kept.real).map(|t| t.max(above(other.stamp))),
        _ => kept.real.map(|t| t.max(above(l.stamp)).max(above(r.stamp))),
    };
    let copy = |kind| match (keep, ts) {
        (Keep::Local, Some(ts)) => Decision::Upload { kind, ts },
        (Keep::Remote, Some(ts)) => Decision::Download { kind, ts },
        (_, None) => Decision::Nothing,
    };
    // A deletion carries the stamp of the version it deletes, which is what the remote
    // index tells the other machines: they then delete rather than report a conflict.
    let delete = || {
        let ts = r.stamp.or(l.stamp).unwrap_or(0);
        match keep {
            Keep::Local => Decision::DeleteRemote { ts },
            Keep::Remote => Decision::DeleteLocal { ts },
        }
    };
    match kept.state {
        State::Created => copy(Kind::Create),
        State::Updated | State::NoChanges | State::Conflict => copy(Kind::Update),
        State::Deleted | State::DoesNotExist if other.real.is_some() => delete(),
        State::Deleted | State::DoesNotExist => Decision::Nothing,
    }
}

#[cfg(test)]
mod tests {
    use super::Decision::{DeleteLocal, DeleteRemote, Download, Nothing, Upload};
    use super::State::*;
    use super::*;

    #[test]
    fn state_derivation_matches_s4() {
        type Case = (Option<f64>, Option<f64>, Option<f64>, State);
        let cases: &[Case] = &[
            (None, Some(10.7), None, Created),
            (Some(10.0), None, Some(3.0), Deleted),
            (None, None, Some(3.0), Deleted),
            (None, None, None, DoesNotExist),
            (Some(10.0), Some(11.0), Some(3.0), Updated),
            (Some(11.0), Some(10.0), Some(3.0), Conflict),
            (Some(10.2), Some(10.9), Some(3.0), NoChanges),
            // S4 crashed on a zero timestamp (falsy in Python).
            (None, Some(0.0), None, Created),
            (Some(0.0), Some(0.0), Some(0.0), NoChanges),
        ];
        for (i, r, s, want) in cases {
            assert_eq!(side(*i, *r, *s).state, *want, "{i:?} {r:?} {s:?}");
        }
        assert_eq!(side(Some(11.0), Some(10.0), None).real, Some(10));
        // The local side sees an edit within the same second; the S3 side cannot.
        assert_eq!(local_side(Some(10.1), Some(10.9), Some(3.0)).state, Updated);
        assert_eq!(local_side(Some(10.9), Some(10.1), Some(3.0)).state, Conflict);
        assert_eq!(local_side(Some(10.123_456_7), Some(10.123_456_8), Some(3.0)).state, NoChanges);
        assert_eq!(side(Some(10.1), Some(10.9), Some(3.0)).state, NoChanges);
    }

    fn s(state: State, real: Option<i64>, stamp: Option<i64>) -> Side {
        Side { state, real, stamp, tombstone: false, version: None }
    }

    fn tomb(stamp: i64) -> Side {
        Side { state: Deleted, real: None, stamp: Some(stamp), tombstone: true, version: None }
    }

    /// Issue 10, scenario 3: two machines settled a conflict against the same stamp, so both
    /// stamped their version alike and each kept its own for good. The ETags tell the versions
    /// apart, and S3's (the later write) is taken, whatever the stamps say.
    #[test]
    fn same_stamp_different_versions_converge_on_s3s() {
        let (a, b) = (Etag::parse("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"), Etag::parse("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"));
        let l = s(NoChanges, Some(5), Some(7)).with_identity(Some(a), None);
        let r = s(NoChanges, Some(9), Some(7)).with_identity(Some(b), Some(b));
        assert_eq!(decide(l, r), Download { kind: Kind::Update, ts: 7 });
        // A higher stamp here never makes this version overwrite S3's (the simulation's seed
        // 592): it is a conflict, asked.
        let higher = s(NoChanges, Some(5), Some(8)).with_identity(Some(a), None);
        assert_eq!(decide(higher, r), Decision::Conflict);
        let r = s(NoChanges, Some(9), Some(7)).with_identity(Some(a), Some(a));
        assert_eq!(decide(l, r), Nothing);
        // An edit within the second of the last sync: LastModified alike, ETag not.
        let r = s(NoChanges, Some(9), Some(7)).with_identity(Some(a), Some(b));
        assert_eq!(r.state, Updated);
        // A LastModified that moved with the same bytes (a copy in place) is no change.
        let r = s(Updated, Some(9), Some(7)).with_identity(Some(a), Some(a));
        assert_eq!(r.state, NoChanges);
    }

    #[test]
    fn every_row_of_the_decision_table() {
        let (c, u) = (Kind::Create, Kind::Update);
        #[rustfmt::skip]
        let rows: &[(Side, Side, Decision)] = &[
            (s(NoChanges, Some(5), Some(5)), s(NoChanges, Some(9), Some(5)), Nothing),
            (s(NoChanges, Some(5), Some(7)), s(NoChanges, Some(9), Some(5)), Upload { kind: u, ts: 7 }),
            (s(NoChanges, Some(5), Some(5)), s(NoChanges, Some(9), Some(7)), Download { kind: u, ts: 7 }),
            (s(Created, Some(5), None), s(DoesNotExist, None, None), Upload { kind: c, ts: 5 }),
            (s(DoesNotExist, None, None), s(Created, Some(9), None), Download { kind: c, ts: 9 }),
            (s(NoChanges, Some(5), Some(4)), s(DoesNotExist, None, None), Upload { kind: c, ts: 4 }),
            (s(DoesNotExist, None, None), s(NoChanges, Some(9), Some(4)), Download { kind: c, ts: 4 }),
            (s(Updated, Some(6), Some(4)), s(DoesNotExist, None, None), Upload { kind: c, ts: 6 }),
            (s(DoesNotExist, None, None), s(Updated, Some(9), Some(4)), Download { kind: c, ts: 9 }),
            (s(Deleted, None, Some(4)), s(Deleted, None, Some(4)), Nothing),
            (s(Deleted, None, Some(4)), s(DoesNotExist, None, None), Nothing),
            (s(DoesNotExist, None, None), s(Deleted, None, Some(4)), Nothing),
            (s(Updated, Some(6), Some(4)), s(NoChanges, Some(9), Some(4)), Upload { kind: u, ts: 6 }),
            (s(NoChanges, Some(5), Some(4)), s(Updated, Some(9), Some(4)), Download { kind: u, ts: 9 }),
            (s(Deleted, None, Some(4)), s(NoChanges, Some(9), Some(4)), DeleteRemote { ts: 4 }),
            (s(NoChanges, Some(5), Some(4)), s(Deleted, None, Some(4)), DeleteLocal { ts: 4 }),
            (s(Deleted, None, Some(4)), s(Created, Some(9), Some(4)), Download { kind: c, ts: 9 }),
            (s(Created, Some(6), Some(4)), s(Deleted, None, Some(4)), Upload { kind: c, ts: 6 }),
            // An edit older than the stamp it replaces is stamped above it (cp -p, a stamp
            // taken from LastModified): a machine holding the replaced version must download.
            (s(Updated, Some(3), Some(4)), s(NoChanges, Some(9), Some(4)), Upload { kind: u, ts: 5 }),
            (s(NoChanges, Some(5), Some(40)), s(Updated, Some(39), Some(40)), Download { kind: u, ts: 41 }),
            (s(Updated, Some(3), Some(4)), s(DoesNotExist, None, None), Upload { kind: c, ts: 5 }),
            (s(DoesNotExist, None, None), s(Updated, Some(3), Some(4)), Download { kind: c, ts: 5 }),
            // Unchanged here while S3 moved on past the version the index recorded: taken.
            (s(NoChanges, Some(5), Some(3)), s(Updated, Some(9), Some(4)), Download { kind: u, ts: 9 }),
            (s(NoChanges, Some(5), Some(3)), s(Deleted, None, Some(4)), DeleteLocal { ts: 4 }),
            (s(NoChanges, Some(5), Some(5)), s(Updated, Some(9), Some(4)), Decision::Conflict),
            (s(NoChanges, Some(5), Some(5)), s(Deleted, None, Some(4)), Decision::Conflict),
            // Guards that fail fall through to conflict.
            (s(Updated, Some(6), Some(4)), s(NoChanges, Some(9), Some(3)), Decision::Conflict),
            (s(Deleted, None, Some(4)), s(NoChanges, Some(9), Some(3)), Decision::Conflict),
            (s(Updated, Some(6), Some(4)), s(Updated, Some(9), Some(4)), Decision::Conflict),
            (s(Created, Some(6), None), s(Created, Some(9), None), Decision::Conflict),
            (s(Created, Some(6), None), s(NoChanges, Some(9), Some(2)), Decision::Conflict),
            (s(Conflict, Some(3), Some(4)), s(NoChanges, Some(9), Some(4)), Decision::Conflict),
            (s(Deleted, None, Some(4)), s(Updated, Some(9), Some(4)), Decision::Conflict),
            // Deleted here and agreed (tombstone), then re-created elsewhere: take it.
            (tomb(4), s(NoChanges, Some(9), Some(8)), Download { kind: c, ts: 8 }),
            (tomb(4), s(Updated, Some(9), Some(8)), Download { kind: c, ts: 9 }),
            (tomb(4), s(Created, Some(9), None), Download { kind: c, ts: 9 }),
            // Restored elsewhere with the deleted version's stamp: taken, not deleted again.
            (tomb(4), s(NoChanges, Some(9), Some(4)), Download { kind: c, ts: 4 }),
            (s(Created, Some(4), None), tomb(4), Decision::Conflict),
            (s(Created, Some(3), None), tomb(4), Decision::Conflict),
            (s(Created, Some(9), None), tomb(4), Upload { kind: c, ts: 9 }),
            (tomb(4), s(Deleted, None, Some(4)), Nothing),
        ];
        for (l, r, want) in rows {
            assert_eq!(decide(*l, *r), *want, "{l:?} {r:?}");
        }
    }

    #[test]
    fn conflicts_settled_each_way() {
        let (c, u) = (Kind::Create, Kind::Update);
        let l = s(Updated, Some(6), Some(4));
        let r = s(Updated, Some(9), Some(4));
        assert_eq!(resolve(Keep::Local, l, r), Upload { kind: u, ts: 6 });
        assert_eq!(resolve(Keep::Remote, l, r), Download { kind: u, ts: 9 });
        let l = s(Created, Some(6), None);
        let r = s(Created, Some(9), None);
        assert_eq!(resolve(Keep::Local, l, r), Upload { kind: c, ts: 6 });
        assert_eq!(resolve(Keep::Remote, l, r), Download { kind: c, ts: 9 });
        let l = s(Deleted, None, Some(4));
        let r = s(Updated, Some(9), Some(4));
        assert_eq!(resolve(Keep::Local, l, r), DeleteRemote { ts: 4 });
        assert_eq!(resolve(Keep::Remote, l, r), Download { kind: u, ts: 9 });
        // Keeping an unchanged side keeps its agreed stamp, not its mtime / LastModified.
        let unchanged = s(NoChanges, Some(99), Some(20));
        assert_eq!(resolve(Keep::Remote, s(Updated, Some(30), Some(10)), unchanged), Download { kind: u, ts: 20 });
        assert_eq!(resolve(Keep::Local, unchanged, s(Updated, Some(30), Some(10))), Upload { kind: u, ts: 20 });
        // S4 raised ValueError for a kept side in CONFLICT; its older mtime still becomes
        // the newest stamp, or the other machines would undo the choice.
        let l = s(Conflict, Some(3), Some(4));
        assert_eq!(resolve(Keep::Local, l, r), Upload { kind: u, ts: 5 });
        // Kept offline edit older than the other side's stamp: stamped above it.
        let offline = s(Updated, Some(1000), Some(900));
        let newer = s(NoChanges, Some(1200), Some(1100));
        assert_eq!(resolve(Keep::Local, offline, newer), Upload { kind: u, ts: 1101 });
        // A kept unchanged local side is stamped above the remote's newer stamp.
        assert_eq!(
            resolve(Keep::Local, s(NoChanges, Some(5), Some(10)), s(Updated, Some(9), Some(30))),
            Upload { kind: u, ts: 31 }
        );
        // A deletion carries the stamp of the version it deletes.
        assert_eq!(
            resolve(Keep::Local, s(Deleted, None, Some(4)), s(NoChanges, Some(9), Some(7))),
            DeleteRemote { ts: 7 }
        );
    }
}

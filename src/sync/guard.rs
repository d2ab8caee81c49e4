//! The deletion guards: a run that would delete more than `--max-delete` of either side's
//! files, or that finds a side empty where the index expects files, stops before deleting.

/// `--max-delete`: a share of a side's files, or a number of files.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MaxDelete {
    Percent(f64),
    Count(u64),
}

impl Default for MaxDelete {
    fn default() -> Self {
        MaxDelete::Percent(50.0)
    }
}

impl MaxDelete {
    pub fn parse(s: &str) -> Result<MaxDelete, String> {
        let bad = || format!("--max-delete {s}: give a share like 50% or a number of files like 100");
        match s.trim().strip_suffix('%') {
            Some(p) => match p.trim().parse::<f64>() {
                Ok(v) if (0.0..=100.0).contains(&v) => Ok(MaxDelete::Percent(v)),
                _ => Err(bad()),
            },
            None => s.trim().parse::<u64>().map(MaxDelete::Count).map_err(|_| bad()),
        }
    }
}

impl std::fmt::Display for MaxDelete {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MaxDelete::Percent(p) => write!(f, "{p}%"),
            MaxDelete::Count(n) => write!(f, "{n}"),
        }
    }
}

/// What a run's plan holds when its main pass ends: each side's files as found, and the
/// deletions planned on each side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub local_files: u64,
    pub remote_files: u64,
    pub delete_local: u64,
    pub delete_remote: u64,
    /// Of `delete_local`, files gone from the listing with no deletion in the remote index
    /// (another tool deleted them, or the listing is wrong).
    pub vanished_remote: u64,
}

/// Deleting this many files on a side or fewer never trips a guard: a share of a tiny folder
/// means little, and someone who deletes two of their three files must not need --force.
pub const ALWAYS_ALLOWED: u64 = 5;

/// `Some(why)` when the planned deletions must not run: a side found empty while the plan
/// deletes on the other side (an unmounted drive, a wiped or wrong prefix: everything would
/// look deleted), or more deletions on a side than `max` allows. Names the sides and the way out.
/// An empty S3 side stops local deletions that no machine recorded whatever their count
/// (issue 9: a listing misread as empty deleted three local files, under the small-deletion
/// allowance); deletions the remote index records are other machines' and go as usual.
pub fn check(t: &Tally, max: MaxDelete, local_uri: &str, remote_uri: &str) -> Option<String> {
    let again = "run again with --force if they really are to be deleted";
    if t.local_files == 0 && t.delete_remote > ALWAYS_ALLOWED {
        return Some(format!(
            "{local_uri} is empty, but the index says {} file(s) were synced from it (an unmounted drive or a \
             wrong folder?). Stopped before deleting them on {remote_uri}; {again}",
            t.delete_remote
        ));
    }
    if t.remote_files == 0 && (t.delete_local > ALWAYS_ALLOWED || t.vanished_remote > 0) {
        return Some(format!(
            "{remote_uri} is empty, but the index says {} file(s) were synced to it (a wiped bucket or a wrong \
             prefix?). Stopped before deleting them in {local_uri}; {again}",
            t.delete_local
        ));
    }
    for (deletes, total, uri) in
        [(t.delete_remote, t.remote_files, remote_uri), (t.delete_local, t.local_files, local_uri)]
    {
        let over = deletes > ALWAYS_ALLOWED
            && match max {
                MaxDelete::Percent(p) => deletes as f64 > total as f64 * p / 100.0,
                MaxDelete::Count(n) => deletes > n,
            };
        if over {
            return Some(format!(
                "this sync would delete {deletes} of the {total} files on {uri}, more than --max-delete {max} allows. \
                 Stopped before deleting anything; see what changed with --dry-run, then run again with --force \
                 or a higher --max-delete"
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(local_files: u64, remote_files: u64, delete_local: u64, delete_remote: u64) -> Tally {
        Tally { local_files, remote_files, delete_local, delete_remote, vanished_remote: 0 }
    }

    fn vanished(mut t: Tally) -> Tally {
        t.vanished_remote = t.delete_local;
        t
    }

    #[test]
    fn parses_shares_and_counts() {
        assert_eq!(MaxDelete::parse("50%"), Ok(MaxDelete::Percent(50.0)));
        assert_eq!(MaxDelete::parse(" 100 % "), Ok(MaxDelete::Percent(100.0)));
        assert_eq!(MaxDelete::parse("7"), Ok(MaxDelete::Count(7)));
        for bad in ["", "x", "-1", "150%", "%"] {
            assert!(MaxDelete::parse(bad).unwrap_err().contains("--max-delete"), "{bad}");
        }
    }

    #[test]
    fn the_guard_table() {
        let half = MaxDelete::default();
        let cases = [
            // (tally, max, trips?)
            (t(10, 10, 0, 0), half, None),
            (t(20, 20, 0, 10), half, None), // exactly half: allowed
            (t(20, 20, 0, 11), half, Some("11 of the 20 files on s3://b/p")),
            (t(20, 20, 11, 0), half, Some("11 of the 20 files on /d")),
            (t(0, 10, 0, 10), MaxDelete::Percent(100.0), Some("/d is empty")),
            (t(10, 0, 10, 0), MaxDelete::Percent(100.0), Some("s3://b/p is empty")),
            (t(0, 0, 0, 0), half, None), // a new, empty target
            (t(0, 3, 0, 0), half, None), // first sync down into an empty folder
            (t(100, 100, 0, 11), MaxDelete::Count(10), Some("more than --max-delete 10")),
            (t(100, 100, 0, 10), MaxDelete::Count(10), None),
            (t(4, 4, 0, 4), MaxDelete::Percent(100.0), None),
            (t(0, 5, 0, 5), half, None), // small deletions always go
            // ...but never into a folder because S3 looks empty (issue 9).
            (vanished(t(3, 0, 3, 0)), MaxDelete::Percent(100.0), Some("s3://b/p is empty")),
            (vanished(t(5, 0, 1, 0)), half, Some("s3://b/p is empty")),
            // Deletions another machine recorded go: it emptied the folder on purpose.
            (t(3, 0, 3, 0), MaxDelete::Percent(100.0), None),
            (t(6, 6, 5, 0), MaxDelete::Count(0), None),
            (t(0, 6, 0, 6), half, Some("/d is empty")),
        ];
        for (tally, max, want) in cases {
            let got = check(&tally, max, "/d", "s3://b/p");
            match want {
                None => assert_eq!(got, None, "{tally:?}"),
                Some(w) => assert!(
                    got.as_deref().is_some_and(|g| g.contains(w) && g.contains("--force")),
                    "{tally:?}: {got:?}"
                ),
            }
        }
    }
}

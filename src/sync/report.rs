//! What a sync tells: the counts of a run, and its actions as JSON lines (`--json`) and as
//! S4's words and colours ("would" in a dry run).

use super::exec::Job;
use super::plan::{Decision, Kind, Side, State};
use super::Names;
use crate::log::{format_utc, Color};

/// What a dry run would do, by kind (a real run counts what it did in [`Report`]'s fields).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Planned {
    pub upload: u64,
    pub download: u64,
    pub delete_local: u64,
    pub delete_remote: u64,
    pub bytes_up: u64,
    pub bytes_down: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub uploaded: u64,
    pub downloaded: u64,
    pub deleted_local: u64,
    pub deleted_remote: u64,
    pub bytes_up: u64,
    pub bytes_down: u64,
    /// Of the uploads and downloads, moves carried out with the bytes already there (a
    /// server-side copy; here a rename of the old file, or a copy of it): none were sent.
    pub moved: u64,
    pub conflicts_skipped: u64,
    pub errors: u64,
    pub planned: u64,
    pub interrupted: bool,
    /// Why a guard stopped the planned deletions (none of them ran).
    pub stopped: Option<String>,
    /// A key-set sync ([`super::run_keys`]) left something only a full sync may decide:
    /// deletions the guards stopped on a key set's totals, a changed `.syncignore`, a
    /// followed symlink.
    pub needs_full: bool,
    /// The keys of the real conflicts met (skipped or settled): how a version that did not
    /// win is never lost silently (issue 10).
    pub conflicts: Vec<String>,
    /// A dry run's plan by kind (`planned` is their sum).
    pub would: Planned,
}

impl Report {
    pub fn clean(&self) -> bool {
        self.errors == 0 && self.conflicts_skipped == 0 && !self.interrupted && self.stopped.is_none()
    }

    /// Count one action a dry run would carry out (`bytes`: the file's size).
    pub fn would(&mut self, decision: &Decision, bytes: u64) {
        self.planned += 1;
        let w = &mut self.would;
        match decision {
            Decision::Upload { .. } => (w.upload, w.bytes_up) = (w.upload + 1, w.bytes_up + bytes),
            Decision::Download { .. } => (w.download, w.bytes_down) = (w.download + 1, w.bytes_down + bytes),
            Decision::DeleteLocal { .. } => w.delete_local += 1,
            Decision::DeleteRemote { .. } => w.delete_remote += 1,
            Decision::Conflict | Decision::Nothing => {}
        }
    }

    /// Did the run change anything, or leave anything to look at (the daemon logs only then)?
    pub fn news(&self) -> bool {
        self.uploaded + self.downloaded + self.deleted_local + self.deleted_remote + self.planned > 0 || !self.clean()
    }

    /// Add another target's counts (for the summary of a multi-target sync).
    pub fn absorb(&mut self, r: &Report) {
        self.uploaded += r.uploaded;
        self.downloaded += r.downloaded;
        self.deleted_local += r.deleted_local;
        self.deleted_remote += r.deleted_remote;
        self.bytes_up += r.bytes_up;
        self.bytes_down += r.bytes_down;
        self.moved += r.moved;
        self.conflicts_skipped += r.conflicts_skipped;
        self.errors += r.errors;
        self.planned += r.planned;
        self.interrupted |= r.interrupted;
        self.conflicts.extend(r.conflicts.iter().cloned());
        self.stopped = self.stopped.take().or_else(|| r.stopped.clone());
        self.needs_full |= r.needs_full;
        let (w, o) = (&mut self.would, &r.would);
        w.upload += o.upload;
        w.download += o.download;
        w.delete_local += o.delete_local;
        w.delete_remote += o.delete_remote;
        w.bytes_up += o.bytes_up;
        w.bytes_down += o.bytes_down;
    }
}

pub(super) fn verb(kind: Kind) -> &'static str {
    match kind {
        Kind::Create => "Creating",
        Kind::Update => "Updating",
    }
}

pub(super) fn kind_color(kind: Kind) -> Color {
    match kind {
        Kind::Create => Color::Green,
        Kind::Update => Color::Yellow,
    }
}

/// The line announcing an action: S4's words and colours (`Creating KEY (FROM => TO)`), or in a
/// dry run what would happen (`Would create KEY (FROM => TO)`). `None`: nothing to announce
/// (a conflict is told when it is settled or skipped).
pub(super) fn action_line(decision: &Decision, key: &str, n: &Names, dry_run: bool) -> Option<(Color, String)> {
    let (would, real) = match decision {
        Decision::Upload { kind, .. } | Decision::Download { kind, .. } => {
            let (from, to) = match decision {
                Decision::Upload { .. } => (&n.local_uri, &n.remote_uri),
                _ => (&n.remote_uri, &n.local_uri),
            };
            let w = if *kind == Kind::Create { "Would create" } else { "Would update" };
            let tail = format!("{key} ({from} => {to})");
            return Some((kind_color(*kind), format!("{} {tail}", if dry_run { w } else { verb(*kind) })));
        }
        Decision::DeleteRemote { .. } => ("Would delete", format!("{key} on {}", n.remote_uri)),
        Decision::DeleteLocal { .. } => ("Would delete", format!("{key} on {}", n.local_uri)),
        Decision::Conflict | Decision::Nothing => return None,
    };
    Some((Color::Red, format!("{} {real}", if dry_run { would } else { "Deleting" })))
}

/// Print an action line: one line per action with `-v` or when no progress bar is on screen
/// (stderr not a terminal); otherwise the bar shows it and the line goes to DEBUG.
pub(super) fn emit_action(color: Color, line: &str) {
    use crate::log::Level;
    let level = if crate::progress::lines_wanted() { Level::Info } else { Level::Debug };
    crate::log::emit(level, Some(color), line);
}

/// What happened to one side of a conflict, in words, for the prompt: "changed here at …",
/// "changed on S3 at … by another machine", "deleted on S3". `other` is the other side: its
/// stamp tells whether S3's unchanged object is a version another machine synced since ours.
pub(super) fn side_label(side: &Side, other: &Side, local: bool) -> String {
    let at = |t: Option<i64>| t.map(|t| format!(" at {} UTC", format_utc(t))).unwrap_or_default();
    let when = at(side.real);
    let (here, by) = if local { ("here", "") } else { ("on S3", " by another machine") };
    match side.state {
        State::Created if local => format!("created {here}{when} (never synced)"),
        State::Created => format!("created {here}{when} (never synced from here)"),
        State::Updated => format!("changed {here}{when}{by}"),
        State::Deleted => format!("deleted {here}{by}"),
        // S3's object is the one its index knows, but that index records a newer version than
        // this machine agreed on: another machine synced a change.
        State::NoChanges if !local && side.stamp.is_some() && other.stamp.is_some() && side.stamp != other.stamp => {
            format!("changed {here}{when}{by}")
        }
        State::NoChanges => format!("unchanged {here} since the last sync{}", at(side.real)),
        State::Conflict => format!("changed {here}{when}, dated before the last sync"),
        State::DoesNotExist => format!("not {here}"),
    }
}

/// One JSON object per action on stdout (`--json`); see [`crate::events`] for the schema.
pub fn json_line(job: &Job, status: &str, error: Option<&str>, bytes: u64) {
    let (action, kind) = match job.decision {
        Decision::Upload { kind, .. } => ("upload", Some(kind)),
        Decision::Download { kind, .. } => ("download", Some(kind)),
        Decision::DeleteRemote { .. } => ("delete_remote", None),
        Decision::DeleteLocal { .. } => ("delete_local", None),
        Decision::Conflict => ("conflict", None),
        Decision::Nothing => ("nothing", None),
    };
    let mut v = serde_json::json!({"key": job.key, "action": action, "status": status});
    if action == "conflict" {
        v["local"] = serde_json::json!(side_label(&job.local, &job.remote, true));
        v["remote"] = serde_json::json!(side_label(&job.remote, &job.local, false));
    }
    if let Some(k) = kind {
        v["kind"] = serde_json::json!(if k == Kind::Create { "create" } else { "update" });
    }
    if bytes > 0 {
        v["bytes"] = serde_json::json!(bytes);
    }
    if let Some(e) = error {
        v["error"] = serde_json::json!(e);
    }
    crate::events::emit("action", v);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Names {
        Names { name: "docs".into(), local_uri: "/home/me/docs/".into(), remote_uri: "s3://b/docs/".into() }
    }

    fn side(state: State, real: Option<i64>, stamp: Option<i64>) -> Side {
        Side { state, real, stamp, tombstone: false, version: None }
    }

    #[test]
    fn dry_run_says_would_on_every_action_line() {
        let n = names();
        let up = Decision::Upload { kind: Kind::Create, ts: 1 };
        assert_eq!(action_line(&up, "a.txt", &n, false).unwrap().1, "Creating a.txt (/home/me/docs/ => s3://b/docs/)");
        assert_eq!(
            action_line(&up, "a.txt", &n, true).unwrap().1,
            "Would create a.txt (/home/me/docs/ => s3://b/docs/)"
        );
        let down = Decision::Download { kind: Kind::Update, ts: 1 };
        assert_eq!(action_line(&down, "b", &n, true).unwrap().1, "Would update b (s3://b/docs/ => /home/me/docs/)");
        let del = Decision::DeleteRemote { ts: 1 };
        assert_eq!(action_line(&del, "c", &n, false).unwrap().1, "Deleting c on s3://b/docs/");
        assert_eq!(action_line(&del, "c", &n, true).unwrap().1, "Would delete c on s3://b/docs/");
        assert!(action_line(&Decision::Conflict, "d", &n, true).is_none());
        let mut r = Report::default();
        r.would(&up, 10);
        r.would(&down, 5);
        r.would(&del, 0);
        assert_eq!((r.planned, r.would.upload, r.would.bytes_up, r.would.delete_remote), (3, 1, 10, 1));
    }

    #[test]
    fn conflict_labels_say_what_happened_on_each_side() {
        // Issue 12: S3's side read "(NOCHANGES)" when another machine had synced a new version.
        let here = side(State::Updated, Some(1_700_000_000), Some(100));
        let s3 = side(State::NoChanges, Some(1_700_000_060), Some(200));
        assert_eq!(side_label(&here, &s3, true), "changed here at 2023-11-14 22:13:20 UTC");
        assert_eq!(side_label(&s3, &here, false), "changed on S3 at 2023-11-14 22:14:20 UTC by another machine");
        let same = side(State::NoChanges, Some(1_700_000_060), Some(100));
        assert!(side_label(&same, &here, false).starts_with("unchanged on S3 since the last sync"));
        assert_eq!(side_label(&side(State::Deleted, None, Some(1)), &here, false), "deleted on S3 by another machine");
        assert_eq!(side_label(&side(State::Deleted, None, Some(1)), &s3, true), "deleted here");
    }
}

//! What a sync tells: the counts of a run, and its actions as JSON lines (`--json`) and as
//! S4's words and colours.

use super::exec::Job;
use super::plan::{Decision, Kind};
use crate::log::Color;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub uploaded: u64,
    pub downloaded: u64,
    pub deleted_local: u64,
    pub deleted_remote: u64,
    pub bytes_up: u64,
    pub bytes_down: u64,
    pub conflicts_skipped: u64,
    pub errors: u64,
    pub planned: u64,
    pub interrupted: bool,
    /// Why a guard stopped the planned deletions (none of them ran).
    pub stopped: Option<String>,
    /// The keys of the real conflicts met (skipped or settled): how a version that did not
    /// win is never lost silently (issue 10).
    pub conflicts: Vec<String>,
}

impl Report {
    pub fn clean(&self) -> bool {
        self.errors == 0 && self.conflicts_skipped == 0 && !self.interrupted && self.stopped.is_none()
    }

    /// Add another target's counts (for the summary of a multi-target sync).
    pub fn absorb(&mut self, r: &Report) {
        self.uploaded += r.uploaded;
        self.downloaded += r.downloaded;
        self.deleted_local += r.deleted_local;
        self.deleted_remote += r.deleted_remote;
        self.bytes_up += r.bytes_up;
        self.bytes_down += r.bytes_down;
        self.conflicts_skipped += r.conflicts_skipped;
        self.errors += r.errors;
        self.planned += r.planned;
        self.interrupted |= r.interrupted;
        self.conflicts.extend(r.conflicts.iter().cloned());
        self.stopped = self.stopped.take().or_else(|| r.stopped.clone());
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

/// One JSON object per action on stdout (`--json`).
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
    if let Some(k) = kind {
        v["kind"] = serde_json::json!(if k == Kind::Create { "create" } else { "update" });
    }
    if bytes > 0 {
        v["bytes"] = serde_json::json!(bytes);
    }
    if let Some(e) = error {
        v["error"] = serde_json::json!(e);
    }
    println!("{v}");
}

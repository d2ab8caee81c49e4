//! Recording what the transfers did: each outcome into both indexes and the run's counts.

use super::exec::{Done, Outcome};
use super::index::{Entry, Etag};
use super::plan::Decision;
use super::state::Indexes;
use super::{conflict, report::json_line, Run};

impl Run<'_> {
    pub(super) fn apply(&mut self, done: Result<Vec<Outcome>, tokio::task::JoinError>, idx: &mut Indexes) {
        let outcomes = match done {
            Ok(v) => v,
            Err(e) => {
                crate::error!("A transfer task failed: {e}");
                self.report.errors += 1;
                return;
            }
        };
        for Outcome { job, result } in outcomes {
            let key = job.key.as_str();
            let stamp = |ts: i64| Some(ts as f64);
            // A moved file's new key holds its bytes: its old key's deletion is a move, not a
            // loss, for the guards (only now: a failed transfer leaves it a deletion).
            if let (Some(src), Ok(Done::Uploaded { .. } | Done::Downloaded { .. })) = (&job.moved_from, &result) {
                self.moved.insert(src.key.clone());
            }
            let bytes = match (&result, job.decision) {
                (Ok(Done::Uploaded { etag, mtime, bytes, copied }), Decision::Upload { ts, .. }) => {
                    idx.set_uploaded(key, *mtime, ts as f64, etag.clone());
                    self.report.uploaded += 1;
                    self.report.moved += u64::from(*copied);
                    self.report.bytes_up += bytes;
                    *bytes
                }
                (Ok(Done::Downloaded { lm, etag, bytes, copied, mtime }), Decision::Download { ts, .. }) => {
                    self.report.moved += u64::from(*copied);
                    // The version actually fetched (pinned by If-Match where the plan knew it).
                    let etag = etag.as_deref().map(Etag::parse);
                    let local = Entry::new(mtime.or(stamp(ts)), stamp(ts), etag);
                    idx.set(key, local, Entry::new(lm.map(|t| t as f64), stamp(ts), etag));
                    idx.mark_adoptable(key);
                    self.report.downloaded += 1;
                    self.report.bytes_down += bytes;
                    *bytes
                }
                (Ok(Done::DeletedRemote), Decision::DeleteRemote { ts }) => {
                    let local = Entry::new(None, job.li.and_then(|e| e.remote_timestamp), None);
                    idx.set(key, local, Entry::new(None, stamp(ts), None));
                    self.report.deleted_remote += 1;
                    0
                }
                (Ok(Done::DeletedLocal), Decision::DeleteLocal { ts }) => {
                    let remote = Entry::new(None, job.ri.and_then(|e| e.remote_timestamp), None);
                    idx.set(key, Entry::new(None, stamp(ts), None), remote);
                    self.report.deleted_local += 1;
                    0
                }
                (Ok(Done::Identical { mtime, etag }), Decision::Conflict) => {
                    crate::debug!("{key} is identical on both sides: recorded as synced");
                    if !self.opts.dry_run {
                        conflict::record_synced(idx, &job, *mtime, etag);
                    }
                    continue;
                }
                (Ok(Done::Stale { etag }), _) => {
                    // Both sides changed after all: the conflict the plan would have seen.
                    let mut remote = job.remote;
                    remote.state = super::plan::State::Updated;
                    let job = super::exec::Job { decision: Decision::Conflict, etag: etag.clone(), remote, ..job };
                    self.settle(&job);
                    continue;
                }
                (Ok(Done::Blocked), _) => {
                    self.blocked.push(job);
                    continue;
                }
                (Ok(Done::Differs), Decision::Conflict) => {
                    self.settle(&job);
                    continue;
                }
                // A store kept on a filesystem (s3s-fs, rclone serve s3, MinIO's fs mode) cannot
                // hold `x` and `x/in.txt` at once: an upload beside a held deletion of the other
                // type goes again once the deletions ran (a file became a folder, or back).
                (Err(_), Decision::Upload { .. }) if !job.after_deletes && self.type_change_pending(key) => {
                    self.blocked.push(job);
                    continue;
                }
                (Err(e), _) => {
                    crate::error!("An error occurred while trying to update {key}: {e}");
                    self.report.errors += 1;
                    0
                }
                (Ok(_), _) => unreachable!("outcome does not match its decision"),
            };
            if self.opts.json {
                match &result {
                    Ok(_) => json_line(&job, "ok", None, bytes),
                    Err(e) => json_line(&job, "error", Some(e), 0),
                }
            }
        }
    }

    /// A real conflict met without a person: settled by `--conflicts`, else skipped; named in
    /// the report either way.
    fn settle(&mut self, job: &super::exec::Job) {
        // A dry run moves nothing aside: it plans as keep-both would, S3's version to the name.
        let mode = match (self.opts.dry_run, self.opts.conflicts) {
            (true, conflict::Mode::KeepBoth) => conflict::Mode::Keep(super::plan::Keep::Remote),
            (_, mode) => mode,
        };
        match conflict::settle_by_flag(job, mode, &self.ctx.root, crate::log::now_secs()) {
            Some(next) => {
                self.report.conflicts.push(job.key.clone());
                self.followups.push(next)
            }
            None => self.skip_conflict(job),
        }
    }

    /// Is a deletion of `key`'s parent path, or of something under `key`, held for the guards?
    fn type_change_pending(&self, key: &str) -> bool {
        let below = format!("{key}/");
        self.held.as_ref().is_some_and(|held| {
            held.in_memory().iter().any(|h| {
                matches!(h.decision, Decision::DeleteRemote { .. })
                    && (key.starts_with(&format!("{}/", h.key)) || h.key.starts_with(&below))
            })
        })
    }
}

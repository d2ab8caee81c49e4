//! Recording what the transfers did: each outcome into both indexes and the run's counts.

use super::exec::{Done, Outcome};
use super::index::Entry;
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
            let bytes = match (&result, job.decision) {
                (Ok(Done::Uploaded { etag, mtime, bytes }), Decision::Upload { ts, .. }) => {
                    let local = Entry { local_timestamp: Some(*mtime), remote_timestamp: stamp(ts) };
                    idx.set_uploaded(key, local, ts as f64, etag.clone());
                    self.report.uploaded += 1;
                    self.report.bytes_up += bytes;
                    *bytes
                }
                (Ok(Done::Downloaded { lm, bytes }), Decision::Download { ts, .. }) => {
                    let local = Entry { local_timestamp: stamp(ts), remote_timestamp: stamp(ts) };
                    idx.set(key, local, Entry { local_timestamp: lm.map(|t| t as f64), remote_timestamp: stamp(ts) });
                    idx.mark_adoptable(key);
                    self.report.downloaded += 1;
                    self.report.bytes_down += bytes;
                    *bytes
                }
                (Ok(Done::DeletedRemote), Decision::DeleteRemote { ts }) => {
                    let local =
                        Entry { local_timestamp: None, remote_timestamp: job.li.and_then(|e| e.remote_timestamp) };
                    idx.set(key, local, Entry { local_timestamp: None, remote_timestamp: stamp(ts) });
                    self.report.deleted_remote += 1;
                    0
                }
                (Ok(Done::DeletedLocal), Decision::DeleteLocal { ts }) => {
                    let remote =
                        Entry { local_timestamp: None, remote_timestamp: job.ri.and_then(|e| e.remote_timestamp) };
                    idx.set(key, Entry { local_timestamp: None, remote_timestamp: stamp(ts) }, remote);
                    self.report.deleted_local += 1;
                    0
                }
                (Ok(Done::Identical { mtime }), Decision::Conflict) => {
                    crate::debug!("{key} is identical on both sides: recorded as synced");
                    if !self.opts.dry_run {
                        conflict::record_synced(idx, &job, *mtime);
                    }
                    continue;
                }
                (Ok(Done::Differs), Decision::Conflict) => {
                    match conflict::settle_by_flag(&job, self.opts.conflicts) {
                        Some(next) => self.followups.push(next),
                        None => self.skip_conflict(&job),
                    }
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
}

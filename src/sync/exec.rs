//! Carrying out one decision: upload, download, delete. Each re-checks the local file just
//! before acting, so a file changed during the sync is kept, never overwritten or deleted.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::index::Entry;
use super::plan::{Decision, Side};
use super::scan::mtime_of;
use crate::fsutil;
use crate::progress::Progress;
use crate::s3::{Client, PutOptions, Transfer};

/// What every transfer task needs; shared by all of them.
pub struct Ctx {
    pub client: Client,
    pub root: PathBuf,
    pub prefix: String,
    pub transfer: Transfer,
    pub progress: Progress,
}

/// One key's work, as planned: the decision plus what the plan saw of each side.
#[derive(Debug, Clone)]
pub struct Job {
    pub key: String,
    pub decision: Decision,
    /// mtime the scan saw (None: no local file).
    pub local_mtime: Option<f64>,
    pub remote_size: u64,
    /// LastModified from the listing, unix seconds.
    pub remote_lm: Option<i64>,
    pub li: Option<Entry>,
    pub ri: Option<Entry>,
    /// What the plan derived for each side (the conflict prompt shows it; resolutions use it).
    pub local: Side,
    pub remote: Side,
    pub local_size: Option<u64>,
    /// From the listing; some stores list no ETag (then HEAD tells).
    pub etag: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Done {
    Uploaded {
        /// The ETag the store gave our upload, to recognise it in the next listing.
        etag: Option<String>,
        mtime: f64,
        bytes: u64,
    },
    Downloaded {
        lm: Option<i64>,
        bytes: u64,
    },
    DeletedLocal,
    DeletedRemote,
    /// A conflict whose two sides hold the same bytes (local mtime attached).
    Identical {
        mtime: f64,
    },
    /// A real conflict: the sides differ.
    Differs,
}

/// Why one upload attempt did not finish.
enum Retry {
    /// The file changed under it: worth another try.
    Changed,
    Fail(String),
}

pub struct Outcome {
    pub job: Job,
    pub result: Result<Done, String>,
}

impl Ctx {
    pub fn remote_key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    pub async fn run(self: Arc<Self>, job: Job) -> Outcome {
        let result = match job.decision {
            Decision::Upload { .. } => self.upload(&job).await,
            Decision::Download { ts, .. } => self.download(&job, ts).await,
            Decision::DeleteLocal { .. } => self.delete_local(&job),
            Decision::Conflict => Ok(match super::conflict::identical(&self, &job).await {
                Some(mtime) => Done::Identical { mtime },
                None => Done::Differs,
            }),
            Decision::DeleteRemote { .. } | Decision::Nothing => Err("internal: not a single-key action".into()),
        };
        Outcome { job, result }
    }

    async fn upload(&self, job: &Job) -> Result<Done, String> {
        // A file being written to is tried again a little later; one that keeps changing is
        // left for the next run, with nothing recorded and no torn object on S3.
        const TRIES: u32 = 3;
        let mut tries = 1;
        loop {
            match self.upload_once(job).await {
                Err(Retry::Changed) if tries < TRIES => {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(250 * u64::from(tries))).await;
                }
                Err(Retry::Changed) => {
                    return Err(format!("{} kept changing while being uploaded; left for the next run", job.key))
                }
                Err(Retry::Fail(e)) => return Err(e),
                Ok(done) => return Ok(done),
            }
        }
    }

    async fn upload_once(&self, job: &Job) -> Result<Done, Retry> {
        let key = job.key.as_str();
        let path = self.root.join(key);
        let meta = std::fs::metadata(&path).map_err(|e| Retry::Fail(format!("reading {}: {e}", path.display())))?;
        // The mtime before reading, recorded in the index: put_file sends only a version the
        // file held unchanged from its start to its end.
        let mtime = mtime_of(&meta);
        // Write only over the object the plan saw (its ETag), or only where none was: an
        // object another machine wrote since the listing is not overwritten (on stores that
        // honour conditional writes; others ignore the headers).
        let (if_match, if_none_match) = match job.remote_lm {
            Some(_) => (job.etag.clone(), false),
            None => (None, true),
        };
        let opts = PutOptions {
            content_type: Some(crate::content_type::detect(&path, key)),
            if_match,
            if_none_match,
            ..Default::default()
        };
        let etag = match self.client.put_file(&self.remote_key(key), &path, meta.len(), &opts, &self.transfer).await {
            Ok(etag) => etag,
            Err(e) if e.is_changed() => return Err(Retry::Changed),
            // Either another writer came first, or our own first attempt landed and its answer
            // was lost (the retry then fails its condition): the object's ETag tells which.
            Err(e) if e.is_precondition_failed() => match self.ours_already(key, &path, meta.len()).await {
                Some(etag) => Some(etag),
                None => {
                    return Err(Retry::Fail(format!(
                        "{key} changed on S3 during the sync; kept both, will decide next run ({e})"
                    )))
                }
            },
            Err(e) => return Err(Retry::Fail(e.to_string())),
        };
        self.progress.add(1, meta.len());
        Ok(Done::Uploaded { etag, mtime, bytes: meta.len() })
    }

    /// The ETag of the object at `key` if it holds exactly the file's bytes.
    async fn ours_already(&self, key: &str, path: &Path, size: u64) -> Option<String> {
        let etag = self.client.head(&self.remote_key(key)).await.ok()??.etag?;
        let (path, part, tag) = (path.to_path_buf(), self.transfer.part_size, etag.clone());
        let same =
            tokio::task::spawn_blocking(move || super::conflict::local_matches_etag(&path, size, &tag, part)).await;
        same.unwrap_or(false).then_some(etag)
    }

    async fn download(&self, job: &Job, ts: i64) -> Result<Done, String> {
        if !fsutil::is_safe_key(&job.key) {
            return Err("not a safe relative path; skipped".into());
        }
        let dest = fsutil::safe_dest(&self.root, &job.key)?;
        let tmp = fsutil::temp_path(&dest);
        let result = self.download_to(job, ts, &dest, &tmp).await;
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    async fn download_to(&self, job: &Job, ts: i64, dest: &Path, tmp: &Path) -> Result<Done, String> {
        let meta = self
            .client
            .download_to_file(&self.remote_key(&job.key), tmp, job.remote_size, &self.transfer)
            .await
            .map_err(|e| e.to_string())?;
        // The version's source time, not "now" (S4 bug): syncing back is then a no-op.
        let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(ts.max(0) as u64);
        fsutil::seal(tmp, when).map_err(|e| format!("writing {}: {e}", tmp.display()))?;
        check_unchanged(dest, job.local_mtime)?;
        fsutil::replace(tmp, dest).map_err(|e| format!("renaming into {}: {e}", dest.display()))?;
        self.progress.add(1, meta.size);
        Ok(Done::Downloaded { lm: job.remote_lm.or(meta.last_modified), bytes: meta.size })
    }

    fn delete_local(&self, job: &Job) -> Result<Done, String> {
        if !fsutil::is_safe_key(&job.key) {
            return Err("not a safe relative path; skipped".into());
        }
        let path = self.root.join(&job.key);
        check_unchanged(&path, job.local_mtime)?;
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("deleting {}: {e}", path.display())),
        }
        self.progress.add(1, 0);
        Ok(Done::DeletedLocal)
    }

    /// DeleteObjects for a batch of keys (≤ 1000 a request).
    pub async fn delete_remote(self: Arc<Self>, jobs: Vec<Job>) -> Vec<Outcome> {
        let keys: Vec<String> = jobs.iter().map(|j| self.remote_key(&j.key)).collect();
        match self.client.delete_objects(&keys).await {
            Ok(failed) => {
                let failed: std::collections::HashMap<String, String> =
                    failed.into_iter().map(|(k, e)| (k, e.to_string())).collect();
                self.progress.add(jobs.len() as u64, 0);
                jobs.into_iter()
                    .map(|job| {
                        let result = match failed.get(&self.remote_key(&job.key)) {
                            Some(e) => Err(e.clone()),
                            None => Ok(Done::DeletedRemote),
                        };
                        Outcome { job, result }
                    })
                    .collect()
            }
            Err(e) => {
                let msg = e.to_string();
                jobs.into_iter().map(|job| Outcome { job, result: Err(msg.clone()) }).collect()
            }
        }
    }
}

/// Is the local file still as the plan saw it (`None`: absent)? If not, we keep it.
fn check_unchanged(path: &Path, expected: Option<f64>) -> Result<(), String> {
    let now = match std::fs::symlink_metadata(path) {
        Ok(m) => Some(mtime_of(&m)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    match (expected, now) {
        (None, Some(_)) => Err(format!("{} appeared during the sync; kept it, will decide next run", path.display())),
        (Some(a), Some(b)) if a != b => {
            Err(format!("{} changed during the sync; kept it, will decide next run", path.display()))
        }
        _ => Ok(()),
    }
}

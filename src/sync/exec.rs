//! Carrying out one decision: upload, download, delete. Each re-checks the local file just
//! before acting, so a file changed during the sync is kept, never overwritten or deleted.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::index::Entry;
use super::lease::Lease;
use super::moves::Copied;
use super::plan::{Decision, Side};
use super::remote::{Meta, Remote};
use super::scan::mtime_of;
use super::stores::Caps;
use crate::fsutil;
use crate::progress::{FileBytes, Progress};
use crate::s3::{PutOptions, Transfer};

/// What every transfer task needs; shared by all of them.
pub struct Ctx {
    pub remote: Arc<dyn Remote>,
    pub root: PathBuf,
    pub prefix: String,
    pub transfer: Transfer,
    pub progress: Progress,
    /// Blocking work runs inline (the simulation: see [`Ctx::blocking`]).
    pub inline: bool,
    pub caps: Caps,
    /// Held for the run where the store ignores conditional writes: every write is checked
    /// against it, and re-checked with a HEAD (issue 10).
    pub lease: Option<Arc<Lease>>,
}

/// One key's work, as planned: the decision plus what the plan saw of each side.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
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
    /// A download tried again after the run's deletions (see [`Done::Blocked`]).
    pub after_deletes: bool,
    /// A move: the bytes are already at this other key (see [`super::moves`]).
    pub moved_from: Option<super::moves::Source>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Done {
    Uploaded {
        /// The ETag the store gave our upload, to recognise it in the next listing.
        etag: Option<String>,
        mtime: f64,
        bytes: u64,
        /// By a server-side copy of a moved file's old key: `bytes` is 0.
        copied: bool,
    },
    Downloaded {
        lm: Option<i64>,
        /// Of the version fetched.
        etag: Option<String>,
        bytes: u64,
        /// From a moved file's old copy here: `bytes` is 0.
        copied: bool,
        /// The file's mtime where it is not the version's stamp (a moved file renamed here
        /// keeps its own: see [`super::renames`]).
        mtime: Option<f64>,
    },
    DeletedLocal,
    DeletedRemote,
    /// A conflict whose two sides hold the same bytes (local mtime attached).
    Identical {
        mtime: f64,
        etag: String,
    },
    /// A real conflict: the sides differ.
    Differs,
    /// A download found a file where its folder goes, or a folder where it goes: a type
    /// change (`x` became `x/in.txt`, or back) whose deletion the plan holds until the guards
    /// have seen the whole plan. Tried again once the deletions ran, in the same sync.
    Blocked,
    /// An upload found S3 changed although the plan saw no change (a listing without ETags,
    /// and a LastModified in the same second): both sides changed, so it is a conflict,
    /// now with S3's real ETag.
    Stale {
        etag: Option<String>,
    },
}

/// Why one upload attempt did not finish.
enum Retry {
    /// The file changed under it: worth another try.
    Changed,
    /// S3 changed since the plan (see [`Done::Stale`]).
    Stale(Option<String>),
    Fail(String),
}

/// The version of the object the plan saw, as far as S3 tells.
enum Planned {
    Version(Option<String>),
    /// See [`Done::Stale`].
    Stale(Option<String>),
}

pub struct Outcome {
    pub job: Job,
    pub result: Result<Done, String>,
}

impl Ctx {
    pub fn remote_key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Run blocking work (hashing a file) off the async threads; inline in the simulation,
    /// whose scheduler must see every step of a machine in one thread, in order.
    pub async fn blocking<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        if self.inline {
            return f();
        }
        tokio::task::spawn_blocking(f).await.expect("blocking task panicked")
    }

    /// [`Ctx::blocking`] for many, results in order, as many at once as there are cores (16
    /// at most: past that a disk only seeks more).
    pub async fn blocking_each<T: Send + 'static, F: FnOnce() -> T + Send + 'static>(&self, work: Vec<F>) -> Vec<T> {
        if self.inline {
            return work.into_iter().map(|f| f()).collect();
        }
        let lanes = std::thread::available_parallelism().map_or(2, |n| n.get()).min(16);
        let mut out = Vec::with_capacity(work.len());
        let mut running = std::collections::VecDeque::with_capacity(lanes);
        for f in work {
            if running.len() == lanes {
                let first: tokio::task::JoinHandle<T> = running.pop_front().expect("one running");
                out.push(first.await.expect("blocking task panicked"));
            }
            running.push_back(tokio::task::spawn_blocking(f));
        }
        for r in running {
            out.push(r.await.expect("blocking task panicked"));
        }
        out
    }

    pub async fn run(self: Arc<Self>, job: Job) -> Outcome {
        let result = match job.decision {
            Decision::Upload { .. } => self.upload(&job).await,
            Decision::Download { ts, .. } => self.download(&job, ts).await,
            Decision::DeleteLocal { .. } => self.delete_local(&job).await,
            Decision::Conflict => Ok(match self.identical(&job).await {
                Some((mtime, etag)) => Done::Identical { mtime, etag },
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
        let moved = self.progress.file();
        loop {
            moved.again();
            match self.upload_once(job, &moved).await {
                Err(Retry::Changed) if tries < TRIES => {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(250 * u64::from(tries))).await;
                }
                Err(Retry::Changed) => {
                    return Err(format!("{} kept changing while being uploaded; left for the next run", job.key))
                }
                Err(Retry::Fail(e)) => return Err(e),
                Err(Retry::Stale(etag)) => return Ok(Done::Stale { etag }),
                Ok(done) => return Ok(done),
            }
        }
    }

    async fn upload_once(&self, job: &Job, moved: &Arc<FileBytes>) -> Result<Done, Retry> {
        let key = job.key.as_str();
        let path = self.root.join(key);
        let meta = std::fs::metadata(&path).map_err(|e| Retry::Fail(format!("reading {}: {e}", path.display())))?;
        // The mtime before reading, recorded in the index: put_file sends only a version the
        // file held unchanged from its start to its end.
        let mtime = mtime_of(&meta);
        // Write only over the object the plan saw (its ETag), or only where none was: an
        // object another machine wrote since the listing is not overwritten. Stores that
        // ignore the headers are written under the lease, after a HEAD says the same.
        let expected = match self.planned_version(job).await.map_err(Retry::Fail)? {
            Planned::Version(v) => v,
            Planned::Stale(now) => return Err(Retry::Stale(now)),
        };
        self.recheck(job, expected.as_deref()).await.map_err(Retry::Fail)?;
        // Headers only where the store honours them: Ceph RGW 16.2 refuses even a matching
        // If-Match in a versioned bucket (the lease and the HEAD above guard those stores).
        let (if_match, if_none_match) = match (job.remote_lm, self.caps.conditional_put) {
            (_, false) => (None, false),
            (Some(_), true) if expected.is_none() => {
                return Err(Retry::Fail(format!("{key}: S3 names no ETag for it, so it cannot be replaced safely")))
            }
            (Some(_), true) => (expected, false),
            (None, true) => (None, true),
        };
        let mut opts = PutOptions {
            content_type: Some(crate::content_type::detect(&path, key)),
            if_match,
            if_none_match,
            ..Default::default()
        };
        match self.copy_remote(job, &path, meta.len(), &opts).await {
            Copied::Done(etag) => {
                self.progress.add(1, meta.len().saturating_sub(moved.counted()));
                return Ok(Done::Uploaded { etag, mtime, bytes: 0, copied: true });
            }
            Copied::Other(etag) if self.caps.conditional_put => {
                (opts.if_match, opts.if_none_match) = (Some(etag), false)
            }
            Copied::Other(_) | Copied::Not => {}
        }
        let etag = match self.remote.put_file(&self.remote_key(key), &path, meta.len(), &opts, &moved.meter()).await {
            Ok(etag) if etag.as_deref().is_some_and(|t| t.contains('-')) => {
                self.as_listed(key, &path, meta.len(), etag).await
            }
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
        self.progress.add(1, meta.len().saturating_sub(moved.counted()));
        Ok(Done::Uploaded { etag, mtime, bytes: meta.len(), copied: false })
    }

    /// The ETag of the version the plan saw at the key (`None`: it saw no object): from the
    /// listing; else the index's, when S3 had not changed since the last sync; else a HEAD,
    /// trusted only if it shows the size and LastModified the listing showed (issue 10: a
    /// store that lists no ETag got unconditional overwrites).
    ///
    /// Where the plan took S3 for unchanged by LastModified alone, the HEAD's ETag must also be
    /// the one the index records: two writes in one second look alike otherwise, and the upload
    /// would fail its condition on every run (found by the simulation).
    async fn planned_version(&self, job: &Job) -> Result<Planned, String> {
        if job.remote_lm.is_none() || job.etag.is_some() {
            return Ok(Planned::Version(job.etag.clone()));
        }
        let key = self.remote_key(&job.key);
        let now = self.remote.head(&key).await.map_err(|e| e.to_string())?;
        let recorded = job.ri.filter(|e| !e.is_tombstone()).and_then(|e| e.etag);
        match now {
            Some(m) if m.size == job.remote_size && m.lm == job.remote_lm => {
                let unchanged = job.remote.state == super::plan::State::NoChanges;
                match (recorded, m.etag.as_deref().map(super::index::Etag::parse)) {
                    (Some(r), Some(n)) if unchanged && r != n => Ok(Planned::Stale(m.etag)),
                    _ => Ok(Planned::Version(m.etag)),
                }
            }
            _ => Err(format!("{} changed on S3 during the sync; kept both, will decide next run", job.key)),
        }
    }

    /// Under the lease (stores without conditional writes), a HEAD right before a write or
    /// delete: the object must still be the version the plan saw (`None`: no object).
    ///
    /// A HEAD, not the listing again: a listing page fresh within 2 s would answer for a
    /// thousand keys (tried in issue 13: a first sync of 10,000 files on Garage went from
    /// 20,029 requests to 10,035 and ~15% faster), but it is the same view the plan came
    /// from. A listing that lags (a 3-node Garage lists deleted keys, and likely old
    /// versions, through a lagging node) or is misread (issue 9) would pass its own check, and the
    /// unconditional write that follows would replace what the HEAD shows is there.
    async fn recheck(&self, job: &Job, expected: Option<&str>) -> Result<(), String> {
        let Some(lease) = &self.lease else { return Ok(()) };
        lease.check()?;
        let now = self.remote.head(&self.remote_key(&job.key)).await.map_err(|e| e.to_string())?;
        let same = match (&now, job.remote_lm) {
            (None, None) => true,
            (Some(m), Some(lm)) => match (expected, m.etag.as_deref()) {
                (Some(a), Some(b)) => a.trim_matches('"') == b,
                _ => m.size == job.remote_size && m.lm == Some(lm),
            },
            _ => false,
        };
        if same {
            return Ok(());
        }
        Err(format!("{} changed on S3 during the sync; kept both, will decide next run", job.key))
    }

    /// `Some((local mtime, ETag))` when both sides hold the same bytes (same size and same MD5 /
    /// multipart ETag): S4 called every such key a conflict on a first sync.
    pub async fn identical(&self, item: &Job) -> Option<(f64, String)> {
        let (size, mtime) = (item.local_size?, item.local_mtime?);
        item.remote_lm?;
        if size != item.remote_size {
            return None;
        }
        let etag = match &item.etag {
            Some(e) => e.clone(),
            None => self.remote.head(&self.remote_key(&item.key)).await.ok()??.etag?,
        };
        let same = self.holds(&self.root.join(&item.key), size, &etag).await;
        same.then_some((mtime, etag))
    }

    /// Does the file hold the bytes that make `etag` (MD5, or multipart at the usual part
    /// sizes)? Read off the async threads.
    pub async fn holds(&self, path: &Path, size: u64, etag: &str) -> bool {
        let (p, tag, part) = (path.to_path_buf(), etag.to_string(), self.transfer.part_size);
        self.blocking(move || super::content::local_matches_etag(&p, size, &tag, part)).await
    }

    /// The name the store lists our new object by. Some stores list a multipart object by the
    /// MD5 of its bytes, not by the ETag they answered (rclone serve s3): every large upload
    /// then looked replaced by another writer. The listed name is taken only when it is the
    /// file's MD5, so another writer's object is never taken for ours.
    pub async fn as_listed(&self, key: &str, path: &Path, size: u64, answered: Option<String>) -> Option<String> {
        let Ok(Some(m)) = self.remote.head(&self.remote_key(key)).await else { return answered };
        match m.etag {
            Some(listed) if m.size == size && !listed.contains('-') && Some(&listed) != answered.as_ref() => {
                match self.holds(path, size, &listed).await {
                    true => Some(listed),
                    false => answered,
                }
            }
            _ => answered,
        }
    }

    /// The ETag of the object at `key` if it holds exactly the file's bytes.
    async fn ours_already(&self, key: &str, path: &Path, size: u64) -> Option<String> {
        let etag = self.remote.head(&self.remote_key(key)).await.ok()??.etag?;
        self.holds(path, size, &etag).await.then_some(etag)
    }

    async fn download(&self, job: &Job, ts: i64) -> Result<Done, String> {
        if !fsutil::is_safe_key(&job.key) {
            return Err("not a safe relative path; skipped".into());
        }
        let dest = match fsutil::safe_dest(&self.root, &job.key) {
            Err(e) if e.contains("is a file, not a folder") && !job.after_deletes => return Ok(Done::Blocked),
            other => other?,
        };
        // A folder where the file goes: gone already if the plan emptied it (empty folders
        // are not synced), else its files' deletions are still held.
        if std::fs::symlink_metadata(&dest).is_ok_and(|m| m.is_dir()) && std::fs::remove_dir(&dest).is_err() {
            if !job.after_deletes {
                return Ok(Done::Blocked);
            }
            return Err(format!("{} is a folder with files in it; kept it, skipped the file", dest.display()));
        }
        let tmp = fsutil::temp_path(&dest);
        let result = self.download_to(job, ts, &dest, &tmp).await;
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    async fn download_to(&self, job: &Job, ts: i64, dest: &Path, tmp: &Path) -> Result<Done, String> {
        // Pinned to the version planned where its ETag is known (issue 10); otherwise the
        // first answer pins the rest, and the record names what was fetched.
        let moved = self.progress.file();
        let key = self.remote_key(&job.key);
        let copied = self.copy_local(job, tmp).await;
        let meta = match (copied, &job.moved_from) {
            (true, Some(src)) => Meta { size: job.remote_size, etag: Some(src.etag.clone()), lm: job.remote_lm },
            _ => self.remote.get_file(&key, tmp, job.remote_size, job.etag.as_deref(), &moved.meter()).await.map_err(
                |e| match e.is_precondition_failed() {
                    true => format!("{} changed on S3 during the sync; will decide next run", job.key),
                    false => e.to_string(),
                },
            )?,
        };
        // The version's source time, not "now" (S4 bug): syncing back is then a no-op.
        let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(ts.max(0) as u64);
        fsutil::seal(tmp, when).map_err(|e| format!("writing {}: {e}", tmp.display()))?;
        check_unchanged(dest, job.local_mtime)?;
        fsutil::replace(tmp, dest).map_err(|e| format!("renaming into {}: {e}", dest.display()))?;
        self.progress.add(1, meta.size.saturating_sub(moved.counted()));
        let bytes = if copied { 0 } else { meta.size };
        Ok(Done::Downloaded { lm: meta.lm.or(job.remote_lm), etag: meta.etag, bytes, copied, mtime: None })
    }

    async fn delete_local(&self, job: &Job) -> Result<Done, String> {
        if !fsutil::is_safe_key(&job.key) {
            return Err("not a safe relative path; skipped".into());
        }
        let path = self.root.join(&job.key);
        check_unchanged(&path, job.local_mtime)?;
        self.confirm_gone(job).await?;
        // Moved aside, then checked: a file written between the check above and the delete
        // (during the HEAD, found by the simulation) is put back, never deleted.
        let aside = fsutil::aside_path(&path);
        match std::fs::rename(&path, &aside) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("deleting {}: {e}", path.display())),
        }
        if let Err(e) = check_unchanged(&aside, job.local_mtime) {
            let kept = fsutil::put_back(&aside, &path);
            return Err(e.replace(&aside.display().to_string(), &kept.display().to_string()));
        }
        let _ = std::fs::remove_file(&aside);
        remove_empty_parents(&self.root, &path);
        self.progress.add(1, 0);
        Ok(Done::DeletedLocal)
    }

    /// A local file goes because S3 lost it only when S3 confirms it: the remote index records
    /// the deletion (a tombstone), or a HEAD finds nothing. A listing alone is not enough
    /// (issue 9: RGW's listing was misread as empty and the local files were deleted).
    pub async fn confirm_gone(&self, job: &Job) -> Result<(), String> {
        if job.ri.is_none_or(|e| e.is_tombstone()) {
            return Ok(());
        }
        let remote_key = self.remote_key(&job.key);
        if self.remote.head(&remote_key).await.map_err(|e| e.to_string())?.is_none() {
            return Ok(());
        }
        Err(format!(
            "{} is on S3 although the listing did not show it; kept {}. The store's listing cannot be trusted: \
             please report this with `s4 --log-level DEBUG sync`",
            self.remote.uri(&remote_key),
            self.root.join(&job.key).display()
        ))
    }

    /// DeleteObjects for a batch of keys (≤ 1000 a request), each only of the version the
    /// plan saw (issue 10: an unconditional delete removed another machine's newer edit):
    /// `<ETag>` per object where the store honours it, else a HEAD under the lease first.
    pub async fn delete_remote(self: Arc<Self>, jobs: Vec<Job>) -> Vec<Outcome> {
        let mut items = Vec::with_capacity(jobs.len());
        let mut refused = Vec::new();
        for job in jobs {
            let checked = match self.planned_version(&job).await {
                Ok(Planned::Stale(etag)) => {
                    refused.push(Outcome { job, result: Ok(Done::Stale { etag }) });
                    continue;
                }
                Ok(Planned::Version(tag)) if !self.caps.conditional_delete => {
                    self.recheck(&job, tag.as_deref()).await.map(|()| None)
                }
                Ok(Planned::Version(tag)) => Ok(tag),
                Err(e) => Err(e),
            };
            match checked {
                Ok(tag) => items.push((job, tag)),
                Err(e) => refused.push(Outcome { job, result: Err(e) }),
            }
        }
        let (jobs, items): (Vec<Job>, Vec<(String, Option<String>)>) =
            items.into_iter().map(|(j, tag)| (self.remote_key(&j.key), tag, j)).map(|(k, t, j)| (j, (k, t))).unzip();
        // The lease, once more right before the batch goes (the HEADs above took a while).
        if let Some(Err(e)) = self.lease.as_ref().map(|l| l.check()) {
            let mut outcomes: Vec<Outcome> =
                jobs.into_iter().map(|job| Outcome { job, result: Err(e.clone()) }).collect();
            outcomes.extend(refused);
            return outcomes;
        }
        let mut outcomes = self.delete_batch(jobs, &items).await;
        outcomes.extend(refused);
        outcomes
    }

    async fn delete_batch(&self, jobs: Vec<Job>, items: &[(String, Option<String>)]) -> Vec<Outcome> {
        if jobs.is_empty() {
            return Vec::new();
        }
        match self.remote.delete_many(items).await {
            Ok(failed) => {
                let failed: std::collections::HashMap<String, String> =
                    failed.into_iter().map(|(k, e)| (k, e.to_string())).collect();
                self.progress.add(jobs.len() as u64, 0);
                jobs.into_iter()
                    .map(|job| {
                        let result = match failed.get(&self.remote_key(&job.key)) {
                            Some(e) if e.contains("PreconditionFailed") => {
                                Err(format!("{} changed on S3 during the sync; kept it, will decide next run", job.key))
                            }
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

/// Folders left empty by a file that went go too, as they came (with their files): a folder
/// that becomes a file elsewhere must not stay in its way.
pub fn remove_empty_parents(root: &Path, path: &Path) {
    let mut dir = path.parent();
    while let Some(d) = dir.filter(|d| *d != root && d.starts_with(root)) {
        if std::fs::remove_dir(d).is_err() {
            break;
        }
        dir = d.parent();
    }
}

/// Is the local file still as the plan saw it (`None`: absent)? If not, we keep it.
pub fn check_unchanged(path: &Path, expected: Option<f64>) -> Result<(), String> {
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

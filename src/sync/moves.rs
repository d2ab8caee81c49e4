//! Moves and renames (issue 13). A file that left one path and appeared at another with the
//! same bytes, in one sync, is copied from where its bytes already are instead of being sent
//! again: on S3 a server-side copy, on this machine the old file renamed, as the old path's
//! deletion ([`super::renames`]; a local copy where that cannot be). The old path's deletion
//! goes as planned (conditional, like any deletion) and counts as no deletion for the guards.
//! Content decides (size, then MD5 / ETag), never the names; anything that does not check out
//! falls back to the plain transfer, so a move can cost bytes but never a version.
//!
//! New keys wait for the end of the main pass (the old path's deletion may come later in key
//! order), except on a first sync, where nothing can have moved, and beyond [`HOLD_AT_MOST`],
//! where memory matters more than bytes.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use super::exec::{Ctx, Job};
use super::held::Held;
use super::index::{Entry, Etag};
use super::plan::Decision;
use super::state::Indexes;
use super::{interrupted, Run};
use crate::s3::PutOptions;

/// New keys held for pairing at most; older ones go as plain transfers.
pub const HOLD_AT_MOST: usize = 50_000;

/// Where a move's bytes already are: the old key, the version it names, and (for a local
/// copy) the old file's mtime as the plan saw it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Source {
    pub key: String,
    pub etag: String,
    pub mtime: Option<f64>,
}

/// A transfer to a key the receiving side has nothing at, recorded or real: what a move
/// makes on that side.
pub fn is_fresh(job: &Job) -> bool {
    let unrecorded = |e: Option<Entry>| e.is_none_or(|e| e.is_tombstone());
    match job.decision {
        Decision::Upload { .. } => unrecorded(job.ri) && job.remote_lm.is_none(),
        Decision::Download { .. } => unrecorded(job.li) && job.local_mtime.is_none(),
        _ => false,
    }
}

/// The ETag text naming the version the plan saw of a job's object: listed; else recorded,
/// when the record is of the listed version (its LastModified): an object another tool
/// wrote since is not taken for the recorded one (review of the moves: a stale record paired
/// a download with an old file of other bytes).
fn seen_etag(job: &Job) -> Option<String> {
    if job.etag.is_some() {
        return job.etag.clone();
    }
    let e = job.ri.filter(|e| !e.is_tombstone())?;
    let lm = job.remote_lm? as f64;
    (e.local_timestamp == Some(lm)).then(|| e.etag?.header()).flatten()
}

/// The files' MD5s as ETags (`None`: unreadable), in order, read on every core: one at a
/// time left the other core idle while a moved gigabyte was hashed (issue 13: 1,000 files of
/// 1 MiB, on both machines of a move).
async fn md5_each(ctx: &Ctx, files: &[(PathBuf, u64)]) -> Vec<Option<Etag>> {
    let read = |(path, size): &(PathBuf, u64)| {
        let (path, size) = (path.clone(), *size);
        move || crate::fsutil::md5_range(&path, 0, size).ok().map(|d| Etag::parse(&hex::encode(d)))
    };
    ctx.blocking_each(files.iter().map(read).collect()).await
}

/// Multipart candidates of one size checked per new key, at most (each costs a read).
const MULTIPART_TRIES: usize = 4;

/// The first candidate not paired yet, else the first: a duplicate prefers another old key
/// of the same bytes, so each copy of a moved set of duplicates is a move.
fn choose<'a>(cands: impl Iterator<Item = &'a String> + Clone, used: &HashSet<String>) -> Option<&'a String> {
    cands.clone().find(|k| !used.contains(*k)).or_else(|| cands.clone().next())
}

/// Old keys by the bytes they hold: plain ETags by (size, MD5), looked up at once; multipart
/// ones by size, checked one by one.
#[derive(Default)]
struct ByContent {
    plain: HashMap<(u64, Etag), Vec<String>>,
    multipart: HashMap<u64, Vec<(String, String)>>,
}

/// Pairs the held new keys with the held deletions holding the same bytes, and sets their
/// `moved_from`. Each file is read at most once; nothing is read where no size matches.
pub async fn pair(ctx: &Ctx, fresh: &mut [Job], held: &[Job]) {
    let mut used = HashSet::new();
    // Uploads: S3 still holds the old key's version; the new local file must hold its bytes.
    let mut on_s3 = ByContent::default();
    // Downloads: this machine still holds the old file; it must hold the new object's bytes.
    // Old files of a size are read (once) when a new key of that size first needs them.
    let mut here: HashMap<u64, Vec<&Job>> = HashMap::new();
    let mut here_read: HashMap<u64, HashMap<Etag, Vec<String>>> = HashMap::new();
    // ... unless this machine's index says what they hold: the version it synced, at the mtime
    // the file still has (what the plan itself trusts to call a file unchanged). A moved
    // gigabyte was read whole to learn what the index knew (issue 13: 77% of the other
    // machine's time in MD5).
    let mut here_recorded: HashMap<(u64, Etag), Vec<String>> = HashMap::new();
    for job in held {
        match job.decision {
            Decision::DeleteRemote { .. } => match seen_etag(job) {
                Some(tag) if tag.contains('-') => {
                    on_s3.multipart.entry(job.remote_size).or_default().push((job.key.clone(), tag))
                }
                Some(tag) => on_s3.plain.entry((job.remote_size, Etag::parse(&tag))).or_default().push(job.key.clone()),
                None => {}
            },
            Decision::DeleteLocal { .. } => {
                if let (Some(size), Some(mtime)) = (job.local_size, job.local_mtime) {
                    here.entry(size).or_default().push(job);
                    let synced = job.li.filter(|e| !e.is_tombstone() && e.local_timestamp == Some(mtime));
                    if let Some(etag) = synced.and_then(|e| e.etag) {
                        here_recorded.entry((size, etag)).or_default().push(job.key.clone());
                    }
                }
            }
            _ => {}
        }
    }
    if on_s3.plain.is_empty() && on_s3.multipart.is_empty() && here.is_empty() {
        return;
    }
    let plain_sizes: HashSet<u64> = on_s3.plain.keys().map(|(size, _)| *size).collect();
    let mtimes: HashMap<&str, Option<f64>> = held.iter().map(|j| (j.key.as_str(), j.local_mtime)).collect();
    // New files of a size some old key's plain ETag has: all read up front, in parallel.
    let (reads, files): (Vec<usize>, Vec<(PathBuf, u64)>) = (fresh.iter().enumerate())
        .filter(|(_, j)| matches!(j.decision, Decision::Upload { .. }))
        .filter_map(|(i, j)| Some((i, j.local_size.filter(|s| plain_sizes.contains(s))?, &j.key)))
        .map(|(i, size, key)| (i, (ctx.root.join(key), size)))
        .unzip();
    let md5s: HashMap<usize, Etag> =
        reads.into_iter().zip(md5_each(ctx, &files).await).filter_map(|(i, md5)| Some((i, md5?))).collect();
    for (i, job) in fresh.iter_mut().enumerate() {
        // How the bytes were told: read, or recorded (the debug log says which).
        let mut how = "same bytes";
        let found: Option<(String, String)> = match job.decision {
            Decision::Upload { .. } => {
                let Some(size) = job.local_size else { continue };
                let path = ctx.root.join(&job.key);
                let mut found = None;
                if let Some(md5) = md5s.get(&i) {
                    let cands = on_s3.plain.get(&(size, *md5)).into_iter().flatten();
                    found = choose(cands, &used).map(|k| (k.clone(), md5.to_string()));
                }
                for (key, tag) in on_s3.multipart.get(&size).into_iter().flatten().take(MULTIPART_TRIES) {
                    if found.is_none() && ctx.holds(&path, size, tag).await {
                        found = Some((key.clone(), tag.clone()));
                    }
                }
                found
            }
            Decision::Download { .. } => {
                let Some(tag) = seen_etag(job) else { continue };
                let size = job.remote_size;
                let Some(olds) = here.get(&size) else { continue };
                let recorded = here_recorded.get(&(size, Etag::parse(&tag))).into_iter().flatten();
                if let Some(key) = choose(recorded, &used).filter(|k| !used.contains(*k)) {
                    how = "the bytes this machine's index records";
                    Some((key.clone(), tag.clone()))
                } else if tag.contains('-') {
                    let mut found = None;
                    for old in olds.iter().take(MULTIPART_TRIES) {
                        if found.is_none() && ctx.holds(&ctx.root.join(&old.key), size, &tag).await {
                            found = Some((old.key.clone(), tag.clone()));
                        }
                    }
                    found
                } else {
                    if let std::collections::hash_map::Entry::Vacant(slot) = here_read.entry(size) {
                        let files: Vec<(PathBuf, u64)> = olds.iter().map(|o| (ctx.root.join(&o.key), size)).collect();
                        let mut by_md5: HashMap<Etag, Vec<String>> = HashMap::new();
                        for (old, md5) in olds.iter().zip(md5_each(ctx, &files).await) {
                            if let Some(md5) = md5 {
                                by_md5.entry(md5).or_default().push(old.key.clone());
                            }
                        }
                        slot.insert(by_md5);
                    }
                    let cands = here_read.get(&size).and_then(|m| m.get(&Etag::parse(&tag))).into_iter().flatten();
                    choose(cands, &used).map(|k| (k.clone(), tag.clone()))
                }
            }
            _ => None,
        };
        if let Some((key, etag)) = found {
            crate::debug!("{}: moved from {key} ({how})", job.key);
            let mtime = match job.decision {
                Decision::Download { .. } => mtimes.get(key.as_str()).copied().flatten(),
                _ => None,
            };
            used.insert(key.clone());
            job.moved_from = Some(Source { key, etag, mtime });
        }
    }
}

/// What a server-side copy came to.
pub enum Copied {
    /// The new object holds the file's bytes: its ETag.
    Done(Option<String>),
    /// No copy made: send the file.
    Not,
    /// A copy landed holding other bytes (a store that ignored the source's condition copied
    /// a newer version): send the file over it, only over that one.
    Other(String),
}

impl Ctx {
    /// The upload of a moved file as a copy of its old key on S3, where that is as safe as the
    /// upload: under the lease (after a HEAD of both keys) or where the store refuses a copy
    /// onto an existing object (`If-None-Match`, probed). The file must still be as planned.
    pub async fn copy_remote(&self, job: &Job, path: &Path, size: u64, opts: &PutOptions) -> Copied {
        let Some(src) = &job.moved_from else { return Copied::Not };
        if self.lease.is_none() && !self.caps.conditional_copy {
            return Copied::Not;
        }
        let src_key = self.remote_key(&src.key);
        if self.lease.is_some() {
            match self.remote.head(&src_key).await {
                Ok(Some(m)) if m.etag.as_deref().is_some_and(|t| Etag::parse(t) == Etag::parse(&src.etag)) => {}
                _ => return Copied::Not,
            }
        }
        let still = |p: &Path| {
            std::fs::metadata(p).is_ok_and(|m| m.len() == size && Some(super::scan::mtime_of(&m)) == job.local_mtime)
        };
        if !still(path) {
            return Copied::Not;
        }
        let dst_key = self.remote_key(&job.key);
        let tag = match self.remote.copy(&src_key, &dst_key, size, Some(&src.etag), opts).await {
            Ok(tag) if tag.as_deref().is_none_or(|t| t.contains('-')) => {
                self.as_listed(&job.key, path, size, tag).await
            }
            Ok(tag) => tag,
            Err(e) => {
                crate::debug!("{}: server-side copy from {} failed ({e}); uploading instead", job.key, src.key);
                return Copied::Not;
            }
        };
        // The new object must hold the file's bytes, whatever the store did with the source's
        // condition: the same ETag as the version paired (whose bytes were checked), or one the
        // file's bytes make. A copy whose ETag cannot be told is sent again as an upload, which
        // finds the copy (If-None-Match) and checks it by content.
        match tag {
            Some(t) if Etag::parse(&t) == Etag::parse(&src.etag) => Copied::Done(Some(t)),
            Some(t) => match self.holds(path, size, &t).await {
                true => Copied::Done(Some(t)),
                false => Copied::Other(t),
            },
            None => Copied::Not,
        }
    }

    /// The download of a moved file as a copy of the old local file into `tmp`, the bytes the
    /// pairing checked. `false`: not copied (then nothing is left at `tmp`).
    pub async fn copy_local(&self, job: &Job, tmp: &Path) -> bool {
        let Some(src) = &job.moved_from else { return false };
        let from = self.root.join(&src.key);
        let size = job.remote_size;
        let (mtime, to) = (src.mtime, tmp.to_path_buf());
        // The pairing read these bytes (their MD5 made the new object's ETag); the file held
        // still since if its size and mtime did, before and after the copy (the kernel's
        // copy_file_range: not read again here, which cost a third of a moved gigabyte).
        let still = move |p: &Path| {
            std::fs::metadata(p).is_ok_and(|m| m.len() == size && Some(super::scan::mtime_of(&m)) == mtime)
        };
        if !still(&from) || !crate::fsutil::is_safe_key(&src.key) {
            return false;
        }
        let copied = self.blocking(move || std::fs::copy(&from, &to).is_ok_and(|n| n == size) && still(&from)).await;
        if !copied {
            let _ = std::fs::remove_file(tmp);
        }
        copied
    }
}

impl Run<'_> {
    /// Holds a new key for pairing with the deletions (see [`moves`]); gives back the job to
    /// start now: this one, or the oldest held once too many are.
    pub(super) fn hold_fresh(&mut self, job: Job) -> Option<Job> {
        let Some(fresh) = self.fresh.as_mut().filter(|_| is_fresh(&job)) else { return Some(job) };
        fresh.push_back(job);
        (fresh.len() > HOLD_AT_MOST).then(|| fresh.pop_front()).flatten()
    }

    /// The new keys held through the main pass, paired with the held deletions of the same
    /// bytes, then started (before the deletions, which the copies read from), or held for
    /// the deletion they pair with, to be its rename (see [`renames`]).
    pub(super) async fn release_fresh(&mut self, idx: &mut Indexes) -> Result<(), String> {
        let Some(fresh) = self.fresh.take() else { return Ok(()) };
        if interrupted() {
            return Ok(());
        }
        let mut fresh = Vec::from(fresh);
        let held = self.held.as_ref().map(Held::in_memory).unwrap_or_default();
        pair(&self.ctx, &mut fresh, held).await;
        // A dry run carries nothing out: its pairings are its moves. A real run counts a move
        // once its new key holds the bytes (see `apply`), else the deletion counts as one,
        // unless the download is held to be the deletion's rename (see `renames`).
        if self.opts.dry_run {
            self.moved.extend(fresh.iter().filter_map(|j| Some(j.moved_from.as_ref()?.key.clone())));
        }
        for job in fresh {
            if let Some(job) = self.hold_rename(job) {
                self.dispatch(job, idx).await?;
            }
        }
        Ok(())
    }
}

//! Moves and renames (issue 13). A file that left one path and appeared at another with the
//! same bytes, in one sync, is copied from where its bytes already are instead of being sent
//! again: on S3 a server-side copy, on this machine a local copy. The old path's deletion then
//! goes as planned (conditional, like any deletion) and counts as no deletion for the guards.
//! Content decides (size, then MD5 / ETag), never the names; anything that does not check out
//! falls back to the plain transfer, so a move can cost bytes but never a version.
//!
//! New keys wait for the end of the main pass (the old path's deletion may come later in key
//! order), except on a first sync, where nothing can have moved, and beyond [`HOLD_AT_MOST`],
//! where memory matters more than bytes.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use super::exec::{Ctx, Job};
use super::index::{Entry, Etag};
use super::plan::Decision;
use crate::s3::PutOptions;

/// New keys held for pairing at most; older ones go as plain transfers.
pub const HOLD_AT_MOST: usize = 50_000;

/// Where a move's bytes already are: the old key, the version it names, and (for a local
/// copy) the old file's mtime as the plan saw it.
#[derive(Debug, Clone, PartialEq)]
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

/// The ETag text the plan saw for a job's object: listed, else recorded.
fn seen_etag(job: &Job) -> Option<String> {
    job.etag.clone().or_else(|| job.ri.filter(|e| !e.is_tombstone()).and_then(|e| e.etag?.header()))
}

/// A file's MD5, once computed (`Some(None)`: it could not be read).
type Digest = Option<Option<Etag>>;

/// Does the file hold the bytes that make `etag`? Plain ETags compare with one MD5, computed
/// once per file and kept in `plain`; multipart ones are checked against the usual part sizes.
async fn holds(ctx: &Ctx, path: &Path, size: u64, etag: &str, plain: &mut Digest) -> bool {
    let wanted = Etag::parse(etag);
    if !etag.contains('-') {
        if plain.is_none() {
            let p = path.to_path_buf();
            let digest = ctx.blocking(move || crate::fsutil::md5_range(&p, 0, size).ok()).await;
            *plain = Some(digest.map(|d| Etag::parse(&hex::encode(d))));
        }
        return *plain == Some(Some(wanted));
    }
    let (p, tag, part) = (path.to_path_buf(), etag.to_string(), ctx.transfer.part_size);
    ctx.blocking(move || super::content::local_matches_etag(&p, size, &tag, part)).await
}

/// Multipart candidates of one size checked per new key, at most (each costs a read).
const MULTIPART_TRIES: usize = 4;

/// Pairs the held new keys with the held deletions holding the same bytes: sets their
/// `moved_from`, and returns the old keys whose bytes now go to a new one.
pub async fn pair(ctx: &Ctx, fresh: &mut [Job], held: &[Job]) -> Vec<String> {
    // Old keys paired so far: a duplicate prefers another old key of the same bytes, so each
    // copy of a moved duplicate counts as moved.
    let mut used = HashSet::new();
    // Uploads: S3 still holds the old key's version; the new local file must hold its bytes.
    let mut on_s3: HashMap<u64, Vec<(String, String)>> = HashMap::new();
    // Downloads: this machine still holds the old file; it must hold the new object's bytes.
    let mut here: HashMap<u64, Vec<(usize, Digest)>> = HashMap::new();
    for (i, job) in held.iter().enumerate() {
        match job.decision {
            Decision::DeleteRemote { .. } => {
                if let Some(tag) = seen_etag(job) {
                    on_s3.entry(job.remote_size).or_default().push((job.key.clone(), tag));
                }
            }
            Decision::DeleteLocal { .. } => {
                if let (Some(size), Some(_)) = (job.local_size, job.local_mtime) {
                    here.entry(size).or_default().push((i, None));
                }
            }
            _ => {}
        }
    }
    if on_s3.is_empty() && here.is_empty() {
        return Vec::new();
    }
    for job in fresh.iter_mut() {
        let found = match job.decision {
            Decision::Upload { .. } => {
                let Some(size) = job.local_size else { continue };
                let Some(cands) = on_s3.get(&size) else { continue };
                let path = ctx.root.join(&job.key);
                let (mut plain, mut tries, mut found) = (None, 0, None);
                for (key, tag) in cands {
                    tries += usize::from(tag.contains('-'));
                    if tries > MULTIPART_TRIES {
                        break;
                    }
                    if holds(ctx, &path, size, tag, &mut plain).await {
                        found = Some(Source { key: key.clone(), etag: tag.clone(), mtime: None });
                        if !used.contains(key) {
                            break;
                        }
                    }
                }
                found
            }
            Decision::Download { .. } => {
                let Some(tag) = seen_etag(job) else { continue };
                let Some(cands) = here.get_mut(&job.remote_size) else { continue };
                let mut found = None;
                let tries = if tag.contains('-') { MULTIPART_TRIES } else { usize::MAX };
                for (i, plain) in cands.iter_mut().take(tries) {
                    let old = &held[*i];
                    if holds(ctx, &ctx.root.join(&old.key), job.remote_size, &tag, plain).await {
                        found = Some(Source { key: old.key.clone(), etag: tag.clone(), mtime: old.local_mtime });
                        if !used.contains(&old.key) {
                            break;
                        }
                    }
                }
                found
            }
            _ => None,
        };
        if let Some(src) = found {
            crate::debug!("{}: moved from {} (same bytes)", job.key, src.key);
            used.insert(src.key.clone());
            job.moved_from = Some(src);
        }
    }
    used.into_iter().collect()
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
        match self.remote.copy(&src_key, &dst_key, size, Some(&src.etag), opts).await {
            Ok(tag) if tag.as_deref().is_none_or(|t| t.contains('-')) => {
                Copied::Done(self.as_listed(&job.key, path, size, tag).await)
            }
            Ok(tag) => match tag {
                Some(t) if !t.contains('-') && !src.etag.contains('-') && Etag::parse(&t) != Etag::parse(&src.etag) => {
                    Copied::Other(t)
                }
                tag => Copied::Done(tag),
            },
            Err(e) => {
                crate::debug!("{}: server-side copy from {} failed ({e}); uploading instead", job.key, src.key);
                Copied::Not
            }
        }
    }

    /// The download of a moved file as a copy of the old local file into `tmp`, checked to
    /// hold the new object's bytes. `false`: not copied (then nothing is left at `tmp`).
    pub async fn copy_local(&self, job: &Job, tmp: &Path) -> bool {
        let Some(src) = &job.moved_from else { return false };
        let from = self.root.join(&src.key);
        let unchanged = std::fs::metadata(&from).is_ok_and(|m| Some(super::scan::mtime_of(&m)) == src.mtime);
        if !unchanged || !crate::fsutil::is_safe_key(&src.key) {
            return false;
        }
        let (to, size, tag, part) = (tmp.to_path_buf(), job.remote_size, src.etag.clone(), self.transfer.part_size);
        let copied = self
            .blocking(move || {
                std::fs::copy(&from, &to).is_ok() && super::content::local_matches_etag(&to, size, &tag, part)
            })
            .await;
        if !copied {
            let _ = std::fs::remove_file(tmp);
        }
        copied
    }
}

//! The other machine's half of a move (issue 13): the old file renamed to the new key's path,
//! where its bytes already are, instead of copied there. The rename is the old path's
//! deletion, so it waits for the guards like every deletion: [`moves::pair`] matches a new
//! key's download with the deletion of an old file holding its bytes, the download is held
//! (announced, not started), and when the guards release the deletion both go as one task.
//!
//! Why this cannot lose a file: the old path's file is moved aside (one rename, so a writer
//! that opens the old path afterwards makes a new file, kept) and checked as the plan saw it
//! (size, mtime), exactly as a plain local deletion is; it then either lands at the new
//! path, which must still be empty (a no-replace move), or goes back where it was with its
//! own mtime. Anything that does not check out falls back to the order the plan had without
//! renames (the new file copied or downloaded first, the old one deleted after, and only if
//! that worked). The guards count a held rename as no deletion: it either moves the bytes
//! to the new path or deletes nothing.
//!
//! [`moves::pair`]: super::moves::pair

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use super::exec::{check_unchanged, remove_empty_parents, Ctx, Done, Job, Outcome};
use super::plan::Decision;
use super::state::Indexes;
use super::Run;
use crate::fsutil;

/// Downloads of moved files held for the deletion of the old file they pair with, by the
/// old file's key.
pub type Held = HashMap<String, Job>;

/// What renaming the old file came to.
enum Renamed {
    /// The old file is at the new path, sealed as a download would be.
    Done,
    /// Nothing was touched (or all was put back as it was): the plain order.
    Not,
    /// The old file changed since the plan: kept where it is; the new key is downloaded.
    Kept(String),
    /// The old file was gone already: nothing to delete; the new key is downloaded.
    Gone,
}

impl Run<'_> {
    /// Holds a paired download for the deletion of its old file; gives it back if it does not
    /// go as a rename (a dry run, or a second new key of the same old file: that one copies,
    /// before the deletions, while the old file is still there).
    pub(super) fn hold_rename(&mut self, job: Job) -> Option<Job> {
        let stays = self.opts.dry_run || job.after_deletes || !matches!(job.decision, Decision::Download { .. });
        let Some(src) = job.moved_from.as_ref().filter(|s| !stays && !self.renames.contains_key(&s.key)) else {
            return Some(job);
        };
        let old = src.key.clone();
        if self.announce(&job) {
            self.renames.insert(old, job);
        }
        None
    }

    /// A released deletion: with the download held for its file, the rename; else as planned.
    pub(super) async fn release_one(&mut self, job: Job, idx: &mut Indexes) -> Result<(), String> {
        let paired = match job.decision {
            Decision::DeleteLocal { .. } => self.renames.remove(&job.key),
            _ => None,
        };
        let Some(download) = paired else { return self.dispatch(job, idx).await };
        if !self.announce(&job) {
            return self.start(download, idx).await;
        }
        self.room(idx).await?;
        let ctx = self.ctx.clone();
        self.set.spawn(ctx.move_local(job, download));
        self.started(idx).await
    }

    /// The held downloads whose deletion did not come (a guard stopped the deletions, an
    /// interrupted run): started as plain downloads, copying from the old file, still there.
    pub(super) async fn release_renames(&mut self, idx: &mut Indexes) -> Result<(), String> {
        for (_, job) in std::mem::take(&mut self.renames) {
            self.start(job, idx).await?;
        }
        Ok(())
    }
}

impl Ctx {
    /// The deletion of a moved file's old path and the download of its new one, as one
    /// rename where it checks out (see the module's comment); the two outcomes, deletion first.
    pub async fn move_local(self: Arc<Self>, del: Job, download: Job) -> Vec<Outcome> {
        let Decision::Download { ts, .. } = download.decision else {
            return self.plain_order(del, download).await;
        };
        if let Err(e) = self.confirm_gone(&del).await {
            return vec![Outcome { job: del, result: Err(e) }, self.run(download).await];
        }
        let (root, d, l) = (self.root.clone(), del.clone(), download.clone());
        match self.blocking(move || rename_moved(&root, &d, &l, ts)).await {
            Renamed::Done => {
                self.progress.add(1, download.remote_size);
                self.progress.add(1, 0);
                let etag = download.moved_from.as_ref().map(|s| s.etag.clone());
                let result = Ok(Done::Downloaded { lm: download.remote_lm, etag, bytes: 0, copied: true });
                vec![Outcome { job: del, result: Ok(Done::DeletedLocal) }, Outcome { job: download, result }]
            }
            Renamed::Not => self.plain_order(del, download).await,
            Renamed::Kept(e) => {
                vec![Outcome { job: del, result: Err(e) }, self.run(download).await]
            }
            Renamed::Gone => {
                self.progress.add(1, 0);
                vec![Outcome { job: del, result: Ok(Done::DeletedLocal) }, self.run(download).await]
            }
        }
    }

    /// The order without renames: the new file first (a copy of the old one, else a GET),
    /// then the old one's deletion, only if the new one arrived (or waits for the deletions).
    async fn plain_order(self: Arc<Self>, del: Job, download: Job) -> Vec<Outcome> {
        let got = self.clone().run(download).await;
        let gone = match got.result {
            Ok(Done::Downloaded { .. } | Done::Blocked) => self.run(del).await,
            _ => {
                let why = format!("kept, as its move to {} did not finish; will decide next run", got.job.key);
                Outcome { result: Err(format!("{}: {why}", self.root.join(&del.key).display())), job: del }
            }
        };
        vec![gone, got]
    }
}

/// The old file of `del` moved to `download`'s path, sealed with the version's time; the
/// blocking part of [`Ctx::move_local`].
fn rename_moved(root: &Path, del: &Job, download: &Job, ts: i64) -> Renamed {
    let Some(src) = download.moved_from.as_ref().filter(|s| s.key == del.key && s.mtime == del.local_mtime) else {
        return Renamed::Not;
    };
    if !fsutil::is_safe_key(&del.key) || !fsutil::is_safe_key(&download.key) || download.local_mtime.is_some() {
        return Renamed::Not;
    }
    let old = root.join(&del.key);
    if let Err(e) = check_unchanged(&old, del.local_mtime) {
        return Renamed::Kept(e);
    }
    // Moved aside first, as a plain deletion does: a writer that opens the old path from now
    // on makes a new file there (kept), and the new path may be where the old file's folder
    // was (`x` became `x/in.txt`).
    let aside = fsutil::temp_path(&old);
    match std::fs::rename(&old, &aside) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Renamed::Gone,
        Err(_) => return Renamed::Not,
    }
    let put_back = |outcome: Renamed| {
        // Only if nothing took the old path meanwhile; else the bytes stay at the temp name,
        // which a later run cleans (they are the new key's, on S3).
        let _ = fsutil::place_new(&aside, &old);
        outcome
    };
    let Ok(meta) = std::fs::symlink_metadata(&aside) else { return put_back(Renamed::Not) };
    // The bytes the pairing read (their MD5 is the new object's ETag), if they held still.
    if !meta.is_file() || meta.len() != download.remote_size || Some(super::scan::mtime_of(&meta)) != src.mtime {
        let why = format!("{} changed during the sync; kept it, will decide next run", old.display());
        return put_back(Renamed::Kept(why));
    }
    let Ok(dest) = fsutil::safe_dest(root, &download.key) else { return put_back(Renamed::Not) };
    let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(ts.max(0) as u64);
    if fsutil::seal(&aside, when).is_ok() && fsutil::place_new(&aside, &dest).is_ok() {
        remove_empty_parents(root, &old);
        return Renamed::Done;
    }
    // Back as it was, its own mtime with it (the next sync must see the old file unchanged).
    if let Ok(was) = meta.modified() {
        let _ = std::fs::File::open(&aside).and_then(|f| f.set_modified(was));
    }
    put_back(Renamed::Not)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::moves::Source;
    use crate::sync::plan::{local_side, side};
    use std::time::{Duration, UNIX_EPOCH};

    const TS: i64 = 1_700_000_000;

    /// `old` (holding `body`, mtime 1,000 s) deleted and `new` downloaded, paired as a move.
    fn pair(old: &str, new: &str, body: &str) -> (Job, Job) {
        let job = |key: &str, decision, local_mtime: Option<f64>| Job {
            key: key.into(),
            decision,
            local_mtime,
            remote_size: body.len() as u64,
            remote_lm: Some(TS),
            li: None,
            ri: None,
            local: local_side(None, local_mtime, None),
            remote: side(None, Some(TS as f64), None),
            local_size: local_mtime.map(|_| body.len() as u64),
            etag: None,
            after_deletes: false,
            moved_from: None,
        };
        let del = job(old, Decision::DeleteLocal { ts: TS }, Some(1000.0));
        let mut download = job(new, Decision::Download { kind: crate::sync::plan::Kind::Create, ts: TS }, None);
        download.moved_from = Some(Source { key: old.into(), etag: "e".into(), mtime: Some(1000.0) });
        (del, download)
    }

    fn write(root: &Path, key: &str, body: &str, mtime: u64) {
        let path = root.join(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, body).unwrap();
        let file = std::fs::File::options().write(true).open(&path).unwrap();
        file.set_modified(UNIX_EPOCH + Duration::from_secs(mtime)).unwrap();
    }

    fn mtime(root: &Path, key: &str) -> u64 {
        let m = std::fs::metadata(root.join(key)).unwrap().modified().unwrap();
        m.duration_since(UNIX_EPOCH).unwrap().as_secs()
    }

    fn names(root: &Path) -> Vec<String> {
        let mut out: Vec<String> =
            walk(root).into_iter().map(|p| p.strip_prefix(root).unwrap().display().to_string()).collect();
        out.sort();
        out
    }

    fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            match p.is_dir() {
                true => out.extend(walk(&p)),
                false => out.push(p),
            }
        }
        out
    }

    #[test]
    fn a_moved_file_is_renamed_into_a_new_folder_and_its_old_folder_goes() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "photos/a.jpg", "bytes", 1000);
        let (del, download) = pair("photos/a.jpg", "archive/photos/a.jpg", "bytes");
        assert!(matches!(rename_moved(root, &del, &download, TS), Renamed::Done));
        assert_eq!(names(root), ["archive/photos/a.jpg"]);
        assert_eq!(mtime(root, "archive/photos/a.jpg"), TS as u64);
        assert!(!root.join("photos").exists());
    }

    #[test]
    fn a_file_that_became_a_folder_holding_it_is_renamed_into_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "x", "bytes", 1000);
        let (del, download) = pair("x", "x/in.txt", "bytes");
        assert!(matches!(rename_moved(root, &del, &download, TS), Renamed::Done));
        assert_eq!(names(root), ["x/in.txt"]);
    }

    #[test]
    fn a_read_only_moved_file_is_renamed_too() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "a", "bytes", 1000);
        std::fs::set_permissions(root.join("a"), std::fs::Permissions::from_mode(0o444)).unwrap();
        let (del, download) = pair("a", "b", "bytes");
        assert!(matches!(rename_moved(root, &del, &download, TS), Renamed::Done));
        assert_eq!((names(root), mtime(root, "b")), (vec!["b".to_string()], TS as u64));
    }

    #[test]
    fn an_old_file_changed_since_the_plan_is_kept_where_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "a", "edited", 2000);
        let (del, download) = pair("a", "b", "bytes");
        assert!(matches!(rename_moved(root, &del, &download, TS), Renamed::Kept(_)));
        // Its mtime as planned, another size.
        write(root, "a", "bytes!", 1000);
        assert!(matches!(rename_moved(root, &del, &download, TS), Renamed::Kept(_)));
        assert_eq!((names(root), mtime(root, "a")), (vec!["a".to_string()], 1000));
    }

    #[test]
    fn a_file_at_the_new_path_stops_the_rename_and_the_old_file_goes_back_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "a", "bytes", 1000);
        write(root, "b", "someone's new file", 3000);
        let (del, download) = pair("a", "b", "bytes");
        assert!(matches!(rename_moved(root, &del, &download, TS), Renamed::Not));
        assert_eq!(names(root), ["a", "b"]);
        assert_eq!((mtime(root, "a"), std::fs::read_to_string(root.join("a")).unwrap()), (1000, "bytes".into()));
        assert_eq!(std::fs::read_to_string(root.join("b")).unwrap(), "someone's new file");
    }

    #[test]
    fn an_old_file_gone_already_is_not_looked_for() {
        let dir = tempfile::tempdir().unwrap();
        let (del, download) = pair("a", "b", "bytes");
        assert!(matches!(rename_moved(dir.path(), &del, &download, TS), Renamed::Gone));
        assert!(names(dir.path()).is_empty());
    }
}

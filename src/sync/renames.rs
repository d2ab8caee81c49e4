//! The other machine's half of a move (issue 13): the old file renamed to the new key's path,
//! where its bytes already are, instead of copied there. The rename is the old path's
//! deletion, so it waits for the guards like every deletion: [`moves::pair`] matches a new
//! key's download with the deletion of an old file holding its bytes, the download is held
//! (announced, not started), and when the guards release the deletion both go as one task.
//!
//! The old file is moved aside (one rename: a writer that opens the old path from then on
//! makes a new file there, kept) into the deepest folder the two paths share, and checked as
//! the plan saw it (size, mtime), exactly as a plain local deletion is. It then lands at the
//! new path, which must still be empty (a no-replace move), untouched: it keeps its mtime,
//! which the index records, so a write that reaches it after the check is an edit the next
//! sync sees (no new mtime is set on it that could hide one). Otherwise it goes back where it
//! was (or, if that path was taken meanwhile, beside it as `<name> (kept by s4)`: never under
//! a name a later run cleans, [`fsutil::aside_path`]) and the order the plan had without
//! renames runs: the new file copied or downloaded first, the old one deleted after, only if
//! that arrived; where a file or folder in the way must go first (a type change), the two
//! are paired again once the deletions ran.
//! So the guards can count a held rename as no deletion: it moves the bytes to the new path,
//! or deletes the old file only once the new one holds them, or deletes nothing.
//!
//! Like every local deletion, the check is by size and mtime: an edit that keeps both (`cp -p`
//! of a file of the same size) between the plan and the rename is taken for the old bytes.
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
    /// The old file is at the new path, its mtime as planned.
    Done,
    /// Nothing was changed (the old file is back where it was): the plain order.
    Not,
    /// As `Not`, because a file or folder is in the new path's way: both wait for the run's
    /// deletions (which may be taking it away right now) and are paired again after them.
    Blocked,
    /// The old file changed since the plan: kept (where the message says); the new key is
    /// downloaded.
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
        // Held only outside dry runs, where every job is announced for real.
        if self.announce(&job) {
            self.start_move(job, download, idx).await?;
        }
        Ok(())
    }

    async fn start_move(&mut self, del: Job, download: Job, idx: &mut Indexes) -> Result<(), String> {
        self.room(idx).await?;
        let ctx = self.ctx.clone();
        self.set.spawn(ctx.move_local(del, download));
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

    /// The jobs a type change blocked, once the deletions ran: a move's old file and its
    /// download paired again (the rename may go now), the rest tried again on their own.
    /// An interrupted run leaves them to the next one, which plans them again.
    pub(super) async fn release_blocked(&mut self, idx: &mut Indexes) -> Result<(), String> {
        if super::interrupted() {
            self.blocked.clear();
            return Ok(());
        }
        let (dels, rest): (Vec<Job>, Vec<Job>) = std::mem::take(&mut self.blocked)
            .into_iter()
            .partition(|j| matches!(j.decision, Decision::DeleteLocal { .. }));
        let mut dels: HashMap<String, Job> = dels.into_iter().map(|j| (j.key.clone(), j)).collect();
        for job in rest {
            let job = Job { after_deletes: true, ..job };
            let download = matches!(job.decision, Decision::Download { .. });
            match job.moved_from.as_ref().filter(|_| download).and_then(|s| dels.remove(&s.key)) {
                Some(del) => self.start_move(Job { after_deletes: true, ..del }, job, idx).await?,
                None => self.dispatch(job, idx).await?,
            }
        }
        // Blocked only with its download (above): a deletion alone would count as a move.
        for key in dels.keys() {
            crate::info!("Kept {key}: its move did not finish; the next sync decides");
        }
        Ok(())
    }
}

impl Ctx {
    /// The deletion of a moved file's old path and the download of its new one, as one
    /// rename where it checks out (see the module's comment); their outcomes.
    pub async fn move_local(self: Arc<Self>, del: Job, download: Job) -> Vec<Outcome> {
        if let Err(e) = self.confirm_gone(&del).await {
            return vec![Outcome { job: del, result: Err(e) }, self.run(download).await];
        }
        let (root, d, l) = (self.root.clone(), del.clone(), download.clone());
        match self.blocking(move || rename_moved(&root, &d, &l)).await {
            Renamed::Done => {
                self.progress.add(1, download.remote_size);
                self.progress.add(1, 0);
                let etag = download.moved_from.as_ref().map(|s| s.etag.clone());
                let (lm, mtime) = (download.remote_lm, del.local_mtime);
                let result = Ok(Done::Downloaded { lm, etag, bytes: 0, copied: true, mtime });
                vec![Outcome { job: del, result: Ok(Done::DeletedLocal) }, Outcome { job: download, result }]
            }
            Renamed::Not => self.plain_order(del, download).await,
            Renamed::Blocked => {
                vec![
                    Outcome { job: del, result: Ok(Done::Blocked) },
                    Outcome { job: download, result: Ok(Done::Blocked) },
                ]
            }
            Renamed::Kept(e) => vec![Outcome { job: del, result: Err(e) }, self.run(download).await],
            Renamed::Gone => {
                self.progress.add(1, 0);
                vec![Outcome { job: del, result: Ok(Done::DeletedLocal) }, self.run(download).await]
            }
        }
    }

    /// The order without renames: the new file first (a copy of the old one, else a GET),
    /// then the old one's deletion, only if the new one arrived; both wait for the run's
    /// deletions if a type change blocks the new one.
    async fn plain_order(self: Arc<Self>, del: Job, download: Job) -> Vec<Outcome> {
        let got = self.clone().run(download).await;
        match got.result {
            Ok(Done::Downloaded { .. }) => vec![self.run(del).await, got],
            Ok(Done::Blocked) => vec![Outcome { job: del, result: Ok(Done::Blocked) }, got],
            _ => {
                crate::info!("Kept {}: its move to {} did not finish; the next sync decides", del.key, got.job.key);
                self.progress.add(1, 0);
                vec![got]
            }
        }
    }
}

/// The old file of `del` moved to `download`'s path; the blocking part of [`Ctx::move_local`].
fn rename_moved(root: &Path, del: &Job, download: &Job) -> Renamed {
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
    // Aside where neither path's folders are: `x` may become `x/in.txt`, or `x/in.txt` `x`.
    let shared = (del.key.split('/').zip(download.key.split('/')))
        .take_while(|(a, b)| a == b)
        .take(del.key.matches('/').count().min(download.key.matches('/').count()));
    let aside = fsutil::aside_path(&shared.fold(root.to_path_buf(), |dir, (part, _)| dir.join(part)).join("_"));
    match std::fs::rename(&old, &aside) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Renamed::Gone,
        Err(_) => return Renamed::Not,
    }
    let Ok(meta) = std::fs::symlink_metadata(&aside) else {
        fsutil::put_back(&aside, &old);
        return Renamed::Not;
    };
    // The bytes the pairing saw (read, or recorded by the index at this mtime), if they held still.
    if !meta.is_file() || meta.len() != download.remote_size || Some(super::scan::mtime_of(&meta)) != src.mtime {
        let kept = fsutil::put_back(&aside, &old);
        return Renamed::Kept(format!("{} changed during the sync; kept it, will decide next run", kept.display()));
    }
    // A file where a folder of the new path goes, or a folder where it goes: in the way.
    let mut in_way = false;
    let mut place = || match fsutil::safe_dest(root, &download.key) {
        Ok(dest) => {
            // A folder where it goes: gone if the plan emptied it (as a download does), else
            // its files' deletions are still to come.
            in_way = std::fs::symlink_metadata(&dest).is_ok_and(|m| m.is_dir()) && std::fs::remove_dir(&dest).is_err();
            fsutil::place_new(&aside, &dest).is_ok() || std::fs::symlink_metadata(&aside).is_err()
        }
        Err(e) => {
            in_way = e.contains("is a file, not a folder");
            false
        }
    };
    // The old file's folders go once it has landed, not before: put back, they would come
    // back without their permissions. Only where the new path is one of them (`x/in.txt`
    // became `x`) must they go first.
    let mut placed = place();
    if !placed && del.key.starts_with(&format!("{}/", download.key)) {
        remove_empty_parents(root, &old);
        placed = place();
    }
    if placed {
        remove_empty_parents(root, &old);
        return Renamed::Done;
    }
    // Whether it is still in the way when the plain order runs would depend on how far the
    // deletions got: a rename and a copy, by chance (Garage).
    let blocked = in_way && !download.after_deletes;
    match fsutil::put_back(&aside, &old) {
        back if back == old && blocked => Renamed::Blocked,
        back if back == old => Renamed::Not,
        kept => Renamed::Kept(format!(
            "{} was taken during the sync; kept its old file as {}",
            old.display(),
            kept.display()
        )),
    }
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
        assert!(matches!(rename_moved(root, &del, &download), Renamed::Done));
        assert_eq!(names(root), ["archive/photos/a.jpg"]);
        // Untouched: its own mtime, which the index records.
        assert_eq!(mtime(root, "archive/photos/a.jpg"), 1000);
        assert!(!root.join("photos").exists());
    }

    #[test]
    fn a_file_that_became_a_folder_holding_it_is_renamed_into_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "x", "bytes", 1000);
        let (del, download) = pair("x", "x/in.txt", "bytes");
        assert!(matches!(rename_moved(root, &del, &download), Renamed::Done));
        assert_eq!(names(root), ["x/in.txt"]);
    }

    #[test]
    fn a_folder_that_became_the_file_it_held_is_renamed_over_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "x/in.txt", "bytes", 1000);
        let (del, download) = pair("x/in.txt", "x", "bytes");
        assert!(matches!(rename_moved(root, &del, &download), Renamed::Done));
        assert_eq!(names(root), ["x"]);
    }

    #[test]
    fn a_read_only_moved_file_is_renamed_too() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "a", "bytes", 1000);
        std::fs::set_permissions(root.join("a"), std::fs::Permissions::from_mode(0o444)).unwrap();
        let (del, download) = pair("a", "b", "bytes");
        assert!(matches!(rename_moved(root, &del, &download), Renamed::Done));
        assert_eq!((names(root), mtime(root, "b")), (vec!["b".to_string()], 1000));
    }

    #[test]
    fn an_old_file_changed_since_the_plan_is_kept_where_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "a", "edited", 2000);
        let (del, download) = pair("a", "b", "bytes");
        assert!(matches!(rename_moved(root, &del, &download), Renamed::Kept(_)));
        // Its mtime as planned, another size.
        write(root, "a", "bytes!", 1000);
        assert!(matches!(rename_moved(root, &del, &download), Renamed::Kept(_)));
        assert_eq!((names(root), mtime(root, "a")), (vec!["a".to_string()], 1000));
    }

    #[test]
    fn a_file_at_the_new_path_stops_the_rename_and_the_old_file_goes_back_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "a", "bytes", 1000);
        write(root, "b", "someone's new file", 3000);
        let (del, download) = pair("a", "b", "bytes");
        assert!(matches!(rename_moved(root, &del, &download), Renamed::Not));
        // Back as it was, nothing left under a temp name.
        assert_eq!(names(root), ["a", "b"]);
        assert_eq!((mtime(root, "a"), std::fs::read_to_string(root.join("a")).unwrap()), (1000, "bytes".into()));
        assert_eq!(std::fs::read_to_string(root.join("b")).unwrap(), "someone's new file");
    }

    /// Garage, by chance: the rename met the file `lib` still in its way, then the plain order
    /// found it gone (deleted meanwhile) and copied: a copy or a rename by timing. In the way,
    /// both wait for the deletions, whatever they have done by then.
    #[test]
    fn a_rename_meeting_a_file_in_its_way_waits_for_the_deletions() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "old/f0", "bytes", 1000);
        write(root, "lib", "a file named lib, being deleted", 2000);
        let (del, download) = pair("old/f0", "lib/f0", "bytes");
        assert!(matches!(rename_moved(root, &del, &download), Renamed::Blocked));
        assert_eq!(names(root), ["lib", "old/f0"]);
        let after = Job { after_deletes: true, ..download };
        assert!(matches!(rename_moved(root, &del, &after), Renamed::Not), "after the deletions: the plain order");
        std::fs::remove_file(root.join("lib")).unwrap();
        assert!(matches!(rename_moved(root, &del, &after), Renamed::Done));
        assert_eq!(names(root), ["lib/f0"]);
    }

    /// Review: an empty folder where the file goes was taken for one in the way, and the file
    /// copied after the deletions; a download removes it, so does the rename.
    #[test]
    fn an_empty_folder_where_the_file_goes_does_not_stop_the_rename() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "a", "bytes", 1000);
        std::fs::create_dir_all(root.join("b")).unwrap();
        let (del, download) = pair("a", "b", "bytes");
        assert!(matches!(rename_moved(root, &del, &download), Renamed::Done));
        assert_eq!(names(root), ["b"]);
    }

    #[test]
    fn an_old_file_gone_already_is_not_looked_for() {
        let dir = tempfile::tempdir().unwrap();
        let (del, download) = pair("a", "b", "bytes");
        assert!(matches!(rename_moved(dir.path(), &del, &download), Renamed::Gone));
        assert!(names(dir.path()).is_empty());
    }
}

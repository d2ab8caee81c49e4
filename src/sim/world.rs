//! The simulated world: machines (each a folder, its own index, the real engine), a user at
//! each, one model bucket, and the driver that interleaves them from one seed. Between and
//! during syncs it edits, creates, touches, deletes and moves files, turns files into folders
//! and back, kills syncs, and lets the bucket's faults happen; after every step and at the end
//! it checks that no version a user wrote was lost without a conflict naming it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::bucket::{Behaviour, Bucket, Handle};
use super::sched::Sched;
use crate::sync::conflict::Mode;
use crate::sync::plan::Keep;
use crate::sync::{Names, Options, Report};

/// The paths users touch: few, so machines collide on them; `x` and `x/in.txt` for a file
/// that becomes a folder and back.
const PATHS: [&str; 5] = ["f.txt", "g.txt", "d/h.txt", "x", "x/in.txt"];
/// The paths of seeds whose thousand is odd (issue 13): more names to move files to, so moves
/// and renames (a server-side copy, a local copy) meet everything else. Other seeds keep the
/// five paths, and so replay as they did when found.
const MOVE_PATHS: [&str; 8] = ["f.txt", "g.txt", "d/h.txt", "x", "x/in.txt", "e.txt", "d/k.txt", "m/h.txt"];

fn paths_of(seed: u64) -> &'static [&'static str] {
    match (seed / 1000) % 2 {
        1 => &MOVE_PATHS,
        _ => &PATHS,
    }
}
const PREFIX: &str = "p/";

/// A version a user wrote: its content is unique in the run.
#[derive(Debug, Clone)]
struct Written {
    path: String,
    content: String,
    /// What that machine held at the path when the user wrote or deleted (`None`: nothing).
    base: Option<String>,
    /// The step it happened at.
    step: u64,
}

struct Machine {
    /// What was present (path, content) when its running sync started.
    started_with: BTreeSet<(String, String)>,
    root: PathBuf,
    remote: Arc<Handle>,
    running: Option<tokio::task::JoinHandle<Result<Report, String>>>,
    /// Its indexes between syncs, as the daemon keeps them (seeds ending in 9).
    kept: crate::sync::Keeper,
}

pub struct World {
    pub sched: Arc<Sched>,
    pub bucket: Arc<Bucket>,
    machines: Vec<Machine>,
    _tmp: tempfile::TempDir,
    tmp: PathBuf,
    /// Every write and deletion a user made (deletions have an empty content).
    history: Vec<Written>,
    /// Versions a conflict excuses: at a path a sync reported a conflict for, the contents
    /// present anywhere when that sync started (the versions it could have weighed; a version
    /// written later is not excused by it).
    excused: BTreeSet<(String, String)>,
    counter: u64,
    steps: u64,
    /// The paths users act on.
    paths: &'static [&'static str],
    /// A machine that stands still (a suspended laptop, a stalled link) until a step, while the
    /// clock runs and the others go on: leases must lapse, not be revived.
    frozen: Option<(usize, u64)>,
    /// Seeds ending in 7 or 9 also run key-set syncs (issue 13: the daemon's rounds), of a
    /// random few of the paths, beside full ones; other seeds replay as they did when found.
    key_syncs: bool,
    /// Seeds ending in 9 also keep each machine's indexes between its syncs, as the daemon
    /// does (kept.rs): every key-set sync and half the full ones start from the last one's;
    /// the other full ones read both files and write them, as a sync run by hand beside it.
    keeping: bool,
}

/// Why a seed failed, with what happened last.
#[derive(Debug)]
pub struct Failure {
    pub what: String,
    pub trace: Vec<String>,
}

impl World {
    pub fn new(seed: u64, machines: usize, behaviour: Behaviour) -> World {
        let sched = Arc::new(Sched::new(seed));
        let bucket = Arc::new(Bucket::new(behaviour, sched.clone()));
        // In memory where the machine has it: the engine fsyncs every file and folder it
        // writes, which on a disk is most of a seed's time.
        let shm = std::path::Path::new("/dev/shm");
        let tmp = match shm.is_dir() {
            true => tempfile::Builder::new().prefix("s4-sim").tempdir_in(shm).or_else(|_| tempfile::tempdir()),
            false => tempfile::tempdir(),
        }
        .expect("temp dir");
        let machines = (0..machines)
            .map(|i| {
                let root = tmp.path().join(format!("m{i}")).join("folder");
                std::fs::create_dir_all(&root).expect("machine folder");
                Machine {
                    started_with: BTreeSet::new(),
                    root,
                    remote: Arc::new(Handle::new(bucket.clone(), i)),
                    running: None,
                    kept: Default::default(),
                }
            })
            .collect();
        let path = tmp.path().to_path_buf();
        World {
            sched,
            bucket,
            machines,
            _tmp: tmp,
            tmp: path,
            history: Vec::new(),
            paths: paths_of(seed),
            excused: BTreeSet::new(),
            counter: 0,
            steps: 0,
            frozen: None,
            key_syncs: matches!(seed % 10, 7 | 9),
            keeping: seed % 10 == 9,
        }
    }

    fn fail(&self, what: String) -> Failure {
        Failure { what, trace: self.sched.trace() }
    }

    /// Let every task run until all wait (for a turn, or a timer): tokio's paused clock moves
    /// only when nothing else can run.
    async fn settle() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }

    fn options(keep: Option<Keep>) -> Options {
        Options {
            conflicts: keep.map_or(Mode::Ignore, Mode::Keep),
            dry_run: false,
            json: false,
            progress: false,
            jobs: 4,
            follow_symlinks: false,
            transfer: crate::s3::Transfer::default(),
            max_delete: crate::sync::guard::MaxDelete::Percent(100.0),
            force: true,
            inline: true,
            bwlimit: None,
            exclude: Vec::new(),
            include: Vec::new(),
        }
    }

    fn start(&mut self, m: usize, keep: Option<Keep>) {
        self.start_keys(m, keep, None);
    }

    /// A sync of only `keys`, as the daemon runs on what its watch reported; all when `None`.
    fn start_keys(&mut self, m: usize, keep: Option<Keep>, keys: Option<Vec<String>>) {
        let present = self.present();
        let kept = (self.keeping && (keys.is_some() || self.sched.draw(2) == 0)).then(|| self.machines[m].kept.clone());
        let machine = &mut self.machines[m];
        machine.started_with = present;
        let (remote, root) = (machine.remote.clone(), machine.root.clone());
        let names = Names {
            name: format!("m{m}"),
            local_uri: format!("{}/", root.display()),
            remote_uri: format!("s3://sim/{PREFIX}"),
        };
        let from = if kept.as_ref().is_some_and(|k| k.holds()) { " from kept indexes" } else { "" };
        self.sched.note(match &keys {
            None => format!("m{m} sync starts{from}"),
            Some(k) => format!("m{m} sync of {k:?} starts{from}"),
        });
        machine.running = Some(tokio::spawn(async move {
            let opts = Self::options(keep);
            match (keys, &kept) {
                (None, Some(kept)) => crate::sync::run_kept(remote, PREFIX, &root, &names, &opts, kept).await,
                (None, None) => crate::sync::run_on(remote, PREFIX, &root, &names, &opts).await,
                (Some(k), kept) => crate::sync::run_keys(remote, PREFIX, &root, &names, &opts, k, kept.as_ref()).await,
            }
        }));
    }

    /// Collect finished syncs: their reports name the conflicts they met.
    async fn reap(&mut self) -> Vec<(usize, Result<Report, String>)> {
        let mut done = Vec::new();
        for (i, m) in self.machines.iter_mut().enumerate() {
            if m.running.as_ref().is_some_and(|h| h.is_finished()) {
                let h = m.running.take().expect("running");
                let r = h.await.unwrap_or_else(|e| Err(format!("the sync task died: {e}")));
                done.push((i, r));
            }
        }
        for (i, r) in &done {
            match r {
                Ok(rep) => {
                    let seen = &self.machines[*i].started_with;
                    let excused = seen.iter().filter(|(p, _)| rep.conflicts.contains(p)).cloned();
                    self.excused.extend(excused.collect::<Vec<_>>());
                    self.sched.note(format!("m{i} sync ends: {}", summary(rep)));
                }
                Err(e) => self.sched.note(format!("m{i} sync fails: {e}")),
            }
        }
        done
    }

    fn kill(&mut self, m: usize) {
        if let Some(h) = self.machines[m].running.take() {
            h.abort();
            self.sched.forget(m);
            self.sched.note(format!("m{m} killed"));
        }
    }

    /// Start from files every machine has synced: the races that lose edits need a version
    /// both sides know (issue 10's three scenarios all start there).
    pub async fn prelude(&mut self) -> Result<(), Failure> {
        let when = self.bucket.clock();
        for (i, path) in ["f.txt", "g.txt", "d/h.txt"].into_iter().enumerate() {
            let content = format!("seed{i}");
            write_file(&self.machines[0].root, path, &content, when).expect("prelude file");
            self.history.push(Written { path: path.into(), content, base: None, step: 0 });
        }
        self.bucket.calm.store(true, std::sync::atomic::Ordering::Relaxed);
        for m in 0..self.machines.len() {
            self.start(m, None);
            self.drive_to_end().await;
        }
        self.bucket.calm.store(false, std::sync::atomic::Ordering::Relaxed);
        self.sched.note("prelude done".into());
        self.check_nothing_lost()
    }

    /// One step of the busy phase.
    pub async fn step(&mut self) -> Result<(), Failure> {
        self.steps += 1;
        Self::settle().await;
        let ended = self.reap().await;
        self.check_kept(ended.iter().map(|(m, _)| *m))?;
        if self.frozen.is_some_and(|(_, until)| self.steps >= until) {
            self.frozen = None;
        }
        let r = self.sched.draw(100);
        let waiting = self.sched.waiting_except(self.frozen.map(|(m, _)| m));
        if !waiting.is_empty() && r < 70 {
            let pick = waiting[self.sched.draw(waiting.len())];
            self.sched.grant(pick);
        } else if self.frozen.is_some() && r < 80 {
            // While one machine stands still, time runs for all.
            tokio::time::sleep(Duration::from_secs(5 + self.sched.draw(15) as u64)).await;
        } else if r < 82 {
            let m = self.sched.draw(self.machines.len());
            self.user_action(m);
        } else if r < 96 {
            let m = self.sched.draw(self.machines.len());
            if self.machines[m].running.is_none() {
                let keys = (self.key_syncs && self.sched.draw(2) == 0).then(|| {
                    let paths = self.paths.iter().filter(|_| self.sched.draw(2) == 0);
                    paths.map(|p| p.to_string()).collect()
                });
                self.start_keys(m, None, keys);
            }
        } else if r < 97 {
            let m = self.sched.draw(self.machines.len());
            self.kill(m);
        } else if r < 98 && self.frozen.is_none() {
            let m = self.sched.draw(self.machines.len());
            self.frozen = Some((m, self.steps + 5 + self.sched.draw(20) as u64));
            self.sched.note(format!("m{m} freezes"));
        } else {
            tokio::time::sleep(Duration::from_millis(self.sched.draw(3000) as u64)).await;
        }
        self.check_nothing_lost()
    }

    /// Quiet: no more users; let running syncs end, then each machine syncs in turn (keeping
    /// S3's side of a conflict, which the report names) until all agree.
    pub async fn quiesce(&mut self) -> Result<(), Failure> {
        self.drive_to_end().await;
        self.bucket.calm.store(true, std::sync::atomic::Ordering::Relaxed);
        for _round in 0..3 {
            for m in 0..self.machines.len() {
                self.start(m, Some(Keep::Remote));
                let ended = self.drive_to_end().await;
                self.check_kept(ended.iter().map(|(m, _)| *m))?;
            }
        }
        self.check_nothing_lost()?;
        self.check_agreement()?;
        // A further round changes nothing.
        for m in 0..self.machines.len() {
            self.start(m, Some(Keep::Remote));
            for (i, r) in self.drive_to_end().await {
                match r {
                    Ok(rep)
                        if rep.uploaded + rep.downloaded + rep.deleted_local + rep.deleted_remote == 0
                            && rep.clean() => {}
                    Ok(rep) => {
                        return Err(
                            self.fail(format!("m{i}: a sync after agreement was not a no-op: {}", summary(&rep)))
                        )
                    }
                    Err(e) => return Err(self.fail(format!("m{i}: a sync after agreement failed: {e}"))),
                }
            }
        }
        self.check_indexes()?;
        self.check_nothing_outside()
    }

    /// Grant every call until no sync runs.
    async fn drive_to_end(&mut self) -> Vec<(usize, Result<Report, String>)> {
        let mut done = Vec::new();
        for _ in 0..100_000 {
            Self::settle().await;
            done.extend(self.reap().await);
            if self.machines.iter().all(|m| m.running.is_none()) {
                return done;
            }
            let waiting = self.sched.waiting();
            if waiting > 0 {
                let pick = self.sched.draw(waiting);
                self.sched.grant(pick);
            } else {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        panic!("syncs did not end");
    }

    fn content_at(root: &Path, path: &str) -> Option<String> {
        let p = root.join(path);
        std::fs::symlink_metadata(&p).ok().filter(|m| m.is_file())?;
        std::fs::read_to_string(p).ok()
    }

    /// A user at machine `m` does something to one of the paths.
    fn user_action(&mut self, m: usize) {
        let root = self.machines[m].root.clone();
        let path = self.paths[self.sched.draw(self.paths.len())];
        let file = root.join(path);
        let base = Self::content_at(&root, path);
        let what = self.sched.draw(100);
        self.counter += 1;
        // mtimes come from the simulated clock, a millisecond apart at least, so that every
        // edit is visible to a scan (a real user cannot edit twice within a millisecond either).
        let when = self.bucket.clock() + Duration::from_millis(self.counter * 2);
        let note = match (what, &base) {
            (0..=49, _) if self.clashes(path) => return,
            (0..=49, _) => {
                let content = format!("m{m}v{}", self.counter);
                if write_file(&root, path, &content, when).is_err() {
                    return; // a file where a folder would go, or the reverse: nothing done
                }
                self.history.push(Written {
                    path: path.into(),
                    content: content.clone(),
                    base: base.clone(),
                    step: self.steps,
                });
                format!("writes {path} = {content}")
            }
            (50..=59, Some(_)) => {
                let _ = std::fs::File::options().write(true).open(&file).and_then(|f| f.set_modified(when));
                format!("touches {path}")
            }
            (60..=79, Some(_)) => {
                if std::fs::remove_file(&file).is_err() {
                    return;
                }
                self.history.push(Written {
                    path: path.into(),
                    content: String::new(),
                    base: base.clone(),
                    step: self.steps,
                });
                format!("deletes {path}")
            }
            (80..=99, Some(c)) => {
                let to = self.paths[self.sched.draw(self.paths.len())];
                if to == path
                    || self.clashes(to)
                    || Self::content_at(&root, to).is_some()
                    || write_file(&root, to, c, when).is_err()
                {
                    return;
                }
                let _ = std::fs::remove_file(&file);
                let step = self.steps;
                self.history.push(Written { path: path.into(), content: String::new(), base: base.clone(), step });
                self.history.push(Written { path: to.into(), content: c.clone(), base: None, step });
                format!("moves {path} to {to}")
            }
            _ => return,
        };
        self.sched.note(format!("m{m} user {note}"));
    }

    /// Would a file at `path` make a file and a folder of one name somewhere (a machine, or
    /// S3)? Made on two machines at once, the two cannot meet in one folder: s4 reports it on
    /// every sync until someone renames one (README), so the users here never do it.
    fn clashes(&self, path: &str) -> bool {
        let (file, folder) = match path.split_once('/') {
            Some((top, _)) => (top.to_string(), path.to_string()),
            None => (path.to_string(), format!("{path}/")),
        };
        let on_s3 = self.bucket.objects().into_keys().filter_map(|k| k.strip_prefix(PREFIX).map(str::to_string));
        let here = self.machines.iter().flat_map(|m| self.tree(&m.root).into_keys());
        let other = |k: &String| match path.contains('/') {
            true => *k == file,
            false => k.starts_with(&folder),
        };
        on_s3.chain(here).any(|k| other(&k))
    }

    /// Where each content is now: machines' files and the bucket's objects.
    fn present(&self) -> BTreeSet<(String, String)> {
        let mut out = BTreeSet::new();
        for m in &self.machines {
            for p in self.paths {
                if let Some(c) = Self::content_at(&m.root, p) {
                    out.insert((p.to_string(), c));
                }
            }
        }
        for (k, o) in self.bucket.objects() {
            if let Some(p) = k.strip_prefix(PREFIX) {
                out.insert((p.to_string(), String::from_utf8_lossy(&o.body).into_owned()));
            }
        }
        out
    }

    /// No version a user wrote is gone from every machine and the bucket unless someone
    /// replaced or deleted it knowingly (it is in the ancestry of a later write or deletion at
    /// its path) or a conflict named its path.
    fn check_nothing_lost(&self) -> Result<(), Failure> {
        let present = self.present();
        let mut superseded: BTreeSet<(&str, &str)> = BTreeSet::new();
        let by_content: BTreeMap<(&str, &str), Option<&str>> = self
            .history
            .iter()
            .filter(|w| !w.content.is_empty())
            .map(|w| ((w.path.as_str(), w.content.as_str()), w.base.as_deref()))
            .collect();
        for w in &self.history {
            let mut base = w.base.as_deref();
            let mut hops = 0;
            while let Some(b) = base {
                if !superseded.insert((w.path.as_str(), b)) || hops > 10_000 {
                    break;
                }
                base = by_content.get(&(w.path.as_str(), b)).copied().flatten();
                hops += 1;
            }
        }
        for w in self.history.iter().filter(|w| !w.content.is_empty()) {
            let key = (w.path.clone(), w.content.clone());
            if present.contains(&key)
                || superseded.contains(&(w.path.as_str(), w.content.as_str()))
                || self.excused.contains(&key)
            {
                continue;
            }
            return Err(self.fail(format!(
                "lost: {} = {} (written at step {}) is on no machine and not on S3, no one replaced it knowingly, and \
                 no conflict named it",
                w.path, w.content, w.step
            )));
        }
        Ok(())
    }

    fn tree(&self, root: &Path) -> BTreeMap<String, String> {
        self.paths.iter().filter_map(|p| Some((p.to_string(), Self::content_at(root, p)?))).collect()
    }

    /// All machines and the bucket hold the same files.
    fn check_agreement(&self) -> Result<(), Failure> {
        let s3: BTreeMap<String, String> = self
            .bucket
            .objects()
            .into_iter()
            .filter_map(|(k, o)| {
                let p = k.strip_prefix(PREFIX)?;
                self.paths.contains(&p).then(|| (p.to_string(), String::from_utf8_lossy(&o.body).into_owned()))
            })
            .collect();
        for (i, m) in self.machines.iter().enumerate() {
            let t = self.tree(&m.root);
            if t != s3 {
                return Err(self.fail(format!("m{i} and S3 disagree after quiet rounds: {t:?} vs {s3:?}")));
            }
        }
        Ok(())
    }

    /// Each machine's local index records exactly its files, at their mtimes.
    fn check_indexes(&self) -> Result<(), Failure> {
        for (i, m) in self.machines.iter().enumerate() {
            let bytes = std::fs::read(m.root.join(".index")).unwrap_or_default();
            let idx = crate::sync::index::decode(&bytes).map_err(|e| self.fail(format!("m{i} index: {e}")))?;
            for (p, _) in self.tree(&m.root) {
                let mtime = crate::sync::scan::mtime_of(&std::fs::metadata(m.root.join(&p)).expect("file"));
                match idx.get(&p).and_then(|e| e.local_timestamp) {
                    Some(t) if (t - mtime).abs() < 1e-3 => {}
                    other => {
                        return Err(
                            self.fail(format!("m{i}: index says {other:?} for {p}, the file's mtime is {mtime}"))
                        )
                    }
                }
            }
            for (k, e) in &idx {
                if !e.is_tombstone() && !m.root.join(k).is_file() {
                    return Err(self.fail(format!("m{i}: index records {k} but there is no such file")));
                }
            }
        }
        Ok(())
    }

    /// The indexes machines `ended` keep for their next round are what their files hold.
    fn check_kept(&self, ended: impl Iterator<Item = usize>) -> Result<(), Failure> {
        let remote = self.bucket.object(&format!("{PREFIX}.index"));
        let remote = remote.as_ref().map(|o| (o.etag.as_str(), &o.body[..]));
        for m in ended {
            let machine = &self.machines[m];
            if let Err(e) = machine.kept.agrees(&machine.root.join(".index"), remote) {
                return Err(self.fail(format!("m{m}: {e}")));
            }
        }
        Ok(())
    }

    /// Nothing was written outside the machines' folders (temp files included).
    fn check_nothing_outside(&self) -> Result<(), Failure> {
        for entry in walk(&self.tmp) {
            let inside = self.machines.iter().any(|m| entry.starts_with(&m.root));
            if !inside && entry.is_file() {
                return Err(self.fail(format!("{} was written outside every folder", entry.display())));
            }
        }
        for m in &self.machines {
            for entry in walk(&m.root) {
                let name = entry.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                if entry.is_file() && name.starts_with(".s4tmp") {
                    return Err(self.fail(format!("{} left behind", entry.display())));
                }
            }
        }
        Ok(())
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

fn summary(r: &Report) -> String {
    format!(
        "up {} down {} moved {} del-local {} del-s3 {} conflicts {:?} errors {}{}",
        r.uploaded,
        r.downloaded,
        r.moved,
        r.deleted_local,
        r.deleted_remote,
        r.conflicts,
        r.errors,
        r.stopped.as_deref().map(|s| format!(" stopped: {s}")).unwrap_or_default()
    )
}

/// Write `content` at `path` under `root` with mtime `when` (its folders made as needed).
fn write_file(root: &Path, path: &str, content: &str, when: std::time::SystemTime) -> std::io::Result<()> {
    let file = root.join(path);
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&file, content)?;
    std::fs::File::options().write(true).open(&file)?.set_modified(when)
}

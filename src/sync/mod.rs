//! `s4 sync` for one target: scan, list and both indexes merge-joined in key order into a
//! plan, carried out by a bounded pool as it is produced, indexes committed in batches.

pub mod conflict;
mod content;
pub mod exec;
#[cfg(test)]
pub mod flaky;
pub mod guard;
mod held;
pub mod index;
mod kept;
pub mod keys;
pub mod lease;
mod listing;
mod merge;
pub mod moves;
mod options;
pub mod plan;
mod prepare;
mod record;
pub mod remote;
mod renames;
mod report;
pub mod scan;
pub(crate) mod state;
pub mod stores;
mod table;

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use tokio::task::JoinSet;

use self::exec::{Ctx, Job, Outcome};
use self::index::{Entry, Etag};
pub use self::kept::Keeper;
pub use self::keys::run_keys;
pub use self::options::{fitted, Names, Options};
use self::plan::Decision;
use self::prepare::{abort_stale_uploads, load_rules, lock};
use self::remote::{Meta, Remote, S3};
pub use self::report::{json_line, Report};
use self::scan::LocalFile;
use self::state::Indexes;
use crate::ignore::IgnoreRules;
use crate::s3::Client;

/// Index progress is committed every this many changes or COMMIT_SECS, whichever comes first.
/// A commit stalls new transfers for a listing, the index round trip and (on stores without
/// conditional writes) the lease; what a crash loses since the last one is not transfers but
/// records, which the next run restores from content (ETag = MD5) without sending the bytes.
const COMMIT_EVERY: usize = 20_000;
/// Batches grow with the index (a commit rewrites it whole) up to this many changes: the
/// changes wait in memory until then, ~250 bytes each (issue 13: a million files).
const COMMIT_MOST: usize = 50_000;
const COMMIT_SECS: u64 = 30;

/// Sync one target. `Err` means the target could not be synced at all (exit 2);
/// per-file failures are counted in the report and never stop the rest.
pub async fn run(client: &Client, prefix: &str, root: &Path, names: &Names, opts: &Options) -> Result<Report, String> {
    let opts = fitted(opts);
    let limits = crate::s3::Limits::per_direction(opts.bwlimit);
    let remote: Arc<dyn Remote> = Arc::new(S3 { client: client.clone(), transfer: opts.transfer, limits });
    run_on(remote, prefix, root, names, &opts).await
}

/// [`run`] against any store behind the engine's seam (the simulation's model bucket too).
pub async fn run_on(
    remote: Arc<dyn Remote>,
    prefix: &str,
    root: &Path,
    names: &Names,
    opts: &Options,
) -> Result<Report, String> {
    run_scoped(remote, prefix, root, names, opts, None, None).await
}

/// [`run_on`] for a daemon's rounds: from the indexes `keeper` holds, where they are still
/// current (kept.rs), leaving it this run's.
pub async fn run_kept(
    remote: Arc<dyn Remote>,
    prefix: &str,
    root: &Path,
    names: &Names,
    opts: &Options,
    keeper: &Keeper,
) -> Result<Report, String> {
    run_scoped(remote, prefix, root, names, opts, None, Some(keeper)).await
}

/// [`run_on`], or [`run_keys`] with `keys`; from and to `keeper`'s indexes when given.
async fn run_scoped(
    remote: Arc<dyn Remote>,
    prefix: &str,
    root: &Path,
    names: &Names,
    opts: &Options,
    keys: Option<Vec<String>>,
    keeper: Option<&Keeper>,
) -> Result<Report, String> {
    let client = &*remote;
    crate::info!("Syncing {} [{} <=> {}]", names.name, names.local_uri, names.remote_uri);
    if !root.exists() && !opts.dry_run {
        std::fs::create_dir_all(root).map_err(|e| format!("creating local folder {}: {e}", root.display()))?;
    }
    let token = remote.token();
    let (_lock, left_behind) = match opts.dry_run {
        true => (None, None),
        false => {
            let (l, left) = lock(root, &token)?;
            (Some(l), left)
        }
    };
    // Read first: a missing bucket or wrong keys fail here with a clear message, before any
    // probe object is written.
    // What a dry run reads is not what it would commit: it neither takes nor leaves any.
    let keeper = keeper.filter(|_| !opts.dry_run);
    let mut idx = Indexes::load_kept(client, root, prefix, keeper.and_then(Keeper::take)).await?;
    // What the store honours decides how every write is guarded (issue 10); a store without
    // conditional writes or deletes is written by one machine at a time, under the prefix's
    // lease (a HEAD then an unconditional DELETE raced another machine's conditional upload
    // and removed it: found by the simulation).
    let (caps, lease) = match opts.dry_run {
        true => (stores::Caps::default(), None),
        false => {
            let caps = stores::capabilities(client, prefix, &token).await?;
            let lease = match caps.conditional_put && caps.conditional_delete {
                true => None,
                false => {
                    Some(Arc::new(lease::Lease::acquire(remote.clone(), prefix, left_behind.as_deref(), &token).await?))
                }
            };
            (caps, lease)
        }
    };
    // Under the lease every write goes through its fence (the lease keeps the bare store for
    // its own intent).
    let writer = lease.as_ref().and_then(|l| remote.with_fence(l.fence())).unwrap_or_else(|| remote.clone());
    // Whatever happens from here, the lease is released below: an intent left behind makes
    // every other machine wait out its TTL (a failed re-read of the index used to return early).
    let guarded = match opts.dry_run {
        true => Ok(()),
        false => idx.guard(&*writer, caps.conditional_put, lease.clone()).await,
    };
    let result = match guarded {
        Ok(()) => run_guarded(writer, &mut idx, prefix, root, names, opts, caps, lease.clone(), keys).await,
        Err(e) => Err(e),
    };
    if let Some(lease) = lease {
        lease.release().await;
    }
    if let (Some(k), Ok(_)) = (keeper, &result) {
        k.put(idx.keep());
    }
    result
}

#[allow(clippy::too_many_arguments)]
async fn run_guarded(
    remote: Arc<dyn Remote>,
    idx: &mut Indexes,
    prefix: &str,
    root: &Path,
    names: &Names,
    opts: &Options,
    caps: stores::Caps,
    lease: Option<Arc<lease::Lease>>,
    keys: Option<Vec<String>>,
) -> Result<Report, String> {
    let client = &*remote;
    // Stale multipart uploads are a full sync's chore: a key set costs what it names.
    if !opts.dry_run && keys.is_none() {
        abort_stale_uploads(client, prefix).await;
    }
    let ctx = Arc::new(Ctx {
        remote: remote.clone(),
        root: root.to_path_buf(),
        prefix: prefix.to_string(),
        transfer: opts.transfer,
        progress: crate::progress::Progress::new(opts.progress),
        inline: opts.inline,
        caps,
        lease,
    });
    let mut run = Run {
        ctx: ctx.clone(),
        opts,
        names,
        report: Report::default(),
        set: JoinSet::new(),
        deletes: Vec::new(),
        followups: Vec::new(),
        blocked: Vec::new(),
        last_commit: Instant::now(),
        held: None,
        fresh: None,
        moved: Default::default(),
        renames: Default::default(),
        tally: guard::Tally::default(),
    };
    // `.syncignore` first: the rules this run applies must be the settled ones, or a machine
    // holding an older copy would act on rules it is about to replace.
    let mut deferred = Vec::new();
    run.sync_one(idx, ".syncignore", &mut deferred).await?;
    run.drain(idx).await?;
    // New rules may un-ignore or ignore any key: only a full sync applies them everywhere.
    let rules_moved = run.report != Report::default() || !deferred.is_empty();
    let rules = Arc::new(load_rules(client, prefix, root).await?);
    // Deletions the main pass plans wait for the guards; `.syncignore`'s, above, did not: the
    // rules just read must be the settled ones.
    run.held = Some(held::Held::default());
    // New keys wait for the old keys they may have moved from; a first sync has none.
    run.fresh = (!idx.local().is_empty()).then(std::collections::VecDeque::new);
    let pass = match &keys {
        None => run.main_pass(idx, prefix, root, rules).await,
        Some(keys) => run.keys_pass(idx, keys, rules).await,
    };
    match pass {
        Ok(more) => deferred.extend(more),
        Err(e) => {
            // Keep what finished: the next run then resumes instead of re-checking it all.
            let _ = run.drain(idx).await;
            if !opts.dry_run && idx.uncommitted > 0 {
                let _ = idx.commit(client, prefix).await;
            }
            return Err(e);
        }
    }
    run.release_fresh(idx).await?;
    run.drain(idx).await?;
    run.report.stopped = run.release_deletes(idx).await?;
    if keys.is_some() {
        // The guards ran on totals of 0 files a side (a key set counts none): whatever they
        // stop there, they might allow with the real totals; a full sync decides, with them.
        run.report.needs_full = rules_moved || run.report.needs_full || run.report.stopped.take().is_some();
    }
    run.drain(idx).await?;
    // Downloads a type change blocked, now that the deletions ran.
    run.release_blocked(idx).await?;
    run.drain(idx).await?;
    if interrupted() {
        deferred.clear();
        run.report.interrupted = true;
        crate::warn!("Interrupted: finishing the transfers in flight and saving the index; run sync again to resume");
    }
    for answer in conflict::ask_each(&ctx, idx, deferred, names).await {
        match answer {
            Ok(job) => run.dispatch(job, idx).await?,
            Err(job) => run.skip_conflict(&job),
        }
    }
    run.drain(idx).await?;
    ctx.progress.finish();
    if opts.dry_run {
        return Ok(run.report);
    }
    let flushing = idx.remote_changed();
    if flushing {
        crate::info!("Flushing Index to Storage");
    } else if run.report.clean() {
        crate::info!("Nothing to update");
    }
    if idx.uncommitted > 0 {
        idx.commit(client, prefix).await?;
    }
    Ok(run.report)
}

struct Run<'a> {
    ctx: Arc<Ctx>,
    opts: &'a Options,
    names: &'a Names,
    report: Report,
    set: JoinSet<Vec<Outcome>>,
    deletes: Vec<Job>,
    /// Transfers that finished conflict checks call for, dispatched from the main loop.
    followups: Vec<Job>,
    /// Downloads waiting for the run's deletions (a file became a folder, or back), and the
    /// deletions of the old files of those that are moves (see [`renames`]).
    blocked: Vec<Job>,
    last_commit: Instant,
    /// Deletions the main pass planned, held until the guards have seen the whole plan
    /// (`None` once released: later deletions are people's answers to conflicts).
    held: Option<held::Held>,
    /// New keys held through the main pass for [`moves::pair`] (`None`: not held).
    fresh: Option<std::collections::VecDeque<Job>>,
    /// Old keys whose bytes went to a new key: their deletions are moves, not losses.
    moved: std::collections::HashSet<String>,
    /// Downloads of moved files waiting for their old file's deletion, to be its rename.
    renames: renames::Held,
    tally: guard::Tally,
}

static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Ask running syncs to stop planning: transfers in flight finish, the indexes are committed,
/// and the next run resumes (SIGINT / SIGTERM).
pub fn interrupt() {
    INTERRUPTED.store(true, std::sync::atomic::Ordering::Relaxed);
}

pub fn interrupted() -> bool {
    INTERRUPTED.load(std::sync::atomic::Ordering::Relaxed)
}

impl Run<'_> {
    /// [`Run::main_pass`] of a key-set sync: each key observed from a local `lstat` and a
    /// HEAD ([`keys::observe`]), then planned exactly as the merge's observation of it would be.
    async fn keys_pass(
        &mut self,
        idx: &mut Indexes,
        keys: &[String],
        rules: Arc<IgnoreRules>,
    ) -> Result<Vec<Job>, String> {
        let mut deferred = Vec::new();
        let mut seen = keys::observe(&self.ctx, self.opts, keys, rules, idx);
        while let Some(obs) = seen.next(&mut self.report).await? {
            let (li, ri) = (idx.local().get(&obs.key), idx.remote().get(&obs.key));
            self.plan_key(idx, &obs.key, obs.local, obs.remote, li, ri, &mut deferred).await?;
            while let Some(job) = self.followups.pop() {
                self.dispatch(job, idx).await?;
            }
        }
        Ok(deferred)
    }

    async fn main_pass(
        &mut self,
        idx: &mut Indexes,
        prefix: &str,
        root: &Path,
        rules: Arc<IgnoreRules>,
    ) -> Result<Vec<Job>, String> {
        let leave_alone = keys::leave_alone(self.opts);
        let walk = merge::Walk {
            follow_symlinks: self.opts.follow_symlinks,
            clean_temp: !self.opts.dry_run,
            inline: self.opts.inline,
        };
        let remote = self.ctx.remote.clone();
        let mut merge = merge::Merge::start(remote, prefix, root, rules, leave_alone, walk, idx).await?;
        let mut deferred = Vec::new();
        while !interrupted() {
            let Some(seen) = merge.next(idx).await? else { break };
            let (li, ri) = (idx.local().get(&seen.key), idx.remote().get(&seen.key));
            self.plan_key(idx, &seen.key, seen.local, seen.remote, li, ri, &mut deferred).await?;
            while let Some(job) = self.followups.pop() {
                self.dispatch(job, idx).await?;
            }
        }
        self.tally.local_files += merge.local_files;
        self.tally.remote_files += merge.remote_files;
        self.report.errors += merge.errors;
        merge.finish().await.map_err(|e| format!("{}: {e}", root.display()))?;
        Ok(deferred)
    }

    /// Plan and start one key on its own, from a local stat and a HEAD (no listing).
    async fn sync_one(&mut self, idx: &mut Indexes, key: &str, deferred: &mut Vec<Job>) -> Result<(), String> {
        let path = self.ctx.root.join(key);
        let lf = std::fs::metadata(&path).ok().filter(|m| m.is_file()).map(|m| LocalFile {
            key: key.to_string(),
            size: m.len(),
            mtime: scan::mtime_of(&m),
        });
        let remote_key = self.ctx.remote_key(key);
        let ro = self.ctx.remote.head(&remote_key).await.map_err(|e| e.to_string())?;
        let (li, ri) = (idx.local().get(key), idx.remote().get(key));
        self.plan_key(idx, key, lf, ro, li, ri, deferred).await
    }

    #[allow(clippy::too_many_arguments)]
    async fn plan_key(
        &mut self,
        idx: &mut Indexes,
        key: &str,
        lf: Option<LocalFile>,
        ro: Option<Meta>,
        li: Option<Entry>,
        ri: Option<Entry>,
        deferred: &mut Vec<Job>,
    ) -> Result<(), String> {
        let l = plan::local_side(
            li.and_then(|e| e.local_timestamp),
            lf.as_ref().map(|f| f.mtime),
            li.and_then(|e| e.remote_timestamp),
        )
        .with_identity(li.and_then(|e| e.etag), None);
        let remote_lm = ro.as_ref().and_then(|o| o.lm);
        let listed = ro.as_ref().and_then(|o| o.etag.as_deref()).map(Etag::parse);
        let r = plan::side(
            ri.and_then(|e| e.local_timestamp),
            remote_lm.map(|t| t as f64),
            ri.and_then(|e| e.remote_timestamp),
        )
        .with_identity(ri.filter(|e| !e.is_tombstone()).and_then(|e| e.etag), listed);
        let decision = plan::decide(l, r);
        crate::debug!("{key}: {:?} {:?} -> {decision:?}", l, r);
        if decision == Decision::Nothing {
            if !self.opts.dry_run && lf.is_none() && ro.is_none() {
                match li {
                    // Both sides agree the key is gone: drop our tombstone; the remote one
                    // stays, it is how machines that have not synced yet learn of the deletion.
                    Some(e) if e.is_tombstone() && ri.is_none_or(|e| e.is_tombstone()) => idx.drop_local(key),
                    Some(e) if e.is_tombstone() => {}
                    // Deleted on both sides independently: record the agreement, or a later
                    // re-creation elsewhere would look like a conflict here.
                    Some(e) => {
                        let stamp = ri.and_then(|r| r.remote_timestamp).or(e.remote_timestamp);
                        idx.set_local(key, Entry::new(None, stamp, None));
                    }
                    None => {}
                }
            }
            return Ok(());
        }
        let job = Job {
            key: key.to_string(),
            decision,
            local_mtime: lf.as_ref().map(|f| f.mtime),
            remote_size: ro.as_ref().map_or(0, |o| o.size),
            remote_lm,
            li,
            ri,
            local: l,
            remote: r,
            local_size: lf.as_ref().map(|f| f.size),
            etag: ro.and_then(|o| o.etag),
            after_deletes: false,
            moved_from: None,
        };
        match decision {
            // A person answers after the main pass; otherwise the pool checks it now.
            Decision::Conflict if conflict::interactive(self.opts) => deferred.push(job),
            _ => self.dispatch(job, idx).await?,
        }
        Ok(())
    }

    /// Log the action as S4 does, then run it (or only log it in a dry run).
    async fn dispatch(&mut self, job: Job, idx: &mut Indexes) -> Result<(), String> {
        if let (Some(held), Decision::DeleteLocal { .. } | Decision::DeleteRemote { .. }) =
            (self.held.as_mut(), job.decision)
        {
            return held.push(job);
        }
        if job.decision == Decision::Nothing {
            return Ok(());
        }
        let Some(job) = self.hold_fresh(job) else { return Ok(()) };
        if self.announce(&job) {
            self.start(job, idx).await?;
        }
        Ok(())
    }

    /// Log the action as S4 does and count it for the progress display; `false` in a dry run,
    /// which only logs.
    fn announce(&mut self, job: &Job) -> bool {
        let check = job.decision == Decision::Conflict;
        // A download tried again after the deletions was announced the first time.
        if !job.after_deletes {
            if let Some((color, line)) = report::action_line(&job.decision, &job.key, self.names, self.opts.dry_run) {
                report::emit_action(color, &line);
            }
        }
        let size = match job.decision {
            Decision::Upload { .. } => job.local_size.unwrap_or(0),
            Decision::Download { .. } => job.remote_size,
            _ => 0,
        };
        if self.opts.dry_run && !check {
            self.report.would(&job.decision, size);
            if self.opts.json {
                json_line(job, "planned", None, 0);
            }
            return false;
        }
        if !check && !job.after_deletes {
            self.ctx.progress.plan(1, size);
        }
        true
    }

    /// Run an announced job in the pool (remote deletions in batches).
    async fn start(&mut self, job: Job, idx: &mut Indexes) -> Result<(), String> {
        if matches!(job.decision, Decision::DeleteRemote { .. }) {
            self.deletes.push(job);
            if self.deletes.len() >= 1000 {
                self.room(idx).await?;
                self.flush_deletes();
            }
        } else {
            self.room(idx).await?;
            let ctx = self.ctx.clone();
            self.set.spawn(async move { vec![ctx.run(job).await] });
        }
        self.started(idx).await
    }

    /// Wait for a free place in the pool.
    async fn room(&mut self, idx: &mut Indexes) -> Result<(), String> {
        while self.set.len() >= self.opts.jobs.max(1) {
            self.collect_one(idx).await?;
        }
        Ok(())
    }

    /// After a task started: apply whatever finished meanwhile, without waiting, and commit
    /// when due.
    async fn started(&mut self, idx: &mut Indexes) -> Result<(), String> {
        while let Some(done) = self.set.try_join_next() {
            self.apply(done, idx);
        }
        self.maybe_commit(idx).await
    }

    fn flush_deletes(&mut self) {
        if self.deletes.is_empty() {
            return;
        }
        let jobs = std::mem::take(&mut self.deletes);
        let ctx = self.ctx.clone();
        self.set.spawn(ctx.delete_remote(jobs));
    }

    async fn collect_one(&mut self, idx: &mut Indexes) -> Result<(), String> {
        if let Some(done) = self.set.join_next().await {
            self.apply(done, idx);
        }
        Ok(())
    }

    /// Wait for everything in flight, including what finished conflict checks call for.
    async fn drain(&mut self, idx: &mut Indexes) -> Result<(), String> {
        loop {
            while let Some(job) = self.followups.pop() {
                self.dispatch(job, idx).await?;
            }
            self.flush_deletes();
            if self.set.is_empty() {
                return Ok(());
            }
            self.collect_one(idx).await?;
        }
    }

    fn skip_conflict(&mut self, job: &Job) {
        self.report.conflicts.push(job.key.clone());
        crate::info!(
            "Conflict for \"{}\" ({} locally, {} on S3): skipped",
            job.key,
            job.local.state.name(),
            job.remote.state.name()
        );
        self.report.conflicts_skipped += 1;
        if self.opts.json {
            json_line(job, "skipped", None, 0);
        }
    }

    async fn maybe_commit(&mut self, idx: &mut Indexes) -> Result<(), String> {
        // Each commit rewrites both whole indexes: batch more as the index grows.
        let batch = COMMIT_EVERY.max(idx.local().len() / 10).min(COMMIT_MOST);
        if idx.uncommitted >= batch || (idx.uncommitted > 0 && self.last_commit.elapsed().as_secs() >= COMMIT_SECS) {
            idx.commit(&*self.ctx.remote, &self.ctx.prefix).await?;
            self.last_commit = Instant::now();
        }
        Ok(())
    }
}

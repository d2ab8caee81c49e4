//! The sync sections: `s4 sync` (the release binary) against s5cmd, `aws s3 sync`, rclone
//! and S4 0.4.4 on small files: first sync up, no-op (and download) of S4_BENCH_SMALL_FILES,
//! and the no-op of S4_BENCH_NOOP_FILES that the issue sets a goal for.

use std::path::Path;

use super::cost::Sample;
use super::{data, tools, Bench};

/// The rows of the small-file section.
struct Small {
    up: usize,
    noop: usize,
    down: Option<usize>,
    down_alt: Option<usize>,
}

impl Bench {
    /// Upload, no-op and download syncs of many small files; every tool on its own prefix.
    /// The trees stay until the run ends: on ext4, creating files soon after deleting
    /// thousands costs the creator kernel CPU (inode allocation skips recently deleted
    /// inodes), which would bill one tool's download for the previous tool's cleanup.
    pub(super) fn small(&mut self) {
        let n = self.cfg.small_files;
        let src = self.tmp.join("small");
        if let Err(e) = data::small_tree(&src, n, 7, Some(4096)) {
            return eprintln!("throughput: writing {}: {e}", src.display());
        }
        let up = self.row("small_up", format!("first sync up, {n} files of 4 KiB"), n as f64, "files/s");
        let noop = self.row("small_noop", format!("sync no-op, {n} files"), n as f64, "files/s");
        let down = self
            .cfg
            .small_down
            .then(|| self.row("small_down", format!("sync down {n} files to an empty folder"), n as f64, "files/s"));
        // Diagnostic: the same download with more transfers in flight (hides per-GET latency).
        let jobs = self.cfg.alt_jobs;
        let down_alt = (down.is_some() && jobs > 0).then(|| {
            self.row(
                "small_down_jobs",
                format!("sync down {n} files, s4 --jobs {jobs} (diagnostic)"),
                n as f64,
                "files/s",
            )
        });
        let rows = Small { up, noop, down, down_alt };
        // Who goes first turns with each rep: the first writer into a fresh store pays for its
        // growth (Garage made its block folders and grew its database during s4's first sync,
        // always first: 0.9 of rclone's time there, 0.76 with rclone first; issue 13).
        let tools = self.peers.len() + 1;
        for rep in 0..self.cfg.reps {
            for turn in 0..tools {
                match (turn + rep) % tools {
                    0 => self.small_s4(&src, rep, &rows),
                    i => self.small_peer(&src, rep, i - 1, &rows),
                }
            }
        }
    }

    fn small_s4(&mut self, src: &Path, rep: usize, rows: &Small) {
        let n = self.cfg.small_files;
        let prefix = format!("{}small/s4-{rep}/", self.run);
        let dir = self.tmp.join(format!("s4-up-{rep}"));
        let dl = self.tmp.join(format!("s4-dl-{rep}"));
        let down_to = rows.down.map(|d| (d, dl.as_path()));
        let ok = self.s4_round((src, &dir), &prefix, &format!("small-{rep}"), (rows.up, Some(rows.noop)), down_to);
        let (true, Some(row)) = (ok, rows.down_alt) else { return };
        let jobs = self.cfg.alt_jobs;
        let tag = format!("small-{rep}-jobs");
        let dl = self.tmp.join(format!("s4-dl-jobs-{rep}"));
        let r = std::fs::create_dir_all(&dl)
            .map_err(|e| e.to_string())
            .and_then(|_| self.s4.add(&self.probe, &tag, &dl, &prefix, &self.rss))
            .and_then(|_| self.s4.sync_with(&self.probe, &tag, &["--jobs", &jobs.to_string()], &self.rss))
            .and_then(|(s, sum)| {
                (sum.downloaded == n as u64 && sum.errors == 0)
                    .then_some(s)
                    .ok_or(format!("download sync summary {sum:?}, expected {n} downloaded"))
            })
            .and_then(|s| data::same_tree(src, &dl).map(|_| s));
        self.record(row, "s4", r);
    }

    fn small_peer(&mut self, src: &Path, rep: usize, i: usize, rows: &Small) {
        let name = self.peers[i].name;
        let prefix = format!("{}small/{name}-{rep}/", self.run);
        let dl = self.tmp.join(format!("{name}-dl-{rep}"));
        // S4 0.4.4 keeps its index in the folder: a linked copy of its own.
        let local = if self.peers[i].keeps_state() { self.tmp.join(format!("{name}-up-{rep}")) } else { src.into() };
        if local != src {
            if let Err(e) = data::link_tree(src, &local) {
                return self.note(rows.up, name, format!("setup: {e}"));
            }
        }
        let r = self.peers[i].sync(&local, &prefix, false).measure(&self.probe, &self.rss).map(|d| d.sample);
        if !self.record(rows.up, name, r) {
            return;
        }
        let r = self.peers[i].sync(&local, &prefix, false).measure(&self.probe, &self.rss).map(|d| d.sample);
        self.record_noop(rows.noop, name, r);
        let Some(down) = rows.down else { return };
        // S4 0.4.4's target is added on an existing folder (the others make it).
        if let Err(e) = std::fs::create_dir_all(&dl) {
            return self.note(down, name, format!("setup: {e}"));
        }
        let r = self.peers[i].sync(&dl, &prefix, true).measure(&self.probe, &self.rss);
        let r = r.and_then(|d| data::same_tree(src, &dl).map(|_| d.sample));
        self.record(down, name, r);
    }

    /// s4: a target on a hard-linked copy of `src` synced up (row `up`), again (no-op, row
    /// `noop`), then a second target on an empty folder synced down. The target of the upload
    /// is named `{tag}-up`. `false` when the upload failed.
    pub(super) fn s4_round(
        &mut self,
        (src, dir): (&Path, &Path),
        prefix: &str,
        tag: &str,
        (up, noop): (usize, Option<usize>),
        down: Option<(usize, &Path)>,
    ) -> bool {
        let n = data::files(src).map(|f| f.len() as u64).unwrap_or(0);
        let setup = data::link_tree(src, dir).map_err(|e| e.to_string());
        let r = self.s4_phase(setup, &format!("{tag}-up"), dir, prefix, (n, "uploaded", |s| s.uploaded));
        let Some(r) = r.map_err(|e| self.note(up, "s4", format!("setup: {e}"))).ok() else { return false };
        if !self.record(up, "s4", r) {
            return false;
        }
        if let Some(noop) = noop {
            self.s4_noop(noop, &format!("{tag}-up"));
        }
        let Some((down, dl)) = down else { return true };
        let setup = std::fs::create_dir_all(dl).map_err(|e| e.to_string());
        let r = self.s4_phase(setup, &format!("{tag}-down"), dl, prefix, (n, "downloaded", |s| s.downloaded));
        let Some(r) = r.map_err(|e| self.note(down, "s4", format!("setup: {e}"))).ok() else { return true };
        let r = r.and_then(|s| data::same_tree(src, dl).map(|_| s));
        self.record(down, "s4", r);
        true
    }

    /// Add target `name` on `dir` (once `setup` succeeded; `Err` = setup failed), then sync it:
    /// the summary must count `n` files in the field `what`.
    fn s4_phase(
        &mut self,
        setup: Result<(), String>,
        name: &str,
        dir: &Path,
        prefix: &str,
        (n, what, count): (u64, &str, fn(&tools::Summary) -> u64),
    ) -> Result<Result<Sample, String>, String> {
        setup.and_then(|_| self.s4.add(&self.probe, name, dir, prefix, &self.rss))?;
        Ok(self.s4.sync(&self.probe, name, &self.rss).and_then(|(s, sum)| {
            (count(&sum) == n && sum.errors == 0)
                .then_some(s)
                .ok_or(format!("sync summary {sum:?}, expected {n} {what}"))
        }))
    }

    pub(super) fn s4_noop(&mut self, row: usize, target: &str) {
        let r = self.s4.sync(&self.probe, target, &self.rss).and_then(|(s, sum)| {
            (sum.uploaded == 0 && sum.downloaded == 0 && sum.errors == 0)
                .then_some(s)
                .ok_or(format!("no-op sync did something: {sum:?}"))
        });
        self.record_noop(row, "s4", r);
    }

    /// A no-op must move no object: flag a run that PUT or GET anything.
    pub(super) fn record_noop(&mut self, row: usize, tool: &'static str, r: Result<Sample, String>) {
        if let Ok(s) = &r {
            let count = |op: &str| s.requests.get(op).copied().unwrap_or(0);
            let moved: u64 = ["PutObject", "UploadPart", "CopyObject", "DeleteObject", "DeleteObjects"]
                .iter()
                .map(|op| count(op))
                .sum();
            // s4's lease on a store without conditional writes: its intent written, renewed
            // every 15 s (lease::RENEW), and removed; nothing else of a no-op writes.
            let renewals = 1 + (s.secs / 15.0) as u64;
            let lease = tool == "s4" && count("DeleteObject") == 1 && count("PutObject") <= renewals;
            if moved > 0 && !(lease && moved == count("PutObject") + 1) {
                let what = format!("the no-op run sent {moved} write requests ({:?})", s.requests);
                self.note(row, tool, what);
            }
        }
        self.record(row, tool, r);
    }

    /// The goal: a no-op sync of 100,000 files in half the fastest peer's time. s4
    /// uploads the tree once; every tool then checks the same prefix against the same files
    /// (S4 0.4.4 in s4's folder, reading s4's index: they share the format).
    pub(super) fn noop(&mut self) {
        let n = self.cfg.noop_files;
        let src = self.tmp.join("many");
        if let Err(e) = data::small_tree(&src, n, 11, Some(4096)) {
            return eprintln!("throughput: writing {}: {e}", src.display());
        }
        let up = self.row("noop_up", format!("first sync up, {n} files of 4 KiB (s4 only)"), n as f64, "files/s");
        let noop = self.row("noop", format!("sync no-op, {n} files"), n as f64, "files/s");
        let (dir, prefix) = (self.tmp.join("s4-many"), format!("{}many/", self.run));
        if !self.s4_round((&src, &dir), &prefix, "many", (up, None), None) {
            return;
        }
        self.noop_all(noop, "many-up", (&src, &dir), &prefix);
    }

    /// No-op syncs of s4's target, then of every peer on the prefix s4 uploaded (S4 0.4.4 in
    /// s4's folder, reading s4's index: they share the format), each `reps` times.
    pub(super) fn noop_all(&mut self, row: usize, target: &str, (src, dir): (&Path, &Path), prefix: &str) {
        for _ in 0..self.cfg.reps {
            self.s4_noop(row, target);
            for i in 0..self.peers.len() {
                let name = self.peers[i].name;
                let local = if self.peers[i].keeps_state() { dir } else { src };
                let r = self.peers[i].sync(local, prefix, false).measure(&self.probe, &self.rss);
                self.record_noop(row, name, r.map(|d| d.sample));
            }
        }
    }
}

//! The sync sections: `s4 sync` (the release binary) against `aws s3 sync` and `rclone sync`
//! on small files: upload, no-op and download of S4_BENCH_SMALL_FILES, and the no-op of
//! S4_BENCH_NOOP_FILES that DESIGN.md sets a goal for.

use std::path::Path;

use super::cost::Sample;
use super::{data, tools, Bench};

impl Bench {
    /// Upload, no-op and download syncs of many small files; every tool on its own prefix.
    /// The trees stay until the run ends: on ext4, creating files soon after deleting
    /// thousands costs the creator kernel CPU (inode allocation skips recently deleted
    /// inodes), which would bill one tool's download for the previous tool's cleanup.
    pub(super) fn small(&mut self) {
        let n = self.cfg.small_files;
        let src = self.tmp.join("small");
        let bytes = match data::small_tree(&src, n, 7) {
            Ok(b) => b,
            Err(e) => return eprintln!("throughput: writing {}: {e}", src.display()),
        };
        let kib = bytes / 1024;
        let up = self.row("small_up", format!("sync up {n} files of 1-8 KiB ({kib} KiB)"), n as f64, "files/s");
        let noop = self.row("small_noop", format!("sync no-op, {n} files"), n as f64, "files/s");
        let down = self.row("small_down", format!("sync down {n} files to an empty folder"), n as f64, "files/s");
        // Diagnostic: the same download with more transfers in flight (hides per-GET latency).
        let jobs = self.cfg.alt_jobs;
        let down_alt = (jobs > 0).then(|| {
            self.row(
                "small_down_jobs",
                format!("sync down {n} files, s4 --jobs {jobs} (diagnostic)"),
                n as f64,
                "files/s",
            )
        });
        for rep in 0..self.cfg.reps {
            let prefix = format!("{}small/s4-{rep}/", self.run);
            let dir = self.tmp.join(format!("s4-up-{rep}"));
            let dl = self.tmp.join(format!("s4-dl-{rep}"));
            let ok = self.s4_round((&src, &dir), &prefix, &format!("small-{rep}"), (up, Some(noop)), Some((down, &dl)));
            if let (true, Some(row)) = (ok, down_alt) {
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
                    .and_then(|s| data::same_tree(&src, &dl).map(|_| s));
                self.record(row, "s4", r);
            }
            for i in 0..self.peers.len() {
                let name = self.peers[i].name;
                let prefix = format!("{}small/{name}-{rep}/", self.run);
                let dl = self.tmp.join(format!("{name}-dl-{rep}"));
                let r = self.peers[i].sync(&src, &prefix, false).measure(&self.probe, &self.rss).map(|d| d.sample);
                if !self.record(up, name, r) {
                    continue;
                }
                let r = self.peers[i].sync(&src, &prefix, false).measure(&self.probe, &self.rss).map(|d| d.sample);
                self.record_noop(noop, name, r);
                let r = self.peers[i].sync(&dl, &prefix, true).measure(&self.probe, &self.rss);
                let r = r.and_then(|d| data::same_tree(&src, &dl).map(|_| d.sample));
                self.record(down, name, r);
            }
        }
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
            let moved: u64 = ["PutObject", "UploadPart", "CopyObject", "DeleteObject", "DeleteObjects"]
                .iter()
                .filter_map(|op| s.requests.get(*op))
                .sum();
            if moved > 0 {
                let what = format!("the no-op run sent {moved} write requests ({:?})", s.requests);
                self.note(row, tool, what);
            }
        }
        self.record(row, tool, r);
    }

    /// The DESIGN goal: a no-op sync of 10,000 files in half of the best peer's 0.7 s.
    pub(super) fn noop(&mut self) {
        let n = self.cfg.noop_files;
        let src = self.tmp.join("many");
        if let Err(e) = data::small_tree(&src, n, 11) {
            return eprintln!("throughput: writing {}: {e}", src.display());
        }
        let up = self.row("noop_up", format!("sync up {n} files (setup, one run)"), n as f64, "files/s");
        let noop = self.row("noop", format!("sync no-op, {n} files (goal: s4 <= 0.35 s)"), n as f64, "files/s");
        // One upload each, then the no-op runs interleaved across tools.
        let dir = self.tmp.join("s4-many");
        let s4_ok = self.s4_round((&src, &dir), &format!("{}many/s4/", self.run), "many", (up, None), None);
        let mut ok = Vec::new();
        for i in 0..self.peers.len() {
            let name = self.peers[i].name;
            let r =
                self.peers[i].sync(&src, &format!("{}many/{name}/", self.run), false).measure(&self.probe, &self.rss);
            ok.push(self.record(up, name, r.map(|d| d.sample)));
        }
        for _ in 0..self.cfg.reps {
            if s4_ok {
                self.s4_noop(noop, "many-up");
            }
            for (i, _) in ok.iter().enumerate().filter(|(_, ok)| **ok) {
                let name = self.peers[i].name;
                let r = self.peers[i]
                    .sync(&src, &format!("{}many/{name}/", self.run), false)
                    .measure(&self.probe, &self.rss);
                self.record_noop(noop, name, r.map(|d| d.sample));
            }
        }
    }
}

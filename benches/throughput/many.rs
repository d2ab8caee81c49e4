//! Issue 13's million files: `s4 sync` of S4_BENCH_MANY_FILES (run.sh --many: 1,000,000) files
//! of 1 KiB: the first sync up (s4 only: a peer's first upload of a million objects is as long
//! again per peer), the no-op, and a sync after 100 files changed, with peak RSS, every peer on
//! the prefix s4 uploaded (as in the 100,000-file no-op).

use super::{data, Bench};

/// Files edited before each tool's "100 changed" run.
const CHANGED: usize = 100;

impl Bench {
    pub(super) fn many(&mut self) {
        let n = self.cfg.many_files;
        let src = self.tmp.join("million");
        let t = std::time::Instant::now();
        if let Err(e) = data::small_tree(&src, n, 13, Some(1024)) {
            return eprintln!("throughput: writing {}: {e}", src.display());
        }
        eprintln!("throughput: wrote {n} files in {:.0} s", t.elapsed().as_secs_f64());
        let up = self.row("many_up", format!("first sync up, {n} files of 1 KiB (s4 only)"), n as f64, "files/s");
        let noop = self.row("many_noop", format!("sync no-op, {n} files"), n as f64, "files/s");
        let changed = self.row("many_changed", format!("sync, {CHANGED} of {n} files changed"), n as f64, "files/s");
        let (dir, prefix) = (self.tmp.join("s4-million"), format!("{}million/", self.run));
        if !self.s4_round((&src, &dir), &prefix, "million", (up, None), None) {
            return;
        }
        self.noop_all(noop, "million-up", (&src, &dir), &prefix);
        // Each tool meets 100 files it has not seen yet (the trees are hard links of one
        // another: an edit in `src` is one in s4's folder too).
        let mut round = 0;
        let mut edit = |b: &mut Bench, row: usize, tool: &str| {
            round += 1;
            let r = data::edit_spread(&src, n, CHANGED, round);
            if let Err(e) = &r {
                b.note(row, tool, format!("setup: {e}"));
            }
            r.is_ok()
        };
        if edit(self, changed, "s4") {
            let r = self.s4.sync(&self.probe, "million-up", &self.rss).and_then(|(s, sum)| {
                (sum.uploaded == CHANGED as u64 && sum.errors == 0)
                    .then_some(s)
                    .ok_or(format!("sync summary {sum:?}, expected {CHANGED} uploaded"))
            });
            self.record(changed, "s4", r);
        }
        for i in 0..self.peers.len() {
            let name = self.peers[i].name;
            if !edit(self, changed, name) {
                continue;
            }
            let local = if self.peers[i].keeps_state() { &dir } else { &src };
            let r = self.peers[i].sync(local, &prefix, false).measure(&self.probe, &self.rss);
            self.record(changed, name, r.map(|d| d.sample));
        }
        let _ = std::fs::remove_dir_all(&src);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

//! The move section (issue 13): a folder of S4_BENCH_MOVE_FILES files and S4_BENCH_MOVE_MIB MiB
//! is renamed (`mv photos archive/`) and synced; then a second machine that had the folder
//! applies the move. s4 against rclone's `sync --track-renames` (one way each, the same move).

use super::{data, Bench};

impl Bench {
    pub(super) fn moves(&mut self) {
        let (n, mib) = (self.cfg.move_files, self.cfg.move_mib);
        let src = self.tmp.join("move-src/photos");
        let each = ((mib << 20) / n.max(1) as u64).max(1);
        let written = (0..n).try_for_each(|i| {
            let dir = src.join(format!("d{:02}", i / 100));
            std::fs::create_dir_all(&dir)?;
            let mut rng = data::Rng::new(1000 + i as u64);
            let mut body = vec![0u8; each as usize];
            rng.fill(&mut body);
            std::fs::write(dir.join(format!("img-{i:05}.jpg")), body)
        });
        if let Err(e) = written {
            return eprintln!("throughput: writing {}: {e}", src.display());
        }
        let what = format!("{n} files, {} MiB", (each * n as u64) >> 20);
        let up = self.row("move_up", format!("mv photos archive/, synced up ({what})"), n as f64, "files/s");
        let down =
            self.row("move_down", format!("the same move applied on another machine ({what})"), n as f64, "files/s");
        for rep in 0..self.cfg.reps {
            self.s4_move(&src, rep, (up, down));
            if let Some(i) = self.peers.iter().position(|p| p.name == "rclone") {
                self.rclone_move(i, &src, rep, (up, down));
            }
        }
    }

    /// Folders `a` and `b` of one target's prefix, both holding `photos/`; `a` renames it.
    fn s4_move(&mut self, src: &std::path::Path, rep: usize, (up, down): (usize, usize)) {
        let base = self.tmp.join(format!("s4-move-{rep}"));
        let (a, b) = (base.join("a"), base.join("b"));
        let prefix = format!("{}move/s4-{rep}/", self.run);
        let (ta, tb) = (format!("move-{rep}-a"), format!("move-{rep}-b"));
        let setup = data::link_tree(src, &a.join("photos"))
            .and_then(|_| std::fs::create_dir_all(&b))
            .map_err(|e| e.to_string())
            .and_then(|_| self.s4.add(&self.probe, &ta, &a, &prefix, &self.rss))
            .and_then(|_| self.s4.add(&self.probe, &tb, &b, &prefix, &self.rss))
            .and_then(|_| self.s4.sync(&self.probe, &ta, &self.rss))
            .and_then(|_| self.s4.sync(&self.probe, &tb, &self.rss))
            .and_then(|_| {
                std::fs::create_dir_all(a.join("archive"))
                    .and_then(|_| std::fs::rename(a.join("photos"), a.join("archive/photos")))
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = setup {
            return self.note(up, "s4", format!("setup: {e}"));
        }
        for (row, target, dir) in [(up, &ta, &a), (down, &tb, &b)] {
            let r = self.s4.sync(&self.probe, target, &self.rss).and_then(|(s, sum)| {
                let sent = sum.bytes_up + sum.bytes_down;
                let ok = sum.errors == 0 && sum.moved == self.cfg.move_files as u64;
                ok.then_some((s, sent)).ok_or(format!("sync summary {sum:?}, expected {} moved", self.cfg.move_files))
            });
            let r = r.and_then(|(s, sent)| data::same_tree(src, &dir.join("archive/photos")).map(|_| (s, sent)));
            if let Ok((_, sent)) = &r {
                self.note(row, "s4", format!("{sent} bytes sent"));
            }
            self.record(row, "s4", r.map(|(s, _)| s));
        }
    }

    /// rclone: copy up, copy down to `b`, rename in `a`, `sync --track-renames` up, rename
    /// nothing in `b` and `sync --track-renames` down.
    fn rclone_move(&mut self, i: usize, src: &std::path::Path, rep: usize, (up, down): (usize, usize)) {
        let base = self.tmp.join(format!("rclone-move-{rep}"));
        let (a, b) = (base.join("a"), base.join("b"));
        let prefix = format!("{}move/rclone-{rep}/", self.run);
        let (probe, rss) = (&self.probe, self.rss.clone());
        let peer = &self.peers[i];
        let run = |r: super::tools::Run| r.measure(probe, &rss).map(|d| d.sample);
        let setup = data::link_tree(src, &a.join("photos"))
            .and_then(|_| std::fs::create_dir_all(&b))
            .map_err(|e| e.to_string())
            .and_then(|_| run(peer.sync(&a, &prefix, false)))
            .and_then(|_| run(peer.sync(&b, &prefix, true)))
            .and_then(|_| {
                std::fs::create_dir_all(a.join("archive"))
                    .and_then(|_| std::fs::rename(a.join("photos"), a.join("archive/photos")))
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = setup {
            return self.note(up, "rclone", format!("setup: {e}"));
        }
        let peer = &self.peers[i];
        let r_up = run(peer.sync_renames(&a, &prefix, false));
        let r_down = run(peer.sync_renames(&b, &prefix, true));
        let r_down = r_down.and_then(|s| data::same_tree(src, &b.join("archive/photos")).map(|_| s));
        self.record(up, "rclone", r_up);
        self.record(down, "rclone", r_down);
    }
}

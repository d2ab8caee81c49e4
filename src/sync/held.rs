//! Deletions held through the main pass until the guards have seen the whole plan, streamed
//! (issue 10: held deletions grew with the tree): the first [`IN_MEMORY`] stay in memory (moves
//! pair with these, type changes look them up), the rest go to an unnamed temporary file, a
//! JSON line each, counted for the guards as they go and read back one at a time on release.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Seek, Write};

use super::exec::Job;
use super::guard::{self, Tally};
use super::plan::Decision;
use super::state::Indexes;
use super::{interrupted, Run};

/// Deletions kept in memory; a folder of this many files moved is still one sync, no guard.
pub const IN_MEMORY: usize = 50_000;

pub struct Held {
    mem: Vec<Job>,
    /// How many stay in memory.
    limit: usize,
    spill: Option<Spill>,
}

impl Default for Held {
    fn default() -> Held {
        Held { mem: Vec::new(), limit: IN_MEMORY, spill: None }
    }
}

struct Spill {
    file: BufWriter<File>,
    /// What the spilled deletions add to the guards' count (none of them is paired as a move).
    tally: Tally,
}

/// Count one held deletion for the guards.
pub fn tally(t: &mut Tally, job: &Job) {
    match job.decision {
        Decision::DeleteLocal { .. } => {
            t.delete_local += 1;
            if job.ri.is_some_and(|e| !e.is_tombstone()) {
                t.vanished_remote += 1;
            }
        }
        _ => t.delete_remote += 1,
    }
}

/// A file in the temp folder that no one else can open: unlinked as soon as it is made.
fn unnamed() -> std::io::Result<File> {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("s4-held-{}-{n}", std::process::id()));
    let file = File::options().read(true).write(true).create_new(true).open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(file)
}

impl Held {
    pub fn push(&mut self, job: Job) -> Result<(), String> {
        if self.mem.len() < self.limit {
            self.mem.push(job);
            return Ok(());
        }
        let fail =
            |e: String| format!("holding deletions in a temporary file ({}): {e}", std::env::temp_dir().display());
        if self.spill.is_none() {
            let file = unnamed().map_err(|e| fail(e.to_string()))?;
            self.spill = Some(Spill { file: BufWriter::new(file), tally: Tally::default() });
        }
        let spill = self.spill.as_mut().expect("made above");
        tally(&mut spill.tally, &job);
        serde_json::to_writer(&mut spill.file, &job).map_err(|e| fail(e.to_string()))?;
        spill.file.write_all(b"\n").map_err(|e| fail(e.to_string()))
    }

    /// The deletions in memory (the first ones planned).
    pub fn in_memory(&self) -> &[Job] {
        &self.mem
    }

    /// The spilled deletions' share of the guards' count.
    pub fn spilled(&self) -> Tally {
        self.spill.as_ref().map(|s| s.tally).unwrap_or_default()
    }

    /// Every deletion, in the order held: memory first, then the file, one line at a time.
    pub fn release(self) -> Result<impl Iterator<Item = Result<Job, String>>, String> {
        let rest = match self.spill {
            None => None,
            Some(s) => {
                let mut file = s.file.into_inner().map_err(|e| format!("holding deletions: {e}"))?;
                file.rewind().map_err(|e| format!("holding deletions: {e}"))?;
                Some(BufReader::new(file).lines().map(|line| {
                    let line = line.map_err(|e| format!("reading held deletions: {e}"))?;
                    serde_json::from_str(&line).map_err(|e| format!("reading held deletions: {e}"))
                }))
            }
        };
        Ok(self.mem.into_iter().map(Ok).chain(rest.into_iter().flatten()))
    }
}

impl Run<'_> {
    /// The deletions held through the main pass, carried out unless a guard stops them;
    /// then `Some(why)`, and none of them runs (`--force` overrides). An interrupted run
    /// drops them: the next run plans them again.
    pub(super) async fn release_deletes(&mut self, idx: &mut Indexes) -> Result<Option<String>, String> {
        let held = self.held.take().unwrap_or_default();
        if interrupted() {
            self.release_renames(idx).await?;
            return Ok(None);
        }
        // A deletion held for its rename moves its bytes or deletes nothing (see `renames`).
        let moves = |j: &&Job| self.moved.contains(&j.key) || self.renames.contains_key(&j.key);
        for job in held.in_memory().iter().filter(|j| !moves(j)) {
            tally(&mut self.tally, job);
        }
        let spilled = held.spilled();
        self.tally.delete_local += spilled.delete_local;
        self.tally.delete_remote += spilled.delete_remote;
        self.tally.vanished_remote += spilled.vanished_remote;
        let n = self.names;
        if let Some(why) = guard::check(&self.tally, self.opts.max_delete, &n.local_uri, &n.remote_uri) {
            if !self.opts.force {
                self.release_renames(idx).await?;
                return Ok(Some(why));
            }
            crate::warn!("--force: deleting anyway: {why}");
        }
        for job in held.release()? {
            self.release_one(job?, idx).await?;
        }
        self.release_renames(idx).await?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::index::Entry;
    use crate::sync::plan::{local_side, side};

    fn deletion(key: &str, local: bool) -> Job {
        let live = Entry::new(Some(1.0), Some(1.0), None);
        Job {
            key: key.into(),
            decision: if local { Decision::DeleteLocal { ts: 5 } } else { Decision::DeleteRemote { ts: 5 } },
            local_mtime: local.then_some(1.0),
            remote_size: 3,
            remote_lm: (!local).then_some(1),
            li: Some(live),
            ri: Some(live),
            local: local_side(Some(1.0), None, Some(1.0)),
            remote: side(Some(1.0), Some(1.0), Some(1.0)),
            local_size: local.then_some(3),
            etag: Some("5d41402abc4b2a76b9719d911017c592".into()),
            after_deletes: false,
            moved_from: None,
        }
    }

    #[test]
    fn held_deletions_beyond_memory_go_to_a_file_and_come_back_in_order() {
        let mut held = Held { limit: 3, ..Held::default() };
        let jobs: Vec<Job> = (0..8).map(|i| deletion(&format!("k{i} ü\n\"x\""), i % 3 == 0)).collect();
        for j in &jobs {
            held.push(j.clone()).unwrap();
        }
        assert_eq!(held.in_memory().len(), 3);
        // k3, k6 delete locally (both recorded live on S3: vanished), k4, k5, k7 on S3.
        let t = held.spilled();
        assert_eq!((t.delete_local, t.vanished_remote, t.delete_remote), (2, 2, 3));
        let back: Vec<Job> = held.release().unwrap().map(Result::unwrap).collect();
        assert_eq!(back.len(), jobs.len());
        for (a, b) in back.iter().zip(&jobs) {
            assert_eq!(
                (&a.key, a.decision, a.etag.as_deref(), a.li, a.local),
                (&b.key, b.decision, b.etag.as_deref(), b.li, b.local)
            );
        }
    }
}

//! The merge: three sorted streams (the local walk, the S3 listing, the two indexes) joined by
//! key into one observation per key, in key order (DESIGN.md: merge → plan → pool). Memory holds
//! a few listing pages (listing.rs) and a bounded channel of the walk, whatever the tree's size.

use std::path::Path;
use std::sync::Arc;

use super::listing::Lister;
use super::remote::{Meta, Remote};
use super::scan::{Item, LocalFile, Scanner};
use super::state::Indexes;
use crate::ignore::IgnoreRules;

/// The longest file name ext4, xfs, btrfs and most others take, in bytes.
const NAME_MAX: usize = 255;

/// What is known of one key: the local file and the S3 object, each if present (the indexes
/// are looked up by the planner, which also changes them).
pub struct Observation {
    pub key: String,
    pub local: Option<LocalFile>,
    pub remote: Option<Meta>,
}

pub struct Merge {
    remote: Arc<dyn Remote>,
    prefix: String,
    rules: Arc<IgnoreRules>,
    /// `--exclude` / `--include`: keys left alone this run.
    leave_alone: Option<IgnoreRules>,
    rx: tokio::sync::mpsc::Receiver<Item>,
    walker: tokio::task::JoinHandle<()>,
    lister: Lister,
    local: Option<Item>,
    listed: Option<(String, Meta)>,
    indexed: Option<String>,
    /// Keys the walk could not see (and all below them): never planned, so never deleted.
    blocked: Vec<String>,
    pub local_files: u64,
    pub remote_files: u64,
    /// Files the walk failed to read (each already reported).
    pub errors: u64,
}

/// How the walk runs: on a blocking thread streaming into a bounded channel; or, in the
/// simulation (`inline`), whole and at once in this thread (see `Ctx::blocking`).
pub struct Walk {
    pub follow_symlinks: bool,
    pub clean_temp: bool,
    pub inline: bool,
}

impl Merge {
    #[allow(clippy::too_many_arguments)]
    pub async fn start(
        remote: Arc<dyn Remote>,
        prefix: &str,
        root: &Path,
        rules: Arc<IgnoreRules>,
        leave_alone: Option<IgnoreRules>,
        walk: Walk,
        idx: &Indexes,
    ) -> Result<Merge, String> {
        let scanner =
            Scanner::new(root, rules.clone())?.follow_symlinks(walk.follow_symlinks).clean_temp(walk.clean_temp);
        let (rx, walker) = if walk.inline {
            let items: Vec<Item> = scanner.filter_map(noticed).collect();
            let (all, rx) = tokio::sync::mpsc::channel::<Item>(items.len().max(1));
            for item in items {
                all.try_send(item).expect("room for the whole walk");
            }
            (rx, tokio::spawn(async {}))
        } else {
            let (tx, rx) = tokio::sync::mpsc::channel::<Item>(1024);
            let walker = tokio::task::spawn_blocking(move || {
                for item in scanner.filter_map(noticed) {
                    if tx.blocking_send(item).is_err() {
                        return;
                    }
                }
            });
            (rx, walker)
        };
        // The listing is cut where the remote index says its pages will end (listing.rs).
        let bounds = idx.bounds(remote.page_keys()).into_iter().map(|k| format!("{prefix}{k}")).collect();
        let mut m = Merge {
            lister: Lister::new(remote.clone(), prefix, bounds),
            remote,
            prefix: prefix.to_string(),
            rules,
            leave_alone,
            rx,
            walker,
            local: None,
            listed: None,
            indexed: idx.next_key(None),
            blocked: Vec::new(),
            local_files: 0,
            remote_files: 0,
            errors: 0,
        };
        m.local = m.rx.recv().await;
        m.listed = m.next_listed(idx).await?;
        Ok(m)
    }

    /// The next key to plan, in key order; `None` at the end.
    pub async fn next(&mut self, idx: &Indexes) -> Result<Option<Observation>, String> {
        loop {
            let key = [
                self.local.as_ref().map(item_key),
                self.listed.as_ref().map(|(k, _)| k.as_str()),
                self.indexed.as_deref(),
            ]
            .into_iter()
            .flatten()
            .min()
            .map(str::to_string);
            let Some(key) = key else { return Ok(None) };
            let mut local = None;
            if self.local.as_ref().is_some_and(|i| item_key(i) == key) {
                match self.local.take() {
                    Some(Item::File(f)) => {
                        self.local_files += 1;
                        local = Some(f);
                    }
                    // The root itself failed mid-walk: what it holds is unknown, and taking it
                    // for empty would delete everything on S3.
                    Some(Item::Skipped { key, reason, .. }) if key.is_empty() => return Err(reason),
                    Some(Item::Skipped { key, reason, error }) => {
                        crate::warn!("{reason}");
                        self.errors += u64::from(error);
                        self.blocked.push(key);
                    }
                    _ => {}
                }
                self.local = self.rx.recv().await;
            }
            let remote = match self.listed.take_if(|(k, _)| *k == key) {
                Some((_, o)) => {
                    self.remote_files += 1;
                    self.listed = self.next_listed(idx).await?;
                    Some(o)
                }
                // The remote index names a live object the listing lacks: deleted behind s4's
                // back, or a listing that lags. A Garage cluster after a node's crash lists an
                // object through one node and not yet through another, while HEAD finds it
                // (the cluster test: machine b skipped a file as "deleted on S3" and exited 0
                // without it, and a machine that had it would have deleted its copy). One HEAD
                // tells.
                None if idx.remote().get(&key).is_some_and(|e| !e.is_tombstone()) => {
                    match self.remote.head(&format!("{}{key}", self.prefix)).await {
                        Ok(Some(o)) => {
                            crate::debug!("{key}: not listed, but HEAD finds it (the listing lags)");
                            self.remote_files += 1;
                            Some(o)
                        }
                        Ok(None) => None,
                        Err(e) => {
                            // Not knowing whether it is gone, do nothing with it this run.
                            crate::warn!("{key}: skipped: the listing lacks it and {e}");
                            self.errors += 1;
                            continue;
                        }
                    }
                }
                None => None,
            };
            if self.indexed.as_deref() == Some(key.as_str()) {
                self.indexed = idx.next_key(Some(&key));
            }
            // Keys come in order: a block is over once the key sorts after everything below it.
            self.blocked.retain(|b| {
                let below = format!("{b}/");
                key.as_str() <= below.as_str() || key.starts_with(&below)
            });
            if self.blocked.iter().any(|b| key == *b || key.starts_with(&format!("{b}/"))) {
                continue;
            }
            if key == ".syncignore" {
                continue; // settled before the rules were read (see `run`)
            }
            // Left alone this run, neither side's copy touched (a .syncignore rule, by
            // contrast, deletes the synced copy on S3).
            if self.leave_alone.as_ref().is_some_and(|r| r.is_ignored(&key, false)) {
                continue;
            }
            if self.rules.is_ignored(&key, false) && idx.local().get(&key).is_none_or(|e| e.is_tombstone()) {
                continue; // ignored and never synced from here (see `next_listed`)
            }
            return Ok(Some(Observation { key, local, remote }));
        }
    }

    /// The walk must have ended by itself: one that died early looked like a folder that ends
    /// there, and everything after would have been planned as deleted locally (those plans are
    /// held until here; the error drops them).
    pub async fn finish(self) -> Result<(), String> {
        drop(self.rx);
        self.walker.await.map_err(|e| format!("scanning the folder: {e}"))
    }

    /// Next remote object as (relative key, object). Keys matching .syncignore are skipped
    /// unless this machine synced them before: then they stay visible so the sync deletes the
    /// remote copy (S4's documented behaviour for newly ignored files; the local file stays).
    async fn next_listed(&mut self, idx: &Indexes) -> Result<Option<(String, Meta)>, String> {
        while let Some((key, o)) = self.lister.next().await.map_err(|e| e.to_string())? {
            let Some(rel) = key.strip_prefix(self.prefix.as_str()) else { continue };
            if rel.is_empty() || crate::ignore::is_reserved(rel) {
                continue;
            }
            if rel.ends_with('/') && o.size == 0 {
                continue; // a folder marker (the console's "Create folder"): folders come with their files
            }
            if !crate::fsutil::is_safe_key(rel) {
                crate::warn!("Skipping {}: not a safe relative path for a local file", self.remote.uri(&key));
                continue;
            }
            if let Some(long) = rel.split('/').find(|c| c.len() > NAME_MAX) {
                crate::warn!(
                    "Skipping {}: name too long for a local file (a part is {} bytes; filesystems allow {NAME_MAX})",
                    self.remote.uri(&key),
                    long.len()
                );
                continue;
            }
            if self.rules.is_ignored(rel, false) && idx.local().get(rel).is_none_or(|e| e.is_tombstone()) {
                continue;
            }
            return Ok(Some((rel.to_string(), o)));
        }
        Ok(None)
    }
}

/// Notices are logged as the walk meets them; the rest goes to the plan.
fn noticed(item: Item) -> Option<Item> {
    match item {
        Item::Notice(n) => {
            crate::warn!("{n}");
            None
        }
        item => Some(item),
    }
}

fn item_key(i: &Item) -> &str {
    match i {
        Item::File(f) => &f.key,
        Item::Skipped { key, .. } => key,
        Item::Notice(_) => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::flaky::Flaky;
    use crate::sync::index::Entry;

    /// Found by the 3-node Garage test (vendor-tests/cluster.rs): after a node's crash, an object
    /// was listed through one node and not yet through another, so the machine syncing through
    /// the second took it for deleted on S3 (its remote index said live) and skipped it, exit 0;
    /// a machine holding a copy would have deleted it. HEAD finds it.
    #[tokio::test]
    async fn an_indexed_object_the_listing_lacks_is_looked_up_not_taken_for_deleted() {
        let store = Flaky::new();
        let root = tempfile::tempdir().unwrap();
        for key in ["p/lagging.txt", "p/listed.txt"] {
            store.put_bytes(key, bytes::Bytes::from_static(b"body"), &Default::default()).await.unwrap();
        }
        store.hidden.lock().unwrap().insert("p/lagging.txt".into());
        // The remote index records all three.
        let recorded: crate::sync::index::Index = ["gone.txt", "lagging.txt", "listed.txt"]
            .into_iter()
            .map(|k| (k.to_string(), Entry::new(Some(100.0), Some(100.0), None)))
            .collect();
        let body = bytes::Bytes::from(crate::sync::index::encode(&recorded));
        store.put_bytes("p/.index", body, &Default::default()).await.unwrap();
        let idx = Indexes::load(&*store, root.path(), "p/").await.unwrap();
        let walk = Walk { follow_symlinks: false, clean_temp: false, inline: true };
        let rules = Arc::new(IgnoreRules::default());
        let mut m = Merge::start(store.clone(), "p/", root.path(), rules, None, walk, &idx).await.unwrap();
        let mut seen = Vec::new();
        while let Some(o) = m.next(&idx).await.unwrap() {
            seen.push((o.key, o.remote.map(|r| r.size)));
        }
        let want = [("gone.txt", None), ("lagging.txt", Some(4)), ("listed.txt", Some(4))];
        assert_eq!(seen, want.map(|(k, s)| (k.to_string(), s)));
    }
}

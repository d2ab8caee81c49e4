//! The two indexes during a run, and committing them: local atomically, remote with a
//! conditional PUT that merges on 412 (SPEC-S4 §2: S4's remote "lock" did nothing).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use bytes::Bytes;

use super::index::{self, Entry, Etag, Index};
use super::remote::{Lister, Remote};
use crate::fsutil;
use crate::s3::PutOptions;

/// What to do about an index that cannot be read. Refusing is the safe default: read as
/// empty, a broken index would make every file look new (or every deletion unknown).
const CORRUPT_HINT: &str = "s4 does not sync on an index it cannot read: move it aside and sync again \
     (files are then compared by content; identical ones are not transferred)";

pub struct Indexes {
    pub local: Index,
    pub remote: Index,
    pub local_path: PathBuf,
    pub remote_key: String,
    /// ETag of the remote index as read (or last written); `None` when it did not exist.
    remote_etag: Option<String>,
    remote_existed: bool,
    /// Keys this run changed in the remote index: re-applied on top of a newer index on 412.
    dirty: BTreeSet<String>,
    /// The remote entry of each dirty key as it was before we changed it (`None`: absent),
    /// to tell on a merge whether another machine changed the key meanwhile.
    base: BTreeMap<String, Option<Entry>>,
    /// Uploaded keys whose LastModified is not known yet (a PUT answer carries none).
    pending: BTreeMap<String, Pending>,
    /// Dirty keys whose remote entry describes an object version we are sure of (downloaded,
    /// found identical, or an upload the listing confirmed by ETag): on a merge, another
    /// machine's stamp for that same version may be adopted.
    adoptable: BTreeSet<String>,
    /// Changes since the last commit.
    pub uncommitted: usize,
    /// Does the store honour If-Match / If-None-Match on PUT? Else the run holds the lease.
    conditional: bool,
    lease: Option<std::sync::Arc<super::lease::Lease>>,
}

impl Indexes {
    pub async fn load(client: &dyn Remote, root: &std::path::Path, prefix: &str) -> Result<Indexes, String> {
        let local_path = root.join(".index");
        let local = match std::fs::read(&local_path) {
            Ok(b) => {
                index::decode(&b).map_err(|e| format!("local index {}: {e}; {}", local_path.display(), CORRUPT_HINT))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Index::new(),
            Err(e) => return Err(format!("reading local index {}: {e}", local_path.display())),
        };
        let remote_key = format!("{prefix}.index");
        let (remote, remote_etag, remote_existed) = match client.get_bytes(&remote_key).await {
            Ok(Some((bytes, meta))) => {
                let idx = index::decode(&bytes)
                    .map_err(|e| format!("remote index {}: {e}; {}", client.uri(&remote_key), CORRUPT_HINT))?;
                (idx, meta.etag, true)
            }
            Ok(None) => (Index::new(), None, false),
            Err(e) => return Err(e.to_string()),
        };
        Ok(Indexes {
            local,
            remote,
            local_path,
            remote_key,
            remote_etag,
            remote_existed,
            dirty: BTreeSet::new(),
            base: BTreeMap::new(),
            pending: BTreeMap::new(),
            adoptable: BTreeSet::new(),
            uncommitted: 0,
            conditional: true,
            lease: None,
        })
    }

    /// How index writes are guarded from here on: conditional PUTs, or (`false`) the lease the
    /// run holds; then the remote index is read again, now that no other s4 can change it.
    pub async fn guard(
        &mut self,
        client: &dyn Remote,
        conditional: bool,
        lease: Option<std::sync::Arc<super::lease::Lease>>,
    ) -> Result<(), String> {
        self.conditional = conditional;
        if lease.is_some() {
            self.merge_newer(client).await?;
        }
        self.lease = lease;
        Ok(())
    }

    pub fn set(&mut self, key: &str, local: Entry, remote: Entry) {
        self.local.insert(key.to_string(), local);
        let before = self.remote.insert(key.to_string(), remote);
        self.base.entry(key.to_string()).or_insert(before);
        self.dirty.insert(key.to_string());
        self.uncommitted += 1;
    }

    /// Record an upload; its LastModified is filled in by `commit` from one listing, or the
    /// record is undone if the object is no longer ours by then.
    pub fn set_uploaded(&mut self, key: &str, mtime: f64, stamp: f64, etag: Option<String>) {
        let parsed = etag.as_deref().map(Etag::parse);
        let local_before = self.local.get(key).copied();
        self.set(key, Entry::new(Some(mtime), Some(stamp), parsed), Entry::new(None, Some(stamp), parsed));
        self.pending.entry(key.to_string()).or_insert(Pending { etag: None, local_before }).etag = etag;
    }

    /// Our upload of `key` is no longer on S3 (deleted, or replaced by another writer before
    /// this commit): forget that it was synced, on both sides, so the next run sees the local
    /// file as changed and decides (a conflict, never a deletion: issue 10, scenario 1, where
    /// a tombstone recorded here deleted the edit on the next run).
    fn undo_upload(&mut self, key: &str, p: Pending, why: &str) {
        crate::warn!("{key}: {why} right after s4 uploaded it; the local file is kept and the next sync decides");
        match p.local_before {
            Some(e) => self.local.insert(key.to_string(), e),
            None => self.local.remove(key),
        };
        match self.base.get(key).copied().flatten() {
            Some(e) => self.remote.insert(key.to_string(), e),
            None => self.remote.remove(key),
        };
    }

    pub fn mark_adoptable(&mut self, key: &str) {
        self.adoptable.insert(key.to_string());
    }

    /// Has the remote index anything new since the last commit? Changes to the local record
    /// alone (a settled tombstone dropped) only rewrite the local file.
    pub fn remote_changed(&self) -> bool {
        !self.dirty.is_empty() || !self.pending.is_empty()
    }

    /// Change only the local record (the remote index already says the same).
    pub fn set_local(&mut self, key: &str, local: Entry) {
        self.local.insert(key.to_string(), local);
        self.uncommitted += 1;
    }

    pub fn drop_local(&mut self, key: &str) {
        if self.local.remove(key).is_some() {
            self.uncommitted += 1;
        }
    }

    /// Fill in LastModified of uploaded keys with one ListObjectsV2 pass over the uploaded
    /// range (one request per 1,000 keys, instead of a HEAD per file).
    async fn resolve_pending(&mut self, client: &dyn Remote, prefix: &str) -> Result<(), String> {
        let (Some(first), Some(last)) = (self.pending.keys().next().cloned(), self.pending.keys().next_back().cloned())
        else {
            return Ok(());
        };
        // A strict prefix of the first key sorts before it: list from there.
        let mut start = format!("{prefix}{first}");
        start.pop();
        let mut lister = Lister::new(client, prefix, Some(&start));
        while let Some((full, obj)) = lister.next().await.map_err(|e| e.to_string())? {
            let Some(rel) = full.strip_prefix(prefix) else { continue };
            if rel > last.as_str() {
                break;
            }
            if let Some(ours) = self.pending.remove(rel) {
                self.settle_upload(rel, ours, Some(obj));
            }
        }
        // Not in the listing (a store that lists late, or an odd key): ask each one directly.
        for (key, ours) in std::mem::take(&mut self.pending) {
            let meta = client.head(&format!("{prefix}{key}")).await.map_err(|e| e.to_string())?;
            self.settle_upload(&key, ours, meta);
        }
        Ok(())
    }

    /// What the store holds at an uploaded key decides its record: our object gets its
    /// LastModified; another writer's object, or none, undoes the record (see `undo_upload`).
    /// A remote entry is never left without a LastModified: that is a tombstone's shape, and
    /// would tell every machine to delete a live file.
    fn settle_upload(&mut self, key: &str, ours: Pending, found: Option<super::remote::Meta>) {
        match found {
            None => self.undo_upload(key, ours, "deleted on S3"),
            Some(m) if matches!((&ours.etag, &m.etag), (Some(a), Some(b)) if a != b) => {
                self.undo_upload(key, ours, "replaced on S3 by another writer")
            }
            Some(m) => {
                if let Some(e) = self.remote.get_mut(key) {
                    // No LastModified at all would be a tombstone's shape: 0 reads as "changed".
                    e.local_timestamp = Some(m.lm.unwrap_or(0) as f64);
                }
                if matches!((&ours.etag, &m.etag), (Some(a), Some(b)) if a == b) {
                    self.adoptable.insert(key.to_string());
                }
            }
        }
    }

    /// Write both indexes: the remote one conditionally, then the local one atomically. In
    /// that order: if the network fails in between, the local index still describes the old
    /// agreement and the next run re-checks the keys (identical content is then recorded, not
    /// transferred), instead of a local index that claims an agreement S3 never saw.
    pub async fn commit(&mut self, client: &dyn Remote, prefix: &str) -> Result<(), String> {
        if self.remote_changed() {
            self.resolve_pending(client, prefix).await?;
            self.commit_remote(client).await?;
        }
        self.uncommitted = 0;
        // Committed: a later 412 only needs the changes made after this point, so memory
        // stays bounded by the commit batch, not by the tree.
        self.dirty.clear();
        self.base.clear();
        self.adoptable.clear();
        let bytes = index::encode(&self.local);
        fsutil::write_atomic(&self.local_path, 0o644, |f| std::io::Write::write_all(f, &bytes))
            .map_err(|e| format!("writing local index {}: {e}", self.local_path.display()))
    }

    async fn put_remote(
        &self,
        client: &dyn Remote,
        if_match: Option<String>,
        if_none_match: bool,
    ) -> crate::s3::Result<Option<String>> {
        let opts =
            PutOptions { content_type: Some("application/gzip".into()), if_match, if_none_match, ..Default::default() };
        let body = Bytes::from(index::encode(&self.remote));
        client.put_bytes(&self.remote_key, body, &opts).await
    }

    async fn commit_remote(&mut self, client: &dyn Remote) -> Result<(), String> {
        if !self.conditional {
            // The run holds the prefix's lease (lease.rs): no other s4 writes meanwhile; the
            // merge still takes in what other tools may have written.
            if let Some(lease) = &self.lease {
                lease.check()?;
            }
            self.merge_newer(client).await?;
            self.remote_etag = self.put_remote(client, None, false).await.map_err(|e| e.to_string())?;
            return Ok(());
        }
        for _ in 0..8 {
            match self.put_remote(client, self.remote_etag.clone(), !self.remote_existed).await {
                Ok(etag) => {
                    self.remote_etag = etag;
                    self.remote_existed = true;
                    return Ok(());
                }
                Err(e) if e.is_precondition_failed() => {
                    crate::info!("The remote index changed during this sync (another machine?); merging");
                    self.merge_newer(client).await?;
                }
                Err(e) => return Err(e.to_string()),
            }
        }
        Err(format!("{}: gave up after repeated concurrent updates", client.uri(&self.remote_key)))
    }

    /// Someone else wrote the remote index: take theirs and re-apply the keys we changed.
    async fn merge_newer(&mut self, client: &dyn Remote) -> Result<(), String> {
        let (fresh, etag, existed) = match client.get_bytes(&self.remote_key).await.map_err(|e| e.to_string())? {
            Some((bytes, meta)) => (index::decode(&bytes).map_err(|e| format!("remote index: {e}"))?, meta.etag, true),
            None => (Index::new(), None, false),
        };
        let mut merged = fresh;
        for key in &self.dirty {
            let Some(ours) = self.remote.get(key) else { continue };
            let theirs = merged.get(key).copied();
            let base = self.base.get(key).copied().flatten();
            if self.base.get(key).is_some_and(|b| *b != theirs) {
                // Another machine wrote this key meanwhile.
                if base == Some(*ours) {
                    continue; // we did not change its remote entry: theirs stands
                }
                // It recorded the very version we hold under another stamp: its stamp wins, and
                // our local record adopts it, or both machines would transfer it again. The
                // same version means the same ETag; a LastModified alone (whole seconds) could
                // be two writes in one second, so entries without ETags are never adopted.
                if let Some(t) = theirs.filter(|t| {
                    self.adoptable.contains(key)
                        && !t.is_tombstone()
                        && matches!((t.etag, ours.etag), (Some(a), Some(b)) if a == b)
                        && t.remote_timestamp != ours.remote_timestamp
                }) {
                    if let Some(l) = self.local.get_mut(key).filter(|l| !l.is_tombstone()) {
                        l.remote_timestamp = t.remote_timestamp;
                    }
                    continue;
                }
            }
            merged.insert(key.clone(), *ours);
        }
        self.remote = merged;
        self.remote_etag = etag;
        self.remote_existed = existed;
        Ok(())
    }
}

/// An upload recorded but not yet confirmed by the listing.
struct Pending {
    /// The ETag our upload got, to tell our object from a later one.
    etag: Option<String>,
    /// The local record before the upload, restored if the object turns out not to be ours.
    local_before: Option<Entry>,
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::sim::bucket::{Behaviour, Bucket, Handle};
    use crate::sim::sched::Sched;

    fn store() -> Handle {
        let b = Behaviour {
            conditional_put: true,
            conditional_delete: true,
            list_etags: true,
            page: 1000,
            faults: 0,
            copy_conditions: true,
            copy_source_pinned: true,
        };
        Handle::new(Arc::new(Bucket::new(b, Arc::new(Sched::free()))), 0)
    }

    fn e(lm: f64, stamp: f64, etag: &str) -> Entry {
        Entry::new(Some(lm), Some(stamp), Some(Etag::parse(etag)))
    }

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    /// Write `index` as the remote index another machine committed.
    async fn commit_as_other(s: &Handle, index: &Index) {
        s.put_bytes("p/.index", Bytes::from(index::encode(index)), &PutOptions::default()).await.unwrap();
    }

    /// The index merge after a 412 (issue 10: the riskiest logic had no unit test): keys only
    /// the other machine changed keep its entry; keys only we changed keep ours; a key we
    /// downloaded that it re-recorded under another stamp, same ETag, adopts its stamp; the
    /// same LastModified with another ETag is another version and is not adopted.
    #[tokio::test]
    async fn merge_after_412_keeps_both_machines_changes() {
        let s = store();
        let dir = tempfile::tempdir().unwrap();
        let base: Index = [("theirs", e(10.0, 10.0, A)), ("ours", e(10.0, 10.0, A)), ("both", e(10.0, 10.0, A))]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        commit_as_other(&s, &base).await;
        let mut idx = Indexes::load(&s, dir.path(), "p/").await.unwrap();
        // We: upload a new version of "ours"; download a version of "both" that the other
        // machine uploaded (same ETag B), recorded under our stamp 21; and "same-second",
        // downloaded as ETag A at LastModified 30.
        idx.set("ours", e(20.0, 20.0, B), e(20.0, 20.0, B));
        idx.set("both", e(21.0, 21.0, B), e(20.0, 21.0, B));
        idx.mark_adoptable("both");
        idx.set("same-second", e(30.0, 30.0, A), e(30.0, 30.0, A));
        idx.mark_adoptable("same-second");
        // They: changed "theirs", recorded "both" (their upload, ETag B) under stamp 25, and
        // "same-second" as ETag B at the same LastModified.
        let mut other = base.clone();
        other.insert("theirs".into(), e(15.0, 15.0, B));
        other.insert("both".into(), e(20.0, 25.0, B));
        other.insert("same-second".into(), e(30.0, 31.0, B));
        commit_as_other(&s, &other).await;
        idx.merge_newer(&s).await.unwrap();
        assert_eq!(idx.remote["theirs"], e(15.0, 15.0, B), "their change kept");
        assert_eq!(idx.remote["ours"], e(20.0, 20.0, B), "our change kept");
        assert_eq!(idx.remote["both"], e(20.0, 25.0, B), "their stamp for the same version");
        assert_eq!(idx.local["both"].remote_timestamp, Some(25.0), "our record adopts it");
        assert_eq!(idx.remote["same-second"], e(30.0, 30.0, A), "another version: ours stands");
        assert_eq!(idx.local["same-second"].remote_timestamp, Some(30.0));
    }

    /// Issue 10, scenario 1: our upload is deleted (or replaced) on S3 before our commit. The
    /// record is undone, never left shaped like a tombstone: the next run then sees the local
    /// file as changed and reports a conflict instead of deleting it.
    #[tokio::test]
    async fn upload_deleted_before_commit_is_unrecorded_not_a_tombstone() {
        let s = store();
        let dir = tempfile::tempdir().unwrap();
        let mut idx = Indexes::load(&s, dir.path(), "p/").await.unwrap();
        let before = e(5.0, 5.0, A);
        idx.local.insert("f".into(), before);
        idx.remote.insert("f".into(), before);
        let etag = s.put_bytes("p/f", Bytes::from_static(b"new"), &PutOptions::default()).await.unwrap();
        idx.set_uploaded("f", 9.0, 9.0, etag);
        s.delete("p/f", None).await.unwrap(); // another machine's delete
        idx.commit(&s, "p/").await.unwrap();
        assert_eq!(idx.local["f"], before, "the local record is what it was");
        let remote = index::decode(&s.get_bytes("p/.index").await.unwrap().unwrap().0).unwrap();
        assert_eq!(remote["f"], before, "the remote index never says our upload was synced");
    }
}

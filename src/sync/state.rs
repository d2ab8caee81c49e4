//! The two indexes during a run, and committing them: local atomically, remote with a
//! conditional PUT that merges on 412 (SPEC-S4 §2: S4's remote "lock" did nothing).

use std::collections::BTreeMap;
use std::path::PathBuf;

use bytes::Bytes;

use super::index::{Entry, Etag};
use super::remote::{Lister, Remote};
use super::table::{Packed, Side, Table};
use crate::fsutil;
use crate::s3::PutOptions;

/// What to do about an index that cannot be read. Refusing is the safe default: read as
/// empty, a broken index would make every file look new (or every deletion unknown).
const CORRUPT_HINT: &str = "s4 does not sync on an index it cannot read: move it aside and sync again \
     (files are then compared by content; identical ones are not transferred)";

pub struct Indexes {
    /// Both indexes as of the last load or commit, held compactly (table.rs).
    table: Table,
    /// What this run changed since the last commit, merged into the table by the commit.
    overlay: BTreeMap<Box<str>, Change>,
    pub local_path: PathBuf,
    pub remote_key: String,
    /// ETag of the remote index as read (or last written); `None` when it did not exist.
    remote_etag: Option<String>,
    remote_existed: bool,
    /// Size of the remote index as last read or written: its next body is made in one
    /// allocation of about that size, not grown by doubling (~25 MB at a million files).
    remote_bytes: usize,
    /// Changes since the last commit.
    pub uncommitted: usize,
    /// Does the store honour If-Match / If-None-Match on PUT? Else the run holds the lease.
    conditional: bool,
    lease: Option<std::sync::Arc<super::lease::Lease>>,
}

/// One key's changes since the last commit, packed (a commit batch can hold 100,000 keys).
/// `local` and `remote` are `None` where the table's record stands.
#[derive(Clone, Copy)]
struct Change {
    local: Option<Packed>,
    remote: Option<Packed>,
    /// Set for keys this run changed in the remote index ("dirty": re-applied on top of a
    /// newer index on 412): the remote record before our change, to tell on a merge whether
    /// another machine changed the key meanwhile.
    base: Option<Packed>,
    /// Set for an upload recorded but not confirmed by the listing yet (a PUT answer carries
    /// no LastModified): the local record before it, restored if the object is not ours.
    /// The ETag our upload got, to tell our object from a later one, is the remote record's.
    before: Option<Packed>,
    /// The remote record describes an object version we are sure of (downloaded, found
    /// identical, or an upload the listing confirmed by ETag): on a merge, another machine's
    /// stamp for that same version may be adopted.
    adoptable: bool,
}

const UNCHANGED: Change = Change { local: None, remote: None, base: None, before: None, adoptable: false };

/// One index of the two, read through the run's changes (`idx.local().get(key)`).
pub struct View<'a> {
    idx: &'a Indexes,
    side: Side,
}

impl View<'_> {
    pub fn get(&self, key: &str) -> Option<Entry> {
        let changed = self.idx.overlay.get(key).and_then(|c| c.slot(self.side));
        match changed {
            Some(p) => self.idx.table.unpack(p),
            None => self.idx.table.get(self.side, key),
        }
    }

    /// Keys in this index as of the last commit (sizes commit batches).
    pub fn len(&self) -> usize {
        self.idx.table.len(self.side)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Change {
    fn slot(&self, s: Side) -> Option<Packed> {
        match s {
            Side::Local => self.local,
            Side::Remote => self.remote,
        }
    }
}

impl Indexes {
    pub async fn load(client: &dyn Remote, root: &std::path::Path, prefix: &str) -> Result<Indexes, String> {
        let local_path = root.join(".index");
        let mut table = Table::default();
        match std::fs::File::open(&local_path) {
            Ok(f) => table
                .load(Side::Local, f)
                .map_err(|e| format!("local index {}: {e}; {}", local_path.display(), CORRUPT_HINT))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("reading local index {}: {e}", local_path.display())),
        }
        let remote_key = format!("{prefix}.index");
        let (remote_etag, remote_existed, remote_bytes) = match client.get_bytes(&remote_key).await {
            Ok(Some((bytes, meta))) => {
                table
                    .load(Side::Remote, &bytes[..])
                    .map_err(|e| format!("remote index {}: {e}; {}", client.uri(&remote_key), CORRUPT_HINT))?;
                (meta.etag, true, bytes.len())
            }
            Ok(None) => (None, false, 0),
            Err(e) => return Err(e.to_string()),
        };
        Ok(Indexes {
            table,
            overlay: BTreeMap::new(),
            local_path,
            remote_key,
            remote_etag,
            remote_existed,
            remote_bytes,
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

    pub fn local(&self) -> View<'_> {
        View { idx: self, side: Side::Local }
    }

    pub fn remote(&self) -> View<'_> {
        View { idx: self, side: Side::Remote }
    }

    /// The first key after `after` in either index (the merge walks them beside the scan).
    pub fn next_key(&self, after: Option<&str>) -> Option<String> {
        use std::ops::Bound::{Excluded, Unbounded};
        let live = |k: &str| self.local().get(k).is_some() || self.remote().get(k).is_some();
        let mut from = after.map(str::to_string);
        let table = loop {
            match self.table.next_key(from.as_deref()) {
                Some(k) if !live(k) => from = Some(k.to_string()),
                k => break k,
            }
        };
        let bound = after.map_or(Unbounded, Excluded);
        let changed = self.overlay.range::<str, _>((bound, Unbounded)).map(|(k, _)| &**k).find(|k| live(k));
        match (table, changed) {
            (Some(a), Some(b)) => Some(a.min(b).to_string()),
            (a, b) => a.or(b).map(str::to_string),
        }
    }

    fn change(&mut self, key: &str) -> &mut Change {
        if !self.overlay.contains_key(key) {
            self.overlay.insert(key.into(), UNCHANGED);
        }
        self.overlay.get_mut(key).expect("just inserted")
    }

    fn current(&self, s: Side, key: &str) -> Packed {
        self.overlay.get(key).and_then(|c| c.slot(s)).unwrap_or_else(|| self.table.packed(s, key))
    }

    pub fn set(&mut self, key: &str, local: Entry, remote: Entry) {
        let before = self.current(Side::Remote, key);
        let l = self.table.pack(Some(local), Packed::ABSENT);
        let r = self.table.pack(Some(remote), l);
        let c = self.change(key);
        (c.local, c.remote) = (Some(l), Some(r));
        c.base.get_or_insert(before);
        self.uncommitted += 1;
    }

    /// Record an upload; its LastModified is filled in by `commit` from one listing, or the
    /// record is undone if the object is no longer ours by then.
    pub fn set_uploaded(&mut self, key: &str, mtime: f64, stamp: f64, etag: Option<String>) {
        let parsed = etag.as_deref().map(Etag::parse);
        let local_before = self.current(Side::Local, key);
        self.set(key, Entry::new(Some(mtime), Some(stamp), parsed), Entry::new(None, Some(stamp), parsed));
        let c = self.change(key);
        c.before.get_or_insert(local_before);
    }

    /// Our upload of `key` is no longer on S3 (deleted, or replaced by another writer before
    /// this commit): forget that it was synced, on both sides, so the next run sees the local
    /// file as changed and decides (a conflict, never a deletion: issue 10, scenario 1, where
    /// a tombstone recorded here deleted the edit on the next run).
    fn undo_upload(&mut self, key: &str, why: &str) {
        crate::warn!("{key}: {why} right after s4 uploaded it; the local file is kept and the next sync decides");
        let c = self.change(key);
        c.local = c.before;
        c.remote = c.base;
    }

    pub fn mark_adoptable(&mut self, key: &str) {
        self.change(key).adoptable = true;
    }

    /// Has the remote index anything new since the last commit? Changes to the local record
    /// alone (a settled tombstone dropped) only rewrite the local file.
    pub fn remote_changed(&self) -> bool {
        self.overlay.values().any(|c| c.base.is_some() || c.before.is_some())
    }

    /// Change only the local record (the remote index already says the same).
    pub fn set_local(&mut self, key: &str, local: Entry) {
        let l = self.table.pack(Some(local), self.current(Side::Remote, key));
        self.change(key).local = Some(l);
        self.uncommitted += 1;
    }

    pub fn drop_local(&mut self, key: &str) {
        if !self.current(Side::Local, key).is_absent() {
            self.change(key).local = Some(Packed::ABSENT);
            self.uncommitted += 1;
        }
    }

    /// Fill in LastModified of uploaded keys with one ListObjectsV2 pass over the uploaded
    /// range (one request per 1,000 keys, instead of a HEAD per file).
    async fn resolve_pending(&mut self, client: &dyn Remote, prefix: &str) -> Result<(), String> {
        let mut pending = self.overlay.iter().filter(|(_, c)| c.before.is_some()).map(|(k, _)| k.clone());
        let Some(first) = pending.next() else { return Ok(()) };
        let last = pending.next_back().unwrap_or_else(|| first.clone());
        // A strict prefix of the first key sorts before it: list from there.
        let mut start = format!("{prefix}{first}");
        start.pop();
        let mut lister = Lister::new(client, prefix, Some(&start));
        while let Some((full, obj)) = lister.next().await.map_err(|e| e.to_string())? {
            let Some(rel) = full.strip_prefix(prefix) else { continue };
            if rel > &*last {
                break;
            }
            if self.overlay.get(rel).is_some_and(|c| c.before.is_some()) {
                self.settle_upload(rel, Some(obj));
            }
        }
        // Not in the listing (a store that lists late, or an odd key): ask each one directly.
        let left: Vec<Box<str>> =
            self.overlay.iter().filter(|(_, c)| c.before.is_some()).map(|(k, _)| k.clone()).collect();
        for key in left {
            let meta = client.head(&format!("{prefix}{key}")).await.map_err(|e| e.to_string())?;
            self.settle_upload(&key, meta);
        }
        Ok(())
    }

    /// What the store holds at an uploaded key decides its record: our object gets its
    /// LastModified; another writer's object, or none, undoes the record (see `undo_upload`).
    /// A remote entry is never left without a LastModified: that is a tombstone's shape, and
    /// would tell every machine to delete a live file.
    fn settle_upload(&mut self, key: &str, found: Option<super::remote::Meta>) {
        let ours = self.overlay.get(key).and_then(|c| self.table.unpack(c.remote?)).and_then(|e| e.etag);
        let theirs = found.as_ref().and_then(|m| m.etag.as_deref()).map(Etag::parse);
        match found {
            None => self.undo_upload(key, "deleted on S3"),
            Some(_) if matches!((ours, theirs), (Some(a), Some(b)) if a != b) => {
                self.undo_upload(key, "replaced on S3 by another writer")
            }
            Some(m) => {
                if let Some(mut e) = self.remote().get(key) {
                    // No LastModified at all would be a tombstone's shape: 0 reads as "changed".
                    e.local_timestamp = Some(m.lm.unwrap_or(0) as f64);
                    let r = self.table.pack(Some(e), self.current(Side::Remote, key));
                    self.change(key).remote = Some(r);
                }
                if matches!((ours, theirs), (Some(a), Some(b)) if a == b) {
                    self.change(key).adoptable = true;
                }
            }
        }
        self.change(key).before = None;
    }

    /// The run's changes into the table (both sides). The overlay keeps what a merge with a
    /// newer remote index needs until the remote commit succeeds.
    fn apply_overlay(&mut self) {
        self.table.apply(self.overlay.iter().map(|(k, c)| (&**k, [c.local, c.remote])));
        for c in self.overlay.values_mut() {
            c.local = None;
        }
    }

    /// Write both indexes: the remote one conditionally, then the local one atomically. In
    /// that order: if the network fails in between, the local index still describes the old
    /// agreement and the next run re-checks the keys (identical content is then recorded, not
    /// transferred), instead of a local index that claims an agreement S3 never saw.
    pub async fn commit(&mut self, client: &dyn Remote, prefix: &str) -> Result<(), String> {
        let remote_changed = self.remote_changed();
        if remote_changed {
            self.resolve_pending(client, prefix).await?;
        }
        self.apply_overlay();
        if remote_changed {
            self.commit_remote(client).await?;
        }
        self.uncommitted = 0;
        // Committed: a later 412 only needs the changes made after this point, so memory
        // stays bounded by the commit batch, not by the tree.
        self.overlay.clear();
        let table = &self.table;
        fsutil::write_atomic(&self.local_path, 0o644, |f| table.write(Side::Local, f).map(|_| ()))
            .map_err(|e| format!("writing local index {}: {e}", self.local_path.display()))
    }

    async fn put_remote(
        &mut self,
        client: &dyn Remote,
        if_match: Option<String>,
        if_none_match: bool,
    ) -> crate::s3::Result<Option<String>> {
        let opts =
            PutOptions { content_type: Some("application/gzip".into()), if_match, if_none_match, ..Default::default() };
        let room = self.remote_bytes + self.remote_bytes / 8 + (self.overlay.len() << 6);
        let body = self.table.write(Side::Remote, Vec::with_capacity(room)).expect("in-memory write");
        self.remote_bytes = body.len();
        let body = Bytes::from(body);
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
        // The local records into the table first: adoption below changes them there.
        self.apply_overlay();
        let (etag, existed) = match client.get_bytes(&self.remote_key).await.map_err(|e| e.to_string())? {
            Some((bytes, meta)) => {
                self.table.load(Side::Remote, &bytes[..]).map_err(|e| format!("remote index: {e}"))?;
                self.remote_bytes = bytes.len();
                (meta.etag, true)
            }
            None => {
                self.table.load(Side::Remote, &b""[..]).expect("an empty index");
                (None, false)
            }
        };
        let mut fix: Vec<(&str, [Option<Packed>; 2])> = Vec::new();
        for (key, c) in &self.overlay {
            let (Some(base), Some(mine)) = (c.base, c.remote) else { continue };
            let Some(ours) = self.table.unpack(mine) else { continue };
            let theirs = self.table.get(Side::Remote, key);
            if theirs != self.table.unpack(base) {
                // Another machine wrote this key meanwhile.
                if self.table.unpack(base) == Some(ours) {
                    continue; // we did not change its remote entry: theirs stands
                }
                // It recorded the very version we hold under another stamp: its stamp wins, and
                // our local record adopts it, or both machines would transfer it again. The
                // same version means the same ETag; a LastModified alone (whole seconds) could
                // be two writes in one second, so entries without ETags are never adopted.
                if let Some(t) = theirs.filter(|t| {
                    c.adoptable
                        && !t.is_tombstone()
                        && matches!((t.etag, ours.etag), (Some(a), Some(b)) if a == b)
                        && t.remote_timestamp != ours.remote_timestamp
                }) {
                    let local = self.table.packed(Side::Local, key);
                    if let Some(mut l) = self.table.unpack(local).filter(|l| !l.is_tombstone()) {
                        l.remote_timestamp = t.remote_timestamp;
                        fix.push((key, [Some(self.table.restamp(l, local)), None]));
                    }
                    continue;
                }
            }
            fix.push((key, [None, Some(mine)]));
        }
        self.table.apply(fix.into_iter());
        self.remote_etag = etag;
        self.remote_existed = existed;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::sim::bucket::{Behaviour, Bucket, Handle};
    use crate::sim::sched::Sched;
    use crate::sync::index::{self, Index};

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
        // What the next PUT sends, and the local record the commit writes.
        let remote = index::decode(&idx.table.write(Side::Remote, Vec::new()).unwrap()).unwrap();
        let local = |k: &str| idx.table.get(Side::Local, k).unwrap();
        assert_eq!(remote["theirs"], e(15.0, 15.0, B), "their change kept");
        assert_eq!(remote["ours"], e(20.0, 20.0, B), "our change kept");
        assert_eq!(remote["both"], e(20.0, 25.0, B), "their stamp for the same version");
        assert_eq!(local("both").remote_timestamp, Some(25.0), "our record adopts it");
        assert_eq!(remote["same-second"], e(30.0, 30.0, A), "another version: ours stands");
        assert_eq!(local("same-second").remote_timestamp, Some(30.0));
    }

    /// The run's changes are read through before the commit (new keys too, in the merge's key
    /// walk), and the commit writes both files with them merged in: a tombstone, a dropped
    /// local record, a new key, and the ETag field.
    #[tokio::test]
    async fn overlay_reads_through_and_commits() {
        let s = store();
        let dir = tempfile::tempdir().unwrap();
        let synced: Index = [("a", e(1.0, 1.0, A)), ("c", e(1.0, 1.0, A))].map(|(k, v)| (k.to_string(), v)).into();
        commit_as_other(&s, &synced).await;
        std::fs::write(dir.path().join(".index"), index::encode(&synced)).unwrap();
        let mut idx = Indexes::load(&s, dir.path(), "p/").await.unwrap();
        let gone = Entry::new(None, Some(2.0), None);
        idx.set("a", gone, gone);
        idx.set("b", e(3.0, 3.0, B), e(3.0, 3.0, B));
        idx.drop_local("c");
        assert_eq!(idx.local().get("a"), Some(gone));
        assert_eq!(idx.local().get("b"), Some(e(3.0, 3.0, B)));
        assert_eq!(idx.local().get("c"), None);
        assert_eq!(idx.remote().get("c"), Some(e(1.0, 1.0, A)));
        assert_eq!(idx.next_key(Some("a")).as_deref(), Some("b"), "a key new this run is walked");
        idx.commit(&s, "p/").await.unwrap();
        let local = index::decode(&std::fs::read(dir.path().join(".index")).unwrap()).unwrap();
        let remote = index::decode(&s.get_bytes("p/.index").await.unwrap().unwrap().0).unwrap();
        let want: Index = [("a", gone), ("b", e(3.0, 3.0, B))].map(|(k, v)| (k.to_string(), v)).into();
        assert_eq!(local, want);
        assert_eq!(
            remote,
            [("a", gone), ("b", e(3.0, 3.0, B)), ("c", e(1.0, 1.0, A))].map(|(k, v)| (k.to_string(), v)).into()
        );
        assert_eq!((idx.local().len(), idx.remote().len()), (2, 3));
        assert_eq!(idx.local().get("b"), Some(e(3.0, 3.0, B)), "read from the table once committed");
        // A commit batch at a million files holds 100,000 of these.
        assert_eq!(std::mem::size_of::<Change>(), 104);
    }

    /// Issue 10, scenario 1: our upload is deleted (or replaced) on S3 before our commit. The
    /// record is undone, never left shaped like a tombstone: the next run then sees the local
    /// file as changed and reports a conflict instead of deleting it.
    #[tokio::test]
    async fn upload_deleted_before_commit_is_unrecorded_not_a_tombstone() {
        let s = store();
        let dir = tempfile::tempdir().unwrap();
        let before = e(5.0, 5.0, A);
        let synced: Index = [("f".to_string(), before)].into_iter().collect();
        commit_as_other(&s, &synced).await;
        std::fs::write(dir.path().join(".index"), index::encode(&synced)).unwrap();
        let mut idx = Indexes::load(&s, dir.path(), "p/").await.unwrap();
        let etag = s.put_bytes("p/f", Bytes::from_static(b"new"), &PutOptions::default()).await.unwrap();
        idx.set_uploaded("f", 9.0, 9.0, etag);
        s.delete("p/f", None).await.unwrap(); // another machine's delete
        idx.commit(&s, "p/").await.unwrap();
        assert_eq!(idx.local().get("f"), Some(before), "the local record is what it was");
        let remote = index::decode(&s.get_bytes("p/.index").await.unwrap().unwrap().0).unwrap();
        assert_eq!(remote["f"], before, "the remote index never says our upload was synced");
    }
}

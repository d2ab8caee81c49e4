//! The two indexes during a run, and committing them: local atomically, remote with a
//! conditional PUT that merges on 412 (SPEC-S4 §2: S4's remote "lock" did nothing).

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::index::{Entry, Etag};
use super::kept::{FileId, Kept};
use super::remote::{Fresh, Remote};
use super::table::{Packed, Side, Table};
use crate::fsutil;
use crate::s3::{ErrorKind, PutOptions};

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
    /// Changes since the last commit.
    pub uncommitted: usize,
    /// Does the store honour If-Match / If-None-Match on PUT? Else the run holds the lease.
    conditional: bool,
    lease: Option<std::sync::Arc<super::lease::Lease>>,
    /// The local index file the table's local side is, as last read or written (`Some(None)`:
    /// there is none; `None`: not known, so nothing is kept).
    local_file: Option<Option<FileId>>,
}

/// Why the remote index could not be read: the request failed, or the body is not an index.
enum ReadError {
    Failed(String),
    Bad(String),
}
use ReadError::{Bad, Failed};

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
        Self::load_kept(client, root, prefix, None).await
    }

    /// [`Indexes::load`], starting from what an earlier round `kept` (kept.rs): each file is
    /// read again only if it is no longer the version kept.
    pub(super) async fn load_kept(
        client: &dyn Remote,
        root: &std::path::Path,
        prefix: &str,
        kept: Option<Kept>,
    ) -> Result<Indexes, String> {
        let local_path = root.join(".index");
        let remote_key = format!("{prefix}.index");
        let (mut table, local_file, etag) = match kept {
            Some(k) => (k.table, Some(k.local_file), Some(k.remote_etag)),
            None => (Table::default(), None, None),
        };
        let reading = |e| format!("reading local index {}: {e}", local_path.display());
        let now = FileId::at(&local_path).map_err(reading)?;
        let local_file = match local_file {
            Some(kept) if kept == now => now,
            _ => match std::fs::File::open(&local_path) {
                Ok(f) => {
                    let id = FileId::of(&f.metadata().map_err(reading)?);
                    table
                        .load(Side::Local, f)
                        .map_err(|e| format!("local index {}: {e}; {}", local_path.display(), CORRUPT_HINT))?;
                    Some(id)
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    table.load(Side::Local, &b""[..]).expect("an empty index");
                    None
                }
                Err(e) => return Err(reading(e)),
            },
        };
        let mut idx = Indexes {
            table,
            overlay: BTreeMap::new(),
            local_path,
            remote_key,
            remote_etag: etag,
            remote_existed: true,
            uncommitted: 0,
            conditional: true,
            lease: None,
            local_file: Some(local_file),
        };
        idx.read_remote(client).await.map_err(|e| match e {
            Bad(e) => format!("remote index {}: {e}; {}", client.uri(&idx.remote_key), CORRUPT_HINT),
            Failed(e) => e,
        })?;
        Ok(idx)
    }

    /// The remote index into the table's remote side, unless it is still the version the
    /// table holds (one conditional GET, 304 without a body): `true` when it was read.
    async fn read_remote(&mut self, client: &dyn Remote) -> Result<bool, ReadError> {
        let got = match (&self.remote_etag, self.remote_existed) {
            (Some(etag), true) => match client.get_if_changed(&self.remote_key, etag).await {
                Ok(Fresh::Unchanged) => return Ok(false),
                Ok(Fresh::Missing) => None,
                Ok(Fresh::Changed(bytes, meta)) => Some((bytes, meta)),
                Err(e) => return Err(Failed(e.to_string())),
            },
            _ => client.get_bytes(&self.remote_key).await.map_err(|e| Failed(e.to_string()))?,
        };
        (self.remote_etag, self.remote_existed) = match got {
            Some((bytes, meta)) => {
                self.table.load(Side::Remote, &bytes[..]).map_err(Bad)?;
                (meta.etag, true)
            }
            None => {
                self.table.load(Side::Remote, &b""[..]).expect("an empty index");
                (None, false)
            }
        };
        Ok(true)
    }

    /// What a later round may start from (kept.rs): both indexes, if all this run changed
    /// is committed and both files' versions are known.
    pub(super) fn keep(self) -> Option<Kept> {
        let settled = self.uncommitted == 0
            && self.overlay.values().all(|c| c.local.is_none() && c.remote.is_none() && c.before.is_none());
        let remote_etag = self.remote_etag.filter(|_| self.remote_existed && settled)?;
        // A long-lived table gathers the text of keys gone and ETags no record names: a
        // fresh read now and then makes it compact again.
        if self.table.bloated() {
            return None;
        }
        Some(Kept { table: self.table, remote_etag, local_file: self.local_file? })
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

    /// Every `step`-th key of the remote index as read (where to cut the listing: listing.rs).
    pub fn bounds(&self, step: usize) -> Vec<&str> {
        self.table.every(Side::Remote, step)
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

    /// Fill in LastModified of uploaded keys from listing pages (a request per 1,000 keys,
    /// instead of a HEAD per file). Each page starts just before the first key still pending:
    /// keys scattered over a large tree (100 changed among a million) cost a page each at
    /// most, not a listing of all that lies between the first and the last (issue 13: that
    /// was ~1,000 pages, a third of such a sync's time).
    async fn resolve_pending(&mut self, client: &dyn Remote, prefix: &str) -> Result<(), String> {
        let pending: Vec<Box<str>> =
            self.overlay.iter().filter(|(_, c)| c.before.is_some()).map(|(k, _)| k.clone()).collect();
        let mut next = 0;
        // The last key a page showed: a page that ended before the next pending key is
        // followed from there, not listed again from the same start (review).
        let mut seen = String::new();
        while let Some(first) = pending.get(next) {
            // A strict prefix of the key sorts before it: list from there.
            let mut start = format!("{prefix}{first}");
            start.pop();
            let start = start.max(seen.clone());
            let mut page = client.list(prefix, Some(&start), None).await.map_err(|e| e.to_string())?;
            // A truncated page with nothing on it: follow its token (the same start would
            // bring the same empty page).
            while page.objects.is_empty() {
                let Some(token) = page.next.take() else { break };
                page = client.list(prefix, None, Some(&token)).await.map_err(|e| e.to_string())?;
            }
            // How far the page speaks for the store: to its last key, or (the listing's last
            // page) to the end. A store that ignored the start speaks for nothing new: the
            // keys left are asked one by one below.
            let reach = match (&page.next, page.objects.last()) {
                (Some(_), Some((last, _))) if *last > start => Some(last.clone()),
                _ => None,
            };
            for (full, obj) in page.objects {
                let Some(rel) = full.strip_prefix(prefix) else { continue };
                if self.overlay.get(rel).is_some_and(|c| c.before.is_some()) {
                    self.settle_upload(rel, Some(obj));
                }
            }
            // Past the pending keys the page spoke for; those it did not show stay pending.
            next += match reach.as_deref().and_then(|k| k.strip_prefix(prefix)) {
                Some(last) => pending[next..].partition_point(|k| &**k <= last),
                None => pending.len() - next,
            };
            seen = reach.unwrap_or_default();
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
        self.local_file = None;
        fsutil::write_atomic(&self.local_path, 0o644, |f| table.write(Side::Local, f).map(|_| ()))
            .map_err(|e| format!("writing local index {}: {e}", self.local_path.display()))?;
        // The folder's lock is held: the file there is the one just written.
        self.local_file = FileId::at(&self.local_path).ok();
        Ok(())
    }

    async fn put_remote(
        &mut self,
        client: &dyn Remote,
        if_match: Option<String>,
        if_none_match: bool,
    ) -> crate::s3::Result<Option<String>> {
        // The body goes through a temp file beside the local index and is streamed from
        // there: at a million keys it is ~28 MB that would otherwise sit in memory while it
        // is sent, on top of the table (the peak of a first sync, issue 13). Its MD5 is taken
        // as it is written: the store checks the body by it (file bodies go without a signed
        // hash, and a damaged index would stop every machine).
        let table = &self.table;
        let (body, md5) = fsutil::TempFile::create(&self.local_path)
            .and_then(|(body, f)| Ok((body, table.write(Side::Remote, fsutil::Md5Writer::new(f))?.digest())))
            .map_err(|e| {
                let what = format!("writing the remote index's body beside {}", self.local_path.display());
                crate::s3::Error::new("PutObject", client.uri(&self.remote_key), ErrorKind::Io(format!("{what}: {e}")))
            })?;
        let opts = PutOptions {
            content_type: Some("application/gzip".into()),
            content_md5: Some(crate::s3::base64(&md5)),
            if_match,
            if_none_match,
            ..Default::default()
        };
        client.put_whole_file(&self.remote_key, body.path(), &opts).await
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
            // It exists now: a later merge in this run may ask for it conditionally (review).
            self.remote_existed = true;
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
        // Still the version the table holds: it already has our changes on top of it.
        let read = self.read_remote(client).await.map_err(|e| match e {
            Bad(e) => format!("remote index: {e}"),
            Failed(e) => e,
        })?;
        if !read {
            return Ok(());
        }
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
        Ok(())
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;

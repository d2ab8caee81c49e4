//! The two indexes during a run, and committing them: local atomically, remote with a
//! conditional PUT that merges on 412 (SPEC-S4 §2: S4's remote "lock" did nothing).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use bytes::Bytes;

use super::index::{self, Entry, Index};
use crate::fsutil;
use crate::s3::{Client, Payload, PutOptions};

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
    /// Value: the ETag our upload got, to tell our object from a later one in the listing.
    pending: BTreeMap<String, Option<String>>,
    /// Dirty keys whose remote entry describes an object version we are sure of (downloaded,
    /// found identical, or an upload the listing confirmed by ETag): on a merge, another
    /// machine's stamp for that same version may be adopted.
    adoptable: BTreeSet<String>,
    /// Changes since the last commit.
    pub uncommitted: usize,
    /// Does the store honour If-Match / If-None-Match on PUT? Learnt at the first commit.
    conditional: Option<bool>,
}

impl Indexes {
    pub async fn load(client: &Client, root: &std::path::Path, prefix: &str) -> Result<Indexes, String> {
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
            conditional: None,
        })
    }

    pub fn set(&mut self, key: &str, local: Entry, remote: Entry) {
        self.local.insert(key.to_string(), local);
        let before = self.remote.insert(key.to_string(), remote);
        self.base.entry(key.to_string()).or_insert(before);
        self.dirty.insert(key.to_string());
        self.uncommitted += 1;
    }

    /// Record an upload; its LastModified is filled in by `commit` from one listing.
    pub fn set_uploaded(&mut self, key: &str, local: Entry, stamp: f64, etag: Option<String>) {
        self.set(key, local, Entry { local_timestamp: None, remote_timestamp: Some(stamp) });
        self.pending.insert(key.to_string(), etag);
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
    async fn resolve_pending(&mut self, client: &Client, prefix: &str) -> Result<(), String> {
        let (Some(first), Some(last)) = (self.pending.keys().next().cloned(), self.pending.keys().next_back().cloned())
        else {
            return Ok(());
        };
        // A strict prefix of the first key sorts before it: list from there.
        let mut start = format!("{prefix}{first}");
        start.pop();
        let mut lister = client.list(prefix, None, Some(&start));
        while let Some(obj) = lister.next_object().await.map_err(|e| e.to_string())? {
            let Some(rel) = obj.key.strip_prefix(prefix) else { continue };
            if rel > last.as_str() {
                break;
            }
            if let Some(ours) = self.pending.remove(rel) {
                // Another machine may have written the key since our upload: its LastModified
                // must not be recorded against our version, or the two would never be compared.
                // Left unknown, the next run sees a change on S3 and checks.
                let theirs = matches!((&ours, &obj.etag), (Some(a), Some(b)) if a != b);
                if let (Some(e), false) = (self.remote.get_mut(rel), theirs) {
                    e.local_timestamp = super::lm_secs(&obj).map(|t| t as f64);
                }
                if matches!((&ours, &obj.etag), (Some(a), Some(b)) if a == b) {
                    self.adoptable.insert(rel.to_string());
                }
            }
        }
        // Not in the listing (a store that lists late, or an odd key): ask each one directly.
        for (key, ours) in std::mem::take(&mut self.pending) {
            let full = format!("{prefix}{key}");
            match client.head(&full).await.map_err(|e| e.to_string())? {
                Some(meta) => {
                    let theirs = matches!((&ours, &meta.etag), (Some(a), Some(b)) if a != b);
                    if let (Some(e), false) = (self.remote.get_mut(&key), theirs) {
                        e.local_timestamp = meta.last_modified.map(|t| t as f64);
                    }
                }
                // Deleted by someone else since: the entry stays a tombstone, which is true.
                None => crate::warn!("{} was uploaded but is gone already", client.uri(&full)),
            }
        }
        Ok(())
    }

    /// Write both indexes: the remote one conditionally, then the local one atomically. In
    /// that order: if the network fails in between, the local index still describes the old
    /// agreement and the next run re-checks the keys (identical content is then recorded, not
    /// transferred), instead of a local index that claims an agreement S3 never saw.
    pub async fn commit(&mut self, client: &Client, prefix: &str) -> Result<(), String> {
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
        client: &Client,
        if_match: Option<String>,
        if_none_match: bool,
    ) -> crate::s3::Result<Option<String>> {
        let opts =
            PutOptions { content_type: Some("application/gzip".into()), if_match, if_none_match, ..Default::default() };
        let body = Bytes::from(index::encode(&self.remote));
        client.put(&self.remote_key, Payload::Bytes(body), &opts).await
    }

    async fn commit_remote(&mut self, client: &Client) -> Result<(), String> {
        let now = crate::log::now_secs();
        if self.conditional.is_none() {
            self.conditional = super::stores::conditional_writes(&client.store_id(), now);
        }
        if self.conditional.is_none() {
            let honoured = probe_conditional(client, &self.lease_key()).await.map_err(|e| e.to_string())?;
            super::stores::remember_conditional_writes(&client.store_id(), honoured, now);
            if !honoured {
                crate::warn!(
                    "{} ignores conditional writes (If-None-Match): s4 takes a lease object and merges the \
                     index just before each write so syncs from several machines do not overwrite each other",
                    client.uri(&self.remote_key)
                );
            }
            self.conditional = Some(honoured);
        }
        if self.conditional == Some(false) {
            let lease = Lease::acquire(client, &self.lease_key()).await;
            let result = async {
                self.merge_newer(client).await?;
                self.remote_etag = self.put_remote(client, None, false).await.map_err(|e| e.to_string())?;
                Ok(())
            }
            .await;
            if let Some(lease) = lease {
                lease.release(client).await;
            }
            return result;
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

    fn lease_key(&self) -> String {
        let prefix = self.remote_key.strip_suffix(".index").unwrap_or("");
        format!("{prefix}{LEASE}")
    }

    /// Someone else wrote the remote index: take theirs and re-apply the keys we changed.
    async fn merge_newer(&mut self, client: &Client) -> Result<(), String> {
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
                // It recorded the very version we hold (same LastModified) under another stamp:
                // its stamp wins, and our local record adopts it, or both machines would
                // transfer it again.
                if let Some(t) = theirs.filter(|t| {
                    self.adoptable.contains(key)
                        && t.local_timestamp.is_some()
                        && t.local_timestamp == ours.local_timestamp
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

/// This process, now: unique enough to tell machines' leases and probes apart.
fn unique_token() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{}-{nanos}", std::process::id())
}

/// Does the store honour `If-None-Match: *`? Two conditional PUTs of a tiny probe object
/// beside the index: the second must fail. Asked before the first index write of a run, so
/// that write already takes the right path.
async fn probe_conditional(client: &Client, lease_key: &str) -> crate::s3::Result<bool> {
    let prefix = lease_key.strip_suffix(LEASE).unwrap_or("");
    let key = format!("{prefix}{}{}", crate::ignore::LEASE_PROBE_PREFIX, unique_token());
    let create = PutOptions { if_none_match: true, ..Default::default() };
    let stale = PutOptions { if_match: Some("00000000000000000000000000000000".into()), ..Default::default() };
    let body = || Payload::Bytes("probe".into());
    // Index writes rely on both headers: both must be refused where they should be.
    let outcome = async {
        client.put(&key, body(), &create).await?;
        let second = client.put(&key, body(), &create).await;
        let third = client.put(&key, body(), &stale).await;
        let refused = |r: &crate::s3::Result<Option<String>>| match r {
            Err(e) if e.is_precondition_failed() => Ok(true),
            Ok(_) => Ok(false),
            // A store that rejects the header outright does not honour it either.
            Err(e) if matches!(e.status(), Some(400) | Some(501)) => Ok(false),
            Err(e) => Err(e.clone()),
        };
        Ok(refused(&second)? && refused(&third)?)
    }
    .await;
    let _ = client.delete(&key).await;
    outcome
}

/// The lease object beside the index, for stores that ignore conditional writes.
pub const LEASE: &str = ".s4lease";
const LEASE_SECS: u64 = 30;

/// A best-effort mutex for index writes on stores without conditional writes (SPEC-S4 §2):
/// write `{owner} {expiry}` beside the index, wait a moment, read it back; whoever's write
/// stayed holds it. Expiring (30 s) so a crashed machine cannot block the others for long.
struct Lease {
    key: String,
    token: String,
}

impl Lease {
    async fn acquire(client: &Client, key: &str) -> Option<Lease> {
        let now = || crate::log::now_secs().max(0) as u64;
        let token = unique_token();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(LEASE_SECS + 5);
        while std::time::Instant::now() < deadline {
            let held = match client.get_bytes(key).await {
                Ok(Some((b, _))) => String::from_utf8_lossy(&b).into_owned(),
                Ok(None) => String::new(),
                Err(_) => return None,
            };
            let mut parts = held.split_whitespace();
            let (owner, expiry) =
                (parts.next().unwrap_or(""), parts.next().and_then(|e| e.parse::<u64>().ok()).unwrap_or(0));
            if owner.is_empty() || owner == token || expiry <= now() {
                let body = format!("{token} {}", now() + LEASE_SECS);
                if client.put(key, Payload::Bytes(body.into()), &PutOptions::default()).await.is_err() {
                    return None;
                }
                // Let a writer racing us land, then see whose write stayed.
                tokio::time::sleep(std::time::Duration::from_millis(150)).await;
                match client.get_bytes(key).await {
                    Ok(Some((b, _))) if String::from_utf8_lossy(&b).starts_with(&format!("{token} ")) => {
                        return Some(Lease { key: key.to_string(), token });
                    }
                    Ok(_) => {}
                    Err(_) => return None,
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }
        crate::warn!("{} stayed held by another machine; writing the index anyway", client.uri(key));
        None
    }

    async fn release(self, client: &Client) {
        if let Ok(Some((b, _))) = client.get_bytes(&self.key).await {
            if String::from_utf8_lossy(&b).starts_with(&format!("{} ", self.token)) {
                let _ = client.delete(&self.key).await;
            }
        }
    }
}

//! The store as the daemon hands it to the engine: the engine's seam, passed through, noting
//! which versions (ETags) of the remote index a sync reads and writes. The daemon's idle poll
//! asks S3 whether the index is still the version the last sync ended with; that is only the
//! truth when the sync *acted on* everything that version says, hence the trail below.

use std::path::Path;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use crate::s3::fence::Fence;
use crate::s3::{Error, Meter, PutOptions};
use crate::sync::remote::{Fresh, Fut, Meta, Page, Remote, Upload};

/// What one round saw of the remote index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trail {
    /// The ETag of the first read (`Some(None)`: the index was missing).
    pub first: Option<Option<String>>,
    /// The ETag of the last read or write.
    pub last: Option<String>,
    /// A later read found a version this round neither read nor wrote: another machine
    /// wrote the index during the sync (the merge after a 412), and what it changed may not
    /// have been acted on here.
    pub foreign: bool,
}

impl Trail {
    fn read(&mut self, etag: Option<String>) {
        match &self.first {
            None => self.first = Some(etag.clone()),
            Some(_) if etag != self.last => self.foreign = true,
            Some(_) => {}
        }
        self.last = etag;
    }

    /// The index's ETag to poll with after this round, if it can be trusted: the round began
    /// from `known` (or looked at everything: `full`), nobody else wrote meanwhile, and the
    /// store named the version.
    pub fn settled(&self, known: Option<&str>, full: bool) -> Option<String> {
        let began_known = full || self.first.as_ref().is_some_and(|f| f.as_deref() == known);
        (began_known && !self.foreign && self.first.is_some()).then(|| self.last.clone()).flatten()
    }
}

pub struct Tracked {
    inner: Arc<dyn Remote>,
    index_key: String,
    trail: Arc<Mutex<Trail>>,
}

impl Tracked {
    pub fn new(inner: Arc<dyn Remote>, prefix: &str) -> Tracked {
        Tracked { inner, index_key: format!("{prefix}.index"), trail: Arc::default() }
    }

    /// The trail of the round that just ended; a new one starts.
    pub fn take(&self) -> Trail {
        std::mem::take(&mut *self.trail.lock().unwrap())
    }

    pub fn index_key(&self) -> &str {
        &self.index_key
    }

    /// A write of `key` returned `etag`: the index's last version, if it was the index.
    fn wrote(&self, key: &str, etag: Option<String>) -> crate::s3::Result<Option<String>> {
        if key == self.index_key {
            self.trail.lock().unwrap().last = etag.clone();
        }
        Ok(etag)
    }
}

impl Remote for Tracked {
    fn uri(&self, key: &str) -> String {
        self.inner.uri(key)
    }
    fn with_fence(&self, fence: Fence) -> Option<Arc<dyn Remote>> {
        let inner = self.inner.with_fence(fence)?;
        Some(Arc::new(Tracked { inner, index_key: self.index_key.clone(), trail: self.trail.clone() }))
    }
    fn store_id(&self) -> String {
        self.inner.store_id()
    }
    fn remembers(&self) -> bool {
        self.inner.remembers()
    }
    fn token(&self) -> String {
        self.inner.token()
    }
    fn page_keys(&self) -> usize {
        self.inner.page_keys()
    }
    fn list<'a>(&'a self, prefix: &'a str, start_after: Option<&'a str>, token: Option<&'a str>) -> Fut<'a, Page> {
        self.inner.list(prefix, start_after, token)
    }
    fn head<'a>(&'a self, key: &'a str) -> Fut<'a, Option<Meta>> {
        self.inner.head(key)
    }
    fn get_bytes<'a>(&'a self, key: &'a str) -> Fut<'a, Option<(Bytes, Meta)>> {
        Box::pin(async move {
            let got = self.inner.get_bytes(key).await?;
            if key == self.index_key {
                self.trail.lock().unwrap().read(got.as_ref().and_then(|(_, m)| m.etag.clone()));
            }
            Ok(got)
        })
    }
    fn get_if_changed<'a>(&'a self, key: &'a str, etag: &'a str) -> Fut<'a, Fresh> {
        Box::pin(async move {
            let got = self.inner.get_if_changed(key, etag).await?;
            if key == self.index_key {
                self.trail.lock().unwrap().read(match &got {
                    Fresh::Unchanged => Some(etag.trim_matches('"').to_string()),
                    Fresh::Missing => None,
                    Fresh::Changed(_, m) => m.etag.clone(),
                });
            }
            Ok(got)
        })
    }
    fn get_file<'a>(
        &'a self,
        key: &'a str,
        dest: &'a Path,
        size: u64,
        if_match: Option<&'a str>,
        moved: &'a Meter,
    ) -> Fut<'a, Meta> {
        self.inner.get_file(key, dest, size, if_match, moved)
    }
    fn put_file<'a>(
        &'a self,
        key: &'a str,
        path: &'a Path,
        size: u64,
        opts: &'a PutOptions,
        moved: &'a Meter,
    ) -> Fut<'a, Option<String>> {
        self.inner.put_file(key, path, size, opts, moved)
    }
    fn put_bytes<'a>(&'a self, key: &'a str, body: Bytes, opts: &'a PutOptions) -> Fut<'a, Option<String>> {
        Box::pin(async move { self.wrote(key, self.inner.put_bytes(key, body, opts).await?) })
    }
    fn put_whole_file<'a>(&'a self, key: &'a str, path: &'a Path, opts: &'a PutOptions) -> Fut<'a, Option<String>> {
        Box::pin(async move { self.wrote(key, self.inner.put_whole_file(key, path, opts).await?) })
    }
    fn copy<'a>(
        &'a self,
        src: &'a str,
        dst: &'a str,
        size: u64,
        src_etag: Option<&'a str>,
        opts: &'a PutOptions,
    ) -> Fut<'a, Option<String>> {
        self.inner.copy(src, dst, size, src_etag, opts)
    }
    fn delete<'a>(&'a self, key: &'a str, if_match: Option<&'a str>) -> Fut<'a, ()> {
        self.inner.delete(key, if_match)
    }
    fn delete_many<'a>(&'a self, items: &'a [(String, Option<String>)]) -> Fut<'a, Vec<(String, Error)>> {
        self.inner.delete_many(items)
    }
    fn uploads<'a>(&'a self, prefix: &'a str) -> Fut<'a, Vec<Upload>> {
        self.inner.uploads(prefix)
    }
    fn abort_upload<'a>(&'a self, key: &'a str, id: &'a str) -> Fut<'a, ()> {
        self.inner.abort_upload(key, id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(first: Option<Option<&str>>, last: Option<&str>, foreign: bool) -> Trail {
        Trail { first: first.map(|f| f.map(str::to_string)), last: last.map(str::to_string), foreign }
    }

    #[test]
    fn the_index_version_is_trusted_only_when_the_round_acted_on_it() {
        // Read E1, wrote E2 (If-Match E1 passed: nobody wrote between).
        let mut tr = Trail::default();
        tr.read(Some("E1".into()));
        tr.last = Some("E2".into());
        assert_eq!(tr.settled(Some("E1"), false), Some("E2".into()));
        // A key-set round that found the index changed since the last poll: the other
        // machine's changes to other keys were not acted on.
        assert_eq!(tr.settled(Some("E0"), false), None);
        assert_eq!(tr.settled(Some("E0"), true), Some("E2".into()), "a full sync looked at everything");
        // A 412, then a merge that read another machine's version.
        let mut tr = Trail::default();
        tr.read(Some("E1".into()));
        tr.read(Some("E1".into())); // the lease's re-read: the same version
        assert!(!tr.foreign);
        tr.read(Some("E3".into()));
        assert!(tr.foreign);
        assert_eq!(tr.settled(Some("E1"), true), None);
        // A round that never read the index (it failed first), or a store that named no version.
        assert_eq!(Trail::default().settled(None, true), None);
        assert_eq!(t(Some(Some("E1")), None, false).settled(Some("E1"), true), None);
    }
}

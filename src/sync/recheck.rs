//! What S3 holds at a key right before a write under the lease (issue 10), read from a
//! listing page when one fresh enough speaks for the key, else from a HEAD.
//!
//! Under the lease no other s4 writes the prefix: the re-check only narrows the window
//! left to writers outside the protocol (README: "What remains"). A HEAD a key narrows it
//! to a round trip but doubles a small-file sync's requests; a page listed at most `FRESH`
//! before the write answers for the next thousand keys with one (issue 13: a first sync of
//! 10,000 files sent 20,000 requests, where rclone sends as many and we aim for 0.7 of its
//! time). Jobs go out in key order, so one page serves the keys in flight and those after.

use tokio::sync::Mutex;
use tokio::time::{Duration, Instant};

use super::remote::{Meta, Page, Remote};
use crate::s3::Error;

/// How old a page may be and still speak for a key: a few hundred small uploads' worth, far
/// under the lease's own margin (`TTL / 2`), which bounds what it guards against anyway.
pub const FRESH: Duration = Duration::from_secs(2);

/// The last page listed, shared by every transfer of the run.
#[derive(Default)]
pub struct Pages {
    last: Mutex<Option<Listed>>,
}

struct Listed {
    /// The page's start-after (exclusive) and, where truncated, its last key.
    after: String,
    reach: Option<String>,
    objects: Vec<(String, Meta)>,
    /// When the request was sent: the page is no newer than that.
    sent: Instant,
}

impl Listed {
    /// `Some(found)` where the page speaks for `key`; `None` where it cannot tell.
    fn lookup(&self, key: &str, now: Instant) -> Option<Option<Meta>> {
        let covered = key > self.after.as_str() && self.reach.as_deref().is_none_or(|r| key <= r);
        if !covered || now.duration_since(self.sent) >= FRESH {
            return None;
        }
        match self.objects.binary_search_by(|(k, _)| k.as_str().cmp(key)) {
            Err(_) => Some(None),
            Ok(i) => Some(Some(self.objects[i].1.clone())),
        }
    }

    fn new(after: String, page: Page, sent: Instant) -> Listed {
        // A truncated page speaks to its last key; the last page, to the end. A truncated page
        // with nothing on it, or one from a store that ignored the start, speaks for nothing
        // past the start (the lookup then falls back to a HEAD).
        let reach = match (&page.next, page.objects.last()) {
            (None, _) => None,
            (Some(_), Some((last, _))) if *last > after => Some(last.clone()),
            (Some(_), _) => Some(after.clone()),
        };
        Listed { after, reach, objects: page.objects, sent }
    }
}

impl Pages {
    /// What the store holds at `key` (a full key under `prefix`): `None`, no object.
    /// `with_etag`: the answer must name an ETag when it finds an object (a listing without
    /// ETags cannot tell two same-size writes in one second apart; a HEAD always names one).
    pub async fn at(
        &self,
        remote: &dyn Remote,
        prefix: &str,
        key: &str,
        with_etag: bool,
    ) -> Result<Option<Meta>, Error> {
        let usable =
            |found: Option<Option<Meta>>| found.filter(|m| !with_etag || m.as_ref().is_none_or(|m| m.etag.is_some()));
        // Held across the listing: transfers that need the next page wait for the one in
        // flight instead of each listing it.
        let mut last = self.last.lock().await;
        if let Some(found) = usable(last.as_ref().and_then(|p| p.lookup(key, Instant::now()))) {
            return Ok(found);
        }
        // A strict prefix of the key sorts before it: list from there.
        let mut after = key.to_string();
        after.pop();
        let sent = Instant::now();
        let page = remote.list(prefix, Some(&after), None).await?;
        let listed = Listed::new(after, page, sent);
        let found = usable(listed.lookup(key, sent));
        *last = Some(listed);
        drop(last);
        match found {
            Some(found) => Ok(found),
            None => remote.head(key).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering::Relaxed;
    use std::sync::Arc;

    use bytes::Bytes;

    use super::*;
    use crate::s3::PutOptions;
    use crate::sim::bucket::{Behaviour, Bucket, Handle};
    use crate::sim::sched::Sched;

    fn store(list_etags: bool) -> Handle {
        let b = Behaviour {
            conditional_put: false,
            conditional_delete: false,
            list_etags,
            page: 1000,
            faults: 0,
            copy_conditions: false,
            copy_source_pinned: false,
        };
        Handle::new(Arc::new(Bucket::new(b, Arc::new(Sched::free()))), 0)
    }

    async fn put(s: &Handle, key: &str) -> String {
        s.put_bytes(key, Bytes::from_static(b"x"), &PutOptions::default()).await.unwrap().unwrap()
    }

    /// Issue 13: a first sync under the lease sent a HEAD before every upload, half of its
    /// requests. 2,500 keys checked in order, among 1,500 that exist, now take a page per
    /// thousand and no HEAD.
    #[tokio::test(start_paused = true)]
    async fn uploads_under_the_lease_are_rechecked_from_a_page_per_thousand_keys() {
        let s = store(true);
        for i in (0..3000).step_by(2) {
            put(&s, &format!("p/k{i:05}")).await;
        }
        let pages = Pages::default();
        for i in 500..3000 {
            let found = pages.at(&s, "p/", &format!("p/k{i:05}"), true).await.unwrap();
            assert_eq!(found.is_some(), i % 2 == 0, "k{i:05}");
        }
        let (lists, heads) = (s.bucket.lists.load(Relaxed), s.bucket.heads.load(Relaxed));
        println!("2,500 keys re-checked with {lists} listing page(s) and {heads} HEAD(s)");
        assert!(lists <= 3, "{lists} pages");
        assert_eq!(heads, 0);
    }

    /// A page older than `FRESH` no longer speaks: a write that landed since is seen.
    #[tokio::test(start_paused = true)]
    async fn a_page_older_than_fresh_is_listed_again() {
        let s = store(true);
        let pages = Pages::default();
        assert_eq!(pages.at(&s, "p/", "p/a", true).await.unwrap(), None);
        let etag = put(&s, "p/b").await;
        assert_eq!(pages.at(&s, "p/", "p/b", true).await.unwrap(), None, "the page listed before the write");
        tokio::time::advance(FRESH).await;
        let found = pages.at(&s, "p/", "p/b", true).await.unwrap();
        assert_eq!(found.and_then(|m| m.etag), Some(etag));
        assert_eq!(s.bucket.lists.load(Relaxed), 2);
    }

    /// A listing without ETags (s3s-fs) tells presence, not which version: where the caller
    /// needs the version, a HEAD answers.
    #[tokio::test(start_paused = true)]
    async fn a_listing_without_etags_leaves_the_version_to_a_head() {
        let s = store(false);
        let etag = put(&s, "p/a").await;
        let pages = Pages::default();
        assert!(pages.at(&s, "p/", "p/a", false).await.unwrap().is_some());
        assert_eq!(s.bucket.heads.load(Relaxed), 0);
        let found = pages.at(&s, "p/", "p/a", true).await.unwrap();
        assert_eq!(found.and_then(|m| m.etag), Some(etag));
        assert_eq!(s.bucket.heads.load(Relaxed), 1);
        assert_eq!(pages.at(&s, "p/", "p/new", true).await.unwrap(), None, "absence needs no ETag");
        assert_eq!(s.bucket.heads.load(Relaxed), 1);
    }
}

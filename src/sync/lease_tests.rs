//! The lease's renewal through a store that goes away for a few seconds, on tokio's paused
//! clock: a small in-memory store whose calls fail (or lose their answers) in a time window.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use super::*;
use crate::s3::{Error, ErrorKind};
use crate::sync::remote::{Fut, Meta, Page, Upload};

/// A store with objects in memory that is down (every call fails) or loses the answers of
/// PUTs (they land, the caller hears an error) between two offsets of the clock.
struct Flaky {
    objects: Mutex<BTreeMap<String, (Bytes, String)>>,
    t0: Instant,
    down: Mutex<Option<(Duration, Duration)>>,
    lose_answers: Mutex<Option<(Duration, Duration)>>,
    /// Deleted, yet still listed (HEAD and GET know better).
    ghosts: Mutex<BTreeMap<String, Meta>>,
}

impl Flaky {
    fn new() -> Arc<Flaky> {
        Arc::new(Flaky {
            objects: Default::default(),
            t0: Instant::now(),
            down: Default::default(),
            lose_answers: Default::default(),
            ghosts: Default::default(),
        })
    }

    fn within(&self, w: &Mutex<Option<(Duration, Duration)>>) -> bool {
        let at = self.t0.elapsed();
        w.lock().unwrap().is_some_and(|(from, to)| at >= from && at < to)
    }

    fn check(&self, op: &'static str, key: &str) -> crate::s3::Result<()> {
        match self.within(&self.down) {
            true => Err(Error::new(op, key, ErrorKind::Transport("connection refused".into()))),
            false => Ok(()),
        }
    }
}

fn meta(body: &Bytes, etag: &str) -> Meta {
    Meta { size: body.len() as u64, etag: Some(etag.to_string()), lm: Some(0) }
}

impl Remote for Flaky {
    fn uri(&self, key: &str) -> String {
        format!("s3://flaky/{key}")
    }
    fn store_id(&self) -> String {
        "flaky".into()
    }
    fn list<'a>(&'a self, prefix: &'a str, _: Option<&'a str>, _: Option<&'a str>) -> Fut<'a, Page> {
        Box::pin(async move {
            self.check("ListObjectsV2", prefix)?;
            let all = self.objects.lock().unwrap();
            let mut objects: BTreeMap<String, Meta> =
                all.iter().filter(|(k, _)| k.starts_with(prefix)).map(|(k, (b, e))| (k.clone(), meta(b, e))).collect();
            for (k, m) in self.ghosts.lock().unwrap().iter().filter(|(k, _)| k.starts_with(prefix)) {
                objects.insert(k.clone(), m.clone());
            }
            Ok(Page { objects: objects.into_iter().collect(), next: None })
        })
    }
    fn head<'a>(&'a self, key: &'a str) -> Fut<'a, Option<Meta>> {
        Box::pin(async move {
            self.check("HeadObject", key)?;
            Ok(self.objects.lock().unwrap().get(key).map(|(b, e)| meta(b, e)))
        })
    }
    fn get_bytes<'a>(&'a self, key: &'a str) -> Fut<'a, Option<(Bytes, Meta)>> {
        Box::pin(async move {
            self.check("GetObject", key)?;
            Ok(self.objects.lock().unwrap().get(key).map(|(b, e)| (b.clone(), meta(b, e))))
        })
    }
    fn get_file<'a>(&'a self, key: &'a str, _: &'a Path, _: u64, _: Option<&'a str>) -> Fut<'a, Meta> {
        Box::pin(async move { Err(Error::new("GetObject", key, ErrorKind::Config("not in this test".into()))) })
    }
    fn put_file<'a>(&'a self, key: &'a str, _: &'a Path, _: u64, _: &'a PutOptions) -> Fut<'a, Option<String>> {
        Box::pin(async move { Err(Error::new("PutObject", key, ErrorKind::Config("not in this test".into()))) })
    }
    fn put_bytes<'a>(&'a self, key: &'a str, body: Bytes, _: &'a PutOptions) -> Fut<'a, Option<String>> {
        Box::pin(async move {
            self.check("PutObject", key)?;
            use md5::Digest;
            let etag = hex::encode(md5::Md5::digest(&body));
            self.objects.lock().unwrap().insert(key.to_string(), (body, etag.clone()));
            if self.within(&self.lose_answers) {
                return Err(Error::new("PutObject", key, ErrorKind::Transport("connection reset".into())));
            }
            Ok(Some(etag))
        })
    }
    fn delete<'a>(&'a self, key: &'a str, _: Option<&'a str>) -> Fut<'a, ()> {
        Box::pin(async move {
            self.check("DeleteObject", key)?;
            self.objects.lock().unwrap().remove(key);
            Ok(())
        })
    }
    fn delete_many<'a>(&'a self, _: &'a [(String, Option<String>)]) -> Fut<'a, Vec<(String, Error)>> {
        Box::pin(async move { Ok(Vec::new()) })
    }
    fn uploads<'a>(&'a self, _: &'a str) -> Fut<'a, Vec<Upload>> {
        Box::pin(async move { Ok(Vec::new()) })
    }
    fn abort_upload<'a>(&'a self, _: &'a str, _: &'a str) -> Fut<'a, ()> {
        Box::pin(async move { Ok(()) })
    }
}

const S: fn(u64) -> Duration = Duration::from_secs;

/// Found by the 3-node Garage test (vendor-tests/cluster.rs): a node restarting answers 503 for
/// longer than the client retries, the renewal due then failed, the next came a whole `RENEW`
/// later, after the lease had lapsed, and the sync stopped writing half-way.
#[tokio::test(start_paused = true)]
async fn one_failed_renewal_does_not_cost_the_lease() {
    let store = Flaky::new();
    let lease = Lease::acquire(store.clone(), "p/", None, "t1").await.unwrap();
    *store.down.lock().unwrap() = Some((S(14), S(20)));
    tokio::time::sleep(S(40)).await;
    assert_eq!(lease.check(), Ok(()));
    lease.release().await;
}

/// A renewal whose answer was lost landed all the same: the intent then carries the ETag of that
/// write, which is still ours, not a takeover.
#[tokio::test(start_paused = true)]
async fn a_renewal_whose_answer_was_lost_is_still_ours() {
    let store = Flaky::new();
    let lease = Lease::acquire(store.clone(), "p/", None, "t1").await.unwrap();
    *store.lose_answers.lock().unwrap() = Some((S(14), S(16)));
    tokio::time::sleep(S(40)).await;
    assert_eq!(lease.check(), Ok(()));
}

/// The store gone for longer than `TTL / 2`: the lease lapses and stays lost, however the
/// store comes back.
#[tokio::test(start_paused = true)]
async fn a_store_away_past_half_the_ttl_still_costs_the_lease() {
    let store = Flaky::new();
    let lease = Lease::acquire(store.clone(), "p/", None, "t1").await.unwrap();
    *store.down.lock().unwrap() = Some((S(1), TTL / 2 + S(5)));
    tokio::time::sleep(TTL).await;
    assert!(lease.check().is_err());
}

/// Found by the 3-node Garage test: another machine's intent, removed when its sync ended, was
/// still listed through another node (HEAD: 404), and the next sync waited the whole TTL for it.
#[tokio::test(start_paused = true)]
async fn an_intent_listed_after_its_delete_is_not_waited_for() {
    let store = Flaky::new();
    let ghost = Meta { size: 5, etag: Some("e".into()), lm: Some(0) };
    store.ghosts.lock().unwrap().insert("p/.s4lease.intent-other".into(), ghost);
    let t0 = Instant::now();
    let lease = Lease::acquire(store.clone(), "p/", None, "t1").await.unwrap();
    assert!(t0.elapsed() < S(1), "waited {:?} for a deleted intent", t0.elapsed());
    lease.release().await;
}

//! The lease's renewal through a store that goes away for a few seconds, on tokio's paused
//! clock (the store: [`crate::sync::flaky`]).

use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::sync::flaky::Flaky;
use crate::sync::remote::Meta;

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

/// Simulation seed 4245494 (on commit 4571e19, lease mode): an upload checked the lease and
/// HEADed its key, its machine froze past the lease's lapse, another machine took the lease
/// over and wrote the key, and the frozen upload then landed over that edit. Every write now
/// asks the lease's fence at its body's last byte: one whose lease lapsed mid-way lands nothing.
#[tokio::test(start_paused = true)]
async fn an_upload_whose_lease_lapses_before_its_last_byte_lands_nothing() {
    use crate::sim::bucket::{Behaviour, Bucket, Handle};
    use crate::sim::sched::Sched;
    use std::sync::atomic::{AtomicBool, Ordering};

    // The fence follows the lease: yes while it is fresh, no for good once it lapsed.
    let flaky = Flaky::new();
    let lease = Lease::acquire(flaky.clone(), "p/", None, "t1").await.unwrap();
    let fence = lease.fence();
    assert_eq!(fence(), Ok(()));
    *flaky.down.lock().unwrap() = Some((S(1), TTL / 2 + S(5)));
    tokio::time::sleep(TTL).await;
    assert!(fence().is_err() && lease.check().is_err());

    // The model store asks where the client does: before the request, and at the last byte.
    let b = Behaviour {
        conditional_put: false,
        conditional_delete: false,
        list_etags: false,
        page: 1000,
        faults: 0,
        copy_conditions: false,
        copy_source_pinned: false,
    };
    let store = Handle::new(Arc::new(Bucket::new(b, Arc::new(Sched::free()))), 0);
    let lapsed = Arc::new(AtomicBool::new(false));
    let (asked, lapse) = (lapsed.clone(), lapsed.clone());
    let fenced = store.with_fence(Arc::new(move || match asked.load(Ordering::SeqCst) {
        false => Ok(()),
        true => Err("lapsed".into()),
    }));
    let fenced = fenced.expect("the model store takes a fence");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.txt");
    std::fs::write(&path, "m1v3").unwrap();
    // The lease lapses while the body is on its way (the meter hears it leave).
    let meter: crate::s3::Meter = Arc::new(move |_| lapse.store(true, Ordering::SeqCst));
    let put = fenced.put_file("p/k.txt", &path, 4, &PutOptions::default(), &meter).await;
    assert!(matches!(put, Err(crate::s3::Error { kind: crate::s3::ErrorKind::Fenced(_), .. })), "{put:?}");
    assert_eq!(store.head("p/k.txt").await.unwrap(), None, "a write past its lease's lapse landed");
    lapsed.store(false, Ordering::SeqCst);
    let quiet: crate::s3::Meter = Arc::new(|_| {});
    fenced.put_file("p/k.txt", &path, 4, &PutOptions::default(), &quiet).await.unwrap();
    assert!(store.head("p/k.txt").await.unwrap().is_some());
}

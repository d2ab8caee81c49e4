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

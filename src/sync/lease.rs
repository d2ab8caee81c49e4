//! A lease on a prefix, for stores that ignore conditional writes (Garage, rclone serve s3):
//! the strongest protocol such a store allows (issue 10). One machine at a time writes under a
//! prefix; it holds the lease from before it reads the remote index until its last write, so
//! its listing, its re-checks (a HEAD before each overwrite or delete) and its writes are never
//! interleaved with another s4's.
//!
//! Mutual exclusion without compare-and-swap, on a store whose single-key writes and listings
//! are consistent: each contender writes its own intent object `PREFIX.s4lease.intent-TOKEN`,
//! then lists the intents. It holds the lease only if it sees no other live intent; otherwise
//! it removes its own and tries again after a while. Two contenders cannot both hold it: the
//! one that listed second wrote before it listed, after the other wrote, so it sees the other.
//!
//! A holder rewrites its intent every `RENEW`; a waiter that sees an intent unchanged (same
//! ETag, size and LastModified) for `TTL` of its own clock takes it for a crashed machine's and
//! removes it. The holder stops writing once its last renewal is `TTL / 2` old, so no waiter can
//! have timed it out yet: the remaining window is a holder paused for longer than that between
//! its check and the write that follows (README: "What stores without conditional writes risk").

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::listing::Lister;
use super::remote::Remote;
use crate::s3::PutOptions;

/// Reserved names: intents and probes live beside the index, never synced (ignore.rs).
pub const LEASE_PREFIX: &str = ".s4lease.";
const INTENT: &str = ".s4lease.intent-";
pub const TTL: Duration = Duration::from_secs(60);
const RENEW: Duration = Duration::from_secs(15);
/// After a failed renewal the next try comes this soon, not a whole `RENEW` later: the lease
/// lapses `TTL / 2` after the last good one, so one failed try used to cost it (a Garage node
/// restarting under a sync: its 503s outlast the client's retries; vendor-tests/cluster.rs).
const RETRY: Duration = Duration::from_secs(2);

/// The lease, held until dropped (or released, which also removes the intent at once).
pub struct Lease {
    remote: Arc<dyn Remote>,
    key: String,
    held: Arc<Mutex<Held>>,
    renewer: tokio::task::JoinHandle<()>,
}

/// When the intent was last written, by two clocks (a suspended laptop's monotonic clock
/// stands still), and whether the lease was lost for good.
struct Held {
    renewed: (Instant, SystemTime),
    /// The ETag of our intent as last written: a takeover deletes or replaces it.
    etag: Option<String>,
    lost: bool,
}

impl Held {
    /// Is the last renewal too old to write on? Once it is, the lease stays lost: a waiter
    /// may have taken over meanwhile, and a later renewal would only hide that.
    fn lapsed(&mut self) -> bool {
        let wall = SystemTime::now().duration_since(self.renewed.1).unwrap_or(Duration::ZERO);
        if Instant::now().duration_since(self.renewed.0) >= TTL / 2 || wall >= TTL / 2 {
            self.lost = true;
        }
        self.lost
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

/// How long to wait for another machine's sync to finish (`S4_LEASE_WAIT_SECS`, default 600).
fn patience() -> Duration {
    let secs = crate::s3::credentials::process_env("S4_LEASE_WAIT_SECS").and_then(|s| s.parse().ok());
    Duration::from_secs(secs.unwrap_or(600))
}

/// A small deterministic jitter from the token and the attempt: no randomness source needed,
/// and machines with different tokens back off differently.
fn jitter(token: &str, attempt: u32, max_ms: u64) -> Duration {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in token.bytes().chain(attempt.to_le_bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    Duration::from_millis(h % max_ms.max(1))
}

impl Lease {
    /// `left_behind` is the token a killed run of this folder left in its `.s4lock`: its
    /// intent goes at once (the folder's lock is ours now, so that run is dead; a killed daemon
    /// must not make its own restart wait out the TTL). `token` names this run.
    pub async fn acquire(
        remote: Arc<dyn Remote>,
        prefix: &str,
        left_behind: Option<&str>,
        token: &str,
    ) -> Result<Lease, String> {
        let dir = format!("{prefix}{INTENT}");
        let key = format!("{dir}{token}");
        let dead = left_behind.map(|t| format!("{dir}{t}"));
        let deadline = Instant::now() + patience();
        // Each other intent as last seen, and since when (by our clock) it has not changed.
        let mut seen: HashMap<String, (super::remote::Meta, Instant)> = HashMap::new();
        let mut said = false;
        for attempt in 0u32.. {
            let wrote = (Instant::now(), SystemTime::now());
            let etag = write_intent(&*remote, &key, token, attempt).await?;
            let mut live = Vec::new();
            let mut lister = Lister::new(remote.clone(), &dir, Vec::new());
            while let Some((k, m)) = lister.next().await.map_err(|e| e.to_string())? {
                if k == key {
                    continue;
                }
                if dead.as_deref() == Some(k.as_str()) {
                    crate::debug!("{}: left by an earlier run of this folder; removed", remote.uri(&k));
                    let _ = remote.delete(&k, None).await;
                    continue;
                }
                // A listing may still show an intent its holder just removed (a 3-node Garage
                // does, about one delete in twenty; HEAD answers 404): that one is not waited
                // for, or every sync after another machine's would wait out the TTL. A new
                // intent, the other way round, was always listed.
                if let Ok(None) = remote.head(&k).await {
                    crate::debug!("{}: listed, but gone (the listing lags a delete)", remote.uri(&k));
                    continue;
                }
                let now = Instant::now();
                let since = match seen.get(&k) {
                    Some((old, since)) if *old == m => *since,
                    _ => now,
                };
                seen.insert(k.clone(), (m, since));
                if now.duration_since(since) >= TTL {
                    crate::warn!(
                        "{}: a lease not renewed for {} s (a machine that stopped?); taking over",
                        remote.uri(&k),
                        TTL.as_secs()
                    );
                    let _ = remote.delete(&k, None).await;
                } else {
                    live.push(k);
                }
            }
            if live.is_empty() {
                // Held since before our intent was written: no waiter saw it earlier.
                let held = Arc::new(Mutex::new(Held { renewed: wrote, etag, lost: false }));
                let renewer = tokio::spawn(renew(remote.clone(), key.clone(), token.to_string(), held.clone()));
                return Ok(Lease { remote, key, held, renewer });
            }
            // Step aside, so that two contenders seeing each other do not wait for ever.
            let _ = remote.delete(&key, None).await;
            if Instant::now() >= deadline {
                return Err(format!(
                    "{}: another machine is syncing this prefix (its lease {} is held and renewed); try again \
                     later, or raise S4_LEASE_WAIT_SECS",
                    remote.uri(prefix),
                    remote.uri(&live[0])
                ));
            }
            if !said {
                crate::info!(
                    "Waiting for another machine's sync of {} to finish (its lease is held)",
                    remote.uri(prefix)
                );
                said = true;
            }
            let base = Duration::from_millis(250 << attempt.min(4));
            tokio::time::sleep(base + jitter(token, attempt, 1000)).await;
        }
        unreachable!("the attempts loop only ends by returning")
    }

    /// May this machine still write? Only while its last renewal is recent enough that no
    /// waiter can have taken the lease over (see the module's doc).
    pub fn check(&self) -> Result<(), String> {
        fresh(&self.held, &self.remote.uri(&self.key))
    }

    /// [`Lease::check`] for the store to call right before each write can take effect (every
    /// attempt, a body's last byte): a write planned, retried or frozen past the lease's lapse
    /// never lands (simulation seed 4245494).
    pub fn fence(&self) -> crate::s3::fence::Fence {
        let (held, uri) = (self.held.clone(), self.remote.uri(&self.key));
        Arc::new(move || fresh(&held, &uri))
    }

    pub async fn release(&self) {
        self.renewer.abort();
        if let Err(e) = self.remote.delete(&self.key, None).await {
            crate::warn!(
                "could not remove the lease {} ({e}): other machines wait up to {} s for it",
                self.remote.uri(&self.key),
                TTL.as_secs()
            );
        }
    }
}

fn fresh(held: &Mutex<Held>, uri: &str) -> Result<(), String> {
    if !held.lock().unwrap().lapsed() {
        return Ok(());
    }
    Err(format!(
        "the lease {uri} was not renewed within {} s (or another machine took it over); stopped writing so \
         another machine's sync cannot be overwritten (run sync again)",
        (TTL / 2).as_secs()
    ))
}

async fn write_intent(remote: &dyn Remote, key: &str, token: &str, seq: u32) -> Result<Option<String>, String> {
    remote.put_bytes(key, intent_body(token, seq), &PutOptions::default()).await.map_err(|e| e.to_string())
}

/// The body changes with every write, so waiters see the ETag move while it is renewed.
fn intent_body(token: &str, seq: u32) -> bytes::Bytes {
    bytes::Bytes::from(format!("{token} {seq}\n"))
}

#[cfg(test)]
#[path = "lease_tests.rs"]
mod tests;

/// Rewrite the intent every `RENEW` while held (every `RETRY` after a failed try). A renewal
/// comes too late once the last one is `TTL / 2` old, or finds the intent gone or changed (taken
/// over): the lease is then lost for the rest of the run, never silently revived (found by
/// review: a renewal after a lapse made two holders).
async fn renew(remote: Arc<dyn Remote>, key: String, token: String, held: Arc<Mutex<Held>>) {
    let mut wait = RENEW;
    // The ETag of a rewrite whose answer was lost: it may have landed, and is ours if it did.
    let mut unanswered: Option<String> = None;
    for seq in 1_000_000u32.. {
        tokio::time::sleep(wait).await;
        wait = RETRY;
        let started = (Instant::now(), SystemTime::now());
        let expected = {
            let mut h = held.lock().unwrap();
            if h.lapsed() {
                break;
            }
            h.etag.clone()
        };
        let still_ours = match remote.head(&key).await {
            Ok(Some(m)) => expected.is_none() || m.etag == expected || (m.etag.is_some() && m.etag == unanswered),
            Ok(None) => false,
            Err(e) => {
                crate::warn!("renewing the lease {}: {e}", remote.uri(&key));
                continue;
            }
        };
        if !still_ours {
            held.lock().unwrap().lost = true;
            break;
        }
        let body = intent_body(&token, seq);
        match remote.put_bytes(&key, body.clone(), &PutOptions::default()).await {
            // Counted from before the write: a waiter cannot have seen it earlier than that.
            Ok(etag) => {
                let mut h = held.lock().unwrap();
                if !h.lapsed() {
                    h.renewed = started;
                    h.etag = etag;
                }
                unanswered = None;
                wait = RENEW;
            }
            Err(e) => {
                use md5::Digest;
                unanswered = Some(hex::encode(md5::Md5::digest(&body)));
                crate::warn!("renewing the lease {}: {e}", remote.uri(&key));
            }
        }
    }
    crate::warn!("lost the lease {}: this run writes nothing more", remote.uri(&key));
}

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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::remote::{Lister, Remote};
use crate::s3::PutOptions;

/// Reserved names: intents and probes live beside the index, never synced (ignore.rs).
pub const LEASE_PREFIX: &str = ".s4lease.";
const INTENT: &str = ".s4lease.intent-";
pub const TTL: Duration = Duration::from_secs(60);
const RENEW: Duration = Duration::from_secs(15);

/// The lease, held until dropped (or released, which also removes the intent at once).
pub struct Lease {
    remote: Arc<dyn Remote>,
    key: String,
    /// When the intent was last written, in ms since `epoch`.
    renewed: Arc<AtomicU64>,
    epoch: Instant,
    renewer: tokio::task::JoinHandle<()>,
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

/// This machine's folder, as a name for lease intents: a hash of the host name and the
/// folder's path.
pub fn folder_id(root: &std::path::Path) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let path = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in host.trim().bytes().chain([0]).chain(path.to_string_lossy().bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
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
    /// `folder` names this machine's folder (see [`folder_id`]): an intent of the same folder
    /// is a dead run's, since the folder's `.s4lock` is ours now, and goes at once (a killed
    /// daemon must not make its own restart wait out the TTL). `token` names this run.
    pub async fn acquire(remote: Arc<dyn Remote>, prefix: &str, folder: &str, token: &str) -> Result<Lease, String> {
        let dir = format!("{prefix}{INTENT}");
        let ours = format!("{dir}{folder}.");
        let key = format!("{ours}{token}");
        let deadline = Instant::now() + patience();
        // Each other intent as last seen, and since when (by our clock) it has not changed.
        let mut seen: HashMap<String, (super::remote::Meta, Instant)> = HashMap::new();
        let mut said = false;
        for attempt in 0u32.. {
            let wrote = Instant::now();
            write_intent(&*remote, &key, token, attempt).await?;
            let mut live = Vec::new();
            let mut lister = Lister::new(&*remote, &dir, None);
            while let Some((k, m)) = lister.next().await.map_err(|e| e.to_string())? {
                if k == key {
                    continue;
                }
                if k.starts_with(&ours) {
                    crate::debug!("{}: left by an earlier run of this folder; removed", remote.uri(&k));
                    let _ = remote.delete(&k, None).await;
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
                let epoch = wrote;
                let renewed = Arc::new(AtomicU64::new(0));
                let renewer =
                    tokio::spawn(renew(remote.clone(), key.clone(), token.to_string(), renewed.clone(), epoch));
                return Ok(Lease { remote, key, renewed, epoch, renewer });
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
        let renewed = self.epoch + Duration::from_millis(self.renewed.load(Ordering::Relaxed));
        if Instant::now().duration_since(renewed) < TTL / 2 {
            return Ok(());
        }
        Err(format!(
            "the lease {} could not be renewed for {} s; stopped writing so another machine's sync cannot be \
             overwritten (run sync again)",
            self.remote.uri(&self.key),
            (TTL / 2).as_secs()
        ))
    }

    pub async fn release(&self) {
        self.renewer.abort();
        let _ = self.remote.delete(&self.key, None).await;
    }
}

async fn write_intent(remote: &dyn Remote, key: &str, token: &str, seq: u32) -> Result<(), String> {
    // The body changes with every write, so waiters see the ETag move while it is renewed.
    let body = bytes::Bytes::from(format!("{token} {seq}\n"));
    remote.put_bytes(key, body, &PutOptions::default()).await.map(|_| ()).map_err(|e| e.to_string())
}

async fn renew(remote: Arc<dyn Remote>, key: String, token: String, renewed: Arc<AtomicU64>, epoch: Instant) {
    for seq in 1_000_000u32.. {
        tokio::time::sleep(RENEW).await;
        let started = Instant::now();
        match write_intent(&*remote, &key, &token, seq).await {
            // Counted from before the write: a waiter cannot have seen it earlier than that.
            Ok(()) => renewed.store(started.duration_since(epoch).as_millis() as u64, Ordering::Relaxed),
            Err(e) => crate::warn!("renewing the lease {}: {e}", remote.uri(&key)),
        }
    }
}

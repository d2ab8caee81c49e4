//! The keys the client signs with, asked for at every request. Keys that never expire are
//! handed out as they are; temporary ones are refreshed [`Tuning::refresh_before`] ahead of
//! their expiry, by one refresh at a time: signers that find the keys stale meanwhile wait for
//! that refresh and share its outcome. A refresh that fails is retried with backoff and then
//! reported on the request; while the old keys are still valid they are used (with a
//! warning), so a blip of STS or IMDS costs nothing. Never an unsigned request.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::error::CredentialsError;
use super::source::Source;
use super::{now_secs, Credentials, Expiring};

#[derive(Debug, Clone, Copy)]
pub struct Tuning {
    /// Refresh this long before the keys expire (the SDKs: 5 minutes).
    pub refresh_before: Duration,
    /// Attempts of one refresh, when failures are transient.
    pub attempts: u32,
    /// The wait before the second attempt; doubled after each.
    pub backoff: Duration,
    /// After a failed refresh, still-valid keys are used this long before the next try.
    pub quiet_after_failure: Duration,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            refresh_before: Duration::from_secs(300),
            attempts: 3,
            backoff: Duration::from_millis(500),
            quiet_after_failure: Duration::from_secs(30),
        }
    }
}

/// Hands out the current keys. Cheap to clone: clones share the cache and the refresh.
#[derive(Clone)]
pub struct Provider {
    inner: Arc<Inner>,
}

struct Inner {
    source: Source,
    tuning: Tuning,
    cached: Mutex<Option<Cached>>,
    /// One refresh at a time. Holds the last failure, which waiters share.
    gate: tokio::sync::Mutex<Option<(Instant, CredentialsError)>>,
    /// Refreshes finished (ok or not): a waiter that sees it move knows one ran meanwhile.
    done: AtomicU64,
    /// Successful fetches from the source (tests and `s4 doctor` show it).
    fetched: AtomicU64,
}

#[derive(Clone)]
struct Cached {
    keys: Expiring,
    /// Unix seconds from which a refresh is due.
    refresh_at: Option<i64>,
}

impl Cached {
    fn new(keys: Expiring, now: i64, before: Duration) -> Cached {
        let before = before.as_secs() as i64;
        // Keys that live less than the refresh window are refreshed half-way through their
        // life instead of at every request.
        let refresh_at = keys.expires.map(|exp| if exp - now > before { exp - before } else { now + (exp - now) / 2 });
        Cached { keys, refresh_at }
    }
    fn fresh(&self, now: i64) -> bool {
        self.refresh_at.is_none_or(|t| now < t)
    }
    fn valid(&self, now: i64) -> bool {
        self.keys.expires.is_none_or(|t| now < t)
    }
}

impl fmt::Debug for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Provider").field("source", &self.describe()).finish()
    }
}

impl From<Credentials> for Provider {
    /// Fixed keys given in code (tests, benches): asked for, they are simply handed out.
    fn from(creds: Credentials) -> Provider {
        Provider::fixed(creds, "static", "keys given in code".into())
    }
}

impl Provider {
    pub(super) fn new(source: Source, tuning: Tuning) -> Provider {
        let cached = match &source {
            Source::Static { creds, .. } => {
                Some(Cached { keys: Expiring { creds: creds.clone(), expires: None }, refresh_at: None })
            }
            _ => None,
        };
        Provider {
            inner: Arc::new(Inner {
                source,
                tuning,
                cached: Mutex::new(cached),
                gate: tokio::sync::Mutex::new(None),
                done: AtomicU64::new(0),
                fetched: AtomicU64::new(0),
            }),
        }
    }

    /// Keys that never change; `kind` and `from` say where they came from.
    pub fn fixed(creds: Credentials, kind: &'static str, from: String) -> Provider {
        Provider::new(Source::Static { creds, kind, from }, Tuning::default())
    }

    /// Where the keys come from, in words (never a secret).
    pub fn describe(&self) -> String {
        self.inner.source.describe()
    }

    /// One word for the source: target, environment, web_identity, profile, assume_role,
    /// credential_process, container, imds.
    pub fn kind(&self) -> &'static str {
        self.inner.source.kind()
    }

    /// How many times keys were fetched from the source.
    pub fn fetches(&self) -> u64 {
        self.inner.fetched.load(Ordering::Relaxed)
    }

    /// When the current keys expire (unix seconds), if they do and are known yet.
    pub fn expires(&self) -> Option<i64> {
        self.inner.cached.lock().unwrap().as_ref().and_then(|c| c.keys.expires)
    }

    fn cached_if(&self, ok: impl Fn(&Cached) -> bool) -> Option<Credentials> {
        self.inner.cached.lock().unwrap().as_ref().filter(|c| ok(c)).map(|c| c.keys.creds.clone())
    }

    /// The keys to sign the next request with.
    pub async fn credentials(&self) -> Result<Credentials, CredentialsError> {
        let i = &self.inner;
        if let Some(c) = self.cached_if(|c| c.fresh(now_secs())) {
            return Ok(c);
        }
        let seen = i.done.load(Ordering::Acquire);
        let mut last_failure = i.gate.lock().await;
        let now = now_secs();
        if let Some(c) = self.cached_if(|c| c.fresh(now)) {
            return Ok(c); // refreshed while this signer waited
        }
        let valid = self.cached_if(|c| c.valid(now));
        if let Some((at, err)) = last_failure.as_ref() {
            let refresh_failed_meanwhile = i.done.load(Ordering::Acquire) != seen;
            match &valid {
                Some(c) if at.elapsed() < i.tuning.quiet_after_failure => return Ok(c.clone()),
                None if refresh_failed_meanwhile => return Err(err.clone()),
                _ => {}
            }
        }
        let outcome = self.fetch_with_retries().await;
        i.done.fetch_add(1, Ordering::Release);
        match outcome {
            Ok(keys) => {
                i.fetched.fetch_add(1, Ordering::Relaxed);
                let creds = keys.creds.clone();
                *i.cached.lock().unwrap() = Some(Cached::new(keys, now_secs(), i.tuning.refresh_before));
                *last_failure = None;
                Ok(creds)
            }
            Err(err) => {
                *last_failure = Some((Instant::now(), err.clone()));
                match valid {
                    Some(c) => {
                        crate::warn!("{err}; signing with the current keys until they expire");
                        Ok(c)
                    }
                    None => Err(err),
                }
            }
        }
    }

    async fn fetch_with_retries(&self) -> Result<Expiring, CredentialsError> {
        let t = &self.inner.tuning;
        let mut delay = t.backoff;
        let mut attempt = 1;
        loop {
            match self.inner.source.fetch().await {
                Ok(keys) => return Ok(keys),
                Err(e) if e.is_transient() && attempt < t.attempts => {
                    crate::debug!("{e}; trying again in {} ms", delay.as_millis());
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_window() {
        let keys = |exp| Expiring {
            creds: Credentials { access_key_id: "A".into(), secret_access_key: "S".into(), session_token: None },
            expires: exp,
        };
        let five = Duration::from_secs(300);
        let c = Cached::new(keys(Some(1_000 + 3600)), 1_000, five);
        assert_eq!(c.refresh_at, Some(1_000 + 3300));
        assert!(c.fresh(4_299) && !c.fresh(4_300) && c.valid(4_599) && !c.valid(4_600));
        // Short-lived keys: half-way, not at every request.
        assert_eq!(Cached::new(keys(Some(1_100)), 1_000, five).refresh_at, Some(1_050));
        assert!(Cached::new(keys(None), 1_000, five).fresh(i64::MAX));
    }

    #[tokio::test]
    async fn fixed_keys_are_handed_out() {
        let p = Provider::from(Credentials {
            access_key_id: "A".into(),
            secret_access_key: "S".into(),
            session_token: None,
        });
        assert_eq!(p.credentials().await.unwrap().access_key_id, "A");
        assert!(!format!("{p:?}").contains("\"S\""));
        assert_eq!(p.kind(), "static");
    }
}

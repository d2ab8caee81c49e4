//! Which failures are worth another attempt, and how long to wait before it.
//! Pure: the caller passes in the random draw and the elapsed time.

use std::time::Duration;

use super::error::{Error, ErrorKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// No new attempt starts after this much time since the first.
    pub max_elapsed: Duration,
    pub base: Duration,
    pub cap: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            max_attempts: 6,
            max_elapsed: Duration::from_secs(90),
            base: Duration::from_millis(100),
            cap: Duration::from_secs(10),
        }
    }
}

/// Retry on what a later attempt can fix: 5xx (but 501 Not Implemented), 503 SlowDown, 429,
/// S3's 400 RequestTimeout, a 200 whose body was an `<Error>` (S3 does this for
/// CompleteMultipartUpload), broken connections and timeouts. Never other 4xx: a wrong
/// secret must fail at once, not storm the store.
pub fn is_retryable(err: &Error) -> bool {
    match &err.kind {
        ErrorKind::Status { status, code, .. } => match *status {
            200 => true,
            429 => true,
            400 => matches!(code.as_str(), "RequestTimeout" | "RequestTimeTooSkewed"),
            501 => false,
            500..=599 => true,
            _ => false,
        },
        ErrorKind::Transport(_) | ErrorKind::Timeout => true,
        ErrorKind::Xml(_) | ErrorKind::Io(_) | ErrorKind::Config(_) | ErrorKind::Changed | ErrorKind::Fenced(_) => {
            false
        }
    }
}

/// Decorrelated jitter (AWS Architecture Blog, "Exponential Backoff And Jitter"):
/// `sleep = min(cap, uniform(base, previous * 3))`. `draw` is a uniform random u64.
pub fn next_delay(policy: &Policy, previous: Duration, draw: u64) -> Duration {
    let lo = policy.base.as_millis() as u64;
    let hi = (previous.as_millis() as u64).saturating_mul(3).max(lo + 1);
    let ms = lo + draw % (hi - lo);
    Duration::from_millis(ms).min(policy.cap)
}

/// May attempt `attempt` (1-based, the one about to start) begin after `elapsed`?
pub fn may_retry(policy: &Policy, attempt: u32, elapsed: Duration, delay: Duration) -> bool {
    attempt <= policy.max_attempts && elapsed + delay <= policy.max_elapsed
}

/// A tiny xorshift generator for jitter: not cryptographic, seeded by the caller.
#[derive(Debug, Clone)]
pub struct Jitter(u64);

impl Jitter {
    pub fn new(seed: u64) -> Self {
        Jitter(seed | 1)
    }
    pub fn draw(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16, code: &str) -> Error {
        Error::new(
            "PutObject",
            "s3://b/k",
            ErrorKind::Status { status, code: code.into(), message: String::new(), request_id: None },
        )
    }

    #[test]
    fn classification_table() {
        let cases: &[(u16, &str, bool)] = &[
            (500, "InternalError", true),
            (502, "", true),
            (503, "SlowDown", true),
            (504, "", true),
            (501, "NotImplemented", false),
            (200, "InternalError", true),
            (429, "", true),
            (400, "RequestTimeout", true),
            (400, "InvalidArgument", false),
            (403, "SignatureDoesNotMatch", false),
            (403, "AccessDenied", false),
            (404, "NoSuchKey", false),
            (409, "OperationAborted", false),
            (412, "PreconditionFailed", false),
        ];
        for (s, c, want) in cases {
            assert_eq!(is_retryable(&status(*s, c)), *want, "{s} {c}");
        }
        let transport = Error::new("GetObject", "s3://b/k", ErrorKind::Transport("reset".into()));
        assert!(is_retryable(&transport));
        assert!(is_retryable(&Error::new("GetObject", "x", ErrorKind::Timeout)));
        assert!(!is_retryable(&Error::new("GetObject", "x", ErrorKind::Xml("bad".into()))));
    }

    #[test]
    fn delays_stay_between_base_and_cap() {
        let p = Policy::default();
        let mut j = Jitter::new(42);
        let mut prev = p.base;
        for _ in 0..1000 {
            let d = next_delay(&p, prev, j.draw());
            assert!(d >= p.base && d <= p.cap, "{d:?}");
            prev = d;
        }
    }

    #[test]
    fn attempts_and_time_are_bounded() {
        let p = Policy::default();
        assert!(may_retry(&p, 2, Duration::ZERO, Duration::from_secs(1)));
        assert!(!may_retry(&p, p.max_attempts + 1, Duration::ZERO, Duration::ZERO));
        assert!(!may_retry(&p, 2, p.max_elapsed, Duration::from_millis(1)));
    }
}

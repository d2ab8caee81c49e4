//! What watches and paces a transfer's bytes: a meter that hears them as they move (the
//! progress display), and `--bwlimit`'s token buckets, one per direction, shared by every
//! transfer and part of a run so the run as a whole keeps to the limit.
//!
//! The bucket's arithmetic is pure ([`Bucket`], time passed in); [`Throttle`] puts it on
//! tokio's clock.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use super::http::ReqBody;

/// Hears `n` more bytes of a transfer moved (sent, or received and written).
pub type Meter = Arc<dyn Fn(u64) + Send + Sync>;

/// A token bucket: `rate` bytes a second, at most `burst` saved up while idle. A taker may go
/// into debt (a chunk larger than what is saved): it waits until the debt is paid, and takers
/// after it wait behind it, so from a full bucket no more than `burst + rate × t` bytes move in
/// any `t`, however many transfers take at once.
#[derive(Debug, Clone)]
pub struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    /// When `tokens` was last brought up to date (time since the bucket's origin).
    at: Duration,
}

impl Bucket {
    /// Full at time zero.
    pub fn new(rate: u64, burst: u64) -> Bucket {
        let rate = rate.max(1) as f64;
        Bucket { rate, burst: burst as f64, tokens: burst as f64, at: Duration::ZERO }
    }

    /// Take `n` bytes' worth at `now`: how long to wait before they may move.
    pub fn take(&mut self, now: Duration, n: u64) -> Duration {
        if now > self.at {
            let earned = (now - self.at).as_secs_f64() * self.rate;
            self.tokens = (self.tokens + earned).min(self.burst);
            self.at = now;
        }
        self.tokens -= n as f64;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }
}

/// One direction's limit for a run, on tokio's clock (paused in tests).
#[derive(Debug)]
pub struct Throttle {
    rate: u64,
    origin: Instant,
    bucket: Mutex<Bucket>,
}

impl Throttle {
    /// An eighth of a second's worth saved up at most: smooth, yet a transfer that paused
    /// briefly (a part's request between two bodies) loses little of its share.
    pub fn new(rate: u64) -> Throttle {
        let burst = (rate / 8).max(16 << 10);
        Throttle { rate, origin: Instant::now(), bucket: Mutex::new(Bucket::new(rate, burst)) }
    }

    pub fn rate(&self) -> u64 {
        self.rate
    }

    /// How long `n` bytes must wait from now.
    pub fn take(&self, n: u64) -> Duration {
        let now = Instant::now().saturating_duration_since(self.origin);
        self.bucket.lock().unwrap_or_else(|p| p.into_inner()).take(now, n)
    }

    /// A request body's chunk size under this limit: waits stay short (a sixteenth of a
    /// second of the whole rate) so many transfers sharing the limit each move steadily, and
    /// a store does not see a connection idle for long.
    fn piece(&self) -> usize {
        (self.rate / 16).clamp(16 << 10, 256 << 10) as usize
    }
}

/// `--bwlimit` for a run: one throttle per direction, shared by all its transfers.
#[derive(Debug, Clone, Default)]
pub struct Limits {
    pub up: Option<Arc<Throttle>>,
    pub down: Option<Arc<Throttle>>,
}

impl Limits {
    /// `None` or 0: no limit.
    pub fn per_direction(bytes_per_sec: Option<u64>) -> Limits {
        match bytes_per_sec.filter(|&r| r > 0) {
            Some(r) => Limits { up: Some(Arc::new(Throttle::new(r))), down: Some(Arc::new(Throttle::new(r))) },
            None => Limits::default(),
        }
    }
}

/// What one transfer reports its bytes to and is paced by; the default does neither.
#[derive(Clone, Default)]
pub struct Tap {
    pub meter: Option<Meter>,
    pub throttle: Option<Arc<Throttle>>,
}

impl Tap {
    pub fn is_idle(&self) -> bool {
        self.meter.is_none() && self.throttle.is_none()
    }

    /// `n` bytes received: counted, then paced (the wait holds the next read back, and TCP
    /// slows the sender).
    pub async fn received(&self, n: u64) {
        if let Some(m) = &self.meter {
            m(n);
        }
        if let Some(t) = &self.throttle {
            let wait = t.take(n);
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
        }
    }

    /// The body of one attempt of a request, metered and paced as it is sent.
    pub(crate) fn wrap(&self, body: ReqBody, sent: &Arc<Sent>) -> ReqBody {
        use http_body_util::BodyExt;
        let piece = self.throttle.as_ref().map_or(256 << 10, |t| t.piece());
        let left = body.size_hint().exact();
        let tap = self.clone();
        let sent = sent.clone();
        Tapped { inner: body, tap, sent, piece, this_attempt: 0, left, held: Bytes::new(), ready: None, wait: None }
            .boxed()
    }
}

/// One request's bytes across its attempts. The meter hears only what goes beyond the
/// furthest attempt, so a part sent again after a lost answer is not counted twice; and the
/// time its body waited for the limit, which is not the store's slowness and so not held
/// against the request's timeout.
#[derive(Debug, Default)]
pub(crate) struct Sent {
    furthest: AtomicU64,
    waited_nanos: AtomicU64,
}

impl Sent {
    pub(crate) fn waited(&self) -> Duration {
        Duration::from_nanos(self.waited_nanos.load(Ordering::Relaxed))
    }
}

/// Await `fut` for `budget`, not counting time the request's body spent waiting for the
/// bandwidth limit. `None`: out of time.
pub(crate) async fn within<F: Future>(budget: Duration, sent: &Sent, fut: F) -> Option<F::Output> {
    tokio::pin!(fut);
    let start = Instant::now();
    loop {
        let waited = sent.waited();
        match tokio::time::timeout_at(start + budget + waited, &mut fut).await {
            Ok(out) => return Some(out),
            // Waits added meanwhile extend the deadline.
            Err(_) if sent.waited() > waited => continue,
            Err(_) => return None,
        }
    }
}

/// A request body in pieces, each paced by the throttle and counted when handed to hyper.
struct Tapped {
    inner: ReqBody,
    tap: Tap,
    sent: Arc<Sent>,
    piece: usize,
    /// Bytes this attempt handed on, and bytes left to send (when the body's length is known).
    this_attempt: u64,
    left: Option<u64>,
    /// Data from the inner body not yet cut into pieces.
    held: Bytes,
    /// The next piece, handed on once `wait` is over.
    ready: Option<Bytes>,
    wait: Option<Pin<Box<Sleep>>>,
}

impl Tapped {
    fn count(&mut self, n: u64) {
        self.this_attempt += n;
        if let Some(left) = &mut self.left {
            *left = left.saturating_sub(n);
        }
        let before = self.sent.furthest.fetch_max(self.this_attempt, Ordering::Relaxed);
        if let (Some(m), true) = (&self.tap.meter, self.this_attempt > before) {
            m(self.this_attempt - before);
        }
    }
}

impl Body for Tapped {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = &mut *self;
        loop {
            if let Some(wait) = this.wait.as_mut() {
                if wait.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.wait = None;
            }
            if let Some(piece) = this.ready.take() {
                this.count(piece.len() as u64);
                return Poll::Ready(Some(Ok(Frame::data(piece))));
            }
            if this.held.is_empty() {
                match Pin::new(&mut this.inner).poll_frame(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(None) => return Poll::Ready(None),
                    Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                    Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                        Ok(data) => this.held = data,
                        Err(frame) => return Poll::Ready(Some(Ok(frame))),
                    },
                }
                continue;
            }
            let n = this.piece.min(this.held.len());
            let piece = this.held.split_to(n);
            if let Some(t) = &this.tap.throttle {
                let wait = t.take(n as u64);
                if !wait.is_zero() {
                    this.sent.waited_nanos.fetch_add(wait.as_nanos() as u64, Ordering::Relaxed);
                    this.wait = Some(Box::pin(tokio::time::sleep(wait)));
                }
            }
            this.ready = Some(piece);
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ready.is_none() && self.held.is_empty() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        match self.left {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};

    const KIB: u64 = 1 << 10;
    const MIB: u64 = 1 << 20;

    /// One taker moving `total` in `chunk`s, waiting as told: when it is done.
    fn drain(bucket: &mut Bucket, mut now: Duration, total: u64, chunk: u64) -> Duration {
        let mut left = total;
        while left > 0 {
            let n = chunk.min(left);
            now += bucket.take(now, n);
            left -= n;
        }
        now
    }

    #[test]
    fn bwlimit_bucket_holds_4_mib_at_1_mib_per_second_to_at_least_3_seconds() {
        let mut b = Bucket::new(MIB, 128 * KIB);
        let done = drain(&mut b, Duration::ZERO, 4 * MIB, 256 * KIB);
        // burst + rate × t ≥ total: t ≥ (4 MiB − 128 KiB) / 1 MiB/s.
        let least = Duration::from_secs_f64((4 * MIB - 128 * KIB) as f64 / MIB as f64);
        assert!(done >= least, "{done:?} < {least:?}");
        assert!(done <= least + Duration::from_millis(1), "no slower than the limit: {done:?}");
    }

    #[test]
    fn bwlimit_bucket_is_shared_fairly_by_takers_at_the_same_instant() {
        // Eight parts take a chunk each at once: each waits behind the ones before it, so
        // together they move at the rate, not eight times it.
        let mut b = Bucket::new(MIB, 0);
        let waits: Vec<Duration> = (0..8).map(|_| b.take(Duration::ZERO, 128 * KIB)).collect();
        for (i, w) in waits.iter().enumerate() {
            let expect = (i as f64 + 1.0) / 8.0;
            assert!((w.as_secs_f64() - expect).abs() < 1e-9, "taker {i}: {w:?}");
        }
    }

    #[test]
    fn bwlimit_bucket_saves_no_more_than_its_burst_while_idle() {
        let mut b = Bucket::new(MIB, 64 * KIB);
        assert_eq!(b.take(Duration::ZERO, 64 * KIB), Duration::ZERO);
        // An hour idle earns only the burst back.
        let later = Duration::from_secs(3600);
        assert_eq!(b.take(later, 64 * KIB), Duration::ZERO);
        let w = b.take(later, MIB);
        assert!((w.as_secs_f64() - 1.0).abs() < 1e-9, "{w:?}");
        // The clock going backwards (two takers read it out of order) earns nothing.
        let w = b.take(later - Duration::from_secs(1), 0);
        assert!((w.as_secs_f64() - 1.0).abs() < 1e-9, "{w:?}");
    }

    fn counting() -> (Meter, Arc<AtomicU64>, Arc<AtomicU64>) {
        let (bytes, calls) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let (b, c) = (bytes.clone(), calls.clone());
        let meter: Meter = Arc::new(move |n| {
            b.fetch_add(n, Ordering::Relaxed);
            c.fetch_add(1, Ordering::Relaxed);
        });
        (meter, bytes, calls)
    }

    fn body(len: usize) -> ReqBody {
        Full::new(Bytes::from(vec![7u8; len])).map_err(|e| match e {}).boxed()
    }

    #[tokio::test(start_paused = true)]
    async fn bwlimit_paces_a_request_body_and_progress_hears_it_piece_by_piece() {
        let (meter, bytes, calls) = counting();
        let tap = Tap { meter: Some(meter), throttle: Some(Arc::new(Throttle::new(MIB))) };
        let sent = Arc::new(Sent::default());
        let t0 = Instant::now();
        let mut b = tap.wrap(body(4 * MIB as usize), &sent);
        assert_eq!(b.size_hint().exact(), Some(4 * MIB));
        let mut got = 0;
        while let Some(frame) = b.frame().await {
            got += frame.unwrap().into_data().unwrap().len() as u64;
        }
        assert_eq!(got, 4 * MIB);
        assert_eq!(bytes.load(Ordering::Relaxed), 4 * MIB);
        assert_eq!(calls.load(Ordering::Relaxed), 4 * MIB / (64 * KIB), "one call per piece");
        // Paused time: exact, not a wall-clock measurement.
        let took = t0.elapsed();
        assert!(took >= Duration::from_millis(3800), "{took:?}");
        assert!(sent.waited() >= Duration::from_millis(3800), "{:?}", sent.waited());
    }

    #[tokio::test]
    async fn a_retried_request_body_is_counted_once() {
        let (meter, bytes, _) = counting();
        let tap = Tap { meter: Some(meter), throttle: None };
        let sent = Arc::new(Sent::default());
        // First attempt: cut off after two pieces (a connection reset).
        let mut first = tap.wrap(body(MIB as usize), &sent);
        for _ in 0..2 {
            first.frame().await.unwrap().unwrap();
        }
        drop(first);
        assert_eq!(bytes.load(Ordering::Relaxed), 512 * KIB);
        // Second attempt sends it all; only the new half is heard.
        let mut second = tap.wrap(body(MIB as usize), &sent);
        while second.frame().await.is_some() {}
        assert_eq!(bytes.load(Ordering::Relaxed), MIB);
        // A third (the answer was lost) adds nothing.
        let mut third = tap.wrap(body(MIB as usize), &sent);
        while third.frame().await.is_some() {}
        assert_eq!(bytes.load(Ordering::Relaxed), MIB);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_waiting_for_the_bwlimit_is_not_timed_out_for_it() {
        let sent = Sent::default();
        // The body waits 50 s for the limit; the store answers 5 s later: within a 10 s budget.
        sent.waited_nanos.store(Duration::from_secs(50).as_nanos() as u64, Ordering::Relaxed);
        let answer = within(Duration::from_secs(10), &sent, tokio::time::sleep(Duration::from_secs(55))).await;
        assert!(answer.is_some());
        // A store that is slow by itself still times out.
        let sent = Sent::default();
        let answer = within(Duration::from_secs(10), &sent, tokio::time::sleep(Duration::from_secs(11))).await;
        assert!(answer.is_none());
    }
}

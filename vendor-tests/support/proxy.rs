//! A fault-injecting HTTP/1.1 proxy between s4 and the test store, in process.
//!
//! `Proxy::start(plan)` listens on `127.0.0.1:<free port>`; point a target's endpoint at
//! [`Proxy::endpoint`]. Requests are forwarded unchanged, the `Host` header included (s4 signed
//! it for the proxy's address and the store checks the signature against what it receives).
//! A [`Plan`] says which requests get which [`Fault`]: per-request [`Rule`]s (method, query,
//! path, the nth match, how many times) and a seeded [`Mix`] that hits a share of all requests.
//! Counts of requests and of faults per kind are kept for the test's report.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Out = BoxBody<Bytes, BoxError>;

/// What can go wrong between s4 and the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    /// 503 SlowDown with S3's XML error body; the store never sees the request.
    SlowDown,
    /// The connection is dropped before the store sees the request.
    Reset,
    /// The store carries the request out, then the connection drops: the answer is lost.
    ResetAfter,
    /// Headers with the real Content-Length, half the body, then the connection drops (GET).
    Truncate,
    /// 200 OK whose body is an S3 `<Error>` document (not for object GET/HEAD, whose body is data).
    ErrorIn200,
    /// A consistent but short answer: the body cut to 3/4 and Content-Length saying so (object GET).
    ShortLength,
    /// A listing whose XML is cut off mid-document (ListObjectsV2).
    MalformedXml,
    /// No answer for longer than s4's read timeout, then the connection drops (GET/HEAD).
    Stall,
    /// The request waits (the stall time) before it goes on to the store: a slow link holding
    /// one request while other machines act (issue 10's scenarios).
    Hold,
}

impl Fault {
    pub const ALL: [Fault; 8] = [
        Fault::SlowDown,
        Fault::Reset,
        Fault::ResetAfter,
        Fault::Truncate,
        Fault::ErrorIn200,
        Fault::ShortLength,
        Fault::MalformedXml,
        Fault::Stall,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Fault::SlowDown => "slowdown",
            Fault::Reset => "reset",
            Fault::ResetAfter => "reset-after",
            Fault::Truncate => "truncate",
            Fault::ErrorIn200 => "error-in-200",
            Fault::ShortLength => "short-length",
            Fault::MalformedXml => "malformed-xml",
            Fault::Stall => "stall",
            Fault::Hold => "hold",
        }
    }

    /// Can this fault be told about this request? (A HEAD has no body to cut, a PUT no
    /// listing to garble; a 200 `<Error>` on an object GET would be taken for file data, which
    /// no store does.)
    fn fits(self, r: &ReqInfo) -> bool {
        match self {
            Fault::SlowDown | Fault::Reset | Fault::ResetAfter => true,
            Fault::Truncate => r.method == "GET",
            Fault::ErrorIn200 => !r.object_read(),
            Fault::ShortLength => r.method == "GET" && r.has_key && !r.listing,
            Fault::MalformedXml => r.listing,
            Fault::Stall => r.method == "GET" || r.method == "HEAD",
            Fault::Hold => true,
        }
    }
}

/// What a rule or the mix looks at in a request.
#[derive(Debug, Clone)]
pub struct ReqInfo {
    pub method: String,
    pub path: String,
    pub query: String,
    /// The path names an object, not just the bucket (path-style: `/bucket/key`).
    pub has_key: bool,
    pub listing: bool,
}

impl ReqInfo {
    fn of<B>(req: &hyper::Request<B>) -> ReqInfo {
        let path = req.uri().path().to_string();
        let query = req.uri().query().unwrap_or("").to_string();
        let has_key = path.trim_start_matches('/').contains('/');
        let listing = req.method() == hyper::Method::GET && query.contains("list-type=2");
        ReqInfo { method: req.method().as_str().to_string(), path, query, has_key, listing }
    }

    fn object_read(&self) -> bool {
        (self.method == "GET" || self.method == "HEAD") && self.has_key && self.query.is_empty()
    }
}

/// Which requests a rule applies to; `None` fields match anything.
#[derive(Debug, Clone, Default)]
pub struct Match {
    pub method: Option<&'static str>,
    /// A substring of the raw query (`"list-type=2"`, `"uploadId="`).
    pub query: Option<&'static str>,
    /// A substring of the path (percent-encoded as sent: `".index"`, `"big"`).
    pub path: Option<String>,
}

impl Match {
    pub fn method(m: &'static str) -> Match {
        Match { method: Some(m), ..Default::default() }
    }

    pub fn listing() -> Match {
        Match { method: Some("GET"), query: Some("list-type=2"), ..Default::default() }
    }

    pub fn path(mut self, p: &str) -> Match {
        self.path = Some(p.to_string());
        self
    }

    fn matches(&self, r: &ReqInfo) -> bool {
        self.method.is_none_or(|m| m == r.method)
            && self.query.is_none_or(|q| r.query.contains(q))
            && self.path.as_ref().is_none_or(|p| r.path.contains(p.as_str()))
    }
}

/// Inject `fault` into matching requests: only the `nth` match (1-based) if set, and at most
/// `times` times if set (both unset: every match, for persistent breakage).
#[derive(Debug, Clone)]
pub struct Rule {
    pub when: Match,
    pub fault: Fault,
    pub nth: Option<u64>,
    pub times: Option<u64>,
    seen: u64,
    fired: u64,
}

impl Rule {
    pub fn always(when: Match, fault: Fault) -> Rule {
        Rule { when, fault, nth: None, times: None, seen: 0, fired: 0 }
    }

    pub fn nth(when: Match, fault: Fault, nth: u64) -> Rule {
        Rule { nth: Some(nth), ..Rule::always(when, fault) }
    }

    pub fn times(when: Match, fault: Fault, times: u64) -> Rule {
        Rule { times: Some(times), ..Rule::always(when, fault) }
    }

    fn fire(&mut self, r: &ReqInfo) -> bool {
        if !self.when.matches(r) || !self.fault.fits(r) {
            return false;
        }
        self.seen += 1;
        let due = self.nth.is_none_or(|n| n == self.seen) && self.times.is_none_or(|t| self.fired < t);
        if due {
            self.fired += 1;
        }
        due
    }
}

/// A seeded share of all requests gets a fault drawn from `kinds` (among those that fit the
/// request); each kind at most `cap` times, so rare-but-costly faults (stalls) stay bounded.
#[derive(Debug, Clone)]
pub struct Mix {
    pub seed: u64,
    /// Faulty requests per thousand.
    pub permille: u64,
    pub kinds: Vec<(Fault, u64)>,
}

#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub rules: Vec<Rule>,
    pub mix: Option<Mix>,
}

impl Plan {
    pub fn none() -> Plan {
        Plan::default()
    }

    pub fn rules(rules: Vec<Rule>) -> Plan {
        Plan { rules, mix: None }
    }
}

struct State {
    plan: Mutex<Plan>,
    /// `http://host:port` of the store.
    upstream: String,
    stall: Duration,
    requests: AtomicU64,
    faults: Mutex<BTreeMap<Fault, u64>>,
    /// Requests the store itself could not be reached for (should stay 0).
    upstream_errors: AtomicU64,
    client: Client<HttpConnector, Incoming>,
}

/// splitmix64: a well-mixed draw from (seed, request number), so a seed replays a schedule.
pub fn draw(seed: u64, n: u64) -> u64 {
    let mut z = seed.wrapping_add(n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl State {
    /// The fault for request number `n`, if any (rules first, then the mix), counted.
    fn pick(&self, n: u64, r: &ReqInfo) -> Option<Fault> {
        let mut plan = self.plan.lock().unwrap();
        let mut faults = self.faults.lock().unwrap();
        let mut chosen = plan.rules.iter_mut().find_map(|rule| rule.fire(r).then_some(rule.fault));
        if let (None, Some(mix)) = (chosen, &plan.mix) {
            let x = draw(mix.seed, n);
            if x % 1000 < mix.permille && !mix.kinds.is_empty() {
                let (kind, cap) = mix.kinds[((x >> 20) % mix.kinds.len() as u64) as usize];
                if kind.fits(r) && faults.get(&kind).copied().unwrap_or(0) < cap {
                    chosen = Some(kind);
                }
            }
        }
        if let Some(f) = chosen {
            *faults.entry(f).or_default() += 1;
        }
        chosen
    }
}

/// A running proxy; stops when dropped.
pub struct Proxy {
    pub endpoint: String,
    state: Arc<State>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Proxy {
    /// A proxy in front of the test store; `stall` is how long a stalled request is held
    /// (make it longer than the read timeout the s4 under test uses).
    pub fn start(plan: Plan, stall: Duration) -> Proxy {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).expect("bind 127.0.0.1:0 for the proxy");
        listener.set_nonblocking(true).expect("set_nonblocking");
        let addr = listener.local_addr().expect("local_addr");
        let state = Arc::new(State {
            plan: Mutex::new(plan),
            upstream: super::store().endpoint.clone(),
            stall,
            requests: AtomicU64::new(0),
            faults: Mutex::new(BTreeMap::new()),
            upstream_errors: AtomicU64::new(0),
            client: Client::builder(TokioExecutor::new()).pool_max_idle_per_host(64).build_http(),
        });
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let st = state.clone();
        std::thread::Builder::new()
            .name("fault-proxy".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("proxy runtime");
                rt.block_on(serve(st, listener, stopped));
                // Dropping the runtime here ends every connection still open.
            })
            .expect("spawn proxy thread");
        Proxy { endpoint: format!("http://{addr}"), state, stop: Some(stop) }
    }

    /// Replace the plan (e.g. a healthy first run, then breakage).
    pub fn set_plan(&self, plan: Plan) {
        *self.state.plan.lock().unwrap() = plan;
    }

    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::Relaxed)
    }

    pub fn upstream_errors(&self) -> u64 {
        self.state.upstream_errors.load(Ordering::Relaxed)
    }

    pub fn faults(&self) -> BTreeMap<Fault, u64> {
        self.state.faults.lock().unwrap().clone()
    }

    pub fn total_faults(&self) -> u64 {
        self.faults().values().sum()
    }

    /// `"812 requests, 64 faults (slowdown 9, reset 8, ...)"`.
    pub fn report(&self) -> String {
        let kinds: Vec<String> = self.faults().iter().map(|(f, n)| format!("{} {n}", f.name())).collect();
        format!("{} requests, {} faults ({})", self.requests(), self.total_faults(), kinds.join(", "))
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn serve(state: Arc<State>, listener: std::net::TcpListener, mut stopped: tokio::sync::oneshot::Receiver<()>) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
    loop {
        let socket = tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => match accepted {
                Ok((socket, _)) => socket,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let _ = socket.set_nodelay(true);
        let state = state.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(state.clone(), req));
            // An injected reset is an error returned by the service: hyper then closes the
            // connection without an answer, which is the point.
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(socket), service)
                .await;
        });
    }
}

fn s3_error(status: u16, code: &str, message: &str) -> hyper::Response<Out> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message>\
         <RequestId>fault-proxy</RequestId></Error>"
    );
    hyper::Response::builder()
        .status(status)
        .header("content-type", "application/xml")
        .header("content-length", body.len())
        .body(full(Bytes::from(body)))
        .unwrap()
}

fn full(b: Bytes) -> Out {
    http_body_util::Full::new(b).map_err(|e| match e {}).boxed()
}

async fn handle(state: Arc<State>, req: hyper::Request<Incoming>) -> Result<hyper::Response<Out>, BoxError> {
    let n = state.requests.fetch_add(1, Ordering::Relaxed) + 1;
    let info = ReqInfo::of(&req);
    let fault = state.pick(n, &info);
    match fault {
        Some(Fault::SlowDown) => return Ok(s3_error(503, "SlowDown", "Please reduce your request rate.")),
        Some(Fault::ErrorIn200) => {
            return Ok(s3_error(200, "InternalError", "We encountered an internal error. Please try again."))
        }
        Some(Fault::Reset) => return Err("injected: connection reset".into()),
        Some(Fault::Stall) => {
            tokio::time::sleep(state.stall).await;
            return Err("injected: stalled".into());
        }
        Some(Fault::Hold) => tokio::time::sleep(state.stall).await,
        _ => {}
    }
    let answer = match forward(&state, req).await {
        Ok(a) => a,
        Err(e) => {
            state.upstream_errors.fetch_add(1, Ordering::Relaxed);
            return Err(e);
        }
    };
    match fault {
        Some(Fault::ResetAfter) => Err("injected: connection reset after the store answered".into()),
        Some(Fault::Truncate) => {
            let (parts, body) = answer.into_parts();
            let bytes = body.collect().await?.to_bytes();
            let mut parts = parts;
            parts.headers.remove("transfer-encoding");
            parts.headers.insert("content-length", bytes.len().into());
            let half = bytes.slice(..bytes.len() / 2);
            Ok(hyper::Response::from_parts(parts, Cut::new(half).boxed()))
        }
        Some(Fault::ShortLength) => Ok(rewrite(answer, |b| b.slice(..b.len() * 3 / 4)).await?),
        Some(Fault::MalformedXml) => Ok(rewrite(answer, |b| b.slice(..b.len() / 2)).await?),
        _ => Ok(answer.map(|b| b.map_err(|e| Box::new(e) as BoxError).boxed())),
    }
}

/// The request as it came (method, path, query, every header, `Host` included), to the store.
async fn forward(state: &State, req: hyper::Request<Incoming>) -> Result<hyper::Response<Incoming>, BoxError> {
    let (mut parts, body) = req.into_parts();
    let pq = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    parts.uri = format!("{}{pq}", state.upstream).parse()?;
    Ok(state.client.request(hyper::Request::from_parts(parts, body)).await?)
}

/// The whole answer, its body replaced by `f(body)` with a Content-Length to match.
async fn rewrite(
    answer: hyper::Response<Incoming>,
    f: impl FnOnce(Bytes) -> Bytes,
) -> Result<hyper::Response<Out>, BoxError> {
    let (mut parts, body) = answer.into_parts();
    let body = f(body.collect().await?.to_bytes());
    parts.headers.remove("transfer-encoding");
    parts.headers.insert("content-length", body.len().into());
    Ok(hyper::Response::from_parts(parts, full(body)))
}

/// A body that yields its bytes, then (after a moment, so they reach the wire) fails: hyper
/// cuts the connection short of the Content-Length it already sent.
struct Cut(Option<Bytes>, Option<Pin<Box<tokio::time::Sleep>>>);

impl Cut {
    fn new(b: Bytes) -> Cut {
        Cut(Some(b), None)
    }
}

impl Body for Cut {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(b) = self.0.take().filter(|b| !b.is_empty()) {
            return Poll::Ready(Some(Ok(Frame::data(b))));
        }
        let pause = self.1.get_or_insert_with(|| Box::pin(tokio::time::sleep(Duration::from_millis(50))));
        match pause.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) => Poll::Ready(Some(Err("injected: body cut off".into()))),
        }
    }
}

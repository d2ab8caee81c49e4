//! The request path every operation shares: address the bucket, sign, send, classify the
//! answer, retry what is worth retrying, and follow a wrong-region answer once.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::HeaderMap;
use hyper::{Method, StatusCode};

use super::credentials::Provider;
use super::error::{Error, ErrorKind, Result};
use super::fence::{self, Fence};
use super::flow::{self, Sent, Tap};
use super::http::{self, HttpClient, Payload};
use super::retry::{self, Jitter, Policy};
use super::sigv4;
use super::xml;

/// How to reach a bucket and with which keys. `Debug` hides the secret (see `Credentials`).
#[derive(Debug, Clone)]
pub struct Config {
    /// A custom endpoint (`http://127.0.0.1:3900`); `None` means AWS's regional endpoint.
    pub endpoint: Option<String>,
    pub region: String,
    /// `None`: path style for custom endpoints, virtual-hosted for AWS.
    pub path_style: Option<bool>,
    /// Asked for the current keys at every request (temporary keys are refreshed there).
    pub credentials: Provider,
    pub retry: Policy,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    /// `None`: UNSIGNED-PAYLOAD over https (TLS protects the body) and for file bodies; other
    /// bodies hashed over http. `Some(false)` hashes every body (reading files twice).
    pub unsigned_payload: Option<bool>,
}

impl Config {
    /// `credentials`: a [`Provider`], or fixed `Credentials`.
    pub fn new(endpoint: Option<String>, region: String, credentials: impl Into<Provider>) -> Self {
        Config {
            endpoint,
            region,
            path_style: None,
            credentials: credentials.into(),
            retry: Policy::default(),
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(60),
            unsigned_payload: None,
        }
    }
}

/// A bucket on a store. Cheap to clone: all clones share one connection pool.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
    /// Checked before every attempt of a write and before its body's last byte (the lease).
    fence: Option<Fence>,
}

struct Inner {
    http: HttpClient,
    cfg: Config,
    bucket: String,
    scheme: &'static str,
    /// host[:port] of the custom endpoint, and its base path (no trailing '/').
    custom: Option<(String, String)>,
    region: Mutex<String>,
    jitter: Mutex<Jitter>,
    /// Does the store really URL-encode listings? 0 unknown, 1 yes, 2 no (see `xml::url_evidence`).
    url_encoding: std::sync::atomic::AtomicU8,
    /// Held while the store is asked how it encodes listings: pages read at once (the sync's
    /// listing ranges) wait for the first verdict rather than each asking again.
    url_probe: tokio::sync::Mutex<()>,
    /// Requests sent (every attempt counts): tests check there is no retry storm, benches report it.
    sent: std::sync::atomic::AtomicU64,
    /// Of those, attempts after the first of a request (`s4 bench` reports them).
    retried: std::sync::atomic::AtomicU64,
}

/// One S3 request, described: every attempt is built, signed and sent anew from it.
pub struct Request<'a> {
    pub op: &'static str,
    pub method: Method,
    /// `None` for bucket-level operations.
    pub key: Option<&'a str>,
    pub query: Vec<(&'a str, String)>,
    pub headers: Vec<(String, String)>,
    pub payload: Payload,
    /// Meters and paces the body as it is sent (a file's bytes; not indexes or listings).
    pub tap: Option<Tap>,
}

impl<'a> Request<'a> {
    pub fn new(op: &'static str, method: Method, key: Option<&'a str>) -> Self {
        Request { op, method, key, query: Vec::new(), headers: Vec::new(), payload: Payload::Empty, tap: None }
    }
    pub fn query(mut self, name: &'a str, value: impl Into<String>) -> Self {
        self.query.push((name, value.into()));
        self
    }
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
    pub fn payload(mut self, payload: Payload) -> Self {
        self.payload = payload;
        self
    }
    pub fn tap(mut self, tap: &Tap) -> Self {
        self.tap = Some(tap.clone()).filter(|t| !t.is_idle());
        self
    }
}

pub struct Answer<B> {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: B,
}

enum Failure {
    Plain(Error),
    /// The bucket lives in another region; the store said which.
    WrongRegion(Error, String),
}

fn parse_endpoint(url: &str) -> std::result::Result<(&'static str, String, String), String> {
    let (scheme, rest) = if let Some(r) = url.strip_prefix("https://") {
        ("https", r)
    } else if let Some(r) = url.strip_prefix("http://") {
        ("http", r)
    } else {
        return Err(format!("endpoint url \"{url}\" must start with http:// or https:// (e.g. http://127.0.0.1:3900)"));
    };
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
        None => (rest, ""),
    };
    if host.is_empty() {
        return Err(format!("endpoint url \"{url}\" has no host"));
    }
    Ok((scheme, host.to_string(), path.to_string()))
}

/// Requests that change the store (the fence guards these).
fn is_write(m: &Method) -> bool {
    *m != Method::GET && *m != Method::HEAD
}

/// The first request's start: request logs give times from it.
static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

impl Client {
    pub fn new(cfg: Config, bucket: &str) -> Result<Client> {
        let cfg_err = |m: String| Error::new("Configure", format!("s3://{bucket}"), ErrorKind::Config(m));
        if bucket.is_empty() {
            return Err(cfg_err("the bucket name is empty".into()));
        }
        let (scheme, custom) = match &cfg.endpoint {
            Some(url) => {
                let (scheme, host, path) = parse_endpoint(url).map_err(cfg_err)?;
                (scheme, Some((host, path)))
            }
            None => ("https", None),
        };
        let seed = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(7);
        Ok(Client {
            fence: None,
            inner: Arc::new(Inner {
                http: http::build_client(cfg.connect_timeout),
                region: Mutex::new(cfg.region.clone()),
                bucket: bucket.to_string(),
                scheme,
                custom,
                jitter: Mutex::new(Jitter::new(seed)),
                url_encoding: std::sync::atomic::AtomicU8::new(0),
                url_probe: tokio::sync::Mutex::new(()),
                sent: std::sync::atomic::AtomicU64::new(0),
                retried: std::sync::atomic::AtomicU64::new(0),
                cfg,
            }),
        })
    }

    pub fn bucket(&self) -> &str {
        &self.inner.bucket
    }

    /// This client, whose writes (PUT, POST, DELETE) are each attempt checked against `fence`
    /// first, and a body's last byte too (see [`fence`]). Reads are not fenced.
    pub fn with_fence(&self, fence: Fence) -> Client {
        Client { inner: self.inner.clone(), fence: Some(fence) }
    }

    pub fn region(&self) -> String {
        self.inner.region.lock().unwrap().clone()
    }

    /// What we learned about the store's listing encoding: `None` until known.
    pub(crate) fn url_encoding(&self) -> Option<bool> {
        match self.inner.url_encoding.load(std::sync::atomic::Ordering::Relaxed) {
            1 => Some(true),
            2 => Some(false),
            _ => None,
        }
    }

    /// Hold while asking the store how it encodes listings (see `url_probe`).
    pub(crate) async fn url_probe(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.inner.url_probe.lock().await
    }

    pub(crate) fn set_url_encoding(&self, encodes: bool) {
        let v = if encodes { 1 } else { 2 };
        self.inner.url_encoding.store(v, std::sync::atomic::Ordering::Relaxed);
    }

    /// Requests sent so far by this client and its clones, retries included.
    pub fn requests_sent(&self) -> u64 {
        self.inner.sent.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Retries so far (attempts after a request's first), by this client and its clones.
    pub fn retries(&self) -> u64 {
        self.inner.retried.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A presigned GET URL for `key`, valid `expires_secs` from now (and no longer than the
    /// keys it is signed with).
    pub async fn presign_get(&self, key: &str, expires_secs: u64) -> Result<String> {
        let region = self.region();
        let (host, path) = self.address(Some(key), &region);
        let c = self.credentials("PresignGet", key).await?;
        let c = &c;
        let creds = sigv4::Credentials {
            access_key_id: &c.access_key_id,
            secret_access_key: &c.secret_access_key,
            session_token: c.session_token.as_deref(),
        };
        let query = sigv4::presign_query("GET", &host, &path, &[], &creds, &region, "s3", now_secs(), expires_secs);
        Ok(format!("{}://{host}{path}?{query}", self.inner.scheme))
    }

    /// The keys to sign with now. A source that cannot give them fails the request, naming
    /// the source: never an unsigned request.
    async fn credentials(&self, op: &'static str, key: &str) -> Result<super::Credentials> {
        self.inner
            .cfg
            .credentials
            .credentials()
            .await
            .map_err(|e| Error::new(op, self.uri(key), ErrorKind::Config(e.to_string())))
    }

    /// Where the keys come from (`s4 doctor`).
    pub fn credentials_provider(&self) -> &Provider {
        &self.inner.cfg.credentials
    }

    /// The endpoint requests go to: the custom one, or AWS's regional one.
    pub fn endpoint(&self) -> String {
        match &self.inner.custom {
            Some((host, base)) => format!("{}://{host}{base}", self.inner.scheme),
            None => format!("https://s3.{}.amazonaws.com", self.region()),
        }
    }

    /// Path-style addressing (`https://host/bucket/key`) rather than virtual-hosted.
    pub fn path_style_in_use(&self) -> bool {
        self.path_style()
    }

    /// Names the store and bucket (endpoint, or AWS and the region) for what s4 remembers
    /// about a store between runs.
    pub fn store_id(&self) -> String {
        match &self.inner.cfg.endpoint {
            Some(e) => format!("{} {}", e.trim_end_matches('/'), self.inner.bucket),
            None => format!("aws:{} {}", self.inner.cfg.region, self.inner.bucket),
        }
    }

    pub fn read_timeout(&self) -> Duration {
        self.inner.cfg.read_timeout
    }

    /// `s3://bucket/key`, how errors and logs name an object.
    pub fn uri(&self, key: &str) -> String {
        format!("s3://{}/{}", self.inner.bucket, key)
    }

    fn path_style(&self) -> bool {
        let i = &self.inner;
        // Dotted bucket names break the TLS wildcard certificate of virtual hosts.
        i.cfg.path_style.unwrap_or(i.custom.is_some() || i.bucket.contains('.'))
    }

    /// (host header, path) for a key, per the addressing style.
    fn address(&self, key: Option<&str>, region: &str) -> (String, String) {
        let i = &self.inner;
        let (host, base) = match &i.custom {
            Some((h, p)) => (h.clone(), p.clone()),
            None => (format!("s3.{region}.amazonaws.com"), String::new()),
        };
        let key_path = key.map(|k| sigv4::uri_encode(k, false)).unwrap_or_default();
        if self.path_style() {
            let mut path = format!("{base}/{}", sigv4::uri_encode(&i.bucket, true));
            if key.is_some() {
                path.push('/');
                path.push_str(&key_path);
            }
            (host, path)
        } else {
            (format!("{}.{host}", i.bucket), format!("{base}/{key_path}"))
        }
    }

    fn unsigned(&self) -> bool {
        self.inner.cfg.unsigned_payload.unwrap_or(self.inner.scheme == "https")
    }

    async fn payload_hash(&self, req: &Request<'_>) -> Result<String> {
        // File bodies (uploads, parts) are not hashed unless asked: hashing means reading the
        // file twice and costs the CPU the store shares with us (DESIGN.md; benches/ measured
        // 401 → 485 MiB/s). In-memory bodies are cheap to hash, so over http they still are.
        let file = matches!(req.payload, Payload::File { .. });
        if self.unsigned() || (file && self.inner.cfg.unsigned_payload.is_none()) {
            return Ok(sigv4::UNSIGNED_PAYLOAD.into());
        }
        match &req.payload {
            Payload::Empty => Ok(sigv4::EMPTY_SHA256.into()),
            Payload::Bytes(b) => Ok(sigv4::sha256_hex(b)),
            Payload::File { path, offset, len } => {
                let (path, offset, len) = (path.clone(), *offset, *len);
                let shown = path.display().to_string();
                tokio::task::spawn_blocking(move || crate::fsutil::sha256_range(&path, offset, len).map(hex::encode))
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|r| r.map_err(|e| e.to_string()))
                    .map_err(|m| Error::new(req.op, shown, ErrorKind::Io(format!("reading: {m}"))))
            }
        }
    }

    fn object_name(&self, req: &Request<'_>) -> String {
        self.uri(req.key.unwrap_or(""))
    }

    async fn attempt(
        &self,
        req: &Request<'_>,
        payload_hash: &str,
        read_body: bool,
        sent: &Arc<Sent>,
    ) -> std::result::Result<Answer<Result<Bytes, Incoming>>, Failure> {
        let i = &self.inner;
        let object = self.object_name(req);
        let fence = self.fence.as_ref().filter(|_| is_write(&req.method));
        if let Some(f) = fence {
            fence::ask(f, req.op, &object).map_err(Failure::Plain)?;
        }
        let region = self.region();
        let (host, path) = self.address(req.key, &region);
        let pairs: Vec<(&str, &str)> = req.query.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let query = sigv4::canonical_query(&pairs);
        let signed: Vec<(&str, &str)> = req.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let creds = self.credentials(req.op, req.key.unwrap_or("")).await.map_err(Failure::Plain)?;
        let auth = sigv4::sign(
            &sigv4::Request {
                method: req.method.as_str(),
                host: &host,
                path: &path,
                query: &query,
                headers: &signed,
                payload_hash,
            },
            &sigv4::Credentials {
                access_key_id: &creds.access_key_id,
                secret_access_key: &creds.secret_access_key,
                session_token: creds.session_token.as_deref(),
            },
            &region,
            "s3",
            now_secs(),
        );
        let url = if query.is_empty() {
            format!("{}://{host}{path}", i.scheme)
        } else {
            format!("{}://{host}{path}?{query}", i.scheme)
        };
        let mut builder = hyper::Request::builder().method(req.method.clone()).uri(&url).header("host", &host);
        for (k, v) in req.headers.iter() {
            builder = builder.header(k.as_str(), v.as_str());
        }
        for (k, v) in auth {
            builder = builder.header(k, v);
        }
        if req.method == Method::PUT || req.method == Method::POST {
            builder = builder.header("content-length", req.payload.len().to_string());
        }
        let io_err = |e: std::io::Error| Failure::Plain(Error::new(req.op, &object, ErrorKind::Io(e.to_string())));
        let mut body = req.payload.clone().into_body().await.map_err(io_err)?;
        if let Some(tap) = &req.tap {
            body = tap.wrap(body, sent);
        }
        if let Some(f) = fence {
            body = fence::guard(body, f.clone());
        }
        let request = builder
            .body(body)
            .map_err(|e| Failure::Plain(Error::new(req.op, &object, ErrorKind::Config(e.to_string()))))?;
        // Once more as late as this layer can: a body-less write (a copy, an empty file) has no
        // last byte to hold back, and the credentials above may have taken a while.
        if let Some(f) = fence {
            fence::ask(f, req.op, &object).map_err(Failure::Plain)?;
        }
        let timeout = i.cfg.read_timeout;
        i.sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Waiting for the answer includes sending the body: allow for an upload at a slow but
        // working 64 KiB/s on top of the read timeout, so a slow uplink is not called a dead
        // store (the body stream itself fails fast if the connection breaks). Time the body
        // waits for --bwlimit is not counted: the limit, shared by many transfers, may well
        // be slower than that.
        let budget = timeout + Duration::from_secs(req.payload.len() / (64 << 10));
        let response = match flow::within(budget, sent, i.http.request(request)).await {
            None => return Err(Failure::Plain(Error::new(req.op, &object, ErrorKind::Timeout))),
            Some(Err(e)) => {
                return Err(Failure::Plain(Error::new(req.op, &object, ErrorKind::Transport(error_chain(&e)))))
            }
            Some(Ok(r)) => r,
        };
        let (parts, mut body) = response.into_parts();
        let status = parts.status;
        let body_err = |e: Option<hyper::Error>| {
            Failure::Plain(Error::new(
                req.op,
                &object,
                e.map(|e| ErrorKind::Transport(error_chain(&e))).unwrap_or(ErrorKind::Timeout),
            ))
        };
        if status.is_success() && !read_body {
            return Ok(Answer { status, headers: parts.headers, body: Err(body) });
        }
        const LIMIT: usize = 512 << 20;
        let Some(bytes) = http::read_all(&mut body, timeout, LIMIT).await.map_err(body_err)? else {
            let m = format!("the answer is larger than {} MiB; refusing to hold it in memory", LIMIT >> 20);
            return Err(Failure::Plain(Error::new(req.op, &object, ErrorKind::Io(m))));
        };
        let parsed =
            if status.is_success() && !looks_like_error(&bytes) { None } else { Some(xml::parse_error(&bytes)) };
        match parsed {
            None => Ok(Answer { status, headers: parts.headers, body: Ok(bytes) }),
            Some(Ok(None)) if status.is_success() => Ok(Answer { status, headers: parts.headers, body: Ok(bytes) }),
            Some(Err(e)) if status.is_success() => {
                Err(Failure::Plain(Error::new(req.op, &object, ErrorKind::Xml(e.to_string()))))
            }
            Some(parsed) => {
                let body = parsed.ok().flatten().unwrap_or_default();
                let code = if body.code.is_empty() { default_code(status) } else { body.code };
                let region_hint = parts
                    .headers
                    .get("x-amz-bucket-region")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
                    .or(body.region);
                let err = Error::new(
                    req.op,
                    &object,
                    ErrorKind::Status {
                        status: status.as_u16(),
                        code: code.clone(),
                        message: body.message,
                        request_id: body.request_id.or_else(|| {
                            parts.headers.get("x-amz-request-id").and_then(|v| v.to_str().ok()).map(str::to_string)
                        }),
                    },
                );
                let wrong_region = matches!(status.as_u16(), 301 | 400)
                    && matches!(
                        code.as_str(),
                        "PermanentRedirect"
                            | "AuthorizationHeaderMalformed"
                            | "IllegalLocationConstraintException"
                            | "MovedPermanently"
                    );
                match region_hint {
                    Some(r) if wrong_region && r != region => Err(Failure::WrongRegion(err, r)),
                    _ => Err(Failure::Plain(err)),
                }
            }
        }
    }

    async fn execute(&self, req: &Request<'_>, read_body: bool) -> Result<Answer<Result<Bytes, Incoming>>> {
        let policy = self.inner.cfg.retry;
        let payload_hash = self.payload_hash(req).await?;
        let start = Instant::now();
        let mut attempt = 1;
        let mut delay = policy.base;
        let mut followed_region = false;
        // Shared by the attempts: a body sent again is not counted again.
        let bytes = Arc::new(Sent::default());
        loop {
            let sent = Instant::now();
            let result = self.attempt(req, &payload_hash, read_body, &bytes).await;
            // Where a sync's time goes, request by request (`--log-level DEBUG`).
            if crate::log::enabled(crate::log::Level::Debug) {
                let since = |t: Instant| t.duration_since(*EPOCH.get_or_init(Instant::now)).as_secs_f64() * 1e3;
                let how = match &result {
                    Ok(a) => a.status.as_u16().to_string(),
                    Err(Failure::Plain(e) | Failure::WrongRegion(e, _)) => e.to_string(),
                };
                let (at, took) = (since(sent), sent.elapsed().as_secs_f64() * 1e3);
                crate::debug!("{} {} at {at:.1} ms: {how} in {took:.1} ms", req.op, req.key.unwrap_or(""));
            }
            let err = match result {
                Ok(answer) => return Ok(answer),
                Err(Failure::WrongRegion(err, region)) => {
                    if followed_region {
                        return Err(err);
                    }
                    // Followed once: a second wrong-region answer means something else is wrong.
                    followed_region = true;
                    *self.inner.region.lock().unwrap() = region;
                    continue;
                }
                Err(Failure::Plain(err)) => err,
            };
            if !retry::is_retryable(&err) {
                return Err(err);
            }
            // A body the fence cut short comes back as a broken connection: say why at once
            // rather than after a back-off.
            if let Some(f) = self.fence.as_ref().filter(|_| is_write(&req.method)) {
                fence::ask(f, req.op, &self.object_name(req))?;
            }
            attempt += 1;
            let draw = self.inner.jitter.lock().unwrap().draw();
            delay = retry::next_delay(&policy, delay, draw);
            if !retry::may_retry(&policy, attempt, start.elapsed(), delay) {
                return Err(err);
            }
            tokio::time::sleep(delay).await;
            self.inner.retried.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Send and read the whole (small) answer; a 200 carrying `<Error>` is an error.
    pub async fn send_full(&self, req: &Request<'_>) -> Result<Answer<Bytes>> {
        let a = self.execute(req, true).await?;
        Ok(Answer { status: a.status, headers: a.headers, body: a.body.unwrap_or_default() })
    }

    /// Send and hand back the streaming body of a successful answer.
    pub async fn send_stream(&self, req: &Request<'_>) -> Result<Answer<Option<Incoming>>> {
        let a = self.execute(req, false).await?;
        Ok(Answer { status: a.status, headers: a.headers, body: a.body.err() })
    }
}

/// Cheap check before parsing a success body: does it open with an `<Error>` root?
fn looks_like_error(body: &[u8]) -> bool {
    let head = &body[..body.len().min(256)];
    head.windows(7).any(|w| w == b"<Error>")
}

fn default_code(status: StatusCode) -> String {
    match status.as_u16() {
        404 => String::new(),
        s => status.canonical_reason().map(|r| r.replace(' ', "")).unwrap_or_else(|| s.to_string()),
    }
}

/// The error and its causes: hyper's top-level messages alone ("client error (Connect)") say little.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::s3::Credentials;

    fn client(endpoint: Option<&str>, bucket: &str) -> Client {
        let creds = Credentials { access_key_id: "AK".into(), secret_access_key: "SK".into(), session_token: None };
        Client::new(Config::new(endpoint.map(str::to_string), "eu-west-1".into(), creds), bucket).unwrap()
    }

    #[test]
    fn addressing_styles() {
        let aws = client(None, "bkt");
        assert_eq!(
            aws.address(Some("a b/c+d"), "eu-west-1"),
            ("bkt.s3.eu-west-1.amazonaws.com".into(), "/a%20b/c%2Bd".into())
        );
        assert_eq!(aws.address(None, "eu-west-1").1, "/");
        let dotted = client(None, "my.bkt");
        assert_eq!(dotted.address(Some("k"), "us-east-1"), ("s3.us-east-1.amazonaws.com".into(), "/my.bkt/k".into()));
        let custom = client(Some("http://127.0.0.1:3900/base/"), "bkt");
        assert_eq!(custom.address(Some("k"), "x"), ("127.0.0.1:3900".into(), "/base/bkt/k".into()));
        assert_eq!(custom.address(None, "x").1, "/base/bkt");
    }

    #[test]
    fn bad_endpoints_are_named() {
        let creds = Credentials { access_key_id: "a".into(), secret_access_key: "b".into(), session_token: None };
        let err = Client::new(Config::new(Some("ftp://x".into()), "r".into(), creds), "b").err().unwrap();
        assert!(err.to_string().contains("\"ftp://x\" must start with http:// or https://"), "{err}");
    }

    #[test]
    fn error_sniffing() {
        assert!(looks_like_error(b"<?xml version=\"1.0\"?>\n<Error><Code>InternalError</Code></Error>"));
        assert!(!looks_like_error(b"<CompleteMultipartUploadResult/>"));
    }
}

//! A tiny HTTP/1.1 server on 127.0.0.1 for the credentials tests: it records every request and
//! answers with what the test's handler says. It runs on its own thread and runtime, so both
//! async tests and tests of the `s4` binary can use it, and it ends with the test process.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    /// Lower-case names.
    pub headers: HashMap<String, String>,
    pub body: String,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

pub struct Reply {
    pub status: u16,
    pub body: String,
    pub delay: Duration,
}

pub fn reply(status: u16, body: impl Into<String>) -> Reply {
    Reply { status, body: body.into(), delay: Duration::ZERO }
}

type Handler = Arc<dyn Fn(&Seen) -> Reply + Send + Sync>;

pub struct Server {
    pub url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
    /// Requests so far whose path starts with `prefix`.
    pub fn count(&self, prefix: &str) -> usize {
        self.seen().iter().filter(|s| s.path.starts_with(prefix)).count()
    }
}

fn bind() -> (std::net::TcpListener, String) {
    let l = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    l.set_nonblocking(true).unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    (l, url)
}

fn on_thread<F: std::future::Future<Output = ()> + Send + 'static>(make: impl FnOnce() -> F + Send + 'static) {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(make());
    });
}

pub fn serve(handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Server {
    let (std_listener, url) = bind();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let handler: Handler = Arc::new(handler);
    let log = seen.clone();
    on_thread(move || async move {
        let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let (handler, log) = (handler.clone(), log.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req: hyper::Request<Incoming>| {
                    let (handler, log) = (handler.clone(), log.clone());
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                        let seen = Seen {
                            method: parts.method.to_string(),
                            path: parts.uri.to_string(),
                            headers: parts
                                .headers
                                .iter()
                                .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
                                .collect(),
                            body: String::from_utf8_lossy(&body).into_owned(),
                        };
                        log.lock().unwrap().push(seen.clone());
                        let r = handler(&seen);
                        tokio::time::sleep(r.delay).await;
                        let resp =
                            hyper::Response::builder().status(r.status).body(Full::new(Bytes::from(r.body))).unwrap();
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
            });
        }
    });
    Server { url, seen }
}

/// A server that accepts connections and never answers: every request times out.
pub fn silent() -> String {
    let (std_listener, url) = bind();
    on_thread(move || async move {
        let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    url
}

/// A port where nothing listens (bound, then closed): connections are refused.
pub fn closed() -> String {
    let (l, url) = bind();
    drop(l);
    url
}

/// ISO 8601 UTC of now + `secs`, as the endpoints write Expiration.
pub fn iso_in(secs: i64) -> String {
    s4::log::format_utc(s4::log::now_secs() + secs).replace(' ', "T") + "Z"
}

//! The transport: one pooled hyper client over rustls (TLS verified against the webpki
//! roots), request bodies that stream from files, and response bodies read with a timeout
//! on every frame so a stalled store cannot hang a sync.

use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncRead, AsyncSeekExt, ReadBuf};

pub type ReqBody = BoxBody<Bytes, io::Error>;
pub type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, ReqBody>;

/// What a request carries. A description, not the bytes: every retry builds a fresh body.
#[derive(Debug, Clone)]
pub enum Payload {
    Empty,
    Bytes(Bytes),
    /// `len` bytes of `path` from `offset`, streamed.
    File {
        path: PathBuf,
        offset: u64,
        len: u64,
    },
}

impl Payload {
    pub fn len(&self) -> u64 {
        match self {
            Payload::Empty => 0,
            Payload::Bytes(b) => b.len() as u64,
            Payload::File { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub async fn into_body(self) -> io::Result<ReqBody> {
        Ok(match self {
            Payload::Empty => Full::new(Bytes::new()).map_err(|e| match e {}).boxed(),
            Payload::Bytes(b) => Full::new(b).map_err(|e| match e {}).boxed(),
            Payload::File { path, offset, len } => {
                let mut file = tokio::fs::File::open(&path).await?;
                file.seek(io::SeekFrom::Start(offset)).await?;
                FileBody { file, remaining: len, buf: BytesMut::new() }.boxed()
            }
        })
    }
}

const CHUNK: usize = 256 * 1024;

/// A request body read from a file range in chunks: a 10 GiB upload never sits in memory.
struct FileBody {
    file: tokio::fs::File,
    remaining: u64,
    buf: BytesMut,
}

impl Body for FileBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = &mut *self;
        if this.remaining == 0 {
            return Poll::Ready(None);
        }
        let want = (this.remaining as usize).min(CHUNK);
        if this.buf.capacity() < want {
            this.buf.reserve(want);
        }
        // SAFETY-free path: read into the spare capacity through ReadBuf.
        this.buf.resize(want, 0);
        let mut rb = ReadBuf::new(&mut this.buf[..want]);
        match Pin::new(&mut this.file).poll_read(cx, &mut rb) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
            Poll::Ready(Ok(())) => {
                let n = rb.filled().len();
                if n == 0 {
                    return Poll::Ready(Some(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "file shrank while uploading",
                    ))));
                }
                this.remaining -= n as u64;
                let chunk = this.buf.split_to(n).freeze();
                this.buf.clear();
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.remaining)
    }
}

pub fn build_client(connect_timeout: Duration) -> HttpClient {
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(connect_timeout));
    http.set_nodelay(true);
    http.enforce_http(false);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(64)
        .build(https)
}

/// The next body frame's data, or `None` at the end; `Err(None)` on timeout.
pub async fn next_chunk(body: &mut Incoming, timeout: Duration) -> Result<Option<Bytes>, Option<hyper::Error>> {
    loop {
        match tokio::time::timeout(timeout, body.frame()).await {
            Err(_) => return Err(None),
            Ok(None) => return Ok(None),
            Ok(Some(Err(e))) => return Err(Some(e)),
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    return Ok(Some(data));
                }
            }
        }
    }
}

/// The whole body (XML documents, indexes), bounded so a hostile server cannot exhaust
/// memory. `Ok(None)` when the body is larger than `limit`: an error for the caller to name,
/// never a silently truncated document.
pub async fn read_all(
    body: &mut Incoming,
    timeout: Duration,
    limit: usize,
) -> Result<Option<Bytes>, Option<hyper::Error>> {
    let mut out = BytesMut::new();
    while let Some(chunk) = next_chunk(body, timeout).await? {
        if out.len() + chunk.len() > limit {
            return Ok(None);
        }
        out.extend_from_slice(&chunk);
    }
    Ok(Some(out.freeze()))
}

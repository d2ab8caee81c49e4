//! The transport: one pooled hyper client over rustls (roots: see `root_store`), request
//! bodies that stream from files, and response bodies read with a timeout on every frame so a
//! stalled store cannot hang a sync.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};
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

/// The roots TLS trusts: webpki's built-in set, so the static binary verifies AWS and public
/// stores in an empty container; the system's (or, when set, those of `SSL_CERT_FILE` /
/// `SSL_CERT_DIR`, read by rustls-native-certs as OpenSSL reads them), so a CA the machine
/// trusts is trusted; and the PEM file `ca_bundle` (`AWS_CA_BUNDLE`, as the AWS CLI reads it),
/// for a self-hosted store with its own CA. Each adds to the others. What could not be read
/// comes back as warnings, not an error: stores that need none of it still work, and one that
/// does fails its handshake with "unknown issuer" after the warning said why.
pub fn root_store(ca_bundle: Option<&Path>) -> (RootCertStore, Vec<String>) {
    let mut roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    let mut warnings = Vec::new();
    let native = rustls_native_certs::load_native_certs();
    warnings.extend(native.errors.iter().map(|e| format!("system CA certificates: {e}")));
    roots.add_parsable_certificates(native.certs);
    if let Some(path) = ca_bundle {
        let certs = CertificateDer::pem_file_iter(path).and_then(|certs| certs.collect::<Result<Vec<_>, _>>());
        match certs {
            Err(e) => warnings.push(format!("AWS_CA_BUNDLE {}: {e}", path.display())),
            Ok(certs) => {
                let (added, _) = roots.add_parsable_certificates(certs);
                if added == 0 {
                    warnings.push(format!("AWS_CA_BUNDLE {}: no usable CA certificate in it", path.display()));
                }
            }
        }
    }
    (roots, warnings)
}

/// The TLS settings of every client in the process: reading the system's roots costs a few
/// milliseconds and its warnings should be said once, not per target.
fn tls_config() -> Arc<ClientConfig> {
    static CONFIG: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let bundle = std::env::var_os("AWS_CA_BUNDLE").filter(|b| !b.is_empty()).map(PathBuf::from);
            let (roots, warnings) = root_store(bundle.as_deref());
            for w in warnings {
                crate::warn!("{w}");
            }
            Arc::new(client_config(roots))
        })
        .clone()
}

fn client_config(roots: RootCertStore) -> ClientConfig {
    ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

pub fn build_client(connect_timeout: Duration) -> HttpClient {
    build_client_with(connect_timeout, &tls_config())
}

fn build_client_with(connect_timeout: Duration, tls: &ClientConfig) -> HttpClient {
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(connect_timeout));
    http.set_nodelay(true);
    http.enforce_http(false);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls.clone())
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    /// A private CA and an HTTPS server on 127.0.0.1 whose certificate it signed, as a
    /// self-hosted store has: answers `connections` connections with 200, then stops.
    fn private_store(connections: usize) -> (String, u16) {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name.push(rcgen::DnType::CommonName, "s4 test CA");
        let ca = rcgen::CertifiedIssuer::self_signed(ca, ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap().signed_by(&key, &ca).unwrap();

        let server = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
            )
            .unwrap();
        let server = Arc::new(server);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for tcp in listener.incoming().take(connections) {
                let Ok(tcp) = tcp else { continue };
                let conn = rustls::ServerConnection::new(server.clone()).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                // A client that refuses the certificate ends the handshake: an error here.
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = tls.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
                let _ = tls.flush();
                tls.conn.send_close_notify();
                let _ = tls.flush();
            }
        });
        (ca.pem(), port)
    }

    async fn get(tls: &ClientConfig, port: u16) -> Result<u16, String> {
        let client = build_client_with(Duration::from_secs(5), tls);
        let req = hyper::Request::get(format!("https://127.0.0.1:{port}/"))
            .body(Full::new(Bytes::new()).map_err(|e| match e {}).boxed())
            .unwrap();
        let resp = client.request(req).await.map_err(|e| format!("{e:?}"))?;
        Ok(resp.status().as_u16())
    }

    #[tokio::test]
    async fn a_store_with_its_own_ca_is_trusted_through_aws_ca_bundle_or_ssl_cert_file() {
        let (ca_pem, port) = private_store(4);
        let dir = tempfile::tempdir().unwrap();
        let bundle = dir.path().join("ca.pem");
        std::fs::write(&bundle, &ca_pem).unwrap();

        // Built-in and system roots alone do not know the private CA.
        let (roots, warnings) = root_store(None);
        assert!(warnings.is_empty(), "{warnings:?}");
        let err = get(&client_config(roots), port).await.unwrap_err();
        assert!(err.contains("UnknownIssuer"), "{err}");

        // AWS_CA_BUNDLE adds it to them.
        let (roots, warnings) = root_store(Some(&bundle));
        assert!(warnings.is_empty(), "{warnings:?}");
        assert!(roots.len() > webpki_roots::TLS_SERVER_ROOTS.len());
        assert_eq!(get(&client_config(roots), port).await, Ok(200));

        // SSL_CERT_FILE, as OpenSSL reads it. The variable only ever adds a root for any
        // other test that builds a client meanwhile.
        let before = std::env::var_os("SSL_CERT_FILE");
        std::env::set_var("SSL_CERT_FILE", &bundle);
        let (roots, warnings) = root_store(None);
        match before {
            Some(v) => std::env::set_var("SSL_CERT_FILE", v),
            None => std::env::remove_var("SSL_CERT_FILE"),
        }
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(get(&client_config(roots), port).await, Ok(200));

        // A bundle that is not one is said, and changes nothing.
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate\n").unwrap();
        let (roots, warnings) = root_store(Some(&junk));
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("AWS_CA_BUNDLE"), "{warnings:?}");
        let err = get(&client_config(roots), port).await.unwrap_err();
        assert!(err.contains("UnknownIssuer"), "{err}");
    }
}

//! Test-store harness for the integration tests (`mod support;` in `vendor-tests/conformance.rs`).
//!
//! * [`store()`] gives the one S3 store of this test binary:
//!   - if `S4_TEST_ENDPOINT` is set, the store those variables describe
//!     (`S4_TEST_REGION` default `us-east-1`, `S4_TEST_ACCESS_KEY`, `S4_TEST_SECRET_KEY`,
//!     `S4_TEST_BUCKET`, `S4_TEST_STORE` default `"env"`); the bucket must already exist
//!     (the `vendor-tests/*.sh` store scripts set all of them);
//!   - if `S4_TEST_STORE=aws` and no endpoint, AWS itself, addressed as s4 addresses it by default;
//!   - otherwise an in-process s3s-fs 0.14.1 on `127.0.0.1:<free port>`, path-style, SigV4 checked
//!     against [`S3S_FS_ACCESS_KEY`] / [`S3S_FS_SECRET_KEY`], bucket [`S3S_FS_BUCKET`], data in a temp dir.
//!     It lives as long as the test process (its thread and runtime are never stopped; the OS
//!     reclaims them at exit). Temp dirs left by earlier, finished test processes are removed on start.
//! * [`unique_prefix()`] gives every test its own key prefix so tests can share the bucket in parallel.
//! * [`s4_bin!()`] is the path of the built `s4` binary (a macro because `env!("CARGO_BIN_EXE_s4")`
//!   only exists while compiling the test crate): `std::process::Command::new(support::s4_bin!())`.
//! * [`check()`] opens one feature check of the store matrix (`vendor-tests/run all` → MATRIX.md):
//!   it records `S4-FEATURE store=… feature=… result=pass|fail|skip` when dropped, and skips at
//!   once (with the reason printed) where [`TestStore::lacks`] knows the store lacks the feature.
//! * [`aws_cli()`] runs the AWS CLI (`aws s3api ...`) against the store as an independent client;
//!   it returns `None` (after printing a note) when `aws` is not installed, so the caller skips that check.
//! * [`env`]: the built `s4` in a temp folder with its own config and prefix (`Env`, `Run`).
//! * [`proxy`]: a fault-injecting HTTP proxy in front of the store.
#![allow(dead_code, unused_macros, unused_imports)]

pub mod env;
pub mod proxy;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Access key of the in-process s3s-fs.
pub const S3S_FS_ACCESS_KEY: &str = "s4testaccess";
/// Secret key of the in-process s3s-fs.
pub const S3S_FS_SECRET_KEY: &str = "s4testsecretkey0123456789";
/// Bucket of the in-process s3s-fs.
pub const S3S_FS_BUCKET: &str = "s4-test";
/// Region the tests sign for with the in-process s3s-fs (s3s does not check it).
pub const S3S_FS_REGION: &str = "us-east-1";

/// The S3 store the tests of this binary run against.
#[derive(Debug)]
pub struct TestStore {
    /// `"s3s-fs"` for the in-process store, else the value of `S4_TEST_STORE` (default `"env"`).
    pub name: String,
    /// `http://127.0.0.1:PORT` (no trailing slash); empty for AWS's own endpoints.
    pub endpoint: String,
    pub region: String,
    pub access_key: String,
    pub secret_key: String,
    pub bucket: String,
    /// Keeps the in-process store's data directory (a static is never dropped: it lasts the process).
    _root: Option<tempfile::TempDir>,
}

impl TestStore {
    /// True for the in-process s3s-fs (use it to skip checks of features s3s-fs lacks).
    pub fn is_s3s_fs(&self) -> bool {
        self.name == "s3s-fs"
    }

    /// The endpoint to configure: `None` for AWS (s4 then picks its regional endpoint).
    pub fn endpoint_url(&self) -> Option<String> {
        Some(self.endpoint.clone()).filter(|e| !e.is_empty())
    }

    /// Why this store lacks `feature`, for features known missing by store (measured, see
    /// DESIGN.md); `None` when it should have it. Features a store reports itself (a 501) are
    /// detected by the tests instead.
    pub fn lacks(&self, feature: &str) -> Option<&'static str> {
        QUIRKS.iter().find(|(store, f, _)| *store == self.name && *f == feature).map(|(_, _, why)| *why)
    }
}

/// (store, feature, why): what a store is known to lack.
const QUIRKS: &[(&str, &str, &str)] = &[
    ("moto", "sigv4", "moto accepts any signature"),
    ("garage", "conditional_put", "Garage ignores If-Match/If-None-Match on PUT"),
    ("rclone", "conditional_put", "rclone serve s3 ignores If-Match/If-None-Match on PUT"),
    (
        "ceph",
        "conditional_put",
        "Ceph RGW 16.2 refuses a matching quoted If-Match (it compares without the quotes) and ignores \
         If-None-Match once versioning is on",
    ),
    // rclone 1.75 answers a ranged GET right but with 200, not 206: s4 copes (it checks lengths).
    (
        "rclone",
        "multipart_etag",
        "rclone serve s3 answers CompleteMultipartUpload with an ETag ending -N, HEAD and listings with the whole MD5",
    ),
    ("s3s-fs", "unsafe_keys", "s3s-fs normalises keys like a//b and ../x itself"),
    ("rclone", "unsafe_keys", "rclone serve s3 refuses keys like ../x (400 InvalidArgument)"),
];

/// One feature check of the store matrix, open while the check runs. Dropped normally it
/// records a pass, dropped while the test panics a fail: a broken check is never a pass.
pub struct Check {
    feature: &'static str,
    skipped: bool,
}

/// Opens the check of `feature` on this test's store, or records a skip (printing why) and
/// returns `None` when the store is known to lack it:
/// `let Some(_check) = support::check("conditional_put") else { return };`
pub fn check(feature: &'static str) -> Option<Check> {
    let c = Check { feature, skipped: false };
    match store().lacks(feature) {
        Some(why) => {
            c.skip(why);
            None
        }
        None => Some(c),
    }
}

impl Check {
    /// The store turned out to lack the feature (e.g. it answered 501): record a skip, not a pass.
    pub fn skip(mut self, why: &str) {
        self.skipped = true;
        eprintln!("note: {} skipped on {}: {why}", self.feature, store().name);
        record(self.feature, "skip", why);
    }
}

impl Drop for Check {
    fn drop(&mut self) {
        if !self.skipped {
            record(self.feature, if std::thread::panicking() { "fail" } else { "pass" }, "");
        }
    }
}

/// Prints the result line and appends it to `$S4_FEATURE_LOG` (where `vendor-tests/run` reads
/// them: libtest hides the output of passing tests).
fn record(feature: &str, result: &str, note: &str) {
    let test = std::thread::current().name().unwrap_or("?").to_string();
    let line = format!("S4-FEATURE store={} feature={feature} result={result} test={test} note={note}\n", store().name);
    eprint!("{line}");
    if let Some(path) = std::env::var_os("S4_FEATURE_LOG") {
        use std::io::Write;
        // One write per line on an O_APPEND file: lines of parallel tests do not interleave.
        let f = std::fs::OpenOptions::new().create(true).append(true).open(path);
        let _ = f.and_then(|mut f| f.write_all(line.as_bytes()));
    }
}

static STORE: OnceLock<TestStore> = OnceLock::new();

/// The store of this test binary, started on first use. Returns only once the store accepts
/// TCP connections (for an `S4_TEST_ENDPOINT` store the script that started it waited for that).
pub fn store() -> &'static TestStore {
    let env = |name| std::env::var(name).unwrap_or_default();
    STORE.get_or_init(|| match (env("S4_TEST_ENDPOINT"), env("S4_TEST_STORE")) {
        (endpoint, store) if !endpoint.trim().is_empty() || store == "aws" => from_env(endpoint),
        _ => start_s3s_fs(),
    })
}

fn from_env(endpoint: String) -> TestStore {
    let var =
        |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("S4_TEST_* name a store but {name} is not set"));
    let opt = |name: &str, default: &str| {
        std::env::var(name).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| default.to_string())
    };
    TestStore {
        name: opt("S4_TEST_STORE", "env"),
        endpoint: endpoint.trim().trim_end_matches('/').to_string(),
        region: opt("S4_TEST_REGION", "us-east-1"),
        access_key: var("S4_TEST_ACCESS_KEY"),
        secret_key: var("S4_TEST_SECRET_KEY"),
        bucket: var("S4_TEST_BUCKET"),
        _root: None,
    }
}

const ROOT_PREFIX: &str = "s4-s3s-fs-";

fn start_s3s_fs() -> TestStore {
    remove_stale_roots();
    let root = tempfile::Builder::new()
        .prefix(&format!("{ROOT_PREFIX}{}-", std::process::id()))
        .tempdir()
        .expect("create temp dir for s3s-fs");
    // s3s-fs buckets are directories directly under the root.
    std::fs::create_dir(root.path().join(S3S_FS_BUCKET)).expect("create s3s-fs bucket directory");

    // Bind before the server thread starts, so the port is known and connections queue at once.
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).expect("bind 127.0.0.1:0 for s3s-fs");
    listener.set_nonblocking(true).expect("set_nonblocking");
    let addr = listener.local_addr().expect("local_addr");

    let fs = s3s_fs::FileSystem::new(root.path()).expect("s3s_fs::FileSystem::new");
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
    std::thread::Builder::new()
        .name("s3s-fs".into())
        .spawn(move || serve_s3s_fs(fs, listener, ready_tx))
        .expect("spawn s3s-fs thread");

    match ready_rx.recv_timeout(Duration::from_secs(30)) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("s3s-fs failed to start: {e}"),
        Err(e) => panic!("s3s-fs did not start: {e}"),
    }
    wait_for_tcp(addr, Duration::from_secs(30));

    TestStore {
        name: "s3s-fs".into(),
        endpoint: format!("http://{addr}"),
        region: S3S_FS_REGION.into(),
        access_key: S3S_FS_ACCESS_KEY.into(),
        secret_key: S3S_FS_SECRET_KEY.into(),
        bucket: S3S_FS_BUCKET.into(),
        _root: Some(root),
    }
}

fn serve_s3s_fs(
    fs: s3s_fs::FileSystem,
    listener: std::net::TcpListener,
    ready: std::sync::mpsc::Sender<Result<(), String>>,
) {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("s3s-fs-worker")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(format!("tokio runtime: {e}")));
            return;
        }
    };
    rt.block_on(async move {
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                let _ = ready.send(Err(format!("tokio listener: {e}")));
                return;
            }
        };
        let service = {
            let mut b = s3s::service::S3ServiceBuilder::new(fs);
            b.set_auth(s3s::auth::SimpleAuth::from_single(S3S_FS_ACCESS_KEY, S3S_FS_SECRET_KEY));
            b.build()
        };
        let writes = std::sync::Arc::new(tokio::sync::Mutex::new(()));
        let _ = ready.send(Ok(()));
        loop {
            let socket = match listener.accept().await {
                Ok((socket, _)) => socket,
                Err(_) => {
                    // e.g. EMFILE under load: back off briefly, keep serving.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            let _ = socket.set_nodelay(true);
            let (service, writes) = (service.clone(), writes.clone());
            tokio::spawn(async move {
                let io = hyper_util::rt::TokioIo::new(socket);
                // s3s-fs checks If-Match / If-None-Match, then writes: two conditional PUTs at
                // the same instant can both pass, and one index update is lost. S3 (and moto)
                // decide atomically; so does this store, by taking conditional PUTs one at a time.
                let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let (service, writes) = (service.clone(), writes.clone());
                    async move {
                        use hyper::service::Service;
                        let h = req.headers();
                        if h.contains_key("if-match") || h.contains_key("if-none-match") {
                            let _one = writes.lock().await;
                            Service::call(&service, req).await
                        } else {
                            Service::call(&service, req).await
                        }
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new().keep_alive(true).serve_connection(io, service).await;
            });
        }
    });
}

fn wait_for_tcp(addr: std::net::SocketAddr, limit: Duration) {
    let t0 = Instant::now();
    loop {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
            Ok(_) => return,
            Err(e) if t0.elapsed() > limit => {
                panic!("s3s-fs at {addr} does not accept connections: {e}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Removes `s4-s3s-fs-PID-*` temp dirs whose process is gone (Linux only: looks at /proc/PID).
fn remove_stale_roots() {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(ROOT_PREFIX)) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// A fresh key prefix for one test: `"t-{test_name}-{pid}-{nanos}/"`.
/// `test_name` is cut to 48 bytes and anything but `[A-Za-z0-9_.-]` becomes `-` (keeps keys short:
/// s3s-fs answers 500 for keys over ~180 bytes). `nanos` strictly increases within the process.
pub fn unique_prefix(test_name: &str) -> String {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
    let mut prev = LAST.load(Ordering::Relaxed);
    let nanos = loop {
        let next = now.max(prev + 1);
        match LAST.compare_exchange_weak(prev, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => break next,
            Err(p) => prev = p,
        }
    };
    let name: String = test_name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') { c } else { '-' })
        .take(48)
        .collect();
    format!("t-{name}-{}-{nanos}/", std::process::id())
}

/// Path of the built `s4` binary, for CLI tests: `Command::new(support::s4_bin!())`.
/// A macro, because `CARGO_BIN_EXE_s4` is set only while cargo compiles an integration test.
macro_rules! s4_bin {
    () => {
        ::std::path::PathBuf::from(env!("CARGO_BIN_EXE_s4"))
    };
}
pub(crate) use s4_bin;

/// Runs `aws --endpoint-url ENDPOINT s3api ARGS...` as an independent client of `store`.
/// Credentials and region come from the store through the environment only (no profile, no config
/// file, checksums only when required); output is JSON. Returns `None`, after printing a note,
/// when the AWS CLI is not installed: the caller then skips that check.
/// Example: `aws_cli(s, &["list-objects-v2", "--bucket", &s.bucket, "--encoding-type", "url"])`.
pub fn aws_cli(store: &TestStore, args: &[&str]) -> Option<Output> {
    let mut cmd = Command::new("aws");
    if let Some(endpoint) = store.endpoint_url() {
        cmd.arg("--endpoint-url").arg(endpoint);
    }
    cmd.args(["--output", "json", "--cli-connect-timeout", "10", "--cli-read-timeout", "60"])
        .arg("s3api")
        .args(args)
        .stdin(Stdio::null())
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_DEFAULT_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_SECURITY_TOKEN")
        .env_remove("AWS_CA_BUNDLE")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_ENDPOINT_URL_S3")
        .env("AWS_ACCESS_KEY_ID", &store.access_key)
        .env("AWS_SECRET_ACCESS_KEY", &store.secret_key)
        .env("AWS_DEFAULT_REGION", &store.region)
        .env("AWS_REGION", &store.region)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_REQUEST_CHECKSUM_CALCULATION", "when_required")
        .env("AWS_RESPONSE_CHECKSUM_VALIDATION", "when_required")
        .env("AWS_PAGER", "");
    match cmd.output() {
        Ok(out) if out.status.code() == Some(127) && String::from_utf8_lossy(&out.stderr).contains("not found") => {
            eprintln!("note: `aws` is not installed (pip install awscli); skipping the AWS CLI check");
            None
        }
        Ok(out) => Some(out),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("note: `aws` is not installed (pip install awscli); skipping the AWS CLI check");
            None
        }
        Err(e) => panic!("cannot run aws: {e}"),
    }
}

/// [`aws_cli`] that panics (with the CLI's stderr) unless the command succeeds; returns its stdout.
pub fn aws_cli_ok(store: &TestStore, args: &[&str]) -> Option<String> {
    let out = aws_cli(store, args)?;
    assert!(
        out.status.success(),
        "aws s3api {} failed ({}):\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Our S3 client for the test store, with the store's keys (or another secret, to be refused).
pub fn client_with_secret(s: &TestStore, secret: &str) -> s4::s3::Client {
    let creds = s4::s3::Credentials {
        access_key_id: s.access_key.clone(),
        secret_access_key: secret.to_string(),
        session_token: None,
    };
    s4::s3::Client::new(s4::s3::Config::new(s.endpoint_url(), s.region.clone(), creds), &s.bucket)
        .expect("client for the test store")
}

pub fn client() -> s4::s3::Client {
    client_with_secret(store(), &store().secret_key)
}

/// Changes the file's mtime every few milliseconds until dropped: a file being written to
/// throughout, for the tests of uploads that must not send a torn version.
pub struct Toucher {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Toucher {
    pub fn start(path: &Path) -> Toucher {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (path, flag) = (path.to_path_buf(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut i = 0u64;
            while !flag.load(Ordering::Relaxed) {
                i += 1;
                let f = std::fs::File::options().write(true).open(&path).unwrap();
                f.set_modified(UNIX_EPOCH + Duration::from_secs(1_700_000_000 + i)).unwrap();
                std::thread::sleep(Duration::from_millis(3));
            }
        });
        Toucher { stop, thread: Some(thread) }
    }
}

impl Drop for Toucher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

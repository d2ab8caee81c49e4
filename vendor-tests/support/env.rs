//! Running the built `s4` binary in a temp folder, as a user would: one config file
//! (`S4_CONFIG`), targets added by flags, `sync --json` parsed into a [`Run`]. Shared by
//! `cli.rs` and `robustness.rs`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime};

use serde_json::Value;

use super::{store, unique_prefix};

/// One test's world: a temp dir (config, folders) and a key prefix of its own.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub prefix: String,
    /// Every test of the binary counts for the matrix row of the CLI suite.
    _check: Option<super::Check>,
}

/// A finished `s4 sync --json`: exit code, the JSON lines of stdout, and stderr.
pub struct Run {
    pub code: i32,
    pub lines: Vec<Value>,
    pub stderr: String,
}

impl Run {
    /// Strict: every stdout line must be JSON (a run that ended by itself).
    pub fn from_output(out: &Output) -> Run {
        let stdout = String::from_utf8_lossy(&out.stdout);
        let lines =
            stdout.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}"))).collect();
        Run { code: out.status.code().unwrap_or(-1), lines, stderr: String::from_utf8_lossy(&out.stderr).into() }
    }

    /// Lenient: a process killed mid-write may leave a partial last line; it is dropped.
    pub fn from_killed(out: &Output) -> Run {
        let stdout = String::from_utf8_lossy(&out.stdout);
        let lines = stdout.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
        Run { code: out.status.code().unwrap_or(-1), lines, stderr: String::from_utf8_lossy(&out.stderr).into() }
    }

    pub fn summary(&self) -> &Value {
        &self.lines.last().expect("a summary line")["summary"]
    }

    pub fn count(&self, field: &str) -> u64 {
        self.summary()[field].as_u64().unwrap_or_else(|| panic!("no {field} in {:?}", self.summary()))
    }

    /// (action, key) pairs, sorted: transfers finish in any order.
    pub fn actions(&self) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = self
            .lines
            .iter()
            .filter(|v| v.get("key").is_some())
            .map(|v| (v["action"].as_str().unwrap().to_string(), v["key"].as_str().unwrap().to_string()))
            .collect();
        v.sort();
        v
    }

    /// Keys of the actions of one kind that finished ("ok").
    pub fn done(&self, action: &str) -> Vec<String> {
        self.lines
            .iter()
            .filter(|v| v["action"] == action && v["status"] == "ok")
            .map(|v| v["key"].as_str().unwrap().to_string())
            .collect()
    }
}

pub fn at(secs_from_now: i64) -> SystemTime {
    let now = SystemTime::now();
    if secs_from_now >= 0 {
        now + Duration::from_secs(secs_from_now as u64)
    } else {
        now - Duration::from_secs((-secs_from_now) as u64)
    }
}

/// Write a file and give it an mtime whole seconds away from now (S4 compares whole seconds).
pub fn write(path: &Path, content: &str, mtime_offset: i64) {
    write_bytes(path, content.as_bytes(), mtime_offset);
}

pub fn write_bytes(path: &Path, content: &[u8], mtime_offset: i64) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
    std::fs::File::options().write(true).open(path).unwrap().set_modified(at(mtime_offset)).unwrap();
}

pub fn mtime(path: &Path) -> i64 {
    let m = std::fs::metadata(path).unwrap().modified().unwrap();
    m.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() as i64
}

pub fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap()
}

/// A small runtime for the test's own S3 calls.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

impl Env {
    pub fn new(test: &str) -> Env {
        Env { dir: tempfile::tempdir().unwrap(), prefix: unique_prefix(test), _check: super::check("sync_cli") }
    }

    pub fn folder(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn conf(&self) -> PathBuf {
        self.dir.path().join("conf/sync.conf")
    }

    /// `s4 ARGS` with this env's config and no ambient AWS settings; stdio piped, not started.
    pub fn command(&self, args: &[&str]) -> Command {
        // `option_env!`: this module is also compiled into examples, which have no s4 binary.
        let Some(bin) = option_env!("CARGO_BIN_EXE_s4") else { panic!("no s4 binary: integration tests only") };
        let mut cmd = Command::new(bin);
        cmd.args(args)
            .env("S4_CONFIG", self.conf())
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_PROFILE")
            .env("HOME", self.dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    pub fn s4(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = self.command(args).spawn().unwrap();
        use std::io::Write;
        // s4 may refuse its arguments and exit before reading stdin: a broken pipe is its answer.
        let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
        child.wait_with_output().unwrap()
    }

    /// `s4 add` by flags: folder `name` on this test's prefix.
    pub fn add(&self, name: &str) {
        self.add_via(name, &store().endpoint);
    }

    /// `s4 add` with another endpoint for the store (a fault-injecting proxy in front of it).
    pub fn add_via(&self, name: &str, endpoint: &str) {
        let s = store();
        let folder = self.folder(name);
        std::fs::create_dir_all(&folder).unwrap();
        let uri = format!("s3://{}/{}", s.bucket, self.prefix.trim_end_matches('/'));
        let out = self.s4(
            &[
                "add",
                "--local-folder",
                folder.to_str().unwrap(),
                "--s3-uri",
                &uri,
                "--endpoint-url",
                endpoint,
                "--region",
                &s.region,
                "--name",
                name,
                // The suites test syncing; add's own check is tested on its own (first_hour.rs),
                // and under a loaded store (the kill test beside it) it could time out.
                "--no-check",
                "--access-key-id",
                &s.access_key,
                "--secret-access-key-stdin",
            ],
            &format!("{}\n", s.secret_key),
        );
        assert!(out.status.success(), "add: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// `s4 --no-colors sync --json NAME EXTRA...`, stdin closed.
    pub fn sync_args(&self, name: &str, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = ["--no-colors", "sync", "--json", name].map(String::from).into();
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }

    pub fn sync(&self, name: &str, extra: &[&str]) -> Run {
        let args = self.sync_args(name, extra);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        Run::from_output(&self.s4(&refs, ""))
    }

    pub fn client(&self) -> s4::s3::Client {
        super::client()
    }

    pub fn remote_keys(&self) -> Vec<String> {
        let c = self.client();
        block_on(async {
            let mut l = c.list(&self.prefix, None, None);
            let mut v = Vec::new();
            while let Some(o) = l.next_object().await.unwrap() {
                v.push(o.key[self.prefix.len()..].to_string());
            }
            v
        })
    }

    pub fn put_remote(&self, key: &str, body: &str) {
        self.try_put_remote(key, body.as_bytes()).unwrap();
    }

    /// Put `key` (relative to the prefix) directly; the store's refusal comes back as text.
    pub fn try_put_remote(&self, key: &str, body: &[u8]) -> Result<(), String> {
        let c = self.client();
        block_on(c.put(
            &format!("{}{key}", self.prefix),
            s4::s3::Payload::Bytes(body.to_vec().into()),
            &Default::default(),
        ))
        .map(|_| ())
        .map_err(|e| e.to_string())
    }
}

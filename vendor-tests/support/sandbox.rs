//! A sandbox for running the built `s4` binary: a temp HOME and config, folders to sync, a
//! key prefix of its own on the test store, and the JSON output of `s4 sync --json` read back.
//! Shared by `vendor-tests/cli.rs` and `vendor-tests/versions.rs`, which include it next to
//! `mod support;`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::support::{self, store, unique_prefix};

pub struct Env {
    pub dir: tempfile::TempDir,
    pub prefix: String,
    /// Every test of the binary counts for the matrix row of the CLI suite.
    _check: Option<support::Check>,
}

pub struct Run {
    pub code: i32,
    pub lines: Vec<Value>,
    pub stderr: String,
}

impl Run {
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
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
    std::fs::File::options().write(true).open(path).unwrap().set_modified(at(mtime_offset)).unwrap();
}

pub fn mtime(path: &Path) -> i64 {
    let m = std::fs::metadata(path).unwrap().modified().unwrap();
    m.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() as i64
}

impl Env {
    pub fn new(test: &str) -> Env {
        Env { dir: tempfile::tempdir().unwrap(), prefix: unique_prefix(test), _check: support::check("sync_cli") }
    }

    pub fn folder(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn conf(&self) -> PathBuf {
        self.dir.path().join("conf/sync.conf")
    }

    pub fn s4(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = Command::new(support::s4_bin!())
            .args(args)
            .env("S4_CONFIG", self.conf())
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_PROFILE")
            .env("HOME", self.dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    }

    /// `s4 add` by flags: folder `name` on this test's prefix.
    pub fn add(&self, name: &str) {
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
                &s.endpoint,
                "--region",
                &s.region,
                "--name",
                name,
                "--access-key-id",
                &s.access_key,
                "--secret-access-key-stdin",
            ],
            &format!("{}\n", s.secret_key),
        );
        assert!(out.status.success(), "add: {}", String::from_utf8_lossy(&out.stderr));
    }

    pub fn sync(&self, name: &str, extra: &[&str]) -> Run {
        let mut args = vec!["--no-colors", "sync", "--json", name];
        args.extend_from_slice(extra);
        let out = self.s4(&args, "");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let lines =
            stdout.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}"))).collect();
        Run { code: out.status.code().unwrap_or(-1), lines, stderr: String::from_utf8_lossy(&out.stderr).into() }
    }

    pub fn client(&self) -> s4::s3::Client {
        support::client()
    }

    pub fn remote_keys(&self) -> Vec<String> {
        let c = self.client();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let mut l = c.list(&self.prefix, None, None);
            let mut v = Vec::new();
            while let Some(o) = l.next_object().await.unwrap() {
                v.push(o.key[self.prefix.len()..].to_string());
            }
            v
        })
    }

    pub fn put_remote(&self, key: &str, body: &str) {
        let c = self.client();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(c.put(
            &format!("{}{key}", self.prefix),
            s4::s3::Payload::Bytes(body.to_string().into()),
            &Default::default(),
        ))
        .unwrap();
    }
}

pub fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap()
}

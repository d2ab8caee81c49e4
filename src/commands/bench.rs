//! `s4 bench`: time one operation with s4's own client, the way `s4 sync` would run it, and
//! print its rate, requests, retries and peak memory per run and their median.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::{client_for, lookup, runtime, Fatal, OK};
use crate::cli::BenchCmd;
use crate::config::{Config, Target};
use crate::s3::{Client, PutOptions, Tap, Transfer};
use crate::sync::conflict::Mode;
use crate::sync::{self, guard::MaxDelete, Names, Options};

const MIB: f64 = (1u64 << 20) as f64;

/// The operation to time, with its local path and S3 URI.
enum Op {
    List(String),
    Put(PathBuf, String),
    Get(String, PathBuf),
    Sync(PathBuf, String),
}

impl Op {
    fn parse(args: &[String]) -> Result<Op, Fatal> {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        match a.as_slice() {
            ["list", uri] => Ok(Op::List(uri.to_string())),
            ["put", file, uri] => Ok(Op::Put(file.into(), uri.to_string())),
            ["get", uri, file] => Ok(Op::Get(uri.to_string(), file.into())),
            ["sync", dir, uri] => Ok(Op::Sync(dir.into(), uri.to_string())),
            _ => Err("bench: say what to time: list s3://B/P | put FILE s3://B/K | get s3://B/K FILE | \
                      sync DIR s3://B/P"
                .into()),
        }
    }

    fn uri(&self) -> &str {
        match self {
            Op::List(u) | Op::Put(_, u) | Op::Get(u, _) | Op::Sync(_, u) => u,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Op::List(_) => "list",
            Op::Put(..) => "put",
            Op::Get(..) => "get",
            Op::Sync(..) => "sync",
        }
    }
}

/// One timed run.
struct Run {
    secs: f64,
    /// Keys listed, or files moved by a sync.
    items: u64,
    bytes: u64,
    requests: u64,
    retries: u64,
    /// Peak resident set of the process during the run, KiB (`None` where /proc says nothing).
    peak_kib: Option<u64>,
}

impl Run {
    fn rate(&self, op: &Op) -> (f64, &'static str) {
        let s = self.secs.max(1e-9);
        match op {
            Op::List(_) => (self.items as f64 / s, "keys/s"),
            Op::Put(..) | Op::Get(..) => (self.bytes as f64 / MIB / s, "MiB/s"),
            Op::Sync(..) => (self.items as f64 / s, "files/s"),
        }
    }

    fn json(&self, op: &Op) -> serde_json::Value {
        let (rate, unit) = self.rate(op);
        serde_json::json!({
            "secs": self.secs, "items": self.items, "bytes": self.bytes, "rate": rate, "unit": unit,
            "requests": self.requests, "retries": self.retries, "peak_rss_kib": self.peak_kib,
        })
    }
}

pub fn run(cmd: BenchCmd, config_path: &Path) -> Result<i32, Fatal> {
    let op = Op::parse(&cmd.args)?;
    let mut target = match &cmd.target {
        Some(name) => lookup(&Config::load(config_path)?, name)?,
        None => Target::default(),
    };
    target.s3_uri = op.uri().to_string();
    target.endpoint_url = cmd.endpoint_url.clone().or(target.endpoint_url);
    target.region_name = cmd.region.clone().or(target.region_name);
    let (client, key) = client_for(&target)?;
    let mut xfer = Transfer { concurrency: cmd.jobs.max(1), ..Transfer::default() };
    if let Some(mib) = cmd.part_size_mib {
        xfer.part_size = mib << 20;
    }
    let rt = runtime()?;
    let mut runs = Vec::new();
    for i in 0..cmd.repeat.max(1) {
        if sync::interrupted() {
            break;
        }
        reset_peak();
        let (sent, retried, t) = (client.requests_sent(), client.retries(), Instant::now());
        let (items, bytes) = rt.block_on(once(&op, &client, &key, &cmd, xfer))?;
        let secs = t.elapsed().as_secs_f64();
        let r = Run {
            secs,
            items: match &op {
                // A sync that moved nothing (a no-op) is rated by the files it checked.
                Op::Sync(dir, _) if items == 0 => count_files(dir),
                _ => items,
            },
            bytes,
            requests: client.requests_sent() - sent,
            retries: client.retries() - retried,
            peak_kib: peak_kib(),
        };
        crate::debug!("bench {} run {}: {:.3} s, {} requests", op.name(), i + 1, r.secs, r.requests);
        runs.push(r);
    }
    if cmd.json {
        let all: Vec<serde_json::Value> = runs.iter().map(|r| r.json(&op)).collect();
        let median = median_run(&runs).map(|r| r.json(&op));
        crate::out!("{}", serde_json::json!({"op": op.name(), "uri": op.uri(), "runs": all, "median": median}));
    } else {
        crate::out!(raw "{}", table(&op, &runs));
    }
    Ok(OK)
}

/// Run the operation once: (items, bytes) it handled.
async fn once(op: &Op, client: &Client, key: &str, cmd: &BenchCmd, xfer: Transfer) -> Result<(u64, u64), Fatal> {
    let err = |e: crate::s3::Error| e.to_string();
    match op {
        Op::List(_) => {
            let (mut keys, mut bytes) = (0, 0);
            let mut lister = client.list(key, None, None);
            while let Some(page) = lister.next_page().await.map_err(err)? {
                keys += page.objects.len() as u64;
                bytes += page.objects.iter().map(|o| o.size).sum::<u64>();
            }
            Ok((keys, bytes))
        }
        Op::Put(file, _) => {
            let size = std::fs::metadata(file).map_err(|e| format!("{}: {e}", file.display()))?.len();
            client
                .put_file(key.trim_end_matches('/'), file, size, &PutOptions::default(), &xfer, &Tap::default())
                .await
                .map_err(err)?;
            Ok((1, size))
        }
        Op::Get(uri, file) => {
            let key = key.trim_end_matches('/');
            let meta = client.head(key).await.map_err(err)?.ok_or_else(|| format!("{uri}: no such object"))?;
            // Like `cp`: FILE is replaced, but only by a finished download (a temp file beside it).
            let tmp = crate::fsutil::temp_path(file);
            let done = client.download_to_file(key, &tmp, meta.size, &xfer).await.map_err(err).and_then(|_| {
                crate::fsutil::replace(&tmp, file).map_err(|e| format!("renaming into {}: {e}", file.display()))
            });
            if done.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            done.map(|()| (1, meta.size))
        }
        Op::Sync(dir, uri) => run_sync(client, key, dir, uri, cmd, xfer).await,
    }
}

/// A real `s4 sync` of DIR with the prefix; conflicts are skipped, never asked about.
async fn run_sync(
    client: &Client,
    prefix: &str,
    dir: &Path,
    uri: &str,
    cmd: &BenchCmd,
    xfer: Transfer,
) -> Result<(u64, u64), Fatal> {
    let opts = Options {
        conflicts: Mode::Ignore,
        dry_run: false,
        json: false,
        progress: true,
        jobs: cmd.jobs.max(1),
        follow_symlinks: false,
        // Transfers in flight come from --jobs; the parts of one file keep sync's default.
        transfer: Transfer { part_size: xfer.part_size, ..Transfer::default() },
        max_delete: MaxDelete::default(),
        force: false,
        inline: false,
        bwlimit: None,
        exclude: Vec::new(),
        include: Vec::new(),
    };
    let local = dir.display().to_string();
    let names = Names { name: "bench".into(), local_uri: format!("{local}/"), remote_uri: format!("{uri}/") };
    let r = sync::run(client, prefix, dir, &names, &opts).await?;
    if let Some(why) = r.stopped {
        return Err(format!("bench sync: {why}"));
    }
    if r.errors > 0 {
        return Err(format!("bench sync: {} files failed (see above)", r.errors));
    }
    Ok((r.uploaded + r.downloaded + r.deleted_local + r.deleted_remote, r.bytes_up + r.bytes_down))
}

/// Regular files under `dir`, s4's own dot-files left out.
fn count_files(dir: &Path) -> u64 {
    let rules = std::sync::Arc::new(crate::ignore::IgnoreRules::default());
    let Ok(scanner) = sync::scan::Scanner::new(dir, rules) else { return 0 };
    scanner.filter(|i| matches!(i, sync::scan::Item::File(_))).count() as u64
}

/// Linux resets the peak RSS (VmHWM) when "5" is written to clear_refs; best effort.
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn peak_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The run whose time is the median (the lower middle one of an even count).
fn median_run(runs: &[Run]) -> Option<&Run> {
    let mut sorted: Vec<&Run> = runs.iter().collect();
    sorted.sort_by(|a, b| a.secs.total_cmp(&b.secs));
    sorted.get((runs.len().max(1) - 1) / 2).copied()
}

fn table(op: &Op, runs: &[Run]) -> String {
    let row = |label: String, r: &Run| {
        let (rate, unit) = r.rate(op);
        let rss = r.peak_kib.map_or("-".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0));
        format!(
            "{label:<8} {:>9.3} s {:>12.1} {unit:<7} {:>9} {:>8} {:>9} {rss:>11}\n",
            r.secs, rate, r.items, r.requests, r.retries
        )
    };
    let mut out = format!(
        "{} {}\n{:<8} {:>11} {:>20} {:>9} {:>8} {:>9} {:>11}\n",
        op.name(),
        op.uri(),
        "run",
        "time",
        "rate",
        "items",
        "requests",
        "retries",
        "peak rss"
    );
    for (i, r) in runs.iter().enumerate() {
        out.push_str(&row(format!("{}", i + 1), r));
    }
    if let (true, Some(m)) = (runs.len() > 1, median_run(runs)) {
        out.push_str(&row("median".into(), m));
    }
    out
}

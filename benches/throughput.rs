//! Throughput of s4 against a real store, side by side with peers on the same store and data.
//!
//! Run it with `benches/run.sh` (builds, starts a tuned Garage, runs this, prints the table),
//! or against any store: set S4_TEST_ENDPOINT, S4_TEST_REGION, S4_TEST_ACCESS_KEY,
//! S4_TEST_SECRET_KEY, S4_TEST_BUCKET and run `cargo bench --bench throughput`.
//!
//! Measures (each S4_BENCH_REPS times, median reported), s4 always through its release binary:
//! - paged listing of S4_BENCH_LIST_KEYS (100,000) tiny keys (put 32 in flight first): keys/s;
//! - a S4_BENCH_BIG_MIB (1024) file: `s4 bench put/get` (multipart upload, parallel ranged
//!   download, bytes checked) with s4's default parts in flight and S4_BENCH_ALT_CONCURRENCY;
//! - `s4 sync` of S4_BENCH_SMALL_FILES (10,000) files of 4 KiB: first sync up, no-op, and a
//!   download into a fresh folder, files checked (S4_BENCH_SMALL_DOWN=0 leaves it out);
//! - a no-op sync of S4_BENCH_NOOP_FILES (100,000) files, every tool on the prefix s4 uploaded;
//! - the same with s5cmd, `aws s3`, rclone and S4 0.4.4 (sync only) when installed;
//! - section `many` (not in the default list; `benches/run.sh --many`): S4_BENCH_MANY_FILES
//!   (1,000,000) files of 1 KiB: first sync (s4), no-op and 100 changed (every tool).
//!
//! S4_BENCH_QUICK=1 shrinks the defaults (5,000 keys, 64 MiB, 1,000 and 5,000 files) for a try.
//! Other knobs: S4_BENCH_ALT_JOBS (s4 --jobs of a diagnostic download row; 0: none),
//! S4_BENCH_ONLY=list,big,small,noop,many (sections), S4_BENCH_PEERS=s5cmd,aws,rclone,s4py (or none),
//! S4_BENCH_S5CMD (the s5cmd binary), S4_PY (S4 0.4.4's python),
//! S4_BENCH_BIN (s4 binary), S4_BENCH_KEEP_OBJECTS=1 (skip deleting the run's objects),
//! S4_BENCH_OUT (JSON path; default target/bench/results.json). Costs (requests by operation,
//! store CPU) come from S4_BENCH_METRICS_URL / S4_BENCH_STORE_PID (a list: CPU is summed), which
//! vendor-tests/garage.sh sets (ceph.sh: the PIDs only).

#[path = "throughput/cost.rs"]
mod cost;
#[path = "throughput/data.rs"]
mod data;
#[path = "throughput/many.rs"]
mod many;
#[path = "throughput/moves.rs"]
mod moves;
#[path = "throughput/report.rs"]
mod report;
#[path = "throughput/syncs.rs"]
mod syncs;
#[path = "throughput/tools.rs"]
mod tools;

use std::path::{Path, PathBuf};

use bytes::Bytes;
use s4::s3::{Client, Config, Credentials, Payload, PutOptions, Transfer};
use tokio::task::JoinSet;

use cost::{Probe, Sample};
use report::Row;
use tools::{Peer, Store, S4};

struct Settings {
    reps: usize,
    list_keys: usize,
    big_mib: u64,
    alt_concurrency: usize,
    small_files: usize,
    alt_jobs: usize,
    noop_files: usize,
    move_files: usize,
    move_mib: u64,
    small_down: bool,
    many_files: usize,
    only: Vec<String>,
    keep_objects: bool,
}

fn env_num<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v.trim().parse().unwrap_or_else(|_| {
            eprintln!("throughput: {name}={v:?} is not a number");
            std::process::exit(2)
        }),
        Err(_) => default,
    }
}

fn need(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        eprintln!(
            "throughput: {name} is not set. This bench needs a store: run benches/run.sh (starts Garage), or set \
             S4_TEST_ENDPOINT, S4_TEST_REGION, S4_TEST_ACCESS_KEY, S4_TEST_SECRET_KEY and S4_TEST_BUCKET \
             (e.g. benches/run.sh, or vendor-tests/garage.sh cargo bench --bench throughput)."
        );
        std::process::exit(2)
    })
}

struct Bench {
    cfg: Settings,
    store: Store,
    probe: Probe,
    client: Client,
    rt: tokio::runtime::Runtime,
    tmp: PathBuf,
    /// Every key of this run is under it: `s4-bench/<unix secs>-<pid>/`.
    run: String,
    s4: S4,
    peers: Vec<Peer>,
    rows: Vec<Row>,
    /// /usr/bin/time writes each command's peak RSS here.
    rss: PathBuf,
}

fn main() {
    let store = Store {
        endpoint: need("S4_TEST_ENDPOINT"),
        region: std::env::var("S4_TEST_REGION").unwrap_or_else(|_| "us-east-1".into()),
        access_key: need("S4_TEST_ACCESS_KEY"),
        secret_key: need("S4_TEST_SECRET_KEY"),
        bucket: need("S4_TEST_BUCKET"),
    };
    let quick = std::env::var("S4_BENCH_QUICK").is_ok_and(|v| v == "1");
    let size = |full: usize, small: usize| if quick { small } else { full };
    let cfg = Settings {
        reps: env_num("S4_BENCH_REPS", 3usize).max(1),
        list_keys: env_num("S4_BENCH_LIST_KEYS", size(100_000, 5_000)),
        big_mib: env_num("S4_BENCH_BIG_MIB", size(1024, 64) as u64),
        alt_concurrency: env_num("S4_BENCH_ALT_CONCURRENCY", 16),
        small_files: env_num("S4_BENCH_SMALL_FILES", size(10_000, 1_000)),
        alt_jobs: env_num("S4_BENCH_ALT_JOBS", 0),
        noop_files: env_num("S4_BENCH_NOOP_FILES", size(100_000, 5_000)),
        move_files: env_num("S4_BENCH_MOVE_FILES", size(1000, 100)),
        move_mib: env_num("S4_BENCH_MOVE_MIB", size(1024, 64) as u64),
        small_down: std::env::var("S4_BENCH_SMALL_DOWN").map_or(true, |v| v != "0"),
        many_files: env_num("S4_BENCH_MANY_FILES", size(1_000_000, 20_000)),
        only: std::env::var("S4_BENCH_ONLY")
            .unwrap_or_else(|_| "list,big,small,noop,move".into())
            .split(',')
            .map(|s| s.trim().to_string())
            .collect(),
        keep_objects: std::env::var("S4_BENCH_KEEP_OBJECTS").is_ok_and(|v| v == "1"),
    };
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target_dir = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| manifest.join("target"));
    let bin = std::env::var_os("S4_BENCH_BIN").map(PathBuf::from).unwrap_or_else(|| target_dir.join("release/s4"));
    if !bin.is_file() {
        eprintln!("throughput: no s4 binary at {} (build it: cargo build --release)", bin.display());
        std::process::exit(2);
    }
    let tmp = tempfile::Builder::new().prefix("s4-bench.").tempdir().expect("temp dir");
    let creds = Credentials {
        access_key_id: store.access_key.clone(),
        secret_access_key: store.secret_key.clone(),
        session_token: None,
    };
    let client = Client::new(Config::new(Some(store.endpoint.clone()), store.region.clone(), creds), &store.bucket)
        .unwrap_or_else(|e| {
            eprintln!("throughput: {e}");
            std::process::exit(2)
        });
    let wanted: Vec<String> = std::env::var("S4_BENCH_PEERS")
        .unwrap_or_else(|_| "s5cmd,aws,rclone,s4py".into())
        .split(',')
        .map(|s| s.trim().to_string())
        .collect();
    let mut peers = Vec::new();
    let s4py = |dir: &Path, store: &Store| Peer::s4py(dir, store, &bin);
    type Make<'a> = &'a dyn Fn(&Path, &Store) -> Option<Peer>;
    let makers: [(&str, Make); 4] =
        [("s5cmd", &Peer::s5cmd), ("aws", &Peer::aws), ("rclone", &Peer::rclone), ("s4py", &s4py)];
    for (name, make) in makers {
        if !wanted.iter().any(|w| w == name) {
            continue;
        }
        match make(tmp.path(), &store) {
            Some(p) => peers.push(p),
            None => eprintln!("note: {name} not found (see benches/run.sh): its columns stay empty"),
        }
    }
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let mut b = Bench {
        probe: Probe::new(
            std::env::var("S4_BENCH_METRICS_URL").ok(),
            std::env::var("S4_BENCH_STORE_PID")
                .unwrap_or_default()
                .split([',', ' '])
                .filter_map(|p| p.parse().ok())
                .collect(),
        ),
        s4: S4::new(bin, tmp.path(), &store),
        store,
        client,
        // Like the s4 binary: two workers on two cores.
        rt: tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime"),
        tmp: tmp.path().to_path_buf(),
        run: format!("s4-bench/{secs}-{}/", std::process::id()),
        rss: tmp.path().join("rss"),
        peers,
        rows: Vec::new(),
        cfg,
    };
    let context = b.context();
    eprintln!("throughput: store {} bucket {}, keys under {}", b.store.endpoint, b.store.bucket, b.run);
    b.startup();
    for section in b.cfg.only.clone() {
        let t = std::time::Instant::now();
        match section.as_str() {
            "list" => b.listing(),
            "big" => b.big(),
            "small" => b.small(),
            "noop" => b.noop(),
            "move" => b.moves(),
            "many" => b.many(),
            "" => continue,
            other => eprintln!("note: unknown section {other:?} in S4_BENCH_ONLY (list, big, small, noop, move, many)"),
        }
        eprintln!("throughput: section {section} took {:.1} s", t.elapsed().as_secs_f64());
    }
    b.cleanup();
    let speed = report::speed_table(&b.rows);
    let costs = report::cost_table(&b.rows);
    let targets = report::targets(&b.rows);
    println!("\n{speed}\nratio = peer time / s4 time: above 1 means s4 is faster.\n\n{targets}\n{costs}");
    for r in &b.rows {
        for n in &r.notes {
            println!("note ({}): {n}", r.title);
        }
    }
    let out =
        std::env::var_os("S4_BENCH_OUT").map(PathBuf::from).unwrap_or_else(|| target_dir.join("bench/results.json"));
    let json = report::json(&b.rows, context);
    if let Some(dir) = out.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    match std::fs::write(&out, serde_json::to_string_pretty(&json).unwrap_or_default()) {
        Ok(()) => println!("\nresults: {}", out.display()),
        Err(e) => eprintln!("throughput: writing {}: {e}", out.display()),
    }
    drop(tmp);
}

/// Turn an in-process sample into one with a request count even without store metrics.
fn with_counter(mut s: Sample, sent: u64) -> Sample {
    if s.requests.is_empty() {
        s.requests.insert("(s4 counter)".into(), sent);
    }
    s
}

async fn put_many(client: &Client, prefix: &str, n: usize, in_flight: usize) -> Result<(), String> {
    let mut set = JoinSet::new();
    let join = |r: Result<Result<(), String>, tokio::task::JoinError>| r.map_err(|e| e.to_string()).and_then(|r| r);
    for i in 0..n {
        while set.len() >= in_flight {
            join(set.join_next().await.expect("non-empty"))?;
        }
        let (c, key) = (client.clone(), format!("{prefix}k{i:06}"));
        set.spawn(async move {
            let body = Payload::Bytes(Bytes::from(format!("{i}\n")));
            c.put(&key, body, &PutOptions::default()).await.map(|_| ()).map_err(|e| e.to_string())
        });
    }
    while let Some(r) = set.join_next().await {
        join(r)?;
    }
    Ok(())
}

/// Items of the median run `s4 bench --json` printed (keys listed, files synced).
fn bench_items(stdout: &str) -> u64 {
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or_default();
    v["median"]["items"].as_u64().unwrap_or(0)
}

impl Bench {
    fn context(&self) -> serde_json::Value {
        let version = |r: tools::Run| {
            r.measure(&self.probe, &self.rss).ok().map(|d| d.stdout.lines().next().unwrap_or("").to_string())
        };
        let mut tools = serde_json::Map::new();
        tools.insert("s4".into(), version(self.s4.version()).into());
        for p in &self.peers {
            tools.insert(p.name.into(), version(p.version()).into());
        }
        let c = &self.cfg;
        serde_json::json!({
            "store": std::env::var("S4_TEST_STORE").unwrap_or_else(|_| "env".into()),
            "endpoint": self.store.endpoint, "prefix": self.run, "reps": c.reps,
            "list_keys": c.list_keys, "big_mib": c.big_mib, "alt_concurrency": c.alt_concurrency,
            "small_files": c.small_files, "alt_jobs": c.alt_jobs, "noop_files": c.noop_files,
            "many_files": c.many_files,
            "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            "peer_sync_jobs": tools::SYNC_JOBS, "tools": tools,
            "unix_time": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        })
    }

    /// Peers that copy and list (all but S4 0.4.4, which only syncs).
    fn copiers(&self) -> Vec<usize> {
        (0..self.peers.len()).filter(|&i| self.peers[i].copies()).collect()
    }

    fn row(&mut self, id: &str, title: String, work: f64, unit: &'static str) -> usize {
        self.rows.push(Row::new(id, title, work, unit));
        self.rows.len() - 1
    }

    fn note(&mut self, row: usize, tool: &str, what: String) {
        eprintln!("throughput: {tool}: {what}");
        self.rows[row].notes.push(format!("{tool}: {what}"));
    }

    /// Record a sample, or a note when the run failed.
    fn record(&mut self, row: usize, tool: &'static str, r: Result<Sample, String>) -> bool {
        match r {
            Ok(s) => {
                eprintln!(
                    "  {:<44} {tool:<7} {:>8.3} s  {:>6} req",
                    self.rows[row].title,
                    s.secs,
                    s.total_requests().map_or("-".into(), |n| n.to_string())
                );
                self.rows[row].add(tool, s);
                true
            }
            Err(e) => {
                self.note(row, tool, e);
                false
            }
        }
    }

    /// In-process s4: run a future, measured.
    fn lib<T>(&self, f: impl std::future::Future<Output = Result<T, String>>) -> Result<(Sample, T), String> {
        let (mark, sent) = (self.probe.mark(), self.client.requests_sent());
        let v = self.rt.block_on(f)?;
        Ok((with_counter(self.probe.sample(&mark), self.client.requests_sent() - sent), v))
    }

    fn startup(&mut self) {
        let row = self.row("startup", "start-up: version command, no request".into(), 0.0, "");
        for _ in 0..self.cfg.reps {
            let r = self.s4.version().measure(&self.probe, &self.rss).map(|d| d.sample);
            self.record(row, "s4", r);
            for i in 0..self.peers.len() {
                let r = self.peers[i].version().measure(&self.probe, &self.rss).map(|d| d.sample);
                let name = self.peers[i].name;
                self.record(row, name, r);
            }
        }
    }

    fn listing(&mut self) {
        let n = self.cfg.list_keys;
        let prefix = format!("{}list/", self.run);
        let put = self.row("list_put", format!("put {n} tiny objects, 32 in flight (lib)"), n as f64, "obj/s");
        let r = self.lib(put_many(&self.client, &prefix, n, 32)).map(|(s, _)| s);
        if !self.record(put, "s4", r) {
            return;
        }
        self.get_latency(&format!("{}latency/", self.run));
        let row = self.row("list", format!("list {n} keys, 1000 a page"), n as f64, "keys/s");
        let uri = self.s4.uri(&prefix);
        for _ in 0..self.cfg.reps {
            let r = self.s4.bench(&["list", &uri]).measure(&self.probe, &self.rss).and_then(|d| {
                let got = bench_items(&d.stdout);
                (got == n as u64).then_some(d.sample).ok_or(format!("listed {got} keys, expected {n}"))
            });
            self.record(row, "s4", r);
            for i in self.copiers() {
                let (p, name) = (&self.peers[i], self.peers[i].name);
                let r = p.list(&prefix).measure(&self.probe, &self.rss).and_then(|d| {
                    let got = p.count_listed(&d.stdout);
                    (got == n as u64).then_some(d.sample).ok_or(format!("listed {got} keys, expected {n}"))
                });
                self.record(row, name, r);
            }
        }
    }

    /// Store check: sequential GETs of one small object. Garage answers objects it keeps
    /// inline (< 3 KiB) at once but stalls ~40 ms on bigger small ones (Nagle against the
    /// client's delayed ACK), which bounds every tool's small-file download.
    fn get_latency(&mut self, prefix: &str) {
        const N: usize = 20;
        for size in [2048usize, 6144] {
            let row = self.row(
                &format!("get_{size}"),
                format!("GET one {} KiB object, {N} in a row (lib)", size / 1024),
                N as f64,
                "GET/s",
            );
            let key = format!("{prefix}latency-{size}");
            let client = self.client.clone();
            let body = Payload::Bytes(Bytes::from(vec![b'x'; size]));
            if let Err(e) = self.rt.block_on(client.put(&key, body, &PutOptions::default())) {
                self.note(row, "s4", e.to_string());
                continue;
            }
            for _ in 0..self.cfg.reps {
                let r = self.lib(async {
                    for _ in 0..N {
                        client.get_bytes(&key).await.map_err(|e| e.to_string())?;
                    }
                    Ok(())
                });
                self.record(row, "s4", r.map(|(s, _)| s));
            }
            self.rt.block_on(client.delete(&key)).ok();
        }
    }

    fn big(&mut self) {
        let mib = self.cfg.big_mib;
        let src = self.tmp.join("big.bin");
        let out = self.tmp.join("big.out");
        if let Err(e) = data::big_file(&src, mib, 0x5eed) {
            eprintln!("throughput: writing {}: {e}", src.display());
            return;
        }
        let def = Transfer::default();
        let alt = Transfer { concurrency: self.cfg.alt_concurrency, ..def };
        let part = def.part_size >> 20;
        let mut sets = vec![(def, "default")];
        if alt != def {
            sets.push((alt, "alt"));
        }
        let mut rows = Vec::new();
        for (x, id) in &sets {
            let c = x.concurrency;
            let up = self.row(
                &format!("big_up_{id}"),
                format!("upload {mib} MiB (s4: {part} MiB parts, {c} in flight)"),
                mib as f64,
                "MiB/s",
            );
            let down = self.row(
                &format!("big_down_{id}"),
                format!("download {mib} MiB (s4: {c} ranges in flight)"),
                mib as f64,
                "MiB/s",
            );
            rows.push((*x, up, down));
        }
        for rep in 0..self.cfg.reps {
            for &(x, up, down) in &rows {
                let uri = self.s4.uri(&format!("{}big/s4-c{}-{rep}", self.run, x.concurrency));
                let jobs = x.concurrency.to_string();
                let (file, copy) = (src.to_string_lossy().into_owned(), out.to_string_lossy().into_owned());
                let r = self.s4.bench(&["put", &file, &uri, "--jobs", &jobs]).measure(&self.probe, &self.rss);
                if !self.record(up, "s4", r.map(|d| d.sample)) {
                    continue;
                }
                let r = self.s4.bench(&["get", &uri, &copy, "--jobs", &jobs]).measure(&self.probe, &self.rss);
                let r = r.and_then(|d| data::same_file(&src, &out).map(|_| d.sample));
                self.record(down, "s4", r);
                let _ = std::fs::remove_file(&out);
            }
            for i in self.copiers() {
                let name = self.peers[i].name;
                let key = format!("{}big/{name}-{rep}", self.run);
                let r = self.peers[i].copy(&src, &key, false).measure(&self.probe, &self.rss).map(|d| d.sample);
                let ok = r.is_ok();
                for &(_, up, _) in &rows {
                    self.record(up, name, r.clone());
                }
                if !ok {
                    continue;
                }
                let r = self.peers[i].copy(&out, &key, true).measure(&self.probe, &self.rss);
                let r = r.and_then(|d| data::same_file(&src, &out).map(|_| d.sample));
                for &(_, _, down) in &rows {
                    self.record(down, name, r.clone());
                }
                let _ = std::fs::remove_file(&out);
            }
        }
        let _ = std::fs::remove_file(&src);
        self.delete_under(&format!("{}big/", self.run));
    }

    fn delete_under(&self, prefix: &str) {
        if self.cfg.keep_objects {
            return;
        }
        let client = self.client.clone();
        let r: Result<usize, String> = self.rt.block_on(async {
            let mut lister = client.list(prefix, None, None);
            let mut keys = Vec::new();
            let mut total = 0;
            while let Some(o) = lister.next_object().await.map_err(|e| e.to_string())? {
                keys.push(o.key);
                if keys.len() == 1000 {
                    total += keys.len();
                    client.delete_objects(&std::mem::take(&mut keys)).await.map_err(|e| e.to_string())?;
                    // Deleting while listing: start again from the first key left.
                    lister = client.list(prefix, None, None);
                }
            }
            total += keys.len();
            client.delete_objects(&keys).await.map_err(|e| e.to_string())?;
            Ok(total)
        });
        match r {
            Ok(n) => eprintln!("throughput: deleted {n} objects under {prefix}"),
            Err(e) => eprintln!("throughput: cleaning up {prefix}: {e}"),
        }
    }

    fn cleanup(&self) {
        if self.cfg.keep_objects {
            eprintln!("throughput: kept the run's objects under {}", self.run);
        } else {
            self.delete_under(&self.run);
        }
    }
}

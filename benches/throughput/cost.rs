//! What one measured run cost: wall time, requests the store saw (by S3 operation), CPU of
//! the client (this process and the commands it ran) and of the store. All read from /proc
//! and from the store's Prometheus metrics, so every tool is measured the same way.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

/// Linux's USER_HZ: /proc times are in these ticks (100 on every mainstream architecture).
const TICKS: f64 = 100.0;

/// One measured run.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    pub secs: f64,
    /// Requests the store counted, by operation (empty when the store has no metrics).
    pub requests: BTreeMap<String, u64>,
    /// Client CPU seconds (user + system): this process's threads plus the commands it ran.
    pub client_cpu: f64,
    pub store_cpu: Option<f64>,
    /// Peak resident set of the command, KiB (commands run under /usr/bin/time only).
    pub max_rss_kib: Option<u64>,
}

impl Sample {
    pub fn total_requests(&self) -> Option<u64> {
        if self.requests.is_empty() {
            None
        } else {
            Some(self.requests.values().sum())
        }
    }
}

/// Reads the counters; `mark()` before a run, `sample(mark)` after it.
pub struct Probe {
    metrics: Option<(String, String)>, // host:port, path
    /// The store's processes (Ceph: radosgw, the OSD and the monitor); their CPU is summed.
    store_pids: Vec<u32>,
}

pub struct Mark {
    t: Instant,
    self_cpu: f64,
    child_cpu: f64,
    store_cpu: Option<f64>,
    requests: BTreeMap<String, u64>,
}

impl Probe {
    pub fn new(metrics_url: Option<String>, store_pids: Vec<u32>) -> Probe {
        let metrics = metrics_url.and_then(|u| {
            let rest = u.strip_prefix("http://")?;
            let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
            Some((host.to_string(), format!("/{path}")))
        });
        let p = Probe { metrics, store_pids };
        if p.metrics.is_some() && p.requests().is_empty() {
            eprintln!("note: the store's metrics answered nothing usable; request counts come from s4's own counter");
            return Probe { metrics: None, ..p };
        }
        p
    }

    pub fn mark(&self) -> Mark {
        let requests = self.requests();
        let (self_cpu, child_cpu) = proc_cpu("self").map(|c| (c.0, c.1)).unwrap_or((0.0, 0.0));
        let store_cpu = self.store_cpu();
        Mark { t: Instant::now(), self_cpu, child_cpu, store_cpu, requests }
    }

    pub fn sample(&self, m: &Mark) -> Sample {
        let secs = m.t.elapsed().as_secs_f64();
        let (self_cpu, child_cpu) = proc_cpu("self").map(|c| (c.0, c.1)).unwrap_or((0.0, 0.0));
        let store_cpu = match (self.store_cpu(), m.store_cpu) {
            (Some(now), Some(then)) => Some(now - then),
            _ => None,
        };
        let now = self.requests();
        let requests = now
            .iter()
            .map(|(k, v)| (k.clone(), v.saturating_sub(*m.requests.get(k).unwrap_or(&0))))
            .filter(|(_, v)| *v > 0)
            .collect();
        Sample {
            secs,
            requests,
            client_cpu: (self_cpu - m.self_cpu) + (child_cpu - m.child_cpu),
            store_cpu,
            max_rss_kib: None,
        }
    }

    /// CPU seconds the store's processes have used, if every one of them could be read.
    fn store_cpu(&self) -> Option<f64> {
        if self.store_pids.is_empty() {
            return None;
        }
        self.store_pids.iter().map(|p| proc_cpu(&p.to_string()).map(|c| c.0)).sum()
    }

    /// `api_s3_request_counter{api_endpoint="X"} N` lines of Garage's /metrics.
    fn requests(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        let Some((host, path)) = &self.metrics else { return out };
        let Some(text) = http_get(host, path) else { return out };
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("api_s3_request_counter{") else { continue };
            let Some((labels, value)) = rest.rsplit_once("} ") else { continue };
            let Some(op) = labels.split(',').find_map(|l| l.strip_prefix("api_endpoint=\"")) else { continue };
            let op = op.trim_end_matches('"').to_string();
            if let Ok(v) = value.trim().parse::<f64>() {
                *out.entry(op).or_insert(0) += v as u64;
            }
        }
        out
    }
}

/// (user+system of the process, user+system of its waited-for children), seconds.
fn proc_cpu(pid: &str) -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at field 3 ("state").
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<f64> = rest.split(' ').map(|x| x.parse().unwrap_or(0.0)).collect();
    // utime=14 stime=15 cutime=16 cstime=17 (1-based over the whole line) → 11..14 here.
    Some(((f[11] + f[12]) / TICKS, (f[13] + f[14]) / TICKS))
}

fn http_get(host: &str, path: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(host).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    let (head, body) = body.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200")
        .then(|| body.to_string())
        .or_else(|| head.starts_with("HTTP/1.0 200").then(|| body.to_string()))
}

pub fn median(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    let mut v = xs.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The sample whose time is the median (the lower middle one for an even count), so its
/// request and CPU columns belong to one real run.
pub fn median_sample(samples: &[Sample]) -> Option<&Sample> {
    let mut idx: Vec<usize> = (0..samples.len()).collect();
    idx.sort_by(|&a, &b| samples[a].secs.partial_cmp(&samples[b].secs).unwrap_or(std::cmp::Ordering::Equal));
    idx.get((samples.len().max(1) - 1) / 2).map(|&i| &samples[i])
}

//! Results: one row per measurement, a column per tool; printed as two tables (speed, then
//! cost: requests, client and store CPU, peak memory) and written as JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::cost::{median, median_sample, Sample};

pub const TOOLS: [&str; 5] = ["s4", "s5cmd", "aws", "rclone", "s4py"];

pub struct Row {
    pub id: String,
    pub title: String,
    /// Units of work per run (keys, MiB, files), and their name for the rate ("keys/s").
    pub work: f64,
    pub unit: &'static str,
    pub samples: BTreeMap<&'static str, Vec<Sample>>,
    pub notes: Vec<String>,
}

impl Row {
    pub fn new(id: &str, title: String, work: f64, unit: &'static str) -> Row {
        Row { id: id.into(), title, work, unit, samples: BTreeMap::new(), notes: Vec::new() }
    }

    pub fn add(&mut self, tool: &'static str, s: Sample) {
        self.samples.entry(tool).or_default().push(s);
    }

    pub fn secs(&self, tool: &str) -> Option<f64> {
        let v: Vec<f64> = self.samples.get(tool)?.iter().map(|s| s.secs).collect();
        (!v.is_empty()).then(|| median(&v))
    }

    /// Peak RSS of the median run, MiB.
    pub fn rss_mib(&self, tool: &str) -> Option<f64> {
        median_sample(self.samples.get(tool)?)?.max_rss_kib.map(|k| k as f64 / 1024.0)
    }

    /// Units of work per second, median.
    pub fn rate(&self, tool: &str) -> Option<f64> {
        self.secs(tool).filter(|t| *t > 0.0 && self.work > 0.0).map(|t| self.work / t)
    }

    fn cell(&self, tool: &str) -> String {
        let Some(t) = self.secs(tool) else { return "-".into() };
        let mut parts = Vec::new();
        if let (false, Some(r)) = (self.unit.is_empty(), self.rate(tool)) {
            parts.push(format!("{} {}", rate(r), self.unit));
        }
        if let Some(m) = self.rss_mib(tool) {
            parts.push(format!("{m:.0} MiB"));
        }
        match parts.is_empty() {
            true => format!("{t:.3} s"),
            false => format!("{t:.3} s ({})", parts.join(", ")),
        }
    }

    fn ratio(&self, tool: &str) -> String {
        match (self.secs(tool), self.secs("s4")) {
            (Some(p), Some(s)) if s > 0.0 => format!("{:.2}x", p / s),
            _ => "-".into(),
        }
    }
}

fn rate(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

/// Time (rate, peak RSS) per tool, and each peer's time over s4's; only tools that ran.
pub fn speed_table(rows: &[Row]) -> String {
    let tools: Vec<&str> = TOOLS.into_iter().filter(|t| rows.iter().any(|r| r.samples.contains_key(t))).collect();
    let mut head = vec!["measurement (median: time (rate, peak RSS))".to_string()];
    for t in &tools {
        head.push(t.to_string());
        if *t != "s4" {
            head.push(format!("{t}/s4"));
        }
    }
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut line = vec![r.title.clone()];
            for t in &tools {
                line.push(r.cell(t));
                if *t != "s4" {
                    line.push(r.ratio(t));
                }
            }
            line
        })
        .collect();
    table(&head, &body)
}

/// The targets, each as a ratio measured in this run ("-" when a side is missing).
pub fn targets(rows: &[Row]) -> String {
    let row = |id: &str| rows.iter().find(|r| r.id == id);
    let peers = |r: &Row| TOOLS[1..].iter().filter_map(|t| r.secs(t)).fold(f64::NAN, f64::min);
    let mut out = String::from("targets (this run):\n");
    let mut line = |what: &str, got: Option<f64>, goal: &str, met: fn(f64) -> bool| {
        let verdict = match got {
            Some(x) if x.is_finite() => format!("{x:.2} ({})", if met(x) { "met" } else { "MISSED" }),
            _ => "- (not measured)".into(),
        };
        out.push_str(&format!("  {what:<46} {goal:<8} {verdict}\n"));
    };
    let time_over = |id: &str, peer: &str| Some(row(id)?.secs("s4")? / row(id)?.secs(peer)?);
    line("first sync of small files: s4 / s5cmd time", time_over("small_up", "s5cmd"), "<= 0.70", |x| x <= 0.7);
    let noop = row("noop").and_then(|r| Some(r.secs("s4")? / peers(r)));
    line("no-op re-sync: s4 / fastest peer time", noop, "<= 0.50", |x| x <= 0.5);
    let best_rate = |r: &Row| TOOLS[1..].iter().filter_map(|t| r.rate(t)).fold(f64::NAN, f64::max);
    let list = row("list").and_then(|r| Some(r.rate("s4")? / best_rate(r)));
    line("listing: s4 / best peer keys/s", list, ">= 0.95", |x| x >= 0.95);
    let rate_over = |id: &str| Some(row(id)?.rate("s4")? / row(id)?.rate("s5cmd")?);
    line("big upload: s4 / s5cmd MiB/s", rate_over("big_up_default"), ">= 1.20", |x| x >= 1.2);
    line("big download: s4 / s5cmd MiB/s", rate_over("big_down_default"), ">= 1.20", |x| x >= 1.2);
    let rss = ["noop_up", "noop"].iter().filter_map(|id| row(id)?.rss_mib("s4")).fold(f64::NAN, f64::max);
    line("peak RSS of s4 on the big-tree syncs, MiB", Some(rss), "<= 100", |x| x <= 100.0);
    let ids = ["many_up", "many_noop", "many_changed"];
    let rss = ids.iter().filter_map(|id| row(id)?.rss_mib("s4")).fold(f64::NAN, f64::max);
    line("peak RSS of s4 on the million-file syncs, MiB", Some(rss), "<= 150", |x| x <= 150.0);
    let noop = row("many_noop").and_then(|r| Some(r.secs("s4")? / peers(r)));
    line("million-file no-op: s4 / fastest peer time", noop, "<= 0.50", |x| x <= 0.5);
    out
}

pub fn cost_table(rows: &[Row]) -> String {
    let head: Vec<String> =
        ["measurement", "tool", "runs", "requests (by op)", "client cpu s", "store cpu s", "peak rss"]
            .map(String::from)
            .to_vec();
    let mut body: Vec<Vec<String>> = Vec::new();
    for r in rows {
        for tool in TOOLS {
            let Some(all) = r.samples.get(tool) else { continue };
            let Some(s) = median_sample(all) else { continue };
            let reqs = match s.total_requests() {
                Some(n) => {
                    let ops: Vec<String> = s.requests.iter().map(|(k, v)| format!("{k} {v}")).collect();
                    format!("{n}: {}", ops.join(", "))
                }
                None => "-".into(),
            };
            body.push(vec![
                r.title.clone(),
                tool.to_string(),
                all.len().to_string(),
                reqs,
                format!("{:.2}", s.client_cpu),
                s.store_cpu.map_or("-".into(), |c| format!("{c:.2}")),
                s.max_rss_kib.map_or("-".into(), |k| format!("{} MiB", k / 1024)),
            ]);
        }
    }
    table(&head, &body)
}

fn table(head: &[String], body: &[Vec<String>]) -> String {
    let mut w = vec![0usize; head.len()];
    for row in std::iter::once(head).chain(body.iter().map(Vec::as_slice)) {
        for (i, c) in row.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, row: &[String]| {
        let cells: Vec<String> = row.iter().enumerate().map(|(i, c)| format!("{c:<width$}", width = w[i])).collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    };
    line(&mut out, head);
    let _ = writeln!(out, "|{}|", w.iter().map(|n| "-".repeat(n + 2)).collect::<Vec<_>>().join("|"));
    for row in body {
        line(&mut out, row);
    }
    out
}

pub fn json(rows: &[Row], context: serde_json::Value) -> serde_json::Value {
    let rows: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            let mut tools = serde_json::Map::new();
            for (tool, all) in &r.samples {
                let secs = r.secs(tool).unwrap_or(f64::NAN);
                let runs: Vec<serde_json::Value> = all
                    .iter()
                    .map(|s| {
                        serde_json::json!({
                            "secs": s.secs, "requests": s.requests, "client_cpu_secs": s.client_cpu,
                            "store_cpu_secs": s.store_cpu, "max_rss_kib": s.max_rss_kib,
                        })
                    })
                    .collect();
                let rate = (!r.unit.is_empty() && secs > 0.0).then(|| r.work / secs);
                let ratio = r.secs("s4").filter(|s| *s > 0.0 && *tool != "s4").map(|s| secs / s);
                tools.insert(
                    tool.to_string(),
                    serde_json::json!({"median_secs": secs, "rate": rate, "peer_over_s4": ratio, "runs": runs}),
                );
            }
            serde_json::json!({
                "id": r.id, "title": r.title, "work": r.work, "unit": r.unit, "tools": tools, "notes": r.notes,
            })
        })
        .collect();
    serde_json::json!({"context": context, "rows": rows})
}
